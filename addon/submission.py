"""Pack, upload and submit a scene, in the background, reporting through a queue.

No ``bpy`` here. The add-on saves a copy of the open file (the artist's file is never touched), starts a
:class:`Submission` in a thread, and drains :attr:`Submission.updates` from a modal timer; ESC calls
:meth:`Submission.abort`. The ``framehive submit`` command drains the same queue into its progress line.
``run()`` called directly does the same work synchronously (scripts, headless).
Nothing is half-submitted: the job is created by one request, after every blob is uploaded.
"""

from __future__ import annotations

import queue
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .client import ApiError, Client, ConnectionFailed
from .refusals import token_refusal


class Aborted(Exception):
    """The artist pressed ESC (or Ctrl-C)."""


@dataclass(frozen=True)
class Options:
    """The job's settings (None: the coordinator's default) and what the artist allowed into the pack."""

    frames: str | None
    chunk: int | None
    priority: int | None
    policy: str | None
    name: str | None
    allow_missing: bool = False  # submit even though some dependencies are missing (they render pink)
    # Files from outside the .blend's folder that may be uploaded: True for any (scripts, --allow-outside), or
    # exactly those real paths (the ones a confirmation dialog showed). See packing.pack.
    allow_outside: bool | frozenset[str] = False
    # What an agent needs to be given the job (None: no more than its scene needs): an exact Blender ("5.0" or
    # "5.0.1"), a cap on agents rendering it at once, a device kind ("gpu", "cpu" or "any").
    blender_version: str | None = None
    max_workers: int | None = None
    device: str | None = None


@dataclass(frozen=True)
class Update:
    kind: str  # "status" | "step" (one file read or copied: worth showing live, not logging) | "progress" |
    #            "done" | "error"
    text: str
    fraction: float | None = None  # 0..1 for "progress"
    job: dict[str, Any] | None = None  # for "done"
    # For "error": the cause, for front ends that phrase it their own way (not compared: updates are equal by
    # what they say).
    error: Exception | None = field(default=None, compare=False)
    outside: tuple[str, ...] = ()  # for "error": files from outside the .blend's folder awaiting confirmation
    missing: tuple[str, ...] = ()  # for "error": missing files awaiting confirmation

    @property
    def needs_confirmation(self) -> bool:
        """The submission stopped before copying anything, for files the artist must see and allow."""
        return bool(self.outside or self.missing)

    def to_allow(self, outside: str, missing: str) -> str:
        """``outside`` and/or ``missing`` (how a front end allows each kind of file), as this refusal needs."""
        return " and ".join(name for name, files in ((outside, self.outside), (missing, self.missing)) if files)


class Submission:
    def __init__(self, client: Client, blend: Path, workdir: Path, options: Options,
                 project: Path | None = None) -> None:
        """``blend`` is the scene (the add-on's saved copy, or the artist's file: packing never writes to it);
        ``project`` the folder whose files may be uploaded without asking (default: the .blend's folder; the
        add-on gives the open file's); ``workdir`` a scratch folder this submission owns and removes when it
        is done (the pack is made in ``workdir/pack``)."""
        self.client = client
        self.blend = Path(blend)
        self.workdir = Path(workdir)
        self.options = options
        self.project = Path(project) if project is not None else self.blend.parent
        self.updates: queue.Queue[Update] = queue.Queue()
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("this submission was started already")
        self._thread = threading.Thread(target=self.run, name="framehive-submit", daemon=True)
        self._thread.start()

    def abort(self) -> None:
        """Stop as soon as possible (ESC): while packing, or between two upload chunks. Once every file is
        uploaded the job is created by one request, which is not interrupted."""
        self._abort.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Do the whole submission; ends with exactly one "done" or "error" update, whatever happens."""
        try:
            # Imported here: it loads blender-asset-tracer, which only a submission needs. Inside the try so
            # that even a broken install ends with an "error" update instead of a silently dead thread.
            try:
                from . import packing
            except ImportError as exc:
                self._post("error", f"packing a scene needs blender-asset-tracer and zstandard ({exc}; "
                                    f"pip install 'framehive[artist]'); nothing was submitted", error=exc)
                return
            try:
                job = self._submit(packing)
            except packing.PackAborted:
                raise Aborted from None
            except packing.NeedsConfirmation as exc:
                self._post("error", f"{exc}; nothing was submitted", error=exc, outside=tuple(exc.outside),
                           missing=tuple(exc.missing))
                return
            except packing.PackError as exc:
                self._post("error", f"packing the scene failed: {exc}", error=exc)
                return
        except Aborted as exc:
            self._post("error", "submission cancelled; nothing was submitted", error=exc)
        except ApiError as exc:
            self._post("error", _api_message(exc), error=exc)
        except OSError as exc:
            self._post("error", f"packing the scene failed: {exc}", error=exc)
        except Exception as exc:  # a bug must reach the artist as a message, not a silent dead thread
            self._post("error", f"unexpected error: {type(exc).__name__}: {exc}", error=exc)
        else:
            self._post("done", f"job {job['id']} submitted: {job.get('price', '?')} points held", job=job)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _submit(self, packing: ModuleType) -> dict[str, Any]:
        self._check_abort()
        o = self.options
        self._post("status", "packing the scene and its files")
        pack = packing.pack(self.blend, self.workdir / "pack", project=self.project, allow_outside=o.allow_outside,
                            allow_missing=o.allow_missing, progress=lambda text: self._post("step", text),
                            abort=self._abort)
        self._check_abort()
        if pack.outside:  # allowed, and still said: the artist sees what leaves the .blend's folder
            self._post("status", f"packed {len(pack.outside)} file(s) from outside the .blend's folder, as allowed: "
                                 f"{packing.name_files(pack.outside)}")
        assets = {path: file for path, file in pack.files.items() if path != pack.main}
        self._post("status", f"checking which of the {len(pack.files)} packed file(s) ({pack.size / 1e6:.1f} MB) "
                             "the coordinator lacks")

        def uploaded(sent: int, total: int) -> None:
            self._check_abort()
            self._post("progress", f"uploading: {sent / 1e6:.1f} of {total / 1e6:.1f} MB",
                       fraction=sent / total if total else 1.0)

        return self.client.submit(pack.root / pack.main, frames=o.frames, chunk=o.chunk, priority=o.priority,
                                  name=o.name, policy=o.policy, progress=uploaded, assets=assets,
                                  scene_path=pack.main, blender_version=o.blender_version,
                                  max_workers=o.max_workers, device=o.device)

    def _check_abort(self) -> None:
        if self._abort.is_set():
            raise Aborted

    def _post(self, kind: str, text: str, **details: Any) -> None:
        self.updates.put(Update(kind, text, **details))


def _api_message(exc: ApiError) -> str:
    """The coordinator's refusal in words an artist can act on; nothing was submitted in any of these cases."""
    if isinstance(exc, ConnectionFailed):
        return f"{exc.message}; nothing was submitted"
    if exc.status == 402:
        details = exc.details
        return (f"not enough points: the job costs {details.get('price', '?')} points, your balance is "
                f"{details.get('balance', '?')}; nothing was submitted")
    return token_refusal(exc, "submit jobs") or f"the coordinator refused the job: {exc}"
