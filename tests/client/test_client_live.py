"""The artist-side client and the ``framehive`` command against a real coordinator.

The module shares two real coordinators (subprocesses on loopback ports): an idle one that never has a
worker, so every job on it stays queued until cancelled, and one with a single real worker agent rendering
with real Blender, for the few flows that need rendered frames. Tokens are minted in-process against each
coordinator's own database.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from framehive.addon.cli import main
from framehive.addon.client import MISSING_QUERY_BATCH, ApiError, Client, sha256_file
from framehive.coordinator.dashboard import job_detail
from framehive.protocol.vocabulary import FrameState

from tests.farm import REPO, Farm, make_scene, wait_for
from tests.images import colours
from tests.live import Site, mint_tokens
from tests.scenes import build_asset_project, outside_files, snapshot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RENDER_TIMEOUT = 120
_FARMS: list[Farm] = []


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A coordinator without workers: jobs are accepted and stay queued."""
    farm = Farm(tmp_path_factory.mktemp("idle-farm"))
    _FARMS.append(farm)
    try:
        farm.start_coordinator()
        yield Site(
            farm, mint_tokens(farm, artist=("user", "artist"), other=("user", "other"), owner=("worker", "owner"))
        )
    finally:
        farm.stop()
        _FARMS.remove(farm)


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A coordinator with one real worker agent (Blender on the CPU), online before the first test."""
    farm = Farm(tmp_path_factory.mktemp("render-farm"))
    _FARMS.append(farm)
    try:
        farm.start_coordinator()
        site = Site(farm, mint_tokens(farm, artist=("user", "artist"), owner=("worker", "owner")))
        worker = farm.start_worker("w1", site.tokens["owner"])
        owner = site.client("owner")

        def online() -> bool:
            if worker.popen.poll() is not None:
                raise AssertionError(f"the worker exited:\n{farm.logs()}")
            return any(w["online"] for w in owner.workers())

        wait_for(online, 90, "worker w1 to come online")
        yield site
    finally:
        farm.stop()
        _FARMS.remove(farm)


@pytest.fixture(scope="module")
def rendered_job(render: Site, sample_scene: Path) -> dict[str, Any]:
    """A completed three-frame job on the render farm (one task, so one Blender session)."""
    api = render.client()
    job = api.submit(sample_scene, frames="1-3", chunk=3, name="rendered")
    final = api.wait(job["id"], poll=0.1, timeout=RENDER_TIMEOUT)
    assert final["state"] == "completed", final
    return final


@pytest.fixture(autouse=True)
def _farm_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """Show what the coordinators and the worker said when a test of this module fails."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for farm in _FARMS:
            print(farm.logs())


def frame_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def one_line(err: str) -> str:
    """The single line a failing command wrote to stderr (and no traceback)."""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    return err.rstrip("\n")


# ---------------------------------------------------------------------- tokens and errors


