"""``framehive-coordinator``: run the server and manage tokens against the same data dir / database."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__, config_sources, serving
from . import serve as serve_module
from .config import MAX_AGENTS_PER_TOKEN, MAX_NAMES_PER_TOKEN
from .config_sources import default_data_dir
from .schema import SchemaError

DEFAULT_PORT = 8400


def _add_store_args(parser: argparse.ArgumentParser) -> None:
    # Defaults are None so that the environment and the --config file can set them (config_sources.layered).
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="a TOML file of settings (default: FRAMEHIVE_CONFIG; flags, then FRAMEHIVE_* variables, "
                             "win over it)")
    parser.add_argument("--data-dir", type=Path,
                        help=f"where the SQLite database and blobs live (default: {default_data_dir()})")
    parser.add_argument("--db", help="SQLAlchemy database URL, e.g. postgresql+psycopg://user@host/framehive")
    parser.add_argument("--storage", help="blob storage URL (default: file://DATA_DIR/blobs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framehive-coordinator", description="Framehive coordinator")
    parser.add_argument("--version", action="version", version=f"framehive-coordinator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the coordinator (REST API + worker WebSocket)")
    serve.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, help=f"port; 0 picks a free one (default: {DEFAULT_PORT})")
    serve.add_argument("--server", choices=serve_module.SERVERS,
                       help="gunicorn (production; POSIX only) or werkzeug (development, Windows; no graceful stop) "
                            f"(default: {config_sources.SERVER_DEFAULTS['FRAMEHIVE_SERVER']})")
    serve.add_argument("--behind-proxy", type=_count, metavar="N",
                       help="trust the last N X-Forwarded-For/-Proto entries: only behind N reverse proxies of "
                            "yours, as clients forge these headers (default: 0)")
    serve.add_argument("--access-log", metavar="FILE", help="gunicorn's access log; '-': stdout (default), '': none")
    serve.add_argument("--graceful-timeout", type=_positive("seconds"), metavar="SECONDS",
                       help=f"on SIGTERM, how long requests under way may take to finish (default: "
                            f"{serving.GRACEFUL_TIMEOUT})")
    serve.add_argument("--lease-timeout", type=float, help="seconds before a silent worker loses its task")
    serve.add_argument("--heartbeat-interval", type=float, help="seconds between worker heartbeats")
    serve.add_argument("--request-timeout", type=_positive("seconds"), metavar="SECONDS",
                       help="drop a connection whose request (headers or body) stalls this long "
                            f"(default: {serving.READ_TIMEOUT})")
    serve.add_argument("--max-connections", type=_count, metavar="N",
                       help="connections served at once, worker WebSockets included; more get 503 "
                            f"(default: {serving.MAX_CONNECTIONS})")
    serve.add_argument("--max-connections-per-address", type=_count, metavar="N",
                       help="connections (behind a proxy: requests) from one IP address at once; 0: no limit "
                            f"(default: {serving.MAX_PER_ADDRESS})")
    serve.add_argument("--require-confinement", action="store_true",
                       help="refuse agents whose hello says their renders are not confined (no Landlock); their own "
                            "word: it stops honest misconfigured machines, not hostile ones "
                            "(also FRAMEHIVE_REQUIRE_CONFINEMENT=1)")
    serve.add_argument("--max-agents-per-token", type=_count, metavar="N",
                       help="agents one worker token may have online at once; 0: no limit (default: "
                            f"{MAX_AGENTS_PER_TOKEN})")
    serve.add_argument("--max-names-per-token", type=_count, metavar="N",
                       help="agent names (worker identities) one worker token may ever sign on with; 0: no limit "
                            f"(default: {MAX_NAMES_PER_TOKEN})")
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
    _add_create_db_arg(create)
    listing = token_sub.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--account", help="only this account's tokens")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_store_args(listing)
    _add_create_db_arg(listing)
    revoke = token_sub.add_parser("revoke", help="revoke a token at once (see 'token list' for ids)")
    revoke.add_argument("id", type=int, help="the token's id")
    _add_store_args(revoke)
    _add_create_db_arg(revoke)
    return parser


def _add_create_db_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--create-db", action="store_true",
                        help="create the database if it does not exist yet (by default a token command refuses: "
                             "a wrong --data-dir or --db would give tokens the running coordinator never sees)")


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
    for flag in ("max_agents_per_token", "max_names_per_token"):
        if getattr(args, flag, None) is not None:  # 0 is a value here: no limit
            config[f"FRAMEHIVE_{flag.upper()}"] = getattr(args, flag)
    return config


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Flags over FRAMEHIVE_* variables over the --config file (config_sources)."""
    flags = {**_app_config(args), config_sources.DATA_DIR_KEY: str(args.data_dir) if args.data_dir else None}
    for flag, name in _SERVER_FLAGS.items():
        flags[name] = getattr(args, flag, None)
    return config_sources.layered(config_sources.config_file(args.config, os.environ), os.environ, flags)


_SERVER_FLAGS = {"host": "FRAMEHIVE_HOST", "port": "FRAMEHIVE_PORT", "server": "FRAMEHIVE_SERVER",
                 "request_timeout": "FRAMEHIVE_REQUEST_TIMEOUT", "max_connections": "FRAMEHIVE_MAX_CONNECTIONS",
                 "max_connections_per_address": "FRAMEHIVE_MAX_CONNECTIONS_PER_ADDRESS",
                 "behind_proxy": "FRAMEHIVE_BEHIND_PROXY", "access_log": "FRAMEHIVE_ACCESS_LOG",
                 "graceful_timeout": "FRAMEHIVE_GRACEFUL_TIMEOUT"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        if args.command == "serve":
            return serve_module.run(settings)
        return _token(args, settings)
    except config_sources.SettingsError as exc:
        print(f"framehive-coordinator: error: {exc}", file=sys.stderr)
        return 2
    except SchemaError as exc:  # e.g. a database made by a newer coordinator
        print(f"framehive-coordinator: error: {exc}", file=sys.stderr)
        return 1


def _token(args: argparse.Namespace, settings: dict[str, Any]) -> int:
    """``token create|list|revoke`` against the store; errors are a message on stderr and exit status 1. Says on
    stderr which database it used (stdout is the token, for scripts), and creates none unless --create-db."""
    from . import create_app, existing_database
    from .config import defaults
    from .db import db
    from .errors import ApiError

    data_dir = config_sources.data_dir(settings)
    url = settings.get(config_sources.DATABASE_KEY) or defaults(data_dir)["SQLALCHEMY_DATABASE_URI"]
    if not args.create_db and not existing_database.exists(url):
        print(f"framehive-coordinator: error: no coordinator database at {existing_database.display(url)}; "
              "give the --data-dir / --db (or --config) the coordinator runs with, or --create-db to make a new "
              "one", file=sys.stderr)
        return 1
    print(f"database: {existing_database.display(url)}", file=sys.stderr)
    app_settings = config_sources.app_settings(settings)
    app = create_app({**app_settings, "FRAMEHIVE_START_REAPER": False, "FRAMEHIVE_START_COLLECTOR": False},
                     data_dir=data_dir)
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


if __name__ == "__main__":
    sys.exit(main())
