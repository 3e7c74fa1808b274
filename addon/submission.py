"""Pack, upload and submit a saved copy of the scene, in the background, reporting through a queue.

No ``bpy`` here. The operator saves a copy of the open file (the artist's file is never touched), starts a
:class:`Submission` in a thread, and drains :attr:`Submission.updates` from a modal timer; ESC calls
:meth:`Submission.abort`. ``run()`` called directly does the same work synchronously (scripts, headless).
Nothing is half-submitted: the job is created by one request, after every blob is uploaded.
"""

from __future__ import annotations

import queue
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .client import ApiError, Client, ConnectionFailed


class Aborted(Exception):
    """The artist pressed ESC."""


class MissingFiles(Exception):
    """Files the scene uses are missing and the artist did not choose to submit without them."""


@dataclass(frozen=True)
class Options:
    frames: str
    chunk: int | None
    priority: int
    policy: str
    name: str
    allow_missing: bool = False  # submit even though some dependencies are missing (they render pink)


@dataclass(frozen=True)
class Update:
    kind: str  # "status" | "progress" | "done" | "error"
    text: str
    fraction: float | None = None  # 0..1 for "progress"
    job: dict[str, Any] | None = None  # for "done"


class Submission:
    def __init__(self, client: Client, blend: Path, workdir: Path, options: Options) -> None:
        """``blend`` is a saved copy of the scene; ``workdir`` a scratch folder this submission owns and
        removes when it is done (the pack is made in ``workdir/pack``)."""
        self.client = client
        self.blend = Path(blend)
        self.workdir = Path(workdir)
        self.options = options
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
            from . import packing

            try:
                job = self._submit(packing)
            except packing.PackAborted:
                raise Aborted from None
            except packing.PackError as exc:
                self._post("error", f"packing the scene failed: {exc}")
                return
        except Aborted:
            self._post("error", "submission cancelled; nothing was submitted")
        except MissingFiles as exc:
            self._post("error", str(exc))
        except ApiError as exc:
            self._post("error", _api_message(exc))
        except OSError as exc:
            self._post("error", f"packing the scene failed: {exc}")
        except Exception as exc:  # a bug must reach the artist as a message, not a silent dead thread
            self._post("error", f"unexpected error: {type(exc).__name__}: {exc}")
        else:
            self._post("done", f"job {job['id']} submitted: {job.get('price', '?')} points held", job=job)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _submit(self, packing: ModuleType) -> dict[str, Any]:
        self._check_abort()
        self._post("status", "packing the scene and its files")
        pack = packing.pack(self.blend, self.workdir / "pack", progress=lambda text: self._post("status", text),
                            abort=self._abort)
        if pack.missing and not self.options.allow_missing:
            raise MissingFiles(f"{pack.describe_missing()}. Fix the paths, or submit with 'Submit with Missing "
                               "Files' ticked to render without them; nothing was submitted")
        self._check_abort()
        assets = {path: file for path, file in pack.files.items() if path != pack.main}
        self._post("status", f"uploading what the coordinator lacks of {len(pack.files)} files "
                             f"({pack.size / 1e6:.1f} MB)")

        def uploaded(sent: int, total: int) -> None:
            self._check_abort()
            self._post("progress", f"uploading: {sent / 1e6:.1f} of {total / 1e6:.1f} MB",
                       fraction=sent / total if total else 1.0)

        o = self.options
        return self.client.submit(pack.root / pack.main, frames=o.frames, chunk=o.chunk, priority=o.priority,
                                  name=o.name, policy=o.policy, progress=uploaded, assets=assets,
                                  scene_path=pack.main)

    def _check_abort(self) -> None:
        if self._abort.is_set():
            raise Aborted

    def _post(self, kind: str, text: str, fraction: float | None = None, job: dict[str, Any] | None = None) -> None:
        self.updates.put(Update(kind, text, fraction, job))


def _api_message(exc: ApiError) -> str:
    """The coordinator's refusal in words an artist can act on; nothing was submitted in any of these cases."""
    if isinstance(exc, ConnectionFailed):
        return f"{exc.message}; nothing was submitted"
    if exc.status == 402:
        details = exc.details
        return (f"not enough points: the job costs {details.get('price', '?')} points, your balance is "
                f"{details.get('balance', '?')}; nothing was submitted")
    if exc.status == 401:
        return f"the coordinator refused the token (wrong, expired or revoked): {exc.message}"
    if exc.status == 403:
        return f"this token may not submit jobs (rendering needs a user token): {exc.message}"
    return f"the coordinator refused the job: {exc}"
