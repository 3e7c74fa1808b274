"""Benchmark: what verification catches, and what it costs.

Run from the repository root with the venv that has ``bpy``::

    .venv/bin/python -m benchmarks.verification [--jobs 2000] [--frames 100] [--regions 400] [--json PATH]
                                                [--small-repeats 30] [--bigger-repeats 10] [--seed 0]

Three parts, all on real Cycles renders of the sample scene (``scripts/make_scene.py``, CPU):

(a) **Per-check detection probability d** of every cheating strategy: the renders and region draws of
    ``scripts/calibrate.py`` (imported, not copied): honest frames, honest variants and the cheats, each
    compared over ``--regions`` random regions (``draw_region``) with the verifier's region render, in strict
    mode (same device class, shipped ``STRICT_*`` thresholds) and cross mode (another device class, a tolerance
    calibrated by ``calibrate_cross``). Also: how often a held-out honest pair falls outside a cross tolerance
    calibrated on N regions.
(b) **Monte-Carlo over jobs** of ``--frames`` frames with the real ``trust.check_rate`` and ``draw_region``:
    a renderer fakes a fraction q of its frames (positions random, fixed before the keys are revealed); every
    task of ``chunk`` frames has one key (a uniform frame of the task, a region, a draw), used when
    ``draw < check_rate(trust)``. A check of a faked frame fails when its region holds a pixel that differs
    from the verifier's render by more than ``STRICT_PIXEL_TOLERANCE`` (real masks of the rendered cheats; the
    tamper is placed anew by ``draw_region`` for each faked frame); that rule is checked against ``decide`` on
    every region of part (a). Two numbers per case: the share of ``--jobs`` simulated jobs in which the cheater
    is caught (*simulated*), and the same probability computed from the measured d and the simulated check
    counts (*expected*: exact in expectation, so it resolves 99.9 % where 2000 jobs cannot). Expected jobs until
    caught follow a career of jobs (trust carried over, reset never: the career ends at the first catch).
    Honest workers go through the same simulation: every failed check would be a false reject.
(c) **Overhead**: in one warm process per resolution, full frames and region renders (the region plus
    ``checks.MARGIN`` px, as verifiers render them; and without the margin) timed side by side, interleaved in
    a rotating order; overhead = checks per frame x (region time / frame time), for new and trusted workers.

Markdown tables go to stdout, progress to stderr; ``--json`` also writes every number.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.util
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from framehive.coordinator import config
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator.verification.checks import MARGIN
from framehive.coordinator.verification.keys import REGION_FRACTION, SPOT_FRACTION
from framehive.coordinator.verification.trust import BURN_IN, FLOOR, check_rate
from framehive.worker_agent.blender import BlenderLauncher, RenderProcess

from benchmarks import comparison
from benchmarks.warm_blender import Scene, machine, make_scene

REPO = Path(__file__).resolve().parents[1]


def load_calibrate() -> ModuleType:
    """``scripts/calibrate.py`` as a module (``scripts`` is not a package)."""
    spec = importlib.util.spec_from_file_location("framehive_calibrate", REPO / "scripts" / "calibrate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


cal = load_calibrate()

STRATEGIES = ("blank", "adjacent_frame", "other_scene", "low_samples", "upscaled", "tamper")
FRACTIONS = (0.01, 0.05, 0.20, 1.00)
#: The smallest trust whose check rate is the floor (trust.check_rate: max(FLOOR, BURN_IN / trust)).
FLOOR_TRUST = math.ceil(BURN_IN / FLOOR)
#: Placements of the fakes averaged for the expected survival of k checked tasks.
PLACEMENTS = 10_000
#: draw_region draws behind each strategy's d in the simulation's own model.
MODEL_DRAWS = 20_000
#: Careers longer than this many jobs are cut (never reached: careers reach the floor within ~200 jobs).
MAX_CAREER_JOBS = 5_000
#: Calibration sizes (regions) for the held-out cross test, and random splits per size.
CROSS_SIZES = (30, 60, 100, 200)
CROSS_SPLITS = 200
#: Extra verification renders per check: audits of passes, and ringers (10 % of assignments are ringers).
EXTRA_PER_CHECK = config.AUDIT_RATE + config.RINGER_RATE / (1 - config.RINGER_RATE)

#: Share of the frames no region check covers that get a spot check (the shipped default).
SPOT_RATE = config.SPOT_RATE
#: Frame size of the geometric spot-vs-tamper model (a spot is 1/256 of it; at 64x36 it is the 8x8 minimum).
PRODUCTION = (1920, 1080)

SMALL = Scene("test scene", 64, 36, 8, 12)
BIGGER = Scene("bigger", 320, 180, 32, 4)
LARGE = Scene("larger", 960, 540, 32, 4)


@dataclass(frozen=True)
class WorkerRow:
    """A renderer's state for a job: trust at its start, how trust moves during it, and the chunk size."""

    label: str
    trust: int
    instant: bool  # trust grows with each passed check during the job (else: checks decided after the job)
    chunk: int


