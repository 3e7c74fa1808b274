"""``framehive-coordinator serve --max-agents-per-token N --max-names-per-token N``: the per-token limits on agents
online and agent names, set on the command line (over FRAMEHIVE_MAX_*_PER_TOKEN), reach a real coordinator."""

from __future__ import annotations

from pathlib import Path

import pytest
from framehive.coordinator import cli
from framehive.protocol import messages as m

from tests.farm import Farm, wait_for
from tests.griefer import hello
from tests.live import farm_database


def test_the_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMEHIVE_MAX_AGENTS_PER_TOKEN", "3")
    monkeypatch.setenv("FRAMEHIVE_MAX_NAMES_PER_TOKEN", "7")
    args = cli.build_parser().parse_args(["serve", "--max-agents-per-token", "1", "--max-names-per-token", "0"])
    settings = cli._settings(args)
    assert (settings["FRAMEHIVE_MAX_AGENTS_PER_TOKEN"], settings["FRAMEHIVE_MAX_NAMES_PER_TOKEN"]) == (1, 0)
    unset = cli._settings(cli.build_parser().parse_args(["serve"]))
    assert (unset["FRAMEHIVE_MAX_AGENTS_PER_TOKEN"], unset["FRAMEHIVE_MAX_NAMES_PER_TOKEN"]) == (3, 7)
    for bad in ("-1", "many"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["serve", "--max-agents-per-token", bad])


def online(farm: Farm, name: str) -> bool:
    from framehive.coordinator.db import db
    from framehive.coordinator.models import Worker

    with farm_database(farm):
        return bool(db.session.execute(db.select(Worker.online).filter_by(name=name)).scalar_one())


def test_a_coordinator_started_with_them_holds_a_token_to_them(tmp_path: Path) -> None:
    farm = Farm(tmp_path / "farm", coordinator_args=["--max-agents-per-token", "1", "--max-names-per-token", "2"])
    farm.start_coordinator()
    try:
        token = farm.token("worker", "grief")
        first, answer = hello(farm.url, token, "box-0")
        assert isinstance(answer, m.Welcome), answer
        second, refused = hello(farm.url, token, "box-1")
        second.close()
        assert isinstance(refused, m.Error) and refused.code == "too_many_agents" and "1 agents" in refused.message
        first.close()
        wait_for(lambda: not online(farm, "box-0"), 10, "box-0 offline")
        again, answer = hello(farm.url, token, "box-1")  # one online again: a second name is fine
        again.close()
        assert isinstance(answer, m.Welcome), answer
        wait_for(lambda: not online(farm, "box-1"), 10, "box-1 offline")
        third, refused = hello(farm.url, token, "box-2")
        third.close()
        assert isinstance(refused, m.Error) and refused.code == "too_many_names" and "2 agent names" in refused.message
    finally:
        farm.stop()
