"""Framehive: a crowdsourced GPU render network for Blender.

The import names of every role live under this package (``framehive.addon``, ``framehive.coordinator``,
``framehive.protocol``, ``framehive.worker_agent``), mapped by setup.cfg onto the repository's top-level folders.
"""

__version__ = "0.1.0"
