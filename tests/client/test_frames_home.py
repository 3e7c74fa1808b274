"""One way frames come home and one way a job is waited for: ``framehive download`` (Client.download_job) and the
add-on's job watcher follow the same rule against the same coordinator, a scripted one on a loopback port whose job
(running, so that the watcher keeps following it) lists three verified frames. A frame already on disk with the
job's sha256 is not downloaded again, any other file at its path is replaced, and a frame changed or deleted on
disk after it came home comes again."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from framehive.addon.client import Client, sha256_file, unverified_path
from framehive.addon.frames_home import DiskHashes, on_disk
from framehive.addon.job_polling import Round, poll_until_over
from framehive.addon.job_watch import JobWatcher

from tests.scripted_http import Answer, ScriptedServer, scripted_server

TOKEN = "fhu_frames-home"
JOB = 5
FRAMES = {frame: f"frame {frame} as rendered".encode() for frame in (1, 2, 3)}


def frame_path(frame: int) -> str:
    return f"/api/v1/jobs/{JOB}/frames/{frame}"


def coordinator(state: str = "completed") -> Callable[[str, str, int], Answer]:
    """A job in ``state`` with three verified frames, and those frames."""
    return lambda method, path, _n: answer(state, method, path)


def answer(state: str, method: str, path: str) -> Answer:
    if method == "GET" and path == f"/api/v1/jobs/{JOB}":
        states = [{"frame": frame, "state": "verified", "sha256": hashlib.sha256(data).hexdigest()}
                  for frame, data in FRAMES.items()]
        job = {"id": JOB, "state": state, "total": 3, "counts": {"verified": 3}, "frame_states": states}
        return Answer(200, json.dumps(job).encode())
    if method == "GET" and path == f"/api/v1/jobs/{JOB}/claims":
        return Answer(200, b'{"claims": []}')
    for frame, data in FRAMES.items():
        if method == "GET" and path == frame_path(frame):
            return Answer(200, data, {"Content-Type": "image/png",
                                      "X-Content-SHA256": hashlib.sha256(data).hexdigest()})
    return Answer(404, b'{"error": {"code": "not_found", "message": "no"}}')


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server(coordinator("running")) as server:  # a job still followed: the watcher remembers
        yield server


def by_download(server: ScriptedServer, out: Path) -> Callable[[], None]:
    """``framehive download JOB --out DIR``, one run per call."""
    client = Client(server.url, TOKEN)

    def one_run() -> None:
        client.download_job(JOB, out)

    return one_run


def by_watcher(server: ScriptedServer, out: Path) -> Callable[[], None]:
    """The add-on following the job, one round per call: the same watcher all along, as in a Blender session."""
    watcher = JobWatcher(out.parent / "jobs.json", lambda url: Client(url, TOKEN), interval=0.01)

    def one_round() -> None:
        if JOB not in watcher.followed():
            watcher.follow(JOB, server.url, {frame: str(out / f"frame_{frame:04d}.png") for frame in FRAMES})
        [status] = watcher.poll_once()
        assert status.error == "", status

    return one_round


def fetched(server: ScriptedServer, before: int = 0) -> list[int]:
    """Frames downloaded since the first ``before`` requests."""
    return sorted(frame for seen in server.requests[before:] for frame in FRAMES if seen.path == frame_path(frame))


@pytest.mark.parametrize("bring", [by_download, by_watcher], ids=["framehive download", "job watcher"])
def test_both_paths_skip_exactly_the_frames_on_disk_with_the_jobs_sha256(
        server: ScriptedServer, tmp_path: Path, bring: Callable[[ScriptedServer, Path], Callable[[], None]]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    paths = {frame: out / f"frame_{frame:04d}.png" for frame in FRAMES}
    paths[1].write_bytes(FRAMES[1])  # home already (a download before a crash)
    paths[2].write_bytes(b"older bytes of frame 2")  # replaced by the coordinator since
    unverified_path(paths[3]).parent.mkdir()
    unverified_path(paths[3]).write_bytes(b"frame 3 before any check")
    round_of = bring(server, out)

    round_of()
    assert fetched(server) == [2, 3]
    assert {frame: path.read_bytes() for frame, path in paths.items()} == FRAMES
    assert not unverified_path(paths[3]).exists(), "the verified frame replaces its unverified copy"

    mark = len(server.requests)
    round_of()
    assert fetched(server, mark) == [], "everything is home"

    # The artist deletes frame 1 and overwrites frame 3 after they came home.
    paths[1].unlink()
    paths[3].write_bytes(b"painted over")
    mark = len(server.requests)
    round_of()
    assert fetched(server, mark) == [1, 3]
    assert {frame: path.read_bytes() for frame, path in paths.items()} == FRAMES


def test_a_restarted_watcher_does_not_read_frames_home_again(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The state file keeps each frame's stamp: a watcher started after Blender restarts finds the frames of a
    running job home without reading them (a job of 2000 large frames), and still fetches one changed meanwhile."""
    out = tmp_path / "out"
    with scripted_server(coordinator("running")) as server:
        by_watcher(server, out)()
        assert fetched(server) == [1, 2, 3]
        (out / "frame_0002.png").write_bytes(b"changed")
        read: list[Path] = []
        real = sha256_file
        monkeypatch.setattr("framehive.addon.frames_home.sha256_file",
                            lambda path: read.append(Path(path)) or real(path))

        again = JobWatcher(tmp_path / "jobs.json", lambda url: Client(url, TOKEN))
        mark = len(server.requests)
        [status] = again.poll_once()

    assert (status.state, status.downloaded, status.pending, status.error) == ("running", 3, 0, ""), status
    assert read == [out / "frame_0002.png"], "only the changed frame is read"
    assert fetched(server, mark) == [2]
    assert (out / "frame_0002.png").read_bytes() == FRAMES[2]


