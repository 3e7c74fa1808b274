"""``framehive-worker``: what GPU owners run. Probes Blender and its devices, then serves the coordinator.

``framehive-worker pause`` and ``framehive-worker resume`` control a running agent (owner_control.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import requests
from framehive.protocol import messages

from . import __version__, confinement, coordinator_urls, owner_control, stop_signals, test_only, token_source
from .blender import BlenderLauncher, BlenderNotFound, probe
from .connection import Agent, FatalError, Identity
from .devices import DeviceUnavailable, choose_device
from .earnings import EarningsWatch
from .render_limits import DEFAULT_FRAME_SECONDS, RenderLimits
from .schedule import Schedule, ScheduleError
from .schedule import parse as parse_schedule
from .task_runner import TaskRunner

log = logging.getLogger("framehive.worker")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "optix", "hip", "metal", "oneapi")
CONTROL_COMMANDS = ("pause", "resume")
# The Pythons a bpy wheel exists for (setup.cfg's blender extra picks the one of each).
BPY_PYTHONS = ((3, 11), (3, 13))


def _roles(text: str) -> list[str]:
    roles = sorted({r.strip() for r in text.split(",") if r.strip()})
    if not roles or not set(roles) <= {"render", "verify"}:
        raise argparse.ArgumentTypeError("roles are 'render', 'verify' or 'render,verify'")
    return roles


def _agent_name(text: str) -> str:
    """--name as the coordinator's hello takes it: a name it would refuse is refused here, with the reason, before
    Blender is probed or anything connects."""
    try:
        messages.check_agent_name(text, "the name")
    except messages.MessageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


GB = 1024**3
#: Room for a few jobs of the coordinator's largest scene tree (MAX_JOB_BYTES, 20 GiB).
DEFAULT_CACHE_LIMIT_GB = 50
DEFAULT_FRAME_MINUTES = DEFAULT_FRAME_SECONDS / 60


def _positive_number(text: str, what: str) -> float | None:
    """A number of ``what``, 0 or more; 0 means no limit (None)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of {what}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a number of {what}, 0 (no limit) or more")
    return None if value == 0 else value


def _gigabytes(text: str) -> int | None:
    value = _positive_number(text, "gigabytes")
    return None if value is None else int(value * GB)


def _minutes(text: str) -> float | None:
    """``--max-frame-minutes`` in seconds (None: no limit)."""
    value = _positive_number(text, "minutes")
    return None if value is None else value * 60


def _schedule(text: str) -> Schedule:
    try:
        return parse_schedule(text)
    except ScheduleError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def default_cache_dir(platform: str = sys.platform, environ: Mapping[str, str] = os.environ) -> Path:
    """Where each OS keeps caches: %LOCALAPPDATA% on Windows, ~/Library/Caches on macOS, XDG elsewhere."""
    if platform == "win32" and environ.get("LOCALAPPDATA"):
        return Path(environ["LOCALAPPDATA"]) / "framehive" / "worker"
    if platform == "darwin":
        return Path.home() / "Library" / "Caches" / "framehive" / "worker"
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "framehive" / "worker"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="framehive-worker", description="Framehive worker agent",
        epilog="Control a running agent: framehive-worker pause [--reason TEXT] | framehive-worker resume "
               "(with the agent's --cache-dir if not the default)")
    parser.add_argument("--coordinator", action="append", metavar="URL",
                        help="coordinator base URL, e.g. http://127.0.0.1:8400; give it again for each other "
                             "coordinator of the network: the agent moves to the next when its coordinator goes away "
                             "(env FRAMEHIVE_COORDINATOR, a comma list)")
    parser.add_argument("--token-file", type=Path, metavar="PATH",
                        help="file holding the worker token, readable by you only (chmod 600); "
                             f"default: the {token_source.ENV_TOKEN} variable")
    parser.add_argument("--token", help="the worker token on the command line: avoid, `ps` shows it to every user "
                                        f"(use {token_source.ENV_TOKEN} or --token-file)")
    parser.add_argument("--blender", help="path to a blender binary (default: the bpy module, else blender on PATH)")
    parser.add_argument("--device", default="auto", type=str.lower, choices=DEVICE_CHOICES,
                        help="Cycles device; auto picks OptiX > CUDA > HIP > Metal > oneAPI > CPU (default: auto)")
    parser.add_argument("--threads", type=int, help="CPU threads for Blender (default: all)")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                        help="scene cache (default: %(default)s)")
    parser.add_argument("--cache-limit", type=_gigabytes, default=DEFAULT_CACHE_LIMIT_GB * GB, metavar="GB",
                        help="remove least recently used scenes when the cache holds more than this; 0: no limit "
                             f"(default: {DEFAULT_CACHE_LIMIT_GB})")
    parser.add_argument("--schedule", type=_schedule, metavar="HH:MM-HH:MM[,...]",
                        help="work only in these windows of local time, e.g. 22:00-07:00 or 22:00-07:00,12:00-13:00; "
                             "outside them the agent finishes its task and takes nothing new (default: always)")
    parser.add_argument("--max-ram", type=_gigabytes, default=None, metavar="GB",
                        help="memory one render may use; a scene needing more fails its task (default: no limit)")
    parser.add_argument("--max-frame-minutes", type=_minutes, default=DEFAULT_FRAME_SECONDS, metavar="N",
                        help=f"time one frame may take; 0: no limit (default: {DEFAULT_FRAME_MINUTES:g})")
    parser.add_argument("--name", default=socket.gethostname(), type=_agent_name,
                        help="this agent's name: printable, at most "
                             f"{messages.HELLO_TEXT_LIMITS['name']} characters (default: the host name)")
    parser.add_argument("--roles", default="render,verify", type=_roles,
                        help="what this agent does: render, verify or both (default: render,verify)")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"framehive-worker {__version__}")
    return parser


