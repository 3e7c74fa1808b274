"""The limits against bombs are the admin's to set in the coordinator's environment, like the other limits:
the .blend parser's (FRAMEHIVE_PARSE_*), the decode slots and the JSON body limits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from framehive.coordinator import config, create_app
from framehive.coordinator.scene_inspect import limits

from tests.farm import Farm
from tests.live import mint_tokens

SETTINGS = {
    "FRAMEHIVE_PARSE_MEMORY": ("1073741824", 1024**3),
    "FRAMEHIVE_PARSE_CPU_SECONDS": ("7", 7),
    "FRAMEHIVE_PARSE_WALL_SECONDS": ("9.5", 9.5),
    "FRAMEHIVE_PARSE_INFLATED_BYTES": ("1000", 1000),
    "FRAMEHIVE_PARSE_MAX_BLOCKS": ("50", 50),
    "FRAMEHIVE_DECODE_SLOTS": ("1", 1),
    "FRAMEHIVE_DECODE_WAIT": ("0.5", 0.5),
    "FRAMEHIVE_MAX_JSON_BYTES": ("2048", 2048),
    "FRAMEHIVE_MAX_JSON_DEPTH": ("3", 3),
    "FRAMEHIVE_MAX_JSON_VALUES": ("5000", 5000),
}


def test_each_limit_is_read_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(SETTINGS) <= set(config.ENVIRONMENT_SETTINGS)
    for name, (text, _) in SETTINGS.items():
        monkeypatch.setenv(name, text)
    app = create_app({"TESTING": True, "FRAMEHIVE_START_REAPER": False}, data_dir=tmp_path)
    assert {name: app.config[name] for name in SETTINGS} == {name: value for name, (_, value) in SETTINGS.items()}
    with app.app_context():
        parse = limits()
    assert (parse.memory_bytes, parse.cpu_seconds, parse.wall_seconds, parse.inflated_bytes, parse.max_blocks) == (
        1024**3, 7, 9.5, 1000, 50), "the parser gets them"


@pytest.mark.parametrize("text", ["lots", "-1", "nan"])
def test_a_bad_value_stops_the_start_naming_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        text: str) -> None:
    monkeypatch.setenv("FRAMEHIVE_PARSE_MEMORY", text)
    with pytest.raises(ValueError, match="FRAMEHIVE_PARSE_MEMORY"):
        create_app({"TESTING": True, "FRAMEHIVE_START_REAPER": False}, data_dir=tmp_path)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Farm, str]]:
    for name in ("FRAMEHIVE_PARSE_INFLATED_BYTES", "FRAMEHIVE_MAX_JSON_BYTES", "FRAMEHIVE_MAX_JSON_DEPTH"):
        monkeypatch.setenv(name, SETTINGS[name][0])
    farm = Farm(tmp_path / "farm")
    farm.start_coordinator()
    try:
        yield farm, mint_tokens(farm, alice=("user", "alice"))["alice"]
    finally:
        farm.stop()


def test_a_running_coordinator_applies_them(site: tuple[Farm, str], sample_scene: Path) -> None:
    farm, token = site
    headers = {"Authorization": f"Bearer {token}"}

    def post(body: bytes) -> dict:  # type: ignore[type-arg]
        response = requests.post(f"{farm.url}/api/v1/jobs", data=body, timeout=60,
                                 headers={**headers, "Content-Type": "application/json"})
        return {"status": response.status_code, **response.json()["error"]}

    assert post(json.dumps({"scene": "0" * 64, "name": "x" * 3000}).encode())["status"] == 413  # over 2048 bytes
    deep = post(json.dumps({"scene": "0" * 64, "assets": {"a": [[["deep"]]]}}).encode())
    assert (deep["status"], deep["code"]) == (400, "too_deep")
    scene = sample_scene.read_bytes()
    sha = hashlib.sha256(scene).hexdigest()
    assert requests.put(f"{farm.url}/api/v1/blobs/{sha}", data=scene, headers=headers, timeout=60).status_code == 201
    refused = post(json.dumps({"scene": sha, "frames": "1"}).encode())
    assert (refused["status"], refused["code"]) == (400, "scene_too_large"), refused
    assert "1000" in refused["message"] or "inflat" in refused["message"], refused["message"]
