"""Packaging promises: a GPU owner's install pulls no Flask, the client needs only the standard library,
and the console scripts named in the README exist and run."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def extras() -> dict[str, list[str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "setup.cfg")
    return {k: [line.strip() for line in v.strip().splitlines()] for k, v in parser["options.extras_require"].items()}


def test_worker_extra_pulls_no_flask():
    worker = " ".join(extras()["worker"]).lower()
    assert "flask" not in worker and "sqlalchemy" not in worker
    assert "websockets" in worker


@pytest.mark.parametrize("module, forbidden", [
    ("framehive.worker_agent.cli", ("flask", "sqlalchemy", "framehive.coordinator", "bpy")),
    # requests is allowed in the client (issue 16)
    ("framehive.addon.cli", ("flask", "websockets", "bpy", "framehive.coordinator", "framehive.worker_agent")),
    ("framehive.protocol.messages", ("flask", "websockets", "requests")),
    # Blender loads it inside the extension (as _protocol.vocabulary): nothing but the standard library.
    ("framehive.protocol.vocabulary", ("flask", "websockets", "requests", "bpy", "framehive.addon",
                                       "framehive.coordinator", "framehive.worker_agent")),
    # The console scripts' entry points run in installs with only some extras (tests/test_installs.py).
    ("framehive.launch", ("flask", "websockets", "requests", "bpy", "framehive.addon", "framehive.coordinator",
                          "framehive.worker_agent")),
])
def test_module_imports_stay_within_their_side(module, forbidden):  # type: ignore[no-untyped-def]
    code = ("import sys, " + module + "; names = {m.split('.')[0] for m in sys.modules}"
            " | {'.'.join(m.split('.')[:2]) for m in sys.modules}; print(','.join(sorted(names)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                                cwd=REPO).stdout.strip().split(","))
    assert not loaded & set(forbidden), loaded & set(forbidden)


@pytest.mark.parametrize("script", ["framehive", "framehive-worker", "framehive-coordinator"])
def test_console_scripts_are_installed(script):  # type: ignore[no-untyped-def]
    path = Path(sys.executable).parent / script
    assert path.exists(), f"{script} is not installed next to {sys.executable}"
    result = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage:" in result.stdout


@pytest.mark.parametrize("script", ["framehive", "framehive-worker", "framehive-coordinator"])
def test_every_command_shows_the_one_version(script):  # type: ignore[no-untyped-def]
    import framehive

    result = subprocess.run([str(Path(sys.executable).parent / script), "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"{script} {framehive.__version__}", result


def test_console_scripts_start_through_the_launcher() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "setup.cfg")
    scripts = dict(line.replace(" ", "").split("=") for line in
                   parser["options.entry_points"]["console_scripts"].strip().splitlines())
    assert scripts == {"framehive": "framehive.launch:artist", "framehive-worker": "framehive.launch:worker",
                       "framehive-coordinator": "framehive.launch:coordinator"}


def test_every_readme_install_line_names_a_folder_and_existing_extras() -> None:
    # `pip install 'framehive[artist]'` names no package anyone can fetch: from a clone, a folder does.
    readme = (REPO / "README.md").read_text()
    lines = re.findall(r"pip install '([^']*)'", readme)
    assert len(lines) >= 5, lines
    known = set(extras())
    for requirement in lines:
        found = re.fullmatch(r"(\./framehive|\.|/\S+/framehive)\[([a-z0-9,]+)\]", requirement)
        assert found, f"README: pip install '{requirement}' is not a folder with extras"
        assert set(found.group(2).split(",")) <= known, requirement
