"""Run one assigned task: fetch the scene and its files, keep a warm Blender per job, render, upload frame by frame.

A spare Blender is kept ready while the agent waits for work (:meth:`TaskRunner.keep_spare`): started, confined to
an empty scene folder of its own, with no scene open. A new job's first order lays the job's files into that folder
(hard links to the verified blobs, as the scene's tree is made) and opens the scene there, so the job does not wait
for Blender to start (about 1 s, more on a loaded machine). The spare's start also overlaps the scene's download.
It costs one idle Blender's memory (about 0.2 GiB) while the agent waits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any

import requests
from framehive.protocol import messages as m

from . import png_stack, test_only
from .blender import BlenderLauncher, RenderError, RenderLimits, RenderProcess
from .confinement import FOLDER_PREFIX, RenderFolders
from .scene_cache import SceneCache, SceneDownloadError, scene_files
from .scene_tree import UnsafeTree, link_into
from .uploads import LeaseLost, UploadError, upload_frame

log = logging.getLogger("framehive.worker")

Send = Callable[[m.Message], Awaitable[None]]

# Seconds without work before a spare Blender is started again once one was used: work that follows at once (the
# next task of the same job, a check) uses the job's warm Blender, and a spare started then would only take CPU
# from its render.
SPARE_IDLE_DELAY = 2.0


class Spare:
    """A started Blender with no scene open, confined to ``tree``, an empty folder the next job's files go into."""

    def __init__(self, process: RenderProcess, tree: Path) -> None:
        self.process = process
        self.tree = tree

    async def discard(self) -> None:
        self.process.kill()
        await self.process.close()
        shutil.rmtree(self.tree, ignore_errors=True)


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
        self._tree: Path | None = None  # the warm Blender's own scene folder, when it was a spare
        self.test_seed = test_only.render_seed()
        self.spares = False  # keep a spare Blender (keep_spares(): the agent's; tests of one order keep none)
        self._spare: asyncio.Task[Spare] | None = None
        self._spare_started = False  # the spare's task is past its idle delay: Blender is starting
        self.spare_delay = SPARE_IDLE_DELAY
        self._uploads: set[asyncio.Task[None]] = set()  # frame uploads going on (run: one at a time)

    def use_coordinator(self, base_url: str) -> None:
        """Scenes and uploads go to the coordinator the agent is connected to (one of the owner's URLs)."""
        self.base_url = base_url
        self.scenes.base_url = base_url

    async def run(self, assign: m.Assign, send: Send) -> None:
        """Render the task; reports task_done or task_failed. Raises CancelledError if cancelled.

        A frame's upload goes on while the next frame renders (one upload at a time, in frame order): Blender does
        not wait for the network, which on an owner's uplink can take as long as a render. An upload that fails
        stops the render beside it and fails the task (a lost lease drops it); a task that fails otherwise lets the
        upload in flight end first, so the frames rendered before the failure are kept as they were. A cancelled
        task does not wait for its upload, which goes on by itself (:meth:`settle_uploads` waits for it: a graceful
        stop does, before it hands the task back; a lost coordinator is not waited for)."""
        self._busy()
        upload: asyncio.Task[None] | None = None
        run_name = secrets.token_hex(4)  # this run's own file names: an earlier run's upload may still be going
        try:
            process = await self._warm_process(assign)
            for frame in assign.frames:
                await send(m.Progress(task_id=assign.task_id, attempt=assign.attempt, frame=frame))
                output = self.work_dir / f"task{assign.task_id}_{run_name}_frame{frame:06d}.png"
                await self._render_beside(process, frame, output, upload)
                upload = self._start_upload(assign, frame, output)
            if upload is not None:
                await asyncio.shield(upload)  # a cancel stops the waiting, not the upload
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
        finally:
            self._replenish(self.spare_delay)
        await send(m.TaskDone(task_id=assign.task_id, attempt=assign.attempt))

    async def _render_beside(self, process: RenderProcess, frame: int, output: Path,
                             upload: asyncio.Task[None] | None) -> None:
        """Render ``frame`` to ``output`` while ``upload`` (the previous frame's) goes on; raise what either met,
        the upload's first. An upload that fails stops the render (and its Blender: its state is then unknown); a
        render that fails lets the upload end first. ``output`` is removed on any failure."""
        render = asyncio.create_task(process.render(frame, str(output)))
        try:
            if upload is not None:
                await asyncio.wait({render, upload}, return_when=asyncio.FIRST_EXCEPTION)
                if not render.done():  # the upload failed: this frame is of no use
                    render.cancel()
                    await asyncio.wait({render})
                    await self.discard_process()
                await asyncio.shield(upload)  # a cancel stops the waiting, not the upload
            await render
        except BaseException:
            if not render.done():  # cancelled from outside
                render.cancel()
                await asyncio.wait({render})
            elif not render.cancelled():
                render.exception()  # looked at (raised here, or moot beside the upload's failure)
            output.unlink(missing_ok=True)
            raise

    def _start_upload(self, assign: m.Assign, frame: int, output: Path) -> asyncio.Task[None]:
        """Upload one rendered frame of ``assign`` in a thread, then remove its file (in that thread: the file goes
        even when nobody waits for the upload any more). The upload is the runner's until it ends."""
        url = assign.upload_url.replace("{frame}", str(frame))

        def upload_and_remove() -> None:
            try:
                upload_frame(self.session, self.base_url, url, self.worker_id, output)
            except OSError as exc:  # the frame's file (requests' own errors are UploadError already)
                raise UploadError(f"cannot read the rendered frame {frame}: {exc}") from None
            finally:
                output.unlink(missing_ok=True)

        async def upload() -> None:
            await asyncio.to_thread(upload_and_remove)
            log.info("task %s: frame %s rendered and uploaded", assign.task_id, frame)

        task = asyncio.create_task(upload())
        self._uploads.add(task)
        task.add_done_callback(self._upload_ended)
        return task

    def _upload_ended(self, task: asyncio.Task[None]) -> None:
        self._uploads.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.debug("an upload ended with: %r", error)  # looked at; its run reports it if it waits for it

    async def settle_uploads(self, timeout: float | None = None) -> None:
        """Wait until the uploads still going (of runs cancelled meanwhile) have ended, for at most ``timeout``."""
        if self._uploads:
            await asyncio.wait(set(self._uploads), timeout=timeout)

    async def verify(self, order: m.Verify, send: Send) -> None:
        """Render the region a check asks for and upload it; reports check_done or check_failed."""
        self._busy()
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
        finally:
            self._replenish(self.spare_delay)
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
        self._replenish(0)  # Blender starts while the scene downloads
        # The .blend inside its scene's folder tree, so that its //-relative textures and libraries resolve.
        scene = await asyncio.to_thread(self.scenes.ensure, assign.scene)
        spare = await self._take_spare()
        moved = await self._move_in(spare, scene, assign.scene) if spare is not None else None
        if spare is not None and moved is not None:
            scene, process, self._tree = moved, spare.process, spare.tree
            self._process = process
        else:
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
        return RenderProcess(self.launcher, scene_tree=scene_tree, limits=self.limits, work_root=self.work_dir,
                             threads=self.threads)

    async def discard_process(self) -> None:
        if self._process is not None:
            process, self._process, self._process_key = self._process, None, None
            process.kill()
            await process.close()
        if self._tree is not None:
            shutil.rmtree(self._tree, ignore_errors=True)
            self._tree = None

    # ------------------------------------------------------------------------------------------ the spare

    @property
    def spare(self) -> Spare | None:
        """The spare Blender, once started (None while none is kept or it is still starting)."""
        task = self._spare
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    def keep_spares(self) -> None:
        """From now on, keep a spare Blender ready for the next job; start one now."""
        self.spares = True
        self._replenish(0)

    def _replenish(self, delay: float) -> None:
        """Start a spare Blender after ``delay`` seconds (a timer: the agent is idle that long) unless one is kept
        or starting already, or spares are not kept."""
        if self.spares and self._spare is None:
            self._spare_started = False
            self._spare = asyncio.create_task(self._start_spare(delay))
            self._spare.add_done_callback(_log_spare_failure)

    async def _start_spare(self, delay: float) -> Spare:
        if delay > 0:
            await asyncio.sleep(delay)  # the idle delay before a spare is worth its CPU
        self._spare_started = True
        # Named as render folders are: remove_stale() removes it if the agent is killed.
        tree = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-scene-", dir=self.work_dir))
        process = self.new_process(tree)
        try:
            await process.start()
        except BaseException:
            shutil.rmtree(tree, ignore_errors=True)
            raise
        log.info("a spare Blender is ready for the next job")
        return Spare(process, tree)

    def _busy(self) -> None:
        """Work came: a spare still in its idle delay is not started (one already starting goes on)."""
        if self._spare is not None and not self._spare_started and not self._spare.done():
            self._spare.cancel()
            self._spare = None

    async def _take_spare(self) -> Spare | None:
        """The spare (waiting for it if it is starting), or None if there is none or it failed."""
        task = self._spare
        if task is None:
            return None
        if not self._spare_started and not task.done():
            self._spare = None
            task.cancel()
            return None
        await asyncio.wait({task})  # cancelled while waiting: the spare stays kept
        self._spare = None
        if task.cancelled() or task.exception() is not None:
            return None  # logged by _log_spare_failure; the job starts a Blender of its own
        spare = task.result()
        if not spare.process.alive:
            await spare.discard()
            return None
        return spare

    async def _move_in(self, spare: Spare, scene: Path, order_scene: dict[str, Any]) -> Path | None:
        """Lay the job's scene tree (where ``scene`` is) into the spare's folder: the main .blend there, or None
        (the spare discarded) if that fails."""
        tree = scene_root(scene, order_scene)
        main, files = scene_files(order_scene)
        try:
            await asyncio.to_thread(_lay_out, spare.tree, tree, [f.path for f in files])
        except (OSError, UnsafeTree) as exc:
            log.warning("cannot use the spare Blender (%s): starting one for the job", exc)
            await spare.discard()
            return None
        return spare.tree / main

    async def discard_spare(self) -> None:
        """Stop the spare Blender, or its start."""
        task, self._spare = self._spare, None
        if task is None:
            return
        if not task.done():
            task.cancel()
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is None:
            await task.result().discard()

    async def close(self) -> None:
        """The agent stops: no warm Blender, no spare."""
        self.spares = False
        await self.discard_spare()
        await self.discard_process()

    def clear_work_dir(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)



def _lay_out(target: Path, tree: Path, paths: list[str]) -> None:
    """Link every file of ``tree`` named in ``paths`` into ``target`` at the same path (scene_tree.link_into's
    checks: no way out of ``target``, no symlinks, nothing overwritten)."""
    for path in paths:
        link_into(target, path, tree / path)


def _log_spare_failure(task: asyncio.Task[Spare]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("the spare Blender did not start: %s", task.exception())


def scene_root(blend: Path, scene: dict) -> Path:
    """The root of the tree ``blend`` was laid out in: ``blend`` less the parts of its path in the tree."""
    main, _files = scene_files(scene)
    return blend.parents[len(PurePosixPath(main).parts) - 1]
