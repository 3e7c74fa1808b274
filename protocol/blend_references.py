"""Whether a scene's .blend files read only from their own tree: every path they name, resolved as Blender does.

A .blend names the files it uses by paths Blender opens as they are: an absolute path (``/home/owner/private.png``,
``C:\\Users\\...``), a ``//``-relative one resolved against the folder of the .blend that names it (a library's
paths against the library's folder), or a plain relative one resolved against Blender's working folder. A scene
sent straight to the API can therefore make a worker render its owner's files into the frames. So each path
found by :mod:`framehive.protocol.blend_scan` must be ``//``-relative and stay inside the tree; the coordinator checks
this
at submit and the worker again before Blender opens the file, with :func:`problems`, the one implementation.

How a path resolves, as Blender 5.0 does it (``BLI_path_abs``): only a leading ``//`` makes a path relative to the
.blend; backslashes are separators on every platform; ``..`` is applied to the text before anything is opened.
Frame patterns (``####``), UDIM and UV-tile tokens (``<UDIM>``, ``<UVTILE>``) and BAT's ``*`` for point caches
only replace characters of a name, never add a separator, so they cannot leave a folder. What a path resolves to
inside the tree must also be a name a tree may hold (``framehive.protocol.scenepaths``): ``//textures/nul.png`` stays in
the tree on Linux, but is the NUL device on a Windows worker, and ``//.. /`` is ``..`` there.

A path inside the tree to a file the tree does not hold is allowed: Blender renders it magenta, as it would on the
artist's machine; telling the artist about missing files is the packer's job (``framehive submit`` lists them).
Standard library only: the parsing happens elsewhere, in a child process (framehive.protocol.untrusted_parse).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .scenepaths import BadPath, check_path

OUTSIDE = "outside_reference"
UNSUPPORTED_CACHE = "unsupported_cache"
# Tokens Blender replaces with digits (or u1_v1) in a name, and BAT's glob for point caches: substituted before a
# resolved path is checked as a tree path, whose rules refuse '<', '>' and '*'.
_TOKENS = {"<UDIM>": "1001", "<UVTILE>": "u1_v1", "*": "0"}
_DRIVE = re.compile(r"^[A-Za-z]:")
_SHOWN = 200  # a path quoted in a message is cut here: it is someone else's input


class Outside(ValueError):
    """The path reaches outside the tree, or could."""


@dataclass(frozen=True)
class Problem:
    """One reason a scene is refused: a path of ``file`` (the .blend's path in the tree), used by ``datablock``."""

    code: str  # OUTSIDE or UNSUPPORTED_CACHE
    file: str
    datablock: str
    kind: str  # image, linked library, fluid domain, ...
    path: str
    reason: str

    @property
    def message(self) -> str:
        """``shot.blend: image "wood" uses '/home/x/wood.png': an absolute path, ...``"""
        kind = "" if self.datablock.startswith(self.kind) else f" ({self.kind})"
        path = f" uses {_shown(self.path)}" if self.path else ""
        return f"{self.file}: {self.datablock}{kind}{path}: {self.reason}"

    def details(self) -> dict[str, Any]:
        """Everything but the code, for an error's details."""
        return {key: value for key, value in asdict(self).items() if key != "code"}


def resolve(blend: str, path: str) -> str:
    """The tree path that ``path``, named by the .blend at tree path ``blend``, opens ("" for the tree's top);
    raises :class:`Outside` saying why when it is not inside the tree."""
    if not path.startswith("//"):
        if path.startswith(("/", "\\")) or _DRIVE.match(path):
            raise Outside("an absolute path, which would read the worker's own disk; paths must be relative to "
                          "the .blend (//...) and stay inside the scene's folder")
        raise Outside("a path relative to the folder Blender runs in, not to the .blend; make it //-relative")
    parts = blend.split("/")[:-1]
    for part in path[2:].replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise Outside("it goes above the scene's folder")
            parts.pop()
        else:
            parts.append(part)
    resolved = "/".join(parts)
    if resolved:
        try:
            check_path(_without_tokens(resolved))
        except BadPath as exc:
            raise Outside(f"it resolves to a name no file of the scene may have ({exc})") from None
    return resolved


def problems(scans: Mapping[str, Mapping[str, Any]], main: str | None = None) -> list[Problem]:
    """Every problem of the tree whose .blend files (by tree path) :mod:`framehive.protocol.blend_scan` read as
    ``scans``;
    the main .blend's first, then by path."""
    found = []
    for blend in sorted(scans, key=lambda path: (path != main, path)):
        scan = scans[blend]
        for item in scan.get("unsupported", ()):
            found.append(Problem(item["code"], blend, item["datablock"], item["kind"], item["path"], item["reason"]))
        for ref in scan.get("references", ()):
            try:
                resolve(blend, ref["path"])
            except Outside as exc:
                found.append(Problem(OUTSIDE, blend, ref["datablock"], ref["kind"], ref["path"], str(exc)))
    return found


def _without_tokens(path: str) -> str:
    for token, value in _TOKENS.items():
        path = path.replace(token, value)
    return path


def _shown(path: str) -> str:
    return repr(path[:_SHOWN]) + ("…" if len(path) > _SHOWN else "")
