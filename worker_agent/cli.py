"""``framehive-worker``: what GPU owners run. Probes Blender and its devices, then serves the coordinator."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import requests

from .blender import BlenderLauncher, BlenderNotFound, probe
from .connection import Agent, FatalError, Identity, websocket_url
from .devices import DeviceUnavailable, choose_device
from .task_runner import TaskRunner

log = logging.getLogger("framehive.worker")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "optix", "hip", "metal", "oneapi")


def _roles(text: str) -> list[str]:
    roles = sorted({r.strip() for r in text.split(",") if r.strip()})
    if not roles or not set(roles) <= {"render", "verify"}:
        raise argparse.ArgumentTypeError("roles are 'render', 'verify' or 'render,verify'")
    return roles


GB = 1024**3
#: Room for a few jobs of the coordinator's largest scene tree (MAX_JOB_BYTES, 20 GiB).
DEFAULT_CACHE_LIMIT_GB = 50


def _gigabytes(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of gigabytes") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("the cache limit is a number of gigabytes, 0 or more")
    return None if value == 0 else int(value * GB)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "framehive" / "worker"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framehive-worker", description="Framehive worker agent")
    parser.add_argument("--coordinator", default=os.environ.get("FRAMEHIVE_COORDINATOR"),
                        help="coordinator base URL, e.g. http://127.0.0.1:8400 (env FRAMEHIVE_COORDINATOR)")
    parser.add_argument("--token", default=os.environ.get("FRAMEHIVE_TOKEN"),
                        help="worker token from the coordinator's admin (env FRAMEHIVE_TOKEN)")
    parser.add_argument("--blender", help="path to a blender binary (default: the bpy module, else blender on PATH)")
    parser.add_argument("--device", default="auto", type=str.lower, choices=DEVICE_CHOICES,
                        help="Cycles device; auto picks OptiX > CUDA > HIP > Metal > oneAPI > CPU (default: auto)")
    parser.add_argument("--threads", type=int, help="CPU threads for Blender (default: all)")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                        help="scene cache (default: %(default)s)")
    parser.add_argument("--cache-limit", type=_gigabytes, default=DEFAULT_CACHE_LIMIT_GB * GB, metavar="GB",
                        help="remove least recently used scenes when the cache holds more than this; 0: no limit "
                             f"(default: {DEFAULT_CACHE_LIMIT_GB})")
    parser.add_argument("--name", default=socket.gethostname(), help="this agent's name (default: the host name)")
    parser.add_argument("--roles", default="render,verify", type=_roles,
                        help="what this agent does: render, verify or both (default: render,verify)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


# Builds the agent's task runner: (args, launcher, device, authorised HTTP session) → runner.
RunnerFactory = Callable[[argparse.Namespace, BlenderLauncher, str, requests.Session], TaskRunner]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return serve(args, "framehive-worker", _task_runner)


def serve(args: argparse.Namespace, prog: str, make_runner: RunnerFactory,
          on_start: Callable[[Agent, TaskRunner], None] | None = None) -> int:
    """Check the arguments, probe Blender and its devices, and serve the coordinator until stopped.

    Shared by ``framehive-worker`` and the test suite's adversarial agent (tests/adversary.py), which brings
    its own runner; ``on_start`` sees the agent and the runner before the agent connects.
    """
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    if not args.coordinator or not args.token:
        print(f"{prog}: --coordinator and --token are required (or FRAMEHIVE_COORDINATOR / "
              "FRAMEHIVE_TOKEN)", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads < 1:
        print(f"{prog}: --threads must be at least 1", file=sys.stderr)
        return 2
    try:
        websocket_url(args.coordinator)
        return asyncio.run(_run(args, make_runner, on_start))
    except (BlenderNotFound, DeviceUnavailable, FatalError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2


def _task_runner(args: argparse.Namespace, launcher: BlenderLauncher, device: str,
                 session: requests.Session) -> TaskRunner:
    return TaskRunner(launcher, device, args.threads, args.cache_dir, args.coordinator, session, args.cache_limit)


async def _run(args: argparse.Namespace, make_runner: RunnerFactory,
               on_start: Callable[[Agent, TaskRunner], None] | None) -> int:
    launcher = BlenderLauncher.discover(args.blender)
    info = await probe(launcher)
    device = choose_device(args.device, info["devices"])
    log.info("Blender %s via %s; devices: %s; using %s", info["blender_version"], launcher.kind,
             ", ".join(f"{d['backend']}:{d.get('name', '?')}" for d in info["devices"]) or "none", device)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {args.token}"
    runner = make_runner(args, launcher, device, session)
    identity = Identity(name=args.name, blender_version=info["blender_version"], device=device,
                        devices=info["devices"], threads=args.threads or os.cpu_count() or 1, roles=args.roles)
    agent = Agent(args.coordinator, args.token, identity, runner)
    if on_start is not None:
        on_start(agent, runner)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stop)
    await agent.run()
    log.info("worker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