def test_token_identifies_the_account(idle: Site) -> None:
    assert idle.client().health()["status"] == "ok"
    me = idle.client().me()
    assert (me["account"]["name"], me["token"]) == ("artist", {"kind": "user"})
    assert idle.client("owner").me()["token"] == {"kind": "worker"}


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [("not-a-real-token", 401, "bad_token"), (None, 401, "missing_token")],
)
def test_bad_or_missing_token_is_refused(idle: Site, token: str | None, status: int, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        Client(idle.url, token).me()
    assert (caught.value.status, caught.value.code) == (status, code)
    with pytest.raises(ApiError) as caught:
        Client(idle.url, token).jobs()
    assert (caught.value.status, caught.value.code) == (status, code)


def test_bad_token_message(idle: Site) -> None:
    with pytest.raises(ApiError) as caught:
        Client(idle.url, "wrong").jobs()
    assert str(caught.value) == "bad_token: the token is not valid (unknown, revoked or expired) (HTTP 401)"


def test_worker_token_cannot_use_the_artist_api(idle: Site) -> None:
    with pytest.raises(ApiError) as caught:
        idle.client("owner").jobs()
    assert (caught.value.status, caught.value.code) == (403, "forbidden")
    assert "user" in caught.value.message


def test_json_error_carries_code_message_and_details(idle: Site, sample_scene: Path) -> None:
    api = idle.client()
    with pytest.raises(ApiError) as caught:
        api.submit(sample_scene, frames="1-20")
    error = caught.value
    assert (error.status, error.code) == (400, "frames_out_of_range")
    assert error.message == "frames 13-20 are outside the scene's range 1-12"
    assert error.details == {"scene_frames": "1-12"}
    with pytest.raises(ApiError) as caught:
        api.submit(sample_scene, frames="twelve")
    assert (caught.value.status, caught.value.code) == (400, "bad_frames")
    with pytest.raises(ApiError) as caught:
        api.job(99_999)
    assert (caught.value.status, caught.value.code, caught.value.message) == (404, "not_found", "no job 99999")


def test_non_json_error_gets_a_generic_message(idle: Site) -> None:
    # Outside /api the coordinator answers with Flask's HTML page, as a misconfigured proxy path would.
    with pytest.raises(ApiError) as caught:
        Client(f"{idle.url}/not-the-api", idle.tokens["artist"]).health()
    error = caught.value
    assert (error.status, error.code) == (404, "not_found")
    assert error.message == f"NOT FOUND from {idle.url}/not-the-api/api/v1/health"


# ---------------------------------------------------------------------- blobs and submitting


def test_upload_streams_a_blob_and_reports_progress(idle: Site, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = os.urandom(2 * 1024 * 1024 + 512 * 1024)  # 2.5 MiB, never uploaded before
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    api = idle.client()
    assert api.missing_blobs([digest]) == [digest]
    seen: list[tuple[int, int]] = []
    answer = api.upload_blob(path, digest, progress=lambda *p: seen.append(p))
    assert answer == {"sha256": digest, "size": len(data), "existed": False}
    # Reported at the start, once per MiB and at the end: not once per 8 KiB socket write.
    assert seen == [(0, len(data)), (1024 * 1024, len(data)), (2 * 1024 * 1024, len(data)), (len(data), len(data))]
    assert api.missing_blobs([digest]) == []
    assert api.upload_blob(path, digest)["existed"] is True


def test_upload_with_the_wrong_hash_is_refused(idle: Site, tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(4096))
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ApiError) as caught:
        idle.client().upload_blob(path, wrong)
    assert (caught.value.status, caught.value.code) == (400, "hash_mismatch")
    assert idle.client().missing_blobs([wrong]) == [wrong]


def test_resubmitting_a_scene_uploads_nothing(idle: Site, tmp_path: Path) -> None:
    # A scene of its own, so that no other test of the module has uploaded it already.
    scene = make_scene(tmp_path / "shot.blend", frames=6)
    digest = sha256_file(scene)
    api = idle.client()
    assert api.missing_blobs([digest]) == [digest]
    uploads: list[tuple[int, int]] = []
    first = api.submit(scene, frames="1-3", chunk=2, progress=lambda *p: uploads.append(p))
    size = scene.stat().st_size
    assert uploads[0] == (0, size) and uploads[-1] == (size, size)
    assert api.missing_blobs([digest]) == []

    again: list[tuple[int, int]] = []
    second = api.submit(scene, progress=lambda *p: again.append(p))
    assert again == [], "a re-submit must not upload the scene again"
    assert second["id"] != first["id"] and second["scene"] == first["scene"] == digest
    assert (second["frames"], second["total"]) == ("1-6", 6), "no frames given: the scene's own range"
    for job in (first, second):
        api.cancel(job["id"])


def test_a_scene_tree_uploads_each_file_once_with_one_progress(idle: Site, sample_scene: Path,
                                                                 tmp_path: Path) -> None:
    """Every file of a tree is its own blob: progress spans the files to upload together, a file used at two
    paths is sent once, and the next job that shares files sends only the new one."""
    texture, library = tmp_path / "wood.png", tmp_path / "props.blend"
    texture.write_bytes(os.urandom(3000))
    library.write_bytes(os.urandom(5000))
    api = idle.client()
    scene_is_new = api.missing_blobs([sha256_file(sample_scene)]) != []  # other tests of the module may have sent it
    uploads: list[tuple[int, int]] = []
    job = api.submit(sample_scene, frames="1", scene_path="shots/shot.blend", progress=lambda *p: uploads.append(p),
                     assets={"textures/wood.png": texture, "textures/wood_copy.png": texture,
                             "lib/props.blend": library})
    total = 3000 + 5000 + (sample_scene.stat().st_size if scene_is_new else 0)
    assert uploads[-1] == (total, total) and all(b[1] == total for b in uploads)
    assert [sent for sent, _ in uploads] == sorted(sent for sent, _ in uploads), "one upload, never going back"
    assert (job["scene_path"], job["asset_count"]) == ("shots/shot.blend", 3)
    assert {a["path"]: a["sha256"] for a in job["assets"]} == {
        "lib/props.blend": sha256_file(library), "textures/wood.png": sha256_file(texture),
        "textures/wood_copy.png": sha256_file(texture)}

    extra = tmp_path / "rust.png"
    extra.write_bytes(os.urandom(700))
    more: list[tuple[int, int]] = []
    second = api.submit(sample_scene, frames="1", scene_path="shots/shot.blend", progress=lambda *p: more.append(p),
                        assets={"textures/wood.png": texture, "textures/rust.png": extra})
    assert more[-1] == (700, 700), "only the new file is uploaded"
    with pytest.raises(ApiError) as caught:
        api.submit(sample_scene, frames="1", assets={"../escape.png": texture})
    assert (caught.value.status, caught.value.code) == (400, "bad_path")
    for each in (job, second):
        api.cancel(each["id"])


def test_missing_blobs_asks_in_batches(idle: Site) -> None:
    """A tree may have more files than the coordinator answers for in one query."""
    hashes = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(MISSING_QUERY_BATCH * 2 + 1)]
    assert idle.client().missing_blobs(hashes) == hashes


