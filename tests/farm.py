"""A real local render farm for tests and the demo: a coordinator and worker agents as subprocesses.

Everything listens on loopback only. Each process logs to a file under the farm's root, so a failing test
can show what the coordinator and workers said.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


# One in-process command at a time: it takes this process's stdout and stderr while it runs.
_COMMAND = threading.Lock()


class Timeout(AssertionError):
    pass


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)  # polling interval of a deadline loop, not synchronisation


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        self.signal(sig)
        return self.wait(timeout)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout: float = 20) -> int | None:
        """Its exit status, once it has exited; killed after ``timeout`` seconds."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
        return self.popen.returncode


@dataclass
class Farm:
    root: Path
    python: str = sys.executable
    coordinator_args: list[str] = field(default_factory=list)
    url: str = ""
    procs: list[Proc] = field(default_factory=list)
    coordinator: Proc | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "coordinator"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root / f"{name}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        handle.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_coordinator(self, port: int = 0) -> str:
        """Start the coordinator (port 0: any free port) and wait until it listens."""
        proc = self._spawn("coordinator", [self.python, "-m", "framehive.coordinator.cli", "serve", "--port", str(port),
                                           "--data-dir", str(self.data_dir), *self.coordinator_args])
        self.coordinator = proc

        def listening() -> str | None:
            if proc.popen.poll() is not None:
                raise AssertionError(f"coordinator exited:\n{proc.log_text()}")
            match = re.search(r"listening on (http://\S+)", proc.log_text())
            return match.group(1) if match else None

        self.url = wait_for(listening, 60, "the coordinator to listen")
        return self.url

    def serving_pid(self) -> int:
        """The process that serves the coordinator's requests, as it says at start: gunicorn's worker (a child of
        the process started), or the process itself with ``--server werkzeug``. Memory and threads are its."""
        assert self.coordinator is not None
        said = re.findall(r"listening on \S+ \(pid (\d+)\)", self.coordinator.log_text())
        assert said, self.coordinator.log_text()
        return int(said[-1])

    def restart_coordinator(self) -> str:
        """Stop the coordinator and start a new one on the same port and data dir."""
        assert self.coordinator.stop() == 0, self.coordinator.log_text()
        self.coordinator.log.rename(self.coordinator.log.with_suffix(".1.log"))
        port = int(self.url.rsplit(":", 1)[1])
        return self.start_coordinator(port)

    def token(self, kind: str, name: str, account: str | None = None, trusted: bool = False) -> str:
        """A token made by ``framehive-coordinator token create`` on the coordinator's store. The command runs in
        this process (its own ``main``, the same arguments and environment) when the farm runs this Python: a new
        interpreter for each token cost 0.7 s of CPU, and the tests make hundreds."""
        argv = ["token", "create", "--kind", kind, "--name", name, "--data-dir", str(self.data_dir)]
        if account:
            argv += ["--account", account]
        if trusted:
            argv.append("--trusted")
        for flag in ("--db", "--storage"):  # the same store as the coordinator's
            if flag in self.coordinator_args:
                argv += [flag, self.coordinator_args[self.coordinator_args.index(flag) + 1]]
        if self.python != sys.executable:
            out = subprocess.run([self.python, "-m", "framehive.coordinator.cli", *argv], cwd=REPO,
                                 capture_output=True, text=True, check=True, timeout=60)
            return out.stdout.strip()
        from framehive.coordinator import cli

        with _COMMAND, contextlib.redirect_stdout(io.StringIO()) as out, \
                contextlib.redirect_stderr(io.StringIO()) as err:
            code = cli.main(argv)
        assert code == 0, f"token create exited {code}: {err.getvalue()}"
        return out.getvalue().strip()

    def start_worker(self, name: str, token: str, *extra: str) -> Proc:
        """A worker agent; its token goes in FRAMEHIVE_TOKEN, as the README says (never in argv: ``ps``)."""
        return self._spawn(f"worker-{name}", [
            self.python, "-m", "framehive.worker_agent.cli", "--coordinator", self.url, "--name", name,
            "--cache-dir", str(self.root / f"cache-{name}"), "--threads", "1", *extra], env={"FRAMEHIVE_TOKEN": token})

    def start_adversary(self, strategy: str, token: str, name: str, *extra: str, label: str = "") -> Proc:
        """Run tests/adversary.py (a real agent that cheats with ``strategy``) as :meth:`start_worker` runs the
        honest one; its log is adversary-<label or name>.log."""
        return self._spawn(f"adversary-{label or name}", [
            self.python, "-m", "tests.adversary", "--strategy", strategy, "--coordinator", self.url, "--name", name,
            "--cache-dir", str(self.root / f"cache-{name}"), "--threads", "1", *extra], env={"FRAMEHIVE_TOKEN": token})

    def stop(self) -> None:
        """The agents first, all at once (each hands its work back to a coordinator still up: one at a time, the
        stops of a farm's agents added up to seconds a test), then the coordinators, last started first."""
        agents = [proc for proc in self.procs if not proc.name.startswith("coordinator")]
        for proc in agents:
            proc.signal()
        for proc in agents:
            proc.wait()
        for proc in reversed(self.procs):
            if proc not in agents:
                proc.stop()

    def logs(self) -> str:
        return "\n".join(f"===== {p.name} =====\n{p.log_text()[-6000:]}" for p in self.procs)


def make_scene(path: Path, python: str = sys.executable, **options: Any) -> Path:
    """Generate the sample scene with real Blender (the bpy module)."""
    argv = [python, str(REPO / "scripts" / "make_scene.py"), str(path)]
    for key, value in options.items():
        argv += [f"--{key}", str(value)]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    return path


def reference_render(blend: Path, frames: list[int], out: Path) -> dict[int, Path]:
    """Frames of ``blend`` rendered by Blender directly, outside Framehive (tests/reference_render.py)."""
    subprocess.run([sys.executable, str(REPO / "tests" / "reference_render.py"), str(blend), str(out),
                    *map(str, frames)], check=True, capture_output=True, timeout=600)
    return {frame: out / f"ref_{frame:04d}.png" for frame in frames}
