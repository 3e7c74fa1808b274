"""A real S3-compatible server for tests: moto's standalone server (``moto_server``) on a free loopback port.

The coordinator reads its S3 settings from boto3's standard environment (``AWS_*``), so ``environment()`` is what
a test puts in the coordinator's environment (and its own, to look into the store with boto3).
``bytes_through`` reads a coordinator's access log for requests that carried an object's bytes through it.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MOTO = Path(sys.executable).parent / "moto_server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    def __init__(self, root: Path) -> None:
        if not MOTO.exists():
            raise RuntimeError(f"{MOTO} not found: ./scripts/setup installs moto[server] (the dev extra)")
        self.root = root
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._buckets = 0

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[MotoServer]:
        """A started server in a temporary folder of its own, stopped and the folder removed after."""
        root = Path(tempfile.mkdtemp(prefix="framehive-moto-"))
        server = cls(root)
        try:
            server.start()
            yield server
        finally:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)

    def environment(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "moto.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(self.port)], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto_server did not start:\n" + (self.root / "moto.log").read_text())
            time.sleep(0.1)  # polling interval of a deadline loop

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answered
        except OSError:
            return False

    def client(self) -> Any:
        import boto3

        env = self.environment()
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=env["AWS_DEFAULT_REGION"],
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])

    def create_bucket(self) -> str:
        """A fresh, empty bucket; returns its name."""
        self._buckets += 1
        name = f"framehive-test-{self._buckets}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


# A request line of gunicorn's access log (its default format): "METHOD PATH HTTP/x.y" STATUS.
_REQUEST = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3}) ')
# The routes that take an object's bytes in a PUT: an artist's blob, an agent's frame, a verifier's region render.
_UPLOADS = re.compile(r"/api/v1/(blobs/[0-9a-f]{64}|worker/tasks/\d+/frames/\d+|worker/checks/[^/?]+/result)(\?|$)")
# The routes that answer with a blob's or a frame's bytes (200), or with a redirect to the store (307).
_DOWNLOADS = re.compile(r"/api/v1/(blobs/[0-9a-f]{64}|jobs/\d+/frames/\d+)(\?|$)")


def bytes_through(access_log: str) -> list[str]:
    """The requests of a coordinator's access log that carried a scene's, a frame's or a check result's bytes
    through the coordinator: a PUT of them to it, or a download it answered itself (200, not a redirect)."""
    found = []
    for method, path, status in _REQUEST.findall(access_log):
        if (method == "PUT" and _UPLOADS.match(path)) or (method == "GET" and status == "200"
                                                          and _DOWNLOADS.match(path)):
            found.append(f"{method} {path} {status}")
    return found