def build_control_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framehive-worker", description="pause or resume a running agent")
    parser.add_argument("--version", action="version", version=f"framehive-worker {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    pause = commands.add_parser("pause", help="finish the task in hand, then take nothing new until resumed")
    pause.add_argument("--reason", default=owner_control.DEFAULT_REASON, help="shown on the coordinator")
    commands.add_parser("resume", help="take work again (within --schedule, if the agent has one)")
    for command in (pause, commands.choices["resume"]):
        command.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                             help="the running agent's --cache-dir (default: %(default)s)")
    return parser


# Builds the agent's task runner: (args, launcher, device, authorised HTTP session) → runner.
RunnerFactory = Callable[[argparse.Namespace, BlenderLauncher, str, requests.Session], TaskRunner]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in CONTROL_COMMANDS:
        return control(build_control_parser().parse_args(argv))
    args = build_parser().parse_args(argv)
    return serve(args, "framehive-worker", _task_runner)


def control(args: argparse.Namespace) -> int:
    """``pause`` / ``resume``: write or remove the pause file the agent reads every second."""
    owner = owner_control.OwnerControl(args.cache_dir)
    if args.command == "pause":
        owner.pause(args.reason)
        print(f"paused the agent using {args.cache_dir}: it finishes the task in hand and takes nothing new, "
              "also after a restart, until `framehive-worker resume`")
    elif owner.resume():
        print(f"resumed the agent using {args.cache_dir}")
    else:
        print(f"the agent using {args.cache_dir} was not paused by hand (its --schedule still applies)")
    return 0


def serve(args: argparse.Namespace, prog: str, make_runner: RunnerFactory,
          on_start: Callable[[Agent, TaskRunner], None] | None = None) -> int:
    """Check the arguments, probe Blender and its devices, and serve the coordinator until stopped.

    Shared by ``framehive-worker`` and the test suite's adversarial agent (tests/adversary.py), which brings
    its own runner; ``on_start`` sees the agent and the runner before the agent connects.
    """
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        args.token, warnings = token_source.resolve(args.token, args.token_file, os.environ)
    except token_source.TokenError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    for warning in warnings:
        log.warning("%s", warning)
    given = args.coordinator or [os.environ.get("FRAMEHIVE_COORDINATOR", "")]
    if not any(url.strip() for url in given):
        print(f"{prog}: --coordinator is required (or FRAMEHIVE_COORDINATOR)", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads < 1:
        print(f"{prog}: --threads must be at least 1", file=sys.stderr)
        return 2
    try:
        args.coordinators = coordinator_urls.base_urls(given)
        args.coordinator = args.coordinators[0]  # the runner's until the agent connects (Agent._point_at)
        return asyncio.run(_run(args, make_runner, on_start))
    except (BlenderNotFound, DeviceUnavailable, FatalError, ValueError) as exc:
        hint = no_bpy_hint() if isinstance(exc, BlenderNotFound) else ""
        print(f"{prog}: {exc}{hint}", file=sys.stderr)
        return 2


def no_bpy_hint(version: tuple[int, int] | None = None) -> str:
    """What to do where no bpy wheel exists for this Python (3.12): the blender extra installs nothing there."""
    version = version or (sys.version_info.major, sys.version_info.minor)
    if version in BPY_PYTHONS:
        return ""
    return (f" No bpy module exists for Python {version[0]}.{version[1]} (only for "
            f"{' and '.join(f'{major}.{minor}' for major, minor in BPY_PYTHONS)}): install Blender and pass "
            "--blender PATH, or install Framehive with the blender extra on one of those Pythons.")


def render_limits(args: argparse.Namespace) -> RenderLimits:
    """The limits of each render from ``--max-ram`` and ``--max-frame-minutes``."""
    return RenderLimits(memory_bytes=args.max_ram, frame_seconds=args.max_frame_minutes)


def _task_runner(args: argparse.Namespace, launcher: BlenderLauncher, device: str,
                 session: requests.Session) -> TaskRunner:
    return TaskRunner(launcher, device, args.threads, args.cache_dir, args.coordinator, session, args.cache_limit,
                      limits=render_limits(args))


async def _run(args: argparse.Namespace, make_runner: RunnerFactory,
               on_start: Callable[[Agent, TaskRunner], None] | None) -> int:
    launcher = BlenderLauncher.discover(args.blender)
    info = await probe(launcher)
    device = choose_device(args.device, info["devices"])
    log.info("Blender %s via %s; devices: %s; using %s", info["blender_version"], launcher.kind,
             ", ".join(f"{d['backend']}:{d.get('name', '?')}" for d in info["devices"]) or "none", device)
    log.info("%s", confinement.describe())
    log.info("%s", render_limits(args).describe())
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {args.token}"
    runner = make_runner(args, launcher, device, session)
    runner.keep_spares()  # a Blender ready before the first order arrives
    identity = Identity(name=args.name, blender_version=test_only.reported_version(info["blender_version"]),
                        device=device, devices=info["devices"], threads=args.threads or os.cpu_count() or 1,
                        roles=args.roles)
    owner = owner_control.OwnerControl(args.cache_dir, args.schedule)
    if args.schedule is not None:
        log.info("schedule: works %s local time", args.schedule)
    agent = Agent(args.coordinators, args.token, identity, runner, control=owner,
                  earnings=EarningsWatch(session, args.coordinator))
    if on_start is not None:
        on_start(agent, runner)
    restore = stop_signals.install(asyncio.get_running_loop(), agent.stop,
                                   on_pause=lambda: owner.pause("paused by SIGUSR1"), on_resume=owner.resume)
    try:
        await agent.run()
    finally:
        restore()
        await runner.close()
    log.info("worker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
