"""Find Blender and drive one warm render runner process from asyncio.

A worker renders with either a ``blender`` binary or the ``bpy`` module installed in the agent's own Python
(the ``blender`` extra). Either way the code that touches Blender is ``render_runner.py``,
started as a child process; :class:`RenderProcess` talks to it over pipes, one command at a time, so the
agent's event loop (heartbeats, WebSocket pings) keeps running while Blender renders.

Every runner starts confined (confinement.py, through confined_exec.py): it reads the scene's tree and the
software, writes only into private folders of its own, and the agent moves each finished frame from there to
where the caller asked for it. :class:`RenderLimits` bound its memory, the time of one frame and the size of
what it writes; crossing one raises :class:`LimitExceeded`, which names the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.util
import json
import os
import shutil
import signal
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framehive.launch import install_argument

from . import confinement
from .render_limits import (
    MEMORY_POLL_INTERVAL,
    RenderLimits,
    duration_text,
    memory_enforced,
    resident_bytes,
    size_text,
)

__all__ = ["BlenderLauncher", "BlenderNotFound", "LimitExceeded", "RenderError", "RenderLimits", "RenderProcess",
           "probe"]

RUNNER_PATH = Path(__file__).resolve().with_name("render_runner.py")
MARKER = "@@FH "  # must match render_runner.MARKER; lines without it are Blender chatter

# Starting Blender, enumerating devices (CUDA/HIP driver initialisation can take tens of seconds on a cold
# machine) and importing the runner. Measured here: about 1 s with the bpy module on a CPU-only box.
READY_TIMEOUT = 120.0
# Opening a scene: production files with many assets can take minutes to read; the sample scene takes 15 ms.
OPEN_TIMEOUT = 600.0
# One frame: none besides RenderLimits.frame_seconds (hours by default), because a production frame can
# legitimately take hours; callers may pass a shorter one of their own.
RENDER_TIMEOUT: float | None = None
# After "quit", how long Blender may take to exit before it is killed (bpy teardown takes well under 1 s).
CLOSE_GRACE = 10.0
# Lines of Blender's stderr kept for error reports: enough for a Python traceback plus Cycles' last status.
LOG_LINES = 200
# Longest line read from Blender's pipes; longer lines are cut rather than breaking the reader.
PIPE_LINE_LIMIT = 1024 * 1024
# The folder or git URL this install came from, as pip recorded it (framehive/launch.py).
INSTALL_HINT = f"install the bpy module with `pip install {install_argument('blender')}`, or pass `--blender PATH`"


class BlenderNotFound(RuntimeError):
    """No usable Blender: neither the given path, nor the bpy module, nor ``blender`` on PATH."""


class RenderError(RuntimeError):
    """A command failed or Blender died; ``log_tail`` holds Blender's last output lines."""

    def __init__(self, message: str, log_tail: str = "", command: str | None = None) -> None:
        super().__init__(message)
        self.log_tail = log_tail
        self.command = command


class LimitExceeded(RenderError):
    """The render crossed one of its :class:`RenderLimits`; ``limit`` is "memory", "frame_time" or "output_size"."""

    def __init__(self, limit: str, message: str, log_tail: str = "", command: str | None = None) -> None:
        super().__init__(message, log_tail, command)
        self.limit = limit


