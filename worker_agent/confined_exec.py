"""Run a program confined: limits, Landlock and no_new_privs, a scrubbed environment, then exec it.

    python -I -S confined_exec.py POLICY_JSON -- PROGRAM [ARGUMENT ...]

The agent starts every render process through this script (see confinement.py for the policy). It replaces
itself with PROGRAM (``execve``): the process keeps its pid, its pipes and its parent, so the agent's kill,
memory watch and the runner's orphan check all see Blender itself. Standard library only; it loads
``confinement.py`` from its own folder by path, so nothing outside the standard library is imported before the
process is confined. A restriction the policy promises that cannot be applied ends the process with
``confinement.EXIT_REFUSED`` and a message on stderr: it never runs PROGRAM with less confinement than promised.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import signal
import sys
from pathlib import Path
from types import ModuleType

EXIT_USAGE = 2
EXIT_EXEC_FAILED = 127  # as shells say when a program cannot be run (confinement.EXIT_REFUSED: not confined)
# Python ignores these, and an ignored signal stays ignored across exec; a program expects the default
# (a write past RLIMIT_FSIZE then kills a blender binary with SIGXFSZ instead of failing silently).
RESET_SIGNALS = ("SIGPIPE", "SIGXFSZ", "SIGXFZ")


def _load_confinement() -> ModuleType:
    path = Path(__file__).resolve().with_name("confinement.py")
    spec = importlib.util.spec_from_file_location("framehive_confinement", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _apply_limits(file_size: int | None) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crashing Blender writes no core file anywhere
    if file_size is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: confined_exec.py POLICY_JSON -- PROGRAM [ARGUMENT ...]", file=sys.stderr)
        return EXIT_USAGE
    confinement = _load_confinement()
    program = argv[2:]
    try:
        policy = confinement.Policy.from_json(argv[0])
        _apply_limits(policy.file_size)
        for name in RESET_SIGNALS:
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        env = confinement.scrubbed_environment(os.environ, policy.home, policy.temp)
        os.chdir(policy.temp)  # not the agent's folder, which may be anywhere
        if policy.landlock:
            confinement.restrict_self(policy)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        print(f"framehive: cannot confine the render process, not starting it: {exc}", file=sys.stderr, flush=True)
        return confinement.EXIT_REFUSED
    try:
        os.execve(program[0], program, env)
    except OSError as exc:
        print(f"framehive: cannot run {program[0]}: {exc}", file=sys.stderr, flush=True)
    return EXIT_EXEC_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
