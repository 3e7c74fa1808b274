"""``framehive-coordinator``: run the server and manage tokens against the same data dir / database."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import serving

DEFAULT_PORT = 8400


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "framehive" / "coordinator"


def _add_store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(),
                        help="where the SQLite database and blobs live (default: %(default)s)")
    parser.add_argument("--db", help="SQLAlchemy database URL, e.g. postgresql+psycopg://user@host/framehive")
    parser.add_argument("--storage", help="blob storage URL (default: file://DATA_DIR/blobs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framehive-coordinator", description="Framehive coordinator")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the coordinator (REST API + worker WebSocket)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port; 0 picks a free one (default: %(default)s)")
    serve.add_argument("--lease-timeout", type=float, help="seconds before a silent worker loses its task")
    serve.add_argument("--heartbeat-interval", type=float, help="seconds between worker heartbeats")
    serve.add_argument("--request-timeout", type=_positive("seconds"), default=serving.READ_TIMEOUT, metavar="SECONDS",
                       help="drop a connection whose request (headers or body) stalls this long "
                            "(default: %(default)s)")
    serve.add_argument("--max-connections", type=_count, default=serving.MAX_CONNECTIONS, metavar="N",
                       help="connections served at once, worker WebSockets included; more get 503 "
                            "(default: %(default)s)")
    serve.add_argument("--max-connections-per-address", type=_count, default=serving.MAX_PER_ADDRESS, metavar="N",
                       help="connections from one IP address at once; 0: no limit, e.g. behind a proxy "
                            "(default: %(default)s)")
    serve.add_argument("--require-confinement", action="store_true",
                       help="refuse agents whose hello says their renders are not confined (no Landlock); their own "
                            "word: it stops honest misconfigured machines, not hostile ones "
                            "(also FRAMEHIVE_REQUIRE_CONFINEMENT=1)")
    _add_store_args(serve)
    token = sub.add_parser("token", help="manage API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token and print it (it is shown only once)")
    create.add_argument("--kind", choices=("user", "worker", "admin"), required=True)
    create.add_argument("--name", required=True, help="token name; also the account name unless --account")
    create.add_argument("--account", help="account that owns the token (created if new)")
    create.add_argument("--trusted", action="store_true",
                        help="mark the account trusted: the network's own nodes, never sampled, may arbitrate")
    create.add_argument("--expires-in", type=_positive("days"), metavar="DAYS",
                        help="the token stops working after this many days (fractions allowed; default: never)")
    _add_store_args(create)
    listing = token_sub.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--account", help="only this account's tokens")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_store_args(listing)
    revoke = token_sub.add_parser("revoke", help="revoke a token at once (see 'token list' for ids)")
    revoke.add_argument("id", type=int, help="the token's id")
    _add_store_args(revoke)
    return parser


def _positive(unit: str) -> Callable[[str], float]:
    """An argparse type for a positive, finite number of ``unit`` (seconds, days)."""
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of {unit}: {value!r}") from None
        if not math.isfinite(number) or number <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive number of {unit}: {value!r}")
        return number
    return parse


def _count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {value!r}")
    return count


def _app_config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if args.db:
        config["SQLALCHEMY_DATABASE_URI"] = args.db
    if args.storage:
        config["FRAMEHIVE_STORAGE"] = args.storage
    if getattr(args, "lease_timeout", None):
        config["FRAMEHIVE_LEASE_TIMEOUT"] = args.lease_timeout
    if getattr(args, "heartbeat_interval", None):
        config["FRAMEHIVE_HEARTBEAT_INTERVAL"] = args.heartbeat_interval
    if getattr(args, "require_confinement", False):  # the flag only switches it on; the environment may too
        config["FRAMEHIVE_REQUIRE_CONFINEMENT"] = True
    return config


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return _token(args)


def _token(args: argparse.Namespace) -> int:
    """``token create|list|revoke`` against the store; errors are a message on stderr and exit status 1."""
    from . import create_app
    from .db import db
    from .errors import ApiError

    app = create_app({**_app_config(args), "FRAMEHIVE_START_REAPER": False}, data_dir=args.data_dir)
    command = {"create": _token_create, "list": _token_list, "revoke": _token_revoke}[args.token_command]
    with app.app_context():
        try:
            command(args)
        except (ApiError, ValueError) as exc:
            print(f"framehive-coordinator: error: {exc}", file=sys.stderr)
            return 1
        finally:
            db.session.remove()
            db.engine.dispose()
    return 0


def _token_create(args: argparse.Namespace) -> None:
    from .auth import create_token

    expires_in = args.expires_in * 86400 if args.expires_in is not None else None
    # stdout is only the secret, so scripts can capture it.
    print(create_token(args.kind, args.name, args.account, trusted=args.trusted, expires_in=expires_in))


def _token_list(args: argparse.Namespace) -> None:
    from .auth import list_tokens

    tokens = list_tokens(args.account)
    if args.json:
        print(json.dumps(tokens, indent=2))
        return
    if not tokens:
        print("no tokens")
        return
    columns = ("id", "account", "kind", "name", "state", "created_at", "expires_at", "revoked_at")
    rows = [[str(t[c]) if t[c] is not None else "-" for c in columns] for t in tokens]
    header = [c.replace("_at", "").upper() for c in columns]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _token_revoke(args: argparse.Namespace) -> None:
    from .auth import revoke_token

    token = revoke_token(args.id)
    print(f"revoked token {token['id']} ({token['kind']} {token['name']!r} of account {token['account']!r})")


def _serve(args: argparse.Namespace) -> int:
    from . import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app(_app_config(args), data_dir=args.data_dir)
    # Werkzeug's threaded server: one thread per request and per worker WebSocket (flask-sock needs a
    # server that hands over the raw socket; Werkzeug and gunicorn's gthread worker both do), with limits.
    limits = serving.ServerLimits(read_timeout=args.request_timeout, max_connections=args.max_connections,
                                  max_per_address=args.max_connections_per_address)
    server = serving.make_server(args.host, args.port, app, limits)
    stop = threading.Event()

    def _shutdown(signum: int, _frame: object) -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    print(f"Framehive coordinator listening on http://{args.host}:{server.port}", flush=True)
    try:
        server.serve_forever()
    finally:
        app.extensions["framehive_reaper"].stop()
    print("coordinator stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
