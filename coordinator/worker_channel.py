"""The WebSocket every worker agent keeps open: ``GET /api/v1/worker/ws`` with a worker token.

The session's rules (hello first, what each message means, which order it ends) are protocol.session's
CoordinatorSession; this module does the socket and the books. One thread per connection (flask-sock). Every
message is handled in its own short transaction, and the database session is closed before waiting for the next
one, so an idle socket never holds a database lock.
"""

from __future__ import annotations

import time

from flask import Blueprint, current_app, g, request
from flask_sock import Sock
from framehive.protocol import messages as m
from framehive.protocol.session import (
    CheckEnded,
    CoordinatorSession,
    HandedBack,
    KeepCheck,
    KeepTask,
    Paused,
    Step,
    TaskEnded,
    dropped_lease,
)
from simple_websocket import ConnectionClosed

from . import (
    agent_limits,
    channel_upkeep,
    events,
    failure_accounting,
    leases,
    outcomes,
    work_slots,
    worker_confinement,
    ws_guard,
)
from .auth import Caller, caller_from_header
from .db import db, reading
from .dispatch import Connection, Work, dispatcher
from .errors import ApiError, error_response
from .models import Account, Worker, now
from .verification import handles as check_handles
from .verification import leasing as check_leasing

# A connected agent must say hello this quickly, or it is dropped.
HELLO_TIMEOUT = 10.0

bp = Blueprint("worker_channel", __name__)
sock = Sock()


@bp.before_request
def _authenticate():
    """Refuse the upgrade with a JSON error unless the caller holds a worker token."""
    try:
        with work_slots.slots().held(), reading():
            caller = caller_from_header(request.headers.get("Authorization"))
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    finally:
        db.session.remove()
    if caller.kind != "worker":
        return error_response(403, "forbidden", "the worker channel needs a worker token")
    g.caller = caller
    ws_guard.prepare(request.environ)  # no compression, no HTTP read timeout
    return None


@sock.route("/api/v1/worker/ws", bp=bp)
def channel(ws) -> None:
    try:
        _channel(ws)
    finally:
        ws_guard.end(ws)  # the socket's reader thread ends with the connection, even if the peer stays silent


def _channel(ws) -> None:
    caller = g.caller
    session = CoordinatorSession()
    hello = session.hello(ws.receive(timeout=HELLO_TIMEOUT))
    slots = work_slots.slots()  # the connection's own work takes one, as an HTTP request's does (work_slots.py)
    with slots.held():
        conn = _open(ws, caller, session, hello)
    if conn is None:
        return
    try:
        with slots.held():
            dispatcher().kick()
            db.session.remove()
        _serve(session, conn, ws)
    finally:
        session.close()
        with slots.held():
            _sign_off(conn)


def _open(ws, caller: Caller, session: CoordinatorSession, hello: m.Hello | m.Error) -> Connection | None:
    """Sign the agent on and register its connection, or tell it why not (None)."""
    if isinstance(hello, m.Error):
        ws_guard.send(ws, m.encode(hello))
        return None
    unconfined = worker_confinement.refusal(hello.confinement)
    if unconfined is not None:  # its own report, so this only stops honest misconfigured machines
        current_app.logger.warning("worker token %s (%s) refused as %r: unconfined (%s)", caller.token_id,
                                   caller.account_name, hello.name, worker_confinement.summary(hello.confinement))
        ws_guard.send(ws, m.encode(session.refuse(unconfined)))
        return None
    signed_on = _sign_on(caller.token_id, caller.account_id, hello)
    if isinstance(signed_on, m.Error):  # a limit of its token: the agent prints the reason and stops
        current_app.logger.warning("worker token %s (%s) refused as %r: %s", caller.token_id, caller.account_name,
                                   hello.name, signed_on.code)
        ws_guard.send(ws, m.encode(session.refuse(signed_on)))
        return None
    worker_id, worker_name, connected_at = signed_on
    # Leases left from an earlier connection of this agent are stale: it drops its work when it disconnects. The
    # one its hello names as dropped then is handed back without a failure (protocol.session: a hello after a lost
    # connection, why that is sound); any other counts as lost.
    dispatcher().drop_leases(leases.release_worker(worker_id, "the worker reconnected", dropped_lease(hello)))
    check_leasing.release_verifier(worker_id)
    db.session.remove()  # no transaction (on SQLite: no write lock) is held from here to kick()
    conn = Connection(worker_id=worker_id, name=worker_name, ws=ws_guard.Guarded(ws), token_id=caller.token_id,
                      connected_at=connected_at, heard=time.monotonic())
    try:
        ws_guard.send(ws, m.encode(session.welcome(worker_id, current_app.config["FRAMEHIVE_HEARTBEAT_INTERVAL"],
                                                   current_app.config["FRAMEHIVE_LEASE_TIMEOUT"])))
    except ConnectionClosed:  # gone, or not reading (ws_guard.send): signed on, so signed off again
        _sign_off(conn)
        return None
    old = dispatcher().register(conn)
    if old is not None:  # the same agent reconnected before its old socket died
        old.ws.end()  # type: ignore[attr-defined]
    current_app.logger.info("worker %s (%s) connected: %s, Blender %s", worker_name, caller.account_name,
                            hello.device, hello.blender_version)
    return conn


