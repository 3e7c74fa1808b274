"""The demo behind ./scripts/demo: a whole render job on a local farm, end to end, with real Blender.

Starts a coordinator on loopback, creates tokens for an artist and two GPU owners, starts two worker
agents, generates the sample scene, submits it with the `framehive` CLI (live progress), downloads the
frames to ./framehive-output/<job>/, prints a summary and stops everything it started.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from framehive.addon.client import Client  # noqa: E402

from tests.farm import Farm, make_scene, wait_for  # noqa: E402  (the same local farm the tests use)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=12)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="framehive-demo-"))
    farm = Farm(root)
    started = time.monotonic()
    try:
        return run(farm, root, args)
    except Exception as exc:
        print(f"\ndemo failed: {exc}\n\n{farm.logs()}", file=sys.stderr)
        return 1
    finally:
        farm.stop()
        print(f"stopped the coordinator and workers ({time.monotonic() - started:.1f} s in all); "
              f"logs are in {root}", file=sys.stderr)


def run(farm: Farm, root: Path, args: argparse.Namespace) -> int:
    say("starting a coordinator on loopback")
    url = farm.start_coordinator()
    artist = farm.token("user", "artist")
    say(f"coordinator at {url}; starting 2 worker agents (two GPU owners, real Blender on CPU)")
    owners = {name: farm.token("worker", name) for name in ("gpu-owner-1", "gpu-owner-2")}
    farm.start_worker("worker-1", owners["gpu-owner-1"])
    farm.start_worker("worker-2", owners["gpu-owner-2"])
    client = Client(url, artist)
    before = client.balance()["balance"]
    wait_for(lambda: sum(w["online"] for w in Client(url, farm.token("admin", "demo-admin")).workers()) >= 2,
             120, "both workers to connect")
    scene = make_scene(root / "sample.blend", frames=args.frames, width=160, height=90, samples=16)
    say(f"generated {scene.name}: {args.frames} frames at 160x90; submitting it with the framehive CLI")
    began = time.monotonic()
    env = {**os.environ, "FRAMEHIVE_COORDINATOR": url, "FRAMEHIVE_TOKEN": artist}
    submit = subprocess.run([sys.executable, "-m", "framehive.addon.cli", "submit", str(scene), "--frames",
                             f"1-{args.frames}",
                             "--wait"], cwd=REPO, env=env)  # frames go to ./framehive-output/<job>/
    wall = time.monotonic() - began
    jobs = client.jobs()
    if submit.returncode != 0 or not jobs:
        raise RuntimeError(f"the job did not complete (framehive exited {submit.returncode})")
    summary(client.job(jobs[0]["id"]), REPO / "framehive-output" / str(jobs[0]["id"]), wall)
    points(client, before, {name: Client(url, token) for name, token in owners.items()})
    return 0


def points(artist: Client, before: int, owners: dict[str, Client]) -> None:
    job = artist.jobs()[0]
    after = artist.balance()["balance"]
    print(f"points: the artist paid {before - after} (price {job['price']}, unused escrow refunded): "
          f"{before} -> {after}")
    for name, client in owners.items():
        info = client.balance()
        earned = ", ".join(f"{w} earned {n}" for w, n in info["earned_by_worker"].items())
        print(f"  {name}: balance {info['balance']} ({earned})")


def summary(job: dict, out: Path, wall: float) -> None:
    per_worker = collections.Counter(f["worker"] for f in job["frame_states"])
    print("\n=== Framehive demo: done ===")
    print(f"job {job['id']} '{job['name']}': {job['state']}, {job['total']} frames in {wall:.1f} s wall time")
    for worker, count in sorted(per_worker.items()):
        print(f"  {worker}: {count} frames")
    checks = sorted((c for c in job["checks"] if c["kind"] in ("verify", "spot")), key=lambda c: c["frame"])
    count = collections.Counter(c["kind"] for c in checks)
    passed = sum(c["verdict"] == "pass" for c in checks)
    print(f"verification: {passed}/{len(checks)} secret checks passed ({count['verify']} regions of 1/16, "
          f"{count['spot']} spot checks); every frame delivered is verified")
    for check in checks:
        x, y, w, h = check["region"]
        what = "region" if check["kind"] == "verify" else "spot"
        print(f"  frame {check['frame']:>3}: rendered by {check['renderer']}, {what} {w}x{h} at ({x},{y}) "
              f"re-rendered by {check['verifier']}: {check['verdict']} ({check['mode']}, "
              f"max diff {check['metrics'].get('maxabs')})")
    print(f"frames: {out}/ ({len(list(out.glob('*.png')))} PNG files)")


def say(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
