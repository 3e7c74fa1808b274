"""The production server of ``framehive-coordinator serve`` (POSIX): gunicorn, one worker process, with
:class:`LimitedThreadWorker` carrying the flood defences of the Werkzeug server (serving.py).

gunicorn's gthread worker gives us a supervised process (restarted if it hangs or dies), an event loop that parks
idle keep-alive connections without a thread, an access log and a graceful stop (SIGTERM: the listening socket
closes, requests under way finish within ``graceful_timeout``). What it lacks, and the worker below adds:

- connections over the caps (in all, per client address) answered 503 at once from the event loop, no thread;
- a deadline for a request's line and headers (a client dripping a byte at a time held a thread forever), and a
  bound on each pause in a body;
- a thread per connection instead of a fixed pool: a worker agent's WebSocket holds its thread for hours, so a
  pool would fill with them and starve every HTTP request; the admission cap bounds the threads instead;
- on SIGTERM the worker WebSockets are shut at once (they would otherwise hold the stop for ``graceful_timeout``
  and then be killed), so agents reconnect, to another coordinator if they know one.

One worker process: the coordinator keeps its connected agents in memory (dispatch.Dispatcher), and SQLite
allows one writer process. More capacity comes from more coordinators on one PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.util import close_graceful
from gunicorn.workers.gthread import TConn, ThreadWorker

from . import config_sources, serve
from .admission import Admission, address_of, refuse
from .serving import ServerLimits

# How long a closing connection waits, at most, for its client to read the end of the last answer and close (in a
# thread of its own: gunicorn drained it on its event loop, where a client that never closes stalled every other
# connection).
CLOSE_LINGER = 2.0


class DeadlineSocket:
    """A client socket whose blocking reads time out: after ``idle`` seconds of silence, and never past
    ``deadline`` while one is set (a socket timeout alone restarts with every byte). Reads for which gunicorn set
    a timeout of its own keep it; ``idle`` None (a WebSocket) waits forever. Everything else is the socket's."""

    def __init__(self, sock: socket.socket, idle: float) -> None:
        self._sock = sock
        self.idle: float | None = idle
        self.deadline: float | None = None
        self.timed_out = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def recv(self, size: int, *flags: int) -> bytes:
        return self._bounded(self._sock.recv, size, *flags)

    def recv_into(self, buffer: Any, *args: int) -> int:
        return self._bounded(self._sock.recv_into, buffer, *args)

    def _bounded(self, read: Callable[..., Any], *args: Any) -> Any:
        if self._sock.gettimeout() is not None or (self.idle is None and self.deadline is None):
            return read(*args)
        timeout = self.idle if self.idle is not None else float("inf")
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - time.monotonic())
        try:
            if timeout <= 0:
                raise TimeoutError
            self._sock.settimeout(timeout)
            return read(*args)
        except TimeoutError:
            self.timed_out = True
            if self.deadline is not None:
                return b"" if isinstance(args[0], int) else 0  # the head is cut off: gunicorn sees the client gone
            raise
        finally:
            self._sock.settimeout(None)


class LimitedConn(TConn):
    """gunicorn's connection, holding its admission until it closes; the head of each request must arrive within
    ``read_timeout`` seconds."""

    def __init__(self, cfg: Any, sock: DeadlineSocket, client: Any, server: Any, admission: Admission,
                 read_timeout: float) -> None:
        super().__init__(cfg, sock, client, server)
        self.admission = admission
        self.admitted = True
        self.read_timeout = read_timeout

    def init(self) -> None:
        # gunicorn calls this in the connection's thread right before it reads a request's head
        self.sock.deadline = time.monotonic() + self.read_timeout
        super().init()

    def close(self, graceful: bool = False) -> None:
        if self.admitted:
            self.admitted = False
            self.admission.release(address_of(self.client))
        if graceful and not self.sock.timed_out:
            # off the event loop: a client that keeps the socket open would stall it
            threading.Thread(target=_close_gracefully, args=(self.sock,), daemon=True).start()
        else:
            super().close(graceful=False)


def _close_gracefully(sock: DeadlineSocket) -> None:
    with contextlib.suppress(OSError):
        sock.setblocking(True)
        close_graceful(sock, timeout=CLOSE_LINGER)


class ThreadPerConnection(futures.Executor):
    """An executor that starts a thread for each connection (the admission cap bounds them) and keeps none."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        future: futures.Future[Any] = futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - the future carries it to gunicorn's callback
                future.set_exception(exc)

        threading.Thread(target=run, daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Threads end with their connections; the worker waits for those itself (graceful_timeout)."""


class LimitedThreadWorker(ThreadWorker):
    """gunicorn's gthread worker with the coordinator's flood defences and a prompt stop (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # run by `serve`, the application carries them; under `gunicorn -k ... framehive.coordinator.wsgi:app`, the
        # settings do
        self.limits: ServerLimits = getattr(self.app, "limits", None) or serve.limits(
            config_sources.from_process_environment())
        self.admission = Admission(self.limits.max_connections, self.limits.max_per_address)
        self.websockets: set[LimitedConn] = set()
        self.websockets_lock = threading.Lock()

    def get_thread_pool(self) -> futures.Executor:
        return ThreadPerConnection()

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except BlockingIOError:
            return  # another process took it, or the client left
        except ConnectionAbortedError:
            return
        if not self.admission.admit(address_of(client_addr)):
            refuse(client_sock)
            client_sock.close()
            return
        self.nr_conns += 1
        client_sock.setblocking(True)
        sock = DeadlineSocket(client_sock, self.limits.read_timeout)
        self.enqueue_req(LimitedConn(self.cfg, sock, client_addr, listener.getsockname(), self.admission,
                                     self.limits.read_timeout))

    def handle_request(self, req: Any, conn: LimitedConn) -> bool:
        conn.sock.deadline = None  # the head is in; a body may still pause read_timeout between reads
        if not _is_websocket(req):
            return bool(super().handle_request(req, conn))
        conn.sock.idle = None  # a WebSocket idles between messages by design: the channel times its own waits
        with self.websockets_lock:
            self.websockets.add(conn)
        try:
            return bool(super().handle_request(req, conn))
        finally:
            with self.websockets_lock:
                self.websockets.discard(conn)

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self.alive)  # never again once stopping (the sockets are closed)

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: close the listening sockets (gunicorn kept them open while draining, so new clients waited in
        the backlog for nobody instead of being refused and trying elsewhere), let HTTP requests finish
        (gunicorn), and end the worker WebSockets now."""
        super().handle_exit(sig, frame)
        self.set_accept_enabled(False)
        for listener in self.sockets:
            listener.close()
        with self.websockets_lock:
            held = list(self.websockets)
        for conn in held:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)  # wakes the WebSocket's reader: the channel ends


def _is_websocket(req: Any) -> bool:
    return any(name == "UPGRADE" and value.strip().lower() == "websocket" for name, value in req.headers)


class CoordinatorServer(BaseApplication):
    """gunicorn run from Python with our settings only: no gunicorn.conf.py, GUNICORN_CMD_ARGS or control socket
    is read or made (several coordinators on one machine, or a service user without a home, must not collide)."""

    def __init__(self, build_app: Callable[[], Any], options: dict[str, Any], limits: ServerLimits) -> None:
        self.build_app = build_app
        self.options = options
        self.limits = limits  # read by LimitedThreadWorker (gunicorn's own settings have no place for them)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.build_app()
