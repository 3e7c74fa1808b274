"""An adversarial worker agent: the real protocol and real Blender, cheating on what it uploads.

It is the real agent (``worker_agent``: ``Agent``, ``TaskRunner``, uploads, heartbeats, hand-backs) started
the way ``framehive-worker`` starts it; only what reaches the coordinator is forged. The runner's warm
Blender is wrapped in a stand-in whose ``render`` (renderer side) or ``render_region`` (verifier side)
writes the fake, so every other step of a task or a check is the honest agent's own code::

    python -m tests.adversary --strategy NAME --coordinator URL --token T --name N --cache-dir D \\
        [--roles render|verify] [--shared-dir DIR] [--max-tasks K]

Renderer strategies (default role ``render``; they render honestly where the fake needs it):

- ``blank``: black frames, nothing rendered.
- ``adjacent``: renders frame + 1 instead (frame - 1 at the scene's last frame).
- ``other-job``: a frame of another scene: the job's scene with another sky (so other light everywhere),
  at the job's resolution.
- ``low-samples``: the scene opened with 1/8 of its samples (the sample scene's 8 → 1).
- ``half-res``: rendered at half the resolution percentage, upscaled to full size with Pillow.
- ``tamper``: renders honestly, then fills a rectangle of 1/16 of the frame, at a random place per frame,
  with its mean colour.

With ``--shared-dir`` a renderer also writes every fake it uploads there as ``job{job}_frame{frame:04d}.png``:
the out-of-band channel of a colluding pair.

Verifier strategy (default role ``verify``):

- ``collude``: "always says pass". For a region of a frame its partner faked (found in ``--shared-dir``) it
  uploads that region cut from the partner's fake, so the coordinator's strict comparison passes; for
  anything else (ringers, other renderers' frames) it is lazy and uploads a black image of the right size.

``--max-tasks K`` makes a renderer stop after K tasks (it hands back whatever it was given meanwhile and
exits 0), so a test can let it fake exactly K tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import requests
from framehive.protocol import messages as m
from framehive.worker_agent.blender import BlenderLauncher, RenderError, RenderProcess
from framehive.worker_agent.cli import _roles, build_parser, serve
from framehive.worker_agent.connection import Agent
from framehive.worker_agent.task_runner import Send, TaskRunner
from PIL import Image

log = logging.getLogger("framehive.adversary")

RENDER_STRATEGIES = ("blank", "adjacent", "other-job", "low-samples", "half-res", "tamper")
VERIFY_STRATEGIES = ("collude",)
PROBED = ("other-job", "low-samples", "half-res")  # they need more than the runner's "opened" event tells
STRATEGIES = RENDER_STRATEGIES + VERIFY_STRATEGIES
SAMPLE_DIVISOR = 8  # low-samples
TAMPER_FRACTION = 1 / 16
DECOY_SKY = (0.6, 0.25, 0.05)  # other-job: an orange sky instead of the scene's own

# Runs under the agent's Python (which has bpy): what the strategies need to know about a scene, and for
# other-job a decoy copy of it with another sky. Scripts in the .blend stay disabled, as in the runner.
_SCENE_PROBE = r"""
import json, sys
import bpy
path, decoy, sky = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
bpy.ops.wm.open_mainfile(filepath=path, load_ui=False, use_scripts=False)
scene = bpy.context.scene
render = scene.render
samples = scene.cycles.samples if render.engine == "CYCLES" else scene.eevee.taa_render_samples
facts = {"samples": samples, "width": render.resolution_x * render.resolution_percentage // 100,
         "height": render.resolution_y * render.resolution_percentage // 100,
         "percentage": render.resolution_percentage, "frame_end": scene.frame_end}
if decoy:
    world = scene.world or bpy.data.worlds.new("Decoy sky")
    scene.world = world
    world.color = sky
    if world.node_tree is not None:
        for node in world.node_tree.nodes:
            if node.type == "BACKGROUND":
                node.inputs["Color"].default_value = (*sky, 1.0)
    bpy.ops.wm.save_as_mainfile(filepath=decoy, copy=True)
