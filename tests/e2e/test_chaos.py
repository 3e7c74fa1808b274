"""Chaos: worker agents are SIGKILLed and restarted at random during a 60-frame job, which still completes with
every frame verified and paid exactly once and the ledger conserved.

The kills follow a seeded schedule of "after N frames have pixels" events (not wall-clock sleeps), so a failure can
be replayed: the seed is printed, and ``FRAMEHIVE_CHAOS_SEED=<seed>`` runs the same schedule again.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from functools import partial
from pathlib import Path

from framehive.addon.client import Client

from tests.e2e.test_failover import _assert_conserved, _books, _render_payments
from tests.farm import Farm, Proc, make_scene, wait_for

FRAMES = 60
KILLS = 4
# Two owners, neither trusted: every task of a new agent is checked by the other owner's agent, so the kills also
# land on verifiers holding checks.
AGENTS = {"a1": "owner-1", "a2": "owner-1", "b1": "owner-2"}


def _reached(user: Client, job_id: int, frames: int) -> bool:
    """At least ``frames`` frames of the job have pixels (rendered, or verified already)."""
    return sum(f["state"] in ("rendered", "verified") for f in user.job(job_id)["frame_states"]) >= frames


def test_a_60_frame_job_completes_while_agents_are_killed_and_restarted_at_random(farm: Farm, tmp_path: Path):
    seed = int(os.environ.get("FRAMEHIVE_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"chaos seed: {seed} (replay with FRAMEHIVE_CHAOS_SEED={seed})")
    rng = random.Random(seed)
    schedule = sorted(rng.sample(range(3, FRAMES - 6), KILLS))  # after this many frames have pixels
    victims = [rng.choice(sorted(AGENTS)) for _ in schedule]
    print(f"kills: {list(zip(schedule, victims, strict=True))}")

    scene = make_scene(tmp_path / "chaos.blend", frames=FRAMES, samples=1)
    tokens = {owner: farm.token("worker", owner) for owner in sorted(set(AGENTS.values()))}
    user = Client(farm.url, farm.token("user", "artist"))
    ledger = f"sqlite:///{farm.data_dir / 'framehive.sqlite3'}"
    started = time.monotonic()
    agents: dict[str, Proc] = {name: farm.start_worker(name, tokens[owner]) for name, owner in AGENTS.items()}
    before = _books(ledger)
    _assert_conserved(before)
    job = user.submit(scene, frames=f"1-{FRAMES}", chunk=3)
    try:
        for after, victim in zip(schedule, victims, strict=True):
            wait_for(partial(_reached, user, job["id"], after), 240, f"{after} frames with pixels")
            agents[victim].popen.send_signal(signal.SIGKILL)
            agents[victim].popen.wait(10)
            agents[victim].log.rename(agents[victim].log.with_suffix(f".killed-at-{after}.log"))
            agents[victim] = farm.start_worker(victim, tokens[AGENTS[victim]])  # same name, cache and token
        final = user.wait(job["id"], poll=0.2, timeout=300)
        print(f"chaos: {FRAMES} frames, {KILLS} kills, {time.monotonic() - started:.1f} s wall")

        assert final["state"] == "completed", final
        assert sorted(f["frame"] for f in final["frame_states"]) == list(range(1, FRAMES + 1))
        assert all(f["state"] == "verified" for f in final["frame_states"]), final["frame_states"]
        assert _render_payments(ledger, job["id"]) == Counter(range(1, FRAMES + 1)), "each frame paid exactly once"
        after_books = _books(ledger)
        _assert_conserved(after_books)
        assert after_books.get("mint") == before.get("mint"), "no points were issued by the kills"
        killed = sum(1 for path in farm.root.glob("worker-*.killed-at-*.log"))
        assert killed == KILLS, "every scheduled kill happened mid-job"
    except BaseException:
        print(f"chaos seed: {seed}")
        print(farm.logs())
        raise
