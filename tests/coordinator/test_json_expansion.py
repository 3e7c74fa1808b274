"""A JSON body within the size limit that would grow many times over once parsed (millions of tiny values:
``[[],[],...]`` is 3 bytes a list on the wire and about 60 bytes a list in Python) is refused before it is parsed:
400 too_many_values, and the coordinator's peak memory (its own process, from /proc) barely moves."""

from __future__ import annotations

import hashlib
import json

import requests

from tests.farm import Farm
from tests.proc_stats import MIB, peak_rss, reset_peak_rss
from tests.protocol_worker import error_of

# Reading an 8 MiB body and answering it; the parsed body below would take some 400 MiB.
MEMORY_BOUND = 64 * MIB


def post(farm: Farm, token: str, body: bytes) -> requests.Response:
    return requests.post(f"{farm.url}/api/v1/blobs/missing", data=body, timeout=60, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def test_a_body_of_millions_of_tiny_values_is_refused_before_it_is_parsed(farm: Farm):
    token = farm.token("user", "artist")
    bomb = b'{"sha256": [' + b",".join([b"[]"] * (2_700_000)) + b"]}"  # under the 8 MiB JSON limit
    assert len(bomb) < 8 * MIB
    pid = farm.serving_pid()
    reset_peak_rss(pid)
    before = peak_rss(pid)
    response = post(farm, token, bomb)
    grown = peak_rss(pid) - before
    assert grown < MEMORY_BOUND, f"the coordinator's peak memory grew by {grown / MIB:.0f} MiB"
    assert response.status_code == 400 and error_of(response) == "too_many_values", response.text
    # The largest honest body of this kind (the most hashes /blobs/missing takes) still passes.
    sha = hashlib.sha256(b"x").hexdigest()
    honest = post(farm, token, json.dumps({"sha256": [sha] * 10_000}).encode())
    assert honest.status_code == 200 and honest.json()["missing"] == [sha], honest.text
