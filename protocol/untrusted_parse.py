"""Read untrusted .blend files in a child process under limits, so that a hostile file costs the caller nothing.

A .blend from a stranger can be a bomb: 4 KB of zstd that inflates to 128 MiB made blender-asset-tracer, running
inside the coordinator, take 900 MB (a 32 KB one: 7.2 GB and three minutes). So the coordinator and the worker
never parse one themselves: :func:`scan_files` runs ``python -m framehive.protocol.untrusted_parse`` with

- an address-space limit (``RLIMIT_AS``, ``memory_bytes``) and a CPU-time budget per file (``RLIMIT_CPU``,
  ``cpu_seconds``: the soft limit is moved forward before each file, SIGXCPU ends the child past it);
- a cap on what a compressed file may inflate to (``inflated_bytes``, framehive.protocol.blend_inflate), checked from
the
  zstd frame header when it says, and while streaming to a private temporary folder in any case;
- a wall-clock limit per file (``wall_seconds``): the parent kills the child when a file takes longer;
- a cap on the number of blocks (``max_blocks``), counted from their headers before BAT reads the file (BAT
  keeps an object per block: a bomb of empty blocks costs it 300 bytes of memory per 24 bytes of file);
- an environment without the caller's secrets.

A file that hits a limit is answered ``{"ok": false, "code": "scene_too_large", "error"}``; a .blend BAT cannot
read ``{"ok": false, "code": "not_a_blend", "error"}`` (what it names is unknown, so it must not be rendered); the
other files of the batch go on in a new child. Where ``resource`` does not exist (Windows) the child runs without
the two kernel limits: the inflation cap, the block count and the wall clock still apply.

The answer for a .blend is :func:`framehive.protocol.blend_scan.scan`'s (the scene and the references, from one parse)
with
``"ok": true, "blend": true``; a file that is no .blend at all (a texture, a cache, or bytes that only start like
a compressed .blend, which Blender would not read either) is ``{"ok": true, "blend": false, "why"}``. Only a
few parses run at once in one process (:data:`CONCURRENT`).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from . import blend_inflate

TOO_LARGE = "scene_too_large"
NOT_A_BLEND = "not_a_blend"
# Parses at once per process (each child may take memory_bytes): more wait their turn.
CONCURRENT = 2
MIB = 1024 * 1024
# The variables the child inherits: enough to start Python on every platform.
_CHILD_ENVIRONMENT = ("PATH", "PYTHONPATH", "SYSTEMROOT", "LANG", "LC_ALL")


@dataclass(frozen=True)
class ParseLimits:
    """What one child may use. Generous for real scenes (a production .blend of a few hundred MB parses in
    seconds), far below what a bomb asks for."""

    memory_bytes: int = 2048 * MIB  # address space of the child; BAT keeps every block header of a file
    cpu_seconds: int = 60  # per file
    wall_seconds: float = 120.0  # per file, waiting included (a loaded machine)
    inflated_bytes: int = 2048 * MIB  # per file, once decompressed
    max_blocks: int = 4_000_000  # per file: BAT needs about 300 bytes of memory per block (measured)

    def describe_failure(self, reason: str) -> str:
        return {"cpu": f"reading it took more than {self.cpu_seconds} s of CPU time",
                "wall": f"reading it took more than {self.wall_seconds:g} s",
                "memory": f"reading it needs more than {self.memory_bytes // MIB} MiB of memory"}.get(reason, reason)


_slots = threading.BoundedSemaphore(CONCURRENT)


def scan_files(files: list[Path], limits: ParseLimits | None = None,
               scratch: Path | None = None) -> list[dict[str, Any]]:
    """One answer per file, in order (see the module's docstring). Compressed files are inflated into a
    temporary folder under ``scratch`` (default: the system's, which may be memory-backed: pass a folder on
    disk). Blocking: call it from a worker thread."""
    limits = limits or ParseLimits()
    answers: list[dict[str, Any]] = []
    with _slots:
        while len(answers) < len(files):
            answers.extend(_run_child(files[len(answers):], limits, scratch))
    return answers


def _run_child(files: list[Path], limits: ParseLimits, scratch: Path | None) -> list[dict[str, Any]]:
    """Answers for a prefix of ``files`` (at least one): a child that dies or stalls is blamed on its file."""
    with tempfile.TemporaryDirectory(prefix="framehive-parse-", dir=scratch) as work:
        order = json.dumps({"files": [os.path.abspath(path) for path in files], "work": work, "limits": asdict(limits)})
        child = subprocess.Popen([sys.executable, "-m", "framehive.protocol.untrusted_parse"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=Path(__file__).parents[1],
                                 env=_child_environment())
        lines: queue.Queue[bytes] = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(child.stdout, lines), daemon=True)
        reader.start()
        try:
            assert child.stdin is not None  # stdin=PIPE
            child.stdin.write(order.encode())
            child.stdin.close()
        except OSError:
            pass  # it died at once: its exit status tells
        answers: list[dict[str, Any]] = []
        try:
            while len(answers) < len(files):
                try:
                    line = lines.get(timeout=limits.wall_seconds)
                except queue.Empty:
                    answers.append(_failed(limits.describe_failure("wall")))
                    break
                if not line:  # end of output: the child is gone
                    answers.append(_died(child, limits))
                    break
                answers.append(json.loads(line))
        finally:
            child.kill()
            child.wait()
            reader.join(5)
        return answers


def _child_environment() -> dict[str, str]:
    """What Python needs to start, and no secret of the caller's (a worker's FRAMEHIVE_TOKEN, for one)."""
    return {name: os.environ[name] for name in _CHILD_ENVIRONMENT if name in os.environ}


def _read_lines(stream: IO[bytes], lines: queue.Queue[bytes]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(b"")


def _died(child: subprocess.Popen[bytes], limits: ParseLimits) -> dict[str, Any]:
    try:
        status = child.wait(limits.wall_seconds)
    except subprocess.TimeoutExpired:
        return _failed(limits.describe_failure("wall"))
    if status is not None and -status == getattr(signal, "SIGXCPU", None):
        return _failed(limits.describe_failure("cpu"))
    return _failed(f"the parser stopped (exit status {status}) before it could read the file within its limits")


def _failed(error: str, code: str = TOO_LARGE) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": error}


# ---------------------------------------------------------------------------------------------- the child


def _limit_self(limits: ParseLimits, files: int) -> None:
    """The kernel limits, set before any untrusted byte is read. The CPU hard limit covers the whole batch; the
    soft one is moved per file (:func:`_budget`)."""
    try:
        import resource
    except ImportError:  # Windows
        return
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    hard = int(_cpu_used()) + limits.cpu_seconds * files + 5
    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))


def _budget(limits: ParseLimits) -> None:
    try:
        import resource
    except ImportError:
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (min(hard, int(_cpu_used()) + 1 + limits.cpu_seconds), hard))


def _cpu_used() -> float:
    return time.process_time()


def _answer(path: Path, work: Path, limits: ParseLimits) -> dict[str, Any]:
    from . import blend_scan  # BAT: imported in the child only

    inflated = work / "inflated.blend"
    try:
        if not blend_inflate.may_be_blend(path):
            return {"ok": True, "blend": False, "why": "not a .blend file"}
        plain = blend_inflate.inflate(path, inflated, limits.inflated_bytes)
        return {"ok": True, "blend": True, **blend_scan.scan(plain, limits.max_blocks)}
    except blend_inflate.TooLarge as exc:
        return _failed(str(exc))
    except blend_inflate.NotABlend as exc:  # Blender would not read it either
        return {"ok": True, "blend": False, "why": str(exc)}
    except blend_scan.Unreadable as exc:  # a .blend BAT cannot read: what it names is unknown
        return _failed(str(exc), NOT_A_BLEND)
    except MemoryError:
        return _failed(limits.describe_failure("memory"))
    except RecursionError:
        return _failed("its datablocks nest deeper than can be read", NOT_A_BLEND)
    finally:
        inflated.unlink(missing_ok=True)


def main() -> int:
    order = json.loads(sys.stdin.buffer.read())
    limits = ParseLimits(**order["limits"])
    files = [Path(path) for path in order["files"]]
    _limit_self(limits, len(files))
    out = sys.stdout
    for path in files:
        _budget(limits)
        out.write(json.dumps(_answer(path, Path(order["work"]), limits)) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
