"""Which stored blobs an account may use: the ones it sent itself, and the files of its own jobs.

The store keeps one copy of each content (deduplication), but whether that copy exists is nobody else's
business: telling an account "already stored" for bytes another account uploaded would let it test whether
anyone holds a given file (a leaked shot, a private texture), and using a hash without the bytes would let it
render someone else's scene. So "is it there?" is always asked per account (``/blobs/missing``, submission),
and an account that does not hold a blob must send its bytes, which are checked against the hash, even when
the store has them already.

An account holds a blob when it uploaded it (a ``BlobUpload`` row, or it was the first uploader), when the blob
is the scene of one of its jobs, or a frame rendered for one of its jobs; and only while the blob is stored.
The other files of its jobs' trees (assets) are no source of their own: a submission names only blobs the account
holds, so each of them is one it uploaded (its BlobUpload row lives as long as the blob) or one of its scenes or
frames; counting them would only keep alive what older submissions took by hash from others.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from .db import db
from .models import Blob, BlobUpload, Frame, Job


def owned_by(account_id: int, hashes: Iterable[str]) -> set[str]:
    """The ``hashes`` that ``account_id`` may use: stored, and its own (see the module's docstring)."""
    wanted = set(hashes)
    if not wanted:
        return set()
    stored = select(Blob.sha256).where(Blob.sha256.in_(wanted))
    sources = (
        select(BlobUpload.sha256).where(BlobUpload.account_id == account_id, BlobUpload.sha256.in_(stored)),
        select(Blob.sha256).where(Blob.uploader_id == account_id, Blob.sha256.in_(wanted)),
        select(Job.scene_sha256).where(Job.account_id == account_id, Job.scene_sha256.in_(stored)),
        select(Frame.blob_sha256).join(Job, Job.id == Frame.job_id)
        .where(Job.account_id == account_id, Frame.blob_sha256.in_(stored)),
    )
    found: set[str | None] = set()
    for query in sources:
        found.update(db.session.execute(query).scalars())
        if found >= wanted:
            break
    return wanted & found
