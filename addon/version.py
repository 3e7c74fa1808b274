"""The add-on's version: ``framehive.__version__`` (framehive/__init__.py), the project's one version source.

In the repository and in an installed framehive package this module reads it from there. Blender imports the
extension without the framehive package, so scripts/build_addon.py replaces this file in the zip by one that holds
the value, and writes the same value into the zip's blender_manifest.toml.
"""

from __future__ import annotations

from framehive import __version__ as VERSION

__all__ = ["VERSION"]
