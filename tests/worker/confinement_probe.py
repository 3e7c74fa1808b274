"""A stand-in for a hostile render: tries what a scene (or an exploited Blender) would, and reports each outcome.

Run by tests/worker/test_confinement.py under the same wrapper and policy as the render runner::

    python -P confinement_probe.py '{"tree_file": ..., "secret": ..., ...}'

Prints one JSON object: for each attempt ``{"ok": true, "value": ...}`` or ``{"ok": false, "errno": "EACCES"}``,
plus the environment and working folder it was given. Standard library only.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any


def attempt(action: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"ok": True, "value": action()}
    except OSError as exc:
        return {"ok": False, "errno": errno.errorcode.get(exc.errno or 0, str(exc))}


def read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def write(path: str) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("written by the probe")
    return path


def connect_tcp(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        return "connected"


def bind_tcp() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        return server.getsockname()[1]


def connect_abstract(name: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect("\0" + name)
        return "connected"


def run_program(path: str) -> int:
    return subprocess.run([path], check=False, capture_output=True).returncode


def main() -> None:
    args = json.loads(sys.argv[1])
    results = {
        "read_tree": attempt(lambda: read(args["tree_file"])),
        "read_secret": attempt(lambda: read(args["secret"])),
        "list_secret_folder": attempt(lambda: os.listdir(os.path.dirname(args["secret"]))),
        "write_output": attempt(lambda: write(args["output_file"])),
        "write_temp": attempt(lambda: write(os.path.join(os.environ.get("TMPDIR", "/nonexistent"), "t.txt"))),
        "write_outside": attempt(lambda: write(args["outside_file"])),
        "write_tree": attempt(lambda: write(args["tree_file"] + ".new")),
        "connect_tcp": attempt(lambda: connect_tcp(args["port"])),
        "bind_tcp": attempt(bind_tcp),
        "connect_abstract": attempt(lambda: connect_abstract(args["abstract"])),
        "signal_parent": attempt(lambda: os.kill(args["parent"], 0)),
        "run_program": attempt(lambda: run_program(args["program"])),
        "environment": dict(os.environ),
        "cwd": os.getcwd(),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
