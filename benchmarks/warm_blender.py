"""Benchmark: one warm Blender per job versus a new Blender per frame.

Run from the repository root with the venv that has ``bpy``::

    .venv/bin/python -m benchmarks.warm_blender [--frames 8] [--repeats 5] [--width 64 --height 36 --samples 8]
                                                [--warmup 1] [--json results.json]

Without size options it measures two scenes: the tiny test scene (64x36, 8 samples, 8 frames) and a bigger
one (320x180, 32 samples, 3 frames), so the table shows the saving shrink as frames get more expensive. With
any of ``--frames/--width/--height/--samples`` it measures that one scene only (unset options take the tiny
scene's values).

Each scene is generated with ``scripts/make_scene.py`` into a temporary directory, then, per repeat:

* warm: one :class:`~framehive.worker_agent.blender.RenderProcess` is started once, the scene opened once, and the N
  frames rendered one after another: the time from ``start()`` to the last frame (the final ``close()`` is
  timed separately: a worker pays it once per job, after the last frame is done);
* cold: for each frame a new RenderProcess is started, the scene opened, the frame rendered and the process
  closed: what a worker that started Blender per frame would pay;
* start + open: the one-time cost inside the warm run.

The two variants are interleaved, so that load from elsewhere on the machine hits both alike: within a repeat
the warm process renders frame k and a fresh cold process renders frame k, one after the other, in an order
that flips every frame and every repeat. (The warm total is therefore the sum of its own segments, start +
open + renders, without the cold work done in between.) One untimed start + open + close per scene first
fills the page cache. Medians, minima and maxima over the repeats go to a Markdown table; ``--json`` also
writes every sample. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from framehive.worker_agent.blender import BlenderLauncher, RenderProcess

REPO = Path(__file__).resolve().parents[1]
MAKE_SCENE = REPO / "scripts" / "make_scene.py"


@dataclass(frozen=True)
class Scene:
    """One scene size to measure."""

    label: str
    width: int
    height: int
    samples: int
    frames: int


TINY = Scene("tiny (test scene)", 64, 36, 8, 8)
BIGGER = Scene("bigger", 320, 180, 32, 3)
DEFAULT_SCENES = (TINY, BIGGER)


@dataclass
class Samples:
    """Every timed value of one scene, in seconds, one entry per repeat."""

    warm_total: list[float] = field(default_factory=list)  # start + open + the N renders
    warm_start: list[float] = field(default_factory=list)  # start() alone
    warm_open: list[float] = field(default_factory=list)  # open() alone
    warm_render: list[float] = field(default_factory=list)  # the N render() calls, summed
    warm_close: list[float] = field(default_factory=list)  # the final close(), not in warm_total
    cold_total: list[float] = field(default_factory=list)  # N x (start + open + render + close)
    cold_render: list[float] = field(default_factory=list)  # the N render() calls alone, summed
    blender_render_warm: list[float] = field(default_factory=list)  # Blender's own "seconds", summed
    blender_render_cold: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- measuring


async def cold_frame(launcher: BlenderLauncher, blend: Path, frame: int, out_dir: Path) -> tuple[float, float, float]:
    """A new process for one frame: start, open, render, close. Returns (total, render call, Blender's seconds)."""
    process = RenderProcess(launcher)
    t0 = time.perf_counter()
    try:
        await process.start()
        await process.open(blend, device="CPU")
        t1 = time.perf_counter()
        event = await process.render(frame, out_dir / f"cold_{frame:04d}.png")
        t2 = time.perf_counter()
    finally:
        await process.close()
    return time.perf_counter() - t0, t2 - t1, float(event["seconds"])


async def one_repeat(
    launcher: BlenderLauncher, blend: Path, frames: int, out_dir: Path, samples: Samples, cold_first: bool
) -> None:
    """One warm run and one cold run of ``frames`` frames, interleaved frame by frame; appends to ``samples``.

    The warm process is started and the scene opened once; then for every frame the warm process renders it
    and a fresh process renders it cold, in an order that flips every frame (and every repeat). The warm total
    is the sum of its own segments (start, open, renders), which is its start-to-last-frame time minus the
    cold work done in between; a burst of load from elsewhere therefore lands on both variants alike.
    """
    warm = RenderProcess(launcher)
    warm_render = cold_total = cold_render = blender_warm = blender_cold = 0.0
    t0 = time.perf_counter()
    try:
        await warm.start()
        t1 = time.perf_counter()
        await warm.open(blend, device="CPU")
        t2 = time.perf_counter()
        for frame in range(1, frames + 1):
            for variant in ("cold", "warm") if cold_first == (frame % 2 == 1) else ("warm", "cold"):
                if variant == "warm":
                    t = time.perf_counter()
                    event = await warm.render(frame, out_dir / f"warm_{frame:04d}.png")
                    warm_render += time.perf_counter() - t
                    blender_warm += float(event["seconds"])
                else:
                    total, render, seconds = await cold_frame(launcher, blend, frame, out_dir)
                    cold_total += total
                    cold_render += render
                    blender_cold += seconds
    finally:
        t3 = time.perf_counter()
        await warm.close()
        t4 = time.perf_counter()
    samples.warm_start.append(t1 - t0)
    samples.warm_open.append(t2 - t1)
    samples.warm_render.append(warm_render)
    samples.warm_total.append((t1 - t0) + (t2 - t1) + warm_render)
    samples.warm_close.append(t4 - t3)
    samples.cold_total.append(cold_total)
    samples.cold_render.append(cold_render)
    samples.blender_render_warm.append(blender_warm)
    samples.blender_render_cold.append(blender_cold)


def make_scene(scene: Scene, directory: Path) -> Path:
    """Generate the sample scene with scripts/make_scene.py in a child Python; returns the .blend path."""
    out = directory / f"scene_{scene.width}x{scene.height}_{scene.samples}s_{scene.frames}f.blend"
    command = [
        sys.executable,
        str(MAKE_SCENE),
        str(out),
        "--frames",
        str(scene.frames),
        "--width",
        str(scene.width),
        "--height",
        str(scene.height),
        "--samples",
        str(scene.samples),
    ]
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


async def measure(scenes: list[Scene], repeats: int, warmup: int, directory: Path) -> tuple[dict, dict[str, Any]]:
    """Generate every scene, then run the interleaved repeats; returns samples per scene and the ready event."""
    launcher = BlenderLauncher.discover(None)
    blends = {scene: make_scene(scene, directory) for scene in scenes}
    out_dir = directory / "frames"
    out_dir.mkdir()
    results = {scene: Samples() for scene in scenes}
    probe = RenderProcess(launcher)
    try:
        ready = await probe.start()
    finally:
        await probe.close()
    for scene in scenes:  # untimed start + open + close: Blender's libraries and the scene in the page cache
        for _ in range(warmup):
            async with RenderProcess(launcher) as process:
                await process.open(blends[scene], device="CPU")
    for repeat in range(repeats):
        for scene in scenes:
            samples = results[scene]
            await one_repeat(launcher, blends[scene], scene.frames, out_dir, samples, cold_first=repeat % 2 == 1)
            print(
                f"  repeat {repeat + 1}/{repeats} {scene.label}: warm {samples.warm_total[-1]:.2f} s, "
                f"cold {samples.cold_total[-1]:.2f} s (load {os.getloadavg()[0]:.1f})",
                file=sys.stderr,
                flush=True,
            )
    return results, ready


# ---------------------------------------------------------------------------------------------- reporting


def spread(values: list[float]) -> dict[str, float]:
    """Median, minimum and maximum."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(scene: Scene, samples: Samples) -> dict[str, Any]:
    """The figures of one scene: spreads of every phase, per-frame seconds and the cold/warm ratio."""
    n = scene.frames
    warm, cold = spread(samples.warm_total), spread(samples.cold_total)
    start_open = [s + o for s, o in zip(samples.warm_start, samples.warm_open, strict=True)]
    ratios = [c / w for c, w in zip(samples.cold_total, samples.warm_total, strict=True)]
    cold_overhead = [t - r for t, r in zip(samples.cold_total, samples.cold_render, strict=True)]
    return {
        "scene": asdict(scene),
        "repeats": len(samples.warm_total),
        "warm_total_s": warm,
        "cold_total_s": cold,
        "warm_per_frame_s": warm["median"] / n,
        "cold_per_frame_s": cold["median"] / n,
        "ratio_cold_over_warm": cold["median"] / warm["median"],
        "ratio_per_repeat": spread(ratios),
        "start_open_s": spread(start_open),
        "start_s": spread(samples.warm_start),
        "open_s": spread(samples.warm_open),
        "warm_close_s": spread(samples.warm_close),
        "render_per_frame_warm_s": statistics.median(samples.warm_render) / n,
        "render_per_frame_cold_s": statistics.median(samples.cold_render) / n,
        "cold_overhead_per_frame_s": statistics.median(cold_overhead) / n,
        "samples": asdict(samples),
    }


def _range(s: dict[str, float], digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def markdown(summaries: list[dict[str, Any]]) -> str:
    """The results as a Markdown table: medians, with (min–max) over the repeats.

    "cold/warm" is the ratio of the two medians; "cold/warm per repeat" pairs each repeat's cold and warm runs
    (which ran interleaved) and gives the median (min–max) of those ratios.
    """
    lines = [
        "| scene | frames | (a) warm total s | (b) cold total s | warm s/frame | cold s/frame | cold/warm "
        "| cold/warm per repeat | (c) start+open s | render s/frame warm / cold | cold overhead s/frame |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        sc = s["scene"]
        ratio = s["ratio_per_repeat"]
        lines.append(
            f"| {sc['label']}: {sc['width']}x{sc['height']}, {sc['samples']} samples | {sc['frames']} "
            f"| {_range(s['warm_total_s'])} | {_range(s['cold_total_s'])} "
            f"| {s['warm_per_frame_s']:.2f} | {s['cold_per_frame_s']:.2f} "
            f"| **{s['ratio_cold_over_warm']:.2f}×** | {_range(ratio)} "
            f"| {_range(s['start_open_s'])} "
            f"| {s['render_per_frame_warm_s']:.2f} / {s['render_per_frame_cold_s']:.2f} "
            f"| {s['cold_overhead_per_frame_s']:.2f} |"
        )
    return "\n".join(lines)


def machine(ready: dict[str, Any]) -> dict[str, Any]:
    """What the numbers were measured on."""
    model = memory = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory": memory,
        "python": platform.python_version(),
        "blender": ready.get("blender_version"),
        "devices": [f"{d.get('backend')}: {d.get('name')}" for d in ready.get("devices", []) if isinstance(d, dict)],
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


# ---------------------------------------------------------------------------------------------- entry point


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, help=f"frames per run (default: {TINY.frames} and {BIGGER.frames})")
    parser.add_argument("--width", type=int, help="scene width in pixels (default: both default scenes)")
    parser.add_argument("--height", type=int, help="scene height in pixels")
    parser.add_argument("--samples", type=int, help="Cycles samples per pixel")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per variant (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed start+open+close per scene (default 1)")
    parser.add_argument("--json", type=Path, help="also write every sample and the summary to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be at least 1 and --warmup at least 0")
    for name in ("frames", "width", "height", "samples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def scenes_for(args: argparse.Namespace) -> list[Scene]:
    """Both default scenes, or the single scene the size options describe."""
    if all(getattr(args, name) is None for name in ("frames", "width", "height", "samples")):
        return list(DEFAULT_SCENES)
    return [
        Scene(
            "custom",
            args.width or TINY.width,
            args.height or TINY.height,
            args.samples or TINY.samples,
            args.frames or TINY.frames,
        )
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenes = scenes_for(args)
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    with tempfile.TemporaryDirectory(prefix="framehive-bench-") as tmp:
        results, ready = asyncio.run(measure(scenes, args.repeats, args.warmup, Path(tmp)))
    summaries = [summarise(scene, results[scene]) for scene in scenes]
    wall = time.perf_counter() - started
    info = machine(ready)
    print(
        f"\nwarm Blender per job vs. Blender per frame — {date}, {info['cpus']} CPUs ({info['cpu_model']}), "
        f"Blender {info['blender']}, Python {info['python']}, {args.repeats} repeats, wall {wall:.0f} s\n"
    )
    print(markdown(summaries))
    if args.json:
        command = " ".join([".venv/bin/python -m benchmarks.warm_blender", *(sys.argv[1:] if argv is None else argv)])
        report = {
            "benchmark": "warm_blender",
            "date": date,
            "command": command,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "wall_seconds": wall,
            "machine": info,
            "results": summaries,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
