"""Framehive worker agent: connects to a coordinator, drives a warm Blender process and uploads frames."""

from framehive import __version__ as __version__  # the one version source