def test_on_disk_remembers_a_hash_only_while_the_file_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "f.png"
    path.write_bytes(b"one")
    hashes = DiskHashes()
    assert on_disk(path, hashlib.sha256(b"one").hexdigest().upper(), hashes)
    path.write_bytes(b"two")
    assert not on_disk(path, hashlib.sha256(b"one").hexdigest(), hashes)
    assert on_disk(path, hashlib.sha256(b"two").hexdigest(), hashes)
    assert not on_disk(path, "", hashes), "without the job's hash a frame is never taken as home"
    assert not on_disk(tmp_path / "absent.png", hashlib.sha256(b"two").hexdigest(), hashes)
    assert not on_disk(tmp_path, hashlib.sha256(b"two").hexdigest(), hashes), "a folder is not a frame"


def test_a_file_rewritten_under_the_same_stamp_is_read_again(tmp_path: Path) -> None:
    """Same size, same inode, same modification time (a file system's coarse clock): a hash read while the file was
    that young is not trusted later."""
    path = tmp_path / "f.png"
    path.write_bytes(b"one")
    hashes = DiskHashes()
    assert on_disk(path, hashlib.sha256(b"one").hexdigest(), hashes)
    written = path.stat().st_mtime_ns
    path.write_bytes(b"two")
    os.utime(path, ns=(written, written))
    assert not on_disk(path, hashlib.sha256(b"one").hexdigest(), hashes)
    # An old file's hash is remembered: the same rewrite then goes unseen, as the stamp promises.
    os.utime(path, ns=(written - 10**10, written - 10**10))
    assert on_disk(path, hashlib.sha256(b"two").hexdigest(), hashes)
    path.write_bytes(b"six")
    os.utime(path, ns=(written - 10**10, written - 10**10))
    assert on_disk(path, hashlib.sha256(b"two").hexdigest(), hashes)


def test_polling_gives_up_after_the_grace_counted_from_the_last_round_that_got_through() -> None:
    clock = {"now": 0.0}
    rounds = iter([Round.GOING, Round.FAILING, Round.GOING, Round.FAILING, Round.FAILING, Round.FAILING])
    seen: list[Round] = []

    def poll() -> Round:
        clock["now"] += 1.0  # each round takes a second of the fake clock
        seen.append(next(rounds))
        return seen[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("framehive.addon.job_polling.time.monotonic", lambda: clock["now"])
        patch.setattr("framehive.addon.job_polling.time.sleep", lambda _s: None)
        last = poll_until_over(poll, lambda verdict: verdict, interval=0.0, grace=2.5)
    # The third round got through at 3 s; failing rounds at 4, 5 and 6 s: the one at 6 s is past the grace.
    assert (last, len(seen)) == (Round.FAILING, 6)


def test_polling_returns_the_round_that_is_over_and_honours_the_timeout() -> None:
    rounds = iter([Round.GOING, Round.FAILING, Round.OVER])
    assert poll_until_over(lambda: next(rounds), lambda v: v, interval=0.0, grace=60) is Round.OVER
    with pytest.raises(TimeoutError, match="job 9 did not finish within 0 s"):
        poll_until_over(lambda: Round.GOING, lambda v: v, interval=0.0, grace=60, timeout=0, what="job 9")


def test_both_waits_ride_out_an_unreachable_coordinator(tmp_path: Path) -> None:
    """A round that cannot reach the coordinator is not the end of a wait, for ``framehive wait`` as for the
    watcher: the next round finds the job over (the first three GETs of each wait, a GET and the session's
    CONNECTION_RETRIES, are cut off)."""
    job = f"/api/v1/jobs/{JOB}"
    completed = coordinator()

    def flaky(method: str, path: str, n: int) -> Answer:
        return Answer(reset=True) if path == job and n in (0, 1, 2, 4, 5, 6) else completed(method, path, n)

    with scripted_server(flaky) as server:
        assert Client(server.url, TOKEN).wait(JOB, poll=0.01, timeout=30)["state"] == "completed"
        assert server.count("GET", job) == 4
        watcher = JobWatcher(tmp_path / "jobs.json", lambda url: Client(url, TOKEN), interval=0.01)
        watcher.follow(JOB, server.url, {})
        status = watcher.wait(JOB, timeout=30)
        assert server.count("GET", job) >= 8
    assert status.finished and status.error == "", status
