"""Failure accounting by account: who failed a job, what it costs them, and when a failure is the scene's fault.

A worker token is a stranger, and each agent name it signs on with is a new worker with no history. So the
account answers for its agents' failures, not the agent:

- A task does not go back to an account that failed it while an online agent of another account may take it
  (``claim_order``). When none may, it does go back: a single honest owner whose task failed once for a
  transient reason (a dropped connection, a driver hiccup) renders it again rather than waiting forever.
- An account whose agents failed one job ``BLOCKLIST_THRESHOLD`` times is blocklisted for that job as a whole
  (:class:`AccountBlock`: every agent it has, and every name it signs on later).
- Failures fail a job only when they are *conclusive*: agents of two accounts failed the task, or the job's own
  account did (it can only harm itself), or one of the network's trusted accounts. Otherwise they count against
  the account that failed: when it is blocklisted for another artist's job its agents' trust halves (more of
  their work is checked), and an account blocklisted for failing ``ACCOUNT_SUSPEND_JOBS`` jobs of other artists
  within ``ACCOUNT_FAILURE_WINDOW`` with no frame of its verified meanwhile is suspended, every agent it has or
  signs on later, until an admin unsuspends one of them.
- A job whose every online agent is blocklisted for it waits, with a reason its artist can read
  (``waiting_verdict``), unless the blocks are conclusive: then it fails as before.
- Limits (issue 11): a failure because the scene exceeded an agent's limit (``memory``, ``frame_time``,
  ``output_size``) blames nobody: no trust lost, no suspension (its account is still blocklisted for the job
  after repeated limit hits, as its machines cannot render it). When agents of two accounts hit limits on one
  job (conclusive as above), the job fails: "the scene exceeds the workers' limits".
- Scenes refused as unsafe (issue 11: ``unsafe_scene``, the agent's own reference check refused the tree). The
  coordinator ran the same check (framehive.protocol.blend_references) at submit, so a refusal of a scene it accepted
  is a
  version difference or a lie: an attacker's way to fail honest artists' jobs (two accounts' refusals were
  conclusive failures) or to dodge work it does not like without losing anything. So the coordinator runs its own,
  current check again (scene_recheck: cached scans, no parse). If that check refuses the tree too (it is stricter
  than the one that let the job in), the job fails at once with the problem, and nobody is blamed. If it accepts
  the tree, the refusal is one agent's word against the coordinator's check: it never counts toward failing the
  job (not in the task's failure count, not in the accounts that failed it, not in conclusive blocks), and the
  account is blocklisted for the job at once (reason ``refused``: its agents' check would refuse again, so retrying
  there only delays the job) and it counts against it as repeated failures do (trust halves; the suspension
  pattern). An honest owner whose newer agent refuses what this coordinator accepts is not suspended as long as
  other work of its is verified. A verifier refusing a check is left out of that check (as for a limit), with no
  blame: a blind check costs it nothing to render, so refusing one gains it nothing.

Rules only: these functions add rows and change trust and suspension in the caller's transaction (no commits)
and say what to do; ``outcomes`` and ``leases`` fail jobs and take work back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import Exists, exists, func, select

from . import capabilities, events, scene_recheck
from .db import db
from .models import Account, AccountBlock, Frame, Job, JobBlock, LimitHit, Task, TaskFailure, Worker, now
from .states import TaskState
from .verification import trust

# What an agent may say it ran out of (the optional ``limit`` of task_failed and check_failed). Anything else
# in that field is a stranger's word for nothing: the failure then counts as an ordinary one.
LIMIT_KINDS = ("memory", "frame_time", "output_size")
# The agent's reference check refused the scene (framehive.worker_agent.scene_cache.SceneUnsafe): not a limit of its
# machine,
# a claim the coordinator checks against its own check (see the module docstring).
UNSAFE_SCENE = "unsafe_scene"
BLAME, LIMITS, REFUSED = "failures", "limits", "refused"  # AccountBlock.reason


@dataclass
class Verdict:
    """What a failure leads to: the job fails with ``fail`` (when set); ``blocked``: an account was just blocklisted
    for the job for its failures (the leases its other agents hold on the job are taken back, so a griefer
    pipelining several names fails no more than the threshold); the work of ``suspended`` agents (their account
    was just suspended) is taken back."""

    fail: str | None = None
    blocked: int | None = None
    suspended: list[Worker] = field(default_factory=list)


def limit_of(message: Any) -> str | None:
    """The limit a task_failed or check_failed message says was hit, if it names a known one."""
    kind = getattr(message, "limit", None)
    return kind if isinstance(kind, str) and kind in (*LIMIT_KINDS, UNSAFE_SCENE) else None


# ------------------------------------------------------------------------------------------- after a failure


def task_failed(task: Task, worker: Worker, reason: str, error: str, limit: str | None) -> Verdict:
    """Account for a failure of ``task`` by ``worker`` (its TaskFailure row is added and the task requeued)."""
    job = task.job
    if limit is not None:
        record_limit(job, worker, limit, task_id=task.id)
        exceeded = limits_exceeded(job)
        if exceeded is not None:
            return Verdict(fail=exceeded)
    if limit == UNSAFE_SCENE:
        return _refused_as_unsafe(task, worker)
    verdict = Verdict()
    if _blocklist_if_due(job, worker.account) == BLAME:
        verdict.blocked = worker.account_id
        verdict.suspended = _count_against(job, worker.account)
    if task.state == TaskState.QUEUED and task.failures >= current_app.config["FRAMEHIVE_MAX_TASK_FAILURES"]:
        accounts = accounts_that_failed(task.id)
        if conclusive(job, accounts):
            verdict.fail = (f"frames {task.frames_spec} failed {task.failures} times on agents of {len(accounts)} "
                            f"account(s); last error ({reason}): {error or 'none reported'}")
    return verdict


def record_limit(job: Job, worker: Worker, kind: str, task_id: int | None = None, check_id: int | None = None) -> None:
    db.session.add(LimitHit(job_id=job.id, worker_id=worker.id, account_id=worker.account_id, kind=kind,
                            task_id=task_id, check_id=check_id))
    db.session.flush()


def limits_exceeded(job: Job) -> str | None:
    """The job's failure message if agents of two accounts (or a conclusive one) hit their limits on it, or if an
    agent refused it as unsafe and the coordinator's own check, run again, refuses it too."""
    hits = db.session.execute(select(LimitHit.kind, LimitHit.account_id, LimitHit.worker_id)
                              .filter_by(job_id=job.id)).all()
    if any(kind == UNSAFE_SCENE for kind, _, _ in hits):
        problem = scene_recheck.problem(job)
        if problem is not None:
            return f"the scene is unsafe for workers (an agent refused it; the coordinator's check agrees): {problem}"
    hits = [hit for hit in hits if hit[0] in LIMIT_KINDS]
    if not conclusive(job, {account for _, account, _ in hits}):
        return None
    details = []
    for kind in LIMIT_KINDS:
        of_kind = [(account, worker) for k, account, worker in hits if k == kind]
        if of_kind:
            details.append(f"{kind.replace('_', ' ')}: {len({w for _, w in of_kind})} agent(s) of "
                           f"{len({a for a, _ in of_kind})} owner(s)")
    return f"the scene exceeds the workers' limits ({'; '.join(details)})"