@dataclass
class BlenderLauncher:
    """How to start a render runner: ``argv`` runs it, ``kind`` is "module" (bpy) or "binary" (blender)."""

    argv: list[str]
    kind: str
    env: dict[str, str] | None = field(default=None)

    @classmethod
    def discover(cls, blender_path: str | None) -> BlenderLauncher:
        """Use ``blender_path`` if given, else the bpy module in this Python, else ``blender`` on PATH."""
        if blender_path:
            return cls.for_binary(blender_path)
        if importlib.util.find_spec("bpy") is not None:
            # -P: do not put worker_agent/ first on sys.path, where our modules could shadow Blender's imports.
            return cls(argv=[sys.executable, "-P", str(RUNNER_PATH)], kind="module")
        found = shutil.which("blender")
        if found:
            return cls.for_binary(found)
        raise BlenderNotFound(f"Blender not found: {INSTALL_HINT} (a Blender 5.0 executable).")

    @classmethod
    def for_binary(cls, path: str) -> BlenderLauncher:
        """Start the runner inside the ``blender`` executable at ``path``."""
        binary = Path(path).expanduser()
        if not binary.is_file() or not os.access(binary, os.X_OK):
            raise BlenderNotFound(f"{path} is not an executable Blender binary: {INSTALL_HINT}.")
        argv = [
            str(binary.resolve()),
            "-b",  # background: no window
            "-Y",  # --disable-autoexec: no Python from .blend files, whatever the user preferences say
            "--factory-startup",  # ignore the user's startup file and add-ons
            "--offline-mode",  # 4.2+: Blender and add-ons must not go online
            "--python-exit-code", "1",  # an exception in the runner exits non-zero instead of idling on
            "--python", str(RUNNER_PATH),
            "--",  # anything after this is ours, not Blender's
        ]  # fmt: skip
        return cls(argv=argv, kind="binary")

    def command(self, threads: int | None = None) -> list[str]:
        """The command line that starts a runner; with ``threads``, the whole Blender is held to that many CPU
        threads, not only its renders: a binary gets Blender's own ``-t``, the module runner ``--threads``
        (render_runner._import_bpy says why and how)."""
        if threads is None:
            return list(self.argv)
        if self.kind == "binary":
            at = self.argv.index("--python")
            return [*self.argv[:at], "-t", str(threads), *self.argv[at:], "--threads", str(threads)]
        return [*self.argv, "--threads", str(threads)]


