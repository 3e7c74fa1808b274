"""Relative paths of the files in a scene tree (the main .blend and the textures, libraries and caches it uses).

A job names each of its files by a relative POSIX path, and the worker creates exactly those paths under a
directory of its own so that Blender finds them through ``//``-relative paths. A path is therefore the one
part of a job that could make an agent write somewhere else. The coordinator refuses bad paths on submission
and the worker checks them again before writing anything (it must not trust the coordinator either), with
this one function, so both ends agree on what a safe path is. Standard library only.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

# NAME_MAX of the common file systems (ext4, XFS, APFS; NTFS counts UTF-16 units, which is never more).
MAX_COMPONENT_BYTES = 255
# Blender keeps file paths in 1024-byte buffers (FILE_MAX); the rest is left for the worker's cache directory.
MAX_PATH_BYTES = 768
# Error messages quote at most this much of a path: it may be long, and it is someone else's input.
_SHOWN = 80
# Characters Windows refuses in a name (':' and '\\' have messages of their own, below).
_WINDOWS_FORBIDDEN = frozenset('<>"|?*')
# Device names Windows reserves in every folder, whatever the extension ("nul.png" is the NUL device there):
# CON, PRN, AUX, NUL, CONIN$, CONOUT$, and COM/LPT followed by a digit, the superscripts ¹²³ included.
_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} |
                      {f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"})


class BadPath(ValueError):
    """A path that is not a plain relative path down into the tree, or that collides with another one."""


def check_path(path: object) -> str:
    """Return ``path`` if it is a normalised relative POSIX path strictly inside the tree; else raise BadPath.

    Refused: anything but a string, empty paths, absolute paths, drive letters and NTFS streams (``:``),
    backslashes (a separator on Windows), control characters (NUL included), empty, ``.`` and ``..``
    components, and names longer than the file systems and Blender take. Names Windows cannot hold are refused
    on every platform, so that a job can render on any worker (see :func:`_check_name`), and so are invisible
    characters (zero-width, bidi controls), which make one name look like another to the people reading it.
    """
    if not isinstance(path, str):
        raise BadPath(f"a path must be a string, not {type(path).__name__}")
    shown = repr(path[:_SHOWN]) + ("…" if len(path) > _SHOWN else "")
    if not path:
        raise BadPath("a path must not be empty")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadPath(f"{shown} is not valid Unicode") from None
    if any(unicodedata.category(char) == "Cc" for char in path):
        raise BadPath(f"{shown} contains a control character")
    if any(unicodedata.category(char) in ("Cf", "Zl", "Zp") for char in path):
        raise BadPath(f"{ascii(path[:_SHOWN])} contains an invisible formatting character or a line separator "
                      "(zero-width, bidi control, byte order mark)")
    if "\\" in path:
        raise BadPath(f"{shown} contains a backslash; separate folders with '/'")
    if path.startswith("/"):
        raise BadPath(f"{shown} is absolute; paths are relative to the scene's folder tree")
    if ":" in path:
        raise BadPath(f"{shown} contains ':' (a drive letter or a Windows file stream)")
    if size > MAX_PATH_BYTES:
        raise BadPath(f"{shown} is longer than {MAX_PATH_BYTES} bytes")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise BadPath(f"{shown} is not a normalised relative path (it has an empty, '.' or '..' part)")
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise BadPath(f"{shown} has a name longer than {MAX_COMPONENT_BYTES} bytes")
        _check_name(part, shown)
    return path


def _check_name(part: str, shown: str) -> None:
    """One name of the path, as Windows sees it: no reserved device name, no trailing dot or space (Windows
    drops them, so ``a.png.`` would be ``a.png``), none of its forbidden characters."""
    if forbidden := sorted(_WINDOWS_FORBIDDEN.intersection(part)):
        raise BadPath(f"{shown} contains {''.join(forbidden)!r}, which Windows does not allow in names")
    if part[-1] in ". ":
        raise BadPath(f"{shown} has a name that ends with a dot or a space (Windows drops them)")
    device = part.split(".", 1)[0].rstrip(" ").upper()
    if device in _RESERVED:
        raise BadPath(f"{shown} uses {device}, a device name reserved by Windows (with any extension)")


def check_tree(paths: Iterable[str]) -> None:
    """Check every path, and that no two of them name the same file or a file where a folder must be.

    Names are compared case-insensitively and after Unicode normalisation, the way Windows and macOS compare
    them: ``Tex.png`` and ``tex.png`` would be one file there, so a tree holding both is refused everywhere.
    """
    files: dict[str, str] = {}  # folded path -> the path as given
    folders: dict[str, str] = {}  # folded folder -> a path inside it
    for path in paths:
        check_path(path)
        key = _fold(path)
        if key in files:
            raise BadPath(f"{path!r} and {files[key]!r} name the same file (names differing only in case "
                          "are one file on Windows and macOS)")
        if key in folders:
            raise BadPath(f"{path!r} is a file, but also the folder of {folders[key]!r}")
        parts = key.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in files:
                raise BadPath(f"{files[folder]!r} is a file, but also the folder of {path!r}")
            folders.setdefault(folder, path)
        files[key] = path


def _fold(path: str) -> str:
    return unicodedata.normalize("NFC", path).casefold()
