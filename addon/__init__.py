"""Framehive Blender extension: render a scene on a Framehive network from inside Blender.

Importing this package must not import ``bpy``: the ``framehive`` command line imports ``framehive.addon.cli``, which
runs this file first outside Blender. Everything that needs ``bpy`` lives in submodules loaded by
:func:`register`. Imports inside the package are relative because Blender installs it under another name
(``bl_ext.user_default.framehive``).
"""

from __future__ import annotations


def register() -> None:
    """Called by Blender when the extension is enabled."""
    from . import registration

    registration.register()


def unregister() -> None:
    """Called by Blender when the extension is disabled or removed."""
    from . import registration

    registration.unregister()
