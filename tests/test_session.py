"""The rules of the worker session (protocol/session.py), without sockets: each test is one rule.

The agent's machine and the coordinator's are driven with messages as text, as they arrive off the wire; what they
return is what the I/O layers (worker_agent/connection.py, coordinator/worker_channel.py) send and do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from framehive.protocol import PROTOCOL_VERSION
from framehive.protocol import messages as m
from framehive.protocol.session import (
    AgentPhase,
    AgentSession,
    CheckEnded,
    CoordinatorPhase,
    CoordinatorSession,
    Fatal,
    HandedBack,
    KeepCheck,
    KeepTask,
    Note,
    Paused,
    Send,
    SessionError,
    Start,
    Step,
    Stop,
    TaskEnded,
    Welcomed,
    dropped_lease,
    naming_dropped,
)

HANDLE = "h" * 20
OTHER_HANDLE = "k" * 20


def hello(protocol: int = PROTOCOL_VERSION) -> m.Hello:
    return m.Hello(protocol=protocol, name="w", agent_version="1", blender_version="5.0.1", device="CPU", devices=[],
                   threads=1)


def assign(task_id: int, attempt: int = 1) -> m.Assign:
    return m.Assign(task_id=task_id, attempt=attempt, job_id=1, frames=[1], scene={}, settings={},
                    upload_url=f"/api/v1/worker/tasks/{task_id}/attempts/{attempt}/frames/{{frame}}")


def verify(handle: str = HANDLE) -> m.Verify:
    return m.Verify(handle=handle, job_id=1, frame=1, rect=[0, 0, 8, 8], scene={}, settings={},
                    upload_url=f"/api/v1/worker/checks/{handle}/result")


def text(message: m.Message) -> str:
    return m.encode(message)


def sent(actions: list) -> list[m.Message]:  # type: ignore[type-arg]
    return [a.message for a in actions if isinstance(a, Send)]


def welcomed_agent(**kwargs) -> AgentSession:  # type: ignore[no-untyped-def]
    agent = AgentSession(**kwargs)
    agent.start(hello())
    agent.receive(text(m.Welcome(worker_id=7, heartbeat_interval=5, lease_timeout=30)))
    return agent


# ---------------------------------------------------------------- the agent's end: hello first

def test_the_agent_says_hello_first_and_waits_for_the_welcome() -> None:
    agent = AgentSession()
    assert sent(agent.start(hello())) == [hello()]
    assert agent.phase == AgentPhase.HELLO_SENT and not agent.welcomed
    actions = agent.receive(text(m.Welcome(worker_id=7, heartbeat_interval=5, lease_timeout=30)))
    assert actions == [Welcomed(worker_id=7, heartbeat_interval=5)]
    assert agent.phase == AgentPhase.IDLE and agent.worker_id == 7


def test_a_paused_agent_says_so_right_after_hello() -> None:
    assert sent(AgentSession().start(hello(), paused=True, reason="dinner")) == [
        hello(), m.Status(paused=True, reason="dinner")]


@pytest.mark.parametrize("answer, reason", [
    (text(m.Error(code="too_many_agents", message="at most 2\nagents")),
     "coordinator refused this agent: too_many_agents: at most 2?agents"),
    (text(assign(1)), "expected welcome, got assign"),
    ("not json", "expected welcome, got a malformed message: not JSON"),
])
def test_anything_but_a_welcome_ends_the_session_for_good(answer: str, reason: str) -> None:
    agent = AgentSession()
    agent.start(hello())
    (fatal,) = agent.receive(answer)
    assert isinstance(fatal, Fatal) and fatal.reason.startswith(reason)
    assert agent.phase == AgentPhase.CLOSED and not agent.welcomed
    with pytest.raises(SessionError):
        agent.receive(text(assign(1)))


def test_nothing_happens_before_hello_nor_twice() -> None:
    agent = AgentSession()
    with pytest.raises(SessionError):
        agent.receive(text(m.Welcome(worker_id=7, heartbeat_interval=5, lease_timeout=30)))
    with pytest.raises(SessionError):
        agent.heartbeat()
    agent.start(hello())
    with pytest.raises(SessionError):
        agent.start(hello())
    with pytest.raises(SessionError):
        agent.heartbeat()  # not before the welcome


def test_a_second_welcome_changes_nothing() -> None:
    agent = welcomed_agent()
    agent.receive(text(assign(1)))
    actions = agent.receive(text(m.Welcome(worker_id=8, heartbeat_interval=1, lease_timeout=2)))
    assert not any(isinstance(a, Welcomed | Start | Stop | Send) for a in actions)
    assert agent.worker_id == 7 and agent.held == assign(1)


# ---------------------------------------------------------------- the agent's end: one order at a time

def test_an_order_is_started_and_renewed_by_heartbeats() -> None:
    agent = welcomed_agent()
    assert agent.heartbeat() == m.Heartbeat()
    assert Start(assign(1)) in agent.receive(text(assign(1)))
    assert agent.phase == AgentPhase.BUSY
    assert agent.heartbeat() == m.Heartbeat(task_id=1)


def test_a_check_is_renewed_by_its_handle() -> None:
    agent = welcomed_agent()
    agent.receive(text(verify()))
    assert agent.heartbeat() == m.Heartbeat(handle=HANDLE)


@pytest.mark.parametrize("second", [assign(2), assign(1), verify()])
def test_an_order_while_busy_is_ignored(second: m.Assign | m.Verify) -> None:
    agent = welcomed_agent()
    agent.receive(text(assign(1)))
    actions = agent.receive(text(second))
    assert [a.level for a in actions if isinstance(a, Note)] == [logging.ERROR]
    assert not any(isinstance(a, Start | Send) for a in actions)
    assert agent.held == assign(1)


def test_the_agent_is_idle_once_its_order_ended() -> None:
    agent = welcomed_agent()
    agent.receive(text(assign(1)))
    agent.ended(agent.held)  # type: ignore[arg-type]
    assert agent.phase == AgentPhase.IDLE and agent.heartbeat() == m.Heartbeat()
    assert Start(assign(2)) in agent.receive(text(assign(2)))


def test_an_order_whose_urls_it_refuses_fails_and_leaves_it_idle() -> None:
    agent = welcomed_agent(vet=lambda order: "a URL it does not build" if order.job_id == 1 else None)
    assert sent(agent.receive(text(assign(1)))) == [
        m.TaskFailed(task_id=1, attempt=1, error="the agent refused the order: a URL it does not build")]
    assert sent(agent.receive(text(verify()))) == [
        m.CheckFailed(handle=HANDLE, error="the agent refused the order: a URL it does not build")]
    assert agent.phase == AgentPhase.IDLE


def test_a_paused_agent_gives_new_orders_back_and_finishes_the_one_in_hand() -> None:
    agent = welcomed_agent()
    agent.receive(text(assign(1)))
    assert sent(agent.availability(True, "dinner")) == [m.Status(paused=True, reason="dinner")]
    assert agent.availability(True, "dinner") == [], "said once"
    assert agent.held == assign(1)
    agent.ended(agent.held)  # type: ignore[arg-type]
    assert sent(agent.receive(text(assign(2)))) == [m.Handback(task_id=2, attempt=1)]
    assert sent(agent.receive(text(verify()))) == [m.CheckFailed(handle=HANDLE, error="the agent is paused")]
    assert agent.phase == AgentPhase.IDLE
    assert sent(agent.availability(False)) == [m.Status(paused=False)]
    assert Start(assign(3)) in agent.receive(text(assign(3)))


# ---------------------------------------------------------------- the agent's end: cancel and hand-back

def test_a_cancel_of_the_order_in_hand_stops_it_and_frees_the_agent_at_once() -> None:
    agent = welcomed_agent()
    agent.receive(text(assign(1)))
    cancelled = agent.held
    actions = agent.receive(text(m.Cancel(task_id=1, reason="job cancelled")))
    assert Stop(assign(1), unwind=False) in actions, "it unwinds while the next order waits for it"
    assert agent.phase == AgentPhase.IDLE
    assert Start(assign(1)) in agent.receive(text(assign(1))), "work pushed right after a cancel is taken"
    agent.ended(cancelled)  # type: ignore[arg-type]  # the cancelled work has unwound: the new order stays
    assert agent.phase == AgentPhase.BUSY and agent.held == assign(1) and agent.held is not cancelled


def test_a_cancel_of_a_check_names_its_handle() -> None:
    agent = welcomed_agent()
    agent.receive(text(verify()))
    assert agent.receive(text(m.Cancel(task_id=None, handle=OTHER_HANDLE))) == []
    assert Stop(verify(), unwind=False) in agent.receive(text(m.Cancel(handle=HANDLE)))


@pytest.mark.parametrize("cancel", [m.Cancel(task_id=99), m.Cancel(handle=HANDLE), m.Cancel()])
def test_a_stale_cancel_changes_nothing(cancel: m.Cancel) -> None:
    agent = welcomed_agent()
    agent.receive(text(assign(1)))
    assert agent.receive(text(cancel)) == []
    assert agent.held == assign(1)


def test_a_cancel_that_crossed_the_orders_end_changes_nothing() -> None:
    agent = welcomed_agent()
    agent.receive(text(assign(1)))
    agent.ended(agent.held)  # type: ignore[arg-type]
    assert agent.receive(text(m.Cancel(task_id=1))) == []
    assert agent.phase == AgentPhase.IDLE


@pytest.mark.parametrize("order, given_back", [
    (assign(1, attempt=3), m.Handback(task_id=1, attempt=3)),
    (verify(), m.CheckFailed(handle=HANDLE, error="the agent is stopping")),
])
def test_a_stopping_agent_stops_its_order_then_hands_it_back(order: m.Assign | m.Verify,
                                                              given_back: m.Message) -> None:
    agent = welcomed_agent()
    agent.receive(text(order))
    actions = [a for a in agent.stop() if not isinstance(a, Note)]
    assert actions == [Stop(order, unwind=True, settle=True), Send(given_back)]
    assert agent.phase == AgentPhase.CLOSED


def test_an_idle_agent_stops_without_a_word() -> None:
    assert welcomed_agent().stop() == []


def test_a_lost_connection_stops_the_order_and_tells_nobody() -> None:
    agent = welcomed_agent()
    agent.receive(text(assign(1)))
    assert agent.lost() == [Stop(assign(1), unwind=True)]
    assert agent.phase == AgentPhase.CLOSED and agent.held is None
    assert agent.availability(True, "dinner") == [], "nothing is sent after the end"


def test_the_next_hello_names_the_task_dropped_with_a_lost_connection() -> None:
    agent = welcomed_agent()
    agent.receive(text(assign(4, attempt=2)))
    agent.lost()
    assert agent.dropped == assign(4, attempt=2)
    named = naming_dropped(hello(), agent.dropped)
    assert (named.dropped_task_id, named.dropped_attempt) == (4, 2)
    assert sent(AgentSession().start(named)) == [named]
    assert naming_dropped(hello(), None) == hello(), "an agent that held nothing names nothing"


def test_a_check_dropped_with_a_lost_connection_is_not_named() -> None:
    agent = welcomed_agent()
    agent.receive(text(verify()))
    agent.lost()
    assert naming_dropped(hello(), agent.dropped) == hello()


def test_a_malformed_message_is_logged_and_the_session_goes_on() -> None:
    agent = welcomed_agent()
    for bad in ('{"type": "assign", "task_id": "not a number"}', "not json", '{"type": "nonsense"}'):
        (note,) = agent.receive(bad)
        assert isinstance(note, Note) and note.level == logging.ERROR
    assert Start(assign(3)) in agent.receive(text(assign(3)))


# ---------------------------------------------------------------- the coordinator's end

@dataclass(frozen=True)
class Held:
    """What the dispatcher records as the worker's order (dispatch.Work's fields)."""

    kind: str
    id: int
    attempt: int
    handle: str = ""


TASK_1 = Held("task", 1, 2)
CHECK = Held("check", 40, 1, HANDLE)


def open_session() -> CoordinatorSession:
    session = CoordinatorSession()
    session.hello(text(hello()))
    session.welcome(7, 5, 30)
    return session


def receive(session: CoordinatorSession, message: m.Message, held: Held | None) -> Step:
    decoded = session.read(text(message))
    assert not isinstance(decoded, Step)
    return session.receive(decoded, held)


@pytest.mark.parametrize("first, code", [
    (text(m.Heartbeat()), "hello_expected"),
    (None, "hello_expected"),  # nothing within the hello timeout
    ("{", "bad_message"),
    (text(hello(protocol=PROTOCOL_VERSION + 1)), "protocol_mismatch"),
])
def test_the_coordinator_wants_a_hello_of_its_protocol_first(first: str | None, code: str) -> None:
    session = CoordinatorSession()
    answer = session.hello(first)
    assert isinstance(answer, m.Error) and answer.code == code
    assert session.phase == CoordinatorPhase.CLOSED
    with pytest.raises(SessionError):
        session.welcome(7, 5, 30)


def test_the_coordinator_reads_the_lease_a_hello_says_was_dropped() -> None:
    session = CoordinatorSession()
    named = session.hello(text(naming_dropped(hello(), assign(4, attempt=2))))
    assert isinstance(named, m.Hello) and dropped_lease(named) == (4, 2)
    assert dropped_lease(hello()) is None


@pytest.mark.parametrize("half", [{"dropped_task_id": 4}, {"dropped_attempt": 2}])
def test_a_hello_naming_half_a_lease_is_refused(half: dict[str, int]) -> None:
    session = CoordinatorSession()
    answer = session.hello(text(m.Hello(**{**hello().__dict__, **half})))
    assert isinstance(answer, m.Error) and answer.code == "bad_message"


def test_a_hello_is_welcomed_once_signed_on_or_refused() -> None:
    session = CoordinatorSession()
    assert session.hello(text(hello())) == hello()
    assert session.phase == CoordinatorPhase.SIGNING_ON
    with pytest.raises(SessionError):
        session.read(text(m.Heartbeat()))  # nothing is read before the welcome
    assert session.welcome(7, 5, 30) == m.Welcome(worker_id=7, heartbeat_interval=5, lease_timeout=30)
    assert session.phase == CoordinatorPhase.OPEN
    with pytest.raises(SessionError):
        session.welcome(7, 5, 30)
    refused = CoordinatorSession()
    refused.hello(text(hello()))
    error = m.Error(code="too_many_agents", message="at most 2")
    assert refused.refuse(error) == error and refused.phase == CoordinatorPhase.CLOSED
    with pytest.raises(SessionError):
        refused.welcome(7, 5, 30)


@pytest.mark.parametrize("message", [hello(), assign(1), m.Welcome(worker_id=1, heartbeat_interval=1,
                                                                    lease_timeout=1)])
def test_after_the_welcome_only_worker_messages_are_taken(message: m.Message) -> None:
    step = receive(open_session(), message, TASK_1)
    assert step == Step(reply=m.Error(code="unexpected", message=f"{message.TYPE} is not a worker message"))


def test_a_malformed_message_is_answered_and_goes_no_further() -> None:
    step = open_session().read('{"type": "task_done"}')
    assert isinstance(step, Step) and step.event is None and not step.release
    assert isinstance(step.reply, m.Error) and step.reply.code == "bad_message"


def test_heartbeats_and_progress_renew_the_lease_they_name() -> None:
    session = open_session()
    assert receive(session, m.Heartbeat(), None) == Step()
    assert receive(session, m.Heartbeat(task_id=1), TASK_1) == Step(KeepTask(1, None, None))
    assert receive(session, m.Progress(task_id=1, attempt=2, frame=5), TASK_1) == Step(KeepTask(1, 2, 5))
    assert receive(session, m.Heartbeat(handle=HANDLE), CHECK) == Step(KeepCheck(HANDLE))


def test_renewing_a_lost_lease_is_answered_by_a_cancel() -> None:
    session = open_session()
    step = session.lost(KeepTask(1, 2, 5), TASK_1)
    assert step == Step(reply=m.Cancel(task_id=1, reason="you no longer hold this task"), release=True)
    other = session.lost(KeepTask(9, None, None), TASK_1)
    assert other.reply == m.Cancel(task_id=9, reason="you no longer hold this task") and not other.release
    check = session.lost(KeepCheck(HANDLE), CHECK)
    assert check == Step(reply=m.Cancel(handle=HANDLE, reason="you no longer hold this check"), release=True)


def test_the_end_of_the_order_in_hand_frees_the_worker() -> None:
    session = open_session()
    done = receive(session, m.TaskDone(task_id=1, attempt=2), TASK_1)
    assert done == Step(TaskEnded(1, 2, None), release=True)
    failed = m.TaskFailed(task_id=1, attempt=2, error="boom")
    assert receive(session, failed, TASK_1) == Step(TaskEnded(1, 2, failed), release=True)
    assert receive(session, m.CheckDone(handle=HANDLE), CHECK) == Step(CheckEnded(m.CheckDone(handle=HANDLE)),
                                                                      release=True)


@pytest.mark.parametrize("held", [None, Held("task", 1, 3), Held("task", 2, 2), CHECK])
def test_a_late_or_duplicate_report_frees_nothing_but_still_reaches_the_books(held: Held | None) -> None:
    """The lease decides whether it counts (a duplicate task_done is ignored there); the worker's current order,
    another attempt or another task, stays in hand."""
    step = receive(open_session(), m.TaskDone(task_id=1, attempt=2), held)
    assert step == Step(TaskEnded(1, 2, None), release=False)


def test_a_check_report_frees_only_the_check_of_that_handle() -> None:
    session = open_session()
    report = m.CheckFailed(handle=OTHER_HANDLE, error="x")
    assert receive(session, report, CHECK) == Step(CheckEnded(report), release=False)
    assert not receive(session, m.CheckDone(handle=HANDLE), Held("task", 40, 1)).release


def test_a_hand_back_frees_the_worker_and_a_stopping_one_takes_no_more() -> None:
    session = open_session()
    step = receive(session, m.Handback(task_id=1, attempt=2), TASK_1)
    assert step == Step(HandedBack(1, 2), release=True, drain=True)


def test_a_paused_worker_that_hands_back_takes_work_again_once_it_resumes() -> None:
    session = open_session()
    assert receive(session, m.Status(paused=True), None) == Step(Paused("paused by its owner"))
    assert receive(session, m.Handback(task_id=1, attempt=2), TASK_1).drain is False
    assert receive(session, m.Status(paused=False, reason="ignored"), None) == Step(Paused(None))
    assert receive(session, m.Handback(task_id=1, attempt=2), None).drain is True


def test_a_closed_session_reads_nothing() -> None:
    session = open_session()
    session.close()
    with pytest.raises(SessionError):
        session.read(text(m.Heartbeat()))


# ---------------------------------------------------------------- both ends

def test_both_ends_agree_on_a_whole_session() -> None:
    """The agent's words go to the coordinator's machine and back: hello, welcome, an order, its end."""
    agent, coordinator = AgentSession(), CoordinatorSession()
    (said_hello,) = sent(agent.start(hello()))
    assert coordinator.hello(text(said_hello)) == hello()
    assert agent.receive(text(coordinator.welcome(7, 5, 30)))[0] == Welcomed(7, 5)
    agent.receive(text(assign(1, attempt=2)))  # the dispatcher pushes it and records TASK_1
    (heartbeat,) = [agent.heartbeat()]
    assert receive(coordinator, heartbeat, TASK_1).event == KeepTask(1, None, None)
    (handback,) = sent(agent.stop())
    assert receive(coordinator, handback, TASK_1) == Step(HandedBack(1, 2), release=True, drain=True)
