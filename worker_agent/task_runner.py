"""Run one assigned task: fetch the scene and its files, keep a warm Blender per job, render, upload frame by frame."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any

import requests
from framehive.protocol import messages as m

from . import png_stack, test_only
from .blender import BlenderLauncher, RenderError, RenderLimits, RenderProcess
from .confinement import RenderFolders
from .scene_cache import SceneCache, SceneDownloadError, scene_files
from .uploads import LeaseLost, UploadError, upload_frame

log = logging.getLogger("framehive.worker")

Send = Callable[[m.Message], Awaitable[None]]


class TaskRunner:
    """Owns the warm Blender process; ``run`` executes one task at a time.

    Each Blender is confined to its job's scene tree and its own private folders (blender.RenderProcess), and
    bound by ``limits`` (default: RenderLimits(), no memory limit); a limit crossed fails the task or check
    with a message naming it.
    """

    def __init__(self, launcher: BlenderLauncher, device: str, threads: int | None, cache_dir: Path,
                 base_url: str, session: requests.Session, cache_limit: int | None = None, *,
                 limits: RenderLimits | None = None) -> None:
        self.launcher = launcher
        self.limits = limits or RenderLimits()
        self.device = device
        self.threads = threads
        self.base_url = base_url
        self.session = session
        self.scenes = SceneCache(cache_dir, session, base_url, cache_limit)
        self.work_dir = cache_dir / "frames"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for stale in RenderFolders.remove_stale(self.work_dir):
            log.info("removed %s, left behind by an agent that was killed", stale)
        self.worker_id = 0
        self._process: RenderProcess | None = None
        self._process_key: tuple[int, str] | None = None  # (job, scene sha) the warm Blender has open
        self._opened: dict[str, Any] = {}  # what the warm Blender said when it opened the scene
        self.test_seed = test_only.render_seed()

    def use_coordinator(self, base_url: str) -> None:
        """Scenes and uploads go to the coordinator the agent is connected to (one of the owner's URLs)."""
        self.base_url = base_url
        self.scenes.base_url = base_url

    async def run(self, assign: m.Assign, send: Send) -> None:
        """Render the task; reports task_done or task_failed. Raises CancelledError if cancelled."""
        try:
            process = await self._warm_process(assign)
            for frame in assign.frames:
                await send(m.Progress(task_id=assign.task_id, attempt=assign.attempt, frame=frame))
                output = self.work_dir / f"task{assign.task_id}_frame{frame:06d}.png"
                await process.render(frame, str(output))
                url = assign.upload_url.replace("{frame}", str(frame))
                await asyncio.to_thread(upload_frame, self.session, self.base_url, url, self.worker_id, output)
                output.unlink(missing_ok=True)
                log.info("task %s: frame %s rendered and uploaded", assign.task_id, frame)
        except LeaseLost:
            log.warning("task %s: lease lost, dropping it", assign.task_id)
            return
        except (RenderError, SceneDownloadError, UploadError) as exc:
            log.error("task %s failed: %s", assign.task_id, exc)
            tail = getattr(exc, "log_tail", "") or (self._process.log_tail() if self._process else "")
            await self.discard_process()  # a failed Blender is not reused
            await send(m.TaskFailed(task_id=assign.task_id, attempt=assign.attempt, error=str(exc), log_tail=tail,
                                    limit=getattr(exc, "limit", None)))
            return
        except asyncio.CancelledError:
            # Interrupted mid-command: the Blender's state is unknown, so it is not reused.
            await self.discard_process()
            raise
        await send(m.TaskDone(task_id=assign.task_id, attempt=assign.attempt))

    async def verify(self, order: m.Verify, send: Send) -> None:
        """Render the region a check asks for and upload it; reports check_done or check_failed."""
        try:
            process = await self._warm_process(order)
            output = self.work_dir / f"check-{order.handle}.png"
            await process.render_region(order.frame, list(order.rect), str(output), overrides=order.overrides or None)
            if order.yardstick_seed is not None and (order.cross or self._opened.get("denoised")):
                await self._add_yardstick(process, order, output)
            await asyncio.to_thread(upload_frame, self.session, self.base_url, order.upload_url, self.worker_id,
                                    output)
            output.unlink(missing_ok=True)
            log.info("check %s: region %s of frame %s rendered and uploaded", order.handle, order.rect,
                     order.frame)
        except LeaseLost:
            log.warning("check %s: lease lost, dropping it", order.handle)
            return
        except (RenderError, SceneDownloadError, UploadError) as exc:
            log.error("check %s failed: %s", order.handle, exc)
            tail = getattr(exc, "log_tail", "") or (self._process.log_tail() if self._process else "")
            await self.discard_process()
            await send(m.CheckFailed(handle=order.handle, error=str(exc), log_tail=tail,
                                     limit=getattr(exc, "limit", None)))
            return
        except asyncio.CancelledError:
            await self.discard_process()
            raise
        await send(m.CheckDone(handle=order.handle))

    async def _add_yardstick(self, process: RenderProcess, order: m.Verify, output: Path) -> None:
        """Render the region again with the order's yardstick seed and stack it below ``output``: the coordinator
        measures the region's noise by the two renders' distance (coordinator/verification/comparison.py)."""
        extra = output.with_name(f"{output.stem}-yardstick.png")
        await process.render_region(order.frame, list(order.rect), str(extra),
                                    overrides={"seed": order.yardstick_seed})
        try:
            stacked = png_stack.stack(output.read_bytes(), extra.read_bytes())
        except png_stack.PngStackError as exc:
            raise RenderError(f"cannot stack the yardstick render: {exc}") from None
        finally:
            extra.unlink(missing_ok=True)
        output.write_bytes(stacked)

    async def _warm_process(self, assign: m.Assign | m.Verify) -> RenderProcess:
        """One warm Blender per job: renders and region checks of the same job share it."""
        key = (assign.job_id, str(assign.scene["sha256"]))
        if self._process is not None and self._process_key == key and self._process.alive:
            return self._process
        await self.discard_process()
        # The .blend inside its scene's folder tree, so that its //-relative textures and libraries resolve.
        scene = await asyncio.to_thread(self.scenes.ensure, assign.scene)
        process = self.new_process(scene_root(scene, assign.scene))
        self._process = process
        await process.start()
        settings = dict(assign.settings)
        if self.test_seed is not None:  # test only: this CPU stands for another device class
            settings["seed"] = self.test_seed
        self._opened = await process.open(str(scene), self.device, self.threads, settings)
        self._process_key = key
        return process

    @property
    def process(self) -> RenderProcess | None:
        """The warm Blender, if one is running."""
        return self._process

    def new_process(self, scene_tree: Path | None) -> RenderProcess:
        """A Blender for one job: it may read ``scene_tree`` only, and keeps its frames under work_dir."""
        return RenderProcess(self.launcher, scene_tree=scene_tree, limits=self.limits, work_root=self.work_dir)

    async def discard_process(self) -> None:
        if self._process is not None:
            process, self._process, self._process_key = self._process, None, None
            process.kill()
            await process.close()

    def clear_work_dir(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)



def scene_root(blend: Path, scene: dict) -> Path:
    """The root of the tree ``blend`` was laid out in: ``blend`` less the parts of its path in the tree."""
    main, _files = scene_files(scene)
    return blend.parents[len(PurePosixPath(main).parts) - 1]