def _sign_on(token_id: int, account_id: int, hello: m.Hello) -> tuple[int, str, float] | m.Error:
    """Create or update the worker row; returns its id, name and sign-on time, or why its token may not sign on as
    that name now (agent_limits). Commits (rolls back on a refusal)."""
    refused = agent_limits.refusal(token_id, account_id, hello.name)
    if refused is not None:
        db.session.rollback()
        return refused
    query = db.select(Worker).filter_by(account_id=account_id, name=hello.name)
    worker = db.session.execute(query).scalar_one_or_none()
    if worker is None:  # a new name of a suspended account is suspended too (failure_accounting)
        suspended = db.session.get_one(Account, account_id).suspended
        worker = Worker(account_id=account_id, name=hello.name, suspended=suspended)
        db.session.add(worker)
    worker.token_id = token_id
    worker.online = True
    worker.pause_reason = None  # until the agent says otherwise (its status comes right after hello)
    worker.blender_version = hello.blender_version
    worker.device = hello.device
    worker.devices = hello.devices
    worker.threads = hello.threads
    worker.roles = hello.roles
    worker.confinement = hello.confinement
    signed_on = worker.connected_at = worker.last_seen = now()
    db.session.flush()
    events.record(events.WORKER_JOINED, f"worker {worker.name} ({worker.account.name}) joined: {hello.device}, "
                                        f"Blender {hello.blender_version}", worker=worker)
    identity = (worker.id, worker.name, signed_on)
    db.session.commit()
    return identity


def _serve(session: CoordinatorSession, conn: Connection, ws) -> None:
    """Handle messages until the socket closes, the worker goes silent for a whole lease, or its token stops being
    valid. The token's state and last_seen are channel_upkeep's, for every connection at once: this thread wakes
    at least every half recheck interval to look whether the upkeep found the token lost, and notes each sign of
    life for its last_seen write."""
    config = current_app.config
    lease_timeout = config["FRAMEHIVE_LEASE_TIMEOUT"]
    wake = channel_upkeep.wake_interval(config["FRAMEHIVE_TOKEN_RECHECK_INTERVAL"])
    channel_upkeep.upkeep().ensure_running()
    heard = time.monotonic()  # the last message
    slots = work_slots.slots()
    while True:
        if conn.token_lost:
            conn.send(m.Error(code="bad_token", message="the worker token was revoked or has expired"))
            current_app.logger.warning("worker %s: token revoked or expired; closing", conn.name)
            return
        deadline = heard + lease_timeout
        text = ws.receive(timeout=max(0.0, min(deadline, time.monotonic() + wake) - time.monotonic()))
        if text is None:
            if time.monotonic() < deadline:
                continue  # time to look at the token's state again
            current_app.logger.warning("worker %s went silent; dropping it", conn.name)
            return
        waiting = ws_guard.backlog(ws)
        if waiting > ws_guard.MAX_BACKLOG:
            current_app.logger.warning("worker %s sends faster than it is served (%d messages waiting); hanging up",
                                       conn.name, waiting)
            return
        heard = time.monotonic()
        if conn.token_lost:
            continue  # nothing more is done for a revoked token: told and closed above
        held = conn.current  # what the message is read against: the work it may end
        message = session.read(text)
        if not isinstance(message, Step):  # malformed: answered, not a sign of life
            conn.heard = heard
            message = session.receive(message, held)
            if _nothing_to_do(conn, message):
                continue  # an idle agent's heartbeat, or one for a lease that runs long enough yet
        conn.handling = True  # its leases are renewed while it waits for a slot (channel_upkeep)
        try:
            with slots.held():
                _apply(session, conn, message, held)
        finally:
            conn.handling = False
            db.session.remove()


