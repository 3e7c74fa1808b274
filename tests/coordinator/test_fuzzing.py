"""Fuzzing the REST API from its own OpenAPI document (schemathesis), with a token of each kind.

Every operation of the document gets requests generated from its parameters and body schemas, valid ones and
invalid ones, sent by a user, a worker and an admin token to the real app (the WSGI app in process, on a real
SQLite and a real PostgreSQL database, and its blob store) holding the authorization matrix's world: jobs of two
artists, verified frames, a claim, a paused job, leases of a task and a check, a suspended and blocklisted agent.
Every answer must be no 500 and must match the document: a status code it lists, its content type, its headers
(Retry-After on a 429) and its JSON schema (response objects are strict: a field the document does not name
fails).

Bounded and deterministic: a few examples per operation and token (``MAX_EXAMPLES``), derandomized, no example
database (about 30 s per database on a 2-core machine). Besides random ids, each operation gets ids of things
that exist (``Fuzzed.known_ids``), so the fuzzer also reaches the answers of success. Rate limits are off for
the run (the fuzzer is one token sending as fast as it can; the limits have their own tests).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from framehive.coordinator.api.openapi import openapi_document
from framehive.coordinator.auth import create_token, hash_token
from framehive.coordinator.db import db
from framehive.coordinator.models import ApiToken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.coordinator.test_authorization_matrix import World, build_world, close, make_app
from tests.farm import make_scene

MAX_EXAMPLES = 40
CALLERS = {"user": "alice", "worker": "worker-lease", "admin": "admin"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


class Fuzzed:
    """The app, the world in it, and a token the fuzzer may revoke in place of the callers' own."""

    def __init__(self, app: Flask, world: World) -> None:
        self.app, self.world = app, world
        with app.app_context():
            self.decoy = db.session.execute(db.select(ApiToken.id).filter_by(
                token_hash=hash_token(create_token("user", "decoy")))).scalar_one()
            self.callers = set(db.session.execute(db.select(ApiToken.id).where(ApiToken.token_hash.in_(
                [hash_token(secret) for secret in world.tokens.values()]))).scalars())

    def known_ids(self, path: str) -> list[dict[str, Any]]:
        """Path parameters naming things that exist (random ids mostly name nothing): alice's and bob's side of
        the world, each as far as the path has parameters."""
        w = self.world
        sides = [{"job_id": w.job_a, "number": 1, "sha256": w.scene_a, "worker_id": w.agents["worker-lease"],
                  "task_id": w.task, "handle": w.check, "token_id": self.decoy, "upload": "u" * 32},
                 {"job_id": w.job_b, "number": w.task_frame, "sha256": w.scene_b, "worker_id": w.agents["worker-idle"],
                  "task_id": w.done_task, "handle": w.check, "token_id": self.decoy, "upload": "u" * 32}]
        names = set(re.findall(r"{(\w+)}", path))
        return [{name: side[name] for name in names} for side in sides] if names else []


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzzed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           sample_scene: Path) -> Iterator[Fuzzed]:
    root = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    url = request.getfixturevalue("postgres").create_database() if request.param == "postgresql" else None
    app = make_app(root / "data", url)
    app.config.update(FRAMEHIVE_READ_RATE=0, FRAMEHIVE_WRITE_RATE=0, FRAMEHIVE_WORKER_RATE=0)
    other = make_scene(root / "other.blend", frames=6)
    try:
        yield Fuzzed(app, build_world(app, sample_scene.read_bytes(), other.read_bytes()))
    finally:
        close(app)


@pytest.fixture(scope="module")
def api_schema(fuzzed: Fuzzed) -> Any:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzzed.app)


def operations() -> list[Any]:
    """Every operation of the document but the WebSocket (the worker channel has its own tests)."""
    document = openapi_document()
    return [pytest.param(path, method, id=f"{method.upper()} {path.removeprefix('/api/v1')}")
            for path, item in document["paths"].items() for method in item
            if method in ("get", "post", "put", "delete") and path != "/api/v1/worker/ws"]


@pytest.mark.parametrize("kind", list(CALLERS))
@pytest.mark.parametrize(("path", "method"), operations())
def test_every_answer_matches_the_document(api_schema: Any, fuzzed: Fuzzed, path: str, method: str,
                                           kind: str) -> None:
    operation = api_schema[path][method.upper()]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE),
                      *(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known)
                        for known in fuzzed.known_ids(path)))
    headers = {"Authorization": f"Bearer {fuzzed.world.tokens[CALLERS[kind]]}"}

    @given(case=cases)
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        if case.path_parameters and case.path_parameters.get("token_id") in fuzzed.callers:
            case.path_parameters["token_id"] = fuzzed.decoy  # the run's own tokens must keep working
        case.call_and_validate(headers=headers, checks=CHECKS)

    fuzz()
