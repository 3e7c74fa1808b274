"""Push work to the workers connected to this coordinator process.

``kick()`` is called whenever work or a worker may have become available (a job submitted, a task finished
or requeued, a worker connected). It leases a task for each idle connection and sends it at once: workers
never poll. The registry only knows this process's connections; the database decides who holds what.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from flask import current_app

from protocol import messages as m

from . import leases
from .models import Task
from .outcomes import LostLease, missing_frames


@dataclass(eq=False)
class Connection:
    """One connected worker agent. ``send`` may be called from any thread."""

    worker_id: int
    name: str
    ws: object
    current: tuple[int, int] | None = None  # (task_id, attempt) it is working on
    draining: bool = False  # handed back its work and is shutting down: assign nothing more
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, message: m.Message) -> None:
        with self._lock:
            self.ws.send(m.encode(message))  # type: ignore[attr-defined]


def assign_message(task: Task) -> m.Assign:
    job = task.job
    return m.Assign(
        task_id=task.id,
        attempt=task.attempt,
        job_id=job.id,
        frames=missing_frames(task),
        scene={"sha256": job.scene_sha256, "url": f"/api/v1/blobs/{job.scene_sha256}"},
        settings=dict(job.settings or {}),
        upload_url=f"/api/v1/worker/tasks/{task.id}/frames/{{frame}}?attempt={task.attempt}",
    )


class Dispatcher:
    def __init__(self) -> None:
        self._connections: dict[int, Connection] = {}
        self._lock = threading.RLock()

    def register(self, conn: Connection) -> Connection | None:
        """Add a connection; returns the one it replaces (same worker reconnecting), if any."""
        with self._lock:
            old = self._connections.get(conn.worker_id)
            self._connections[conn.worker_id] = conn
            return old

    def unregister(self, conn: Connection) -> None:
        with self._lock:
            if self._connections.get(conn.worker_id) is conn:
                del self._connections[conn.worker_id]

    def connection(self, worker_id: int) -> Connection | None:
        with self._lock:
            return self._connections.get(worker_id)

    def kick(self) -> None:
        """Lease and push a task to every idle connection. Must run inside an app context."""
        with self._lock:
            idle = [c for c in self._connections.values() if c.current is None and not c.draining]
            for conn in idle:
                task = leases.claim_task(conn.worker_id)
                if task is None:
                    continue  # nothing this worker may run (blocklists differ per worker)
                message = assign_message(task)
                conn.current = (task.id, task.attempt)
                try:
                    conn.send(message)
                except Exception:  # the socket died between claim and send: give the task back
                    current_app.logger.warning("worker %s vanished before its assignment", conn.name)
                    conn.current = None
                    leases.hand_back(task)

    def drop_leases(self, lost: Iterable[LostLease]) -> None:
        """Tell connected workers to stop tasks they no longer hold."""
        for lease in lost:
            conn = self.connection(lease.worker_id)
            if conn is None or conn.current is None or conn.current[0] != lease.task_id:
                continue
            conn.current = None
            try:
                conn.send(m.Cancel(task_id=lease.task_id, reason=lease.reason))
            except Exception:
                current_app.logger.info("could not tell worker %s to drop task %s", conn.name, lease.task_id)