def _nothing_to_do(conn: Connection, step: Step) -> bool:
    """Nothing to read or write, and no work slot needed: an idle agent's heartbeat (no event, no reply), or a plain
    heartbeat (no frame started) for the very work this connection was given, whose lease channel_upkeep renews
    while the agent is heard (``conn.heard``). A lease taken back meanwhile (the reaper, a cancel, another
    coordinator) clears ``conn.current`` first (Dispatcher.drop_leases), so the heartbeat then takes the long way
    and is told. Every heartbeat was a locked read and a write of its lease (issue 16)."""
    event, work = step.event, conn.current
    if step.reply is not None or step.release:
        return False
    if event is None:
        return True
    if work is None:
        return False
    if isinstance(event, KeepCheck):
        return work.kind == "check" and work.handle == event.handle
    if isinstance(event, KeepTask):
        return (event.frame is None and work.kind == "task" and work.id == event.task_id
                and event.attempt in (None, work.attempt))
    return False


def _apply(session: CoordinatorSession, conn: Connection, step: Step, held: Work | None) -> None:
    """Do what the session decided about one message: release the worker's order record, apply the event to the
    books, answer. ``held`` is the connection's work the step was decided against (session.receive): only that is
    released, never work sent to the agent since. A message may wait long for a work slot; meanwhile the work it
    ends may have ended otherwise (its result judged, its connection's record dropped by the pass's look at leases
    that ended) and new work been sent, whose record the release then cleared: the agent, still at the new work, was
    sent more, and the new work's lease ran out under it (issue 16: 2-5 checks a run at 1,000 agents)."""
    if step.release and conn.current is held:
        conn.current = None
    event = step.event
    if isinstance(event, KeepTask | KeepCheck):
        if not _renewed(conn, event):  # a lease it lost (expired, cancelled, reassigned): tell it to stop
            current = conn.current
            _apply(session, conn, session.lost(event, current), current)
    elif isinstance(event, TaskEnded):
        _finished(conn, event)
    elif isinstance(event, HandedBack):
        conn.draining = step.drain
        task = leases.held_task(conn.worker_id, event.task_id, event.attempt)
        if task is not None:
            leases.hand_back(task)
        dispatcher().kick()
    elif isinstance(event, CheckEnded):
        _check_finished(conn, event.report)
    elif isinstance(event, Paused):
        worker = db.session.get(Worker, conn.worker_id)
        assert worker is not None
        _set_paused(worker, event.reason)
    if step.reply is not None:
        conn.send(step.reply)


def _set_paused(worker: Worker, reason: str | None) -> None:
    """The owner paused the agent (by hand or by its schedule) or it resumed. A paused worker finishes what it
    holds and the dispatcher gives it nothing new; resuming kicks the dispatcher."""
    if reason == worker.pause_reason:
        return
    was_paused = worker.pause_reason is not None
    worker.pause_reason = reason
    who = f"worker {worker.name} ({worker.account.name})"
    if reason is not None and not was_paused:
        events.record(events.WORKER_PAUSED, f"{who} paused: {reason}", worker=worker)
    elif reason is None:
        events.record(events.WORKER_RESUMED, f"{who} resumed", worker=worker)
    db.session.commit()
    if reason is None:
        dispatcher().kick()


