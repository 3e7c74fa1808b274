"""Every error code the coordinator's source can answer is documented (coordinator/api/error_codes.py, which the
OpenAPI document lists), with its status, and nothing is documented that no code raises.

The codes are read from the source's syntax tree: ``ApiError(status, "code", ...)`` and ``error_response``,
the ``super().__init__(status, "code", ...)`` of ApiError subclasses, the ``_refuse("code", ...)`` helpers and
``*Error("code", ..., status=...)`` of the job and worker controls (409 unless a status is given), the code
``expect_size`` is given, the connection caps' raw 503 answer, and werkzeug's own errors under /api. A code
passed as a variable must be one of the few known below (``DYNAMIC``), or the test fails: a new one must be
added there, so that its values are checked too.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from framehive.coordinator.admission import BUSY
from framehive.coordinator.api.error_codes import ERROR_CODES
from framehive.coordinator.api.openapi import openapi_document
from framehive.protocol.blend_references import OUTSIDE, UNSUPPORTED_CACHE
from framehive.protocol.untrusted_parse import TOO_LARGE
from werkzeug.exceptions import BadRequest, MethodNotAllowed, NotFound, RequestEntityTooLarge

ROOT = Path(__file__).resolve().parents[2] / "coordinator"
NOT_THE_API = {"dashboard"}  # HTML pages and their forms: not in the OpenAPI document
# (file, the code argument's source) -> the codes it can hold, with their status
DYNAMIC = {
    ("submission.py", "TOO_LARGE"): {(400, TOO_LARGE)},
    ("scene_files.py", "code"): {(400, TOO_LARGE), (400, "not_a_blend")},
    ("scene_files.py", "first.code"): {(400, OUTSIDE), (400, UNSUPPORTED_CACHE)},
    ("api/decoding.py", "code"): set(),  # expect_size's callers' literal codes, collected below
    ("api/direct_uploads.py", "other_size_code"): set(),  # read_staged's callers' literal codes, collected below
}
# Codes handed on from elsewhere: an ApiError's own (answered as is), werkzeug's (WERKZEUG), the _refuse helpers'
# argument (their callers are read)
PASSED_ON = {("errors.py", "exc.code"), ("worker_channel.py", "exc.code"), ("errors.py", "code"),
             ("job_control.py", "code"), ("worker_control.py", "code")}
REFUSALS = {"_refuse", "JobControlError", "WorkerControlError", "ActionRefused"}  # (code, message, status=409)
WERKZEUG = (BadRequest, NotFound, MethodNotAllowed, RequestEntityTooLarge)  # what errors.py turns into codes


def _status(node: ast.Call, position: int, default: int | None) -> int:
    if len(node.args) > position and isinstance(node.args[position], ast.Constant):
        return int(node.args[position].value)
    for keyword in node.keywords:
        if keyword.arg == "status" and isinstance(keyword.value, ast.Constant):
            return int(keyword.value.value)
    assert default is not None, ast.unparse(node)
    return default


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return "super().__init__" if ast.unparse(func) == "super().__init__" else func.attr
    return ""


def _calls(path: Path, found: set[tuple[int, str]], unknown: list[str]) -> None:
    where = path.relative_to(ROOT).as_posix()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        if name in ("ApiError", "error_response", "super().__init__") and len(node.args) >= 2:
            if name == "super().__init__" and not isinstance(node.args[0], ast.Constant):
                continue  # ActionRefused passing its own arguments on
            status, code = node.args[0], node.args[1]
        elif name in REFUSALS and node.args:
            status, code = None, node.args[0]
        elif name == "expect_size" and len(node.args) == 4:
            DYNAMIC[("api/decoding.py", "code")].add((400, node.args[3].value))  # type: ignore[attr-defined]
            continue
        elif name == "read_staged" and len(node.args) == 5:
            DYNAMIC[("api/direct_uploads.py", "other_size_code")].add((400, node.args[4].value))  # type: ignore[attr-defined]
            continue
        else:
            continue
        if isinstance(code, ast.Constant):
            number = _status(node, 0, None) if status is not None else _status(node, 2, 409)
            found.add((number, code.value))
        elif (where, ast.unparse(code)) in DYNAMIC:
            found.add((0, f"{where}:{ast.unparse(code)}"))  # resolved below, once every file is read
        elif (where, ast.unparse(code)) not in PASSED_ON:
            unknown.append(f"{where}: {ast.unparse(node)[:120]}")


def raised_codes() -> set[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    unknown: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.relative_to(ROOT).parts[0] not in NOT_THE_API:
            _calls(path, found, unknown)
    assert not unknown, f"error codes passed as variables this test does not know (add them to DYNAMIC): {unknown}"
    for marker in [item for item in found if item[0] == 0]:
        found.discard(marker)
        found |= DYNAMIC[tuple(marker[1].split(":", 1))]  # type: ignore[index]
    found.add((int(BUSY.split()[1]), json.loads(BUSY.split(b"\r\n\r\n", 1)[1])["error"]["code"]))
    found |= {(exc.code, exc().name.lower().replace(" ", "_")) for exc in WERKZEUG}  # type: ignore[misc]
    return found


def test_every_code_raised_is_documented_with_its_status_and_no_other():
    raised = raised_codes()
    assert len(raised) > 40, "the source reading found too few codes: has the way errors are raised changed?"
    documented = {(status, code) for code, (statuses, _) in ERROR_CODES.items() for status in statuses}
    assert raised - documented == set(), "raised but not documented in coordinator/api/error_codes.py"
    assert documented - raised == set(), "documented but raised nowhere"


def test_the_openapi_document_lists_every_code():
    document = openapi_document()
    code = document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
    assert code["enum"] == sorted(ERROR_CODES)
    for name in ERROR_CODES:
        assert f"`{name}`" in document["info"]["description"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                assert "503" in operation["responses"], (path, method)
