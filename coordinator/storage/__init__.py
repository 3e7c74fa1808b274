"""Content-addressed blob storage (sha256). ``open_storage(url)`` picks the backend from a URL."""

from __future__ import annotations

from urllib.parse import urlparse

from .local import BlobTooLarge, HashMismatch, LocalStorage

__all__ = ["BlobTooLarge", "HashMismatch", "LocalStorage", "open_storage"]


def open_storage(url: str) -> LocalStorage:
    """``file:///path`` → local disk. (S3-compatible storage comes with the scale-out work.)"""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return LocalStorage(parsed.path if parsed.scheme else url)
    raise ValueError(f"unsupported storage URL {url!r}; use file:///path")
