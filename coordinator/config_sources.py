"""Where a coordinator's settings come from: command-line flags, then the environment, then a TOML file, then the
defaults of config.py (and of the server, below).

Every setting has one name in each place: ``max_live_jobs`` in the file, ``FRAMEHIVE_MAX_LIVE_JOBS`` in the
environment (and in Flask's config). ``db`` is SQLAlchemy's ``SQLALCHEMY_DATABASE_URI`` (``FRAMEHIVE_DB``).
A key the file does not know, or a value of the wrong type, stops the start with a message naming it: a typo must
not silently leave a limit at its default.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import config, serving

PREFIX = "FRAMEHIVE_"
DATABASE_KEY = "SQLALCHEMY_DATABASE_URI"
# Flask settings that are the program's own wiring, not the admin's to set.
INTERNAL = frozenset({"SOCK_SERVER_OPTIONS", "FRAMEHIVE_DATA_DIR"})
# The server's settings (framehive-coordinator serve): not Flask's, the same three sources.
SERVER_DEFAULTS: dict[str, Any] = {
    "FRAMEHIVE_HOST": "127.0.0.1",
    "FRAMEHIVE_PORT": 8400,
    "FRAMEHIVE_SERVER": "werkzeug" if os.name == "nt" else "gunicorn",  # gunicorn runs on POSIX only
    "FRAMEHIVE_REQUEST_TIMEOUT": serving.READ_TIMEOUT,
    "FRAMEHIVE_MAX_CONNECTIONS": serving.MAX_CONNECTIONS,
    "FRAMEHIVE_MAX_CONNECTIONS_PER_ADDRESS": serving.MAX_PER_ADDRESS,
    "FRAMEHIVE_BEHIND_PROXY": 0,
    "FRAMEHIVE_ACCESS_LOG": "-",
    "FRAMEHIVE_GRACEFUL_TIMEOUT": serving.GRACEFUL_TIMEOUT,
}
# Where the data lives; the database and blob store default to places under it.
DATA_DIR_KEY = "FRAMEHIVE_DATA_DIR"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "framehive" / "coordinator"


def data_dir(settings: Mapping[str, Any]) -> Path:
    return Path(settings.get(DATA_DIR_KEY) or default_data_dir())


class SettingsError(ValueError):
    """A setting that cannot be used: unknown, of the wrong type, or out of range."""


def settable() -> dict[str, Any]:
    """Every setting an admin may set, by its Flask/environment name, with its default (what gives its type)."""
    flask = {k: v for k, v in config.defaults(Path("/")).items() if k not in INTERNAL}
    flask = {k: v for k, v in flask.items() if (k.startswith(PREFIX) or k == DATABASE_KEY)
             and type(v) in (bool, int, float, str)}  # a table or list has no environment form
    return {**flask, **SERVER_DEFAULTS, DATA_DIR_KEY: ""}


def file_key(name: str) -> str:
    """``FRAMEHIVE_MAX_LIVE_JOBS`` -> ``max_live_jobs``; the database URL is ``db``."""
    return "db" if name == DATABASE_KEY else name.removeprefix(PREFIX).lower()


def env_name(name: str) -> str:
    return "FRAMEHIVE_DB" if name == DATABASE_KEY else name


def from_file(path: Path) -> dict[str, Any]:
    """The settings a TOML file sets (flat keys, e.g. ``max_live_jobs = 50``), checked against their defaults."""
    try:
        with path.open("rb") as handle:
            table = tomllib.load(handle)
    except OSError as exc:
        raise SettingsError(f"cannot read the configuration file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    known = {file_key(name): name for name in settable()}
    found: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise SettingsError(f"{path}: unknown setting {key!r}")
        found[known[key]] = _checked(f"{path}: {key}", value, settable()[known[key]])
    return found


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings ``environ`` sets (``FRAMEHIVE_MAX_LIVE_JOBS=50``), parsed as the type of their default."""
    found: dict[str, Any] = {}
    for name, default in settable().items():
        text = environ.get(env_name(name))
        if text is not None:
            found[name] = _checked(f"{env_name(name)}={text!r}", _parse(text, default), default)
    return found


def _parse(text: str, default: Any) -> Any:
    """Environment text as the type of ``default`` (left as text when it does not parse: the check says why)."""
    text = text.strip()
    if isinstance(default, bool):
        lowered = text.lower()
        return {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}.get(lowered, text)
    for kind in (int, float) if isinstance(default, float) else (int,) if isinstance(default, int) else ():
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _checked(where: str, value: Any, default: Any) -> Any:
    """``value`` if it has the type of ``default`` (an integer is a fine float) and is a finite number >= 0."""
    expected = type(default)
    if expected is float and type(value) is int:
        value = float(value)
    if type(value) is not expected:
        raise SettingsError(f"{where}: expected {_kind_name(expected)}")
    if expected in (int, float) and (not math.isfinite(value) or value < 0):
        raise SettingsError(f"{where}: expected a finite number of at least 0")
    return value


def _kind_name(kind: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(kind, kind.__name__)


def layered(file: Path | None, environ: Mapping[str, str], flags: Mapping[str, Any]) -> dict[str, Any]:
    """Settings from every source, the first that sets one winning: ``flags`` (those not None), the environment,
    the file. Settings none of them sets are left out (the defaults apply)."""
    settings = from_file(file) if file else {}
    settings.update(from_environment(environ))
    settings.update({name: value for name, value in flags.items() if value is not None})
    return settings


def server_setting(settings: Mapping[str, Any], name: str) -> Any:
    return settings.get(name, SERVER_DEFAULTS[name])


def app_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The Flask settings among ``settings`` (the server's and the data dir are not Flask's)."""
    return {k: v for k, v in settings.items() if k not in SERVER_DEFAULTS and k != DATA_DIR_KEY}


def config_file(given: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The configuration file: the one given (--config), else the one FRAMEHIVE_CONFIG names, if any."""
    named = environ.get("FRAMEHIVE_CONFIG")
    return given or (Path(named) if named else None)


def from_process_environment() -> dict[str, Any]:
    """Settings for a coordinator started by someone else's server (wsgi.py): FRAMEHIVE_* variables over the file
    that FRAMEHIVE_CONFIG names."""
    return layered(config_file(None, os.environ), os.environ, {})
