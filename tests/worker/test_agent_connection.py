"""The agent's message loop over a real WebSocket: work pushed right after a cancel is taken, not dropped.

The coordinator side is a small real ``websockets`` server in this test, so the exact order of messages is
under control (cancel, then the next assign in the same breath, as the real dispatcher does when a job is
cancelled). The runner is a recording stand-in: what is under test is the agent's bookkeeping, not Blender
(rendering through the real runner is covered by the e2e tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
import websockets
from framehive.protocol import PROTOCOL_VERSION
from framehive.protocol import messages as m
from framehive.worker_agent import coordinator_urls as urls
from framehive.worker_agent.connection import Agent, Identity

DEADLINE = 20.0


class RecordingRunner:
    """Blocks in each task until cancelled; a cancelled task takes until ``unwind`` is set to clean up."""

    def __init__(self) -> None:
        self.worker_id = 0
        self.started: list[int] = []
        self.unwound: list[int] = []
        self.unwind = asyncio.Event()
        self.release = asyncio.Event()  # lets a running task finish normally

    def use_coordinator(self, base_url: str) -> None:
        pass  # it downloads and uploads nothing

    async def settle_uploads(self, timeout: float | None = None) -> None:
        pass  # no uploads here

    async def run(self, assign: m.Assign, send) -> None:  # type: ignore[no-untyped-def]
        self.started.append(assign.task_id)
        assert all(t in self.unwound for t in self.started[:-1]), "started while the previous one was unwinding"
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            await self.unwind.wait()  # killing Blender takes a while
            self.unwound.append(assign.task_id)
            raise
        await send(m.TaskDone(task_id=assign.task_id, attempt=assign.attempt))

    async def verify(self, order: m.Verify, send) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError("no checks in this test")

    async def discard_process(self) -> None:
        return None


def _assign(task_id: int) -> m.Assign:
    return m.Assign(task_id=task_id, attempt=1, job_id=task_id, frames=[1], scene={"sha256": "0" * 64,
                    "size": 1, "url": urls.blob_path("0" * 64)}, settings={},
                    upload_url=urls.upload_template(task_id, 1))


@contextlib.asynccontextmanager
async def running_agent(coordinator, runner: RecordingRunner) -> AsyncIterator[Agent]:  # type: ignore[no-untyped-def]
    """A real WebSocket server running ``coordinator`` on a loopback port, and an agent connected to it."""
    async with websockets.serve(coordinator, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        agent = Agent(f"http://127.0.0.1:{port}", "token",
                      Identity(name="w", blender_version="5.0.1", device="CPU", devices=[], threads=1,
                               roles=["render"]), runner)  # type: ignore[arg-type]
        running = asyncio.create_task(agent.run())
        try:
            yield agent
        finally:
            agent.stop()
            await asyncio.wait_for(running, DEADLINE)


async def _until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("unwind_first", [False, True])
def test_work_pushed_right_after_a_cancel_is_taken(unwind_first: bool) -> None:
    async def scenario() -> None:
        runner = RecordingRunner()
        received: asyncio.Queue[m.Message] = asyncio.Queue()

        async def coordinator(ws) -> None:  # type: ignore[no-untyped-def]
            hello = m.decode(await ws.recv())
            assert isinstance(hello, m.Hello) and hello.protocol == PROTOCOL_VERSION
            await ws.send(m.encode(m.Welcome(worker_id=7, heartbeat_interval=60, lease_timeout=120)))
            await ws.send(m.encode(_assign(1)))
            await _until(lambda: runner.started == [1], "task 1 to start")
            if unwind_first:  # control: the cancelled task is gone before the next assign arrives
                runner.unwind.set()
                await ws.send(m.encode(m.Cancel(task_id=1, reason="job cancelled")))
                await _until(lambda: runner.unwound == [1], "task 1 to unwind")
                await ws.send(m.encode(_assign(2)))
            else:  # cancel and the next assign back to back, while task 1 is still unwinding
                await ws.send(m.encode(m.Cancel(task_id=1, reason="job cancelled")))
                await ws.send(m.encode(_assign(2)))
                # The agent has taken task 2 (it will start once task 1 has unwound); before the fix it was
                # still "busy" with the cancelled task 1 and dropped task 2 on the floor.
                await _until(lambda: agent.session is not None and isinstance(agent.session.held, m.Assign)
                             and agent.session.held.task_id == 2, "the agent to take task 2")
                assert runner.started == [1]
                runner.unwind.set()
            async for raw in ws:
                await received.put(m.decode(raw))

        async with running_agent(coordinator, runner) as agent:
            await _until(lambda: runner.started == [1, 2], "task 2 to start after task 1 unwound")
            assert runner.unwound == [1]
            runner.release.set()
            done = await asyncio.wait_for(received.get(), DEADLINE)
            assert done == m.TaskDone(task_id=2, attempt=1)

    asyncio.run(scenario())


def test_a_cancel_for_other_work_changes_nothing() -> None:
    async def scenario() -> None:
        runner = RecordingRunner()
        runner.unwind.set()
        got: list[dict] = []

        async def coordinator(ws) -> None:  # type: ignore[no-untyped-def]
            await ws.recv()
            await ws.send(m.encode(m.Welcome(worker_id=7, heartbeat_interval=60, lease_timeout=120)))
            await ws.send(m.encode(_assign(1)))
            await ws.send(m.encode(m.Cancel(task_id=99, reason="not yours")))
            await ws.send(m.encode(_assign(2)))  # the agent is busy with task 1: ignored
            await _until(lambda: runner.started == [1], "task 1")
            runner.release.set()
            async for raw in ws:
                got.append(json.loads(raw))

        async with running_agent(coordinator, runner):
            await _until(lambda: any(g.get("type") == "task_done" for g in got), "task 1 done")
            assert runner.started == [1] and runner.unwound == []
            assert [g["task_id"] for g in got if g["type"] == "task_done"] == [1]

    asyncio.run(scenario())


def test_a_malformed_message_from_the_coordinator_does_not_end_the_agent() -> None:
    async def scenario() -> None:
        runner = RecordingRunner()
        runner.release.set()
        got: list[dict] = []

        async def coordinator(ws) -> None:  # type: ignore[no-untyped-def]
            await ws.recv()
            await ws.send(m.encode(m.Welcome(worker_id=7, heartbeat_interval=60, lease_timeout=120)))
            await ws.send('{"type": "assign", "task_id": "not a number"}')
            await ws.send("not json at all")
            await ws.send(m.encode(_assign(3)))
            async for raw in ws:
                got.append(json.loads(raw))

        async with running_agent(coordinator, runner):
            await _until(lambda: any(g.get("type") == "task_done" for g in got), "task 3 done")
            assert runner.started == [3]

    asyncio.run(scenario())


def test_a_pause_lets_the_task_in_hand_finish_and_refuses_the_next(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Paused mid-task (``framehive-worker pause`` writes the file the agent polls): the task runs to its end, the
    coordinator hears ``status`` at once, and an order pushed meanwhile is given back, not run."""
    from framehive.worker_agent.owner_control import OwnerControl

    async def scenario() -> None:
        runner = RecordingRunner()
        got: list[m.Message] = []

        async def coordinator(ws) -> None:  # type: ignore[no-untyped-def]
            await ws.recv()
            await ws.send(m.encode(m.Welcome(worker_id=7, heartbeat_interval=60, lease_timeout=120)))
            await ws.send(m.encode(_assign(1)))
            async for raw in ws:
                got.append(m.decode(raw))
                if isinstance(got[-1], m.TaskDone):
                    await ws.send(m.encode(_assign(2)))  # as a coordinator that missed the status would

        control = OwnerControl(tmp_path)
        async with websockets.serve(coordinator, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            agent = Agent(f"http://127.0.0.1:{port}", "token", Identity(name="w", blender_version="5.0.1",
                          device="CPU", devices=[], threads=1, roles=["render"]), runner,  # type: ignore[arg-type]
                          control=control)
            running = asyncio.create_task(agent.run())
            try:
                await _until(lambda: runner.started == [1], "task 1 to start")
                control.pause("dinner")
                await _until(lambda: m.Status(paused=True, reason="dinner") in got, "the status")
                assert runner.unwound == [], "the task in hand goes on"
                runner.release.set()
                await _until(lambda: m.Handback(task_id=2, attempt=1) in got, "task 2 given back")
                assert runner.started == [1] and m.TaskDone(task_id=1, attempt=1) in got
            finally:
                agent.stop()
                await asyncio.wait_for(running, DEADLINE)

    asyncio.run(scenario())


@pytest.mark.parametrize("answer", ["not json at all", '{"type": "welcome", "worker_id": "seven"}'])
def test_a_malformed_answer_to_hello_is_fatal_and_says_so(answer: str) -> None:
    """A coordinator that answers hello with garbage cannot be worked with: the agent stops with a FatalError that
    says a welcome was expected (the CLI prints it), as for any other answer but a welcome (it used to end with the
    decoder's bare ValueError)."""
    from framehive.worker_agent.connection import FatalError

    async def scenario() -> None:
        async def coordinator(ws) -> None:  # type: ignore[no-untyped-def]
            await ws.recv()
            await ws.send(answer)
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.recv()

        async with websockets.serve(coordinator, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            agent = Agent(f"http://127.0.0.1:{port}", "token", Identity(name="w", blender_version="5.0.1",
                          device="CPU", devices=[], threads=1, roles=["render"]), RecordingRunner())  # type: ignore[arg-type]
            with pytest.raises(FatalError, match="expected welcome, got a malformed message"):
                await asyncio.wait_for(agent.run(), DEADLINE)

    asyncio.run(scenario())


class SendsWhenCancelled(RecordingRunner):
    """Work whose cancel comes too late: it reports its failure to the connection, which is already gone (as a task
    whose upload to a killed coordinator failed before the agent saw the connection drop)."""

    async def run(self, assign: m.Assign, send) -> None:  # type: ignore[no-untyped-def]
        self.started.append(assign.task_id)
        try:
            await self.release.wait()
        finally:
            await send(m.TaskFailed(task_id=assign.task_id, attempt=assign.attempt, error="upload failed"))


def test_work_that_fails_on_the_lost_connection_does_not_end_the_agent() -> None:
    """The coordinator goes away mid-task and the abandoned work's last send raises ConnectionClosed: the agent
    reconnects (it used to re-raise the work's error from its clean-up of the lost connection, and the process
    died instead of reconnecting)."""
    async def scenario() -> None:
        runner = SendsWhenCancelled()
        hellos: list[m.Message] = []

        async def coordinator(ws) -> None:  # type: ignore[no-untyped-def]
            hellos.append(m.decode(await ws.recv()))
            await ws.send(m.encode(m.Welcome(worker_id=7, heartbeat_interval=60, lease_timeout=120)))
            if len(hellos) == 1:
                await ws.send(m.encode(_assign(1)))
                await _until(lambda: runner.started == [1], "task 1 to start")
                return  # the connection closes with the task in hand
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.recv()

        async with websockets.serve(coordinator, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            agent = Agent(f"http://127.0.0.1:{port}", "token", Identity(name="w", blender_version="5.0.1",
                          device="CPU", devices=[], threads=1, roles=["render"]), runner)  # type: ignore[arg-type]
            running = asyncio.create_task(agent.run())
            try:
                await _until(lambda: len(hellos) == 2 or running.done(), "the agent to reconnect")
                assert not running.done(), f"the agent ended instead of reconnecting: {running.exception()!r}"
            finally:
                agent.stop()
                await asyncio.wait_for(asyncio.wait({running}), DEADLINE)
            second = hellos[1]
            assert isinstance(second, m.Hello) and (second.dropped_task_id, second.dropped_attempt) == (1, 1)

    asyncio.run(scenario())
