"""The spare Blender (task_runner.TaskRunner.keep_spares): started before work arrives, confined to an empty scene
folder of its own, it renders the next job's first order with that job's files laid into its folder; the job's
warm Blender serves the job's other orders, and a new spare is kept for the job after. Real TaskRunner, real
Blender, frames to a loopback HTTP server (tests/worker/test_render_limits.py's)."""

from __future__ import annotations

from pathlib import Path

from framehive.protocol import messages as m
from framehive.worker_agent.blender import RenderLimits
from framehive.worker_agent.task_runner import TaskRunner

from tests.worker.test_render_limits import Orders, run, sample_blend, uploads, wait_until  # noqa: F401 - fixtures

SPARE_TIMEOUT = 60.0


def spare_pid(runner: TaskRunner) -> int | None:
    spare = runner.spare
    return spare.process.pid if spare is not None and spare.process.alive else None


def test_a_spare_blender_started_before_any_order_renders_the_next_job_confined_to_its_own_folder(
        tmp_path: Path, sample_blend: Path, uploads: tuple[str, dict[str, bytes]]) -> None:  # noqa: F811
    base_url, received = uploads
    orders = Orders(tmp_path, sample_blend, base_url, RenderLimits())
    runner = orders.runner
    runner.spare_delay = 0.0  # a new spare as soon as an order is done (the agent waits SPARE_IDLE_DELAY)

    async def body() -> None:
        runner.keep_spares()
        await wait_until(lambda: spare_pid(runner) is not None, SPARE_TIMEOUT)
        spare = runner.spare
        assert spare is not None and spare.process.policy is not None
        first, folder = spare.process.pid, spare.tree
        assert list(folder.iterdir()) == [], "no scene in the spare's folder before an order"
        # Confined as a job's Blender is: it may read its own scene folder, not the agent's cache of scenes.
        assert str(folder) in spare.process.policy.read
        assert not any(Path(read).is_relative_to(orders.cache) and not Path(read).is_relative_to(folder)
                       for read in spare.process.policy.read), spare.process.policy.read

        await runner.run(orders.assign([1, 2]), orders.send)
        assert isinstance(orders.last(), m.TaskDone), orders.last()
        assert runner.process is not None and runner.process.pid == first, "the job was rendered by the spare"
        assert (folder / "shots" / "shot.blend").is_file(), "the job's tree was laid into the spare's folder"

        # Idle again: a new spare beside the job's warm Blender, which still serves the job's checks.
        await wait_until(lambda: spare_pid(runner) not in (None, first), SPARE_TIMEOUT)
        second = spare_pid(runner)
        await runner.verify(orders.verify(), orders.send)
        assert isinstance(orders.last(), m.CheckDone), orders.last()
        assert runner.process is not None and runner.process.pid == first

        # The next job takes the new spare; the first job's Blender and folder are gone.
        await runner.run(orders.assign([3], job_id=2), orders.send)
        assert isinstance(orders.last(), m.TaskDone), orders.last()
        assert runner.process is not None and runner.process.pid == second
        assert not folder.exists()

        await runner.close()
        assert runner.process is None and runner.spare is None

    run(body())
    assert len(received) == 4 and all(body.startswith(b"\x89PNG") for body in received.values())
