"""A WSGI entry point for running the coordinator under a server of your own: ``gunicorn
framehive.coordinator.wsgi:app``.

The app is built from the same settings as ``framehive-coordinator serve``: FRAMEHIVE_* environment variables over
the TOML file named by FRAMEHIVE_CONFIG, over the defaults. The server's own settings there (host, port, timeouts,
connection caps) are then your server's business; FRAMEHIVE_BEHIND_PROXY still applies (ProxyFix is in the app).

Run ONE process (gunicorn ``--workers 1``, uWSGI ``processes = 1``) with threads enough for every agent's
WebSocket (each holds a thread while connected): the coordinator keeps its connected agents in memory, and a
WebSocket needs a server that hands over the raw socket (gunicorn's gthread worker does; see flask-sock's docs).
With gunicorn, ``-k framehive.coordinator.gunicorn_server.LimitedThreadWorker`` brings the flood defences of ``serve``
(head
deadline, connection caps answered 503, WebSockets shut on SIGTERM; limits from the same settings); another server
has none of them: put a reverse proxy that has them in front. ``framehive-coordinator serve`` is the tested way.
"""

from __future__ import annotations

from . import config_sources
from .serve import build_app

app = build_app(config_sources.from_process_environment())