def _renewed(conn: Connection, event: KeepTask | KeepCheck) -> bool:
    """Renew the lease the agent names; False if it does not hold it."""
    renewed = time.monotonic()
    if isinstance(event, KeepCheck):
        held = check_leasing.renew(conn.worker_id, event.handle)
        current = held and conn.current is not None and conn.current.kind == "check" \
            and conn.current.handle == event.handle
    else:
        held = leases.renew(conn.worker_id, event.task_id, event.attempt, event.frame)
        current = held and conn.current is not None and (conn.current.kind, conn.current.id) == ("task", event.task_id)
    if current:
        conn.lease_written = renewed  # its lease was written now: channel_upkeep's next renewal is a third later
    return held


def _finished(conn: Connection, event: TaskEnded) -> None:
    """task_done / task_failed; a late or duplicate report for a lease it lost is ignored."""
    task = leases.held_task(conn.worker_id, event.task_id, event.attempt)
    failure = event.failure
    if task is None:
        current_app.logger.info("ignoring late report for task %s attempt %s from %s", event.task_id, event.attempt,
                                conn.name)
    elif failure is None:
        dispatcher().drop_leases(outcomes.task_done(task).lost)
    else:
        lost = outcomes.record_failure(task, "render_failed", failure.error, failure.log_tail,
                                       limit=failure_accounting.limit_of(failure))
        db.session.commit()
        dispatcher().drop_leases(lost)
    dispatcher().kick()


def _check_finished(conn: Connection, message: m.CheckDone | m.CheckFailed) -> None:
    """check_done frees the verifier (its upload already carried the verdict's input); check_failed requeues. The
    check_done of a result judged here reads nothing (Dispatcher.judged): a read of the check for each of them was
    2 of a frame's statements (issue 16)."""
    judged = isinstance(message, m.CheckDone) and message.handle == conn.judged
    check = None if judged else check_handles.held_check(conn.worker_id, message.handle)
    if check is not None:  # still leased: done without an upload, or failed → someone else renders it
        current_app.logger.warning("check %s given back by %s: %s", check.id, conn.name,
                                   getattr(message, "error", "no result uploaded"))
        check_leasing.release(check)
        limit = failure_accounting.limit_of(message)
        worker = db.session.get(Worker, conn.worker_id)
        lost = outcomes.check_limit_hit(check, worker, limit) if limit is not None and worker is not None else []
        db.session.commit()
        dispatcher().drop_leases(lost)
    dispatcher().kick()


def _sign_off(conn: Connection) -> None:
    """The connection ended: the worker's leases are lost and it is offline, unless a newer session of the same
    agent replaced this one, here (the registry) or on another coordinator (the worker row's ``connected_at`` is
    no longer this sign-on's, compared for equality so coordinators' clocks need not agree: the agent moved there
    while this coordinator had not yet read this connection's end). That sign-on settled what this connection held
    (its hello), and what the worker holds now is the newer session's. A pass running meanwhile ends first
    (Dispatcher.between_passes): work it leased to this connection is sent or given back before it is counted."""
    try:
        with dispatcher().between_passes():
            dispatcher().unregister(conn)
            worker = db.session.get(Worker, conn.worker_id)
            replaced_elsewhere = worker is not None and worker.connected_at != conn.connected_at
            if dispatcher().connection(conn.worker_id) is None and not replaced_elsewhere:
                lost = leases.release_worker(conn.worker_id, "the worker disconnected")
                check_leasing.release_verifier(conn.worker_id)
                worker = db.session.get(Worker, conn.worker_id)
                if worker is not None:
                    worker.online = False
                    events.record(events.WORKER_LEFT, f"worker {worker.name} ({worker.account.name}) left",
                                  worker=worker)
                    db.session.commit()
                dispatcher().drop_leases(lost)
            db.session.commit()
        dispatcher().kick()
    finally:
        db.session.remove()
    current_app.logger.info("worker %s disconnected", conn.name)
