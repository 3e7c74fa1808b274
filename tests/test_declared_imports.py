"""Every third-party module the coordinator and the worker agent import is declared in their extras of setup.cfg
(not only pulled in by another package: frame_analysis.py imported scipy, which only imagehash brought)."""

from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Which extras install each side (the protocol/ code it imports is covered by the same extras).
SIDES = {"coordinator": ("coordinator", "postgres", "s3"), "worker_agent": ("worker", "blender")}
# Modules whose types a declared package's own API hands out (Flask's werkzeug exceptions, boto3's botocore
# errors, flask-sock's ConnectionClosed): installed with that package, for as long as it is declared.
COMPANIONS = {"werkzeug": "flask", "botocore": "boto3", "simple_websocket": "flask-sock"}


def declared(names: tuple[str, ...]) -> set[str]:
    """Distribution names (normalised) listed in the extras ``names``."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "setup.cfg")
    lines = [line for name in names for line in parser["options.extras_require"][name].splitlines()]
    return {re.split(r"[\s\[<>=!;~]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
            for line in lines if line.strip() and not line.strip().startswith("%")}


def imported(folder: str) -> set[str]:
    """Top-level names of the absolute imports in ``folder`` and in protocol/ (which it uses)."""
    names: set[str] = set()
    for path in [*(REPO / folder).rglob("*.py"), *(REPO / "protocol").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"framehive", "__future__"}


@pytest.mark.parametrize("folder", sorted(SIDES))
def test_every_third_party_import_is_declared(folder: str) -> None:
    providers = packages_distributions()
    wanted = declared(SIDES[folder])
    undeclared = {name: providers.get(name) for name in imported(folder) if COMPANIONS.get(name) not in wanted
                  and not {d.lower().replace("_", "-") for d in providers.get(name, [])} & wanted}
    assert not undeclared, f"{folder}/ imports modules no extra of {SIDES[folder]} declares: {undeclared}"
