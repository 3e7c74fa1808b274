"""A scene whose .blend files name files outside its tree is refused at submit (issue 11, point 1).

The scenes (tests/scenes/outside_references.py, real .blend files written by bpy) are sent straight to the API,
as a hostile artist would, not through the packer: an image or a library at an absolute path or at ``//../``, a
library inside the tree whose own paths climb out of it, a path relative to Blender's working folder, a Windows
device name, every kind of reference blender-asset-tracer lists and the node inputs it does not, and fluid
domains. Each is answered 400 naming the file, the datablock and the path, and nothing is created: no job, no
task, no frame, no ledger entry, no escrow.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from framehive.coordinator.db import db
from framehive.coordinator.models import Blob

from tests.coordinator.test_scene_assets import rows
from tests.scenes import build_outside_references

HOSTILE = ["image_absolute", "image_parent", "image_cwd", "image_device", "library_absolute", "library_parent",
           "library_escapes", "fluid_absolute", "fluid_relative", "fluid_crafted"]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return build_outside_references(tmp_path_factory.mktemp("outside"))


def submit_tree(api, case: dict[str, Any], **fields: Any):  # type: ignore[no-untyped-def]
    """Upload every file of the case's tree and submit it, as the raw API allows."""
    tree = Path(case["tree"])
    shas = {path: api.upload((tree / path).read_bytes()) for path in case["files"]}
    main = case["scene_path"]
    body = {"scene": shas[main], "scene_path": main, "frames": "1-2",
            "assets": {path: sha for path, sha in shas.items() if path != main}, **fields}
    return api.post("/api/v1/jobs", json=body)


@pytest.mark.parametrize("name", HOSTILE)
def test_a_tree_that_reaches_outside_is_refused_and_nothing_is_created(app, api, cases, name):  # type: ignore[no-untyped-def]
    case = cases[name]
    expected = case["expect"][0]
    before, balance = rows(app), api.get("/api/v1/balance").get_json()

    response = submit_tree(api, case)

    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == expected["code"], error
    details = error["details"]
    assert (details["file"], details["kind"], details["path"]) == \
        (expected["file"], expected["kind"], expected["path"]), error
    assert expected["contains"] in details["datablock"], error
    assert expected["file"] in error["message"] and repr(expected["path"]) in error["message"], error
    assert details["datablock"] in error["message"] and details["reason"] in error["message"]
    assert rows(app) == before, "a refused submission leaves no job, task, frame or ledger entry"
    assert api.get("/api/v1/balance").get_json() == balance, "no escrow is charged"


def test_every_kind_of_reference_is_checked_and_listed(api, cases):  # type: ignore[no-untyped-def]
    case = cases["every_kind"]

    response = submit_tree(api, case)

    assert response.status_code == 400
    problems = response.get_json()["error"]["details"]["problems"]
    found = {(p["kind"], p["path"], p["datablock"]) for p in problems}
    for want in case["expect"]:
        assert any((kind, path) == (want["kind"], want["path"]) and want["contains"] in datablock
                   for kind, path, datablock in found), (want, sorted(found))
    assert len(problems) == len(case["expect"]), sorted(found)


def test_a_lone_blend_sent_straight_to_the_api_is_checked_too(app, api, cases):  # type: ignore[no-untyped-def]
    """The tester's attack: one .blend, no tree, its texture at an absolute path on the worker's disk."""
    blend = Path(cases["image_absolute"]["tree"]) / "shot.blend"
    before = rows(app)

    response = api.post("/api/v1/jobs", json={"scene": api.upload(blend.read_bytes()), "filename": "shot.blend"})

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "outside_reference" and error["details"]["file"] == "shot.blend"
    assert error["details"]["path"].endswith("/secret/private.png") and "absolute path" in error["message"]
    assert rows(app) == before


def test_a_tree_that_stays_inside_is_accepted_and_each_file_parsed_once(app, api, cases):  # type: ignore[no-untyped-def]
    """Library-relative paths inside the tree, a missing file inside it (it renders magenta: the packer's
    business), sequences, UDIM tiles, a disk point cache, a packed image and the built-in font all pass."""
    case = cases["inside"]

    first = submit_tree(api, case)

    assert first.status_code == 201, first.get_json()
    with app.app_context():
        infos = {path: db.session.get(Blob, hashlib.sha256((Path(case["tree"]) / path).read_bytes()).hexdigest()).info
                 for path in case["files"]}
        assert infos["shot.blend"]["blend"] and infos["lib/inner.blend"]["blend"]
        assert infos["textures/checker.png"]["blend"] is False
        assert infos["shot.blend"]["resolution"] == [64, 36]
    again = submit_tree(api, case)
    assert again.status_code == 201
    with app.app_context():
        assert {path: db.session.get(Blob, hashlib.sha256((Path(case["tree"]) / path).read_bytes()).hexdigest()).info
                for path in case["files"]} == infos, "the second submission reads the cached answers"
