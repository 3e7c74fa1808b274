"""Blobs in an S3-compatible bucket under ``prefix/ab/cdef…``, through boto3.

Credentials, region and endpoint come from boto3's standard configuration (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` for MinIO, Ceph or R2, or ``~/.aws``),
never from Framehive's own settings, so the secrets stay where the admin's other AWS tools look for them.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from .local import CHUNK, SHA256_RE, BlobTooLarge, HashMismatch

# Received bytes stay in memory up to this size, then spill to a temp file (frames are small, scenes may not be).
SPOOL_BYTES = 8 * 1024 * 1024
# How long a presigned URL works: long enough to start a download, short enough that a leaked one soon dies.
PRESIGN_SECONDS = 300
# Direct uploads land under this folder of the prefix, never at a blob's own key (see presigned_put).
STAGING = "incoming/"
# The largest object S3's CopyObject copies in one request.
SINGLE_COPY_BYTES = 5 * 1024**3
# A staged upload never confirmed is deleted this long after it was written (its URL expired long before; the
# uploader confirms right after its PUT).
STAGED_MAX_AGE = 3600.0
# An upload's handle: the random part of its staging key (what the uploader names when it confirms).
HANDLE_RE = re.compile(r"^[A-Za-z0-9_-]{32}$")


class NotUploaded(LookupError):
    """Nothing was uploaded under this handle (never, or it was confirmed or swept already)."""


@dataclass(frozen=True)
class DirectUpload:
    """Where an uploader PUTs its bytes itself: ``url`` with exactly ``headers``; ``handle`` names it afterwards."""

    handle: str
    url: str
    headers: dict[str, str]
    expires_in: int


class S3Storage:
    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        import boto3  # the s3 extra: a coordinator on local disk never needs it
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        # SigV4 presigned URLs: what AWS, MinIO, Ceph and R2 all accept (boto3 may otherwise presign with SigV2).
        self.client = client or boto3.session.Session().client("s3", config=Config(signature_version="s3v4"))
        self.scratch = Path(tempfile.mkdtemp(prefix="framehive-s3-"))  # for callers' temp files

    def key(self, sha256: str) -> str:
        if not SHA256_RE.match(sha256):
            raise ValueError("not a sha256 hex digest")
        return f"{self.prefix}{sha256[:2]}/{sha256[2:]}"

    def size(self, sha256: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))["ContentLength"])
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def exists(self, sha256: str) -> bool:
        return self.size(sha256) is not None

    def put(self, sha256: str, stream: IO[bytes], max_size: int) -> int:
        """Store ``stream`` if it hashes to ``sha256``; return its size. Nothing is stored on any error.

        The bytes are checked here before anything is sent, and sent with their sha256 checksum so the store
        refuses them if they changed on the way."""
        key = self.key(sha256)
        with tempfile.SpooledTemporaryFile(SPOOL_BYTES, dir=str(self.scratch)) as spool:
            size, digest = _receive(stream, spool, max_size)
            if digest.hexdigest() != sha256:
                raise HashMismatch(f"content hashes to {digest.hexdigest()}, not {sha256}")
            if not self.exists(sha256):  # one copy of each content
                spool.seek(0)
                self.client.put_object(Bucket=self.bucket, Key=key, Body=spool, ContentLength=size,
                                       ChecksumSHA256=base64.b64encode(digest.digest()).decode())
        return size

    def open(self, sha256: str) -> BinaryIO:
        # botocore's StreamingBody is not an io class but reads like one (read, iteration, close)
        return cast(BinaryIO, self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"])

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    @contextmanager
    def local_file(self, sha256: str) -> Iterator[Path]:
        """The blob downloaded to a temp file on this machine, deleted on exit."""
        with tempfile.TemporaryDirectory(dir=self.scratch) as folder:
            path = Path(folder) / sha256
            self.client.download_file(self.bucket, self.key(sha256), str(path))
            yield path

    def presigned_put(self, sha256: str, size: int, content_type: str) -> DirectUpload | None:
        """A presigned PUT of ``size`` bytes hashing to ``sha256``, to a fresh staging key, not the blob's own key.

        A store that checks checksums (AWS S3, and the others that implement x-amz-checksum-sha256) refuses other
        bytes or another length: both are signed. One that does not (moto, some older MinIO/Ceph) stores whatever
        comes, so nothing staged is trusted before :meth:`confirm` has read it back; and since an uploader only
        ever writes to its own staging key, it cannot overwrite a blob someone else stored."""
        handle = secrets.token_urlsafe(24)
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        params = {"Bucket": self.bucket, "Key": self._staging_key(sha256, size, handle), "ContentLength": size,
                  "ContentType": content_type, "ChecksumSHA256": checksum}
        url = self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=PRESIGN_SECONDS)
        headers = {"Content-Length": str(size), "Content-Type": content_type, "x-amz-checksum-sha256": checksum}
        return DirectUpload(handle, url, headers, PRESIGN_SECONDS)

    def read_staged(self, sha256: str, size: int, handle: str) -> bytes:
        """The bytes of a direct upload announced as ``size`` bytes (small objects only: frames); a staged object
        of another size is deleted and refused. The caller checks the hash, then :meth:`promote` or :meth:`discard`."""
        body = self._open_staged(sha256, size, handle)
        with body:
            data = body.read(size + 1)
        if len(data) != size:
            self.discard(sha256, size, handle)
            raise BlobTooLarge(f"{len(data)} bytes were uploaded, not the {size} announced")
        return data

    def confirm(self, sha256: str, size: int, handle: str) -> int:
        """Check a direct upload (streamed: scenes may be large) and make it the blob ``sha256``; return its size.
        Raises NotUploaded, BlobTooLarge (another size) or HashMismatch; a refused upload is deleted."""
        body = self._open_staged(sha256, size, handle)
        digest = hashlib.sha256()
        received = 0
        with body:
            while chunk := body.read(CHUNK):
                received += len(chunk)
                if received > size:
                    break
                digest.update(chunk)
        if received != size:
            self.discard(sha256, size, handle)
            raise BlobTooLarge(f"other than the {size} bytes announced were uploaded")
        if digest.hexdigest() != sha256:
            self.discard(sha256, size, handle)
            raise HashMismatch(f"the upload hashes to {digest.hexdigest()}, not {sha256}")
        self.promote(sha256, size, handle)
        return size

    def promote(self, sha256: str, size: int, handle: str) -> None:
        """Copy a checked staged upload to the blob's own key inside the store (unless it is there), then delete
        the staged object."""
        staged = self._staging_key(sha256, size, handle)
        if not self.exists(sha256):  # one copy of each content
            if size <= SINGLE_COPY_BYTES:  # one request (boto3's managed copy would look at the source first)
                self.client.copy_object(Bucket=self.bucket, Key=self.key(sha256),
                                        CopySource={"Bucket": self.bucket, "Key": staged})
            else:
                self.client.copy({"Bucket": self.bucket, "Key": staged}, self.bucket, self.key(sha256))  # multipart
        self.client.delete_object(Bucket=self.bucket, Key=staged)

    def discard(self, sha256: str, size: int, handle: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._staging_key(sha256, size, handle))

    def sweep_staged(self, older_than: float = STAGED_MAX_AGE) -> int:
        """Delete staged uploads last written more than ``older_than`` seconds ago (never confirmed); return how
        many. Their URLs expired long before, so nothing can still be uploading there."""
        import datetime

        cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=older_than)
        deleted = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=self.prefix + STAGING):
            for entry in page.get("Contents", []):
                if entry["LastModified"] < cutoff:
                    self.client.delete_object(Bucket=self.bucket, Key=entry["Key"])
                    deleted += 1
        return deleted

    def _staging_key(self, sha256: str, size: int, handle: str) -> str:
        """The key names the hash and the size that were announced, so a handle cannot be confirmed as another."""
        if not SHA256_RE.match(sha256) or not HANDLE_RE.match(handle) or size < 0:
            raise NotUploaded("no such upload")
        return f"{self.prefix}{STAGING}{sha256}-{size}-{handle}"

    def _open_staged(self, sha256: str, size: int, handle: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._staging_key(sha256, size, handle))["Body"]
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise NotUploaded("nothing was uploaded under this handle") from None
            raise

    def presigned_get(self, sha256: str, mimetype: str, download_name: str | None = None) -> str | None:
        """A URL that fetches the blob from the store for a few minutes, typed and named as the coordinator says."""
        params = {"Bucket": self.bucket, "Key": self.key(sha256), "ResponseContentType": mimetype}
        if download_name:
            params["ResponseContentDisposition"] = f'inline; filename="{download_name}"'
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=PRESIGN_SECONDS)


def _receive(stream: IO[bytes], sink: IO[bytes], max_size: int) -> tuple[int, Any]:
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        if size > max_size:
            raise BlobTooLarge(f"larger than the limit of {max_size} bytes")
        digest.update(chunk)
        sink.write(chunk)
    return size, digest
