"""Adaptive trust, after BOINC's adaptive replication with a floor.

A new worker has every task checked. Each passed check adds one to its trust; once trust reaches
``burn_in`` the check rate falls as ``burn_in / trust`` down to ``floor`` (never zero). Any failure resets
trust to 0, so a worker that starts cheating is back to being checked on every task.

Detection guarantee: a renderer that fakes a fraction q of its frames, with k of its frames checked,
escapes only if no checked frame is a noticed fake: P(caught) = 1 - (1 - q*d)^k, where d is the chance a
check notices a faked frame (1 when every pixel changes; the region-overlap chance for a local tamper).
Keys are drawn with a CSPRNG before rendering and revealed after commit, so fakes cannot depend on them.
"""

from __future__ import annotations

from flask import current_app

from ..models import Account, Worker

# Checks a new worker must pass before sampling thins out.
BURN_IN = 10
# The check rate never falls below this share of tasks.
FLOOR = 0.05


def check_rate(trust: int, burn_in: int = BURN_IN, floor: float = FLOOR) -> float:
    """Probability that a task rendered by a worker with this trust is checked."""
    if trust < burn_in:
        return 1.0
    return max(floor, burn_in / trust)


def rate_for(worker: Worker) -> float:
    account: Account = worker.account
    if account.trusted:
        return 0.0
    config = current_app.config
    return check_rate(worker.trust, config["FRAMEHIVE_TRUST_BURN_IN"], config["FRAMEHIVE_CHECK_FLOOR"])


def passed(worker: Worker) -> None:
    worker.trust += 1
    worker.checks_passed += 1


def failure_counted(worker: Worker) -> None:
    """Its account was blocklisted for failing another artist's job (failure_accounting.py): trust halves, so more
    of its work is checked again. Milder than being caught: a failure fakes nothing, but it harmed someone."""
    worker.trust //= 2


def caught(worker: Worker) -> None:
    """Reset trust; suspend after repeated offences."""
    worker.trust = 0
    worker.checks_failed += 1
    worker.times_caught += 1
    if worker.times_caught >= current_app.config["FRAMEHIVE_SUSPEND_AFTER"]:
        worker.suspended = True
        current_app.logger.warning("worker %s (%s) suspended after %d offences", worker.id, worker.name,
                                   worker.times_caught)
