"""Settings from flags, FRAMEHIVE_* variables and a TOML file: precedence, every setting reachable from each, and
refusals that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from framehive.coordinator import cli, config_sources
from framehive.coordinator.config_sources import SettingsError, env_name, file_key, layered, settable

from tests.farm import REPO


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, int | float) else f'"{value}"'


def other_value(default: object) -> object:
    """A valid value that differs from ``default`` (so a test sees it was taken)."""
    if isinstance(default, bool):
        return not default
    if isinstance(default, int | float):
        return type(default)(default + 1)
    return "sqlite:////elsewhere.sqlite3" if "sqlite" in str(default) else f"{default}-other"


def test_every_setting_can_be_set_from_the_file_and_from_the_environment(tmp_path: Path):
    wanted = {name: other_value(default) for name, default in settable().items()}
    lines = [f"{file_key(name)} = {toml_value(value)}" for name, value in wanted.items()]
    assert layered(write(tmp_path / "all.toml", "\n".join(lines)), {}, {}) == wanted
    environ = {env_name(name): str(value).lower() if isinstance(value, bool) else str(value)
               for name, value in wanted.items()}
    assert layered(None, environ, {}) == wanted
    assert {"max_live_jobs", "db", "storage", "data_dir", "port", "behind_proxy"} <= {file_key(n) for n in wanted}


def test_flags_win_over_the_environment_which_wins_over_the_file(tmp_path: Path):
    file = write(tmp_path / "framehive.toml", 'max_live_jobs = 5\nread_rate = 7\nport = 9000\nstorage = "file:///f"\n')
    environ = {"FRAMEHIVE_READ_RATE": "8.5", "FRAMEHIVE_PORT": "9001", "FRAMEHIVE_TOKEN": "not a setting"}
    settings = layered(file, environ, {"FRAMEHIVE_PORT": 9002, "FRAMEHIVE_STORAGE": None})
    assert settings == {"FRAMEHIVE_MAX_LIVE_JOBS": 5, "FRAMEHIVE_READ_RATE": 8.5, "FRAMEHIVE_PORT": 9002,
                        "FRAMEHIVE_STORAGE": "file:///f"}
    assert isinstance(settings["FRAMEHIVE_MAX_LIVE_JOBS"], int)


def test_cli_flags_environment_and_file_reach_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    file = write(tmp_path / "framehive.toml", f'data_dir = "{tmp_path / "data"}"\nrequest_timeout = 3\n'
                                              'max_connections = 50\nlease_timeout = 12\n')
    monkeypatch.setenv("FRAMEHIVE_MAX_CONNECTIONS", "60")
    args = cli.build_parser().parse_args(["serve", "--config", str(file), "--port", "0", "--behind-proxy", "1"])
    settings = cli._settings(args)
    assert settings["FRAMEHIVE_DATA_DIR"] == str(tmp_path / "data")
    assert settings["FRAMEHIVE_REQUEST_TIMEOUT"] == 3.0 and settings["FRAMEHIVE_LEASE_TIMEOUT"] == 12.0
    assert settings["FRAMEHIVE_MAX_CONNECTIONS"] == 60 and settings["FRAMEHIVE_PORT"] == 0
    assert settings["FRAMEHIVE_BEHIND_PROXY"] == 1 and "FRAMEHIVE_HOST" not in settings  # default applies
    monkeypatch.setenv("FRAMEHIVE_CONFIG", str(file))  # the file named in the environment, without --config
    assert cli._settings(cli.build_parser().parse_args(["token", "list"]))["FRAMEHIVE_REQUEST_TIMEOUT"] == 3.0


@pytest.mark.parametrize(("text", "message"), [
    ("max_live_job = 5", "unknown setting 'max_live_job'"),
    ("[limits]\nport = 1", "unknown setting 'limits'"),
    ('max_live_jobs = "5"', "max_live_jobs: expected an integer"),
    ("max_live_jobs = 5.5", "max_live_jobs: expected an integer"),
    ("max_live_jobs = true", "max_live_jobs: expected an integer"),
    ("read_rate = -1", "read_rate: expected a finite number of at least 0"),
    ("read_rate = inf", "read_rate: expected a finite number of at least 0"),
    ("start_reaper = 1", "start_reaper: expected true or false"),
    ("db = 5", "db: expected a string"),
    ("max_live_jobs = ", "not valid TOML"),
])
def test_a_bad_file_is_refused_naming_the_setting(tmp_path: Path, text: str, message: str):
    with pytest.raises(SettingsError, match=message.replace("[", r"\[")):
        config_sources.from_file(write(tmp_path / "bad.toml", text))


@pytest.mark.parametrize(("name", "text", "message"), [
    ("FRAMEHIVE_MAX_LIVE_JOBS", "many", "expected an integer"),
    ("FRAMEHIVE_MAX_LIVE_JOBS", "2.5", "expected an integer"),
    ("FRAMEHIVE_READ_RATE", "-3", "at least 0"),
    ("FRAMEHIVE_READ_RATE", "nan", "at least 0"),
    ("FRAMEHIVE_START_REAPER", "maybe", "expected true or false"),
])
def test_a_bad_environment_value_is_refused_naming_the_variable(name: str, text: str, message: str):
    with pytest.raises(SettingsError, match=f"{name}=.*{message}"):
        config_sources.from_environment({name: text})


def test_a_missing_file_and_a_bad_one_stop_the_command_with_exit_status_2(tmp_path: Path, capsys):  # type: ignore[no-untyped-def]
    assert cli.main(["token", "list", "--config", str(tmp_path / "absent.toml")]) == 2
    assert "cannot read the configuration file" in capsys.readouterr().err
    bad = write(tmp_path / "bad.toml", "max_live_job = 5\n")
    assert cli.main(["serve", "--config", str(bad), "--port", "0"]) == 2
    assert "unknown setting 'max_live_job'" in capsys.readouterr().err


def test_the_example_configuration_in_deploy_is_valid():
    settings = config_sources.from_file(REPO / "deploy" / "coordinator.toml")
    assert settings["FRAMEHIVE_BEHIND_PROXY"] == 1 and settings["FRAMEHIVE_HOST"] == "127.0.0.1"
    assert settings["FRAMEHIVE_DATA_DIR"] == "/var/lib/framehive"
