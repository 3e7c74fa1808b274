"""A tier-1 judgement's downscale of the renderer's frame: sRGB decoding by formula against the 8-bit table.

Run from the repository root::

    .venv/bin/python -m benchmarks.tier1_downscale [--repeats 25]

``frame_analysis.downscale_linear`` decodes the frame's sRGB values to linear light before averaging. An 8-bit frame
(what workers upload) is decoded by a 256-entry table since 2026-12-07; any other array by the formula, a float64
power per pixel, which is what every frame took before. Both are timed here side by side on the same random frames,
alternating, at the sizes the benchmarks use and at full HD: the decoding alone, and the whole downscale (the
formula's path is taken by the same image as int64). Medians in milliseconds, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
from framehive.coordinator import frame_analysis as fa

SIZES = ((384, 216, 4), (960, 540, 4), (1920, 1080, 4))  # width, height, tier-1 factor


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=25, help="timings of each, alternating (default: 25)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(2026)
    results = {}
    for width, height, factor in SIZES:
        frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        wide = frame.astype(np.int64)
        assert np.array_equal(fa.downscale_linear(frame, factor), fa.downscale_linear(wide, factor))
        times: dict[str, list[float]] = {"decode_formula": [], "decode_table": [], "downscale_formula": [],
                                         "downscale_table": []}
        for _ in range(args.repeats):
            times["decode_formula"].append(timed(lambda f=frame: fa._srgb_to_linear(f.astype(np.float64) / 255.0)))
            times["decode_table"].append(timed(lambda f=frame: fa._SRGB_TO_LINEAR_8BIT[f]))
            times["downscale_formula"].append(timed(lambda w=wide, k=factor: fa.downscale_linear(w, k)))
            times["downscale_table"].append(timed(lambda f=frame, k=factor: fa.downscale_linear(f, k)))
        medians = {name: statistics.median(values) for name, values in times.items()}
        results[f"{width}x{height}"] = {
            **{f"{name}_ms": round(value, 3) for name, value in medians.items()},
            "decode_ratio": round(medians["decode_formula"] / medians["decode_table"], 1),
            "downscale_ratio": round(medians["downscale_formula"] / medians["downscale_table"], 2),
        }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
