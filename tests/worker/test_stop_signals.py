"""Signals reach a real agent with and without ``loop.add_signal_handler`` (Windows' event loops lack it:
``loop_handlers=False`` is the code path Windows runs, here on Linux): SIGTERM and Ctrl-C (SIGINT) hand the task
back and end the agent; SIGUSR1 / SIGUSR2 pause and resume it on POSIX.

Real signals sent to this process, a real agent, a real WebSocket to a scripted coordinator.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from framehive.protocol import messages as m
from framehive.worker_agent import coordinator_urls as urls
from framehive.worker_agent import stop_signals
from framehive.worker_agent.connection import Agent
from framehive.worker_agent.owner_control import OwnerControl

from .hostile_coordinator import DEADLINE, hostile_coordinator, identity, until


class BlockingRunner:
    """Holds its task until cancelled (a render that takes a while)."""

    def __init__(self) -> None:
        self.worker_id = 0
        self.started = asyncio.Event()

    async def run(self, assign: m.Assign, send) -> None:  # type: ignore[no-untyped-def]
        self.started.set()
        await asyncio.Event().wait()

    def use_coordinator(self, base_url: str) -> None:
        pass  # it downloads and uploads nothing

    async def settle_uploads(self, timeout: float | None = None) -> None:
        pass  # no uploads here

    async def verify(self, order: m.Verify, send) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError("no checks here")

    async def discard_process(self) -> None:
        return None


def _assign() -> m.Assign:
    return m.Assign(task_id=4, attempt=1, job_id=2, frames=[1], scene={"sha256": "a" * 64, "size": 1,
                    "url": urls.blob_path("a" * 64)}, settings={}, upload_url=urls.upload_template(4, 1))


@pytest.mark.parametrize("loop_handlers", [True, False], ids=["add_signal_handler", "signal.signal (Windows)"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_hands_the_task_back_and_ends_the_agent(loop_handlers: bool, signum: int) -> None:
    said: list[m.Message] = []

    async def script(ws) -> None:  # type: ignore[no-untyped-def]
        await ws.recv()
        await ws.send(m.encode(m.Welcome(worker_id=7, heartbeat_interval=60, lease_timeout=120)))
        await ws.send(m.encode(_assign()))
        async for raw in ws:
            said.append(m.decode(raw))

    async def scenario() -> None:
        async with hostile_coordinator(script) as coordinator:
            runner = BlockingRunner()
            agent = Agent(coordinator.url, "token", identity(), runner)  # type: ignore[arg-type]
            restore = stop_signals.install(asyncio.get_running_loop(), agent.stop, loop_handlers=loop_handlers)
            try:
                running = asyncio.create_task(agent.run())
                await asyncio.wait_for(runner.started.wait(), DEADLINE)
                os.kill(os.getpid(), signum)
                await asyncio.wait_for(running, DEADLINE)  # the agent ended by itself
            finally:
                restore()
            await until(lambda: said, "the hand-back")
            assert said == [m.Handback(task_id=4, attempt=1)]

    before = signal.getsignal(signum)
    asyncio.run(scenario())
    assert signal.getsignal(signum) == before, "the previous handler is back"


@pytest.mark.parametrize("loop_handlers", [True, False], ids=["add_signal_handler", "signal.signal"])
def test_sigusr1_pauses_and_sigusr2_resumes_a_running_agent(loop_handlers: bool, tmp_path: Path) -> None:
    said: list[m.Message] = []

    async def script(ws) -> None:  # type: ignore[no-untyped-def]
        await ws.recv()
        await ws.send(m.encode(m.Welcome(worker_id=7, heartbeat_interval=60, lease_timeout=120)))
        async for raw in ws:
            said.append(m.decode(raw))

    async def scenario() -> None:
        async with hostile_coordinator(script) as coordinator:
            control = OwnerControl(tmp_path)
            agent = Agent(coordinator.url, "token", identity(), BlockingRunner(), control=control)  # type: ignore[arg-type]
            restore = stop_signals.install(asyncio.get_running_loop(), agent.stop,
                                           on_pause=lambda: control.pause("paused by SIGUSR1"),
                                           on_resume=control.resume,
                                           loop_handlers=loop_handlers)
            running = asyncio.create_task(agent.run())
            try:
                await until(lambda: agent.runner.worker_id == 7, "the welcome")
                os.kill(os.getpid(), signal.SIGUSR1)
                await until(lambda: m.Status(paused=True, reason="paused by SIGUSR1") in said, "paused")
                assert (tmp_path / "paused").is_file(), "the same pause as `framehive-worker pause`"
                os.kill(os.getpid(), signal.SIGUSR2)
                await until(lambda: m.Status(paused=False) in said, "resumed")
            finally:
                agent.stop()
                await asyncio.wait_for(running, DEADLINE)
                restore()

    asyncio.run(scenario())


def test_only_the_main_thread_installs_handlers() -> None:
    """An agent run in a thread (the tests' in-process agents) leaves the process's signals alone."""
    import threading

    installed: list[object] = []

    def in_thread() -> None:
        loop = asyncio.new_event_loop()
        try:
            installed.append(stop_signals.install(loop, lambda: None))
        finally:
            loop.close()

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(DEADLINE)
    assert installed and signal.getsignal(signal.SIGTERM) == before
