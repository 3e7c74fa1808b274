"""One vocabulary: the names the coordinator's API sends (its OpenAPI document, its state machine) are those of
protocol/vocabulary.py, and the add-on and the ``framehive`` command import them rather than typing them again."""

from __future__ import annotations

import ast
import importlib
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
from framehive.addon import cli, vocabulary
from framehive.coordinator import config, states
from framehive.coordinator.api import openapi
from framehive.protocol import vocabulary as shared

from tests.farm import REPO

NAMES = (shared.JobState, shared.TaskState, shared.FrameState, shared.CheckState, shared.Verdict, shared.ClaimState,
         shared.Policy, shared.Device)


def names(kind: type) -> set[str]:
    """The single names a vocabulary class defines (its sets and orders left out)."""
    return {value for key, value in vars(kind).items() if key.isupper() and isinstance(value, str)
            and key != "DEFAULT"}


def enum(field: dict[str, object]) -> set[str]:
    values = field["enum"]
    assert isinstance(values, list)
    return {value for value in values if value is not None}


def test_the_api_document_speaks_the_vocabulary() -> None:
    assert enum(openapi.JOB_FIELDS["state"]) == names(shared.JobState)
    frame_states = openapi.JOB_DETAIL_FIELDS["frame_states"]["items"]["properties"]["state"]  # type: ignore[index]
    assert enum(frame_states) == names(shared.FrameState) == set(shared.FrameState.ALL)
    task_states = openapi.JOB_DETAIL_FIELDS["tasks"]["items"]["properties"]["state"]  # type: ignore[index]
    assert enum(task_states) == names(shared.TaskState)
    assert enum(openapi.CHECK_FIELDS["state"]) == names(shared.CheckState)
    assert enum(openapi.CHECK_FIELDS["verdict"]) == names(shared.Verdict)
    device = openapi.JOB_FIELDS["requirements"]["properties"]["device"]  # type: ignore[index]
    assert enum(device) == names(shared.Device) == set(shared.Device.ALL)
    assert tuple(config.POLICIES) == shared.Policy.ALL


def test_the_coordinators_states_are_the_shared_ones_with_its_own_sets_added() -> None:
    assert issubclass(states.JobState, shared.JobState) and issubclass(states.FrameState, shared.FrameState)
    assert issubclass(states.TaskState, shared.TaskState)
    assert states.JobState.FINAL == shared.JobState.FINAL and states.TaskState.FINAL == shared.TaskState.FINAL
    assert names(shared.JobState) == states.JobState.ACTIVE | states.JobState.FINAL
    assert set(states.JOB_TRANSITIONS) <= names(shared.JobState)
    assert set(states.TASK_TRANSITIONS) <= names(shared.TaskState)


def test_the_add_on_imports_the_shared_vocabulary() -> None:
    assert vocabulary.JobState is shared.JobState and vocabulary.ClaimState is shared.ClaimState
    # framehive status shows the states the API counts, in a frame's order, and none it never sends.
    assert cli.STATE_ORDER == shared.FrameState.ALL


def test_no_add_on_module_types_a_name_of_the_vocabulary_again() -> None:
    """String constants in the add-on's code (docstrings aside) that are a state, policy or device name: each
    would be a copy to drift. The add-on's own words that happen to be such names are listed with their reason."""
    vocabulary_names = set().union(*(names(kind) for kind in NAMES))
    # A submission's last update is of kind "done" (addon/submission.py), a word of its own.
    allowed = {("cli.py", "done"), ("operators.py", "done"), ("submission.py", "done")}
    found: list[tuple[str, int, str]] = []
    for path in sorted((REPO / "addon").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and node.value in vocabulary_names and (path.name, node.value) not in allowed):
                found.append((Path(path).name, node.lineno, node.value))
    assert found == []


def load_copy(tmp_path: Path, name: str, protocol: tuple[str, ...] | None) -> ModuleType:
    """addon/vocabulary.py imported from a package ``name`` laid out like the extension: with a ``_protocol``
    subpackage holding the named modules of protocol/ (``None``: without one, as in the repository)."""
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    shutil.copy(REPO / "addon" / "vocabulary.py", package / "vocabulary.py")
    if protocol is not None:
        (package / "_protocol").mkdir()
        for module in protocol:
            shutil.copy(REPO / "protocol" / module, package / "_protocol" / module)
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module(f"{name}.vocabulary")
    finally:
        sys.path.remove(str(tmp_path))
        for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            del sys.modules[loaded]


def test_the_add_on_takes_the_zips_copy_first_and_the_package_otherwise(tmp_path: Path) -> None:
    vendored = load_copy(tmp_path, "fh_ext_vendored", ("__init__.py", "vocabulary.py"))
    assert vendored.JobState.__module__ == "fh_ext_vendored._protocol.vocabulary"
    assert vendored.JobState.FINAL == shared.JobState.FINAL
    assert load_copy(tmp_path, "fh_ext_plain", None).JobState is shared.JobState


def test_a_broken_copy_in_the_zip_is_an_error_not_a_silent_fallback(tmp_path: Path) -> None:
    with pytest.raises(ModuleNotFoundError) as caught:
        load_copy(tmp_path, "fh_ext_broken", ("__init__.py",))
    assert caught.value.name == "fh_ext_broken._protocol.vocabulary"
