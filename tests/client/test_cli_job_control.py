"""``framehive pause | resume | requeue | priority`` against a real coordinator without workers (so a job stays
where the commands put it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from framehive.addon.cli import main

from tests.live import Site, running_site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("control-farm"), artist=("user", "artist"),
                      other=("user", "other")) as site:
        yield site


def run(site: Site, capsys: pytest.CaptureFixture[str], *argv: str, who: str = "artist") -> tuple[int, str, str]:
    code = main([*argv, *site.connection(who)])
    out, err = capsys.readouterr()
    return code, out, err


def test_pause_priority_resume_requeue(site: Site, sample_scene: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = site.client().submit(sample_scene, frames="1-2", chunk=1)["id"]
    assert run(site, capsys, "pause", str(job)) == (0, f"job {job} paused\n", "")
    code, _, err = run(site, capsys, "pause", str(job))
    assert code == 1 and err == f"framehive: not_pausable: job {job} is paused; only a queued or running job can " \
                                f"be paused (HTTP 409)\n"
    assert run(site, capsys, "priority", str(job), "80") == (0, f"job {job} paused, priority 80\n", "")
    code, _, err = run(site, capsys, "priority", str(job), "101")
    assert code == 1 and err.startswith("framehive: bad_priority: ")
    assert run(site, capsys, "resume", str(job)) == (0, f"job {job} queued\n", "")
    assert run(site, capsys, "requeue", str(job)) == (0, f"job {job} queued, 0 task(s) requeued\n", "")
    code, _, err = run(site, capsys, "pause", str(job), who="other")
    assert code == 1 and err == f"framehive: not_found: no job {job} (HTTP 404)\n", "someone else's job"
    assert (site.client().job(job)["state"], site.client().job(job)["priority"]) == ("queued", 80)
    site.client().cancel(job)
    code, _, err = run(site, capsys, "requeue", str(job))
    assert code == 1 and "job_finished" in err


def test_priority_needs_a_whole_number(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(site, capsys, "priority", "1", "high")
    assert code == 2 and "invalid int value: 'high'" in err
