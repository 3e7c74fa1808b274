"""Framehive coordinator: ``create_app()`` builds the Flask app; nothing happens at import time."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.engine import URL, make_url

from framehive import __version__ as __version__  # the one version source

# Threads that use the database outside the work slots: the dispatcher's passes, the reaper, the channel upkeep, the
# blob collector and (PostgreSQL) the wake-up listener.
BACKGROUND_THREADS = 5


def _pool_size(app: Flask, url: URL) -> dict[str, int]:
    """A connection for every work slot and background thread. With SQLAlchemy's default of 5 (and 10 more opened
    and closed again as needed) threads holding a slot waited for a connection (4 % of the coordinator's CPU at
    1,000 agents, issue 16); a file or a server only (an in-memory SQLite database has a pool of its own kind)."""
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return {}
    return {"pool_size": int(app.config["FRAMEHIVE_WORK_SLOTS"]) + BACKGROUND_THREADS, "max_overflow": 10}


def create_app(test_config: dict[str, Any] | None = None, data_dir: str | Path | None = None) -> Flask:
    """Build a coordinator app; its state lives in ``data_dir`` unless the config says otherwise."""
    from . import (  # noqa: F401
        api,
        blob_collection,
        config,
        dashboard,
        ids,
        payments,
        rate_limits,
        schema,
        work_slots,
        worker_channel,
    )
    from .api import bodies
    from .caller_cache import CallerCache
    from .channel_upkeep import ChannelUpkeep
    from .db import configure_engine, db
    from .dispatch import Dispatcher
    from .errors import register_error_handlers
    from .logsafe import protect as protect_log
    from .reaper import Reaper
    from .storage import open_storage

    app = Flask(__name__)
    protect_log(app.logger)  # strangers' text in log lines: escaped and cut
    ids.init_app(app)  # before any route: ids in URLs fit the database
    data = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="framehive-"))
    data.mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(config.defaults(data))
    app.config.from_mapping(config.from_environment(app.config, os.environ))  # the admin's limits
    if test_config:
        app.config.from_mapping(test_config)
    # A server's connections can drop (a restart, a network cut): pinged before use. A SQLite file cannot: the
    # ping was a statement for every checkout (issue 16).
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    sqlite = url.get_backend_name() == "sqlite"
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": not sqlite, **_pool_size(app, url)})

    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
        schema.upgrade(db.engine)  # Alembic's revisions to head; refuses a database newer than this coordinator
    app.extensions["framehive_storage"] = open_storage(app.config["FRAMEHIVE_STORAGE"])
    app.extensions["framehive_dispatcher"] = Dispatcher()
    app.extensions["framehive_channel_upkeep"] = ChannelUpkeep(app)
    app.extensions["framehive_callers"] = CallerCache()
    register_error_handlers(app)
    rate_limits.init_app(app)
    bodies.init_app(app)
    work_slots.init_app(app)  # after the body hooks, which read no body
    api.register(app)
    dashboard.init_app(app)
    app.register_blueprint(worker_channel.bp)
    worker_channel.sock.init_app(app)
    reaper = Reaper(app)
    app.extensions["framehive_reaper"] = reaper
    if app.config["FRAMEHIVE_START_REAPER"]:
        reaper.start()
    blob_collection.init_app(app)  # its thread runs where the reaper's does, unless FRAMEHIVE_START_COLLECTOR is off
    return app
