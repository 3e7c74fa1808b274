"""A verifier that uses every field and every timing of what it receives cannot tell ringers from real checks
much better than chance: a real coordinator, agents speaking the real protocol, and the classifiers of
benchmarks/ringer_blindness.py (which BENCHMARKS.md runs on a longer job). Before ringers were drawn near the
frames a verifier is checking, "frame minus the highest frame seen" told them apart with balanced accuracy
0.84 on a 40-frame job."""

from __future__ import annotations

from pathlib import Path

from benchmarks.ringer_blindness import measure

FRAMES = 60
#: Balanced accuracy a classifier may reach here: chance (0.5) plus about 3.5 standard deviations of a guess
#: over this many samples (about 15 ringers among 70 orders), and above the 0.57 the benchmark measures on 200
#: frames (a timing signal remains: ringers come when a frame near the verifier's is free to make one of).
CEILING = 0.75


def test_ringers_cannot_be_told_from_real_checks(tmp_path: Path) -> None:
    result = measure(tmp_path, FRAMES, ringer_rate=0.5)
    cv = result["cross_validation"]
    assert cv["ringers"] >= 5 and cv["samples"] - cv["ringers"] >= 30, result["kinds"]
    assert result["features"]["frame_seen_before"]["ringers"] == 0, "never a frame the verifier already saw"
    assert cv["stump"] < CEILING and cv["logistic"] < CEILING, cv
