"""frame_analysis.judge_region: the coordinator's rule for a region check, on synthetic noise (the real renders'
numbers are benchmarks/verification.py's part d, and tests/e2e/test_comparison.py runs it with real agents).

Noise here is Gaussian with a known sigma, so the expected ratios are known: an independent honest crop sits
near 1.5 yardsticks from the mean of the verifier's two renders, a same-seed crop at 0, a noisier one higher.
"""

from __future__ import annotations

import numpy as np
import pytest
from framehive.coordinator import frame_analysis as fa

SHAPE = (27, 48, 3)  # a 1/16 region of a 192x108 frame


def scene() -> np.ndarray:
    """A smooth picture (what the noise sits on)."""
    y, x = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    return 100 + 60 * np.sin(x / 7.0)[..., None] + 30 * np.cos(y / 5.0)[..., None] + np.array([0, 20, -20])


def render(clean: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(np.rint(clean + rng.normal(0, sigma, SHAPE)), 0, 255).astype(np.uint8)


def test_an_independent_honest_crop_passes_across_classes_and_a_noisier_one_fails() -> None:
    rng = np.random.default_rng(0)
    clean = scene()
    top, bottom = render(clean, rng, 8), render(clean, rng, 8)
    honest = fa.judge_region(render(clean, rng, 8), top, bottom, cross=True)
    assert honest.passed and 1.0 < honest.metrics["ratio"] < 2.0, honest
    noisier = fa.judge_region(render(clean, rng, 8 * np.sqrt(8)), top, bottom, cross=True)  # 1/8 of the samples
    assert not noisier.passed and noisier.metrics["ratio"] > fa.YARDSTICK_MAX_RATIO, noisier
    blank = np.broadcast_to(top.reshape(-1, 3).mean(axis=0).round().astype(np.uint8), SHAPE)
    assert not fa.judge_region(blank, top, bottom, cross=True).passed


def test_a_cross_class_check_without_a_yardstick_fails() -> None:
    rng = np.random.default_rng(1)
    top = render(scene(), rng, 4)
    verdict = fa.judge_region(top, top, None, cross=True)
    assert not verdict.passed and "no yardstick" in verdict.reason


@pytest.mark.parametrize("shift", [1, 2])
def test_same_class_small_differences_pass_strictly_and_large_ones_need_the_yardstick(shift: int) -> None:
    rng = np.random.default_rng(2)
    clean = scene()
    top, bottom = render(clean, rng, 6), render(clean, rng, 6)
    dithered = np.clip(top.astype(int) + rng.integers(-shift, shift + 1, SHAPE), 0, 255).astype(np.uint8)
    assert fa.judge_region(dithered, top, None, cross=False).passed, "dither's +-2 levels are within strict"
    denoiser_edge = np.clip(top.astype(int) + 9 * (rng.random(SHAPE[:2]) < 0.02)[..., None], 0, 255)
    denoiser_edge = denoiser_edge.astype(np.uint8)  # a few pixels 9 levels off, as OIDN does near a crop's edge
    assert not fa.judge_region(denoiser_edge, top, None, cross=False).passed
    with_yardstick = fa.judge_region(denoiser_edge, top, bottom, cross=False)
    assert with_yardstick.passed and with_yardstick.metrics["same_ratio"] < fa.YARDSTICK_SAME_CLASS_MAX_RATIO
    other_seed = render(clean, rng, 6)  # same class but other noise: not what the verifier rendered
    assert not fa.judge_region(other_seed, top, bottom, cross=False).passed


def test_two_identical_renders_give_no_yardstick_and_only_the_strict_rule_passes() -> None:
    rng = np.random.default_rng(3)
    top = render(scene(), rng, 0)
    off = np.clip(top.astype(int) + 6, 0, 255).astype(np.uint8)
    assert fa.judge_region(top, top, top.copy(), cross=True).passed
    verdict = fa.judge_region(off, top, top.copy(), cross=True)
    assert not verdict.passed and "no yardstick" in verdict.reason


def test_split_yardstick_accepts_one_or_two_renders_only() -> None:
    image = np.zeros((20, 8, 3), dtype=np.uint8)
    image[10:] = 7
    top, bottom = fa.split_yardstick(image, 10)
    assert bottom is not None and top.max() == 0 and bottom.min() == 7
    assert fa.split_yardstick(image, 20)[1] is None
    with pytest.raises(fa.BadImage):
        fa.split_yardstick(image, 7)
