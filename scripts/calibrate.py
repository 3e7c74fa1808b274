"""Re-derive the verification thresholds of ``coordinator/frame_analysis.py`` from real renders.

Run with the venv that has ``bpy`` (for instance after a Blender upgrade, to see whether the shipped constants
still hold)::

    .venv/bin/python scripts/calibrate.py [--out calibration.json] [--width 64 --height 36 --samples 8]
                                          [--regions 200] [--frames 6] [--seed 0]

What it does, in one warm :class:`~framehive.worker_agent.blender.RenderProcess` (CPU):

1. Generates the sample scene (``scripts/make_scene.py``, ``2 * --frames`` frames) and *another scene* (the
   same generator with another camera, sky and cube colour) into a temporary directory.
2. Renders what renderers deliver for the odd frames 1, 3, 5, ... (the *worker images*), one case each:
   honest (seed 0, 2 threads), honest with 1 thread, honest on "another device" (another seed), and the
   cheats: a blank frame (mean colour), the adjacent frame, the other scene's frame, 1/8 of the samples, half
   resolution upscaled with Pillow, and a 1/16 rectangle filled with its mean colour (the tamper: one per
   region, placed with ``draw_region`` too).
3. Draws ``--regions`` check regions exactly as the coordinator does (``frame_analysis.draw_region`` with
   ``keys.REGION_FRACTION``, here from a seeded ``random.Random``), spread over the frames, and renders each
   one as a verifier would: ``render_region`` of the region plus ``checks.MARGIN`` px, the inside cut out
   (``decide.judge``). Twice: with the job's seed (the same-device verifier, *strict* mode) and with seed 1
   (a verifier of another device class, *cross* mode).
4. Compares every case's crop with both references (``strict_metrics``, ``cross_metrics``) and derives
   (a) the margins of the strict thresholds: the largest honest same-seed ``maxabs`` / ``frac_over_4`` against
   the smallest of each cheat, and where the shipped ``STRICT_*`` constants sit between them; (b) a cross
   tolerance from the honest other-seed pairs (``calibrate_cross``), with a held-out check (calibrated on the
   even regions, tried on the odd ones) and the fail rate of every case under it and under the shipped
   ``DEFAULT_CROSS_TOLERANCE``.

The JSON report holds the settings, Blender version, date, per-case metric distributions (min / median / max),
fail counts, the derived thresholds and, per region, the raw metrics (``records``) that the tests judge;
``benchmarks/verification.py`` imports this module's functions. Everything random is seeded (``--seed``): two
runs with the same Blender build give the same report apart from dates and timings. A summary goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator.verification.checks import MARGIN
from framehive.coordinator.verification.keys import REGION_FRACTION
from framehive.worker_agent.blender import BlenderLauncher, RenderProcess
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MAKE_SCENE = REPO / "scripts" / "make_scene.py"

#: The job's seed (``make_scene.py`` pins 0): what an honest renderer and a same-device verifier use.
HONEST_SEED = 0
#: The cross-mode verifier: another device class gives other noise, simulated by another seed (research §2).
CROSS_VERIFIER_SEED = 1
#: An honest renderer of another device class than the strict verifier (its own noise again).
OTHER_DEVICE_SEED = 2
#: The low-sample cheat renders this fraction of the job's samples (at least 1).
LOW_SAMPLE_DIVISOR = 8
#: The tamper covers about this share of the frame (placed by ``draw_region``, so corners can be hit too).
TAMPER_FRACTION = 1 / 16
#: Threads of the honest render and of the verifier; ``honest_1_thread`` uses 1 (research §2: same pixels).
THREADS = 2
#: Frames are decoded with the coordinator's decoder; far more than any calibration size.
MAX_PIXELS = 64 * 1024 * 1024

# The other scene: the same generator with another camera, sky and cube colour (a different shot).
OTHER_SCENE_SCRIPT = r"""
import sys
from pathlib import Path