def test_submit_returns_the_new_job(idle: Site, sample_scene: Path) -> None:
    api = idle.client()
    job = api.submit(sample_scene, frames="1-4", chunk=2, priority=70, name="hero")
    assert isinstance(job["id"], int)
    assert (job["name"], job["filename"], job["owner"]) == ("hero", "sample.blend", "artist")
    assert (job["state"], job["frames"], job["total"], job["chunk"], job["priority"]) == ("queued", "1-4", 4, 2, 70)
    assert job["scene"] == sha256_file(sample_scene)
    assert job["resolution"] == [64, 36]
    assert job["counts"]["queued"] == 4
    assert [f["frame"] for f in job["frame_states"]] == [1, 2, 3, 4]
    assert [t["frames"] for t in job["tasks"]] == ["1-2", "3-4"]
    assert api.job(job["id"])["frame_states"] == job["frame_states"]
    unnamed = api.submit(sample_scene, frames="5")
    assert (unnamed["name"], unnamed["priority"]) == ("sample", 50), "defaults: the file's stem, priority 50"
    for each in (job, unnamed):
        api.cancel(each["id"])


def test_jobs_lists_only_the_callers_own_jobs(idle: Site, sample_scene: Path) -> None:
    api, other = idle.client(), idle.client("other")
    mine = api.submit(sample_scene, frames="1", name="mine")
    theirs = other.submit(sample_scene, frames="2", name="theirs")
    my_ids = [job["id"] for job in api.jobs()]
    assert mine["id"] in my_ids and theirs["id"] not in my_ids
    assert my_ids == sorted(my_ids, reverse=True), "newest first"
    assert [job["id"] for job in other.jobs()] == [theirs["id"]]
    with pytest.raises(ApiError) as caught:
        api.job(theirs["id"])
    assert caught.value.code == "not_found", "someone else's job does not exist for me"
    with pytest.raises(ApiError) as caught:
        api.cancel(theirs["id"])
    assert caught.value.code == "not_found"
    api.cancel(mine["id"])
    other.cancel(theirs["id"])


def test_cancel_and_cancel_again(idle: Site, sample_scene: Path) -> None:
    api = idle.client()
    job = api.submit(sample_scene, frames="1-2")
    cancelled = api.cancel(job["id"])
    assert cancelled["state"] == "cancelled" and cancelled["error"] == "cancelled by its owner"
    assert {f["state"] for f in cancelled["frame_states"]} == {"cancelled"}
    with pytest.raises(ApiError) as caught:
        api.cancel(job["id"])
    error = caught.value
    assert (error.status, error.code) == (409, "job_finished")
    assert error.message == f"job {job['id']} is already cancelled"


