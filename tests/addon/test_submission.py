"""The add-on's background submission (pack, upload what is missing, create the job) against a real coordinator.

Scenes are real .blend files made by Blender: the sample scene (scripts/make_scene.py) and a scene tree whose
.blend uses an image texture by a relative path (tests/scenes/textured.py), which one real worker agent then
renders, to show that the texture travelled with the job. That texture is outside the .blend's folder: it goes
only once allowed. Whatever happens, a submission ends with exactly one "done" or "error" update, removes its
scratch folder, and creates no job unless it says "done".
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from framehive.addon.client import Client, sha256_file
from framehive.addon.submission import Options, Submission, Update

from tests.farm import REPO
from tests.images import pixels
from tests.live import Site, free_port, mint_tokens, running_site

RENDER_TIMEOUT = 120
POOR_GRANT = 5  # points of the "poor" account: less than any job costs (13 a frame)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("submit-farm"), workers=1, artist=("user", "artist")) as site:
        site.tokens.update(mint_tokens(site.farm, {"FRAMEHIVE_STARTING_GRANT": POOR_GRANT}, poor=("user", "poor")))
        yield site


@pytest.fixture(scope="module")
def textured_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``textures/checker.png`` and ``shots/shot.blend``, which uses it as ``//../textures/checker.png``."""
    tree = tmp_path_factory.mktemp("textured")
    done = subprocess.run([sys.executable, str(REPO / "tests" / "scenes" / "textured.py"), str(tree)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tree



def saved_copy(scene: Path, workdir: Path) -> Path:
    """What the operator does first: a copy of the open file inside the submission's scratch folder."""
    copy = workdir / "source" / "shot.blend"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(scene, copy)
    return copy


def options(**changes: Any) -> Options:
    base: dict[str, Any] = {"frames": "1-2", "chunk": None, "priority": 50, "policy": "adaptive",
                            "name": "addon-test"}
    return Options(**{**base, **changes})


def updates_of(submission: Submission) -> list[Update]:
    out = []
    while True:
        try:
            out.append(submission.updates.get_nowait())
        except queue.Empty:
            return out


def final(updates: list[Update]) -> Update:
    """The one "done" or "error" update, which must come last."""
    ends = [u for u in updates if u.kind in ("done", "error")]
    assert len(ends) == 1 and updates[-1] is ends[0], updates
    return ends[0]


def job_ids(client: Client) -> list[int]:
    return [job["id"] for job in client.jobs()]


class PressEscWhen(queue.Queue[Update]):
    """The update queue, with the artist pressing ESC the moment a given update is posted (from the
    submission's own thread, so the moment is exact)."""

    def __init__(self, submission: Submission, when: Callable[[Update], bool]) -> None:
        super().__init__()
        self.submission, self.when = submission, when

    def put(self, item: Update, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        if self.when(item):
            self.submission.abort()


# ---------------------------------------------------------------------- submitting


def test_a_scene_is_packed_uploaded_and_submitted(site: Site, sample_scene: Path, tmp_path: Path) -> None:
    api = site.client()
    balance = api.balance()["balance"]
    workdir = tmp_path / "work"
    submission = Submission(api, saved_copy(sample_scene, workdir), workdir,
                            options(frames="3-4", priority=70, policy="full", name="shot / Scene"))
    submission.run()

    updates = updates_of(submission)
    done = final(updates)
    assert done.kind == "done" and done.job is not None, updates
    job = api.job(done.job["id"])
    assert done.text == f"job {job['id']} submitted: 26 points held"
    assert (job["name"], job["frames"], job["priority"], job["policy"]) == ("shot / Scene", "3-4", 70, "full")
    assert (job["scene_path"], job["assets"], job["price"]) == ("shot.blend", [], 26)
    assert api.balance()["balance"] == balance - 26
    assert not workdir.exists(), "the scratch folder (copy and pack) is removed"
    assert updates[0] == Update("status", "packing the scene and its files")
    fractions = [u.fraction for u in updates if u.kind == "progress"]
    assert fractions and fractions[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in fractions), updates
    api.cancel(job["id"])

    # The same scene again: packing gives the same bytes, the coordinator has them, nothing is uploaded.
    workdir = tmp_path / "again"
    again = Submission(api, saved_copy(sample_scene, workdir), workdir, options(frames="1"))
    again.run()
    updates = updates_of(again)
    assert final(updates).kind == "done" and not [u for u in updates if u.kind == "progress"], updates
    assert final(updates).job["scene"] == job["scene"]
    api.cancel(final(updates).job["id"])


def test_a_scene_with_a_texture_renders_with_it(site: Site, textured_tree: Path, tmp_path: Path) -> None:
    api = site.client()
    submission = Submission(api, textured_tree / "shots" / "shot.blend", tmp_path / "work",
                            options(frames="1", allow_outside=True))
    submission.start()
    submission.join(120)
    done = final(updates_of(submission))
    assert done.kind == "done" and done.job is not None, done
    assert (textured_tree / "shots" / "shot.blend").is_file(), "the artist's files are never touched"
    job = api.job(done.job["id"])
    [asset] = job["assets"]
    assert asset["path"].endswith("checker.png")
    assert asset["sha256"] == sha256_file(textured_tree / "textures" / "checker.png")

    final_job = api.wait(job["id"], poll=0.1, timeout=RENDER_TIMEOUT)
    assert final_job["state"] == "completed", final_job
    frame = pixels(api.download_frame(job["id"], 1, tmp_path / "frame.png"))[..., :3].astype(int)
    magenta = (frame[..., 0] > 200) & (frame[..., 1] < 60) & (frame[..., 2] > 200)
    assert not magenta.any(), "the texture was found: a missing image renders magenta"
    orange = (frame[..., 0] > 150) & (frame[..., 1] > 60) & (frame[..., 2] < 60)
    assert orange.mean() > 0.2, np.unique(frame.reshape(-1, 3), axis=0)[:10]


# ---------------------------------------------------------------------- refusals


def test_files_from_outside_the_blends_folder_wait_for_confirmation(site: Site, textured_tree: Path,
                                                                     tmp_path: Path) -> None:
    """shots/shot.blend uses ../textures/checker.png: listed, and uploaded only once allowed."""
    api = site.client()
    before = job_ids(api)
    blend, workdir = textured_tree / "shots" / "shot.blend", tmp_path / "work"
    texture = str((textured_tree / "textures" / "checker.png").resolve())
    refused = Submission(api, blend, workdir, options())
    refused.run()

    error = final(updates_of(refused))
    assert error.kind == "error" and error.needs_confirmation
    assert (error.outside, error.missing) == ((texture,), ())
    assert error.text == (f"1 file(s) the scene uses are outside the .blend's folder {blend.parent} and would be "
                          f"uploaded with it: {texture}; nothing was submitted")
    assert job_ids(api) == before and not workdir.exists()
    assert not [u for u in updates_of(refused) if u.text.startswith(("copying", "uploading"))]

    # Allowed as listed (what the add-on's dialog does), or with the tree's root as the project folder.
    said = Update("status", f"packed 1 file(s) from outside the .blend's folder, as allowed: {texture}")
    for allowed, project in ((frozenset(error.outside), None), (False, textured_tree)):
        submission = Submission(api, blend, workdir, options(allow_outside=allowed), project=project)
        submission.run()
        updates = updates_of(submission)
        done = final(updates)
        assert done.kind == "done" and done.job is not None, done
        assert [asset["path"] for asset in done.job["assets"]] == ["assets/checker.png"]
        assert (said in updates) == (project is None), "files from outside are named even when allowed"
        api.cancel(done.job["id"])


def test_missing_files_stop_the_submission(site: Site, textured_tree: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(textured_tree, tree)
    (tree / "textures" / "checker.png").unlink()
    api = site.client()
    before = job_ids(api)
    workdir = tmp_path / "work"
    submission = Submission(api, tree / "shots" / "shot.blend", workdir, options())
    submission.run()

    error = final(updates_of(submission))
    assert error.kind == "error" and error.job is None
    texture = tree / "textures" / "checker.png"
    assert (error.missing, error.outside) == ((str(texture),), ())
    assert error.text.startswith(f"1 file(s) the scene uses could not be found: {texture}. "), error
    assert error.text.endswith("; nothing was submitted")
    assert job_ids(api) == before and not workdir.exists()

    # Ticked "Submit with Missing Files": it goes (and would render the floor magenta).
    anyway = Submission(api, tree / "shots" / "shot.blend", workdir, options(allow_missing=True))
    anyway.run()
    done = final(updates_of(anyway))
    assert done.kind == "done" and done.job is not None and done.job["assets"] == [], done
    api.cancel(done.job["id"])


def test_not_enough_points(site: Site, sample_scene: Path, tmp_path: Path) -> None:
    poor = site.client("poor")
    assert poor.balance()["balance"] == POOR_GRANT
    workdir = tmp_path / "work"
    submission = Submission(poor, saved_copy(sample_scene, workdir), workdir, options(frames="1-2"))
    submission.run()

    error = final(updates_of(submission))
    assert error.kind == "error"
    assert error.text == (f"not enough points: the job costs 26 points, your balance is {POOR_GRANT}; "
                          "nothing was submitted")
    assert job_ids(poor) == [] and poor.balance()["balance"] == POOR_GRANT
    assert not workdir.exists()


def test_coordinator_down(sample_scene: Path, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    workdir = tmp_path / "work"
    submission = Submission(Client(url, "fhu_x", timeout=5), saved_copy(sample_scene, workdir), workdir, options())
    submission.run()
    error = final(updates_of(submission))
    assert error.kind == "error"
    assert error.text.startswith(f"cannot reach the coordinator at {url}/api/v1/"), error
    assert error.text.endswith("; nothing was submitted")
    assert not workdir.exists()


@pytest.mark.parametrize(("who", "words"), [
    ("wrong", "the coordinator refused the token (wrong, expired or revoked): "),
    ("owner1", "this token may not submit jobs (a user token is needed): "),
])
def test_a_token_that_may_not_submit(site: Site, sample_scene: Path, tmp_path: Path, who: str, words: str) -> None:
    token = site.tokens.get(who, "fhu_" + "w" * 43)
    before = job_ids(site.client())
    workdir = tmp_path / "work"
    submission = Submission(Client(site.url, token), saved_copy(sample_scene, workdir), workdir, options())
    submission.run()
    error = final(updates_of(submission))
    assert error.kind == "error" and error.text.startswith(words), error
    assert job_ids(site.client()) == before and not workdir.exists()


def test_frames_the_scene_does_not_have(site: Site, sample_scene: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    submission = Submission(site.client(), saved_copy(sample_scene, workdir), workdir, options(frames="10-20"))
    submission.run()
    error = final(updates_of(submission))
    assert error.text.startswith("the coordinator refused the job: frames_out_of_range: "), error


def test_a_file_that_is_not_a_blend(site: Site, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    blend = workdir / "source" / "shot.blend"
    blend.parent.mkdir(parents=True)
    blend.write_bytes(b"not a blend file at all" * 100)
    submission = Submission(site.client(), blend, workdir, options())
    submission.run()
    error = final(updates_of(submission))
    assert error.kind == "error" and error.text.startswith("packing the scene failed: "), error
    assert not workdir.exists()


# ---------------------------------------------------------------------- ESC


def test_esc_before_anything_happens(site: Site, sample_scene: Path, tmp_path: Path) -> None:
    api = site.client()
    before = job_ids(api)
    workdir = tmp_path / "work"
    submission = Submission(api, saved_copy(sample_scene, workdir), workdir, options())
    submission.abort()
    submission.run()
    assert updates_of(submission) == [Update("error", "submission cancelled; nothing was submitted")]
    assert job_ids(api) == before and not workdir.exists()


ESC_MOMENTS: dict[str, Callable[[Update], bool]] = {
    "as packing starts": lambda update: update.text == "packing the scene and its files",
    "while packing": lambda update: update.text.startswith("reading "),  # BAT reads the .blend
    "while uploading": lambda update: update.kind == "progress",
}


@pytest.mark.parametrize("moment", list(ESC_MOMENTS))
def test_esc_while_packing_or_uploading(site: Site, textured_tree: Path, tmp_path: Path, moment: str) -> None:
    """ESC at a given update (as the status bar shows it): the submission stops there and nothing is created.

    The texture gets new bytes so that the coordinator lacks it and there is something to upload."""
    tree = tmp_path / "tree"
    shutil.copytree(textured_tree, tree)
    with (tree / "textures" / "checker.png").open("ab") as png:
        png.write(tmp_path.name.encode())  # trailing bytes: still a valid PNG, but a blob never seen
    api = site.client()
    before = job_ids(api)
    workdir = tmp_path / "work"
    submission = Submission(api, tree / "shots" / "shot.blend", workdir, options(allow_outside=True))
    submission.updates = PressEscWhen(submission, ESC_MOMENTS[moment])
    submission.start()
    submission.join(60)
    assert submission._thread is not None and not submission._thread.is_alive()

    updates = updates_of(submission)
    assert final(updates) == Update("error", "submission cancelled; nothing was submitted"), updates
    pressed = next(i for i, update in enumerate(updates) if ESC_MOMENTS[moment](update))
    uploading = [u for u in updates if u.text.startswith("uploading")]
    if moment == "while uploading":
        assert updates[pressed] is updates[-2], "the next progress report stopped the upload"
    else:
        assert not uploading and all(u.kind in ("status", "step") for u in updates[:-1]), updates
    if moment == "while packing":
        assert updates[-2].text.startswith("packing stopped"), "BAT stopped at its next step"
    assert job_ids(api) == before and not workdir.exists()


def test_a_submission_starts_once(site: Site, sample_scene: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    submission = Submission(Client(f"http://127.0.0.1:{free_port()}", "fhu_x"), saved_copy(sample_scene, workdir),
                            workdir, options())
    submission.start()
    with pytest.raises(RuntimeError, match="started already"):
        submission.start()
    submission.join(60)
    assert final(updates_of(submission)).kind == "error"
