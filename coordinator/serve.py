"""Running the coordinator: its app built from layered settings (config_sources), on gunicorn (production, POSIX)
or on the hardened Werkzeug server (development and Windows), with a word at start on where its data lives."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy.engine import make_url

from . import config_sources as sources
from . import serving
from .forwarded import behind_proxy

SERVERS = ("gunicorn", "werkzeug")


def build_app(settings: Mapping[str, Any]) -> Flask:
    """The coordinator's app for ``settings``, seeing forwarded addresses when it runs behind a proxy."""
    from . import create_app

    app = create_app(sources.app_settings(settings), data_dir=sources.data_dir(settings))
    hops = int(sources.server_setting(settings, "FRAMEHIVE_BEHIND_PROXY"))
    if hops:
        per_address = int(sources.server_setting(settings, "FRAMEHIVE_MAX_CONNECTIONS_PER_ADDRESS"))
        app.wsgi_app = behind_proxy(app.wsgi_app, hops, per_address)  # type: ignore[method-assign]
    return app


def limits(settings: Mapping[str, Any]) -> serving.ServerLimits:
    """The connection limits; behind a proxy all connections come from it, so the per-address cap moves to the
    forwarded address (forwarded.py)."""
    per_address = int(sources.server_setting(settings, "FRAMEHIVE_MAX_CONNECTIONS_PER_ADDRESS"))
    return serving.ServerLimits(
        read_timeout=float(sources.server_setting(settings, "FRAMEHIVE_REQUEST_TIMEOUT")),
        max_connections=int(sources.server_setting(settings, "FRAMEHIVE_MAX_CONNECTIONS")),
        max_per_address=0 if sources.server_setting(settings, "FRAMEHIVE_BEHIND_PROXY") else per_address)


def describe(app: Flask, url: str) -> str:
    """What an admin needs to see at start: where the data is (passwords hidden), where to look, and which process
    serves (under gunicorn, its worker: the one whose memory and threads the requests cost)."""
    database = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).render_as_string(hide_password=True)
    return (f"data dir:  {app.config['FRAMEHIVE_DATA_DIR']}\ndatabase:  {database}\n"
            f"storage:   {app.config['FRAMEHIVE_STORAGE']}\ndashboard: {url}/dashboard/\n"
            f"Framehive coordinator listening on {url} (pid {os.getpid()})")


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(settings: Mapping[str, Any]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = sources.server_setting(settings, "FRAMEHIVE_SERVER")
    if server not in SERVERS:
        raise sources.SettingsError(f"server {server!r}: expected one of {', '.join(SERVERS)}")
    return run_gunicorn(settings) if server == "gunicorn" else run_werkzeug(settings)


def run_werkzeug(settings: Mapping[str, Any]) -> int:
    """Werkzeug's threaded server with the limits of serving.py; SIGTERM stops it (requests under way are cut)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = build_app(settings)
    host = str(sources.server_setting(settings, "FRAMEHIVE_HOST"))
    server = serving.make_server(host, int(sources.server_setting(settings, "FRAMEHIVE_PORT")), app, limits(settings))
    stop = threading.Event()

    def _shutdown(signum: int, _frame: object) -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    print(describe(app, _url(host, server.port)), flush=True)
    try:
        server.serve_forever()
    finally:
        app.extensions["framehive_reaper"].stop()
    print("coordinator stopped", file=sys.stderr)
    return 0


def gunicorn_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    host = str(sources.server_setting(settings, "FRAMEHIVE_HOST"))
    port = int(sources.server_setting(settings, "FRAMEHIVE_PORT"))
    max_connections = int(sources.server_setting(settings, "FRAMEHIVE_MAX_CONNECTIONS"))
    access_log = str(sources.server_setting(settings, "FRAMEHIVE_ACCESS_LOG"))

    def announce(worker: Any) -> None:  # in the worker process, once the app is built
        bound = worker.sockets[0].getsockname()
        print(describe(worker.wsgi, _url(host, int(bound[1]))), flush=True)

    return {
        "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
        "workers": 1,  # the dispatcher's agents live in the process (gunicorn_server.py)
        "worker_class": "framehive.coordinator.gunicorn_server.LimitedThreadWorker",
        "threads": 1,  # unused: a thread per connection, capped by admission
        "worker_connections": max_connections + 1,  # our admission answers 503 first
        "graceful_timeout": math.ceil(float(sources.server_setting(settings, "FRAMEHIVE_GRACEFUL_TIMEOUT"))),
        "keepalive": 5,
        "accesslog": access_log or None,  # "": no access log
        "errorlog": "-",
        "forwarded_allow_ips": "",  # gunicorn's own X-Forwarded-Proto trust of loopback: off (forwarded.py)
        "control_socket_disable": True,
        "proc_name": "framehive-coordinator",
        "post_worker_init": announce,
        "worker_exit": _stop_background_threads,
    }


def _stop_background_threads(_arbiter: Any, worker: Any) -> None:
    """In the worker, once it stops serving: the reaper ends between passes, not in the middle of one."""
    app = getattr(worker, "wsgi", None)
    if isinstance(app, Flask):
        with contextlib.suppress(RuntimeError):  # a reaper that never started (FRAMEHIVE_START_REAPER off)
            app.extensions["framehive_reaper"].stop()


def upgrade_schema(settings: Mapping[str, Any]) -> None:
    """Bring the database to this coordinator's schema, or refuse it (schema.SchemaError), in the process that starts
    gunicorn, before its worker builds the app: a database made by a newer coordinator is then one line and exit
    status 1 (cli.main), not the worker's traceback and gunicorn's "worker failed to boot" (exit status 3). The
    worker's own upgrade then finds the database at head. The database is the one create_app would open."""
    from sqlalchemy import create_engine

    from . import config, schema
    from .db import configure_engine

    data = sources.data_dir(settings)
    data.mkdir(parents=True, exist_ok=True)
    merged = config.defaults(data)
    merged.update(config.from_environment(merged, os.environ))
    merged.update(sources.app_settings(settings))
    engine = create_engine(merged["SQLALCHEMY_DATABASE_URI"])
    try:
        configure_engine(engine)
        schema.upgrade(engine)
    finally:
        engine.dispose()


def run_gunicorn(settings: Mapping[str, Any]) -> int:
    """gunicorn with the LimitedThreadWorker; returns when the arbiter has stopped (SIGTERM, SIGINT)."""
    try:
        from .gunicorn_server import CoordinatorServer
    except ImportError as exc:
        raise sources.SettingsError(f"gunicorn is not available ({exc}); use --server werkzeug") from None
    upgrade_schema(settings)
    master = os.getpid()
    try:
        CoordinatorServer(lambda: build_app(settings), gunicorn_options(settings), limits(settings)).run()
    except SystemExit as exc:  # the arbiter ends with sys.exit: 0 after a stop, 3 when the app failed to start
        status = exc.code if isinstance(exc.code, int) else 1
    else:
        status = 0
    if os.getpid() == master:  # the forked worker leaves through here too
        print("coordinator stopped", file=sys.stderr)
    return status