def conclusive(job: Job, accounts: set[int]) -> bool:
    """Failures by these accounts say the job is at fault, not them: two accounts, the job's own, or a trusted one."""
    if len(accounts) >= 2 or job.account_id in accounts:
        return True
    return any(account.trusted for account in _accounts(accounts))


def accounts_that_failed(task_id: int) -> set[int]:
    """Accounts whose agents failed the task (refusals as unsafe the coordinator's check contradicts are not failures
    of the scene: they never make failures conclusive)."""
    query = select(Worker.account_id).join(TaskFailure, TaskFailure.worker_id == Worker.id).where(
        TaskFailure.task_id == task_id, TaskFailure.reason != UNSAFE_SCENE)
    return set(db.session.execute(query).scalars())


def _refused_as_unsafe(task: Task, worker: Worker) -> Verdict:
    """The agent refused a scene the coordinator's check accepts (limits_exceeded ran it again): its account is
    blocklisted for the job and it counts against it; the task's failure count is given back."""
    task.failures -= 1  # one agent's word against the coordinator's check: not a failure of the scene
    job, account = task.job, worker.account
    if _block(job.id, account.id) is not None:
        return Verdict()
    db.session.add(AccountBlock(job_id=job.id, account_id=account.id, reason=REFUSED))
    what = "its agent refused it as unsafe, which the coordinator's check does not confirm"
    current_app.logger.warning("account %s blocklisted for job %s: %s", account.name, job.id, what)
    events.record(events.ACCOUNT_BLOCKLISTED, f"account {account.name} blocklisted for job {job.id} ({job.name}): "
                                              f"{what}", job=job, account=account)
    db.session.flush()
    return Verdict(blocked=account.id, suspended=_count_against(job, account))


