"""Dedup without an oracle, against a real coordinator: whether a blob is stored is answered per account, and
bytes another account already stored are really sent (and checked) before they count as uploaded; the store
keeps one copy."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import requests

from tests.farm import Farm


class Artist:
    def __init__(self, farm: Farm, name: str) -> None:
        self.url = farm.url
        self.headers = {"Authorization": f"Bearer {farm.token('user', name)}"}

    def missing(self, *hashes: str) -> list[str]:
        response = requests.post(f"{self.url}/api/v1/blobs/missing", json={"sha256": list(hashes)},
                                 headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["missing"]

    def put(self, sha256: str, data: bytes) -> requests.Response:
        return requests.put(f"{self.url}/api/v1/blobs/{sha256}", data=data, timeout=30,
                            headers={**self.headers, "Content-Type": "application/octet-stream"})


def stored_files(farm: Farm) -> list[Path]:
    root = farm.data_dir / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file() and "tmp" not in p.relative_to(root).parts)


def test_another_accounts_blob_is_missing_for_you_and_must_really_be_sent(farm: Farm):
    alice, bob = Artist(farm, "alice"), Artist(farm, "bob")
    secret = b"alice's unreleased shot " + os.urandom(64)
    sha = hashlib.sha256(secret).hexdigest()
    assert alice.put(sha, secret).status_code == 201
    assert alice.missing(sha) == []

    # Bob cannot learn that Alice stored it...
    assert bob.missing(sha) == [sha]
    # ... nor claim it with bytes he does not have.
    junk = bob.put(sha, b"junk")
    assert junk.status_code == 400 and junk.json()["error"]["code"] == "hash_mismatch", junk.text
    assert bob.missing(sha) == [sha]

    # Sending the bytes themselves is an upload like any other, answered as if the blob were new.
    files = stored_files(farm)
    sent = bob.put(sha, secret)
    assert sent.status_code == 201 and sent.json() == {"sha256": sha, "size": len(secret), "existed": False}
    assert bob.missing(sha) == []
    assert stored_files(farm) == files and files[0].read_bytes() == secret  # one copy, unchanged

    # Someone who uploaded a blob is told so, and need not send it again.
    again = alice.put(sha, secret)
    assert again.status_code == 200 and again.json()["existed"] is True
    # A third account still sees nothing.
    assert Artist(farm, "carol").missing(sha) == [sha]
