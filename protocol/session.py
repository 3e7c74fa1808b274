"""The rules of the worker session, without I/O: what each end may do next and what it answers.

A session is one WebSocket between a worker agent and a coordinator (messages.py lists the messages). Its rules:
hello comes first and is answered by welcome or by an error that ends the session; after the welcome the
coordinator pushes at most one order (assign or verify) at a time; the worker reports the end of that order
(task_done, task_failed, handback, check_done, check_failed); a cancel stops the order it names and nothing else;
a worker that stops hands its order back.

Two machines, one per role, in this one module. Each end sees the other only through messages in flight (a cancel
and a task_done cross on the wire; an assign arrives before the coordinator has read a status), so there is no
single state both could share: each machine holds what its own end knows and decides from that, and both use
the same notion of an order (a task by its id and attempt, a check by its handle).

The machines do no I/O. They take what happened (a message's text, a local event such as "the render ended" or
"the agent is stopping") and return what to do: messages to send and actions for the I/O layer
(worker_agent/connection.py, coordinator/worker_channel.py), in the order to do them. An event that is illegal in
the current state (reading before saying hello, a heartbeat before the welcome, welcoming twice) is a bug of this
end's I/O layer and raises :class:`SessionError`; a peer's malformed or out-of-place message (an order while busy,
a second welcome, a stale cancel) is not, and is answered or ignored as the protocol says.

A hello after a lost connection: an agent whose connection is lost (its coordinator died, the network broke)
stops its order, since the lease is as good as lost, and connects again, to the same coordinator or another of
the network. If it was running a task, its next hello names it (task id and attempt: :func:`naming_dropped`), and
the coordinator that signs it on hands that lease back without counting a failure, as it does for a handback;
every other lease the worker still holds there is lost and counted, as before (coordinator/worker_channel.py,
leases.release_worker). This is sound against an agent that lies:
- it names only its own lease of that attempt (the database decides), and the lease ends there (requeued): the
  hello keeps no lease alive, so a hello cannot be used to hold a task for ever;
- it dodges no failure a connected agent could not already dodge: any agent may give a task back with a
  handback at any time; naming it in the hello is the same hand-back, said at the first moment it can be;
- an agent that restarts (crashed, killed, lost its machine) knows of no order and names none, so a scene that
  kills agents is still counted against each one that it killed; and a live coordinator that saw the socket
  close has usually counted the disconnect already (its sign-off), so the hello names a lease no longer held.
The agent's rendering is lost all the same (it does not resume the order on the new connection).

The coordinator's machine does not hold the worker's order itself: the dispatcher leases and records it under its
own lock (dispatch.Connection.current). Its methods take that record and say whether it is released.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from . import PROTOCOL_VERSION
from . import messages as m

Order = m.Assign | m.Verify


class SessionError(RuntimeError):
    """A local event that the session's state does not allow (a bug in the I/O layer, not the peer's fault)."""


def describe(order: Order | None) -> str:
    """An order for log lines."""
    if isinstance(order, m.Assign):
        return f"task {order.task_id} (job {order.job_id}, frames {order.frames})"
    if isinstance(order, m.Verify):
        return f"check {order.handle} (job {order.job_id}, frame {order.frame}, region {order.rect})"
    return "nothing"


def cancels(cancel: m.Cancel, order: Order) -> bool:
    """Whether ``cancel`` names ``order``: a task by its id (a cancel names no attempt), a check by its handle."""
    if isinstance(order, m.Assign):
        return cancel.task_id == order.task_id
    return cancel.handle == order.handle


def give_back(order: Order, error: str) -> m.Handback | m.CheckFailed:
    """How an order goes back unfinished: a task is handed back (no failure counted), a check fails."""
    if isinstance(order, m.Assign):
        return m.Handback(task_id=order.task_id, attempt=order.attempt)
    return m.CheckFailed(handle=order.handle, error=error)


def refuse(order: Order, error: str) -> m.TaskFailed | m.CheckFailed:
    """An order the worker will not run (counted as its failure)."""
    if isinstance(order, m.Assign):
        return m.TaskFailed(task_id=order.task_id, attempt=order.attempt, error=error)
    return m.CheckFailed(handle=order.handle, error=error)


def naming_dropped(hello: m.Hello, dropped: Order | None) -> m.Hello:
    """The hello of a connection after a lost one, naming the task the agent dropped then (a check is not named:
    a verifier's checks are given back without a failure anyway)."""
    if not isinstance(dropped, m.Assign):
        return hello
    return dataclasses.replace(hello, dropped_task_id=dropped.task_id, dropped_attempt=dropped.attempt)


def dropped_lease(hello: m.Hello) -> tuple[int, int] | None:
    """The task lease (id, attempt) a hello says its agent dropped when its last connection was lost, if any."""
    if hello.dropped_task_id is None or hello.dropped_attempt is None:
        return None
    return hello.dropped_task_id, hello.dropped_attempt


# ---------------------------------------------------------------- actions for the I/O layer

@dataclass(frozen=True)
class Send:
    message: m.Message


@dataclass(frozen=True)
class Note:
    """A line for the log (``level``: a logging level)."""

    level: int
    text: str


@dataclass(frozen=True)
class Start:
    """Run the order (render the task or the check's region)."""

    order: Order


@dataclass(frozen=True)
class Stop:
    """Stop running the order. ``unwind``: wait until it has stopped before the next action; otherwise it unwinds
    while the session goes on (new work waits for it). ``settle``: also let the frame uploads it started end (a
    graceful stop hands the order back next, and the frames already rendered are kept only if they are in)."""

    order: Order
    unwind: bool
    settle: bool = False


@dataclass(frozen=True)
class Welcomed:
    worker_id: int
    heartbeat_interval: float


@dataclass(frozen=True)
class Fatal:
    """The session ends and retrying cannot help (a refusal, another protocol)."""

    reason: str


AgentAction = Send | Note | Start | Stop | Welcomed | Fatal


class AgentPhase(enum.Enum):
    CONNECTING = "connecting"
    HELLO_SENT = "hello sent"
    IDLE = "idle"
    BUSY = "busy"
    CLOSED = "closed"


def printable(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters, without control or invisible characters (a peer's text in logs)."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


class AgentSession:
    """The worker agent's end. ``vet`` looks at an order before it is taken and returns why to refuse it, or None
    (the agent checks that every URL in it is one it builds itself)."""

    def __init__(self, vet: Callable[[Order], str | None] = lambda order: None,
                 max_bytes: int = m.MAX_ORDER_BYTES) -> None:
        self.phase = AgentPhase.CONNECTING
        self.held: Order | None = None  # the order in hand (BUSY)
        self.paused = False
        self.pause_reason = ""
        self.worker_id: int | None = None
        self.dropped: Order | None = None  # the order it stopped when the connection was lost (lost())
        self._vet = vet
        self._max_bytes = max_bytes

    @property
    def welcomed(self) -> bool:
        return self.phase in (AgentPhase.IDLE, AgentPhase.BUSY)

    def start(self, hello: m.Hello, paused: bool = False, reason: str = "") -> list[AgentAction]:
        """Connected: say hello, and at once that it is paused (before the coordinator reads anything else)."""
        self._expect(AgentPhase.CONNECTING, "say hello")
        self.phase = AgentPhase.HELLO_SENT
        self.paused, self.pause_reason = paused, reason
        actions: list[AgentAction] = [Send(hello)]
        if paused:
            actions += [Send(m.Status(paused=True, reason=reason)), Note(logging.INFO, f"paused: {reason}")]
        return actions

    def receive(self, text: str | bytes) -> list[AgentAction]:
        """A message from the coordinator."""
        if self.phase == AgentPhase.HELLO_SENT:
            return self._first(text)
        if not self.welcomed:
            raise SessionError(f"a message arrived while {self.phase.value}")
        try:
            message = m.decode(text, limit=self._max_bytes)
        except m.MessageError as exc:  # one bad message must not end the agent: say so and go on
            return [Note(logging.ERROR, f"ignoring a malformed message from the coordinator: {exc}")]
        if isinstance(message, m.Assign | m.Verify):
            return self._order(message)
        if isinstance(message, m.Cancel):
            return self._cancel(message)
        if isinstance(message, m.Error):
            return [Note(logging.ERROR, f"coordinator error: {message.code}: {message.message}")]
        return [Note(logging.DEBUG, f"ignoring {message.TYPE} from the coordinator")]

    def _first(self, text: str | bytes) -> list[AgentAction]:
        try:
            message = m.decode(text, limit=self._max_bytes)
        except m.MessageError as exc:
            return self._close(Fatal(f"expected welcome, got a malformed message: {exc}"))
        if isinstance(message, m.Error):  # a refusal (its token's limits, unconfined renders)
            return self._close(Fatal(f"coordinator refused this agent: {printable(message.code, 40)}: "
                                     f"{printable(message.message, 400)}"))
        if not isinstance(message, m.Welcome):
            return self._close(Fatal(f"expected welcome, got {message.TYPE}"))
        self.phase, self.worker_id = AgentPhase.IDLE, message.worker_id
        return [Welcomed(message.worker_id, message.heartbeat_interval)]

    def _close(self, fatal: Fatal) -> list[AgentAction]:
        self.phase = AgentPhase.CLOSED
        return [fatal]

    def _order(self, order: Order) -> list[AgentAction]:
        if self.held is not None:  # one order at a time: the coordinator should not have sent it
            return [Note(logging.ERROR, f"got {order.TYPE} while busy with {describe(self.held)}; ignoring it")]
        refusal = self._vet(order)
        if refusal is not None:
            return [Note(logging.ERROR, f"refusing {describe(order)}: {refusal}"),
                    Send(refuse(order, f"the agent refused the order: {refusal}"))]
        if self.paused:  # pushed before the coordinator read this agent's status
            return [Note(logging.INFO, f"paused ({self.pause_reason}): giving {describe(order)} back"),
                    Send(give_back(order, "the agent is paused"))]
        self.phase, self.held = AgentPhase.BUSY, order
        return [Note(logging.INFO, describe(order)), Start(order)]

    def _cancel(self, cancel: m.Cancel) -> list[AgentAction]:
        held = self.held
        if held is None or not cancels(cancel, held):  # a stale cancel (work already ended) changes nothing
            return []
        # The coordinator may push the next order at once: idle from now on, while the cancelled one unwinds.
        self.phase, self.held = AgentPhase.IDLE, None
        return [Note(logging.WARNING, f"{describe(held)} cancelled by the coordinator: {cancel.reason}"),
                Stop(held, unwind=False)]

    def ended(self, order: Order) -> None:
        """The order's work ended by itself (its runner sent task_done/task_failed/check_done/check_failed). An
        order that was already cancelled, or a session that is over, is left as it is."""
        if self.held is order:
            self.phase, self.held = AgentPhase.IDLE, None

    def heartbeat(self) -> m.Heartbeat:
        """The periodic heartbeat: it renews the lease of the order in hand, if any."""
        if not self.welcomed:
            raise SessionError(f"no heartbeat while {self.phase.value}")
        held = self.held
        return m.Heartbeat(task_id=held.task_id if isinstance(held, m.Assign) else None,
                           handle=held.handle if isinstance(held, m.Verify) else None)

    def availability(self, paused: bool, reason: str = "") -> list[AgentAction]:
        """The owner paused or resumed the agent (or its schedule did): tell the coordinator if that changed. A
        paused agent finishes its order and gives back any new one."""
        if (paused, reason) == (self.paused, self.pause_reason):
            return []
        self.paused, self.pause_reason = paused, reason
        if not self.welcomed:  # said with the hello if it changes before then; nothing to send after the end
            return []
        note = f"paused: {reason}; {'finishing the work in hand' if self.held else 'idle'}" if paused \
            else "resumed: taking work again"
        return [Note(logging.INFO, note), Send(m.Status(paused=paused, reason=reason))]

    def stop(self) -> list[AgentAction]:
        """The agent is stopping: its order (if any) is stopped and handed back, then the session ends."""
        held, self.held, self.phase = self.held, None, AgentPhase.CLOSED
        if held is None:
            return []
        return [Note(logging.INFO, f"stopping: handing {describe(held)} back"), Stop(held, unwind=True, settle=True),
                Send(give_back(held, "the agent is stopping"))]

    def lost(self) -> list[AgentAction]:
        """The connection is gone, so the lease is lost: stop the order, tell nobody now; it is kept in
        ``dropped`` for the next connection's hello (:func:`naming_dropped`)."""
        held, self.held, self.phase = self.held, None, AgentPhase.CLOSED
        self.dropped = held
        return [] if held is None else [Stop(held, unwind=True)]

    def _expect(self, phase: AgentPhase, what: str) -> None:
        if self.phase != phase:
            raise SessionError(f"cannot {what} while {self.phase.value}")


# ---------------------------------------------------------------- the coordinator's end

class Held(Protocol):
    """What the dispatcher records as a worker's order (dispatch.Work): a task by id and attempt, a check by its
    id and its handle."""

    @property
    def kind(self) -> str: ...  # "task" | "check"

    @property
    def id(self) -> int: ...

    @property
    def attempt(self) -> int: ...

    @property
    def handle(self) -> str: ...


@dataclass(frozen=True)
class KeepTask:
    """Renew the lease of the task (``frame``: the frame it started); if it holds no such lease, call
    :meth:`CoordinatorSession.lost`."""

    task_id: int
    attempt: int | None
    frame: int | None


@dataclass(frozen=True)
class KeepCheck:
    """Renew the lease of the check ``handle``; if it holds no such lease, call :meth:`CoordinatorSession.lost`."""

    handle: str


@dataclass(frozen=True)
class TaskEnded:
    """task_done (``failure`` None) or task_failed; the lease decides whether it still counts."""

    task_id: int
    attempt: int
    failure: m.TaskFailed | None


@dataclass(frozen=True)
class HandedBack:
    task_id: int
    attempt: int


@dataclass(frozen=True)
class CheckEnded:
    report: m.CheckDone | m.CheckFailed


@dataclass(frozen=True)
class Paused:
    """The agent's owner paused it (``reason`` not None) or it resumed."""

    reason: str | None


CoordinatorEvent = KeepTask | KeepCheck | TaskEnded | HandedBack | CheckEnded | Paused


@dataclass(frozen=True)
class Step:
    """What one message or event means: the event to apply to the books (None: nothing), a reply, whether the
    worker's order record is released (it is idle), and whether it takes no more work (it is stopping)."""

    event: CoordinatorEvent | None = None
    reply: m.Message | None = None
    release: bool = False
    drain: bool = False


class CoordinatorPhase(enum.Enum):
    AWAITING_HELLO = "awaiting hello"
    SIGNING_ON = "signing on"
    OPEN = "open"
    CLOSED = "closed"


class CoordinatorSession:
    """The coordinator's end of one worker's session."""

    def __init__(self) -> None:
        self.phase = CoordinatorPhase.AWAITING_HELLO
        self.paused = False  # what the agent's last status said (it starts unpaused: a paused agent says so first)

    def hello(self, text: str | bytes | None) -> m.Hello | m.Error:
        """The first message (None: none came in time). Anything but a hello of this protocol ends the session with
        the error returned, to be sent; a hello moves on to signing on."""
        self._expect(CoordinatorPhase.AWAITING_HELLO, "read a hello")
        try:
            message = m.decode(text) if text is not None else None
        except m.MessageError as exc:
            return self.refuse(m.Error(code="bad_message", message=str(exc)))
        if not isinstance(message, m.Hello):
            return self.refuse(m.Error(code="hello_expected", message="the first message must be hello"))
        if message.protocol != PROTOCOL_VERSION:
            return self.refuse(m.Error(code="protocol_mismatch",
                                       message=f"this coordinator speaks protocol {PROTOCOL_VERSION}"))
        self.phase = CoordinatorPhase.SIGNING_ON
        return message

    def refuse(self, error: m.Error) -> m.Error:
        """The agent may not sign on (its token's limits, unconfined renders): send ``error`` and close."""
        if self.phase not in (CoordinatorPhase.AWAITING_HELLO, CoordinatorPhase.SIGNING_ON):
            raise SessionError(f"cannot refuse a session that is {self.phase.value}")
        self.phase = CoordinatorPhase.CLOSED
        return error

    def welcome(self, worker_id: int, heartbeat_interval: float, lease_timeout: float) -> m.Welcome:
        self._expect(CoordinatorPhase.SIGNING_ON, "welcome")
        self.phase = CoordinatorPhase.OPEN
        return m.Welcome(worker_id=worker_id, heartbeat_interval=heartbeat_interval, lease_timeout=lease_timeout)

    def read(self, text: str | bytes) -> m.Message | Step:
        """Decode a message from the welcomed agent; a malformed one is answered (the returned step) and goes no
        further (it does not count as a sign of life)."""
        self._expect(CoordinatorPhase.OPEN, "read a message")
        try:
            return m.decode(text)
        except m.MessageError as exc:
            return Step(reply=m.Error(code="bad_message", message=str(exc)))

    def receive(self, message: m.Message, held: Held | None) -> Step:
        """What a message from the welcomed agent means; ``held``: the order the dispatcher has it holding."""
        self._expect(CoordinatorPhase.OPEN, "handle a message")
        if isinstance(message, m.Heartbeat):
            if message.handle is not None:
                return Step(KeepCheck(message.handle))
            return Step(KeepTask(message.task_id, None, None) if message.task_id is not None else None)
        if isinstance(message, m.Progress):
            return Step(KeepTask(message.task_id, message.attempt, message.frame))
        if isinstance(message, m.TaskDone | m.TaskFailed):
            failure = message if isinstance(message, m.TaskFailed) else None
            ends = held is not None and (held.kind, held.id, held.attempt) == ("task", message.task_id,
                                                                              message.attempt)
            return Step(TaskEnded(message.task_id, message.attempt, failure), release=ends)
        if isinstance(message, m.Handback):
            # Given back by an agent that is stopping (nothing more for it), or by a paused one (an order pushed
            # before its status arrived), which takes work again once it resumes.
            return Step(HandedBack(message.task_id, message.attempt), release=True, drain=not self.paused)
        if isinstance(message, m.CheckDone | m.CheckFailed):
            return Step(CheckEnded(message), release=_is_check(held, message.handle))
        if isinstance(message, m.Status):
            self.paused = message.paused
            return Step(Paused((message.reason or "paused by its owner") if message.paused else None))
        return Step(reply=m.Error(code="unexpected", message=f"{message.TYPE} is not a worker message"))

    def lost(self, event: KeepTask | KeepCheck, held: Held | None) -> Step:
        """The agent renewed a lease it no longer holds (expired, cancelled, reassigned): tell it to stop."""
        self._expect(CoordinatorPhase.OPEN, "cancel")
        if isinstance(event, KeepCheck):
            return Step(reply=m.Cancel(handle=event.handle, reason="you no longer hold this check"),
                        release=_is_check(held, event.handle))
        return Step(reply=m.Cancel(task_id=event.task_id, reason="you no longer hold this task"),
                    release=held is not None and (held.kind, held.id) == ("task", event.task_id))

    def close(self) -> None:
        self.phase = CoordinatorPhase.CLOSED

    def _expect(self, phase: CoordinatorPhase, what: str) -> None:
        if self.phase != phase:
            raise SessionError(f"cannot {what} while {self.phase.value}")


def _is_check(held: Held | None, handle: str) -> bool:
    return held is not None and held.kind == "check" and held.handle == handle
