"""Installs as the README writes them, on the Pythons users have besides the development one (3.11): a fresh venv
on Python 3.12 and one on 3.13 install the project from a folder (as `pip install './framehive[artist]'` from a
clone does), with pip's cache, and run the commands. A command of a role whose extra is missing says which extra
to install; on 3.12, where no bpy exists, the worker says what to do instead.

The two Pythons are installed side by side (one thread each, a clone each: a build writes into its folder), from
pip's cache, without compiling bytecode: 59 s of wall time and 43 s of CPU on this 2-core machine under a load of 6
(the artist's install takes about 4 s; the coordinator's dependencies, numpy, scipy, Pillow, Flask..., the rest).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import framehive
from tests.pythons import find_python, make_venv, pip_install

REPO = Path(__file__).resolve().parent.parent
# What a clone holds that an install reads: the metadata and the folders setup.cfg maps into framehive.*.
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "framehive", "addon", "coordinator", "protocol",
           "worker_agent")
VERSION = framehive.__version__
START_DEADLINE = 60.0


def clone(dest: Path) -> Path:
    """The project's install sources in ``dest`` (not the repository itself: a build writes build/ and egg-info
    into the folder it builds, where parallel test runs would meet)."""
    dest.mkdir()
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def planned_installs(bin_dir: Path, requirement: str, cwd: Path) -> list[str]:
    """The names pip would install for ``requirement`` (a dry run: nothing is downloaded but metadata)."""
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-",
                           "--disable-pip-version-check", requirement], capture_output=True, text=True, timeout=300,
                          cwd=cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [item["metadata"]["name"].lower() for item in json.loads(done.stdout)["install"]]


def command(bin_dir: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # PATH holds the venv and the system folders only: no blender, no development venv.
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    return subprocess.run([str(bin_dir / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120, env=env,
                          cwd=cwd)


def health_of_a_started_coordinator(bin_dir: Path, work: Path) -> dict[str, object]:
    """Start ``framehive-coordinator serve`` on a free port, read /api/v1/health, stop it."""
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8"}
    server = subprocess.Popen([str(bin_dir / "framehive-coordinator"), "serve", "--port", "0", "--data-dir",
                               str(work / "data"), "--server", "werkzeug"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env, cwd=work)
    try:
        assert server.stdout is not None
        seen = []
        for line in server.stdout:  # the server prints its address once it listens (or dies: the loop ends)
            seen.append(line)
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                with urllib.request.urlopen(f"{found.group(1)}/api/v1/health", timeout=START_DEADLINE) as response:
                    return dict(json.loads(response.read()))
        raise AssertionError("the coordinator ended without listening:\n" + "".join(seen)[-3000:])
    finally:
        server.terminate()
        server.wait(timeout=30)


def install_and_run(python: Path, work: Path) -> dict[str, object]:
    """The installs and commands on one Python, from a clone of its own in ``work``; returns what was seen,
    asserted by the tests."""
    seen: dict[str, object] = {}
    source = clone(work / "framehive")
    bin_dir = make_venv(python, work / "venv")
    # The README's lines, pasted in the folder that holds the clone.
    pip_install(bin_dir, "./framehive[artist]", cwd=source.parent)
    seen["artist"] = command(bin_dir, "framehive", "--version", cwd=work)
    seen["coordinator_missing"] = command(bin_dir, "framehive-coordinator", "serve", cwd=work)
    seen["worker_missing"] = command(bin_dir, "framehive-worker", "--coordinator", "http://127.0.0.1:9", cwd=work)
    pip_install(bin_dir, "./framehive[worker,coordinator]", cwd=source.parent)
    seen["worker_without_blender"] = command(bin_dir, "framehive-worker", "--coordinator", "http://127.0.0.1:9",
                                             "--token-file", str(work / "token"), cwd=work)
    if python.name.endswith("3.12"):
        seen["blender_extra"] = planned_installs(bin_dir, "./framehive[blender]", source.parent)
    seen["coordinator"] = command(bin_dir, "framehive-coordinator", "--version", cwd=work)
    seen["health"] = health_of_a_started_coordinator(bin_dir, work)
    return seen


@pytest.fixture(scope="module")
def installs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    pythons = {version: find_python(version) for version in ("3.12", "3.13")}
    missing = [version for version, python in pythons.items() if python is None]
    assert not missing, f"no Python {missing} here (pyenv or PATH); the install test needs them"
    works = {version: tmp_path_factory.mktemp(f"py{version}") for version in pythons}
    for work in works.values():
        (work / "token").write_text("fh_not_a_real_token\n")
        os.chmod(work / "token", 0o600)
    with ThreadPoolExecutor(max_workers=len(pythons)) as pool:
        futures = {version: pool.submit(install_and_run, python, works[version])
                   for version, python in pythons.items() if python is not None}
        return {version: future.result() for version, future in futures.items()}


@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_the_artist_and_the_coordinator_install_and_run(installs: dict[str, dict[str, object]],
                                                        version: str) -> None:
    seen = installs[version]
    artist, coordinator = seen["artist"], seen["coordinator"]
    assert isinstance(artist, subprocess.CompletedProcess) and isinstance(coordinator, subprocess.CompletedProcess)
    assert (artist.returncode, artist.stdout.strip()) == (0, f"framehive {VERSION}"), artist
    assert (coordinator.returncode, coordinator.stdout.strip()) == (0, f"framehive-coordinator {VERSION}"), coordinator
    health = seen["health"]
    assert isinstance(health, dict) and health.get("status") == "ok" and health.get("version") == VERSION, health


@pytest.mark.parametrize("version", ["3.12", "3.13"])
@pytest.mark.parametrize("key, command, extra", [("coordinator_missing", "framehive-coordinator", "coordinator"),
                                                 ("worker_missing", "framehive-worker", "worker")])
def test_a_command_whose_extra_is_missing_names_the_extra(installs: dict[str, dict[str, object]], version: str,
                                                          key: str, command: str, extra: str) -> None:
    done = installs[version][key]
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 2 and done.stdout == "", done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"{command} needs the {extra} extra"), lines[0]
    # The folder it was installed from, pasteable into a shell.
    assert re.search(rf"pip install '/\S+/framehive\[{extra}\]'$", lines[0]), lines[0]


def test_on_python_3_12_the_worker_says_what_to_do_without_bpy(installs: dict[str, dict[str, object]]) -> None:
    done = installs["3.12"]["worker_without_blender"]
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done
    assert "No bpy module exists for Python 3.12" in done.stderr and "--blender PATH" in done.stderr, done.stderr


def test_on_python_3_12_the_blender_extra_installs_no_bpy(installs: dict[str, dict[str, object]]) -> None:
    planned = installs["3.12"]["blender_extra"]
    assert isinstance(planned, list) and "framehive" in planned and "bpy" not in planned, planned


def test_on_python_3_13_the_worker_only_lacks_blender(installs: dict[str, dict[str, object]]) -> None:
    # bpy exists for 3.13 (the blender extra brings it): no hint about the Python there.
    done = installs["3.13"]["worker_without_blender"]
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 2 and "Blender not found" in done.stderr, done
    assert "No bpy module exists" not in done.stderr, done.stderr
