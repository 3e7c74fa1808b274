"""Paths of a scene tree's files: plain downward paths pass, anything that could leave the tree or alias
another file is refused (the same function guards the coordinator's submissions and the worker's disk)."""

from __future__ import annotations

import pytest
from framehive.protocol.scenepaths import MAX_COMPONENT_BYTES, MAX_PATH_BYTES, BadPath, check_path, check_tree

GOOD = [
    "scene.blend",
    "shots/shot.blend",
    "textures/checker.png",
    "lib/sphere.blend",
    "caches/fluid/data_0001.vdb",
    "textures/wood grain (2).png",  # spaces and brackets are ordinary names
    "textures/ñandú.png",
    ".hidden/x",  # dot files are names like any other
    "a..b/c...png",  # dots inside a name are not '..'
    "n" * MAX_COMPONENT_BYTES,
    "/".join(["d" * 100] * 7)[:MAX_PATH_BYTES],
]

HOSTILE = {
    "": "empty",
    "/etc/passwd": "absolute",
    "//server/share/x.png": "absolute",
    "../x.png": "normalised",
    "textures/../../x.png": "normalised",
    "a/..": "normalised",
    "..": "normalised",
    ".": "normalised",
    "./a.png": "normalised",
    "a/./b.png": "normalised",
    "a//b.png": "normalised",
    "a/": "normalised",
    "C:/Windows/x.png": "drive",
    "C:x.png": "drive",
    "tex.png:stream": "stream",
    "..\\..\\x.png": "backslash",
    "textures\\x.png": "backslash",
    "a\x00b.png": "control",
    "a\nb.png": "control",
    "a\x7fb.png": "control",
    "a\x85b.png": "control",
    "x\udc80.png": "Unicode",
    "n" * (MAX_COMPONENT_BYTES + 1): "longer than",
    "é" * 128: "longer than",  # 256 bytes in UTF-8, 128 characters
    "/".join(["d" * 200] * 4): "longer than",
}


@pytest.mark.parametrize("path", GOOD)
def test_plain_relative_paths_pass(path: str) -> None:
    assert check_path(path) == path


@pytest.mark.parametrize(("path", "reason"), HOSTILE.items(), ids=[repr(p)[:40] for p in HOSTILE])
def test_hostile_paths_are_refused_with_a_reason(path: str, reason: str) -> None:
    with pytest.raises(BadPath, match=reason):
        check_path(path)


@pytest.mark.parametrize("value", [None, 7, b"scene.blend", ["a"]])
def test_only_strings_are_paths(value: object) -> None:
    with pytest.raises(BadPath, match="string"):
        check_path(value)


def test_a_tree_of_distinct_files_passes() -> None:
    check_tree(["shots/shot.blend", "textures/checker.png", "textures/wood.png", "lib/sphere.blend"])


@pytest.mark.parametrize("paths", [
    ["textures/a.png", "textures/a.png"],
    ["textures/Tex.png", "textures/tex.png"],  # one file on Windows and macOS
    ["Textures/a.png", "textures/b.png", "TEXTURES/a.png"],
    ["textures/caf\u00e9.png", "textures/cafe\u0301.png"],  # NFC and NFD spell the same name
], ids=["same", "case", "folder case", "unicode normalisation"])
def test_paths_naming_one_file_collide(paths: list[str]) -> None:
    with pytest.raises(BadPath, match="same file"):
        check_tree(paths)


@pytest.mark.parametrize("paths", [
    ["textures", "textures/a.png"],
    ["textures/a.png", "textures"],
    ["lib/x.blend", "LIB/x.blend/inner.png"],
], ids=["file first", "folder first", "deeper, other case"])
def test_a_file_cannot_also_be_a_folder(paths: list[str]) -> None:
    with pytest.raises(BadPath, match="also the folder"):
        check_tree(paths)


def test_a_tree_with_one_hostile_path_is_refused() -> None:
    with pytest.raises(BadPath, match="normalised"):
        check_tree(["shots/shot.blend", "textures/ok.png", "../outside.png"])


# Names Windows cannot hold, or that would hold something else there: refused for everyone, so a job renders on
# every worker or on none (and a name that looks like another, through invisible characters, never reaches one).
WINDOWS_HOSTILE = {
    "CON": "reserved",
    "textures/nul.png": "reserved",
    "textures/NUL.tar.gz": "reserved",
    "Aux.blend": "reserved",
    "prn": "reserved",
    "com1.png": "reserved",
    "lpt9/x.png": "reserved",
    "COM0": "reserved",
    "com\u00b9.png": "reserved",  # COM¹: Windows treats the superscript digits as device numbers too
    "LPT\u00b3": "reserved",
    "conin$.png": "reserved",
    "nul .png": "reserved",  # Windows drops the spaces before the extension: still NUL
    "textures/wood.": "ends with",
    "textures./wood.png": "ends with",
    "wood.png ": "ends with",
    "shots /shot.blend": "ends with",
    "a<b.png": "Windows",
    "a>b.png": "Windows",
    'a"b.png': "Windows",
    "a|b.png": "Windows",
    "a?b.png": "Windows",
    "a*b.png": "Windows",
    "tex\u200b.png": "invisible",  # zero-width space
    "tex\u200f.png": "invisible",  # right-to-left mark
    "gnp.\u202eexe.png": "invisible",  # right-to-left override: shows as 'gnp.gnp.exe'
    "tex\u2066.png": "invisible",  # left-to-right isolate
    "tex\u2069.png": "invisible",  # pop directional isolate
    "\ufefftex.png": "invisible",  # byte order mark
    "tex\u2060.png": "invisible",  # word joiner
    "tex\u00ad.png": "invisible",  # soft hyphen
    "tex\u2028.png": "separator",  # line separator
}

WINDOWS_GOOD = [
    "console.png",  # only the exact device names are reserved
    "nul_texture.png",
    "com10.png",
    "lpt.png",
    "textures/con-crete.png",
    "my.con",  # a reserved name as the extension is fine
    " leading space.png",
    "tex.ture.png",
]


@pytest.mark.parametrize(("path", "reason"), WINDOWS_HOSTILE.items(), ids=[ascii(p)[:40] for p in WINDOWS_HOSTILE])
def test_names_windows_cannot_hold_are_refused_everywhere(path: str, reason: str) -> None:
    with pytest.raises(BadPath, match=reason):
        check_path(path)


@pytest.mark.parametrize("path", WINDOWS_GOOD)
def test_names_close_to_reserved_ones_pass(path: str) -> None:
    assert check_path(path) == path
