"""Per-job overhead: a 2-worker farm against one local Blender rendering the same frames (issue 16 point 3).

Run from the repository root::

    .venv/bin/python -m benchmarks.job_overhead --repeats 3 --json /tmp/job_overhead.json
        [--sizes 384x216,96x54] [--frames 16] [--samples 8]

**Farm.** A real coordinator process on a loopback port (tests/farm.py; SQLite, settings as shipped) and, for every
farm run, two fresh real worker agents (``framehive-worker`` with the bpy module, ``--threads 1`` each) of two
owners, neither trusted: new agents, so every task is checked by the other owner's agent (adaptive policy: a region
check per task plus spot checks), exactly as for a network's newcomers. Fresh agents each run, so later runs are
not checked less because the agents have earned trust. The agents are online and idle, their spare
Blenders started, and no check of an earlier job is open (an audit may outlive its job), before the clock starts.
The artist's side is the real client: ``addon.submission.Submission`` packs the scene (blender-asset-tracer),
uploads what the coordinator lacks and creates the job (``framehive submit``'s path), ``Client.wait`` polls the job
once a second until it is over (``--wait``), ``Client.download_job`` brings every verified frame home. Measured:
from the start of the submission to the last frame on disk.

**Local.** The same frames of the same scene rendered by the same Blender (the bpy module of this venv) in one
process, ``threads`` on AUTO (both cores), from starting Python to its exit: what ``blender -b scene.blend -a``
costs the artist.

Before the runs, one job of the first size runs on the coordinator and is not counted: a coordinator that has served
jobs before, as a network's has (the first job after a start pays for compiling the coordinator's SQL statements and
loading its image code, half a second or more). Every run uses a scene of its own (the frame range of the .blend
differs, so its bytes do), so each farm run uploads its scene and each agent downloads it, as for a new job. Farm and
local runs alternate, in an order that flips every repeat, so a burst of load from elsewhere lands on both alike; the
ratio is of the medians.

**Stages** of a farm run, on one clock (the coordinator runs on this machine and stamps with ``time.time()``):
pack, upload, create (``POST /jobs``), submit → first frame uploaded (dispatch, the scene's download, Blender's
start and the scene's open, the first frame's render and upload), the rendering span (first to last frame
uploaded), last upload → job complete (the last checks and their judgement), complete → the client notices (its
one-second poll), download. The database rows of the coordinator give the frames' ``rendered_at`` and
``verified_at``, the checks' ``created_at``/``decided_at``; each agent's log gives when it finished each frame and
check.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import queue
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from framehive.addon.client import Client
from framehive.addon.submission import Options, Submission

from tests.farm import Farm, Proc, make_scene, wait_for
from tests.live import mint_tokens

ONLINE_TIMEOUT = 90.0
JOB_TIMEOUT = 600.0

# The local render: open the scene as an artist's Blender would, render each frame to a PNG, say how long the
# renders took (one JSON line on stdout).
LOCAL_SCRIPT = """
import json, sys, time
import bpy
scene_path, out_dir, last = sys.argv[1], sys.argv[2], int(sys.argv[3])
opened = time.time()
bpy.ops.wm.open_mainfile(filepath=scene_path, load_ui=False, use_scripts=False)
scene = bpy.context.scene
scene.render.threads_mode = "AUTO"
renders = []
started = time.time()
for frame in range(1, last + 1):
    t = time.perf_counter()
    scene.frame_set(frame)
    scene.render.filepath = f"{out_dir}/frame_{frame:04d}.png"
    bpy.ops.render.render(write_still=True)
    renders.append(time.perf_counter() - t)
