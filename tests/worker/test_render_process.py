"""The warm render runner driven through RenderProcess, with real Blender (the bpy module)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from framehive.worker_agent.blender import (
    RUNNER_PATH,
    BlenderLauncher,
    BlenderNotFound,
    RenderError,
    RenderProcess,
    probe,
)
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TEST_TIMEOUT = 60.0  # upper bound for one asyncio.run() here; the whole module takes a few seconds
BPY_VERSION = importlib.metadata.version("bpy")  # the Blender this Python runs (5.0.1 on 3.11, 5.3.0 on 3.13)
SLOW_RENDER = {"resolution_x": 640, "resolution_y": 360, "samples": 4096}  # many seconds: room to kill it



def run(coro):
    """Run one async test body with a hard deadline, so a hung Blender fails the test instead of the suite."""
    return asyncio.run(asyncio.wait_for(coro, TEST_TIMEOUT))


async def wait_until(predicate, timeout: float, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        await asyncio.sleep(interval)


def is_sampling(process: RenderProcess) -> bool:
    """True once Cycles reports its first sample (the runner copies render stats into the log)."""
    return "framehive: " in process.log_tail(3) and "| Sample " in process.log_tail(3)


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def sample_scene(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scene") / "sample.blend"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_scene.py"), str(out)], check=True,
                   capture_output=True, timeout=TEST_TIMEOUT)
    return out


# ------------------------------------------------------------------------------------------ discovery


def test_discover_without_a_path_uses_the_bpy_module_when_importable():
    launcher = BlenderLauncher.discover(None)
    assert launcher.kind == "module"
    assert launcher.argv == [sys.executable, "-P", str(RUNNER_PATH)]


def test_discover_refuses_a_path_that_is_not_an_executable(tmp_path):
    plain = tmp_path / "blender"
    plain.write_text("not a program")
    for path in (plain, tmp_path / "missing" / "blender"):
        with pytest.raises(BlenderNotFound, match="--blender PATH"):
            BlenderLauncher.discover(str(path))


def test_discover_explains_how_to_fix_a_missing_blender(monkeypatch, tmp_path):
    # Stand-ins for a machine without bpy and without blender on PATH.
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BlenderNotFound) as caught:
        BlenderLauncher.discover(None)
    assert re.search(r"pip install '\S+\[blender\]'", str(caught.value)), str(caught.value)
    assert "--blender PATH" in str(caught.value)


def fake_blender(tmp_path: Path) -> Path:
    """A stand-in ``blender`` binary (none is installed here): chatters on stdout like Blender does, leaves
    a half line, then runs the script given to ``--python`` in this bpy-enabled Python."""
    script = tmp_path / "blender"
    script.write_text(
        "#!/bin/sh\n"
        'printf "Blender 9.9.9 (fake)\\nRead prefs: none\\nhalf a line, no newline: "\n'
        'while [ "$1" != "--python" ]; do shift; done\n'
        f'exec "{sys.executable}" -P "$2"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_binary_launcher_flags(tmp_path):
    launcher = BlenderLauncher.discover(str(fake_blender(tmp_path)))
    assert launcher.kind == "binary"
    argv = launcher.argv
    assert argv[0] == str((tmp_path / "blender").resolve())
    for flag in ("-b", "-Y", "--factory-startup", "--offline-mode"):
        assert flag in argv
    assert argv[argv.index("--python-exit-code") + 1] == "1"
    assert argv[argv.index("--python") + 1] == str(RUNNER_PATH)
    assert argv[-1] == "--"
    # Held to 2 threads: Blender's own -t before the script, and the runner told as well.
    held = launcher.command(2)
    assert held[held.index("-t") + 1] == "2" and held.index("-t") < held.index("--python")
    assert held[held.index("--") + 1:] == ["--threads", "2"]
    assert launcher.command(None) == argv


def test_probe_through_a_binary_launcher_ignores_blender_chatter(tmp_path):
    info = run(probe(BlenderLauncher.discover(str(fake_blender(tmp_path)))))
    assert info["blender_version"] == BPY_VERSION  # the runner's Blender, not the chatter's "9.9.9 (fake)"
    assert {"backend": "CPU"}.items() <= info["devices"][-1].items()


# ------------------------------------------------------------------------------------------ runner


def test_protocol_stream_carries_only_events_and_eof_ends_the_runner(sample_scene, tmp_path):
    commands = [
        {"cmd": "open", "path": str(sample_scene), "device": "CPU", "threads": 1, "settings": {}},
        {"cmd": "render", "frame": 2, "output": str(tmp_path / "f.png")},
    ]
    stdin = "".join(json.dumps(command) + "\n" for command in commands) + "not json\n"
    done = subprocess.run([sys.executable, "-P", str(RUNNER_PATH)], input=stdin.encode(),
                          capture_output=True, timeout=TEST_TIMEOUT)  # stdin then closes: EOF
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    lines = done.stdout.decode().splitlines()
    assert all(line.startswith("@@FH ") for line in lines), lines
    events = [json.loads(line[5:])["event"] for line in lines]
    assert events == ["ready", "opened", "rendered", "error"]
    assert b"Saved:" in done.stderr  # Blender's own chatter went to stderr


def test_open_and_render_two_frames(sample_scene, tmp_path):
    async def body():
        async with RenderProcess(BlenderLauncher.discover(None)) as process:
            assert process.ready_info["blender_version"] == BPY_VERSION
            opened = await process.open(sample_scene, device="CPU", threads=2)
            assert opened == {
                "event": "opened", "scene": "Scene", "engine": "CYCLES", "frame_start": 1, "frame_end": 12,
                "resolution": [64, 36], "device": "CPU", "autoexec_blocked": False, "muted_outputs": [],
                "disabled": [], "denoised": False,
            }
            first = await process.render(1, tmp_path / "0001.png")
            second = await process.render(7, tmp_path / "0007.png")
            return first, second

    first, second = run(body())
    assert first["path"] == str(tmp_path / "0001.png") and first["frame"] == 1 and first["seconds"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0001.png", "0007.png"]  # exact names, no leftovers
    with Image.open(tmp_path / "0001.png") as image:
        assert image.size == (64, 36)
        assert image.mode == "RGB"
    assert not np.array_equal(pixels(tmp_path / "0001.png"), pixels(tmp_path / "0007.png"))


def thread_cpu_ticks(pid: int) -> list[int]:
    """User + system CPU ticks of each live thread of process ``pid``, busiest first (Linux /proc)."""
    ticks = []
    for thread in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{thread}/stat") as stat_file:
            fields = stat_file.read().rsplit(")", 1)[1].split()
        ticks.append(int(fields[11]) + int(fields[12]))
    return sorted(ticks, reverse=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads per-thread CPU time from /proc")
def test_a_runner_given_one_thread_uses_one(sample_scene, tmp_path):
    # Blender's thread pool (oneTBB) is as large as the machine: with one render thread of two CPUs, the pool's
    # other thread spun beside the render (sched_yield), as much CPU again as the render. Held to one thread,
    # the renders' CPU is all in one thread.
    assert len(os.sched_getaffinity(0)) >= 2, "needs a machine of 2 CPUs or more, where the pool would be larger"
    launcher = BlenderLauncher.discover(None)
    assert launcher.command(1) == [*launcher.argv, "--threads", "1"]

    async def body():
        async with RenderProcess(launcher, threads=1) as process:
            await process.open(sample_scene, threads=1, settings={"resolution_x": 256, "resolution_y": 144})
            for frame in (1, 2, 3):
                await process.render(frame, tmp_path / f"{frame}.png")
            assert process.pid is not None
            return thread_cpu_ticks(process.pid), thread_cpus(process.pid)

    ticks, cpus = run(body())
    assert ticks[0] > 10, ticks  # the renders' thread: 3 frames are tenths of a second of CPU
    assert sum(ticks[1:]) <= ticks[0] // 10, f"other threads used CPU beside the render: {ticks}"
    # The pool is held to one thread by importing bpy on one CPU; no thread stays on that CPU after (the threads
    # started during the import inherited it, and oneTBB starts its own on the CPUs it saw then).
    assert cpus and all(allowed == os.sched_getaffinity(0) for allowed in cpus), cpus


def thread_cpus(pid: int) -> list[set[int]]:
    """The CPUs each live thread of process ``pid`` may run on (Linux /proc)."""
    cpus = []
    for thread in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{thread}/status") as status:
            listed = next(line for line in status if line.startswith("Cpus_allowed_list:")).split(":")[1].strip()
        allowed: set[int] = set()
        for part in listed.split(","):
            low, _, high = part.partition("-")
            allowed.update(range(int(low), int(high or low) + 1))
        cpus.append(allowed)
    return cpus


def test_same_frame_twice_gives_identical_pixels(sample_scene, tmp_path):
    async def body():
        async with RenderProcess(BlenderLauncher.discover(None)) as process:
            await process.open(sample_scene, settings={"seed": 3, "samples": 4})
            await process.render(5, tmp_path / "a.png")
            await process.render(5, tmp_path / "b.png")

    run(body())
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))


def test_errors_leave_the_process_usable(sample_scene, tmp_path):
    async def expect_error(action, match: str) -> RenderError:
        with pytest.raises(RenderError, match=match) as caught:
            await action
        return caught.value

    async def body():
        async with RenderProcess(BlenderLauncher.discover(None)) as process:
            await expect_error(process.render(1, tmp_path / "x.png"), "no scene is open")
            await expect_error(process.open(tmp_path / "missing.blend"), "no such file")
            error = await expect_error(process.open(sample_scene, settings={"tiles": 4}), "unknown settings: tiles")
            assert error.command == "open"
            await expect_error(process.open(sample_scene, settings={"samples": "many"}), "expected an integer")
            await expect_error(process.open(sample_scene, threads=0), "threads must be at least 1")
            await expect_error(process.open(sample_scene, device="vulkan"), "unknown device 'VULKAN'")
            # This machine has no GPU: the GPU branch must refuse rather than fall back to the CPU silently.
            await expect_error(process.open(sample_scene, device="CUDA"), "CUDA")
            await process.open(sample_scene)
            await expect_error(process.render(1, tmp_path / "no-such-dir" / "x.png"), "does not exist")
            assert process.alive
            await process.render(1, tmp_path / "ok.png")
            await process.close()
            assert process.returncode == 0

    run(body())
    assert (tmp_path / "ok.png").is_file()


def test_job_settings_override_the_scene(sample_scene, tmp_path):
    async def body():
        async with RenderProcess(BlenderLauncher.discover(None)) as process:
            opened = await process.open(sample_scene, settings={
                "resolution_x": 40, "resolution_y": 30, "resolution_percentage": 50, "frame_start": 3,
                "frame_end": 4, "pixel_filter_type": "BOX", "dither_intensity": 0.0})
            await process.render(3, tmp_path / "small.png")
            return opened

    opened = run(body())
    assert opened["resolution"] == [20, 15]
    assert (opened["frame_start"], opened["frame_end"]) == (3, 4)
    with Image.open(tmp_path / "small.png") as image:
        assert image.size == (20, 15)


def test_killing_blender_mid_render_raises_render_error(sample_scene, tmp_path):
    async def body():
        process = RenderProcess(BlenderLauncher.discover(None))
        await process.start()
        try:
            await process.open(sample_scene, settings=SLOW_RENDER)
            render = asyncio.create_task(process.render(1, tmp_path / "slow.png"))
            await wait_until(lambda: is_sampling(process), timeout=20)
            process.kill()
            with pytest.raises(RenderError, match="exited with code") as caught:
                await render
            assert not process.alive
            assert "Sample" in caught.value.log_tail
            with pytest.raises(RenderError, match="not running"):
                await process.render(2, tmp_path / "after.png")
        finally:
            await process.close()
        return process.returncode

    assert run(body()) == -9
    assert not (tmp_path / "slow.png").exists()


def test_close_kills_a_busy_process_promptly(sample_scene, tmp_path):
    async def body():
        process = RenderProcess(BlenderLauncher.discover(None))
        await process.start()
        try:
            await process.open(sample_scene, settings=SLOW_RENDER)
            render = asyncio.create_task(process.render(1, tmp_path / "slow.png"))
            await wait_until(lambda: is_sampling(process), timeout=20)
            started = time.monotonic()
            await process.close()
            with pytest.raises(RenderError):
                await render
            return time.monotonic() - started
        finally:
            process.kill()
            await process.close()

    assert run(body()) < 5.0
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".png")]


# Stands in for an agent that dies without closing its runner: starts one on a slow frame, then vanishes.
DYING_AGENT = """
import json, os, subprocess, sys
runner = subprocess.Popen([sys.executable, "-P", sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, start_new_session=True)
def ask(command):
    runner.stdin.write((json.dumps(command) + "\\n").encode())
    runner.stdin.flush()
runner.stdout.readline()  # ready
ask({"cmd": "open", "path": sys.argv[2], "settings": json.loads(sys.argv[3])})
runner.stdout.readline()  # opened
ask({"cmd": "render", "frame": 1, "output": sys.argv[4]})
print(runner.pid, flush=True)
os._exit(0)
"""


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its new parent to reap it counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_runner_exits_when_its_agent_dies(sample_scene, tmp_path):
    done = subprocess.run([sys.executable, "-c", DYING_AGENT, str(RUNNER_PATH), str(sample_scene),
                           json.dumps(SLOW_RENDER), str(tmp_path / "slow.png")],
                          capture_output=True, check=True, timeout=TEST_TIMEOUT)
    orphan = int(done.stdout)
    try:
        run(wait_until(lambda: process_gone(orphan), timeout=10))
    finally:
        if not process_gone(orphan):
            os.kill(orphan, 9)
