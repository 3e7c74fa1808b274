"""Typed access to the Blender data the add-on uses where bpy's type stubs (fake-bpy-module) cannot know it.

The stubs make ``context.scene``, ``context.window_manager`` and ``context.workspace`` optional (a context may
lack them, e.g. in a background Blender) and know nothing of what the add-on registers at run time (the scene's
``framehive`` settings). The operators and the panel go through these functions instead of narrowing each use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import bpy

if TYPE_CHECKING:
    from .panel import FramehiveSceneSettings


class NoScene(RuntimeError):
    """The context has no scene (an operator called from a script without one)."""


def scene(context: bpy.types.Context) -> bpy.types.Scene:
    """The context's scene; :class:`NoScene` if it has none."""
    found = context.scene
    if found is None:
        raise NoScene("Framehive: there is no scene here to submit or follow")
    return found


def settings(scene: bpy.types.Scene) -> FramehiveSceneSettings:
    """The scene's Framehive settings (``scene.framehive``, registered by panel.register_properties)."""
    return cast("FramehiveSceneSettings", scene.framehive)  # type: ignore[attr-defined]


def window_manager(context: bpy.types.Context) -> bpy.types.WindowManager:
    """The window manager, which every context of an interactive Blender has (modal operators, dialogs)."""
    manager = context.window_manager
    assert manager is not None, "a modal operator or a dialog runs in a Blender with windows"
    return manager


def status_text(context: bpy.types.Context, text: str | None) -> None:
    """Show ``text`` in the status bar (None clears it); nothing without a workspace."""
    if context.workspace is not None:
        context.workspace.status_text_set(text)
