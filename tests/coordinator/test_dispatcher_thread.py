"""The dispatcher's own thread (dispatch.Dispatcher.start): a kick never waits for a pass.

Before it, the caller of a kick ran the pass (or waited on the dispatcher's lock for one): ``POST /jobs`` of 1,000
frames to 1,000 idle agents was answered after the pass that leased them all, 86 s (benchmarks/fleet.py, issue 16),
and every agent's message held its thread there. The passes here are held by the test, so "returned while the pass
runs" is a fact, not a timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from framehive.coordinator import dispatch
from framehive.coordinator.dispatch import Dispatcher, dispatcher

from tests.farm import wait_for

HELD = 30.0  # how long a test may hold a pass before it is a hang


class HeldPasses:
    """Stands in for the pass's work (``_dispatch_to_idle``): counts passes and holds each until released."""

    def __init__(self) -> None:
        self.started = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_next = False
        self.threads: set[str] = set()

    def __call__(self) -> None:
        self.started += 1
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        assert self.release.wait(HELD), "the test never released the pass"
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("a pass that fails")


@pytest.fixture
def held(app, monkeypatch) -> Iterator[tuple[Dispatcher, HeldPasses]]:  # type: ignore[no-untyped-def]
    passes = HeldPasses()
    with app.app_context():
        dispatcher_ = dispatcher()
        monkeypatch.setattr(dispatcher_, "_dispatch_to_idle", passes)
        dispatcher_.start(app)
    try:
        yield dispatcher_, passes
    finally:
        passes.release.set()
        dispatcher_.stop()


def kick_in_thread(app: Any) -> threading.Thread:
    def kick() -> None:
        with app.app_context():
            dispatcher().kick()

    thread = threading.Thread(target=kick, daemon=True)
    thread.start()
    return thread


def test_a_kick_returns_while_its_pass_is_still_running(app, held) -> None:  # type: ignore[no-untyped-def]
    dispatcher_, passes = held
    kicker = kick_in_thread(app)
    assert passes.entered.wait(HELD), "no pass ran after the kick"
    kicker.join(HELD)
    assert not kicker.is_alive(), "the kick waited for its pass"  # without the thread it runs the pass itself
    assert passes.threads == {"framehive-dispatcher"}
    assert not passes.release.is_set()


def test_kicks_during_a_pass_are_served_by_one_more_pass(app, held) -> None:  # type: ignore[no-untyped-def]
    _, passes = held
    kick_in_thread(app).join(HELD)
    assert passes.entered.wait(HELD)
    for _ in range(5):  # each came after the running pass began: one pass after it sees all their changes
        kick_in_thread(app).join(HELD)
    passes.release.set()
    wait_for(lambda: passes.started == 2, timeout=HELD, what="the pass after the first")
    with app.app_context():
        assert dispatcher()._passed == dispatcher()._requested == 6  # noqa: SLF001 - the numbering is the point
    assert passes.started == 2


def test_a_failed_pass_is_tried_again_without_a_new_kick(app, held, caplog) -> None:  # type: ignore[no-untyped-def]
    _, passes = held
    passes.fail_next = True
    passes.release.set()
    kick_in_thread(app).join(HELD)
    wait_for(lambda: passes.started == 2, timeout=dispatch.RETRY_AFTER + HELD, what="the pass tried again")
    assert "a dispatch pass failed; the next kick tries again" in caplog.text


def test_stop_ends_the_thread_between_passes(app, held) -> None:  # type: ignore[no-untyped-def]
    dispatcher_, passes = held
    passes.release.set()
    kick_in_thread(app).join(HELD)
    wait_for(lambda: passes.started == 1, timeout=HELD, what="the pass")
    dispatcher_.stop()
    assert not any(t.name == "framehive-dispatcher" for t in threading.enumerate())
