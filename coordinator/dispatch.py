"""Push work to the workers connected to this coordinator process.

``kick()`` is called whenever work or a worker may have become available (a job submitted, a task finished
or requeued, a worker connected). It leases work (a check, else a task) to each idle connection, a batch of
agents per transaction, and sends the orders at once: workers never poll. The registry only knows this process's
connections; the database decides who holds what. On PostgreSQL a kick also tells the other coordinator processes
to kick theirs (wakeups.py); a kick caused by such a wake-up (or by the sweep) first looks whether another process
took leases from this process's agents (a job cancelled or failed there, an agent suspended there) and tells those
agents to stop.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from flask import Flask, current_app
from framehive.protocol import messages as m
from sqlalchemy import select

from . import leases, scene_files, wakeups, work_slots
from .db import db
from .models import Check, Task, Worker
from .states import CheckState, TaskState
from .transitions import LostLease, missing_frames
from .verification import comparison, tier1
from .verification import handles as check_handles
from .verification.leasing import CheckClaims, release


@dataclass(frozen=True)
class Work:
    """One unit a worker holds: a render task or a verification check."""

    kind: str  # "task" | "check"
    id: int
    attempt: int
    handle: str = field(default="", compare=False)  # a check's, as its verifier knows it (handles.py)


#: Agents whose claims share one write transaction in the dispatcher's pass, on SQLite. Every transaction there takes
#: the database's one write lock; with a transaction or two per idle agent each claim waited its turn behind every
#: other writer (uploads, results, heartbeats), and a pass over 100 agents took up to 5.6 s (issue 16,
#: benchmarks/fleet.py; BENCHMARKS.md). A bigger batch holds the lock longer while the others wait: this bounds it.
#: On PostgreSQL each lease commits alone: a lease locks its rows until the commit, and two coordinators' passes
#: locking several rows each in different orders could deadlock.
AGENTS_PER_TRANSACTION = 20

#: Seconds before the dispatcher's thread tries a failed pass again when no kick comes first.
RETRY_AFTER = 1.0


@dataclass
class Queued:
    """What a pass of the dispatcher still expects to find queued: render tasks and checks."""

    tasks: int
    checks: int

    def any(self) -> bool:
        return self.tasks > 0 or self.checks > 0


@dataclass(eq=False)
class Connection:
    """One connected worker agent. ``send`` may be called from any thread."""

    worker_id: int
    name: str
    ws: object  # ws_guard.Guarded in a serving coordinator: anything with send(text)
    token_id: int = 0  # the worker token it connected with: revoking it ends the connection
    connected_at: float = 0.0  # its sign-on's Worker.connected_at: another value there is a newer session
    current: Work | None = None  # what it is working on
    draining: bool = False  # handed back its work and is shutting down: assign nothing more
    heard: float = 0.0  # time.monotonic() of its last sign of life (channel_upkeep writes last_seen from it)
    lease_written: float = 0.0  # time.monotonic() when the lease of ``current`` was last given or renewed
    handling: bool = False  # its thread has a message of the agent's in hand (waiting for a work slot, or working)
    token_lost: bool = False  # channel_upkeep found its token revoked or expired: its thread ends the connection
    judged: str = ""  # the handle of the last check whose result this process judged for it (Dispatcher.judged)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, message: m.Message) -> None:
        """Send, or hang up on an agent that does not take it (ws_guard.Guarded: it waits a few seconds at most, with
        no work slot held)."""
        with work_slots.released(), self._lock:
            self.ws.send(m.encode(message))  # type: ignore[attr-defined]

    def backed_up(self) -> bool:
        """What was sent to the agent before has not all gone (it does not read): the dispatcher gives it nothing,
        rather than wait on it (ws_guard.Guarded; a stand-in socket without the method never is)."""
        backed_up = getattr(self.ws, "backed_up", None)
        return backed_up is not None and backed_up()

    def alive(self, at: float, lease_timeout: float) -> bool:
        """Heard within a lease before ``at`` (time.monotonic()), or with a message of its agent's in hand: its
        lease is renewed rather than left to run out (channel_upkeep, the reaper)."""
        return self.handling or at - self.heard < lease_timeout


def verify_message(check: Check) -> m.Verify:
    job = check.frame.job
    return m.Verify(
        handle=check.handle or "",
        job_id=job.id,
        frame=check.frame.number,
        rect=list(check.render_rect),
        scene=scene_files.describe(job),
        settings=dict(job.settings or {}),
        upload_url=f"/api/v1/worker/checks/{check.handle}/result",
        yardstick_seed=None if check.kind == "tier1" else comparison.yardstick_seed(),
        cross=comparison.is_cross(check),
        overrides=tier1.overrides(*check.render_rect[2:]) if check.kind == "tier1" else {},
    )


def assign_message(task: Task) -> m.Assign:
    job = task.job
    return m.Assign(
        task_id=task.id,
        attempt=task.attempt,
        job_id=job.id,
        frames=missing_frames(task),
        scene=scene_files.describe(job),
        settings=dict(job.settings or {}),
        upload_url=f"/api/v1/worker/tasks/{task.id}/frames/{{frame}}?attempt={task.attempt}",
    )


class Dispatcher:
    """Two locks, never held the other way round: ``_registry`` guards the dict of connections and is held for
    a dict operation only (never during database work), so looking up or registering a connection never waits
    for a database lock; ``_dispatching`` serialises ``kick`` (which leases in the database)."""

    def __init__(self) -> None:
        self._connections: dict[int, Connection] = {}
        self._registry = threading.Lock()
        self._dispatching = threading.RLock()
        # Kicks are numbered (under _numbering) after their caller's commit; _passed is the highest number the
        # last finished pass began after, _dropped the same for passes that also dropped leases lost elsewhere.
        self._numbering = threading.Lock()
        self._requested = self._passed = self._dropped = 0
        self._drop_requested = 0  # the number of the last kick that asked for _drop_leases_lost_elsewhere
        self.origin = uuid.uuid4().hex  # names this process in wake-up notifications
        # The dispatcher's own thread (start()): kicks only number themselves and wake it; None: kicks run the pass.
        self._kicked = threading.Condition(self._numbering)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._claimed = 0.0  # when the batch being leased began (_lease_to), under _dispatching

    def start(self, app: Flask) -> None:
        """Run the passes in a thread of their own from now on: ``kick`` returns once its caller's commit is done
        and the thread is told, instead of running (or waiting for) a pass itself. A serving coordinator does this
        (with its reaper): a submit of 1,000 frames to 1,000 idle agents answered only after the pass that leased
        them all (86 s, issue 16), and every agent's message waited for a pass on the dispatcher's lock (at 1,000
        agents a thousand threads queued there)."""
        self._thread = threading.Thread(target=self._run, args=(app,), name="framehive-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread between passes (a pass running is finished first)."""
        thread = self._thread
        if thread is None:
            return
        with self._kicked:
            self._stopping = True
            self._kicked.notify_all()
        thread.join(timeout=10)

    def register(self, conn: Connection) -> Connection | None:
        """Add a connection; returns the one it replaces (same worker reconnecting), if any."""
        with self._registry:
            old = self._connections.get(conn.worker_id)
            self._connections[conn.worker_id] = conn
            return old

    def unregister(self, conn: Connection) -> None:
        with self._registry:
            if self._connections.get(conn.worker_id) is conn:
                del self._connections[conn.worker_id]

    def connection(self, worker_id: int) -> Connection | None:
        with self._registry:
            return self._connections.get(worker_id)

    def judged(self, worker_id: int, handle: str) -> None:
        """The result of check ``handle`` from this agent was judged and committed here: its check_done then needs
        no read of the check (worker_channel._check_finished; a judged check's lease is over, and a new lease draws a
        new handle). Called after the commit."""
        conn = self.connection(worker_id)
        if conn is not None:
            conn.judged = handle

    def still_working(self, worker_id: int, kind: str, work_id: int) -> bool:
        """Whether the agent is connected here, has this work (``kind`` "task" or "check", and its id) in hand and
        is alive (Connection.alive): a lease of its that ran out is renewed by the sweep, not taken back. A safety
        net for an upkeep renewal that comes late (its write waits for SQLite's one write lock behind the others);
        the leases that ran out at 1,000 agents had another cause (worker_channel._apply), and this was never needed
        there (issue 16)."""
        conn = self.connection(worker_id)
        if conn is None or conn.current is None or (conn.current.kind, conn.current.id) != (kind, work_id):
            return False
        return conn.alive(time.monotonic(), float(current_app.config["FRAMEHIVE_LEASE_TIMEOUT"]))

    def holder(self, worker_id: int) -> str:
        """What this coordinator knows of an agent whose lease ran out, for the log: connected here or not, when it
        was last heard, what its connection records it holding."""
        conn = self.connection(worker_id)
        if conn is None:
            return "not connected here"
        work = f"{conn.current.kind} {conn.current.id}" if conn.current is not None else "nothing"
        return (f"connected, last heard {time.monotonic() - conn.heard:.1f} s ago, holding {work}"
                + (", a message of its in hand" if conn.handling else ""))

    def between_passes(self) -> threading.RLock:
        """Held, no pass runs: a connection's end (worker_channel._sign_off) counts what its agent held only after a
        pass that leased it work has sent the order or given the work back. Otherwise, with passes in their own
        thread, an agent that hung up just after it became idle was charged a lost lease (a failure towards its
        account's blocklist) for a task it was never sent (tests/e2e/test_griefing.py saw one). Take it with no
        transaction open (see kick)."""
        return self._dispatching

    def connections(self) -> list[Connection]:
        """Every connection of this process, as registered now."""
        with self._registry:
            return list(self._connections.values())

    def kick(self, announce: bool = True) -> None:
        """Lease and push work to every idle connection. Must run inside an app context.

        Ends the caller's transaction first: on SQLite every transaction holds the write lock, and a thread
        waiting for the dispatcher lock while holding the database would deadlock with one that holds the
        dispatcher lock and waits for the database. With ``announce`` (PostgreSQL) that commit carries a
        notification waking the other coordinators; a kick that a notification caused announces nothing, or
        two coordinators would wake each other for ever. Such a kick (a wake-up, the sweep) comes after changes
        another process made, so it first cancels the work of this process's agents whose leases were taken
        elsewhere (:meth:`_drop_leases_lost_elsewhere`).

        In a serving coordinator the passes run in the dispatcher's own thread (:meth:`start`): a kick numbers
        itself and wakes it, and returns. Without it (an app in a test, a command) the kick runs the pass itself.

        Kicks that wait for each other are served by one pass: each kick is numbered after its caller's commit,
        and a kick that gets the dispatcher lock after a pass that began later than its number had run returns
        at once, since that pass saw its change (the commit, an agent's connection going idle) and every idle
        connection. (Every handler thread kicks after its message: at 100 agents the passes queued on the lock
        one per message, each going through every idle agent, half of the coordinator's time, issue 16.)
        """
        if announce:
            wakeups.announce(self.origin)
        db.session.commit()
        with self._numbering:
            self._requested += 1
            number = self._requested
            if not announce:
                self._drop_requested = number
            if self._thread is not None:  # the dispatcher's thread runs the pass (start())
                self._kicked.notify()
                return
        self._pass(number, announce)

    def _pass(self, number: int, announce: bool) -> None:
        """One pass for kick ``number`` unless a pass that began after it has run meanwhile (see kick)."""
        with self._dispatching:
            if (self._passed if announce else self._dropped) >= number:
                return  # a pass that began after this kick's commit ran meanwhile: it did this kick's work
            with self._numbering:
                covers = self._requested  # this pass serves every kick numbered so far: their commits are done
            try:
                if not announce:
                    self._drop_leases_lost_elsewhere()
                self._dispatch_to_idle()
            except Exception:
                # The caller is whichever agent's message, upload or request kicked: a pass that fails is not its
                # fault, and raising here would end that agent's session (and its lease) for another's trouble.
                # Nothing is marked passed, so the next kick, or the sweep within a second, runs a pass again.
                db.session.rollback()
                current_app.logger.exception("a dispatch pass failed; the next kick tries again")
                return
            self._passed = max(self._passed, covers)
            if not announce:
                self._dropped = max(self._dropped, covers)

    def _run(self, app: Flask) -> None:
        """The dispatcher's thread: a pass whenever a kick came since the last pass began. A pass that fails is
        logged (kick's ``_pass``) and tried again at the next kick, or after :data:`RETRY_AFTER` seconds."""
        while True:
            with self._kicked:
                while not self._stopping and self._passed >= self._requested:
                    self._kicked.wait()
                if self._stopping:
                    return
                number = self._requested
                announce = self._drop_requested <= self._dropped  # a wake-up or the sweep: drop stale leases
            with app.app_context():
                try:
                    self._pass(number, announce)
                finally:
                    db.session.remove()
            with self._kicked:
                if self._passed < number and not self._stopping:  # the pass failed: not at once again
                    self._kicked.wait_for(functools.partial(self._kicked_since, number), timeout=RETRY_AFTER)

    def _kicked_since(self, number: int) -> bool:
        """A kick numbered after ``number`` came, or the thread is stopping (under ``_numbering``)."""
        return self._stopping or self._requested > number

    def _dispatch_to_idle(self) -> None:
        """One pass: lease work to the idle connections, a batch of agents after the other, while any work is queued.

        One read first counts the queued tasks and checks (leases.queued_work, without SQLite's write lock): with
        none, no agent is asked (before, every idle agent's claims took a write transaction or two to find
        nothing). The pass stops once it has leased as many as were counted: work queued after the count comes
        with a kick of its own, numbered after this pass began, so another pass follows. An agent that gets
        nothing (a blocklist, its Blender, another owner's check) does not lower the count: the next one tries.
        Each batch leases in one transaction (:meth:`_lease_to`), then its orders are sent, after that commit.
        """
        with self._registry:
            idle = [c for c in self._connections.values() if c.current is None and not c.draining]
        if not idle:
            return
        queued = Queued(*leases.queued_work())
        per_transaction = AGENTS_PER_TRANSACTION if db.engine.dialect.name == "sqlite" else 1
        while idle and queued.any():
            batch, idle = idle[:per_transaction], idle[per_transaction:]
            self._send_orders(self._lease_to(batch, queued, alone=per_transaction == 1), queued)

    def _lease_to(self, batch: list[Connection], queued: Queued,
                  alone: bool = False) -> list[tuple[Connection, Work, m.Message]]:
        """Lease work to these idle agents, one after the other, in one transaction: on SQLite one turn at the write
        lock for the batch, not one or two per agent (each a wait behind every other writer). The orders are
        built in it too, from what the claims loaded. Returns each agent's work, as its connection will record it,
        and its order. Commits (rolls back everything on an error: no lease without its order). ``alone`` (one
        agent, PostgreSQL): a check claim that leased nothing commits before the task claim, as each claim did
        before batches, so no row lock it took (a ringer's on its check) is held while task rows are locked."""
        ids = [conn.worker_id for conn in batch]
        orders: list[tuple[Connection, Work, m.Message]] = []
        self._claimed = time.monotonic()  # no lease of this batch expires before this + the lease timeout
        try:
            workers = {w.id: w for w in db.session.execute(select(Worker).where(Worker.id.in_(ids))).scalars()}
            checks = CheckClaims(len(batch))  # the open checks, read once for the batch
            for conn in batch:
                if not queued.any():
                    break
                item = self._give_work(conn, workers.get(conn.worker_id), checks, queued, alone)
                if isinstance(item, Check):
                    orders.append((conn, Work("check", item.id, item.attempt, item.handle or ""),
                                   verify_message(item)))
                elif item is not None:
                    orders.append((conn, Work("task", item.id, item.attempt), assign_message(item)))
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        return orders

    def _send_orders(self, orders: list[tuple[Connection, Work, m.Message]], queued: Queued) -> None:
        """Record each agent's new work on its connection, then send the orders, with no transaction open. An agent
        whose socket died meanwhile gives its work back at once, for the next agent of the pass."""
        for conn, work, _ in orders:
            conn.current, conn.lease_written = work, self._claimed
        for conn, work, order in orders:
            if not self._send(conn, order):
                self._give_back(conn, work, queued)

    def _drop_leases_lost_elsewhere(self) -> None:
        """Tell this process's busy agents to stop work whose lease they no longer hold in the database.

        Another coordinator that cancels or fails a job, or suspends an agent, frees the leases in the database
        and calls drop_leases, which reaches its own connections only; the agent's connection here still records
        the work (so the agent is not offered new work and keeps rendering for nothing). One query per kind over
        the busy connections' work. Runs under ``_dispatching``, so no new work is recorded meanwhile; a lease that
        ends here meanwhile (a task_done read by the connection's thread) may get a cancel the agent ignores (it
        names work the agent no longer holds)."""
        with self._registry:
            busy = [(conn, conn.current) for conn in self._connections.values() if conn.current is not None]
        if not busy:
            return
        task_ids = [work.id for _, work in busy if work is not None and work.kind == "task"]
        check_ids = [work.id for _, work in busy if work is not None and work.kind == "check"]
        held: set[tuple[str, int, int, object]] = set()
        if task_ids:
            held |= {("task", task_id, worker_id or 0, attempt) for task_id, worker_id, attempt in db.session.execute(
                select(Task.id, Task.worker_id, Task.attempt)
                .where(Task.id.in_(task_ids), Task.state == TaskState.LEASED)).tuples()}
        if check_ids:
            held |= {("check", check_id, worker_id or 0, handle) for check_id, worker_id, handle in db.session.execute(
                select(Check.id, Check.verifier_id, Check.handle)
                .where(Check.id.in_(check_ids), Check.state == CheckState.LEASED)).tuples()}
        db.session.commit()
        lost = []
        for conn, work in busy:
            assert work is not None
            key = (work.kind, work.id, conn.worker_id, work.attempt if work.kind == "task" else work.handle)
            if key not in held:
                lost.append(LostLease(work.id if work.kind == "task" else 0, conn.worker_id,
                                      "the lease was taken back by another coordinator",
                                      check_id=work.id if work.kind == "check" else None))
        self.drop_leases(lost)

    def _give_work(self, conn: Connection, worker: Worker | None, checks: CheckClaims, queued: Queued,
                   alone: bool = False) -> Check | Task | None:
        """Checks first (they gate every job's completion), then render tasks, each only while ``queued`` says any
        may be left. Returns what was leased, and counts what it took from the queue: a ringer stands in for a
        check left queued. No commit (:meth:`_lease_to`)."""
        if worker is None or worker.suspended or worker.pause_reason is not None:
            return None  # a paused worker's owner wants the machine back: nothing new until it resumes
        if conn.backed_up():
            return None  # it does not read what it is sent: an order would wait on it (ws_guard.SEND_WAIT) for nothing
        if worker.connected_at != conn.connected_at:
            return None  # the agent signed on again since, on another coordinator: this connection is stale, and
            # work given here would race that session's (a task its hello handed back, leased again to a dead socket)
        check = checks.claim(worker) if queued.checks > 0 else None
        if check is not None:
            if check.kind != "ringer":
                queued.checks -= 1
            return check
        if alone:
            db.session.commit()
        task = leases.lease_task(worker) if queued.tasks > 0 else None
        if task is not None:
            queued.tasks -= 1
        return task  # None: nothing this worker may run (blocklists differ per worker)

    def _give_back(self, conn: Connection, work: Work, queued: Queued) -> None:
        """Work leased to an agent whose socket died before its order went out goes back to the queue, if the lease
        is still the one given (the connection's end may have taken it back already). Commits."""
        if work.kind == "check":
            check = check_handles.held_check(conn.worker_id, work.handle)
            if check is not None and release(check):
                queued.checks += 1
            db.session.commit()
            return
        task = leases.held_task(conn.worker_id, work.id, work.attempt)
        if task is not None:
            leases.hand_back(task)
            queued.tasks += 1
        db.session.commit()

    @staticmethod
    def _send(conn: Connection, message: m.Message) -> bool:
        try:
            conn.send(message)
            return True
        except Exception:  # the socket died between claim and send: the caller gives the work back
            current_app.logger.warning("worker %s vanished before its assignment", conn.name)
            conn.current = None
            return False

    def drop_leases(self, lost: Iterable[LostLease]) -> None:
        """Tell connected workers to stop tasks they no longer hold."""
        for lease in lost:
            conn = self.connection(lease.worker_id)
            work = Work("check", lease.check_id, 0) if lease.check_id else Work("task", lease.task_id, 0)
            if conn is None or conn.current is None or (conn.current.kind, conn.current.id) != (work.kind, work.id):
                continue
            held, conn.current = conn.current, None
            try:
                if lease.check_id:
                    conn.send(m.Cancel(handle=held.handle, reason=lease.reason))
                else:
                    conn.send(m.Cancel(task_id=lease.task_id, reason=lease.reason))
            except Exception:
                current_app.logger.info("could not tell worker %s to drop task %s", conn.name, lease.task_id)


def dispatcher() -> Dispatcher:
    """This app's dispatcher (inside an app context)."""
    return current_app.extensions["framehive_dispatcher"]