ROWS = (
    WorkerRow("new, checks decided after the job (every task checked)", 0, False, 1),
    WorkerRow("new, trust grows as checks pass", 0, True, 1),
    WorkerRow("new (every task checked either way)", 0, True, 10),
    WorkerRow("trusted (rate at the 5 % floor)", FLOOR_TRUST, True, 1),
    WorkerRow("trusted (rate at the 5 % floor)", FLOOR_TRUST, True, 10),
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- (a) detection


def cross_held_out(records: dict, sizes: tuple[int, ...], splits: int, seed: int) -> list[dict[str, Any]]:
    """Calibrate on N random regions' honest pairs, judge the other regions' honest pairs; per N and split."""
    count = len(records["honest"]["cross"])
    rng = random.Random(seed)
    out = []
    for size in sizes:
        if 2 * size > count:
            continue
        rejected = pairs = splits_with_reject = 0
        first30 = 0
        for _ in range(splits):
            order = list(range(count))
            rng.shuffle(order)
            tolerance = fa.calibrate_cross(cal.honest_cross(records, order[:size]))
            held = order[size:]
            fails = [not fa.decide(m, "cross", tolerance).passed for m in cal.honest_cross(records, held)]
            rejected += sum(fails)
            pairs += len(fails)
            splits_with_reject += any(fails)
            first30 += any(not fa.decide(m, "cross", tolerance).passed for m in cal.honest_cross(records, held[:30]))
        out.append({"regions": size, "pairs": 2 * size, "splits": splits, "false_reject_rate": rejected / pairs,
                    "p_any_false_reject_in_30_regions": first30 / splits,
                    "held_out_regions": count - size, "p_any_false_reject_in_held_out": splits_with_reject / splits})
    return out


class Detector:
    """Strict-check outcomes from the real renders of part (a).

    A check of a faked frame fails exactly when its region holds a pixel that differs from the verifier's render
    by more than ``STRICT_PIXEL_TOLERANCE`` (the shipped rule: ``maxabs`` above ``STRICT_MAX_ABS``; part (a)
    verifies this against ``decide`` on every measured region). The verifier's render equals the honest frame
    (part (a) verifies that too: every honest region render is bit-identical).
    """

    def __init__(self, collected: Any) -> None:
        self.width, self.height = collected.width, collected.height
        self.frames = list(collected.frames)
        self.honest = collected.images["honest"]
        self.masks = {
            name: {f: cal.strict_fail_mask(images[f], self.honest[f]) for f in self.frames}
            for name, images in collected.images.items()
        }

    def detect(self, strategy: str, rng: random.Random, fraction: float = REGION_FRACTION) -> bool:
        """One check of a frame faked with ``strategy``: a random source frame, region and (tamper) spot."""
        frame = rng.choice(self.frames)
        region = fa.draw_region(rng, self.width, self.height, fraction)
        if strategy != "tamper":
            mask = self.masks[strategy][frame]
            return bool(mask[region.y : region.y + region.height, region.x : region.x + region.width].any())
        spot = fa.draw_region(rng, self.width, self.height, cal.TAMPER_FRACTION)
        x0, y0 = max(region.x, spot.x), max(region.y, spot.y)
        x1 = min(region.x + region.width, spot.x + spot.width)
        y1 = min(region.y + region.height, spot.y + spot.height)
        if x1 <= x0 or y1 <= y0:
            return False
        honest = self.honest[frame]
        patch = honest[spot.y : spot.y + spot.height, spot.x : spot.x + spot.width]
        mean = patch.reshape(-1, patch.shape[2]).mean(axis=0).round().astype(np.int16)  # as cal.tampered
        return bool(np.any(np.abs(honest[y0:y1, x0:x1].astype(np.int16) - mean) > fa.STRICT_PIXEL_TOLERANCE))

    def rate(self, strategy: str, draws: int, rng: random.Random, fraction: float = REGION_FRACTION) -> float:
        return sum(self.detect(strategy, rng, fraction) for _ in range(draws)) / draws


def tamper_overlap(width: int, height: int, fraction: float, draws: int, rng: random.Random) -> float:
    """Geometry only: the chance that a check region of ``fraction`` overlaps a 1/16 tamper, both drawn by
    ``draw_region`` on a ``width`` x ``height`` frame (an upper bound of d for the tamper)."""
    hits = 0
    for _ in range(draws):
        a = fa.draw_region(rng, width, height, fraction)
        b = fa.draw_region(rng, width, height, cal.TAMPER_FRACTION)
        hits += a.x < b.x + b.width and b.x < a.x + a.width and a.y < b.y + b.height and b.y < a.y + a.height
    return hits / draws


def part_a(args: argparse.Namespace, directory: Path) -> tuple[Any, dict[str, Any]]:
    """Render and compare (the calibration's functions); returns the collected renders and the results."""
    t = time.perf_counter()
    collected = asyncio.run(cal.collect(SMALL.width, SMALL.height, SMALL.samples, 6, args.regions, args.seed,
                                        directory))
    records = cal.measure(collected)
    facts = cal.draw_facts(collected)
    derived, tolerance = cal.derive(records)
    log(f"(a) {args.regions} regions rendered and compared in {time.perf_counter() - t:.0f} s")
    mismatches = 0  # the simulation's rule (a changed pixel in the region) against decide(), on every region
    for name in records:
        for metrics, fact in zip(records[name]["strict"], facts, strict=True):
            mismatches += fa.decide(metrics, "strict").passed == (fact["changed_px"][name] > 0)
    if any(m["maxabs"] for name in cal.HONEST_SAME_SEED for m in records[name]["strict"]):
        raise SystemExit("honest region renders are not bit-identical to the full frames: the model below is void")
    detector = Detector(collected)
    model_rng = random.Random(args.seed + 1)
    rows = []
    for case in cal.CASES:
        strict = records[case.name]["strict"]
        cross = records[case.name]["cross"]
        n = len(strict)
        row = {
            "case": case.name, "kind": case.kind, "scope": case.scope, "description": case.description,
            "regions": n,
            "d_strict": cal.strict_fails(strict) / n,
            "d_strict_bit_exact": sum(m["maxabs"] > 0 for m in strict) / n,
            "d_cross_calibrated": cal.cross_fails(cross, tolerance) / n,
            "d_cross_default": cal.cross_fails(cross, fa.DEFAULT_CROSS_TOLERANCE) / n,
        }
        if case.name in STRATEGIES:
            row["d_model"] = detector.rate(case.name, MODEL_DRAWS, model_rng)
            row["d_spot_model"] = detector.rate(case.name, MODEL_DRAWS, model_rng, SPOT_FRACTION)
        if case.name == "tamper":
            hit = [i for i, f in enumerate(facts) if f["tamper_overlap_px"] > 0]
            row["overlapping"] = len(hit)
            row["d_strict_given_overlap"] = cal.strict_fails([strict[i] for i in hit]) / max(1, len(hit))
        rows.append(row)
    results = {
        "regions": args.regions,
        "frames": collected.frames,
        "blender_version": collected.blender_version,
        "cases": rows,
        "rule_mismatches": mismatches,
        "strict_margins": derived["strict"],
        "cross": derived["cross"],
        "cross_held_out": cross_held_out(records, CROSS_SIZES, CROSS_SPLITS, args.seed),
        "spot_region": fa.draw_region(model_rng, SMALL.width, SMALL.height, SPOT_FRACTION).as_list(),
        "tamper_overlap": {
            f"{w}x{h}": {name: tamper_overlap(w, h, fraction, MODEL_DRAWS, model_rng)
                         for name, fraction in (("region", REGION_FRACTION), ("spot", SPOT_FRACTION))}
            for w, h in ((SMALL.width, SMALL.height), PRODUCTION)},
        "seconds": collected.seconds,
    }
    return collected, results


# ---------------------------------------------------------------------------------------------- (b) simulation


def fakes(q: float, frames: int) -> int:
    """Frames a renderer faking a share ``q`` fakes in a job (at least one)."""
    return max(1, round(q * frames))


def placement(rng: np.random.Generator, count: int, frames: int, faked: int) -> np.ndarray:
    """``count`` jobs' fake positions: ``faked`` of ``frames`` frames each, uniformly at random."""
    base = np.zeros((count, frames), dtype=bool)
    base[:, :faked] = True
    return rng.permuted(base, axis=1)


def rate_table() -> np.ndarray:
    """``check_rate(trust)`` for trust 0 .. FLOOR_TRUST (the rate stays at the floor above)."""
    table = np.array([check_rate(t) for t in range(FLOOR_TRUST + 1)])
    assert table[-1] == FLOOR and check_rate(10 * FLOOR_TRUST) == FLOOR
    return table


def survival_by_checks(d: float, q: float, frames: int, chunk: int, rng: np.random.Generator,
                       spot: float = 0.0, d_spot: float = 0.0) -> np.ndarray:
    """``g[k]``: chance that a job with k region-checked tasks misses every fake, averaged over where they are.

    A region-checked task looks at one uniform frame of its ``chunk`` (which catches a fake there with
    probability ``d``); each other frame of every task gets a spot check with probability ``spot`` (which
    catches a fake with ``d_spot``). With m fakes in a task of c frames, it misses them all with
    ``A = m/c (1-d) (1-spot d_spot)^(m-1) + (1-m/c) (1-spot d_spot)^m`` when region-checked and
    ``B = (1-spot d_spot)^m`` when not. Which tasks are region-checked does not depend on where the fakes are,
    so the first k tasks stand for any k: ``g[k]`` is the mean of ``A_1..A_k B_k+1..B_n``.
    """
    tasks = frames // chunk
    m = placement(rng, PLACEMENTS, frames, fakes(q, frames)).reshape(PLACEMENTS, tasks, chunk).sum(axis=2)
    miss = 1.0 - spot * d_spot
    region_checked = m / chunk * (1 - d) * miss ** np.maximum(m - 1, 0) + (1 - m / chunk) * miss**m
    spots_only = miss**m
    ones = np.ones((PLACEMENTS, 1))
    prefix = np.concatenate([ones, np.cumprod(region_checked, axis=1)], axis=1)
    suffix = np.concatenate([np.cumprod(spots_only[:, ::-1], axis=1)[:, ::-1], ones], axis=1)
    return (prefix * suffix).mean(axis=0)


def careers(row: WorkerRow, frames: int, count: int, rng: np.random.Generator, rates: np.ndarray):
    """Checks per job of ``count`` careers that pass every check, until each starts a job at the floor.

    Returns per job the checks of every career and whether the career started that job below the floor.
    (Conditioned on not being caught yet, every check so far passed: trust is the start plus the checks.)
    """
    tasks = frames // row.chunk
    trust = np.full(count, row.trust)
    checks, below = [], []
    for job in range(MAX_CAREER_JOBS):
        start_below = trust < FLOOR_TRUST
        if job > 0 and not start_below.any():
            break
        k = np.zeros(count, dtype=np.int64)
        for _ in range(tasks):
            checked = rng.random(count) < rates[np.minimum(trust, FLOOR_TRUST)]
            k += checked
            if row.instant:
                trust = trust + checked
        if not row.instant:
            trust = trust + k
        checks.append(k)
        below.append(start_below)
    return checks, below


def expected(g: np.ndarray, checks: list[np.ndarray], below: list[np.ndarray], tasks: int) -> dict[str, float]:
    """P(caught in the first job) and expected jobs until caught, from ``g`` and the careers' check counts."""
    floor_miss = sum(math.comb(tasks, k) * FLOOR**k * (1 - FLOOR) ** (tasks - k) * g[k] for k in range(tasks + 1))
    alive = np.ones(len(checks[0]))
    total = np.ones(len(checks[0]))  # sum over n >= 0 of P(not caught in the first n jobs)
    active = np.ones(len(checks[0]), dtype=bool)
    for k, start_below in zip(checks, below, strict=True):
        active &= start_below
        alive = np.where(active, alive * g[k], alive)
        total += np.where(active, alive, 0.0)
    tail = math.inf if floor_miss >= 1 else floor_miss / (1 - floor_miss)
    jobs = float(np.mean(total + alive * tail)) if tail != math.inf else math.inf
    # At the floor the checks of a job are binomial: exact, rather than the careers' sample of it.
    first = 1 - floor_miss if not below[0].any() else float(1 - np.mean(g[checks[0]]))
    return {"p_first_job": first, "jobs_until_caught": jobs, "p_per_job_at_floor": 1 - floor_miss}


def simulate(row: WorkerRow, strategy: str, q: float, frames: int, jobs: int, detector: Detector,
             rng: np.random.Generator, draw_rng: random.Random, rates: np.ndarray,
             spot: float = SPOT_RATE) -> dict[str, int]:
    """``jobs`` first jobs of a renderer in state ``row`` faking ``q`` with ``strategy``; counts catches.

    Each task's region key is used at the trust's rate; every other frame of the task gets a spot check with
    probability ``spot``. ``strategy="honest_1_thread"`` with q = 1 runs an honest renderer: every catch is a
    false reject.
    """
    chunk = row.chunk
    tasks = frames // chunk
    faked = placement(rng, jobs, frames, fakes(q, frames)).reshape(jobs, tasks, chunk)
    trust = np.full(jobs, row.trust)
    caught = np.zeros(jobs, dtype=bool)
    everyone = np.arange(jobs)
    checks = spots = checked_fakes = 0
    for t in range(tasks):
        checked = rng.random(jobs) < rates[np.minimum(trust, FLOOR_TRUST)]
        key_frame = rng.integers(chunk, size=jobs)
        hit = checked & faked[everyone, t, key_frame] & ~caught
        checks += int(checked.sum())
        checked_fakes += int(hit.sum())
        for j in np.flatnonzero(hit):
            if detector.detect(strategy, draw_rng):
                caught[j] = True
        spotted = rng.random((jobs, chunk)) < spot
        spotted[everyone[checked], key_frame[checked]] = False  # one check per frame
        spots += int(spotted.sum())
        for j in np.nonzero(spotted & faked[:, t, :] & ~caught[:, None])[0]:
            checked_fakes += 1
            if not caught[j] and detector.detect(strategy, draw_rng, SPOT_FRACTION):
                caught[j] = True
        if row.instant:
            trust = trust + checked
    return {"jobs": jobs, "caught": int(caught.sum()), "checks": checks, "spots": spots,
            "checked_fakes": checked_fakes}


def part_b(
    args: argparse.Namespace, detector: Detector, d: dict[str, dict[str, float]], cross_false_reject: float | None
) -> dict[str, Any]:
    """The Monte-Carlo over jobs and careers.

    ``cross_false_reject``: the held-out false-reject rate of one honest cross check (part a), for the chance
    that an honest worker checked across device classes fails at least one check in a job.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    draw_rng = random.Random(args.seed + 2)
    rates = rate_table()
    out: dict[str, Any] = {"rows": [], "honest": []}
    for row in ROWS:
        if args.frames % row.chunk:
            raise SystemExit(f"--frames must be a multiple of the chunk size {row.chunk}")
        tasks = args.frames // row.chunk
        checks, below = careers(row, args.frames, args.jobs, rng, rates)
        at_floor = not below[0].any()  # then the checks of a job are binomial: use their exact mean
        per_job = tasks * FLOOR if at_floor else float(np.mean(checks[0]))
        entry = {"worker": asdict(row), "checks_per_job": per_job,
                 "spots_per_job": SPOT_RATE * (args.frames - per_job),
                 "career_jobs_simulated": len(checks), "cases": []}
        for strategy in STRATEGIES:
            for q in FRACTIONS:
                case: dict[str, Any] = {"strategy": strategy, "q": q}
                g = survival_by_checks(d["strict"][strategy], q, args.frames, row.chunk, rng, SPOT_RATE,
                                       d["spot"][strategy])
                case["expected_strict"] = expected(g, checks, below, tasks)
                g = survival_by_checks(d["strict"][strategy], q, args.frames, row.chunk, rng)
                case["expected_strict_regions_only"] = expected(g, checks, below, tasks)
                g = survival_by_checks(d["cross"][strategy], q, args.frames, row.chunk, rng)
                case["expected_cross"] = expected(g, checks, below, tasks)  # regions only: spots not measured
                case["simulated"] = simulate(row, strategy, q, args.frames, args.jobs, detector, rng, draw_rng, rates)
                entry["cases"].append(case)
        honest = simulate(row, "honest_1_thread", 1.0, args.frames, args.jobs, detector, rng, draw_rng, rates)
        if cross_false_reject is not None:  # 1 - E[(1 - r)^k] over the job's check count k
            no_false_reject = (1 - cross_false_reject) ** np.arange(tasks + 1)
            honest["cross_p_false_reject_per_job"] = expected(no_false_reject, checks, below, tasks)["p_first_job"]
        out["honest"].append({"worker": asdict(row), **honest})
        out["rows"].append(entry)
        log(f"(b) {row.label}, chunk {row.chunk}: done ({time.perf_counter() - t0:.0f} s)")
    out["seconds"] = time.perf_counter() - t0
    return out


# ---------------------------------------------------------------------------------------------- (c) overhead


async def region_costs(scene: Scene, repeats: int, directory: Path, seed: int) -> dict[str, Any]:
    """Full frame vs region + margin vs bare region, interleaved in one warm process, rotating the order."""
    blend = make_scene(scene, directory)
    out = directory / f"cost_{scene.width}x{scene.height}"
    out.mkdir(exist_ok=True)
    rng = random.Random(seed)
    w, h = scene.width, scene.height
    times: dict[str, list[float]] = {"full": [], "region_margin": [], "region": [], "spot_margin": []}
    areas, spot_areas = [], []
    async with RenderProcess(BlenderLauncher.discover(None)) as process:
        await process.open(blend, device="CPU", threads=cal.THREADS)
        await process.render(1, out / "warmup.png")  # untimed: first-render initialisation
        await process.render_region(1, [0, 0, 8, 8], out / "warmup_region.png")
        for r in range(repeats):
            frame = 1 + r % scene.frames
            region = fa.draw_region(rng, w, h, REGION_FRACTION)
            rect = region.expanded(MARGIN, w, h)
            spot = fa.draw_region(rng, w, h, SPOT_FRACTION).expanded(MARGIN, w, h)
            areas.append(rect.area / (w * h))
            spot_areas.append(spot.area / (w * h))
            variants = [
                ("full", lambda f=frame: process.render(f, out / "full.png")),
                ("region_margin", lambda f=frame, x=rect: process.render_region(f, x.as_list(), out / "rm.png")),
                ("region", lambda f=frame, x=region: process.render_region(f, x.as_list(), out / "r.png")),
                ("spot_margin", lambda f=frame, x=spot: process.render_region(f, x.as_list(), out / "sm.png")),
            ]
            shift = r % len(variants)
            for name, call in variants[shift:] + variants[:shift]:
                t = time.perf_counter()
                await call()
                times[name].append(time.perf_counter() - t)
    ratios = {name: [v / f for v, f in zip(times[name], times["full"], strict=True)]
              for name in ("region_margin", "region", "spot_margin")}
    return {
        "scene": asdict(scene),
        "repeats": repeats,
        "seconds": {name: cal.spread(values) for name, values in times.items()},
        "ratio": {name: statistics.median(times[name]) / statistics.median(times["full"]) for name in ratios},
        "ratio_per_repeat": {name: cal.spread(values) for name, values in ratios.items()},
        "rect_area_fraction": statistics.mean(areas),
        "spot_rect_area_fraction": statistics.mean(spot_areas),
        "region_area_fraction": fa.draw_region(random.Random(0), w, h, REGION_FRACTION).area / (w * h),
        "samples": times,
    }


def part_c(args: argparse.Namespace, directory: Path, sim: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    costs = []
    scenes = ((SMALL, args.small_repeats), (BIGGER, args.bigger_repeats), (LARGE, args.large_repeats))
    for scene, repeats in (x for x in scenes if x[1] > 0):
        costs.append(asyncio.run(region_costs(scene, repeats, directory, args.seed)))
        c = costs[-1]
        log(f"(c) {scene.width}x{scene.height}: full {c['seconds']['full']['median']:.3f} s, region+margin "
            f"{c['seconds']['region_margin']['median']:.3f} s, "
            f"spot+margin {c['seconds']['spot_margin']['median']:.3f} s (load {os.getloadavg()[0]:.1f})")
    overhead = []
    for entry in sim["rows"]:
        per_frame = entry["checks_per_job"] / args.frames
        spots = entry["spots_per_job"] / args.frames
        cells = {}
        for c in costs:
            key = f"{c['scene']['width']}x{c['scene']['height']}"
            regions = per_frame * c["ratio"]["region_margin"]
            both = regions + spots * c["ratio"]["spot_margin"]
            cells[key] = {"regions_only": regions, "checks_only": both,
                          "with_audits_ringers": both * (1 + EXTRA_PER_CHECK),
                          "regions_with_audits_ringers": regions * (1 + EXTRA_PER_CHECK)}
        overhead.append({"worker": entry["worker"], "checks_per_frame": per_frame, "spots_per_frame": spots,
                         "overhead": cells})
    return {"costs": costs, "overhead": overhead, "extra_per_check": EXTRA_PER_CHECK,
            "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------- reporting


def pct(p: float) -> str:
    """A probability as a percentage with the digits that matter near 0 and 1."""
    if p >= 1 - 5e-5:
        return "100" if p >= 1 else ">99.99"
    if p >= 0.99:
        return f"{100 * p:.2f}"
    if p < 0.001:
        return f"{100 * p:.3f}"
    return f"{100 * p:.1f}"


def jobs_text(value: float) -> str:
    if value == math.inf:
        return "never"
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def row_label(row: dict[str, Any]) -> str:
    return f"{row['label']}, chunk {row['chunk']}"


def markdown(a: dict[str, Any], b: dict[str, Any], c: dict[str, Any], frames: int) -> str:
    lines: list[str] = []
    add = lines.append
    add(f"**(a) Per-check detection probability d** ({a['regions']} regions of 1/16 drawn with `draw_region`, "
        f"frames {a['frames']}; strict = same device class, shipped thresholds; cross = another device class, "
        "tolerance calibrated on these honest pairs)\n")
    sx, sy, sw, sh = a["spot_region"]
    add("| case | what the renderer delivers | d strict | d strict if bit-exact | d strict, simulation model "
        f"| d spot, simulation model ({sw}x{sh} px) | d cross (calibrated) | d cross (shipped default tolerance) |")
    add("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in a["cases"]:
        model = f"{r['d_model']:.3f}" if "d_model" in r else ""
        spot = f"{r['d_spot_model']:.3f}" if "d_spot_model" in r else ""
        note = f"; {r['d_strict_given_overlap']:.2f} of the {r['overlapping']} overlapping" if "overlapping" in r \
            else ""
        add(f"| {r['case']} ({r['kind']}) | {r['description']}{note} | {r['d_strict']:.3f} "
            f"| {r['d_strict_bit_exact']:.3f} | {model} | {spot} | {r['d_cross_calibrated']:.3f} "
            f"| {r['d_cross_default']:.3f} |")
    add("")
    add("Spots are 1/256 of the frame but at least 8x8 px, so at 64x36 a spot is 1/36 of the frame and its d for "
        "the tamper is higher than at production sizes. Geometry alone (a check overlaps a 1/16 tamper; an upper "
        "bound of d for the tamper, both drawn with `draw_region`): "
        + "; ".join(f"{size}: region {x['region']:.3f}, spot {x['spot']:.3f}"
                    for size, x in a["tamper_overlap"].items())
        + ".\n")
    add(f"For honest cases d is the false-reject rate. Strict rule vs. decide(): {a['rule_mismatches']} "
        "mismatches over every region and case. Calibrated cross tolerance: "
        + ", ".join(f"{k} {v:.3g}" for k, v in a["cross"]["tolerance"].items()) + ".\n")
    add("Held-out honest cross pairs (calibrate on N random regions' honest pairs, judge the rest; "
        f"{CROSS_SPLITS} random splits):\n")
    add("| calibration regions N | false-reject rate per held-out pair "
        "| P(≥1 false reject among 30 held-out regions) |")
    add("|---:|---:|---:|")
    for r in a["cross_held_out"]:
        add(f"| {r['regions']} | {100 * r['false_reject_rate']:.2f} % "
            f"| {100 * r['p_any_false_reject_in_30_regions']:.0f} % |")
    add("")
    add(f"**(b) P(caught in one job of {frames} frames)**, strict mode, in %, with spot checks on "
        f"{SPOT_RATE:.0%} of the frames no region check covers (the shipped default): *expected* (from d and the "
        f"simulated checks) with the *simulated* share of {b['rows'][0]['cases'][0]['simulated']['jobs']} jobs in "
        "parentheses; the last column is q = 5 % with region checks only (no spots), for comparison\n")
    add("| worker, chunk | region checks/job | spots/job | strategy | "
        + " | ".join(f"q = {q:.0%}" for q in FRACTIONS) + " | q = 5 %, regions only |")
    add("|---|---:|---:|---|" + "---:|" * (len(FRACTIONS) + 1))
    for entry in b["rows"]:
        by = {(x["strategy"], x["q"]): x for x in entry["cases"]}
        for strategy in STRATEGIES:
            cells = []
            for q in FRACTIONS:
                x = by[(strategy, q)]
                sim = x["simulated"]["caught"] / x["simulated"]["jobs"]
                cells.append(f"{pct(x['expected_strict']['p_first_job'])} ({pct(sim)})")
            cells.append(pct(by[(strategy, 0.05)]["expected_strict_regions_only"]["p_first_job"]))
            add(f"| {row_label(entry['worker'])} | {entry['checks_per_job']:.1f} | {entry['spots_per_job']:.1f} "
                f"| {strategy} | " + " | ".join(cells) + " |")
    add("")
    add("**Expected jobs until caught** (strict; a career that starts in this state, keeps faking q in every job, "
        "trust carried from job to job; 1 = caught in the first job)\n")
    add("| worker, chunk | strategy | " + " | ".join(f"q = {q:.0%}" for q in FRACTIONS) + " |")
    add("|---|---|" + "---:|" * len(FRACTIONS))
    for entry in b["rows"]:
        if entry["worker"]["instant"]:  # careers need trust that moves with each check
            by = {(x["strategy"], x["q"]): x for x in entry["cases"]}
            for strategy in STRATEGIES:
                cells = [jobs_text(by[(strategy, q)]["expected_strict"]["jobs_until_caught"]) for q in FRACTIONS]
                add(f"| {row_label(entry['worker'])} | {strategy} | " + " | ".join(cells) + " |")
    add("")
    add("**Cross mode** (renderer and verifier of different device classes, calibrated tolerance; region checks "
        "only: spots across device classes were not measured): expected P(caught in one job), q = 5 %\n")
    add("| worker, chunk | " + " | ".join(STRATEGIES) + " |")
    add("|---|" + "---:|" * len(STRATEGIES))
    for entry in b["rows"]:
        by = {(x["strategy"], x["q"]): x for x in entry["cases"]}
        add(f"| {row_label(entry['worker'])} | "
            + " | ".join(pct(by[(s, 0.05)]["expected_cross"]["p_first_job"]) for s in STRATEGIES) + " |")
    add("")
    src = b.get("cross_false_reject_from")
    cross_note = (f"; cross: expected P(≥1 false reject in a job) if every check crossed device classes, at the "
                  f"held-out rate {100 * src['false_reject_rate']:.2f} % per check (tolerance calibrated on "
                  f"{src['regions']} regions)") if src else ""
    add(f"**Honest workers** (the same simulation, every frame rendered honestly; strict{cross_note})\n")
    add("| worker, chunk | jobs | region checks | spot checks | strict false rejects "
        "| cross: P(≥1 false reject per job), region checks |")
    add("|---|---:|---:|---:|---:|---:|")
    for h in b["honest"]:
        cross = pct(h["cross_p_false_reject_per_job"]) + " %" if "cross_p_false_reject_per_job" in h else "n/a"
        add(f"| {row_label(h['worker'])} | {h['jobs']} | {h['checks']} | {h['spots']} | {h['caught']} | {cross} |")
    add("")
    add("**(c) Region render cost** (one warm process per resolution, interleaved, wall time of the render call; "
        "median (min–max) over the repeats)\n")
    add("| scene | repeats | full frame s | region + 16 px margin s | region only s | spot + 16 px margin s "
        "| rendered share of the frame: region, spot (with margins) | region cost ratio with margin | per repeat "
        "| without margin | **spot cost ratio** with margin | per repeat |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for x in c["costs"]:
        sc, s, per = x["scene"], x["seconds"], x["ratio_per_repeat"]["region_margin"]
        sper = x["ratio_per_repeat"]["spot_margin"]
        add(f"| {sc['width']}x{sc['height']}, {sc['samples']} spp | {x['repeats']} "
            f"| {s['full']['median']:.3f} ({s['full']['min']:.3f}–{s['full']['max']:.3f}) "
            f"| {s['region_margin']['median']:.3f} | {s['region']['median']:.3f} | {s['spot_margin']['median']:.3f} "
            f"| {x['rect_area_fraction']:.3f}, {x['spot_rect_area_fraction']:.3f} "
            f"| **{x['ratio']['region_margin']:.2f}** "
            f"| {per['median']:.2f} ({per['min']:.2f}–{per['max']:.2f}) "
            f"| {x['ratio']['region']:.2f} | **{x['ratio']['spot_margin']:.3f}** "
            f"| {sper['median']:.3f} ({sper['min']:.3f}–{sper['max']:.3f}) |")
    add("")
    keys = [f"{x['scene']['width']}x{x['scene']['height']}" for x in c["costs"]]
    add("**Verification overhead** = region checks per frame × region cost ratio + spots per frame × spot cost "
        f"ratio (extra render time / render time), with the {100 * c['extra_per_check']:.1f} % more renders per "
        "check that audits and ringers add (ringers are the size of the check they stand in for); in parentheses "
        "the same without spots\n")
    add("| worker, chunk | region checks per frame | spots per frame | " + " | ".join(keys) + " |")
    add("|---|---:|---:|" + "---:|" * len(keys))
    for o in c["overhead"]:
        cells = [f"**{100 * o['overhead'][k]['with_audits_ringers']:.1f} %** "
                 f"({100 * o['overhead'][k]['regions_with_audits_ringers']:.1f} %)" for k in keys]
        add(f"| {row_label(o['worker'])} | {o['checks_per_frame']:.3f} | {o['spots_per_frame']:.3f} | "
            + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- entry point


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="simulated jobs (and careers) per case")
    parser.add_argument("--frames", type=int, default=100, help="frames per job (a multiple of 10)")
    parser.add_argument("--regions", type=int, default=400, help="regions rendered and compared in part (a)")
    parser.add_argument("--small-repeats", type=int, default=30, help="timed repeats at 64x36")
    parser.add_argument("--bigger-repeats", type=int, default=10, help="timed repeats at 320x180")
    parser.add_argument("--large-repeats", type=int, default=3, help="timed repeats at 960x540 (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument("--comparison-regions", type=int, default=1500, help="part (d): regions per 64x36 variant")
    parser.add_argument("--comparison-bigger-regions", type=int, default=400,
                        help="part (d): regions per 192x108 variant")
    parser.add_argument("--compositor-regions", type=int, default=300,
                        help="part (d): regions of the 64x36 compositor-denoised scene (0: skip)")
    parser.add_argument("--only-comparison", action="store_true", help="run part (d) alone")
    parser.add_argument("--comparison-cost-repeats", type=int, default=5,
                        help="part (d): timed repeats of a denoised 320x180 and 960x540 scene (0: skip)")
    args = parser.parse_args(argv)
    if min(args.jobs, args.frames, args.small_repeats, args.bigger_repeats) < 1 or args.regions < 2 \
            or args.large_repeats < 0:
        parser.error("counts must be positive (--regions at least 2, --large-repeats may be 0)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only_comparison:
        return main_comparison(args, argv)
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="framehive-verification-") as tmp:
        collected, a = part_a(args, Path(tmp))
        load.append(os.getloadavg()[0])
        detector = Detector(collected)
        d = {"strict": {r["case"]: r["d_model"] for r in a["cases"] if "d_model" in r},
             "spot": {r["case"]: r["d_spot_model"] for r in a["cases"] if "d_spot_model" in r},
             "cross": {r["case"]: r["d_cross_calibrated"] for r in a["cases"]}}
        held = a["cross_held_out"]
        b = part_b(args, detector, d, held[-1]["false_reject_rate"] if held else None)
        b["cross_false_reject_from"] = held[-1] if held else None
        load.append(os.getloadavg()[0])
        c = part_c(args, Path(tmp), b)
        load.append(os.getloadavg()[0])
        d_part = comparison.run(cal, args.comparison_regions, args.comparison_bigger_regions, args.seed, Path(tmp))
        if args.compositor_regions:
            d_part["variants"].append(compositor_case(args.compositor_regions, args.seed, Path(tmp)))
        d_part["costs"] = comparison_costs(args, Path(tmp))
        load.append(os.getloadavg()[0])
    wall = time.perf_counter() - started
    info = machine({"blender_version": a["blender_version"]})
    print(f"\nverification — {date}, {info['cpus']} CPUs ({info['cpu_model']}), Blender {info['blender']}, "
          f"Python {info['python']}, {args.jobs} jobs of {args.frames} frames, wall {wall:.0f} s, "
          f"1-min load {min(load):.1f}–{max(load):.1f}\n")
    print(markdown(a, b, c, args.frames))
    print("\n" + comparison.markdown(d_part))
    if d_part["costs"]:
        print("\n" + comparison.cost_markdown(d_part["costs"]))
    if args.json:
        command = " ".join([".venv/bin/python -m benchmarks.verification", *(sys.argv[1:] if argv is None else argv)])
        report = {"benchmark": "verification", "date": date, "command": command, "wall_seconds": wall,
                  "load_average": load, "machine": info, "settings": vars(args) | {"json": str(args.json)},
                  "detection": a, "simulation": b, "overhead": c, "comparison": d_part}
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def comparison_costs(args: argparse.Namespace, directory: Path) -> list[dict[str, Any]]:
    """Part (d)'s timing of denoised checks: 320x180, and 960x540 unless ``--large-repeats 0``."""
    scenes = (BIGGER, LARGE) if args.large_repeats else (BIGGER,)
    return [asyncio.run(comparison.denoised_costs(scene, args.comparison_cost_repeats, directory, args.seed))
            for scene in scenes if args.comparison_cost_repeats]


#: The compositor case of part (d): the sample scene denoised by a compositor Denoise node instead of Cycles' own
#: denoiser (tests/scenes/compositor_denoise.py; dither 0). The node is not per-pixel, so the verifier's render
#: runner renders the whole frame for any region (render_runner.PER_PIXEL_NODES) and crops it. Judged with the
#: yardstick like Cycles' denoiser ("denoise" below), while the settings keep Cycles' denoiser off.
COMPOSITOR_SCRIPT = REPO / "tests" / "scenes" / "compositor_denoise.py"


@dataclass(frozen=True)
class CompositorVariant(comparison.Variant):
    @property
    def settings(self) -> dict[str, Any]:
        return {"dither_intensity": self.dither, "use_denoising": False}


COMPOSITOR = CompositorVariant("64x36 compositor Denoise node (dither 0)", 64, 36, 8, 0.0, True)


def compositor_case(regions: int, seed: int, directory: Path) -> dict[str, Any]:
    """Part (d) on the compositor-denoised scene: the sample scene's .blend is replaced by its compositor twin."""
    base = directory / "compositor"
    folder = base / f"{COMPOSITOR.width}x{COMPOSITOR.height}"
    folder.mkdir(parents=True)
    frames = max(comparison.FRAMES) + 2
    sample, _ = cal.make_scenes(folder, COMPOSITOR.width, COMPOSITOR.height, COMPOSITOR.samples, frames)
    sample.unlink()
    subprocess.run([sys.executable, str(COMPOSITOR_SCRIPT), str(sample), "--frames", str(frames), "--width",
                    str(COMPOSITOR.width), "--height", str(COMPOSITOR.height), "--samples", str(COMPOSITOR.samples)],
                   check=True, capture_output=True, cwd=REPO)
    log(f"(d) {COMPOSITOR.label}: {regions} regions")
    return asyncio.run(comparison.measure_variant(cal, COMPOSITOR, regions, seed, base))


def main_comparison(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Part (d) alone: ``--only-comparison``."""
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="framehive-comparison-") as tmp:
        d_part = comparison.run(cal, args.comparison_regions, args.comparison_bigger_regions, args.seed, Path(tmp))
        if args.compositor_regions:
            d_part["variants"].append(compositor_case(args.compositor_regions, args.seed, Path(tmp)))
        d_part["costs"] = comparison_costs(args, Path(tmp))
    load.append(os.getloadavg()[0])
    wall = time.perf_counter() - started
    info = machine({"blender_version": "5.0.1"})
    print(f"\ncomparison — {date}, {info['cpus']} CPUs ({info['cpu_model']}), Python {info['python']}, "
          f"wall {wall:.0f} s, 1-min load {min(load):.1f}–{max(load):.1f}\n")
    print(comparison.markdown(d_part))
    if d_part["costs"]:
        print("\n" + comparison.cost_markdown(d_part["costs"]))
    if args.json:
        command = " ".join([".venv/bin/python -m benchmarks.verification", *(sys.argv[1:] if argv is None else argv)])
        args.json.write_text(json.dumps({"benchmark": "verification (d)", "date": date, "command": command,
                                         "wall_seconds": wall, "load_average": load, "machine": info,
                                         "comparison": d_part}, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