print("@@LOCAL " + json.dumps({"open_s": started - opened, "renders": renders, "imported_at": opened}))
"""


def size_of(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def local_run(scene: Path, frames: int, out: Path) -> dict[str, Any]:
    """Render frames 1..``frames`` of ``scene`` in one fresh Python with bpy; seconds from spawn to exit."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    done = subprocess.run([sys.executable, "-c", LOCAL_SCRIPT, str(scene), str(out), str(frames)],
                          capture_output=True, text=True, timeout=JOB_TIMEOUT)
    wall = time.time() - start
    if done.returncode != 0:
        raise RuntimeError(f"local render failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    said = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("@@LOCAL "))[8:])
    written = sorted(out.glob("frame_*.png"))
    assert len(written) == frames, written
    return {"wall_s": wall, "start_s": said["imported_at"] - start, "open_s": said["open_s"],
            "render_s": sum(said["renders"]), "render_per_frame_s": statistics.median(said["renders"])}


def submit(client: Client, scene: Path, frames: int, workdir: Path) -> tuple[dict[str, Any], dict[str, float]]:
    """The artist's submission (pack, upload, create), each update stamped as it arrives; returns the job and the
    times at which packing ended and the upload ended."""
    options = Options(frames=f"1-{frames}", chunk=None, priority=None, policy=None, name=scene.stem)
    submission = Submission(client, scene, workdir, options)
    stamps: dict[str, float] = {}
    submission.start()
    while True:
        try:
            update = submission.updates.get(timeout=JOB_TIMEOUT)
        except queue.Empty:
            raise RuntimeError("the submission said nothing for too long") from None
        now = time.time()
        if update.kind == "status" and update.text.startswith("checking which"):
            stamps["packed"] = now
        elif update.kind == "progress":
            stamps["uploaded"] = now
        elif update.kind == "error":
            raise RuntimeError(f"submission failed: {update.text}")
        elif update.kind == "done":
            assert update.job is not None
            stamps["created"] = now
            stamps.setdefault("uploaded", stamps["packed"])  # nothing to upload (never here: new scenes)
            return update.job, stamps


def online(admin: Client, names: set[str]) -> bool:
    seen = {w["name"] for w in admin.workers() if w.get("online")}
    return names <= seen


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ \[[^]]+\] (.*)$")


def agent_events(proc: Proc) -> list[tuple[float, str]]:
    """(time, message) of every line the agent logged."""
    events = []
    for line in proc.log_text().splitlines():
        match = LOG_TIME.match(line)
        if match:
            stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            events.append((stamp, match.group(2)))
    return events


def spare_ready(agent: Proc) -> bool:
    """Whether ``agent`` logged a spare Blender ready after its last task or check (or did none)."""
    events = agent_events(agent)
    ready = [t for t, text in events if "spare Blender is ready" in text]
    work = [t for t, text in events if text.startswith(("task ", "check "))]
    return bool(ready) and (not work or ready[-1] > work[-1])


def coordinator_db(farm: Farm) -> sqlite3.Connection:
    """The coordinator's SQLite database, read only."""
    return sqlite3.connect(f"file:{farm.data_dir / 'framehive.sqlite3'}?mode=ro", uri=True, timeout=30)


def open_checks(farm: Farm) -> int:
    """Checks queued or leased on the coordinator, of any job."""
    with coordinator_db(farm) as db:
        return db.execute("select count(*) from \"check\" where state in ('queued', 'leased')").fetchone()[0]


def job_rows(farm: Farm, job_id: int) -> dict[str, Any]:
    """The job's own timestamps, its frames' and its checks', read from the coordinator's SQLite."""
    with coordinator_db(farm) as db:
        job = db.execute("select created_at, started_at, finished_at, state from job where id = ?",
                         (job_id,)).fetchone()
        frames = db.execute("select number, rendered_at, verified_at, worker_id from frame where job_id = ?",
                            (job_id,)).fetchall()
        checks = db.execute("select kind, created_at, decided_at, state from \"check\" where job_id = ?",
                            (job_id,)).fetchall()
        tasks = db.execute("select count(*) from task where job_id = ?", (job_id,)).fetchone()[0]
    return {"job": job, "frames": frames, "checks": checks, "tasks": tasks}


