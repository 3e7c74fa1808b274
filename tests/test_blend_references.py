"""framehive.protocol.blend_references: how a path a .blend names resolves, as Blender 5.0 resolves it, and whether it
stays
inside the scene's tree. Pure path logic; the .blend files themselves are read in tests/coordinator/
test_outside_references.py, tests/worker/test_reference_check.py and tests/e2e/test_outside_references.py."""

from __future__ import annotations

import posixpath

import pytest
from framehive.protocol.blend_references import OUTSIDE, UNSUPPORTED_CACHE, Outside, Problem, problems, resolve
from hypothesis import given
from hypothesis import strategies as st

INSIDE = [
    ("shot.blend", "//textures/wood.png", "textures/wood.png"),
    ("shots/a/shot.blend", "//../../textures/wood.png", "textures/wood.png"),  # the packer's layout
    ("lib/props.blend", "//../textures/wood.png", "textures/wood.png"),  # a library's own folder
    ("shot.blend", "//textures\\wood.png", "textures/wood.png"),  # a backslash is a separator everywhere
    ("shot.blend", "//./textures//wood.png", "textures/wood.png"),
    ("shot.blend", "///etc/passwd", "etc/passwd"),  # "//" + "/etc/passwd": Blender joins it under the folder
    ("shot.blend", "//textures/a/../wood.png", "textures/wood.png"),
    ("shot.blend", "//seq/frame_####.png", "seq/frame_####.png"),
    ("shot.blend", "//textures/wood.<UDIM>.png", "textures/wood.<UDIM>.png"),
    ("shot.blend", "//textures/wood.<UVTILE>.png", "textures/wood.<UVTILE>.png"),
    ("shot.blend", "//blendcache_shot/cloth_*.bphys", "blendcache_shot/cloth_*.bphys"),  # BAT's point cache glob
    ("shot.blend", "//", ""),  # the tree's top folder (a cache directory)
    ("shot.blend", "//cache_fluid/", "cache_fluid"),
]
OUTSIDE_PATHS = [
    ("shot.blend", "/home/owner/private.png", "absolute path"),
    ("shot.blend", "C:\\Users\\owner\\private.png", "absolute path"),
    ("shot.blend", "c:/Users/owner/private.png", "absolute path"),
    ("shot.blend", "\\\\server\\share\\private.png", "absolute path"),  # UNC
    ("shot.blend", "textures/wood.png", "relative to the folder Blender runs in"),
    ("shot.blend", "//../private.png", "above the scene's folder"),
    ("shots/shot.blend", "//../../private.png", "above the scene's folder"),
    ("lib/props.blend", "//../../textures/wood.png", "above the scene's folder"),  # fine from the top, not here
    ("shot.blend", "//textures/../../private.png", "above the scene's folder"),
    ("shot.blend", "//..\\private.png", "above the scene's folder"),
    ("shot.blend", "//textures/nul.png", "NUL"),  # the NUL device on Windows
    ("shot.blend", "//CON", "CON"),
    ("shot.blend", "//.. /private.png", "ends with a dot or a space"),  # Windows drops the space: ".."
    ("shot.blend", "//.../private.png", "ends with a dot or a space"),
    ("shot.blend", "//C:/private.png", "':'"),
    ("shot.blend", "//textures/wood.png:secret", "':'"),  # an NTFS stream
    ("shot.blend", "//textures/wo\u200bod.png", "invisible"),
]


@pytest.mark.parametrize("blend, path, resolved", INSIDE)
def test_paths_that_stay_inside_resolve_to_a_tree_path(blend: str, path: str, resolved: str) -> None:
    assert resolve(blend, path) == resolved


@pytest.mark.parametrize("blend, path, reason", OUTSIDE_PATHS)
def test_paths_that_leave_or_could_leave_the_tree_are_outside(blend: str, path: str, reason: str) -> None:
    with pytest.raises(Outside) as refused:
        resolve(blend, path)
    assert reason in str(refused.value)


@given(folders=st.lists(st.sampled_from(["a", "b"]), max_size=3),
       parts=st.lists(st.sampled_from(["..", ".", "", "a", "b", "c.png"]), min_size=1, max_size=8),
       separator=st.sampled_from(["/", "\\"]))
def test_a_resolved_path_is_where_the_operating_system_would_go_and_inside(folders: list[str], parts: list[str],
                                                                          separator: str) -> None:
    blend = "/".join([*folders, "shot.blend"])
    path = "//" + separator.join(parts)
    root = "/tree"
    # Blender appends the path to the .blend's folder as text (a leading "/" does not start afresh), then
    # normalises it; normpath does the same to the text.
    opened = posixpath.normpath("/".join([root, *folders, path[2:].replace("\\", "/")]))
    inside = opened == root or opened.startswith(root + "/")
    try:
        resolved = resolve(blend, path)
    except Outside:
        assert not inside, (blend, path, opened)
        return
    assert inside and opened == posixpath.normpath(posixpath.join(root, resolved)), (blend, path, opened)


def test_problems_come_main_first_with_the_file_the_datablock_and_the_path() -> None:
    scans = {
        "lib/props.blend": {"references": [{"datablock": 'image "wood"', "kind": "image",
                                            "path": "//../../wood.png", "sequence": False}], "unsupported": []},
        "shot.blend": {"references": [{"datablock": 'image "ok"', "kind": "image", "path": "//lib/ok.png",
                                       "sequence": False}],
                       "unsupported": [{"datablock": 'object "Domain", modifier "Fluid"', "kind": "fluid domain",
                                        "path": "//cache", "code": UNSUPPORTED_CACHE, "reason": "not rendered"}]},
    }

    found = problems(scans, main="shot.blend")

    assert [(p.code, p.file, p.path) for p in found] == [(UNSUPPORTED_CACHE, "shot.blend", "//cache"),
                                                         (OUTSIDE, "lib/props.blend", "//../../wood.png")]
    assert found[1].message == ("lib/props.blend: image \"wood\" uses '//../../wood.png': it goes above the "
                                "scene's folder")
    assert found[0].message.startswith('shot.blend: object "Domain", modifier "Fluid" (fluid domain) uses')
    assert found[1].details() == {"file": "lib/props.blend", "datablock": 'image "wood"', "kind": "image",
                                  "path": "//../../wood.png", "reason": "it goes above the scene's folder"}


def test_a_long_path_is_cut_in_the_message() -> None:
    problem = Problem(OUTSIDE, "shot.blend", 'image "x"', "image", "/" + "a" * 5000, "an absolute path")
    assert len(problem.message) < 400 and "…" in problem.message
