"""What the coordinator reads from a job's .blend files: never by running Blender, never in its own process.

Every file of a submitted tree that may be a .blend (its first bytes say so) is read by
:mod:`framehive.protocol.untrusted_parse`, in a child process under memory, CPU, time and inflated-size limits, so
that a
bomb costs the coordinator nothing but that child (issue 12). One parse gives both what the job needs (the active
scene's frame range and resolution) and every file the .blend names (checked by scene_files.check_references).
The answer is kept on the blob row (``Blob.info``, marked with :data:`SCAN_VERSION`), committed at once whatever
becomes of the submission: a file is parsed once, however many jobs use it or refused submissions name it.

Limits: the ``FRAMEHIVE_PARSE_*`` settings (framehive.protocol.untrusted_parse.ParseLimits gives the defaults).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from flask import current_app
from framehive.protocol.blend_inflate import may_be_blend
from framehive.protocol.untrusted_parse import ParseLimits, scan_files

from .config import PARSE_SETTINGS
from .db import db
from .models import Blob
from .storage_access import storage

# Bump when what a scan records changes: older records are read again.
SCAN_VERSION = 1
# The record of a file whose first bytes are no .blend's: it is not given to the parser at all.
NOT_A_BLEND = {"ok": True, "blend": False, "why": "not a .blend file"}
# The app settings that override ParseLimits' defaults, by field.
LIMIT_SETTINGS = {field: setting for setting, field in PARSE_SETTINGS.items()}


def scan_blobs(blobs: list[Blob]) -> dict[str, dict[str, Any]]:
    """Each blob's scan record by sha256: ``{"ok": true, "blend": false}`` for a file that is no .blend,
    framehive.protocol.blend_scan's answer with ``"blend": true`` for one, or ``{"ok": false, "code", "error"}``."""
    unread = list({blob.sha256: blob for blob in blobs if not _current(blob.info)}.values())
    if unread:
        with ExitStack() as local:  # an object store's blobs are downloaded for the parse, and deleted after
            paths = {blob.sha256: local.enter_context(storage().local_file(blob.sha256)) for blob in unread}
            candidates = [blob for blob in unread if may_be_blend(paths[blob.sha256])]
            answers = scan_files([paths[blob.sha256] for blob in candidates], limits(), scratch=storage().scratch)
        by_sha = {blob.sha256: answer for blob, answer in zip(candidates, answers, strict=True)}
        for blob in unread:
            blob.info = {"scan": SCAN_VERSION, **by_sha.get(blob.sha256, NOT_A_BLEND)}
        db.session.commit()
    return {blob.sha256: blob.info for blob in blobs if blob.info is not None}  # all: current or just scanned


def limits() -> ParseLimits:
    defaults = ParseLimits()
    config = current_app.config
    return ParseLimits(**{field: type(getattr(defaults, field))(config.get(setting, getattr(defaults, field)))
                          for field, setting in LIMIT_SETTINGS.items()})


def _current(info: dict[str, Any] | None) -> bool:
    return info is not None and info.get("scan") == SCAN_VERSION