def farm_run(farm: Farm, tokens: dict[str, str], scene: Path, frames: int, run: str,
             root: Path) -> dict[str, Any]:
    """One job on two fresh agents of two owners; the stage breakdown."""
    owners = mint_tokens(farm, trusted_workers=False, one=("worker", f"owner-1-{run}"),
                         two=("worker", f"owner-2-{run}"))
    admin = Client(farm.url, tokens["root"])
    artist = Client(farm.url, tokens["artist"])
    names = {f"a-{run}", f"b-{run}"}
    agents = [farm.start_worker(f"a-{run}", owners["one"]), farm.start_worker(f"b-{run}", owners["two"])]
    try:
        wait_for(lambda: online(admin, names), ONLINE_TIMEOUT, f"agents {sorted(names)} online")
        # and their spare Blenders started, as an agent online for a while has it (packing took 1 s until
        # 2026-12-07 and so hid the spares' start in the first job's time)
        wait_for(lambda: all(any("spare Blender is ready" in text for _, text in agent_events(agent))
                             for agent in agents), ONLINE_TIMEOUT, "the agents' spare Blenders")
        # and nothing of an earlier job left: a job's audit may still be open when the job is over (an audit does
        # not hold its job), and new agents took it before the next job's first task, its scene opened in their
        # spare (0.4-1 s more to the first frame, measured 2026-12-07). Then a spare ready again after that work.
        wait_for(lambda: open_checks(farm) == 0, JOB_TIMEOUT, "the earlier jobs' open checks")
        wait_for(lambda: all(spare_ready(agent) for agent in agents), ONLINE_TIMEOUT, "spare Blenders after work")
        out = root / f"frames-{run}"
        t0 = time.time()
        job, stamps = submit(artist, scene, frames, root / f"submit-{run}")
        final = artist.wait(job["id"], timeout=JOB_TIMEOUT)
        over = time.time()
        if final["state"] != "completed":
            raise RuntimeError(f"job {job['id']} ended {final['state']}: {json.dumps(final)[:2000]}")
        paths = artist.download_job(job["id"], out)
        done = time.time()
        assert len(paths) == frames and all(p.is_file() for p in paths), paths
    finally:
        for agent in agents:
            agent.stop()
    rows = job_rows(farm, job["id"])
    created, started, finished, _state = rows["job"]
    rendered = sorted(r[1] for r in rows["frames"])
    verified = sorted(r[2] for r in rows["frames"])
    by_kind: dict[str, int] = {}
    for kind, *_rest in rows["checks"]:
        by_kind[kind] = by_kind.get(kind, 0) + 1
    per_agent_first = {}
    for agent in agents:
        frame_times = [t for t, text in agent_events(agent) if "rendered and uploaded" in text and "frame" in text
                       and text.startswith("task ")]
        if frame_times:
            per_agent_first[agent.name] = min(frame_times) - stamps["created"]
    check_spans = [decided - made for _kind, made, decided, _state in rows["checks"] if decided is not None]
    return {
        "job": job["id"], "tasks": rows["tasks"], "checks": by_kind, "wall_s": done - t0,
        "stages": {
            "pack_s": stamps["packed"] - t0,
            "upload_s": stamps["uploaded"] - stamps["packed"],
            "create_s": stamps["created"] - stamps["uploaded"],
            "to_first_frame_s": rendered[0] - stamps["created"],
            "render_span_s": rendered[-1] - rendered[0],
            "last_frame_to_complete_s": finished - rendered[-1],
            "client_notices_s": over - finished,
            "download_s": done - over,
        },
        "agents_first_frame_s": per_agent_first,
        "first_verified_s": verified[0] - stamps["created"],
        "check_open_to_decided_s_median": statistics.median(check_spans) if check_spans else None,
        "queued_s": (started - created) if started else None,
    }


