"""Framehive worker agent: connects to a coordinator, drives a warm Blender process and uploads frames."""

__version__ = "0.1.0"
