"""Benchmark: tier 1 (low-resolution whole-frame re-renders) against cheats that change part of a frame.

Run from the repository root with the venv that has ``bpy``::

    .venv/bin/python -m benchmarks.local_cheats [--frames 8] [--placements 200] [--large-repeats 1] [--json PATH]

Region and spot checks see a cheat only where they overlap it, so a 1/16 tampered rectangle is caught in 45 % of
jobs and a still camera's next frame in 93 % (BENCHMARKS.md, q = 5 %, trust at the floor). A tier-1 check sees
the whole frame at a fraction of its cost: the verifier renders the frame at 1/``factor`` resolution with a BOX
pixel filter (render_region with overrides, as a verifier can today), the coordinator box-downscales the
renderer's frame in linear light (frame_analysis.downscale_linear) and compares tile by tile (8x8 tiles, the
minimum tile PSNR). This benchmark measures, on real Cycles renders of the sample scene (320x180, 32 spp):

(a) the honest floor of that metric (the renderer's honest frame against the verifier's low-resolution render)
    and the per-check detection d of a 1/16 tamper (``--placements`` placements per frame, drawn with
    ``draw_region`` as keys are) and of the adjacent frame, at a threshold of the honest minimum minus 1 dB;
(b) the cost of a tier-1 render relative to the full frame (timed side by side in a warm process) at 320x180
    and, with ``--large-repeats``, 960x540;
(c) per-job detection at q = 5 % (5 fakes in 100 frames) when tier 1 runs on a share p of frames on top of
    today's checks (today's per-job numbers from benchmarks/verification.py, trust at the floor, chunk 1), and
    the p and overhead needed for 99.9 %.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator.verification import tier1
from framehive.coordinator.verification.keys import REGION_FRACTION
from framehive.worker_agent.blender import BlenderLauncher, RenderProcess

from benchmarks.verification import EXTRA_PER_CHECK, cal, log
from benchmarks.warm_blender import REPO, Scene, make_scene

SCENE = Scene("tier 1", 320, 180, 32, 9)
LARGE = Scene("larger", 960, 540, 32, 2)
FACTORS = (4, 5, 10)  # resolution_percentage 25, 20, 10: the low-resolution size is exact
TILES = 8
MARGIN_DB = 1.0
#: Today's per-job detection at q = 5 %, trust at the floor, chunk 1 (BENCHMARKS.md, benchmarks/verification.py)
#: and today's overhead at 960x540 for that row.
TODAY = {"tamper": 0.446, "adjacent_frame": 0.934}
TODAY_OVERHEAD_960 = 0.016
FAKES = 5


def min_tile_psnr(a: np.ndarray, b: np.ndarray, tiles: int = TILES) -> float:
    """The lowest PSNR over a tiles x tiles grid (a tamper is local: a whole-image PSNR averages it away)."""
    h, w = a.shape[:2]
    worst = math.inf
    for i in range(tiles):
        for j in range(tiles):
            ys, xs = slice(i * h // tiles, (i + 1) * h // tiles), slice(j * w // tiles, (j + 1) * w // tiles)
            diff = a[ys, xs].astype(float) - b[ys, xs].astype(float)
            mse = float(np.mean(diff * diff))
            worst = min(worst, 99.0 if mse == 0 else 10 * math.log10(255 * 255 / mse))
    return worst


def tier1_overrides(factor: int) -> dict[str, Any]:
    return {"resolution_percentage": 100 // factor, "pixel_filter_type": "BOX"}


async def render_all(blend: Path, out: Path, frames: int) -> tuple[dict[int, np.ndarray], dict[tuple[int, int], Any]]:
    """Full frames 1..frames+1 (the last one only as frame f's next) and tier-1 renders of 1..frames."""
    full, low = {}, {}
    async with RenderProcess(BlenderLauncher.discover(None)) as process:
        await process.open(blend, device="CPU", threads=cal.THREADS)
        for f in range(1, frames + 2):
            await process.render(f, out / f"full_{f}.png")
            full[f] = cal.load(out / f"full_{f}.png")
            if f > frames:
                continue
            for factor in FACTORS:
                w, h = SCENE.width // factor, SCENE.height // factor
                path = out / f"low_{factor}_{f}.png"
                await process.render_region(f, [0, 0, w, h], path, overrides=tier1_overrides(factor))
                low[(factor, f)] = cal.load(path)
            log(f"rendered frame {f}")
    return full, low


def part_a(full: dict[int, np.ndarray], low: dict[tuple[int, int], Any], frames: int, placements: int,
           seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    result = {}
    for factor in FACTORS:
        def score(image: np.ndarray, f: int, k: int = factor) -> float:
            return min_tile_psnr(fa.downscale_linear(image, k), low[(k, f)])

        honest = [score(full[f], f) for f in range(1, frames + 1)]
        threshold = min(honest) - MARGIN_DB
        adjacent = [score(full[f + 1], f) for f in range(1, frames + 1)]
        tamper = [score(cal.tampered(full[f], fa.draw_region(rng, SCENE.width, SCENE.height, REGION_FRACTION)), f)
                  for f in range(1, frames + 1) for _ in range(placements)]
        result[str(factor)] = {
            "threshold_db": threshold, "honest_db": cal.spread(honest),
            "d": {"adjacent_frame": float(np.mean(np.array(adjacent) < threshold)),
                  "tamper": float(np.mean(np.array(tamper) < threshold))},
            "adjacent_db": cal.spread(adjacent), "tamper_db": cal.spread(tamper)}
    return result


async def costs(scene: Scene, repeats: int, directory: Path) -> dict[str, Any]:
    """Full frame vs tier-1 renders, interleaved in one warm process."""
    blend = make_scene(scene, directory)
    out = directory / f"cost_{scene.width}"
    out.mkdir(exist_ok=True)
    times: dict[str, list[float]] = {"full": [], **{f"tier1_{k}": [] for k in FACTORS}}
    async with RenderProcess(BlenderLauncher.discover(None)) as process:
        await process.open(blend, device="CPU", threads=cal.THREADS)
        await process.render_region(1, [0, 0, 8, 8], out / "warmup.png")
        for r in range(repeats):
            variants = [("full", lambda: process.render(1, out / "full.png"))] + [
                (f"tier1_{k}", lambda k=k: process.render_region(
                    1, [0, 0, scene.width // k, scene.height // k], out / "low.png", overrides=tier1_overrides(k)))
                for k in FACTORS]
            shift = r % len(variants)
            for name, call in variants[shift:] + variants[:shift]:
                t = time.perf_counter()
                await call()
                times[name].append(time.perf_counter() - t)
            log(f"cost {scene.width}x{scene.height} repeat {r + 1}: " + ", ".join(
                f"{n} {v[-1]:.2f} s" for n, v in times.items()))
    full = statistics.median(times["full"])
    return {"scene": f"{scene.width}x{scene.height}, {scene.samples} spp", "repeats": repeats,
            "seconds": {n: cal.spread(v) for n, v in times.items()},
            "ratio": {n: statistics.median(v) / full for n, v in times.items() if n != "full"}}


def per_job(d: float, share: float, today: float) -> float:
    """P(caught in a job with FAKES faked frames): today's checks, or tier 1 on each fake with prob share * d."""
    return 1 - (1 - today) * (1 - share * d) ** FAKES


def share_for(target: float, d: float, today: float) -> float | None:
    """The tier-1 share of frames that reaches ``target`` per job (None: not reachable even at every frame)."""
    if d <= 0:
        return None
    need = 1 - ((1 - target) / (1 - today)) ** (1 / FAKES)
    return need / d if need / d <= 1 else None


def part_c(a: dict[str, Any], cost: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for factor, measured in a.items():
        ratios = {c["scene"]: c["ratio"][f"tier1_{factor}"] for c in cost}
        for cheat, d in measured["d"].items():
            for share in (0.25, 0.5, 0.8, 1.0):
                rows.append({"factor": int(factor), "cheat": cheat, "d": d, "share": share,
                             "today": TODAY[cheat], "with_tier1": per_job(d, share, TODAY[cheat]),
                             "tier1_overhead": {s: share * r * (1 + EXTRA_PER_CHECK) for s, r in ratios.items()}})
            need = share_for(0.999, d, TODAY[cheat])
            rows.append({"factor": int(factor), "cheat": cheat, "d": d, "share": need, "today": TODAY[cheat],
                         "with_tier1": 0.999 if need is not None else None, "target": True,
                         "tier1_overhead": {s: (need or math.nan) * r * (1 + EXTRA_PER_CHECK)
                                            for s, r in ratios.items()}})
    return rows


def markdown(result: dict[str, Any]) -> str:
    lines = ["**(a) Tier-1 detection per check** (320x180, 32 spp; min tile PSNR over 8x8 tiles; threshold = "
             "honest minimum − 1 dB)", "",
             "| factor | honest min (median) dB | threshold dB | d adjacent frame | d 1/16 tamper |",
             "|---:|---:|---:|---:|---:|"]
    for factor, a in result["a"].items():
        lines.append(f"| 1/{factor} | {a['honest_db']['min']:.1f} ({a['honest_db']['median']:.1f}) | "
                     f"{a['threshold_db']:.1f} | {a['d']['adjacent_frame']:.3f} | {a['d']['tamper']:.3f} |")
    lines += ["", "**(b) Cost of a tier-1 render** (warm process, interleaved; median seconds, ratio to the full "
              "frame)", "", "| scene | repeats | full s | " + " | ".join(f"tier 1 at 1/{k}: s, ratio" for k in FACTORS)
              + " |", "|---|---:|---:|" + "---:|" * len(FACTORS)]
    for c in result["b"]:
        cells = " | ".join(f"{c['seconds'][f'tier1_{k}']['median']:.3f}, **{c['ratio'][f'tier1_{k}']:.3f}**"
                           for k in FACTORS)
        lines.append(f"| {c['scene']} | {c['repeats']} | {c['seconds']['full']['median']:.2f} | {cells} |")
    lines += ["", "**(c) P(caught in one job of 100 frames, 5 faked)**, trust at the floor, chunk 1: today's "
              "checks, and with tier 1 on a share of frames (added overhead per scene, audits and ringers "
              "included)", "", "| tier 1 | cheat | d | share of frames | today | with tier 1 | added overhead |",
              "|---|---|---:|---:|---:|---:|---|"]
    for row in result["c"]:
        share = "—" if row["share"] is None else f"{row['share']:.2f}"
        caught = "not reachable" if row["with_tier1"] is None else f"{100 * row['with_tier1']:.2f} %"
        over = ", ".join(f"{s}: {100 * v:.1f} %" for s, v in row["tier1_overhead"].items())
        label = " (for 99.9 %)" if row.get("target") else ""
        lines.append(f"| 1/{row['factor']} | {row['cheat']} | {row['d']:.3f} | {share}{label} | "
                     f"{100 * row['today']:.1f} % | {caught} | {over} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ (d) more scenes, production resolutions

#: The generators of part (d): the sample scene as jobs pin it (no denoiser, dither 0), with Blender's defaults
#: (OIDN denoiser, dither 1), and denoised by a compositor Denoise node (tests/scenes/).
GENERATORS = {"plain": REPO / "scripts" / "make_scene.py",
              "artist defaults (OIDN, dither 1)": REPO / "tests" / "scenes" / "artist_defaults.py",
              "compositor Denoise node": REPO / "tests" / "scenes" / "compositor_denoise.py"}
#: (generator, width, height, samples): few samples, so that 1920x1080 renders in seconds on two cores. Few
#: samples make the honest floor low (noisy frames) and the cost ratio high (Cycles' fixed cost per render
#: weighs more): both err on the side of tier 1 looking worse than on a production frame.
SCENES_D = (("plain", 960, 540, 8), ("artist defaults (OIDN, dither 1)", 960, 540, 8),
            ("compositor Denoise node", 960, 540, 8), ("plain", 960, 540, 2),
            ("plain", 1920, 1080, 4), ("artist defaults (OIDN, dither 1)", 1920, 1080, 4))
#: The code's tier-1 threshold (coordinator/verification/tier1.py) is judged alongside the honest-min rule.
SHIPPED_THRESHOLD = tier1.MIN_TILE_PSNR


def generate(kind: str, width: int, height: int, samples: int, frames: int, directory: Path) -> Path:
    out = directory / f"{len(list(directory.glob('*.blend')))}_{width}x{height}_{samples}.blend"
    subprocess.run([sys.executable, str(GENERATORS[kind]), str(out), "--frames", str(frames), "--width",
                    str(width), "--height", str(height), "--samples", str(samples)],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


async def scene_d(kind: str, width: int, height: int, samples: int, frames: int, placements: int,
                  thresholds: tuple[float, ...], rng: random.Random, directory: Path) -> dict[str, Any]:
    """Honest floor, per-check detection and cost ratio of tier 1 on one scene: full frames 1..frames+1 and tier-1
    renders of 1..frames at every factor, in one warm process (each render timed: the cost ratio is the median
    tier-1 time over the median full-frame time of the same process). A cheat counts as caught ("chain") when
    tier 1 flags it and the strict region check of the follow-up region (tier1.follow_up_region) would fail."""
    blend = generate(kind, width, height, samples, frames + 1, directory)
    out = directory / blend.stem
    out.mkdir()
    full: dict[int, np.ndarray] = {}
    low: dict[tuple[int, int], np.ndarray] = {}
    times: dict[str, list[float]] = {"full": [], **{f"tier1_{k}": [] for k in FACTORS}}
    async with RenderProcess(BlenderLauncher.discover(None)) as process:
        await process.open(blend, device="CPU", threads=cal.THREADS)
        await process.render_region(1, [0, 0, 8, 8], out / "warmup.png")
        for f in range(1, frames + 2):
            t = time.perf_counter()
            await process.render(f, out / f"full_{f}.png")
            times["full"].append(time.perf_counter() - t)
            full[f] = cal.load(out / f"full_{f}.png")
            if f > frames:
                continue
            for factor in FACTORS:
                w, h = width * (100 // factor) // 100, height * (100 // factor) // 100
                path = out / f"low_{factor}_{f}.png"
                t = time.perf_counter()
                await process.render_region(f, [0, 0, w, h], path, overrides=tier1_overrides(factor))
                times[f"tier1_{factor}"].append(time.perf_counter() - t)
                low[(factor, f)] = cal.load(path)
            log(f"{kind} {width}x{height} {samples} spp: frame {f}, full {times['full'][-1]:.1f} s")
    full_s = statistics.median(times["full"])
    by_factor = {}
    for factor in FACTORS:
        def judged(image: np.ndarray, f: int, k: int = factor) -> tuple[float, bool]:
            """The tier-1 score, and whether the strict region check a flag orders would fail (a pixel of the
            follow-up region more than STRICT_PIXEL_TOLERANCE off the honest frame)."""
            compared = tier1.compare(image, low[(k, f)], k)
            r = tier1.follow_up_region(compared, width, height)
            fails = cal.strict_fail_mask(image[r.y:r.y + r.height, r.x:r.x + r.width],
                                         full[f][r.y:r.y + r.height, r.x:r.x + r.width])
            return compared.min_tile_psnr, bool(fails.any())

        honest = [judged(full[f], f)[0] for f in range(1, frames + 1)]
        adjacent = [judged(full[f + 1], f) for f in range(1, frames + 1)]
        tamper = [judged(cal.tampered(full[f], fa.draw_region(rng, width, height, REGION_FRACTION)), f)
                  for f in range(1, frames + 1) for _ in range(placements)]
        rule = {"honest min - 1 dB": min(honest) - MARGIN_DB, **{f"{t:g} dB": t for t in thresholds}}

        def caught(cases: list[tuple[float, bool]], t: float) -> dict[str, float]:
            return {"flag": float(np.mean([psnr < t for psnr, _ in cases])),
                    "chain": float(np.mean([psnr < t and fails for psnr, fails in cases]))}

        by_factor[str(factor)] = {
            "honest_db": cal.spread(honest), "adjacent_db": cal.spread([v for v, _ in adjacent]),
            "tamper_db": cal.spread([v for v, _ in tamper]),
            "ratio": statistics.median(times[f"tier1_{factor}"]) / full_s,
            "rules": {name: {"threshold_db": t, "honest_flags": sum(v < t for v in honest),
                             "d": {"adjacent_frame": caught(adjacent, t), "tamper": caught(tamper, t)}}
                      for name, t in rule.items()}}
    return {"scene": f"{kind}, {width}x{height}, {samples} spp", "frames": frames, "placements": placements,
            "full_seconds": full_s, "factors": by_factor}


async def run_scenes(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    thresholds = tuple(args.thresholds)
    return {"d": [await scene_d(kind, w, h, s, args.scene_frames, args.scene_placements, thresholds, rng,
                                directory) for kind, w, h, s in SCENES_D]}


def markdown_d(result: dict[str, Any]) -> str:
    lines = ["**(d) Tier 1 on more scenes** (honest frames, the adjacent frame and 1/16 tampers against the "
             "verifier's low-resolution render; min tile PSNR over 8x8 tiles; flags of honest frames / frames, "
             "and per-check d, at each threshold; cost = median tier-1 render / median full render, same process)",
             "", "| scene | factor | honest min (median) dB | adjacent max dB | tamper max dB | cost ratio | "
             "per threshold: honest flags, d adjacent, d tamper |", "|---|---:|---:|---:|---:|---:|---|"]
    for scene in result["d"]:
        for factor, m in scene["factors"].items():
            rules = "; ".join(f"{name}: {r['honest_flags']}/{scene['frames']}, "
                              f"{r['d']['adjacent_frame']['chain']:.3f}, {r['d']['tamper']['chain']:.3f}"
                              for name, r in m["rules"].items())
            lines.append(f"| {scene['scene']} | 1/{factor} | {m['honest_db']['min']:.1f} "
                         f"({m['honest_db']['median']:.1f}) | {m['adjacent_db']['max']:.1f} | "
                         f"{m['tamper_db']['max']:.1f} | {m['ratio']:.3f} | {rules} |")
    return "\n".join(lines)


async def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    blend = make_scene(SCENE, directory)
    out = directory / "renders"
    out.mkdir()
    full, low = await render_all(blend, out, args.frames)
    a = part_a(full, low, args.frames, args.placements, args.seed)
    b = [await costs(SCENE, args.repeats, directory)]
    if args.large_repeats:
        b.append(await costs(LARGE, args.large_repeats, directory))
    return {"a": a, "b": b, "c": part_c(a, b)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--placements", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--large-repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--scenes", action="store_true", help="part (d) only: more scenes, 960x540 and 1920x1080")
    parser.add_argument("--scene-frames", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="render into this directory and keep it (else a temporary one)")
    parser.add_argument("--scene-placements", type=int, default=40)
    parser.add_argument("--thresholds", type=float, nargs="*", default=[SHIPPED_THRESHOLD, 24.0, 27.0])
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as directory:
        where = Path(directory)
        if args.keep:
            where = args.keep
            where.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run_scenes(args, where) if args.scenes else run(args, where))
    result["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    result["load_average"] = os.getloadavg()
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    print(markdown_d(result) if args.scenes else markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
