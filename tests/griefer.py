"""A griefing worker token for tests: it answers every ``assign`` with ``task_failed``, under ever new names.

It speaks the real protocol over a real WebSocket (as an attacker would: no Blender needed to fail). After
each failure it signs on again under a new agent name, so every failure comes from a fresh worker identity
(the attack measured in issue 12: 200 identities in 6 s). A refused hello (too many identities or agents
online for its token) is remembered, and it goes on under a name it already has. ``limit`` makes it claim
that a worker limit was hit (issue 11: ``memory``, ``frame_time``, ``output_size``). With nothing to fail for
``patience`` seconds it tries another name too, so a blocklisted griefer keeps making identities.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field

from framehive.protocol import PROTOCOL_VERSION
from framehive.protocol import messages as m
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


def hello(base_url: str, token: str, name: str) -> tuple[ClientConnection, m.Message]:
    """Open the worker channel and say hello as ``name``: the connection and the coordinator's answer."""
    ws = connect(base_url.replace("http://", "ws://") + "/api/v1/worker/ws",
                 additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10).__enter__()
    ws.send(m.encode(m.Hello(protocol=PROTOCOL_VERSION, name=name, agent_version="test", blender_version="5.0.1",
                             device="CPU", devices=[{"backend": "CPU", "name": "test"}], threads=1)))
    return ws, m.decode(ws.recv(timeout=10))


def failure(assign: m.Assign, limit: str | None) -> str:
    """The ``task_failed`` text; with ``limit``, the optional field issue 11 adds to the protocol."""
    text = m.encode(m.TaskFailed(task_id=assign.task_id, attempt=assign.attempt, error="griefing: failed on purpose"))
    return text if limit is None else json.dumps({**json.loads(text), "limit": limit})


@dataclass
class Griefer:
    base_url: str
    token: str
    prefix: str
    limit: str | None = None
    patience: float = 5.0  # seconds it waits for an assign before trying another name
    max_failures: int | None = None  # stop after failing this many tasks
    names: list[str] = field(default_factory=list)  # every name the coordinator welcomed
    refusals: list[m.Error] = field(default_factory=list)
    failed: list[tuple[str, int, int]] = field(default_factory=list)  # (name, job, task) it failed
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Griefer:
        self._thread = threading.Thread(target=self._run, name=f"griefer-{self.prefix}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        fresh = 0
        while not self._stop.is_set():
            name = f"{self.prefix}-{fresh}"
            fresh += 1
            ws = self._sign_on(name)
            if ws is None and self.names:  # refused a new identity: go on under one it has
                name = self.names[fresh % len(self.names)]
                ws = self._sign_on(name)
            if ws is None:
                self._stop.wait(0.2)  # e.g. its last connection is still signing off
                continue
            with contextlib.closing(ws):
                self._fail_one(ws, name)

    def _sign_on(self, name: str) -> ClientConnection | None:
        ws, answer = hello(self.base_url, self.token, name)
        if isinstance(answer, m.Welcome):
            if name not in self.names:
                self.names.append(name)
            return ws
        ws.close()
        assert isinstance(answer, m.Error), answer
        self.refusals.append(answer)
        return None

    def _fail_one(self, ws: ClientConnection, name: str) -> None:
        """Heartbeat until an assign comes, fail it, and hang up (the next failure comes from a new name)."""
        deadline = time.monotonic() + self.patience
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                ws.send(m.encode(m.Heartbeat()))
                message = m.decode(ws.recv(timeout=0.3))
            except TimeoutError:
                continue
            except ConnectionClosed:
                return
            if isinstance(message, m.Assign):
                ws.send(failure(message, self.limit))
                self.failed.append((name, message.job_id, message.task_id))
                if self.max_failures is not None and len(self.failed) >= self.max_failures:
                    self._stop.set()
                return
