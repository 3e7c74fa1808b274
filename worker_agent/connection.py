"""The agent's life: connect to a coordinator's WebSocket, say hello, take tasks, reconnect with backoff.

The owner may list several coordinators of one network (they share one database): the agent connects to the first
that answers and, when its coordinator goes away, moves to the next in the list, backing off once every one has
failed. Each connection points the agent's HTTP requests (scenes, frames, earnings) at the coordinator it is
connected to, so the token only ever goes to the URLs the owner gave.

The coordinator pushes ``assign`` the moment this agent is idle; the agent renews its lease with
heartbeats and progress messages and uploads frames over HTTP as they are written. Before taking an order it
checks that every URL in it is one it builds itself (coordinator_urls). While its owner has it paused (by
hand or by schedule: owner_control) it says so with ``status`` and gives back anything pushed to it; after each
piece of work it looks for what it earned (earnings).

The session's rules (hello first, one order at a time, which cancel stops what, hand-back, pause) are
protocol.session's AgentSession; this module does the socket, the runner's tasks and the timers around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import websockets
from framehive.protocol import PROTOCOL_VERSION
from framehive.protocol import messages as m
from framehive.protocol import session as session_rules
from framehive.protocol.session import AgentAction, AgentSession, Order, printable
from websockets.exceptions import ConnectionClosed, InvalidStatus

from . import __version__, confinement, coordinator_urls
from .coordinator_urls import base_urls, websocket_url
from .earnings import EARNINGS_MAX, EARNINGS_SOON, EarningsWatch
from .http_errors import escaped
from .owner_control import CONTROL_POLL, RUNNING, Availability, OwnerControl
from .task_runner import TaskRunner

log = logging.getLogger("framehive.worker")

# Reconnect backoff: first retry after 0.5 s, doubling up to 30 s, with ±25% jitter so a fleet that lost its
# coordinator does not reconnect in lockstep.
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
# How long to wait for the coordinator's welcome after hello.
WELCOME_TIMEOUT = 15.0
# A graceful stop waits this long at most for the frame uploads of the task it hands back (a frame uploads while the
# next renders): the frames already rendered are kept only if they are in before the hand-back.
UPLOAD_SETTLE = 30.0
# Frames and scenes go over HTTP, but an order carries the list of its scene's files, which may be long.
MAX_WS_MESSAGE = m.MAX_ORDER_BYTES


Sender = Callable[[m.Message], Awaitable[None]]


class FatalError(RuntimeError):
    """Retrying cannot help (bad token, wrong protocol): the agent exits."""


@dataclass
class Identity:
    name: str
    blender_version: str
    device: str
    devices: list[dict]
    threads: int
    roles: list[str]


class Agent:
    """``control``: the owner's pause and schedule (None: always available); ``earnings``: reports what the agent
    earned after its work (None: not looked up). ``coordinators``: the owner's coordinator URLs, in order of
    preference."""

    def __init__(self, coordinators: str | Sequence[str], token: str, identity: Identity, runner: TaskRunner, *,
                 control: OwnerControl | None = None, earnings: EarningsWatch | None = None) -> None:
        # One URL (the common case) or the owner's list; a lone string is one URL, never its characters.
        self.coordinators = base_urls([coordinators] if isinstance(coordinators, str) else list(coordinators))
        self.base = self.coordinators[0]  # the coordinator this agent talks to (or tries next)
        self.token = token
        self.identity = identity
        self.runner = runner
        self.control = control
        self.earnings = earnings
        self._work_finished = asyncio.Event()  # tells the earnings look that work was done
        self.stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.session: AgentSession | None = None  # the current connection's (None before the first)
        self._heartbeat_interval = 0.0  # the current coordinator's (its welcome)
        # Work the coordinator cancelled, still unwinding (killing its Blender): new work waits for it.
        self._winding_down: asyncio.Task[None] | None = None
        # The order dropped when a connection was lost, named in every hello until a coordinator welcomes one.
        self._dropped: Order | None = None

    def stop(self) -> None:
        """Graceful stop (SIGTERM / Ctrl-C): hand back the current task and disconnect."""
        self.stopping.set()

    @property
    def url(self) -> str:
        """The WebSocket URL of the current coordinator."""
        return websocket_url(self.base)

    async def run(self) -> None:
        delay, index, failures = BACKOFF_START, 0, 0
        while not self.stopping.is_set():
            self._point_at(self.coordinators[index])
            welcomed = await self._connect()
            await self._abandon_task()
            if self.stopping.is_set():
                break
            # A coordinator that welcomed this agent was up: start backing off afresh. Only a whole round of
            # coordinators that refused or failed doubles the wait, so a lost coordinator costs one short wait.
            delay, failures = (BACKOFF_START, 0) if welcomed else (delay, failures + 1)
            index = (index + 1) % len(self.coordinators)
            wait = delay * random.uniform(0.75, 1.25)
            if failures >= len(self.coordinators):
                delay, failures = min(delay * 2, BACKOFF_MAX), 0
            log.info("reconnecting in %.1f s (to %s)", wait, self.coordinators[index])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=wait)
        await self.runner.discard_process()

    def _point_at(self, base: str) -> None:
        """Make ``base`` (one of the owner's URLs) the coordinator of every request: scenes, frames and earnings go
        to the coordinator that gave the order, and the token to no URL the owner did not give."""
        self.base = base
        self.runner.use_coordinator(base)
        if self.earnings is not None:
            self.earnings.base_url = base

    async def _connect(self) -> bool:
        """One connection to the current coordinator, until it ends; True if the coordinator welcomed this agent."""
        self.session = None
        try:
            async with websockets.connect(
                self.url, additional_headers={"Authorization": f"Bearer {self.token}"},
                max_size=MAX_WS_MESSAGE, open_timeout=15,
            ) as ws:
                await self._session(ws)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):  # the coordinators share one database: the others would refuse it too
                raise FatalError(f"the coordinator refused the token (HTTP {status}): "
                                 f"{escaped(exc.response.body.decode(errors='replace'), 200)}") from None
            log.warning("coordinator %s answered HTTP %s", self.base, status)
        except (OSError, ConnectionClosed, TimeoutError) as exc:
            log.warning("connection to %s lost or refused (%s)", self.url, exc or type(exc).__name__)
        return self.session is not None and self.session.worker_id is not None

    async def _session(self, ws: websockets.ClientConnection) -> None:
        """One session's I/O; its rules (hello first, one order at a time, cancels, hand-back) are the
        :class:`~framehive.protocol.session.AgentSession`'s."""
        i = self.identity
        session = self.session = AgentSession(vet=_vet, max_bytes=MAX_WS_MESSAGE)

        async def send(message: m.Message) -> None:
            await ws.send(m.encode(message))

        hello = m.Hello(protocol=PROTOCOL_VERSION, name=i.name, agent_version=__version__,
                        blender_version=i.blender_version, device=i.device, devices=i.devices, threads=i.threads,
                        roles=i.roles, confinement=confinement_report())
        hello = session_rules.naming_dropped(hello, self._dropped)
        now = self._availability()
        await self._perform(session, session.start(hello, now.paused, now.reason), send)
        await self._perform(session, session.receive(await asyncio.wait_for(ws.recv(), WELCOME_TIMEOUT)), send)
        if not session.welcomed:
            raise FatalError("the coordinator did not welcome this agent")
        log.info("connected to %s as worker %s (%s)", self.url, session.worker_id, i.name)
        helpers = [asyncio.create_task(self._heartbeat(session, send))]
        if self.control is not None:
            helpers.append(asyncio.create_task(self._watch_control(session, send)))
        if self.earnings is not None:
            helpers.append(asyncio.create_task(self._watch_earnings()))
        stop_wait = asyncio.create_task(self.stopping.wait())
        try:
            while True:
                receive = asyncio.create_task(ws.recv())
                done, _ = await asyncio.wait({receive, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if stop_wait in done:
                    receive.cancel()
                    await self._perform(session, session.stop(), send)
                    await ws.close()
                    return
                await self._perform(session, session.receive(receive.result()), send)
        finally:
            for helper in helpers:
                helper.cancel()
            stop_wait.cancel()

    async def _perform(self, session: AgentSession, actions: list[AgentAction], send: Sender) -> None:
        """Do what the session decided, in order."""
        for action in actions:
            if isinstance(action, session_rules.Send):
                await send(action.message)
            elif isinstance(action, session_rules.Note):
                log.log(action.level, "%s", action.text)
            elif isinstance(action, session_rules.Start):
                self._start(session, action.order, send)
            elif isinstance(action, session_rules.Stop):
                await self._stop(action.unwind)
                if action.settle:
                    await self.runner.settle_uploads(UPLOAD_SETTLE)
            elif isinstance(action, session_rules.Welcomed):
                self._dropped = None  # its hello named it: that coordinator has settled the lease
                self.runner.worker_id = action.worker_id
                if self.earnings is not None:
                    self.earnings.worker_id = action.worker_id
                self._heartbeat_interval = action.heartbeat_interval
            else:
                raise FatalError(action.reason)

    def _start(self, session: AgentSession, order: Order, send: Sender) -> None:
        work = self.runner.run(order, send) if isinstance(order, m.Assign) else self.runner.verify(order, send)
        self._task = asyncio.create_task(_after(self._winding_down, work))
        self._task.add_done_callback(_log_crash)
        self._task.add_done_callback(self._finished)
        self._task.add_done_callback(lambda _task: session.ended(order))

    async def _stop(self, unwind: bool) -> None:
        """Cancel the running work; with ``unwind``, wait until it has stopped, else let it unwind while new work
        waits for it (the coordinator may push the next order at once)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        if unwind:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        else:
            self._winding_down = task

    async def _heartbeat(self, session: AgentSession, send: Sender) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_interval)  # a timer, not synchronisation: heartbeats are periodic
            await send(session.heartbeat())

    def _finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            self._work_finished.set()

    def _availability(self) -> Availability:
        return self.control.availability() if self.control is not None else RUNNING

    async def _watch_control(self, session: AgentSession, send: Sender) -> None:
        """Tell the coordinator when the owner pauses or resumes the agent, or its schedule opens or closes."""
        while True:
            await asyncio.sleep(CONTROL_POLL)  # a poll interval: the pause file is written by another process
            now = self._availability()
            await self._perform(session, session.availability(now.paused, now.reason), send)

    async def _watch_earnings(self) -> None:
        """Look at the ledger soon after work is done, then less and less often (frames are paid once verified,
        which can take a while)."""
        delay = EARNINGS_SOON
        await self._look_at_earnings()  # the first look notes where the ledger stands, before any work is paid
        while True:
            try:
                await asyncio.wait_for(self._work_finished.wait(), delay)
                self._work_finished.clear()
                delay = EARNINGS_SOON  # wait a little after the work, then look
                continue
            except TimeoutError:
                pass
            await self._look_at_earnings()
            delay = min(delay * 2, EARNINGS_MAX)

    async def _look_at_earnings(self) -> None:
        assert self.earnings is not None
        try:
            for line in await asyncio.to_thread(self.earnings.look):
                log.info("%s", line)
        except (OSError, ValueError, TypeError) as exc:  # requests' errors are OSErrors; a bad answer the others
            log.debug("could not read the ledger: %s", exc)

    async def _abandon_task(self) -> None:
        """The connection is gone, so the lease is lost: stop rendering for nobody."""
        if self.session is not None:
            self.session.lost()
            self._dropped = self.session.dropped or self._dropped  # a session that never got work names nothing
        for task in (self._task, self._winding_down):
            if task is not None and not task.done():
                task.cancel()
                # Its outcome has nobody to go to: work that failed instead of stopping (its last send met the
                # closed connection before the cancel reached it) is logged by _log_crash, and the agent reconnects.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._winding_down = None


def confinement_report() -> dict[str, Any]:
    """What confines this machine's renders, for the hello: confinement.status(), its reason made to fit the
    message's limits (it may quote an environment variable's value)."""
    report = confinement.status()
    if isinstance(report.get("reason"), str):
        report["reason"] = printable(report["reason"], m.MAX_CONFINEMENT_TEXT)
    return report


async def _after(previous: asyncio.Task[None] | None, work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` once ``previous`` (a cancelled task, or None) has finished unwinding."""
    if previous is not None:
        try:
            await asyncio.wait({previous})  # never raises previous's outcome; raises if this task is cancelled
        except BaseException:
            work.close()
            raise
    await work


def _vet(order: Order) -> str | None:
    """Why the agent refuses an order whose URLs are not ones it builds itself (None: it takes it)."""
    try:
        coordinator_urls.check_order(order)
    except coordinator_urls.RefusedUrl as exc:
        return str(exc)
    return None


def _log_crash(task: asyncio.Task[None]) -> None:
    """A bug in the work coroutine must not vanish silently."""
    if task.cancelled() or task.exception() is None:
        return
    if isinstance(task.exception(), ConnectionClosed):  # not a bug: the connection went first
        log.info("work ended with the connection (%s)", task.exception())
    else:
        log.error("work crashed", exc_info=task.exception())
