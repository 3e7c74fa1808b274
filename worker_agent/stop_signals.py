"""The agent's signals on every OS: stop gracefully on Ctrl-C / SIGTERM (Ctrl-Break on Windows), and on POSIX
pause on SIGUSR1 and resume on SIGUSR2.

``loop.add_signal_handler`` exists on POSIX event loops only; Windows' loops lack it. There the handler is a
plain ``signal.signal`` one, which Python runs in the main thread between bytecodes, and which hands the call to
the event loop with ``call_soon_threadsafe`` (the loop's self-pipe wakes it). Both ways are tested on Linux:
``loop_handlers=False`` is the Windows way.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Callable

log = logging.getLogger("framehive.worker")

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGBREAK")  # SIGBREAK: Ctrl-Break, and closing the console, on Windows
PAUSE_SIGNAL, RESUME_SIGNAL = "SIGUSR1", "SIGUSR2"  # POSIX only


def install(loop: asyncio.AbstractEventLoop, on_stop: Callable[[], object],
            on_pause: Callable[[], object] | None = None, on_resume: Callable[[], object] | None = None, *,
            loop_handlers: bool | None = None) -> Callable[[], None]:
    """Route the signals this platform has to the callbacks (run on ``loop``); returns a function that puts the
    previous handlers back. Signals belong to the main thread: elsewhere (an agent run by a test in a thread)
    nothing is installed. ``loop_handlers`` defaults to what the platform offers."""
    if threading.current_thread() is not threading.main_thread():
        log.debug("not in the main thread: signals left alone")
        return lambda: None
    if loop_handlers is None:
        loop_handlers = sys.platform != "win32"
    wanted = [(name, on_stop) for name in STOP_SIGNALS] + [(PAUSE_SIGNAL, on_pause), (RESUME_SIGNAL, on_resume)]
    routes = [(getattr(signal, name), callback) for name, callback in wanted
              if callback is not None and hasattr(signal, name)]
    undo: list[Callable[[], object]] = []
    for signum, callback in routes:
        undo.append(_loop_handler(loop, signum, callback) if loop_handlers else _plain_handler(loop, signum, callback))

    def restore() -> None:
        for step in reversed(undo):
            step()

    return restore


def _loop_handler(loop: asyncio.AbstractEventLoop, signum: int, callback: Callable[[], object]) -> Callable[[], object]:
    loop.add_signal_handler(signum, callback)
    return lambda: loop.remove_signal_handler(signum)


def _plain_handler(loop: asyncio.AbstractEventLoop, signum: int,
                   callback: Callable[[], object]) -> Callable[[], object]:
    def handler(_signum: int, _frame: object) -> None:
        loop.call_soon_threadsafe(callback)

    previous = signal.signal(signum, handler)
    return lambda: signal.signal(signum, previous)
