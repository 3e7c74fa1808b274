"""Blender versions as numbers: what a .blend says saved it, what an agent says it runs, what an artist pins.

Compared as numbers, never as text ("5.10" is newer than "5.9"). A .blend records the version that saved it as
major and minor only (its header's ``v0500`` is 5.0; framehive.protocol.blend_scan gives ``"5.0"``), so a scene needs a
Blender of at least that major.minor; any patch release of it opens the file. An agent's version is
``bpy.app.version_string`` (``"5.0.1"``, ``"5.1.0 Alpha"``): its leading numbers count, a suffix does not.

A pin names an exact Blender: ``"5.0.1"`` matches that release only, ``"5.0"`` every 5.0.x release.
"""

from __future__ import annotations

import re

# Each part of a version has at most 3 digits: the file header has 4 digits for major and minor together.
_VERSION = re.compile(r"(\d{1,3})\.(\d{1,3})(?:\.(\d{1,3}))?", re.ASCII)
MAX_TEXT = 40  # the length of a version kept on a worker or a job (messages.HELLO_TEXT_LIMITS)


class BadVersion(ValueError):
    """Text that is no Blender version."""


def release(text: object) -> tuple[int, int, int] | None:
    """An agent's Blender as (major, minor, patch), or None if its text does not start with a version."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        return None
    match = _VERSION.match(text)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def file_version(text: object) -> int | None:
    """A scene's saving version ("5.0") as the file header's number (500), or None if it is none."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        return None
    match = _VERSION.fullmatch(text)
    if match is None or match.group(3) is not None or int(match.group(2)) > 99:
        return None
    return int(match.group(1)) * 100 + int(match.group(2))


def file_version_of(release_: tuple[int, int, int]) -> int:
    """The file version a release writes (and the newest it fully reads): 5.0.1 -> 500."""
    major, minor, _patch = release_
    return major * 100 + minor


def format_file_version(number: int) -> str:
    return f"{number // 100}.{number % 100}"


def parse_pin(text: object) -> str:
    """An artist's pin, normalised ("05.0.1" -> "5.0.1"); BadVersion if it is not MAJOR.MINOR[.PATCH]."""
    match = _VERSION.fullmatch(text) if isinstance(text, str) and len(text) <= MAX_TEXT else None
    if match is None or int(match.group(2)) > 99:
        raise BadVersion(f"a Blender version is MAJOR.MINOR or MAJOR.MINOR.PATCH (such as 5.0 or 5.0.1), "
                         f"not {str(text)[:MAX_TEXT]!r}")
    return ".".join(str(int(part)) for part in match.groups() if part is not None)


def pins_matching(release_: tuple[int, int, int]) -> list[str]:
    """Every pin this release satisfies: 5.0.1 satisfies "5.0" and "5.0.1"."""
    major, minor, patch = release_
    return [f"{major}.{minor}", f"{major}.{minor}.{patch}"]


def pin_file_version(pin: str) -> int:
    """The file version of the Blender a (normalised) pin names: "5.0.1" -> 500."""
    major, minor = pin.split(".")[:2]
    return int(major) * 100 + int(minor)
