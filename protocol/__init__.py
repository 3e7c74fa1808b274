"""Framehive's wire contract: the one place where messages and shared formats are defined.

Dependency-free (standard library only) so the coordinator and the worker agent both import it.
"""

PROTOCOL_VERSION = 2  # 2: checks are named by opaque handles (messages.Verify.handle)
