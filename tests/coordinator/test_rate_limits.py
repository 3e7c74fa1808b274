"""Rate limits per token, against a real coordinator whose limits are set low in its environment.

A token that sends a burst over its budget gets 429 ``rate_limited`` with ``Retry-After``; another token, and the
same token's other budgets (writes, a worker's frame uploads), are not affected; the client waits as told.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from framehive.addon.client import Client
from framehive.coordinator.rate_limits import TokenBuckets

from tests.farm import Farm, wait_for
from tests.live import mint_tokens

READ_BURST = 5
WRITE_BURST = 3


@pytest.fixture
def limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Farm, dict[str, str]]]:
    """A coordinator allowing each token bursts of 5 reads and 3 writes, refilled at one request a second."""
    for name, value in {"READ_RATE": "1", "READ_BURST": str(READ_BURST), "WRITE_RATE": "1",
                        "WRITE_BURST": str(WRITE_BURST), "WORKER_RATE": "1",
                        "WORKER_BURST": "2"}.items():
        monkeypatch.setenv(f"FRAMEHIVE_{name}", value)
    farm = Farm(tmp_path / "farm")
    farm.start_coordinator()
    try:
        yield farm, mint_tokens(farm, alice=("user", "alice"), bob=("user", "bob"), box=("worker", "box"),
                                box2=("worker", "box2"))
    finally:
        farm.stop()


def get(farm: Farm, token: str, path: str = "/me") -> requests.Response:
    return requests.get(f"{farm.url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def missing(farm: Farm, token: str) -> requests.Response:
    return requests.post(f"{farm.url}/api/v1/blobs/missing", json={"sha256": []},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)


def assert_limited(response: requests.Response, budget: str) -> int:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert (error["code"], error["details"]["budget"]) == ("rate_limited", budget)
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 2 and error["details"]["retry_after"] == retry_after
    return retry_after


def test_a_read_burst_over_the_limit_gets_429_with_retry_after(limited):  # type: ignore[no-untyped-def]
    farm, tokens = limited
    answers = [get(farm, tokens["alice"]).status_code for _ in range(READ_BURST)]
    assert answers == [200] * READ_BURST
    retry_after = assert_limited(get(farm, tokens["alice"]), "read")
    assert get(farm, tokens["bob"]).status_code == 200, "another token has its own budget"
    assert requests.get(f"{farm.url}/api/v1/health", timeout=10).status_code == 200, "health is never limited"
    started = time.monotonic()
    wait_for(lambda: get(farm, tokens["alice"]).status_code == 200, retry_after + 5, "the bucket to refill")
    assert time.monotonic() - started <= retry_after + 1


def test_writes_have_their_own_budget(limited):  # type: ignore[no-untyped-def]
    farm, tokens = limited
    assert [missing(farm, tokens["alice"]).status_code for _ in range(WRITE_BURST)] == [200] * WRITE_BURST
    assert_limited(missing(farm, tokens["alice"]), "write")
    assert get(farm, tokens["alice"]).status_code == 200, "reads are counted apart from writes"
    assert missing(farm, tokens["bob"]).status_code == 200


def test_a_workers_reads_never_starve_its_work(limited):  # type: ignore[no-untyped-def]
    farm, tokens = limited
    while get(farm, tokens["box"], "/workers").status_code == 200:
        pass  # the worker token spends its whole read budget (5 requests at most, then 1 a second)
    upload = requests.put(f"{farm.url}/api/v1/worker/tasks/1/frames/1?attempt=1", data=b"png",
                          headers={"Authorization": f"Bearer {tokens['box']}", "X-Framehive-Worker": "1",
                                   "X-Content-SHA256": "0" * 64}, timeout=10)
    assert upload.status_code != 429, "frame uploads spend a budget of their own"
    assert upload.json()["error"]["code"] == "forbidden"  # no such agent of this token: judged by the view
    download = get(farm, tokens["box"], f"/blobs/{'0' * 64}")
    assert download.status_code == 403, "scene downloads too: the view answers (not a file of its work)"
    assert_limited(get(farm, tokens["box"], f"/blobs/{'0' * 64}"), "worker")  # that budget's burst was 2


def test_the_client_waits_as_told_and_gets_through(limited):  # type: ignore[no-untyped-def]
    farm, tokens = limited
    client = Client(farm.url, tokens["alice"], timeout=10)
    started = time.monotonic()
    for _ in range(READ_BURST + 3):
        assert client.me()["account"]["name"] == "alice"
    assert time.monotonic() - started >= 2, "three requests over the burst waited for the bucket"


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    now = [0.0]
    buckets = TokenBuckets(clock=lambda: now[0])
    assert [buckets.take((1, "read"), 2.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take((1, "read"), 2.0, 3) == pytest.approx(0.5)
    assert buckets.take((2, "read"), 2.0, 3) == 0.0, "each token its own bucket"
    now[0] = 100.0
    assert [buckets.take((1, "read"), 2.0, 3) for _ in range(4)][-1] > 0, "never more than the burst"
    assert buckets.take((1, "read"), 0.0, 3) == 0.0, "a rate of 0 is no limit"


def test_a_workers_direct_frame_and_check_uploads_spend_its_work_budget(limited):  # type: ignore[no-untyped-def]
    farm, tokens = limited
    while missing(farm, tokens["box"]).status_code != 429:
        pass  # the worker token spends its write budget (a view it may not use: 403, counted all the same)
    headers = {"Authorization": f"Bearer {tokens['box']}", "X-Framehive-Worker": "1", "X-Content-SHA256": "0" * 64}
    for suffix in ("uploads", f"uploads/{'h' * 32}"):  # asking for a presigned PUT, confirming it
        answer = requests.post(f"{farm.url}/api/v1/worker/tasks/1/frames/1/{suffix}?attempt=1", json={"size": 3},
                               headers=headers, timeout=10)
        assert answer.status_code != 429, f"a direct frame upload ({suffix}) spends the worker budget"
    while missing(farm, tokens["box2"]).status_code != 429:
        pass  # another agent's token (a budget of its own), its writes spent too
    headers = {**headers, "Authorization": f"Bearer {tokens['box2']}"}
    for suffix in ("uploads", f"uploads/{'h' * 32}"):
        answer = requests.post(f"{farm.url}/api/v1/worker/checks/{'c' * 22}/result/{suffix}", json={"size": 3},
                               headers=headers, timeout=10)
        assert answer.status_code != 429, f"a check result's direct upload ({suffix}) spends the worker budget"
