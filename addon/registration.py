"""Registration of the add-on's Blender classes (preferences, panel, operators).

Placeholder until the add-on UI exists; it is the only module that will import ``bpy`` at load time.
"""

from __future__ import annotations


def register() -> None:
    """Register the add-on's Blender classes (none yet)."""


def unregister() -> None:
    """Unregister what :func:`register` registered, in reverse order (nothing yet)."""
