"""Content-addressed blob storage (sha256). ``open_storage(url)`` picks the backend from a URL."""

from __future__ import annotations

from urllib.parse import urlparse

from .local import BlobTooLarge, HashMismatch, LocalStorage
from .s3 import DirectUpload, NotUploaded, S3Storage

__all__ = ["BlobTooLarge", "DirectUpload", "HashMismatch", "LocalStorage", "NotUploaded", "S3Storage", "Storage",
           "open_storage"]

Storage = LocalStorage | S3Storage


def open_storage(url: str) -> Storage:
    """``file:///path`` → local disk; ``s3://bucket/prefix`` → an S3-compatible bucket (boto3's AWS_* settings)."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return LocalStorage(parsed.path if parsed.scheme else url)
    if parsed.scheme == "s3" and parsed.netloc:
        return S3Storage(parsed.netloc, parsed.path)
    raise ValueError(f"unsupported storage URL {url!r}; use file:///path or s3://bucket/prefix")