print("@@FACTS " + json.dumps(facts), flush=True)
"""


@dataclasses.dataclass(frozen=True)
class SceneFacts:
    width: int  # output size in pixels (after the resolution percentage)
    height: int
    frame_end: int
    samples: int = 0
    percentage: int = 100
    decoy: Path | None = None


class AdversaryRunner(TaskRunner):
    """The agent's task runner, with a stand-in for Blender that forges what is uploaded."""

    def __init__(self, strategy: str, shared_dir: Path | None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
        self.strategy = strategy
        self.shared_dir = shared_dir
        self.rng = random.Random()
        self.max_tasks: int | None = None
        self.on_quota: Callable[[], None] | None = None
        self.tasks_run = 0
        self._facts: dict[str, SceneFacts] = {}
        self._decoy: RenderProcess | None = None
        self._decoy_key: tuple[int, str] | None = None
        self._forged_open = False  # the warm Blender was opened with forged settings
        self._opened: dict[str, Any] = {}  # its "opened" event ({}: none open), as TaskRunner keeps it

    # ------------------------------------------------------------------------------------ the agent's hooks

    async def run(self, assign: m.Assign, send: Send) -> None:
        await super().run(assign, send)
        self.tasks_run += 1
        if self.max_tasks is not None and self.tasks_run >= self.max_tasks and self.on_quota is not None:
            log.info("adversary: %d task(s) done, stopping", self.tasks_run)
            self.on_quota()

    async def _warm_process(self, work: m.Assign | m.Verify) -> Any:
        if isinstance(work, m.Verify):
            if self.strategy == "collude":
                return _Forger(self, work)  # never renders anything
            if self._forged_open:
                await self.discard_process()  # an honest check must not reuse a Blender opened to cheat
            return await super()._warm_process(work)
        if self.strategy == "collude":
            return await super()._warm_process(work)  # a colluding verifier that renders renders honestly
        if self.strategy in PROBED:
            facts = await self._probe_scene(work)
            if self.strategy == "other-job":
                return _Cheat(self, None, work, facts)  # renders the decoy scene only (see _decoy_process)
        settings = dict(work.settings)
        if self.strategy == "low-samples":
            settings["samples"] = max(1, facts.samples // SAMPLE_DIVISOR)
        elif self.strategy == "half-res":
            settings["resolution_percentage"] = max(1, facts.percentage // 2)
        process, opened = await self._open_scene(work, settings)
        if self.strategy not in PROBED:  # what the runner says it opened is all these strategies need
            width, height = opened["resolution"]
            facts = SceneFacts(width=width, height=height, frame_end=opened["frame_end"])
        return _Cheat(self, process, work, facts)

    async def _open_scene(self, work: m.Assign, settings: dict[str, Any]) -> tuple[RenderProcess, dict[str, Any]]:
        """TaskRunner._warm_process with the given settings, keeping the runner's ``opened`` event."""
        key = (work.job_id, str(work.scene["sha256"]))
        forged = settings != dict(work.settings)
        if self._process is not None and self._process_key == key and self._process.alive \
                and self._forged_open == forged and self._opened:
            return self._process, self._opened
        await self.discard_process()
        scene = await asyncio.to_thread(self.scenes.ensure, work.scene)
        process = RenderProcess(self.launcher)
        self._process = process
        await process.start()
        self._opened = await process.open(str(scene), self.device, self.threads, settings)
        self._process_key, self._forged_open = key, forged
        return process, self._opened

    async def discard_process(self) -> None:
        await super().discard_process()
        self._forged_open, self._opened = False, {}
        if self._decoy is not None:
            decoy, self._decoy, self._decoy_key = self._decoy, None, None
            decoy.kill()
            await decoy.close()

    # ------------------------------------------------------------------------------------ renderer side

    async def fake_frame(self, process: RenderProcess | None, assign: m.Assign, facts: SceneFacts, frame: int,
                         output: Path) -> None:
        """Write the strategy's fake of ``frame`` to ``output`` (which the runner then uploads)."""
        strategy = self.strategy
        assert process is not None or strategy in ("blank", "other-job")
        if strategy == "blank":
            Image.new("RGB", (facts.width, facts.height)).save(output)
        elif strategy == "adjacent":
            await process.render(frame + 1 if frame < facts.frame_end else frame - 1, str(output))
        elif strategy == "other-job":
            decoy = await self._decoy_process(assign, facts)
            await decoy.render(frame, str(output))
        elif strategy == "low-samples":
            await process.render(frame, str(output))  # the scene was opened with 1/8 of its samples
        elif strategy == "half-res":
            await process.render(frame, str(output))  # opened at half the resolution percentage
            with Image.open(output) as small:
                small.load()
            small.resize((facts.width, facts.height), Image.Resampling.BICUBIC).save(output)
        elif strategy == "tamper":
            await process.render(frame, str(output))
            self._tamper(output)
        else:
            raise AssertionError(strategy)
        log.info("adversary (%s): uploading a fake of frame %s of job %s", strategy, frame, assign.job_id)
        if self.shared_dir is not None:
            _write_atomically(self.shared_dir / f"job{assign.job_id}_frame{frame:04d}.png", output.read_bytes())

    def _tamper(self, path: Path) -> None:
        with Image.open(path) as image:
            pixels = np.asarray(image).copy()
        height, width = pixels.shape[:2]
        side = TAMPER_FRACTION ** 0.5
        w, h = max(1, round(width * side)), max(1, round(height * side))
        x, y = self.rng.randrange(width - w + 1), self.rng.randrange(height - h + 1)
        block = pixels[y:y + h, x:x + w]
        block[...] = np.round(block.reshape(-1, block.shape[-1]).mean(axis=0)).astype(pixels.dtype)
        Image.fromarray(pixels).save(path)
        log.info("adversary (tamper): filled [%d, %d, %d, %d] with its mean colour", x, y, w, h)

    async def _probe_scene(self, work: m.Assign) -> SceneFacts:
        """Samples, resolution percentage and size from the .blend itself (and the decoy for other-job)."""
        sha256 = str(work.scene["sha256"])
        if sha256 not in self._facts:
            path = await asyncio.to_thread(self.scenes.ensure, work.scene)
            decoy = path.with_name(f"{sha256}.decoy.blend") if self.strategy == "other-job" else None
            argv = [sys.executable, "-c", _SCENE_PROBE, str(path), str(decoy or ""), json.dumps(DECOY_SKY)]
            result = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=300)
            line = next((ln for ln in result.stdout.splitlines() if ln.startswith("@@FACTS ")), None)
            if result.returncode != 0 or line is None:
                raise RenderError(f"could not inspect the scene (exit {result.returncode})", result.stderr[-2000:])
            self._facts[sha256] = SceneFacts(**json.loads(line[len("@@FACTS "):]), decoy=decoy)
        return self._facts[sha256]

    async def _decoy_process(self, assign: m.Assign, facts: SceneFacts) -> RenderProcess:
        key = (assign.job_id, str(assign.scene["sha256"]))
        if self._decoy is not None and self._decoy_key == key and self._decoy.alive:
            return self._decoy
        assert facts.decoy is not None
        if self._decoy is not None:
            self._decoy.kill()
            await self._decoy.close()
        self._decoy = RenderProcess(self.launcher)
        await self._decoy.start()
        await self._decoy.open(str(facts.decoy), self.device, self.threads, dict(assign.settings))
        self._decoy_key = key
        return self._decoy

    # ------------------------------------------------------------------------------------ verifier side

    def forge_region(self, job: int, frame: int, rect: list[int], output: Path) -> None:
        """The partner's fake, cut to ``rect``, if there is one; otherwise a lazy black image."""
        x, y, w, h = rect
        fake = self.shared_dir / f"job{job}_frame{frame:04d}.png" if self.shared_dir else None
        if fake is not None and fake.is_file():
            with Image.open(fake) as image:
                image.crop((x, y, x + w, y + h)).save(output)
            log.info("adversary (collude): passing the partner's frame %s of job %s", frame, job)
        else:
            Image.new("RGB", (w, h)).save(output)
            log.info("adversary (collude): lazy black answer for frame %s of job %s", frame, job)


class _Cheat:
    """Stands in for the warm Blender during a task: ``render`` writes the strategy's fake."""

    def __init__(self, runner: AdversaryRunner, process: RenderProcess | None, assign: m.Assign,
                 facts: SceneFacts) -> None:
        self.runner, self.process, self.assign, self.facts = runner, process, assign, facts

    async def render(self, frame: int, output: str) -> None:
        await self.runner.fake_frame(self.process, self.assign, self.facts, frame, Path(output))


class _Forger:
    """Stands in for the warm Blender during a check: ``render_region`` forges the answer, renders nothing."""

    def __init__(self, runner: AdversaryRunner, order: m.Verify) -> None:
        self.runner, self.order = runner, order

    async def render_region(self, frame: int, rect: list[int], output: str,
                            overrides: dict[str, Any] | None = None) -> None:
        # The same forgery whatever the overrides (a yardstick seed): a colluder's two renders agree perfectly.
        await asyncio.to_thread(self.runner.forge_region, self.order.job_id, frame, rect, Path(output))


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = build_parser()
    parser.prog = "python -m tests.adversary"
    parser.description = "A cheating Framehive worker agent, for tests"
    parser.add_argument("--strategy", required=True, choices=STRATEGIES)
    parser.add_argument("--shared-dir", type=Path, help="out-of-band channel of a colluding renderer and verifier")
    parser.add_argument("--max-tasks", type=int, help="stop after this many tasks")
    parser.set_defaults(roles=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.roles is None:
        args.roles = _roles("verify" if args.strategy in VERIFY_STRATEGIES else "render")
    if args.strategy == "collude" and args.shared_dir is None:
        print("adversary: collude needs --shared-dir (where its partner leaves its fakes)", file=sys.stderr)
        return 2
    if args.shared_dir is not None:
        args.shared_dir.mkdir(parents=True, exist_ok=True)

    def make_runner(args: argparse.Namespace, launcher: BlenderLauncher, device: str,
                    session: requests.Session) -> AdversaryRunner:
        return AdversaryRunner(args.strategy, args.shared_dir, launcher, device, args.threads, args.cache_dir,
                               args.coordinator, session)

    def on_start(agent: Agent, runner: TaskRunner) -> None:
        assert isinstance(runner, AdversaryRunner)
        runner.max_tasks, runner.on_quota = args.max_tasks, agent.stop
        log.info("adversary %s (%s), roles %s", args.name, args.strategy, ",".join(args.roles))

    return serve(args, "adversary", make_runner, on_start)


if __name__ == "__main__":
    sys.exit(main())