def test_wait_reports_each_poll_and_honours_timeout(idle: Site, sample_scene: Path) -> None:
    api = idle.client()
    job_id = api.submit(sample_scene, frames="1-2")["id"]
    updates: list[dict[str, Any]] = []
    with pytest.raises(TimeoutError):
        api.wait(job_id, poll=0.05, on_update=updates.append, timeout=1.0)
    assert len(updates) >= 2 and {u["state"] for u in updates} == {"queued"}
    api.cancel(job_id)
    assert api.wait(job_id, poll=0.05, timeout=10)["state"] == "cancelled"


def test_unrendered_frames_cannot_be_downloaded(idle: Site, sample_scene: Path, tmp_path: Path) -> None:
    api = idle.client()
    job_id = api.submit(sample_scene, frames="1-2")["id"]
    with pytest.raises(ApiError) as caught:
        api.download_frame(job_id, 1, tmp_path / "f.png")
    assert (caught.value.status, caught.value.code) == (404, "not_verified")
    with pytest.raises(ApiError) as caught:
        api.download_frame(job_id, 7, tmp_path / "f.png")
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    assert list(tmp_path.iterdir()) == [], "no partial file is left behind"
    assert api.download_job(job_id, tmp_path / "out") == []
    api.cancel(job_id)


def test_workers_of_an_account_without_agents(idle: Site) -> None:
    assert idle.client("owner").workers() == []
    assert idle.client().workers() == []


# ---------------------------------------------------------------------- the command line, no worker