import bpy
from mathutils import Vector

sys.path.insert(0, sys.argv[-6])
import make_scene

out, frames, width, height, samples = sys.argv[-5], *map(int, sys.argv[-4:])
make_scene.CAMERA_LOCATION = Vector((5.5, -5.0, 2.5))
make_scene.CAMERA_TARGET = Vector((-0.5, 0.5, 0.3))
make_scene.build_scene(out, frames=frames, width=width, height=height, samples=samples)
bpy.data.worlds["World"].color = (0.12, 0.09, 0.05)
cube = bpy.data.materials["Red"].node_tree.nodes["Principled BSDF"]
cube.inputs["Base Color"].default_value = (0.1, 0.7, 0.1, 1.0)
bpy.ops.wm.save_mainfile(filepath=str(Path(out).resolve()))
"""


@dataclass(frozen=True)
class Case:
    """What a renderer delivers for a frame.

    ``kind``: ``honest`` (same device class as the strict verifier: strict and cross must pass),
    ``other_device`` (honest, but another device class: cross must pass, strict does not apply) or ``cheat``.
    ``scope``: ``frame`` for fakes that change every pixel, ``local`` for the tamper (only regions over it can
    see it), ``moving`` for the adjacent frame: a whole-frame fake, but the sample scene's camera is still, so it
    differs from the right frame only where something moves (the cube, its shadow, some indirect light).
    """

    name: str
    kind: str
    scope: str
    description: str


CASES: tuple[Case, ...] = (
    Case("honest", "honest", "frame", f"seed {HONEST_SEED}, {THREADS} threads: what the job asks for"),
    Case("honest_1_thread", "honest", "frame", f"seed {HONEST_SEED}, 1 thread (the verifier uses {THREADS})"),
    Case("other_seed", "other_device", "frame", f"seed {OTHER_DEVICE_SEED}: an honest renderer of another "
         "device class (other noise)"),
    Case("blank", "cheat", "frame", "the honest frame's mean colour everywhere"),
    Case("adjacent_frame", "cheat", "moving", "frame f+1 delivered as frame f (static camera: only what moves "
         "differs)"),
    Case("other_scene", "cheat", "frame", "frame f of another scene (other camera, sky and cube colour)"),
    Case("low_samples", "cheat", "frame", f"1/{LOW_SAMPLE_DIVISOR} of the samples"),
    Case("upscaled", "cheat", "frame", "rendered at 50% resolution, upscaled with Pillow (bicubic)"),
    Case("tamper", "cheat", "local", "a 1/16 rectangle (draw_region) filled with its mean colour"),
)
CASE_BY_NAME = {case.name: case for case in CASES}
HONEST_SAME_SEED = tuple(c.name for c in CASES if c.kind == "honest")
#: The honest other-seed pairs the cross tolerance is calibrated on: worker seed 0 or 2 vs verifier seed 1.
HONEST_OTHER_SEED = ("honest", "other_seed")
WHOLE_FRAME_CHEATS = tuple(c.name for c in CASES if c.kind == "cheat" and c.scope == "frame")

STRICT_KEYS = ("maxabs", "frac_over_4", "psnr")
CROSS_KEYS = ("psnr", "ssim", "tile_psnr_min", "tile_phash_max")


@dataclass(frozen=True)
class Draw:
    """One check: the frame, the secret region, what the verifier renders (region + margin), a tamper spot."""

    frame: int
    region: fa.Region
    rect: fa.Region
    tamper: fa.Region


@dataclass
class Collected:
    """Everything rendered: worker images per case and frame, verifier crops per draw, and timings."""

    width: int
    height: int
    samples: int
    frames: list[int]
    images: dict[str, dict[int, np.ndarray]]
    draws: list[Draw]
    strict_refs: list[np.ndarray]
    cross_refs: list[np.ndarray]
    blender_version: str
    seconds: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- scenes


def odd_frames(count: int) -> list[int]:
    """The frames compared: 1, 3, 5, ... (``count`` of them); the even ones are their adjacent frames."""
    return [2 * i + 1 for i in range(count)]


def make_scenes(directory: Path, width: int, height: int, samples: int, frames: int) -> tuple[Path, Path]:
    """Generate the sample scene and the other scene (child Pythons with bpy); returns both .blend paths."""
    sample = directory / f"sample_{width}x{height}_{samples}s.blend"
    other = directory / f"other_{width}x{height}_{samples}s.blend"
    size = [str(frames), str(width), str(height), str(samples)]
    subprocess.run([sys.executable, str(MAKE_SCENE), str(sample), "--frames", size[0], "--width", size[1],
                    "--height", size[2], "--samples", size[3]], check=True, capture_output=True, cwd=REPO)
    script = directory / "other_scene.py"
    script.write_text(OTHER_SCENE_SCRIPT)
    subprocess.run([sys.executable, str(script), str(MAKE_SCENE.parent), str(other), *size], check=True,
                   capture_output=True, cwd=REPO)
    return sample, other


# ---------------------------------------------------------------------------------------------- cheats


def load(path: Path) -> np.ndarray:
    """A PNG as the coordinator decodes it."""
    return fa.decode(path.read_bytes(), MAX_PIXELS)


def blank(image: np.ndarray) -> np.ndarray:
    """The image's mean colour everywhere (a blank frame that is not simply black)."""
    mean = image.reshape(-1, image.shape[2]).mean(axis=0).round().astype(np.uint8)
    return np.broadcast_to(mean, image.shape).copy()


