"""The coordinator's six state machines, as their spec: every move each one allows and why, checked against the
tables in coordinator/states.py (any move not written here is refused); the knock-on effects that
coordinator/transitions.py applies with a move; and a guard that no other module writes a ``state``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from framehive.coordinator import states, transitions
from framehive.coordinator.db import db
from framehive.coordinator.models import Check, Claim, Frame, Job, Task, VerificationKey
from framehive.coordinator.states import (
    CheckState,
    ClaimState,
    FrameState,
    IllegalTransition,
    JobState,
    KeyState,
    TaskState,
)

from tests.coordinator.test_leases import ctx, job_of  # noqa: F401  (ctx: a 6-frame job in 3 tasks, workers a/b/c)

COORDINATOR = Path(__file__).resolve().parents[2] / "coordinator"

# Each machine's spec: (from, to, why). Nothing else is allowed.
JOB = [
    (JobState.QUEUED, JobState.RUNNING, "a worker leased its first task"),
    (JobState.QUEUED, JobState.PAUSED, "its owner or an admin paused it"),
    (JobState.QUEUED, JobState.CANCELLED, "its owner or an admin cancelled it"),
    (JobState.QUEUED, JobState.FAILED, "nobody may run it (blocklists), or a scene limit of two accounts' agents"),
    (JobState.RUNNING, JobState.COMPLETED, "every task is done"),
    (JobState.RUNNING, JobState.PAUSED, "paused"),
    (JobState.RUNNING, JobState.CANCELLED, "cancelled"),
    (JobState.RUNNING, JobState.FAILED, "a task failed for the last time"),
    (JobState.PAUSED, JobState.QUEUED, "resumed before it ever started"),
    (JobState.PAUSED, JobState.RUNNING, "resumed"),
    (JobState.PAUSED, JobState.COMPLETED, "the leases in flight finished its last work"),
    (JobState.PAUSED, JobState.FAILED, "a lease in flight failed for the last time"),
    (JobState.PAUSED, JobState.CANCELLED, "cancelled"),
    (JobState.FAILED, JobState.QUEUED, "requeued before it ever started, its escrow charged again"),
    (JobState.FAILED, JobState.RUNNING, "requeued, its escrow charged again"),
]
TASK = [
    (TaskState.QUEUED, TaskState.LEASED, "a worker claimed it"),
    (TaskState.QUEUED, TaskState.CANCELLED, "its job was cancelled"),
    (TaskState.QUEUED, TaskState.FAILED, "its job failed"),
    (TaskState.LEASED, TaskState.QUEUED, "the lease was lost, handed back, or failed with retries left"),
    (TaskState.LEASED, TaskState.VERIFYING, "every frame came in and some are to be checked"),
    (TaskState.LEASED, TaskState.DONE, "every frame came in and none was sampled"),
    (TaskState.LEASED, TaskState.FAILED, "its job failed"),
    (TaskState.LEASED, TaskState.CANCELLED, "its job was cancelled"),
    (TaskState.VERIFYING, TaskState.DONE, "every check passed"),
    (TaskState.VERIFYING, TaskState.QUEUED, "its renderer was caught: rendered again"),
    (TaskState.VERIFYING, TaskState.FAILED, "its job failed"),
    (TaskState.VERIFYING, TaskState.CANCELLED, "its job was cancelled"),
    (TaskState.DONE, TaskState.QUEUED, "a renderer caught later had trust-accepted frames here"),
    (TaskState.FAILED, TaskState.QUEUED, "its failed job was requeued and frames are missing"),
    (TaskState.FAILED, TaskState.VERIFYING, "its failed job was requeued and every frame had come in"),
    (TaskState.FAILED, TaskState.DONE, "its failed job was requeued and every frame was verified"),
]
FRAME = [
    (FrameState.QUEUED, FrameState.RENDERING, "its worker's heartbeat names it"),
    (FrameState.QUEUED, FrameState.RENDERED, "uploaded before a heartbeat named it"),
    (FrameState.QUEUED, FrameState.FAILED, "its job failed"),
    (FrameState.QUEUED, FrameState.CANCELLED, "its job was cancelled"),
    (FrameState.RENDERING, FrameState.QUEUED, "the lease was lost or handed back, or its renderer caught"),
    (FrameState.RENDERING, FrameState.RENDERED, "uploaded"),
    (FrameState.RENDERING, FrameState.FAILED, "its job failed"),
    (FrameState.RENDERING, FrameState.CANCELLED, "its job was cancelled"),
    (FrameState.RENDERED, FrameState.VERIFIED, "accepted: its checks passed, or it was not sampled"),
    (FrameState.RENDERED, FrameState.QUEUED, "its renderer was caught"),
    (FrameState.VERIFIED, FrameState.QUEUED, "its renderer was caught later, while the job is live"),
    (FrameState.FAILED, FrameState.QUEUED, "its failed job was requeued"),
]
CHECK = [
    (CheckState.QUEUED, CheckState.LEASED, "a verifier claimed it"),
    (CheckState.QUEUED, CheckState.VOID, "its frames are rendered again, or its job ended and it held them back"),
    (CheckState.LEASED, CheckState.QUEUED, "released: its verifier went silent, disconnected or hit a limit"),
    (CheckState.LEASED, CheckState.DONE, "its result was judged"),
    (CheckState.LEASED, CheckState.VOID, "as from queued; its verifier is told to drop it"),
]
KEY = [
    (KeyState.SEALED, KeyState.USED, "revealed at the commit point, its dice under the renderer's check rate"),
    (KeyState.SEALED, KeyState.UNUSED, "revealed at the commit point, its dice over the rate"),
    (KeyState.SEALED, KeyState.VOID, "its task is rendered anew before it was revealed"),
    (KeyState.USED, KeyState.VOID, "its task is rendered or checked anew (a renderer caught, a failed job requeued)"),
]
CLAIM = [
    (ClaimState.OPEN, ClaimState.CONFIRMED, "a disputed frame was overturned and replaced"),
    (ClaimState.OPEN, ClaimState.REJECTED, "every disputed frame stands"),
]
MACHINES = {
    "job": (JOB, states.JOB_TRANSITIONS, JobState), "task": (TASK, states.TASK_TRANSITIONS, TaskState),
    "frame": (FRAME, states.FRAME_TRANSITIONS, FrameState), "check": (CHECK, states.CHECK_TRANSITIONS, CheckState),
    "key": (KEY, states.KEY_TRANSITIONS, KeyState), "claim": (CLAIM, states.CLAIM_TRANSITIONS, ClaimState),
}
# States never left.
TERMINAL = {"job": {JobState.COMPLETED, JobState.CANCELLED}, "task": {TaskState.CANCELLED},
            "frame": {FrameState.CANCELLED}, "check": {CheckState.DONE, CheckState.VOID},
            "key": {KeyState.UNUSED, KeyState.VOID}, "claim": {ClaimState.CONFIRMED, ClaimState.REJECTED}}


def names(kind: type) -> set[str]:
    return {getattr(kind, k) for k in dir(kind) if k.isupper() and isinstance(getattr(kind, k), str)}


@pytest.mark.parametrize("machine", MACHINES)
def test_each_machine_allows_exactly_its_spec(machine: str) -> None:
    spec, table, kind = MACHINES[machine]
    allowed = {(old, new) for old, targets in table.items() for new in targets}
    assert allowed == {(old, new) for old, new, _why in spec}
    everything = names(kind)
    for old in everything:
        for new in everything:
            if (old, new) in allowed:
                states.check_move(table, old, new)
            else:
                with pytest.raises(IllegalTransition):
                    states.check_move(table, old, new)
    assert {s for s in everything if not table.get(s)} == TERMINAL[machine], "the states never left"


# The guard: any code outside transitions.py that writes a ``state``.

def writes_of_state(source: str) -> list[str]:
    """Each place ``source`` writes a state: an assignment to ``….state`` (alone or in a tuple), ``setattr(…,
    "state", …)``, an ``UPDATE … .values(state=…)``, or a model built in a state other than its first."""
    found: list[str] = []
    first = {"QUEUED", "SEALED", "OPEN"}
    for node in ast.walk(ast.parse(source)):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for part in target.elts if isinstance(target, ast.Tuple) else [target]:
                if isinstance(part, ast.Attribute) and part.attr == "state":
                    found.append(f"line {node.lineno}: {ast.unparse(node)[:100]}")
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        state = next((k.value for k in node.keywords if k.arg == "state"), None)
        built = name in {"Job", "Task", "Frame", "Check", "VerificationKey", "Claim"}
        if (name == "setattr" and len(node.args) > 1 and getattr(node.args[1], "value", None) == "state") \
                or (name == "values" and state is not None) \
                or (built and state is not None and not (isinstance(state, ast.Attribute) and state.attr in first)):
            found.append(f"line {node.lineno}: {ast.unparse(node)[:100]}")
    return found


def test_the_guard_sees_every_way_of_writing_a_state() -> None:
    attacks = ['frame.state = "queued"', "frame.state, frame.worker_id = FrameState.QUEUED, None",
               'setattr(check, "state", "void")', 'update(Check).values(state="leased")',
               'Check(job_id=1, state="done")', "task.state: str = TaskState.DONE"]
    assert [len(writes_of_state(attack)) for attack in attacks] == [1] * len(attacks)
    assert writes_of_state("key = VerificationKey(frame=1, state=KeyState.SEALED)\nif check.state == 'done': pass\n"
                           "select(Check).filter_by(state=CheckState.LEASED)") == []


def test_no_module_but_transitions_writes_a_state() -> None:
    writers = {}
    for path in sorted(COORDINATOR.rglob("*.py")):
        if path.name == "transitions.py" or "migrations" in path.parts:
            continue
        found = writes_of_state(path.read_text(encoding="utf-8"))
        if found:
            writers[path.relative_to(COORDINATOR).as_posix()] = found
    assert writers == {}, "state changes belong in coordinator/transitions.py"


# The knock-on effects of moves, on a real database.

def test_a_task_leaving_its_lease_has_no_holder(ctx) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    task = db.session.get(Task, job_of(ctx).tasks[0].id)
    assert transitions.move_where(Task, TaskState.QUEUED, TaskState.LEASED, Task.id == task.id,
                                  worker_id=ctx["a"], lease_expires=10**10) == 1
    assert transitions.move_where(Task, TaskState.QUEUED, TaskState.LEASED, Task.id == task.id,
                                  worker_id=ctx["b"]) == 0, "the second claimer of the row loses"
    db.session.refresh(task)
    assert (task.state, task.worker_id) == (TaskState.LEASED, ctx["a"])
    transitions.move_task(task, TaskState.QUEUED)
    assert (task.worker_id, task.lease_expires) == (None, None)
    with pytest.raises(IllegalTransition):
        transitions.move_where(Task, TaskState.QUEUED, TaskState.DONE, Task.id == task.id)


def test_a_job_that_ends_is_stamped_and_refunded_and_one_revived_is_not(ctx) -> None:  # type: ignore[no-untyped-def]  # noqa: F811,E501
    job = job_of(ctx)
    transitions.move_job(job, JobState.RUNNING)
    assert job.started_at is not None and job.finished_at is None
    transitions.move_job(job, JobState.FAILED, "nobody may run it")
    assert (job.error, job.waiting) == ("nobody may run it", None) and job.finished_at is not None
    from framehive.coordinator import ledger

    assert ledger.balance(ledger.escrow_book(job.id)) == 0, "the escrow went back to the owner"
    transitions.move_job(job, JobState.RUNNING)
    assert (job.error, job.finished_at) == (None, None)
    with pytest.raises(IllegalTransition):
        transitions.move_job(job, JobState.QUEUED)


def test_a_frame_sent_back_loses_its_pixels_and_one_accepted_is_stamped(ctx) -> None:  # type: ignore[no-untyped-def]  # noqa: F811,E501
    frame = job_of(ctx).frames[0]
    transitions.rendered(frame, "0" * 64, ctx["a"], 1)
    frame.flags = ["blank"]
    assert (frame.state, frame.blob_sha256, frame.worker_id, frame.rendered_at is not None) == \
        (FrameState.RENDERED, "0" * 64, ctx["a"], True)
    transitions.accepted(frame, "trust")
    assert (frame.state, frame.verified_by, frame.verified_at is not None) == (FrameState.VERIFIED, "trust", True)
    transitions.move_frame(frame, FrameState.QUEUED)  # its renderer was caught
    assert (frame.blob_sha256, frame.worker_id, frame.verified_by, frame.verified_at, frame.flags) == \
        (None, None, None, None, [])
    with pytest.raises(AssertionError):
        transitions.replace_pixels(frame, "1" * 64, ctx["b"], "claim")  # only a verified frame's pixels
    with pytest.raises(IllegalTransition):
        transitions.move_frame(frame, FrameState.VERIFIED)  # never accepted without pixels


def test_checks_keys_and_claims_move_by_their_tables(ctx) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    job = job_of(ctx)
    frame: Frame = job.frames[0]
    check = Check(job_id=job.id, frame_id=frame.id, kind="verify", region=[0, 0, 8, 8], render_rect=[0, 0, 8, 8])
    key = VerificationKey(task_id=frame.task_id, job_id=job.id, frame=frame.number, region=[0, 0, 8, 8], draw=0.5,
                          state=KeyState.SEALED)
    claim = Claim(job_id=job.id, account_id=job.account_id, frames_spec="1", reason="noise")
    db.session.add_all([check, key, claim])
    db.session.flush()
    assert (check.state, claim.state) == (CheckState.QUEUED, ClaimState.OPEN)
    assert transitions.move_where(Check, CheckState.QUEUED, CheckState.LEASED, Check.id == check.id,
                                  verifier_id=ctx["c"], lease_expires=10**10) == 1
    assert transitions.move_where(Check, CheckState.LEASED, CheckState.QUEUED, Check.id == check.id) == 1
    db.session.refresh(check)
    assert (check.state, check.lease_expires) == (CheckState.QUEUED, None), "released: no lease left to expire"
    transitions.move_where(Check, CheckState.QUEUED, CheckState.LEASED, Check.id == check.id, verifier_id=ctx["c"],
                           lease_expires=10**10)
    db.session.refresh(check)
    transitions.move_check(check, CheckState.DONE)
    assert (check.lease_expires, check.decided_at is not None, check.verifier_id) == (None, True, ctx["c"])
    with pytest.raises(IllegalTransition):
        transitions.move_check(check, CheckState.VOID)  # a verdict stands
    transitions.move_key(key, KeyState.USED)
    with pytest.raises(IllegalTransition):
        transitions.move_key(key, KeyState.SEALED)  # a revealed key is never sealed again
    transitions.move_claim(claim, ClaimState.REJECTED, "every frame stands")
    assert (claim.outcome, claim.decided_at is not None) == ("every frame stands", True)
    with pytest.raises(IllegalTransition):
        transitions.move_claim(claim, ClaimState.CONFIRMED, "changed its mind")
    db.session.rollback()


def test_every_model_with_a_state_has_its_table() -> None:
    assert set(transitions.TABLES) == {Job, Task, Frame, Check, VerificationKey, Claim}
