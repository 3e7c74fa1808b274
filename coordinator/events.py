"""The network's event log: what happened, to which job, worker or account, and who did it.

``record`` adds an event to the caller's transaction, so it is written with the change it describes or not
at all (no commits here). ``recent`` reads the newest: all of them for admins, or those of one account (of its
jobs, of its workers, and of itself). Messages are for people; ``kind`` is for filters and colours.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import selectinload

from .db import db
from .models import Account, Event, Job, Worker
from .timefmt import iso

# The kinds written by the coordinator (the dashboard may colour by kind; new kinds may appear).
WORKER_JOINED = "worker_joined"
WORKER_LEFT = "worker_left"
WORKER_SUSPENDED = "worker_suspended"
WORKER_UNSUSPENDED = "worker_unsuspended"
WORKER_UNBLOCKED = "worker_unblocked"
WORKER_PAUSED = "worker_paused"
WORKER_RESUMED = "worker_resumed"
ACCOUNT_BLOCKLISTED = "account_blocklisted"
ACCOUNT_SUSPENDED = "account_suspended"
CHEAT_CAUGHT = "cheat_caught"
VERIFIER_CAUGHT = "verifier_caught"
CLAIM_FILED = "claim_filed"
CLAIM_SETTLED = "claim_settled"
JOB_SUBMITTED = "job_submitted"
JOB_COMPLETED = "job_completed"
JOB_FAILED = "job_failed"
JOB_WAITING = "job_waiting"
JOB_CANCELLED = "job_cancelled"
JOB_PAUSED = "job_paused"
JOB_RESUMED = "job_resumed"
JOB_REQUEUED = "job_requeued"
JOB_PRIORITY = "job_priority"
POINTS_GRANTED = "points_granted"
TOKEN_CREATED = "token_created"
TOKEN_REVOKED = "token_revoked"

MESSAGE_MAX = 2000


def record(kind: str, message: str, *, job: Job | None = None, worker: Worker | None = None,
           account: Account | None = None, actor: str | None = None) -> Event:
    """Add an event to the current transaction. ``actor`` names the person who acted (an admin, a job's owner);
    the message then says so. No commit."""
    if actor:
        message = f"{message} (by {actor})"
    event = Event(kind=kind, message=message[:MESSAGE_MAX], job=job, worker=worker, account=account, actor=actor)
    db.session.add(event)
    return event


def recent(limit: int = 50, account: Account | None = None) -> list[Event]:
    """The newest ``limit`` events, newest first: every event (``account=None``: an admin's view), or those of
    ``account``'s jobs and workers and of the account itself."""
    return list(db.session.execute(visible(account).order_by(Event.id.desc()).limit(limit)).scalars())


def visible(account: Account | None) -> Select[Event]:
    """The events ``account`` may read (every event for ``None``), unordered, their names loaded with them."""
    query = select(Event).options(selectinload(Event.worker), selectinload(Event.account), selectinload(Event.job))
    if account is not None:
        query = query.where(or_(
            Event.account_id == account.id,
            Event.job_id.in_(select(Job.id).where(Job.account_id == account.id)),
            Event.worker_id.in_(select(Worker.id).where(Worker.account_id == account.id)),
        ))
    return query


def event_json(event: Event) -> dict[str, Any]:
    """An event as the API and the dashboard show it: ids with names, the time as ISO 8601 and UNIX seconds."""
    return {
        "id": event.id,
        "at": iso(event.created_at),
        "time": event.created_at,
        "kind": event.kind,
        "message": event.message,
        "job": event.job_id,
        "job_name": event.job.name if event.job else None,
        "worker": event.worker_id,
        "worker_name": event.worker.name if event.worker else None,
        "account": event.account.name if event.account else None,
        "actor": event.actor,
    }
