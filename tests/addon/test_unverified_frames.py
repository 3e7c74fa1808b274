"""The add-on's watcher on a single-owner network (a real coordinator and a real agent rendering with Blender):
it shows why the job waits, brings frames no check accepted yet only when asked, marked as such and never at the
frames' own paths, and replaces them with the verified frames once a second owner's agent has checked them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from framehive.addon.client import sha256_file, unverified_path
from framehive.addon.job_watch import JobWatcher

from tests.addon.following import clients, files_under, shas
from tests.farm import wait_for
from tests.live import Site, running_site

FRAMES = 2
REASON = f"frames 1-{FRAMES} wait for a verifier of another owner: none online"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """One untrusted owner's agent: nobody may check its frames."""
    with running_site(tmp_path / "farm", workers=1, trusted_workers=False, artist=("user", "artist"),
                      second=("worker", "second-owner")) as site:
        yield site


def test_the_watcher_says_why_and_fetches_unverified_frames_only_when_asked(
        site: Site, sample_scene: Path, tmp_path: Path) -> None:
    job = site.client().submit(sample_scene, frames=f"1-{FRAMES}", chunk=1)
    out = tmp_path / "shots"
    paths = {frame: str(out / f"shot_{frame:04d}.png") for frame in range(1, FRAMES + 1)}
    watcher = JobWatcher(tmp_path / "state" / "jobs.json", clients(site), interval=0.2)
    watcher.follow(job["id"], site.url, paths)

    status = wait_for(lambda: (s := watcher.poll_once()[0]).waiting == REASON and s, 120, "the waiting reason")
    assert status.rendered == FRAMES and status.verified == 0 and status.unverified == 0
    assert files_under(out) == set(), "nothing is fetched before any check unless asked"

    watcher.fetch_unverified(job["id"])
    status = watcher.poll_once()[0]
    copies = {unverified_path(Path(p)) for p in paths.values()}
    assert status.unverified == FRAMES and files_under(out) == copies, files_under(out)
    for copy in copies:
        assert copy.name.endswith(".UNVERIFIED.png") and copy.parent.name == "unverified"
        assert b"tEXtFramehive\0UNVERIFIED" in copy.read_bytes()[:200]
    # A new watcher (Blender restarted) remembers the request and the copies.
    again = JobWatcher(tmp_path / "state" / "jobs.json", clients(site), interval=0.2)
    assert again.poll_once()[0].unverified == FRAMES

    site.farm.start_worker("w2", site.tokens["second"])
    status = again.wait(job["id"], timeout=120)
    assert status.state == "completed" and status.finished and status.waiting == "" and status.unverified == 0
    assert files_under(out) == {Path(p) for p in paths.values()}, "verified frames replaced the unverified copies"
    final = site.client().job(job["id"])
    assert {f: sha256_file(Path(p)) for f, p in paths.items()} == shas(final)