def median_of(runs: list[dict[str, Any]], *path: str) -> float:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        values.append(value)
    return statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="384x216,96x54", help="frame sizes, WxH, comma separated")
    parser.add_argument("--frames", type=int, default=16, help="frames per job (default: 16)")
    parser.add_argument("--samples", type=int, default=8, help="Cycles samples of the scene (default: 8)")
    parser.add_argument("--repeats", type=int, default=3, help="farm and local runs per size (default: 3)")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, frames)")
    args = parser.parse_args(argv)

    sizes = [size_of(s) for s in args.sizes.split(",") if s.strip()]
    root = Path(tempfile.mkdtemp(prefix="framehive-job-overhead-"))
    farm = Farm(root / "farm")
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.job_overhead", *(argv or sys.argv[1:])]),
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "frames": args.frames, "samples": args.samples, "sizes": {},
    }
    loads = [os.getloadavg()[0]]
    started = time.time()
    try:
        farm.start_coordinator()
        # Points for every run's job (the starting grant applies when the artist's account is made).
        tokens = mint_tokens(farm, {"FRAMEHIVE_STARTING_GRANT": 10**7}, trusted_workers=False,
                             artist=("user", "artist"), root=("admin", "root"))
        # One job first, not measured: a coordinator that has served jobs (a network's runs for days). A new one
        # compiles each of its ~250 SQL statements on first use and loads its image code, half a second or more
        # of the first job's time that no later job pays.
        width, height = sizes[0]
        warm_scene = make_scene(root / "scenes" / "warm-up" / "warm-up.blend", frames=args.frames, width=width,
                                height=height, samples=args.samples)
        warm = farm_run(farm, tokens, warm_scene, args.frames, "warm-up", root)
        print(f"warm-up job: {warm['wall_s']:.2f} s (not counted)", file=sys.stderr, flush=True)
        results["warm_up_s"] = warm["wall_s"]
        for width, height in sizes:
            label = f"{width}x{height}"
            farm_runs: list[dict[str, Any]] = []
            local_runs: list[dict[str, Any]] = []
            for repeat in range(args.repeats):
                run = f"{label}-{repeat}"
                # frames + repeat in the .blend: a scene of its own each run (its bytes differ), same frames rendered
                scene = make_scene(root / "scenes" / run / f"shot-{run}.blend", frames=args.frames + repeat + 1,
                                   width=width, height=height, samples=args.samples)
                order = ("farm", "local") if repeat % 2 == 0 else ("local", "farm")
                for what in order:
                    if what == "farm":
                        farm_runs.append(farm_run(farm, tokens, scene, args.frames, run, root))
                    else:
                        local_runs.append(local_run(scene, args.frames, root / f"local-{run}"))
                    loads.append(os.getloadavg()[0])
                    latest = (farm_runs if what == "farm" else local_runs)[-1]
                    if args.json:  # every run as it ends: a run that fails later loses nothing
                        results["partial"] = {**results.get("partial", {}), label: {"farm": farm_runs,
                                                                                    "local": local_runs}}
                        args.json.write_text(json.dumps(results, indent=2))
                    print(f"{label} repeat {repeat} {what}: {latest['wall_s']:.2f} s", file=sys.stderr, flush=True)
            farm_median = median_of(farm_runs, "wall_s")
            local_median = median_of(local_runs, "wall_s")
            results["sizes"][label] = {
                "farm_s": farm_median, "local_s": local_median, "ratio": farm_median / local_median,
                "ratio_per_repeat": [f["wall_s"] / loc["wall_s"] for f, loc in zip(farm_runs, local_runs, strict=True)],
                "stages_median_s": {stage: median_of(farm_runs, "stages", stage)
                                    for stage in farm_runs[0]["stages"]},
                "local_median_s": {key: median_of(local_runs, key) for key in local_runs[0]},
                "farm_runs": farm_runs, "local_runs": local_runs,
            }
    except BaseException:
        print(farm.logs(), file=sys.stderr)
        raise
    finally:
        farm.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    results["load_1min"] = {"min": min(loads), "max": max(loads)}
    results["wall_s"] = time.time() - started
    text = json.dumps(results, indent=2)
    if args.json:
        args.json.write_text(text)
    summary = {label: {key: (round(value, 3) if isinstance(value, float) else value) for key, value in size.items()
                       if key in ("farm_s", "local_s", "ratio")} | {
                           "stages": {k: round(v, 3) for k, v in size["stages_median_s"].items()},
                           "local": {k: round(v, 3) for k, v in size["local_median_s"].items()}}
               for label, size in results["sizes"].items()}
    print(json.dumps({"date": results["date"], "load_1min": results["load_1min"], "wall_s": round(results["wall_s"]),
                      **summary}, indent=2))
    if args.keep:
        print(f"kept {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