def _blocklist_if_due(job: Job, account: Account) -> str | None:
    """Blocklist ``account`` for ``job`` once its agents failed it often enough; returns the block's reason if it
    was blocklisted just now."""
    if _block(job.id, account.id) is not None:
        return None
    reasons = db.session.execute(
        select(TaskFailure.reason).join(Worker, Worker.id == TaskFailure.worker_id)
        .where(TaskFailure.job_id == job.id, Worker.account_id == account.id)).scalars().all()
    if len(reasons) < current_app.config["FRAMEHIVE_BLOCKLIST_THRESHOLD"]:
        return None
    blamed = any(reason != "limit" for reason in reasons)
    db.session.add(AccountBlock(job_id=job.id, account_id=account.id, reason=BLAME if blamed else LIMITS))
    what = f"its agents failed it {len(reasons)} times" if blamed else "its agents hit their limits on it"
    current_app.logger.warning("account %s blocklisted for job %s: %s", account.name, job.id, what)
    events.record(events.ACCOUNT_BLOCKLISTED, f"account {account.name} blocklisted for job {job.id} ({job.name}): "
                                              f"{what}", job=job, account=account)
    return BLAME if blamed else LIMITS


def _count_against(job: Job, account: Account) -> list[Worker]:
    """The account was blocklisted for failing ``job``: its trust falls and it may be suspended (returned: the
    agents suspended), unless no one else was harmed (its own job) or it is one of the network's own."""
    if job.account_id == account.id or account.trusted:
        return []
    for worker in _workers(account.id):
        trust.failure_counted(worker)
    db.session.flush()
    return _suspend_if_pattern(account)


def _suspend_if_pattern(account: Account) -> list[Worker]:
    """Suspend an account blocklisted for failing enough other artists' jobs lately, with no verified frame."""
    config = current_app.config
    since = now() - float(config["FRAMEHIVE_ACCOUNT_FAILURE_WINDOW"])
    failed_jobs = db.session.execute(
        select(func.count(func.distinct(AccountBlock.job_id))).join(Job, Job.id == AccountBlock.job_id)
        .where(AccountBlock.account_id == account.id, AccountBlock.reason.in_((BLAME, REFUSED)),
               AccountBlock.created_at >= since,
               Job.account_id != account.id)).scalar_one()
    if account.suspended or failed_jobs < int(config["FRAMEHIVE_ACCOUNT_SUSPEND_JOBS"]):
        return []
    verified = db.session.execute(
        select(Frame.id).join(Worker, Worker.id == Frame.worker_id)
        .where(Worker.account_id == account.id, Frame.verified_at >= since).limit(1)).first()
    if verified is not None:
        return []
    account.suspended = True
    workers = [w for w in _workers(account.id) if not w.suspended]
    for worker in workers:
        worker.suspended = True
    current_app.logger.warning("account %s suspended: blocklisted for failing %d jobs of other artists", account.name,
                               failed_jobs)
    events.record(events.ACCOUNT_SUSPENDED, f"account {account.name} suspended: its agents failed {failed_jobs} jobs "
                                            "of other artists and rendered nothing verified meanwhile; "
                                            f"{len(workers)} agent(s) suspended", account=account)
    return workers


# ------------------------------------------------------------------------------------------- who may take what


def online_agents() -> list[Worker]:
    """The agents online and not suspended."""
    return list(db.session.execute(select(Worker).filter_by(online=True, suspended=False)).scalars())


def online_renderers(online: list[Worker] | None = None) -> list[Worker]:
    """Online agents that may render now (not suspended, with the render role); of ``online`` (online_agents()),
    if the caller read them already."""
    return [w for w in (online_agents() if online is None else online) if not w.roles or "render" in w.roles]


