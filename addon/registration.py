"""Registration of the add-on's Blender classes, properties and timer.

The only entry point that imports ``bpy`` modules; ``addon/__init__.py`` calls it from ``register()`` so that
the ``framehive`` command line can import the package without Blender.
"""

from __future__ import annotations

import bpy

from . import job_operators, operators, panel, preferences, session

CLASSES = (*preferences.CLASSES, *operators.CLASSES, *job_operators.CLASSES, *panel.CLASSES)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    panel.register_properties()
    session.start()


def unregister() -> None:
    session.stop()
    panel.unregister_properties()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