def test_cli_submit_status_jobs_cancel(idle: Site, sample_scene: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = idle.connection()
    argv = ["submit", str(sample_scene), "--frames", "1-4", "--chunk", "2", "--priority", "70", "--name", "hero"]
    assert main([*argv, *conn]) == 0
    out, err = capsys.readouterr()
    found = re.fullmatch(r"submitted job (\d+) \(hero, frames 1-4, 4 frames\); follow it with `framehive status \1`\n",
                         out)
    assert found, f"submit names the job in a sentence on stdout: {out!r}"
    job_id = int(found.group(1))
    assert main([*argv, "--quiet", *conn]) == 0
    out, err = capsys.readouterr()
    assert re.fullmatch(r"\d+\n", out), "with --quiet submit prints only the job id on stdout, for scripts"
    assert f"submitted job {int(out)} (hero, frames 1-4, 4 frames)" in err
    idle.client().cancel(int(out))

    assert main(["status", str(job_id), *conn]) == 0
    summary = capsys.readouterr().out.splitlines()
    assert summary[0] == f"job {job_id} hero"
    assert "  state     queued" in summary
    assert "  frames    1-4: 0/4 done (queued 4)" in summary
    assert "  priority  70, chunk 2" in summary
    assert "  tasks     2 (queued 2)" in summary
    assert "  checks    none yet" in summary

    assert main(["status", str(job_id), "--json", *conn]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert (raw["id"], raw["name"], raw["frames"], raw["state"]) == (job_id, "hero", "1-4", "queued")

    assert main(["jobs", *conn]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["ID", "STATE", "DONE", "CREATED", "NAME"]
    assert any(re.fullmatch(rf"{job_id} +queued +0/4 +\S+ +hero", row) for row in table[1:]), table

    assert main(["cancel", str(job_id), *conn]) == 0
    assert capsys.readouterr().out == f"job {job_id} cancelled\n"
    assert main(["cancel", str(job_id), *conn]) == 1
    assert one_line(capsys.readouterr().err) == f"framehive: job_finished: job {job_id} is already cancelled (HTTP 409)"
    assert main(["status", str(job_id), *conn]) == 0
    assert "  state     cancelled" in capsys.readouterr().out.splitlines()


def test_cli_second_submit_says_nothing_to_upload(
    idle: Site, sample_scene: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = idle.client()
    api.cancel(api.submit(sample_scene, frames="1")["id"])  # the scene is on the coordinator from here on
    assert main(["submit", str(sample_scene), "--frames", "2", "-q", *idle.connection()]) == 0
    out, err = capsys.readouterr()
    assert "sample.blend and the files it uses are already on the coordinator; nothing to upload" in err
    assert "uploading:" not in err
    api.cancel(int(out))


@pytest.mark.parametrize(
    ("argv", "who", "line"),
    [
        (["status", "99999"], "artist", "framehive: not_found: no job 99999 (HTTP 404)"),
        (["cancel", "99999"], "artist", "framehive: not_found: no job 99999 (HTTP 404)"),
        (
            ["status", "1"],
            "bad",
            "framehive: the coordinator refused the token (wrong, expired or revoked): the token is not valid "
            "(unknown, revoked or expired); check --token or $FRAMEHIVE_TOKEN",
        ),
        (
            ["jobs"],
            "owner",
            "framehive: this token may not run `framehive jobs` (a user token is needed): this endpoint is for user "
            "tokens; check --token or $FRAMEHIVE_TOKEN",
        ),
    ],
    ids=["unknown-job", "cancel-unknown-job", "bad-token", "worker-token"],
)
def test_cli_errors_exit_1_with_one_line(
    idle: Site, capsys: pytest.CaptureFixture[str], argv: list[str], who: str, line: str
) -> None:
    token = "not-a-real-token" if who == "bad" else idle.tokens[who]
    assert main([*argv, "--coordinator", idle.url, "--token", token]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert one_line(err) == line


def test_cli_frames_out_of_range(idle: Site, sample_scene: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", str(sample_scene), "--frames", "10-14", *idle.connection()]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    last = err.splitlines()[-1]
    assert last == "framehive: frames_out_of_range: frames 13-14 are outside the scene's range 1-12 (HTTP 400)"
    assert "Traceback" not in err


def test_cli_wait_on_a_job_cancelled_meanwhile_exits_1(
    idle: Site, sample_scene: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = idle.client()
    known = {job["id"] for job in api.jobs()}
    problems: list[BaseException] = []

    def cancel_the_new_job() -> None:
        # Another session of the artist cancels the job while `framehive submit --wait` follows it.
        try:
            job = wait_for(
                lambda: next((j for j in api.jobs() if j["id"] not in known and j["name"] == "doomed"), None),
                30,
                "the job submitted by the command",
            )
            api.cancel(job["id"])
        except BaseException as exc:  # reported by the test thread below
            problems.append(exc)

    canceller = threading.Thread(target=cancel_the_new_job, daemon=True)
    canceller.start()
    code = main(["submit", str(sample_scene), "--name", "doomed", "--wait", "-q", *idle.connection()])
    canceller.join(30)
    assert not problems, problems
    out, err = capsys.readouterr()
    job_id = int(out)
    assert code == 1
    assert re.search(rf"^job {job_id} cancelled \d\d:\d\d \[-+\] 0/12 frames 0%  cancelled 12$", err, re.M), err
    assert err.splitlines()[-1] == f"framehive: job {job_id} cancelled: cancelled by its owner"
    assert "Traceback" not in err


def test_cli_ctrl_c_while_waiting_leaves_the_job_running(idle: Site, sample_scene: Path) -> None:
    # A real Ctrl-C (SIGINT) to a real `framehive` process, once it is following the job.
    argv = [sys.executable, "-m", "framehive.addon.cli", "submit", str(sample_scene), "--frames", "1-2", "--wait",
            "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lines: list[str] = []
    with subprocess.Popen(
        [*argv, *idle.connection()],
        cwd=REPO,
        env=env,
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        # stderr belongs to this reader alone: communicate() would race it for the last lines.
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
        reader.start()
        try:
            wait_for(
                lambda: any(re.match(r"job \d+ queued ", line) for line in list(lines)),
                30,
                "the command to show the job's progress",
            )
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            reader.join(10)
        out = proc.stdout.read() if proc.stdout else ""
    assert re.fullmatch(r"\d+\n", out), (out, lines)
    job_id = int(out)
    assert proc.returncode == 130
    assert lines[-1] == f"job {job_id} keeps running; `framehive status {job_id}`\n"
    assert not any("Traceback" in line for line in lines)
    api = idle.client()
    assert api.job(job_id)["state"] == "queued", "only the local wait stops"
    api.cancel(job_id)


# ---------------------------------------------------------------------- rendered frames (one real worker)


def test_workers_lists_the_owners_agents(render: Site) -> None:
    workers = render.client("owner").workers()
    assert [(w["name"], w["owner"], w["online"]) for w in workers] == [("w1", "owner", True)]
    assert workers[0]["blender_version"] and workers[0]["device"]
    assert render.client().workers() == [], "an artist sees no one else's agents"


def test_download_job_skips_frames_already_there(render: Site, rendered_job: dict[str, Any], tmp_path: Path) -> None:
    api = render.client()
    job_id = rendered_job["id"]
    out = tmp_path / "out"
    paths = api.download_job(job_id, out)
    assert [p.name for p in paths] == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    for entry in rendered_job["frame_states"]:
        path = out / f"frame_{entry['frame']:04d}.png"
        assert path.read_bytes().startswith(PNG_MAGIC)
        assert sha256_file(path) == entry["sha256"]

    (out / "frame_0003.png").write_bytes(b"truncated")
    progress: list[tuple[int, int]] = []
    assert api.download_job(job_id, out, progress=lambda *p: progress.append(p)) == [out / "frame_0003.png"]
    assert progress == [(1, 3), (2, 3), (3, 3)], "skipped frames count as done"
    assert sha256_file(out / "frame_0003.png") == rendered_job["frame_states"][2]["sha256"]
    assert api.download_job(job_id, out) == []
    assert frame_names(out) == ["frame_0001.png", "frame_0002.png", "frame_0003.png"], "no .part files"


def test_download_frame_checks_the_hash(render: Site, rendered_job: dict[str, Any], tmp_path: Path) -> None:
    api = render.client()
    job_id = rendered_job["id"]
    sha = rendered_job["frame_states"][0]["sha256"]
    dest = tmp_path / "frames" / "first.png"
    with pytest.raises(ApiError) as caught:
        api.download_frame(job_id, 1, dest, expected_sha256="0" * 64)
    assert (caught.value.status, caught.value.code) == (0, "hash_mismatch")
    assert caught.value.details == {"sha256": sha, "expected": "0" * 64}
    assert list(dest.parent.iterdir()) == [], "neither the frame nor a partial file is left"
    assert api.download_frame(job_id, 1, dest, expected_sha256=sha.upper()) == dest
    assert sha256_file(dest) == sha


def test_cli_submit_wait_downloads_to_default_folder(
    render: Site,
    sample_scene: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["submit", str(sample_scene), "--frames", "4-6", "--chunk", "3", "--wait", "-q",
                 *render.connection()])
    out, err = capsys.readouterr()
    assert code == 0, err
    job_id = int(out)
    assert re.search(
        rf"^job {job_id} completed \d\d:\d\d \[#{{20}}\] 3/3 frames 100%  (rendered|verified) 3$", err, re.M
    ), err
    assert err.splitlines()[-1] == f"downloaded 3 frame(s) to {Path('framehive-output', str(job_id))}"
    folder = tmp_path / "framehive-output" / str(job_id)
    assert frame_names(folder) == ["frame_0004.png", "frame_0005.png", "frame_0006.png"]
    for entry in render.client().job(job_id)["frame_states"]:
        assert sha256_file(folder / f"frame_{entry['frame']:04d}.png") == entry["sha256"]


def test_cli_status_and_download_of_a_rendered_job(
    render: Site, rendered_job: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn, job_id, out = render.connection(), str(rendered_job["id"]), tmp_path / "frames"
    assert main(["status", job_id, *conn]) == 0
    summary = capsys.readouterr().out.splitlines()
    assert "  state     completed" in summary
    assert any(re.fullmatch(r"  frames    1-3: 3/3 done \((rendered|verified) 3\)", row) for row in summary), summary
    assert "  tasks     1 (done 1)" in summary

    assert main(["download", job_id, "--out", str(out), *conn]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == f"downloaded 3 frame(s) to {out}"
    (out / "frame_0002.png").unlink()
    assert main(["download", job_id, "--out", str(out), *conn]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == f"downloaded 1 frame(s) to {out} (2 already there)"
    assert main(["download", job_id, "--out", str(out), *conn]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == f"all 3 frame(s) already in {out}"
    assert frame_names(out) == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]


@pytest.fixture(scope="module")
def asset_project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tests/scenes/asset_project.py: six files from outside the .blend's folder, one missing image."""
    return build_asset_project(tmp_path_factory.mktemp("artist") / "studio")


def test_cli_submit_packs_the_scene_with_its_files_once_allowed(
    render: Site, asset_project: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like the add-on: files from outside the .blend's folder and missing ones are listed and nothing is
    submitted until the flags allow them; then the whole tree goes, and the frame shows both textures."""
    blend, before = asset_project["blend"], snapshot(asset_project["root"])
    api = render.client()
    known = [job["id"] for job in api.jobs()]
    outside, gone = outside_files(asset_project), asset_project["missing"]
    argv = ["submit", str(blend), *render.connection()]

    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"framehive: 6 file(s) the scene uses are outside the .blend's folder {blend.parent} and would be uploaded "
        f"with it: {', '.join(outside)}; 1 file(s) the scene uses could not be found: {gone}. Blender renders "
        "missing images magenta and leaves out what missing libraries hold (File > External Data > Report Missing "
        "Files lists them); nothing was submitted. To submit anyway, pass --allow-outside and --allow-missing")
    assert main([*argv, "--allow-outside"]) == 1
    assert capsys.readouterr().err.splitlines()[-1].endswith("nothing was submitted. To submit anyway, pass "
                                                              "--allow-missing")
    assert [job["id"] for job in api.jobs()] == known, "nothing was submitted"

    code = main([*argv, "--allow-outside", "--allow-missing", "--wait", "-q", "--out", str(tmp_path / "frames")])
    out, err = capsys.readouterr()
    assert code == 0, err
    job_id = int(out)
    lines = err.splitlines()
    assert lines[0] == "packing the scene and its files", "off a terminal, no line per file read or copied"
    assert lines[1] == f"packed 6 file(s) from outside the .blend's folder, as allowed: {', '.join(outside)}"
    assert re.fullmatch(r"checking which of the 7 packed file\(s\) \(\d+\.\d MB\) the coordinator lacks",
                        lines[2]), lines
    submitted = next(i for i, line in enumerate(lines) if line.startswith(f"submitted job {job_id} (shot, "))
    uploads = lines[3:submitted]
    assert uploads and all(re.fullmatch(r"uploading: \d+\.\d of \d+\.\d MB \(\d+%\)", u) for u in uploads), lines
    assert uploads[-1].endswith(" (100%)") and len(uploads) == len(set(uploads)) <= 11, "a line per 10 % at most"
    assert lines[-1] == f"downloaded 1 frame(s) to {tmp_path / 'frames'}"
    job = api.job(job_id)
    assert (job["scene_path"], job["asset_count"]) == ("shot.blend", 6)
    assert colours(tmp_path / "frames" / "frame_0001.png") == {(0, 255, 0), (0, 0, 255), (255, 0, 0),
                                                                (255, 255, 255)}, "both textures, no magenta"
    assert snapshot(asset_project["root"]) == before, "the artist's files are untouched"



def test_the_dashboards_job_page_gets_its_frame_states_from_the_coordinator(idle: Site, sample_scene: Path) -> None:
    """job.js draws the grid's legend from the states the page carries (one vocabulary), not from a copy."""
    job = idle.client("artist").submit(sample_scene, frames="1-2", name="legend")
    with requests.Session() as browser:
        login = browser.get(f"{idle.url}/dashboard/login", timeout=30)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert csrf, login.text
        signed_in = browser.post(f"{idle.url}/dashboard/login", timeout=30,
                                 data={"token": idle.tokens["artist"], "csrf_token": csrf.group(1)})
        assert signed_in.ok, signed_in.text
        page = browser.get(f"{idle.url}/dashboard/jobs/{job['id']}", timeout=30)
    carried = re.search(r"data-frame-states='([^']*)'", page.text)
    assert carried, page.text
    assert json.loads(html.unescape(carried.group(1))) == list(job_detail.GRID_STATES)
    assert set(FrameState.ALL) < set(job_detail.GRID_STATES)  # every stored state, and the grid's own two
    script = (REPO / "coordinator" / "dashboard" / "static" / "job.js").read_text(encoding="utf-8")
    assert not any(f'"{state}"' in script for state in job_detail.GRID_STATES)
