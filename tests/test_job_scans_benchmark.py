"""benchmarks/job_scans.py runs from its documented command and measures what it says (the numbers themselves are
BENCHMARKS.md's, never asserted here)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import job_scans


def test_the_job_scans_benchmark_measures_each_read_with_and_without_the_indexes(tmp_path: Path) -> None:
    out = tmp_path / "scans.json"
    assert job_scans.main(["--frames", "40", "--indexes", "--repeat", "3", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [(r["frames"], r["indexes"]) for r in results] == [(40, False), (40, True)]
    for result in results:
        reads = [result["render_reserve_ms"], result["escrow_balance_ms"], result["open_tasks_ms"]]
        assert all(ms > 0 for ms in reads), result
        assert result["per_frame_ms"] == round(reads[0] + 2 * reads[1] + reads[2], 3)
