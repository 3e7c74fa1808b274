"""A scene denoised by the compositor (a Denoise node in its compositing node group, Cycles' denoiser off),
through the real TaskRunner and real Blender (issue 13 point 4).

The compositor runs on whatever was rendered: on the full frame for a task, on the cropped rectangle for a
region check (border + crop), where the Denoise node sees no pixels beyond the crop's edge, so an honest region
differs from the same part of the full frame (measured here: up to 24 levels on the rectangle, 5 levels inside
the 16 px margin). The verifier must therefore treat it as a denoised scene: render the yardstick, so that the
coordinator judges a same-class check that misses the strict rule by the yardstick (frame_analysis.judge_region).
Checks are made as the coordinator makes them (regions drawn like keys.draw_keys, grown by checks.MARGIN) and
judged as decide.judge does.
"""

from __future__ import annotations

import asyncio
import io
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator.verification.checks import MARGIN
from framehive.coordinator.verification.keys import REGION_FRACTION
from framehive.protocol import messages as m
from framehive.worker_agent import coordinator_urls as urls
from framehive.worker_agent.blender import RenderLimits
from PIL import Image

from tests.worker.test_render_limits import Orders, Uploads

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 120.0
FRAMES = (1, 3)
CHECKS_PER_FRAME = 4
REGION_SEED = 13  # regions are drawn as the coordinator draws them, from a seeded generator
YARDSTICK_SEED = 123457


def build(out: Path, script: str) -> Path:
    subprocess.run([sys.executable, str(REPO / script), str(out), "--frames", "4", "--samples", "8"], check=True,
                   capture_output=True, timeout=TIMEOUT)
    return out


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample scene, and the same scene denoised by the compositor (tests/scenes/compositor_denoise.py)."""
    folder = tmp_path_factory.mktemp("scenes")
    return {"plain": build(folder / "plain.blend", "scripts/make_scene.py"),
            "composited": build(folder / "composited.blend", "tests/scenes/compositor_denoise.py")}


@pytest.fixture
def uploads() -> Iterator[tuple[str, dict[str, bytes]]]:
    received: dict[str, bytes] = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (Uploads,), {"received": received}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


async def render_frames(orders: Orders, received: dict[str, bytes],
                        settings: dict | None = None) -> dict[int, np.ndarray]:
    """A renderer's task over FRAMES, as uploaded."""
    assign = orders.assign(list(FRAMES), settings)
    await orders.runner.run(assign, orders.send)
    assert isinstance(orders.last(), m.TaskDone), orders.last()
    return {f: decode(received[urls.frame_path(assign.upload_url, f)]) for f in FRAMES}


async def honest_checks(orders: Orders, received: dict[str, bytes]) -> list[tuple[int, fa.Region, np.ndarray]]:
    """Region checks of FRAMES as the coordinator makes them: (frame, region, the verifier's upload)."""
    rng = random.Random(REGION_SEED)
    made = []
    for frame in FRAMES:
        for _ in range(CHECKS_PER_FRAME):
            region = fa.draw_region(rng, 64, 36, REGION_FRACTION)
            rect = region.expanded(MARGIN, 64, 36)
            order = orders.verify()
            order = m.Verify(handle=order.handle, job_id=1, frame=frame, rect=rect.as_list(), scene=orders.scene,
                             settings={}, upload_url=order.upload_url, yardstick_seed=YARDSTICK_SEED)
            await orders.runner.verify(order, orders.send)
            assert isinstance(orders.last(), m.CheckDone), orders.last()
            made.append((frame, region, decode(received[order.upload_url])))
    return made


def verdicts(frames: dict[int, np.ndarray], checks: list[tuple[int, fa.Region, np.ndarray]]) -> list[fa.Verdict]:
    """decide.judge's rule for a same-class check of each region of ``frames``."""
    judged = []
    for frame, region, upload in checks:
        rect = region.expanded(MARGIN, 64, 36)
        top, bottom = fa.split_yardstick(upload, rect.height)
        inner = region.relative_to(rect)
        judged.append(fa.judge_region(fa.crop(frames[frame], region), fa.crop(top, inner),
                                      None if bottom is None else fa.crop(bottom, inner), cross=False))
    return judged


def test_the_compositor_denoises_full_frames_and_regions_without_their_context(scenes, tmp_path, uploads):
    base_url, received = uploads
    plain = Orders(tmp_path / "plain", scenes["plain"], base_url, RenderLimits())
    composited = Orders(tmp_path / "composited", scenes["composited"], base_url, RenderLimits())

    async def body() -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], list]:
        noisy = await render_frames(plain, received)
        await plain.runner.discard_process()
        denoised = await render_frames(composited, received)
        checks = await honest_checks(composited, received)
        await composited.runner.discard_process()
        return noisy, denoised, checks

    noisy, denoised, checks = run(body())
    # The task's frames are the compositor's output: the same scene without the node renders other pixels.
    assert all(np.abs(noisy[f].astype(int) - denoised[f].astype(int)).max() > 20 for f in FRAMES)
    # The region is denoised on its own: its rectangle differs from the full frame's pixels there.
    edges = [np.abs(fa.crop(denoised[frame], region.expanded(MARGIN, 64, 36)).astype(int)
                    - fa.split_yardstick(upload, region.expanded(MARGIN, 64, 36).height)[0].astype(int)).max()
             for frame, region, upload in checks]
    assert max(edges) > 4, edges
    # And every check carries the yardstick below the job-seed render.
    assert all(upload.shape[0] == 2 * region.expanded(MARGIN, 64, 36).height for _, region, upload in checks)


def test_honest_workers_pass_and_cheats_fail_checks_of_a_compositor_denoised_scene(scenes, tmp_path, uploads):
    base_url, received = uploads
    renderer = Orders(tmp_path / "renderer", scenes["composited"], base_url, RenderLimits())
    verifier = Orders(tmp_path / "verifier", scenes["composited"], base_url, RenderLimits())

    async def body() -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], list]:
        honest = await render_frames(renderer, received)
        await renderer.runner.discard_process()  # the next open applies the cheat's settings
        fewer_samples = await render_frames(renderer, received, {"samples": 1})  # 1/8 of the job's samples
        await renderer.runner.discard_process()
        checks = await honest_checks(verifier, received)
        await verifier.runner.discard_process()
        return honest, fewer_samples, checks

    honest, fewer_samples, checks = run(body())
    passed = verdicts(honest, checks)
    caught = verdicts(fewer_samples, checks)
    print("honest:", [round(v.metrics.get("same_ratio", 0.0), 2) for v in passed],
          "1/8 samples:", [round(v.metrics.get("same_ratio", 0.0), 2) for v in caught])
    assert [v.reason for v in passed if not v.passed] == []
    assert all(not v.passed for v in caught), [v.reason for v in caught]
