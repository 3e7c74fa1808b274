"""Part (d) of benchmarks/verification.py: the comparison rule itself, on plain, dithered and denoised scenes.

For each scene variant (the sample scene at two sizes, rendered with the artist's dither and denoiser settings
as a job now keeps them) it renders full frames of every case (honest; another device class, i.e. another seed;
and the cheats) and, for ``regions`` random check regions drawn like keys.py draws them, what a verifier uploads:
the region plus ``checks.MARGIN`` rendered with the job's seed and with a fresh yardstick seed. Every case's
crop is then judged by the shipped rule, ``frame_analysis.judge_region``:

- *same class*: strict, and for a denoised scene the yardstick too (the verifier renders one: task_runner);
- *cross class*: the yardstick rule (the renderer is of another device class, here: another seed);
- *before*: today's shipped strict rule alone, which is what every same-class check was judged by.

For honest cases a failed check is a false reject; for cheats a failed check is a detection (d per check).
The honest ratio's tail (how far below ``YARDSTICK_MAX_RATIO`` the worst honest crop stays) is reported too.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator.verification.checks import MARGIN
from framehive.coordinator.verification.keys import REGION_FRACTION, SPOT_FRACTION
from framehive.worker_agent.blender import BlenderLauncher, RenderProcess

from benchmarks.warm_blender import Scene, make_scene

#: Seeds: the job's (the sample scene's 0); an honest renderer of another device class; yardsticks start here.
JOB_SEED, OTHER_CLASS_SEED, FIRST_YARDSTICK_SEED = 0, 2, 1000
FRAMES = (1, 5, 9)
CASES = ("honest", "other_class", "blank", "adjacent_frame", "other_scene", "low_samples", "upscaled", "tamper")
HONEST = ("honest", "other_class")
#: Cross limits at which the share of failing checks is also reported (the shipped one is YARDSTICK_MAX_RATIO).
CROSS_LIMITS = (3.0, 4.0, 5.0, 6.0, 8.0)


@dataclass(frozen=True)
class Variant:
    """A scene as an artist might set it: size, samples, dither and denoiser."""

    label: str
    width: int
    height: int
    samples: int
    dither: float
    denoise: bool

    @property
    def settings(self) -> dict[str, Any]:
        return {"dither_intensity": self.dither, "use_denoising": self.denoise}


VARIANTS = (
    Variant("64x36 plain (dither 0, no denoiser)", 64, 36, 8, 0.0, False),
    Variant("64x36 dithered (dither 1)", 64, 36, 8, 1.0, False),
    Variant("64x36 denoised + dithered (Blender's defaults)", 64, 36, 8, 1.0, True),
    Variant("192x108 plain", 192, 108, 16, 0.0, False),
    Variant("192x108 denoised + dithered", 192, 108, 16, 1.0, True),
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _frames(process: RenderProcess, cal: Any, variant: Variant, sample: Path, other: Path,
                  out: Path) -> dict[str, dict[int, np.ndarray]]:
    """Every case's full frames (blank and tamper are made from the honest frame when judged)."""
    images: dict[str, dict[int, np.ndarray]] = {c: {} for c in CASES}
    await process.open(other, device="CPU", threads=2, settings=variant.settings)
    for f in FRAMES:
        await process.render(f, out / f"other_{f}.png")
        images["other_scene"][f] = cal.load(out / f"other_{f}.png")
    opened = await process.open(sample, device="CPU", threads=2, settings=variant.settings)
    w, h = opened["resolution"]
    runs = {"honest": (0, None), "adjacent_frame": (1, None), "other_class": (0, {"seed": OTHER_CLASS_SEED}),
            "low_samples": (0, {"samples": max(1, variant.samples // cal.LOW_SAMPLE_DIVISOR)})}
    for f in FRAMES:
        for case, (offset, overrides) in runs.items():
            await process.render_region(f + offset, [0, 0, w, h], out / f"{case}_{f}.png", overrides=overrides)
            images[case][f] = cal.load(out / f"{case}_{f}.png")
        await process.render_region(f, [0, 0, w // 2, h // 2], out / f"half_{f}.png",
                                    overrides={"resolution_percentage": 50})
        images["upscaled"][f] = cal.upscale(cal.load(out / f"half_{f}.png"), w, h)
        images["blank"][f] = cal.blank(images["honest"][f])
    return images


def _crop(cal: Any, images: dict, case: str, frame: int, region: fa.Region, tamper: fa.Region) -> np.ndarray:
    image = cal.tampered(images["honest"][frame], tamper) if case == "tamper" else images[case][frame]
    return fa.crop(image, region)


async def measure_variant(cal: Any, variant: Variant, regions: int, seed: int, directory: Path) -> dict[str, Any]:
    """Render and judge ``regions`` checks of every case for one variant."""
    folder = directory / f"{variant.width}x{variant.height}"
    if not folder.exists():
        folder.mkdir()
        cal.make_scenes(folder, variant.width, variant.height, variant.samples, max(FRAMES) + 2)
    sample = folder / f"sample_{variant.width}x{variant.height}_{variant.samples}s.blend"
    other = folder / f"other_{variant.width}x{variant.height}_{variant.samples}s.blend"
    out = folder / "renders"
    out.mkdir(exist_ok=True)
    rng = random.Random(seed)
    results: dict[str, dict[str, list]] = {c: {"before": [], "same": [], "cross": [], "ratio": [],
                                                 "same_ratio": []} for c in CASES}
    started = time.perf_counter()
    async with RenderProcess(BlenderLauncher.discover(None)) as process:
        images = await _frames(process, cal, variant, sample, other, out)
        for i in range(regions):
            frame = FRAMES[i % len(FRAMES)]
            region = fa.draw_region(rng, variant.width, variant.height, REGION_FRACTION)
            tamper = fa.draw_region(rng, variant.width, variant.height, cal.TAMPER_FRACTION)
            rect = region.expanded(MARGIN, variant.width, variant.height)
            inner = region.relative_to(rect)
            renders = []
            for name, overrides in (("top", None), ("yardstick", {"seed": FIRST_YARDSTICK_SEED + i})):
                await process.render_region(frame, rect.as_list(), out / f"{name}.png", overrides=overrides)
                renders.append(fa.crop(cal.load(out / f"{name}.png"), inner).copy())
            top, bottom = renders
            for case in CASES:
                ours = _crop(cal, images, case, frame, region, tamper)
                results[case]["before"].append(fa.judge_region(ours, top, None, cross=False).passed)
                same = fa.judge_region(ours, top, bottom if variant.denoise else None, cross=False)
                cross = fa.judge_region(ours, top, bottom, cross=True)
                results[case]["same"].append(same.passed)
                results[case]["cross"].append(cross.passed)
                results[case]["ratio"].append(cross.metrics.get("ratio", 0.0))
                results[case]["same_ratio"].append(cross.metrics.get("same_ratio", 0.0))
            if (i + 1) % 100 == 0:
                log(f"  {variant.label}: {i + 1}/{regions} regions, {time.perf_counter() - started:.0f} s")
    return summarise(variant, results, regions, time.perf_counter() - started)


def summarise(variant: Variant, results: dict[str, dict[str, list]], regions: int, seconds: float) -> dict[str, Any]:
    rows = []
    for case, r in results.items():
        ratio, same = np.array(r["ratio"]), np.array(r["same_ratio"])
        rows.append({
            "case": case, "honest": case in HONEST,
            "fail_before": 1 - float(np.mean(r["before"])), "fail_same": 1 - float(np.mean(r["same"])),
            "fail_cross": 1 - float(np.mean(r["cross"])),
            "ratio_max": float(ratio.max()), "ratio_q999": float(np.quantile(ratio, 0.999)),
            "ratio_median": float(np.median(ratio)), "ratio_min": float(ratio.min()),
            "same_ratio_max": float(same.max()), "same_ratio_median": float(np.median(same)),
            "fail_cross_at": {str(k): float(np.mean(ratio > k)) for k in CROSS_LIMITS},
            "same_ratio_min": float(same.min()),
        })
    return {"variant": variant.label, "width": variant.width, "height": variant.height, "samples": variant.samples,
            "dither": variant.dither, "denoise": variant.denoise, "regions": regions, "seconds": seconds,
            "rows": rows}


def run(cal: Any, regions_small: int, regions_bigger: int, seed: int, directory: Path) -> dict[str, Any]:
    """Every variant; 64x36 ones with ``regions_small`` regions, bigger ones with ``regions_bigger``."""
    out = []
    for variant in VARIANTS:
        count = regions_small if variant.width <= 64 else regions_bigger
        log(f"(d) {variant.label}: {count} regions")
        out.append(asyncio.run(measure_variant(cal, variant, count, seed, directory)))
    return {"max_ratio": fa.YARDSTICK_MAX_RATIO, "floor": fa.YARDSTICK_FLOOR, "margin": MARGIN, "variants": out}


def markdown(d: dict[str, Any]) -> str:
    lines = [f"**(d) The comparison rule** (`judge_region`; yardstick limit {d['max_ratio']}, floor "
             f"{d['floor']} levels², margin {d['margin']} px). Share of checks that fail: for honest cases the "
             "false-reject rate, for cheats the per-check detection d. *before*: the strict rule alone (what every "
             "same-class check got); *same class*: the shipped rule (strict; a denoised scene also by the "
             "yardstick); *cross class*: the yardstick rule (renderer of another device class: another seed).",
             "", "| scene | regions | case | before | same class | cross class | cross ratio median | max | "
             "same-class ratio max | cross fails at limit " + ", ".join(f"{k:g}" for k in CROSS_LIMITS) + " |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for v in d["variants"]:
        for r in v["rows"]:
            label = f"**{r['case']}** (honest)" if r["honest"] else r["case"]
            lines.append(f"| {v['variant']} | {v['regions']} | {label} | {_pct(r['fail_before'])} | "
                         f"{_pct(r['fail_same'])} | {_pct(r['fail_cross'])} | {r['ratio_median']:.2f} | "
                         f"{r['ratio_max']:.2f} | {r['same_ratio_max']:.2f} | "
                         + ", ".join(_pct(r["fail_cross_at"][str(k)]) for k in CROSS_LIMITS) + " |")
    return "\n".join(lines)


def _pct(share: float) -> str:
    return f"{100 * share:.1f} %" if share not in (0.0, 1.0) else ("0" if share == 0 else "100 %")


# ---------------------------------------------------------------------------------------------- cost


async def denoised_costs(scene: Scene, repeats: int, directory: Path, seed: int) -> dict[str, Any]:
    """Render time of a full frame, a region + margin and a spot + margin of a denoised, dithered scene (one warm
    process, interleaved in a rotating order). A check of such a scene, and any cross-class check, renders its
    region twice (the yardstick), so its cost is twice the single render's."""
    blend = make_scene(scene, directory)
    out = directory / f"dn_cost_{scene.width}x{scene.height}"
    out.mkdir(exist_ok=True)
    rng = random.Random(seed)
    w, h = scene.width, scene.height
    times: dict[str, list[float]] = {"full": [], "region_margin": [], "spot_margin": []}
    async with RenderProcess(BlenderLauncher.discover(None)) as process:
        await process.open(blend, device="CPU", threads=2, settings={"dither_intensity": 1.0, "use_denoising": True})
        await process.render(1, out / "warmup.png")  # untimed: first-render (and first OIDN) initialisation
        for r in range(repeats):
            frame = 1 + r % scene.frames
            rect = fa.draw_region(rng, w, h, REGION_FRACTION).expanded(MARGIN, w, h)
            spot = fa.draw_region(rng, w, h, SPOT_FRACTION).expanded(MARGIN, w, h)
            calls = [("full", lambda f=frame: process.render(f, out / "full.png")),
                     ("region_margin", lambda f=frame, x=rect: process.render_region(f, x.as_list(), out / "r.png")),
                     ("spot_margin", lambda f=frame, x=spot: process.render_region(f, x.as_list(), out / "s.png"))]
            shift = r % len(calls)
            for name, call in calls[shift:] + calls[:shift]:
                started = time.perf_counter()
                await call()
                times[name].append(time.perf_counter() - started)
    full = float(np.median(times["full"]))
    return {"scene": f"{w}x{h}, {scene.samples} spp, denoised", "repeats": repeats,
            "full_s": full, **{f"{name}_s": float(np.median(v)) for name, v in times.items() if name != "full"},
            **{f"{name}_ratio": float(np.median(v)) / full for name, v in times.items() if name != "full"}}


def cost_markdown(costs: list[dict[str, Any]]) -> str:
    lines = ["**(d) Cost of a denoised check** (medians; one render, and the two a yardstick check makes)", "",
             "| scene | repeats | full frame s | region + margin s | spot + margin s | region check / frame: "
             "strict, with yardstick | spot check / frame: strict, with yardstick |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for c in costs:
        lines.append(f"| {c['scene']} | {c['repeats']} | {c['full_s']:.2f} | {c['region_margin_s']:.2f} | "
                     f"{c['spot_margin_s']:.2f} | {c['region_margin_ratio']:.3f}, {2 * c['region_margin_ratio']:.3f} | "
                     f"{c['spot_margin_ratio']:.3f}, {2 * c['spot_margin_ratio']:.3f} |")
    return "\n".join(lines)