def failed_by(account_id: int) -> Exists:
    """Whether an agent of ``account_id`` failed the task of the enclosing query (a column of its candidates: the
    lease's query asks it with its candidates, claim_order's own read was a statement a lease, issue 16)."""
    return exists().where(TaskFailure.task_id == Task.id, TaskFailure.worker_id == Worker.id,
                          Worker.account_id == account_id)


def claim_order(task_ids: list[int], account_id: int, failed: set[int]) -> list[int]:
    """Of these candidate tasks, those an agent of ``account_id`` may lease, in the order to try them: tasks it
    never failed first; then tasks it failed (``failed``, read with the candidates: failed_by) that no online agent
    of another account may take."""
    if not task_ids:
        return []
    if not failed:
        return task_ids
    online = online_renderers()
    fresh = [t for t in task_ids if t not in failed]
    return fresh + [t for t in task_ids if t in failed and not _another_account_may_take(t, account_id, online)]


def _another_account_may_take(task_id: int, account_id: int, online: list[Worker]) -> bool:
    task = db.session.get(Task, task_id)
    assert task is not None
    excluded = accounts_that_failed(task_id) | set(_blocks(task.job_id)) | {account_id}
    blocked_workers = _blocked_workers(task.job_id)
    fitting = capabilities.able(task.job, online)  # an agent too old for the scene (or the wrong device) cannot
    return any(w.account_id not in excluded and w.id not in blocked_workers for w in fitting)


@dataclass(frozen=True)
class Waiting:
    """Why nobody online may take a job's queued tasks: ``fail`` it (the blocks are conclusive) or ``wait``."""

    fail: str | None = None
    wait: str | None = None


def waiting_verdict(job: Job, online: list[Worker]) -> Waiting | None:
    """None if some online agent may take the job's queued tasks (or nobody is online at all)."""
    blocks = _blocks(job.id)
    blocked_workers = _blocked_workers(job.id)
    if not online or any(w.account_id not in blocks and w.id not in blocked_workers for w in online):
        return None
    if conclusive(job, {account for account, reason in blocks.items() if reason != REFUSED}):
        return Waiting(fail=f"every online agent is blocklisted for this job: agents of {len(blocks)} account(s) "
                            "failed it repeatedly")
    names = {a.id: a.name for a in _accounts({w.account_id for w in online})}
    details = []
    for account_id in sorted({w.account_id for w in online if w.account_id in blocks}, key=names.__getitem__):
        what = {BLAME: "failed it repeatedly", REFUSED: "refused it as unsafe (the coordinator's check accepts it)"}\
            .get(blocks[account_id], "hit their limits on it")
        details.append(f"account {names[account_id]}: its agents {what}")
    for worker in sorted((w for w in online if w.account_id not in blocks), key=lambda w: w.name):
        details.append(f"agent {worker.name} of {names[worker.account_id]}: caught cheating on it")
    return Waiting(wait=f"every online agent is blocklisted for this job ({'; '.join(details)}); it runs when an "
                        "agent of another account comes online")


# ------------------------------------------------------------------------------------------- lookups


def _block(job_id: int, account_id: int) -> AccountBlock | None:
    return db.session.execute(select(AccountBlock).filter_by(job_id=job_id, account_id=account_id)).scalar_one_or_none()


def _blocks(job_id: int) -> dict[int, str]:
    """Accounts blocklisted for the job, and why."""
    rows = db.session.execute(select(AccountBlock.account_id, AccountBlock.reason).filter_by(job_id=job_id)).all()
    return dict(rows)


def _blocked_workers(job_id: int) -> set[int]:
    """Agents blocklisted for the job one by one (caught cheating on it)."""
    return set(db.session.execute(select(JobBlock.worker_id).filter_by(job_id=job_id)).scalars())


def _workers(account_id: int) -> list[Worker]:
    return list(db.session.execute(select(Worker).filter_by(account_id=account_id).order_by(Worker.id)).scalars())


def _accounts(ids: Iterable[int]) -> list[Account]:
    ids = list(ids)
    return list(db.session.execute(select(Account).where(Account.id.in_(ids))).scalars()) if ids else []