def upscale(half: np.ndarray, width: int, height: int) -> np.ndarray:
    """A reduced render blown up to the job's size with Pillow's bicubic filter."""
    return np.asarray(Image.fromarray(half).resize((width, height), Image.BICUBIC))


def tampered(image: np.ndarray, rect: fa.Region) -> np.ndarray:
    """``image`` with ``rect`` filled with its own mean colour."""
    out = image.copy()
    patch = out[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
    patch[...] = patch.reshape(-1, patch.shape[2]).mean(axis=0).round().astype(np.uint8)
    return out


def strict_fail_mask(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Pixels with any channel off by more than ``STRICT_PIXEL_TOLERANCE``: where a strict check can fail.

    With ``STRICT_MAX_ABS == STRICT_PIXEL_TOLERANCE`` (shipped), a strict check of a region fails exactly when
    the region holds one such pixel (``maxabs`` is then above the limit).
    """
    diff = np.abs(image.astype(np.int16) - reference.astype(np.int16))
    return np.any(diff > fa.STRICT_PIXEL_TOLERANCE, axis=-1)


def worker_crop(collected: Collected, case: str, index: int) -> np.ndarray:
    """What the renderer of ``case`` delivered, cut to draw ``index``'s region."""
    draw = collected.draws[index]
    if case == "tamper":
        image = tampered(collected.images["honest"][draw.frame], draw.tamper)
    else:
        image = collected.images[case][draw.frame]
    return fa.crop(image, draw.region)


# ---------------------------------------------------------------------------------------------- rendering


def draw_checks(rng: random.Random, frames: list[int], count: int, width: int, height: int) -> list[Draw]:
    """``count`` checks spread round-robin over ``frames``: region as the coordinator draws it, plus a tamper."""
    draws = []
    for i in range(count):
        region = fa.draw_region(rng, width, height, REGION_FRACTION)
        tamper = fa.draw_region(rng, width, height, TAMPER_FRACTION)
        draws.append(Draw(frames[i % len(frames)], region, region.expanded(MARGIN, width, height), tamper))
    return draws


async def render_worker_images(
    process: RenderProcess, sample: Path, other: Path, frames: list[int], samples: int, out: Path
) -> dict[str, dict[int, np.ndarray]]:
    """Render every case's full frames (the tamper and blank are derived from the honest frames)."""
    images: dict[str, dict[int, np.ndarray]] = {case.name: {} for case in CASES if case.name != "tamper"}
    await process.open(other, device="CPU", threads=THREADS)
    for f in frames:
        await process.render(f, out / f"other_{f}.png")
        images["other_scene"][f] = load(out / f"other_{f}.png")
    await process.open(sample, device="CPU", threads=1)
    for f in frames:
        await process.render(f, out / f"t1_{f}.png")
        images["honest_1_thread"][f] = load(out / f"t1_{f}.png")
    opened = await process.open(sample, device="CPU", threads=THREADS)  # the verifier's settings from here on
    width, height = opened["resolution"]
    whole = [0, 0, width, height]
    half = [0, 0, width * 50 // 100, height * 50 // 100]
    low = {"samples": max(1, samples // LOW_SAMPLE_DIVISOR)}
    for f in frames:
        await process.render(f, out / f"honest_{f}.png")
        images["honest"][f] = load(out / f"honest_{f}.png")
        images["blank"][f] = blank(images["honest"][f])
        await process.render(f + 1, out / f"adjacent_{f}.png")
        images["adjacent_frame"][f] = load(out / f"adjacent_{f}.png")
        await process.render_region(f, whole, out / f"seed_{f}.png", overrides={"seed": OTHER_DEVICE_SEED})
        images["other_seed"][f] = load(out / f"seed_{f}.png")
        await process.render_region(f, whole, out / f"low_{f}.png", overrides=low)
        images["low_samples"][f] = load(out / f"low_{f}.png")
        await process.render_region(f, half, out / f"half_{f}.png", overrides={"resolution_percentage": 50})
        images["upscaled"][f] = upscale(load(out / f"half_{f}.png"), width, height)
    return images


async def render_references(
    process: RenderProcess, draws: list[Draw], out: Path
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each draw rendered like a verifier does (region + margin, inside cut out): job seed and cross seed."""
    strict_refs, cross_refs = [], []
    for i, draw in enumerate(draws):
        inner = draw.region.relative_to(draw.rect)
        for refs, overrides, name in ((strict_refs, None, "s"), (cross_refs, {"seed": CROSS_VERIFIER_SEED}, "c")):
            path = out / f"region_{i}_{name}.png"
            await process.render_region(draw.frame, draw.rect.as_list(), path, overrides=overrides)
            refs.append(fa.crop(load(path), inner).copy())
    return strict_refs, cross_refs


async def collect(
    width: int, height: int, samples: int, frame_count: int, regions: int, seed: int, directory: Path
) -> Collected:
    """Generate the scenes and render everything in one warm process (the whole data of a calibration)."""
    frames = odd_frames(frame_count)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    sample, other = make_scenes(directory, width, height, samples, 2 * frame_count)
    timings["scenes"] = time.perf_counter() - t
    out = directory / "renders"
    out.mkdir(exist_ok=True)
    draws = draw_checks(random.Random(seed), frames, regions, width, height)
    async with RenderProcess(BlenderLauncher.discover(None)) as process:
        version = str(process.ready_info.get("blender_version")) if process.ready_info else "unknown"
        t = time.perf_counter()
        images = await render_worker_images(process, sample, other, frames, samples, out)
        timings["worker_images"] = time.perf_counter() - t
        t = time.perf_counter()
        strict_refs, cross_refs = await render_references(process, draws, out)
        timings["region_renders"] = time.perf_counter() - t
    return Collected(width, height, samples, frames, images, draws, strict_refs, cross_refs, version, timings)


# ---------------------------------------------------------------------------------------------- measuring


def measure(collected: Collected, cases: tuple[str, ...] | None = None) -> dict[str, dict[str, list[dict]]]:
    """Strict metrics (against the job-seed verifier) and cross metrics (against the cross verifier) per draw."""
    records: dict[str, dict[str, list[dict]]] = {}
    for name in cases or tuple(CASE_BY_NAME):
        strict, cross = [], []
        for i in range(len(collected.draws)):
            crop = worker_crop(collected, name, i)
            strict.append(fa.strict_metrics(crop, collected.strict_refs[i]))
            cross.append(fa.cross_metrics(crop, collected.cross_refs[i]))
        records[name] = {"strict": strict, "cross": cross}
    return records


def draw_facts(collected: Collected) -> list[dict[str, Any]]:
    """Per draw, from the full frames alone: pixels the tamper shares with the region, and per case how many
    pixels of the region differ from the honest frame by more than ``STRICT_PIXEL_TOLERANCE``."""
    out = []
    for i, draw in enumerate(collected.draws):
        honest = fa.crop(collected.images["honest"][draw.frame], draw.region)
        changed = {name: int(strict_fail_mask(worker_crop(collected, name, i), honest).sum()) for name in CASE_BY_NAME}
        x0, y0 = max(draw.region.x, draw.tamper.x), max(draw.region.y, draw.tamper.y)
        x1 = min(draw.region.x + draw.region.width, draw.tamper.x + draw.tamper.width)
        y1 = min(draw.region.y + draw.region.height, draw.tamper.y + draw.tamper.height)
        out.append({"tamper_overlap_px": max(0, x1 - x0) * max(0, y1 - y0), "changed_px": changed})
    return out


def spread(values: list[float]) -> dict[str, float]:
    """Minimum, median and maximum."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def strict_fails(records: list[dict]) -> int:
    """How many of these strict comparisons the shipped thresholds reject."""
    return sum(not fa.decide(m, "strict").passed for m in records)


def cross_fails(records: list[dict], tolerance: fa.CrossTolerance) -> int:
    """How many of these cross comparisons ``tolerance`` rejects."""
    return sum(not fa.decide(m, "cross", tolerance).passed for m in records)


def tolerance_dict(tolerance: fa.CrossTolerance) -> dict[str, float]:
    return {"min_psnr": tolerance.min_psnr, "min_ssim": tolerance.min_ssim,
            "min_tile_psnr": tolerance.min_tile_psnr, "max_tile_phash": tolerance.max_tile_phash}


def honest_cross(records: dict[str, dict[str, list[dict]]], indices: range | list[int] | None = None) -> list[dict]:
    """The honest other-seed pairs' cross metrics (optionally of some draws only)."""
    pairs = []
    for name in HONEST_OTHER_SEED:
        cross = records[name]["cross"]
        pairs += [cross[i] for i in (range(len(cross)) if indices is None else indices)]
    return pairs


def strict_margins(records: dict[str, dict[str, list[dict]]]) -> dict[str, Any]:
    """(a) Where the shipped strict thresholds sit between honest same-seed crops and cheats.

    Per cheat, regions where the cheat's pixels equal the honest ones (``maxabs`` 0: no comparison can see it
    there, e.g. the static background of an adjacent frame) are counted apart; the smallest ``maxabs`` and
    ``frac_over_4`` are taken over the regions where the cheat differs at all.
    """
    honest = [m for name in HONEST_SAME_SEED for m in records[name]["strict"]]
    honest_max = {key: max(m[key] for m in honest) for key in ("maxabs", "frac_over_4")}
    per_cheat = {}
    for case in CASES:
        if case.kind != "cheat":
            continue
        strict = records[case.name]["strict"]
        differing = [m for m in strict if m["maxabs"] > 0]
        over = [m["frac_over_4"] for m in strict if m["frac_over_4"] > 0]
        per_cheat[case.name] = {
            "regions": len(strict),
            "identical": len(strict) - len(differing),
            "differing_within_shipped": sum(0 < m["maxabs"] <= fa.STRICT_MAX_ABS for m in strict),
            "min_maxabs_differing": min((m["maxabs"] for m in differing), default=None),
            "min_frac_over_4_nonzero": min(over, default=None),
        }
    cheat_maxabs = min(v["min_maxabs_differing"] for v in per_cheat.values() if v["min_maxabs_differing"])
    cheat_frac = min(v["min_frac_over_4_nonzero"] for v in per_cheat.values() if v["min_frac_over_4_nonzero"])
    return {
        "honest_same_seed_max": honest_max,
        "per_cheat": per_cheat,
        "maxabs": {"honest_max": honest_max["maxabs"], "cheat_min": cheat_maxabs, "shipped": fa.STRICT_MAX_ABS,
                   "shipped_between": honest_max["maxabs"] <= fa.STRICT_MAX_ABS < cheat_maxabs},
        "frac_over_4": {"honest_max": honest_max["frac_over_4"], "cheat_min": cheat_frac,
                        "shipped": fa.STRICT_MAX_FRAC_OVER,
                        "shipped_between": honest_max["frac_over_4"] <= fa.STRICT_MAX_FRAC_OVER < cheat_frac},
        "pixel_tolerance": fa.STRICT_PIXEL_TOLERANCE,
    }


def derive(
    records: dict[str, dict[str, list[dict]]]
) -> tuple[dict[str, Any], fa.CrossTolerance]:
    """(a) the strict thresholds' margins; (b) the calibrated cross tolerance, with a held-out check."""
    tolerance = fa.calibrate_cross(honest_cross(records))
    count = len(records["honest"]["cross"])
    held_out_tolerance = fa.calibrate_cross(honest_cross(records, range(0, count, 2)))
    held_out = honest_cross(records, range(1, count, 2))
    cross = {
        "tolerance": tolerance_dict(tolerance),
        "calibrated_on": f"{len(honest_cross(records))} honest other-seed pairs ({', '.join(HONEST_OTHER_SEED)} "
                         f"vs the seed-{CROSS_VERIFIER_SEED} verifier)",
        "held_out": {"tolerance": tolerance_dict(held_out_tolerance), "calibrated_on": "even draws",
                     "tried_on": f"{len(held_out)} pairs of the odd draws",
                     "false_rejects": cross_fails(held_out, held_out_tolerance)},
        "default_tolerance": tolerance_dict(fa.DEFAULT_CROSS_TOLERANCE),
        "default_false_rejects": cross_fails(honest_cross(records), fa.DEFAULT_CROSS_TOLERANCE),
        "honest_pairs": len(honest_cross(records)),
    }
    return {"strict": strict_margins(records), "cross": cross}, tolerance


def summarise_cases(
    records: dict[str, dict[str, list[dict]]], facts: list[dict[str, Any]], tolerance: fa.CrossTolerance
) -> dict[str, Any]:
    """Per case: description, metric distributions and how many regions each rule rejects."""
    cases = {}
    for name, per_mode in records.items():
        case = CASE_BY_NAME[name]
        entry: dict[str, Any] = {
            "kind": case.kind,
            "scope": case.scope,
            "description": case.description,
            "regions": len(per_mode["strict"]),
            "strict": {key: spread([m[key] for m in per_mode["strict"]]) for key in STRICT_KEYS},
            "cross": {key: spread([m[key] for m in per_mode["cross"]]) for key in CROSS_KEYS},
            "strict_fails": strict_fails(per_mode["strict"]),
            "strict_fails_if_bit_exact": sum(m["maxabs"] > 0 for m in per_mode["strict"]),
            "cross_fails_calibrated": cross_fails(per_mode["cross"], tolerance),
            "cross_fails_default": cross_fails(per_mode["cross"], fa.DEFAULT_CROSS_TOLERANCE),
        }
        if name == "tamper":
            hit = [i for i, o in enumerate(facts) if o["tamper_overlap_px"] > 0]
            seen = [i for i, o in enumerate(facts) if o["changed_px"]["tamper"] > 0]
            strict = per_mode["strict"]
            entry["overlapping_regions"] = len(hit)
            entry["regions_over_changed_pixels"] = len(seen)
            entry["strict_fails_overlapping"] = strict_fails([strict[i] for i in hit])
        cases[name] = entry
    return cases


def report(collected: Collected, records: dict[str, dict[str, list[dict]]], command: str) -> dict[str, Any]:
    """The calibration as a JSON-ready dictionary."""
    facts = draw_facts(collected)
    derived, tolerance = derive(records)
    return {
        "tool": "scripts/calibrate.py",
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "blender_version": collected.blender_version,
        "settings": {
            "width": collected.width, "height": collected.height, "samples": collected.samples,
            "frames": collected.frames, "regions": len(collected.draws), "region_fraction": REGION_FRACTION,
            "margin": MARGIN, "tamper_fraction": TAMPER_FRACTION, "honest_seed": HONEST_SEED,
            "cross_verifier_seed": CROSS_VERIFIER_SEED, "other_device_seed": OTHER_DEVICE_SEED,
            "threads": THREADS, "device": "CPU",
        },
        "cases": summarise_cases(records, facts, tolerance),
        "derived": derived,
        "draws": [{"frame": d.frame, "region": d.region.as_list(), "render_rect": d.rect.as_list(),
                   "tamper": d.tamper.as_list(), **o} for d, o in zip(collected.draws, facts, strict=True)],
        "records": records,
        "seconds": collected.seconds,
    }


def run(args: argparse.Namespace, directory: Path) -> tuple[Collected, dict[str, Any]]:
    """Render, measure and derive; returns the collected renders and the report."""
    started = time.perf_counter()
    collected = asyncio.run(collect(args.width, args.height, args.samples, args.frames, args.regions, args.seed,
                                    directory))
    t = time.perf_counter()
    records = measure(collected)
    collected.seconds["metrics"] = time.perf_counter() - t
    collected.seconds["total"] = time.perf_counter() - started
    command = " ".join([".venv/bin/python scripts/calibrate.py", *args.argv])
    return collected, report(collected, records, command)


# ---------------------------------------------------------------------------------------------- entry point


def summary_text(result: dict[str, Any]) -> str:
    """A short human summary of the report."""
    s = result["settings"]
    lines = [f"calibration: Blender {result['blender_version']}, {s['width']}x{s['height']}, {s['samples']} spp, "
             f"frames {s['frames']}, {s['regions']} regions, {result['seconds']['total']:.0f} s",
             "case              strict fails   cross fails (calibrated / default)   strict maxabs min-max"]
    for name, c in result["cases"].items():
        lines.append(f"{name:17} {c['strict_fails']:5}/{c['regions']:<5}   {c['cross_fails_calibrated']:5} / "
                     f"{c['cross_fails_default']:<5}                        "
                     f"{c['strict']['maxabs']['min']}-{c['strict']['maxabs']['max']}")
    d = result["derived"]
    for key in ("maxabs", "frac_over_4"):
        m = d["strict"][key]
        lines.append(f"strict {key}: honest max {m['honest_max']}, smallest differing cheat {m['cheat_min']}, "
                     f"shipped {m['shipped']} in between: {m['shipped_between']}")
    c = d["cross"]
    lines.append(f"cross tolerance: {c['tolerance']}; held out: {c['held_out']['false_rejects']} false rejects; "
                 f"shipped default rejects {c['default_false_rejects']} of {c['honest_pairs']} honest pairs")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("calibration.json"), help="JSON report to write")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=36)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--regions", type=int, default=200, help="check regions drawn (spread over the frames)")
    parser.add_argument("--frames", type=int, default=6, help="frames compared (1, 3, 5, ...)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the region draws")
    args = parser.parse_args(argv)
    for name in ("width", "height", "samples", "regions", "frames"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.regions < 2:
        parser.error("--regions must be at least 2 (the held-out check splits them)")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="framehive-calibrate-") as tmp:
        _collected, result = run(args, Path(tmp))
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(summary_text(result), file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
