"""What an admin does to a worker agent: suspend it, let it work again, lift its per-job blocklists.

Like the job controls, each action is one transaction under the worker's row lock, refuses with
:class:`WorkerControlError` when the worker's state does not allow it, records an event naming who acted
(``by``), commits, and then tells the dispatcher.

Suspending takes the worker's work away at once, as a caught cheater's tasks are taken away, but without the
penalty: its tasks go back to the queue the way a graceful hand-back does (no failure counted, frames it
already uploaded kept and checked as usual) and its checks go back to other verifiers. A suspended worker
stays connected and gets nothing (dispatch, leases.claim_task, verification.leasing). Unsuspending keeps its
record: ``times_caught`` stands, so a worker suspended for cheating is suspended again at its next offence.
"""

from __future__ import annotations

from typing import Any, NoReturn, cast

from sqlalchemy import CursorResult, delete

from . import events, outcomes
from .db import db, lock
from .dispatch import dispatcher
from .errors import ActionRefused
from .models import AccountBlock, Job, JobBlock, Worker


class WorkerControlError(ActionRefused):
    """The action is not allowed in the worker's state (409); ``code`` and ``message`` say why."""


def suspend_worker(worker: Worker, *, by: str | None = None) -> None:
    """Give the worker no more work and take back what it holds. Refused if it is suspended already."""
    lock(worker)
    if worker.suspended:
        _refuse("already_suspended", f"worker {worker.id} ({worker.name}) is already suspended")
    worker.suspended = True
    lost = outcomes.take_back(worker, "the worker was suspended")
    events.record(events.WORKER_SUSPENDED, f"worker {worker.name} ({worker.account.name}) suspended; "
                                           f"{len(lost)} lease(s) taken back", worker=worker, actor=by)
    db.session.commit()
    dispatcher().drop_leases(lost)
    dispatcher().kick()  # the work it held goes to others


def unsuspend_worker(worker: Worker, *, by: str | None = None) -> None:
    """Let a suspended worker have work again. Refused if it is not suspended."""
    lock(worker)
    if not worker.suspended:
        _refuse("not_suspended", f"worker {worker.id} ({worker.name}) is not suspended")
    worker.suspended = False
    account = worker.account
    lifted = " (and its account's suspension)" if account.suspended else ""
    account.suspended = False  # new agents of the account are no longer born suspended; its others stay suspended
    events.record(events.WORKER_UNSUSPENDED, f"worker {worker.name} ({account.name}) unsuspended{lifted}",
                  worker=worker, actor=by)
    dispatcher().kick()  # commits


def unblock_worker(worker: Worker, job: Job | None = None, *, by: str | None = None) -> int:
    """Remove the worker's blocklist entries and its account's (for ``job`` only, when given); returns how many
    were removed. An account is blocklisted as a whole, so this lets its other agents take the job again too.

    The failures that blocked it stay on record, so one more failure on that job blocks it again.
    """
    lock(worker)
    removed = 0
    for query in (delete(JobBlock).where(JobBlock.worker_id == worker.id),
                  delete(AccountBlock).where(AccountBlock.account_id == worker.account_id)):
        if job is not None:
            query = query.where(query.table.c.job_id == job.id)
        result = db.session.execute(query.execution_options(synchronize_session=False))
        removed += cast(CursorResult[Any], result).rowcount
    if removed:
        where = f"job {job.id}" if job is not None else f"{removed} job(s)"
        events.record(events.WORKER_UNBLOCKED, f"worker {worker.name} ({worker.account.name}) unblocked for {where}",
                      worker=worker, job=job, actor=by)
    dispatcher().kick()  # commits
    return removed


def _refuse(code: str, message: str) -> NoReturn:
    db.session.rollback()  # release the row lock; nothing was written
    raise WorkerControlError(code, message)