class RenderProcess:
    """One warm render runner, confined: start it, open a scene, render frames, close it.

    ``scene_tree`` is the folder the scenes it opens live in, the only one of the owner's it may read (the task
    runner passes the job's tree). None leaves reads unlimited, for callers that open scenes from anywhere
    (tests, ``probe``); writes, network, signals and ``limits`` are confined all the same. Its private output
    and temp folders are made under ``work_root`` (default: the system's temp folder) and removed on close.
    """

    def __init__(self, launcher: BlenderLauncher, log_lines: int = LOG_LINES, *, scene_tree: Path | None = None,
                 limits: RenderLimits | None = None, work_root: Path | None = None,
                 threads: int | None = None) -> None:
        self.launcher = launcher
        self.threads = threads  # CPU threads the whole Blender may use (None: all); see BlenderLauncher.command
        self.scene_tree = scene_tree
        self.limits = limits or RenderLimits()
        self.work_root = work_root
        self.folders: confinement.RenderFolders | None = None
        self.policy: confinement.Policy | None = None  # what confines it, once started
        self._proc: asyncio.subprocess.Process | None = None
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._log: deque[str] = deque(maxlen=log_lines)
        self._lock = asyncio.Lock()
        self._readers: list[asyncio.Task[None]] = []
        self._watch: asyncio.Task[None] | None = None
        self._gone = False  # set on kill or end of output, before the exit code is known
        self._killed = False  # by kill(): its death is ours, not a crash
        self._limit_hit: tuple[str, str] | None = None  # (limit, reason) when the memory watch killed it
        self._doing = "starting"  # what Blender is busy with, for the message if it dies
        self._outputs = 0
        self.ready_info: dict[str, Any] | None = None

    async def __aenter__(self) -> RenderProcess:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def alive(self) -> bool:
        """True while the Blender process is running."""
        return self._proc is not None and not self._gone and self._proc.returncode is None

    @property
    def _started(self) -> asyncio.subprocess.Process:
        """The Blender process, for the steps that only run after start() spawned it."""
        if self._proc is None:
            raise RuntimeError("RenderProcess.start() was not called")
        return self._proc

    @property
    def pid(self) -> int | None:
        """Blender's process id once started (the wrapper execs it, so it is Blender's own)."""
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        """Blender's exit code once it has exited, else None."""
        return None if self._proc is None else self._proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines Blender wrote (stderr, plus stray stdout lines)."""
        return "\n".join(list(self._log)[-lines:])

    async def start(self, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        """Spawn the runner, confined, and wait for its ``ready`` event (Blender version and devices)."""
        if self._proc is not None:
            raise RuntimeError("RenderProcess.start() may be called only once")
        self.folders = confinement.RenderFolders.create(self.work_root)
        command = confinement.confine(self.launcher.command(self.threads), self.folders, self.scene_tree,
                                      self.limits.file_size_rlimit(), self.launcher.env)
        self.policy = command.policy
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *command.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=command.env,
                cwd=command.cwd,
                limit=PIPE_LINE_LIMIT,
                # Own session: a Ctrl-C or SIGTERM meant for the agent must not kill Blender mid-frame; the
                # agent decides (hand back, finish, kill). If the agent dies, the runner notices within a
                # second (render_runner.PARENT_POLL_INTERVAL) and exits.
                start_new_session=True,
            )
        except OSError as exc:
            self.folders.remove()
            raise BlenderNotFound(f"cannot start {self.launcher.argv[0]}: {exc}") from exc
        stdout, stderr = self._started.stdout, self._started.stderr
        assert stdout is not None and stderr is not None  # both PIPE
        self._readers = [
            asyncio.create_task(self._read_events(stdout)),
            asyncio.create_task(self._drain_log(stderr)),
        ]
        if self.limits.memory_bytes is not None and memory_enforced():
            self._watch = asyncio.create_task(self._watch_memory(self.limits.memory_bytes))
        try:
            async with self._lock:
                event = await self._next_event("start", timeout)
            if event.get("event") != "ready":
                raise RenderError(f"expected a ready event, got {event}", self.log_tail(), "start")
        except BaseException:
            self.kill()
            await self._reap()
            self.folders.remove()
            raise
        self._doing = "idle"
        self.ready_info = event
        return event

    async def open(
        self,
        path: str | os.PathLike[str],
        device: str = "CPU",
        threads: int | None = None,
        settings: dict[str, Any] | None = None,
        timeout: float | None = OPEN_TIMEOUT,
    ) -> dict[str, Any]:
        """Open a .blend (scripts off, Freestyle off) with the job's settings; returns the ``opened`` event."""
        # Absolute paths: the runner refuses relative ones rather than guess what they are relative to.
        command = {"cmd": "open", "path": os.path.abspath(path), "device": device, "threads": threads,
                   "settings": settings or {}}
        return await self._command(command, "opened", timeout, f"opening {command['path']}")

    async def render(
        self, frame: int, output: str | os.PathLike[str], timeout: float | None = RENDER_TIMEOUT
    ) -> dict[str, Any]:
        """Render ``frame`` of the open scene to exactly ``output``; returns the ``rendered`` event.

        Blender writes into its private output folder; the frame is checked against the output size limit
        and then moved to ``output``. The frame time limit applies unless ``timeout`` is shorter.
        """
        target = self._target(output, "render")
        private = self._private_output()
        command = {"cmd": "render", "frame": frame, "output": str(private)}
        event = await self._render_command(command, "rendered", timeout, f"rendering frame {frame}")
        event["path"] = self._deliver(private, target, "render")
        return event

    async def render_region(
        self,
        frame: int,
        rect: tuple[int, int, int, int] | list[int],
        output: str | os.PathLike[str],
        overrides: dict[str, Any] | None = None,
        timeout: float | None = RENDER_TIMEOUT,
    ) -> dict[str, Any]:
        """Render only ``rect`` = (x, y, w, h) of ``frame`` to ``output``; returns the ``rendered_region`` event.

        ``rect`` is in pixels of the output resolution (after resolution_percentage, or after the one in
        ``overrides``), origin at the top left of the image. The PNG is exactly w x h pixels and equals that
        slice of a full render with the same settings (bit-identical with dither 0 and no denoiser).
        ``overrides`` may set resolution_x/_y/_percentage, samples, pixel_filter_type, use_denoising and seed for
        this render only. A rectangle outside the image, empty or not made of integers raises RenderError.
        Limits apply as for :meth:`render`.
        """
        rect = list(rect) if isinstance(rect, tuple | list) else rect  # anything else: the runner says what is wrong
        target = self._target(output, "render_region")
        private = self._private_output()
        command = {"cmd": "render_region", "frame": frame, "rect": rect, "output": str(private),
                   "overrides": overrides or {}}
        event = await self._render_command(command, "rendered_region", timeout, f"rendering a region of frame {frame}")
        event["path"] = self._deliver(private, target, "render_region")
        return event

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Ask Blender to quit; kill it if it is busy or does not exit within ``grace`` seconds. Removes its
        private folders."""
        if self._proc is None:
            return
        if self._lock.locked():
            self.kill()  # busy: closing abandons the command in flight, which fails with RenderError
        elif self.alive:
            with contextlib.suppress(RenderError, OSError):
                await self._command({"cmd": "quit"}, "bye", grace)
        try:
            await asyncio.wait_for(self._proc.wait(), grace)
        except TimeoutError:
            self.kill()
        await self._reap()
        if self.folders is not None:
            self.folders.remove()

    def kill(self) -> None:
        """Kill Blender now; a command in flight fails with :class:`RenderError`."""
        if self._proc is not None and self._proc.returncode is None:
            self._gone = True
            self._killed = True
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    async def _reap(self) -> None:
        """Wait for the exit and for the pipe readers, so the log tail is complete."""
        await self._started.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)

    # ------------------------------------------------------------------------------------------ outputs

    def _target(self, output: str | os.PathLike[str], name: str) -> Path:
        target = Path(os.path.abspath(output))
        if not target.parent.is_dir():
            raise RenderError(f"output directory does not exist: {target.parent}", self.log_tail(), name)
        return target

    def _private_output(self) -> Path:
        """A fresh file name in the private output folder (the only folder Blender may write frames to)."""
        self._outputs += 1
        folder = self.folders.output if self.folders is not None else Path(os.devnull)
        return folder / f"{self._outputs:06d}.png"

    def _deliver(self, private: Path, target: Path, name: str) -> str:
        """Check the frame Blender wrote against the output size limit, then move it to ``target``."""
        try:
            size = private.stat().st_size
            limit = self.limits.output_bytes
            if limit is not None and size > limit:
                raise LimitExceeded("output_size", f"the frame is larger than the {size_text(limit)} this worker "
                                    "allows for one file (output size limit)", self.log_tail(), name)
            _move(private, target)
        except OSError as exc:
            raise RenderError(f"cannot deliver the frame to {target}: {exc}", self.log_tail(), name) from exc
        finally:
            private.unlink(missing_ok=True)
        return str(target)

    # ------------------------------------------------------------------------------------------ commands

    async def _render_command(self, command: dict[str, Any], expected: str, timeout: float | None,
                              doing: str) -> dict[str, Any]:
        """A render under the frame time limit, unless the caller's own ``timeout`` is shorter."""
        limit = self.limits.frame_seconds
        if limit is not None and (timeout is None or limit <= timeout):
            return await self._command(command, expected, limit, doing, timeout_limit="frame_time")
        return await self._command(command, expected, timeout, doing)

    async def _command(self, command: dict[str, Any], expected: str, timeout: float | None, doing: str = "",
                       timeout_limit: str | None = None) -> dict[str, Any]:
        name = command["cmd"]
        async with self._lock:
            if not self.alive:
                if self._limit_hit is not None:
                    raise LimitExceeded(*self._limit_hit, self.log_tail(), name)
                raise RenderError(f"Blender is not running (exit code {self.returncode})", self.log_tail(), name)
            self._doing = doing or name
            try:
                stdin = self._started.stdin
                assert stdin is not None  # PIPE
                stdin.write((json.dumps(command) + "\n").encode())
                await stdin.drain()
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise RenderError(f"Blender stopped reading commands: {exc}", self.log_tail(), name) from exc
            event = await self._next_event(name, timeout, timeout_limit)
            self._doing = "idle"
        if event.get("event") == "error":
            raise RenderError(event.get("message", "unknown error"), self.log_tail(), name)
        if event.get("event") != expected:
            raise RenderError(f"expected {expected!r}, got {event}", self.log_tail(), name)
        return event

    async def _next_event(self, name: str, timeout: float | None, timeout_limit: str | None = None) -> dict[str, Any]:
        """The runner's next event; on timeout Blender is killed, since its state is then unknown. ``asyncio.timeout``,
        not ``wait_for``: Python 3.11's wait_for returns the event when it arrives just as the caller is cancelled, and
        the cancel is lost (an agent whose coordinator died went on with its task, and crashed sending its outcome)."""
        try:
            async with asyncio.timeout(timeout):
                event = await self._events.get()
        except TimeoutError:
            self.kill()
            if timeout_limit is not None and timeout is not None:
                raise LimitExceeded(timeout_limit, f"{self._doing} took longer than {duration_text(timeout)}, the most "
                                    "this worker allows for one frame (frame time limit)", self.log_tail(),
                                    name) from None
            raise RenderError(f"Blender did not answer {name!r} within {timeout} s", self.log_tail(), name) from None
        if event is None:
            await self._reap()
            raise self._death(name)
        return event

    def _death(self, name: str) -> RenderError:
        """Why Blender is gone: a limit it crossed, a crash (killed by a signal we did not send), or its exit."""
        code, tail = self._started.returncode, self.log_tail()
        if self._limit_hit is not None:
            return LimitExceeded(*self._limit_hit, tail, name)
        if code == -getattr(signal, "SIGXFSZ", 0) and self.limits.output_bytes is not None:
            return LimitExceeded("output_size", f"Blender was stopped while {self._doing}: it wrote a file larger "
                                 f"than the {size_text(self.limits.output_bytes)} this worker allows (output size "
                                 "limit)", tail, name)
        if code == confinement.EXIT_REFUSED:
            return RenderError("the render process could not be confined, so it was not started", tail, name)
        if code is not None and code < 0 and not self._killed:
            return RenderError(f"Blender crashed ({_signal_name(-code)}) while {self._doing}", tail, name)
        return RenderError(f"Blender exited with code {code} during {name!r}", tail, name)

    async def _watch_memory(self, limit: int) -> None:
        """Kill Blender when its resident memory passes ``limit`` (see render_limits.py for why not an rlimit)."""
        process = self._started
        pid = process.pid
        while process.returncode is None and not self._gone:
            used = resident_bytes(pid)
            if used is not None and used > limit:
                self._limit_hit = ("memory", f"Blender used {size_text(used)} of memory while {self._doing}, more "
                                   f"than the {size_text(limit)} this worker allows (memory limit)")
                self.kill()
                return
            await asyncio.sleep(MEMORY_POLL_INTERVAL)

    async def _read_events(self, stream: asyncio.StreamReader) -> None:
        """Turn marker lines into events; anything else is Blender talking, which goes to the log."""
        try:
            async for line in _lines(stream):
                position = line.find(MARKER)
                if position < 0:
                    self._log.append(line)
                    continue
                try:
                    event = json.loads(line[position + len(MARKER):])
                except json.JSONDecodeError:
                    self._log.append(line)
                    continue
                if isinstance(event, dict):
                    self._events.put_nowait(event)
        finally:
            self._gone = True
            self._events.put_nowait(None)  # end of stream: Blender is gone

    async def _drain_log(self, stream: asyncio.StreamReader) -> None:
        # Read continuously so Blender never blocks on a full stderr pipe, keeping only the tail.
        async for line in _lines(stream):
            self._log.append(line)


def _move(source: Path, target: Path) -> None:
    """Move a finished frame; across file systems, copy it beside ``target`` first so it appears whole."""
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        partial = target.with_name(f".{target.name}.partial")
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


async def _lines(stream: asyncio.StreamReader):
    """Decoded lines of ``stream`` until EOF; an overlong line is dropped instead of ending the loop."""
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # longer than PIPE_LINE_LIMIT; the reader has already discarded it
            continue
        if not raw:
            return
        yield raw.decode("utf-8", errors="replace").rstrip("\r\n")


async def probe(launcher: BlenderLauncher) -> dict[str, Any]:
    """Start a runner just to learn the Blender version and devices, then close it."""
    process = RenderProcess(launcher)
    try:
        ready = await process.start()
    finally:
        await process.close()
    return {"blender_version": ready["blender_version"], "devices": ready["devices"]}
