"""Capabilities (issue 13, point 6): the scene's Blender read from the .blend, the artist's pin, device kind and
the cap on agents, on the submit API and in the claim queries, on SQLite and PostgreSQL.

The agents here are Worker rows (what a hello writes); tests/e2e/test_capabilities.py has real agents.
"""

from __future__ import annotations

from typing import Any

import pytest
from framehive.coordinator import capabilities, leases, outcomes
from framehive.coordinator.db import db
from framehive.coordinator.models import Account, Check, Job, Task, Worker
from framehive.coordinator.verification import leasing
from framehive.protocol import blender_versions as bv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.coordinator.kit import render

# The sample scene is saved by the bpy wheel of the venv: Blender 5.0.1 writes file version 5.0.
SCENE_BLENDER = "5.0"


def submit(api, scene_sha: str, **fields: Any):  # type: ignore[no-untyped-def]
    return api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-4", "chunk": 1, **fields})


def agent(name: str, blender: str = "5.0.1", device: str = "CPU", roles: list[str] | None = None) -> int:
    """A worker row of its own account, online: what a hello with these values leaves (inside an app context)."""
    account = Account(name=f"{name}-owner")
    db.session.add(account)
    db.session.flush()
    worker = Worker(account_id=account.id, name=name, online=True, blender_version=blender, device=device,
                    roles=roles or ["render", "verify"])
    db.session.add(worker)
    db.session.commit()
    return worker.id


def claimed_job(worker_id: int) -> int | None:
    task = leases.claim_task(worker_id)
    return task.job_id if task is not None else None


def test_the_job_records_the_blender_that_saved_the_scene(api, scene_sha):  # type: ignore[no-untyped-def]
    job = submit(api, scene_sha).get_json()
    assert job["requirements"] == {"blender": SCENE_BLENDER, "blender_version": None, "max_workers": None,
                                   "device": "any", "summary": "Blender ≥ 5.0"}
    pinned = submit(api, scene_sha, blender_version="5.0.1", max_workers=2, device="gpu").get_json()
    assert pinned["requirements"] == {"blender": SCENE_BLENDER, "blender_version": "5.0.1", "max_workers": 2,
                                      "device": "gpu", "summary": "Blender 5.0.1, a GPU, at most 2 agent(s) at once"}


@pytest.mark.parametrize(("fields", "code"), [
    ({"blender_version": "4.2"}, "bad_blender_version"),  # older than the Blender that saved the scene
    ({"blender_version": "4.5.3"}, "bad_blender_version"),
    ({"blender_version": "5"}, "bad_blender_version"),
    ({"blender_version": "5.0.1 Alpha"}, "bad_blender_version"),
    ({"blender_version": "٥.٠"}, "bad_blender_version"),  # Arabic-Indic digits: int() reads them, we do not
    ({"blender_version": 5.0}, "bad_blender_version"),
    ({"max_workers": 0}, "bad_request"),
    ({"max_workers": True}, "bad_request"),
    ({"max_workers": "2"}, "bad_request"),
    ({"device": "GPU"}, "bad_request"),
    ({"device": "optix"}, "bad_request"),
])
def test_bad_requirements_are_refused_before_anything_is_written(app, api, scene_sha, fields,  # type: ignore[no-untyped-def]
                                                                 code):
    response = submit(api, scene_sha, **fields)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] == code
    with app.app_context():
        assert db.session.execute(select(Job)).first() is None


def test_an_older_blender_is_not_given_the_scene(app, api, scene_sha):  # type: ignore[no-untyped-def]
    job = submit(api, scene_sha).get_json()
    with app.app_context():
        old = agent("old", blender="4.5.3")
        odd = agent("odd", blender="Blender")  # a version we cannot read fits no scene that needs one
        assert claimed_job(old) is None and claimed_job(odd) is None
        assert claimed_job(agent("new", blender="5.1.0 Alpha")) == job["id"]
        assert claimed_job(agent("same", blender="5.0.0")) == job["id"]  # any 5.0.x opens a 5.0 file


def test_a_pin_takes_that_release_only(app, api, scene_sha):  # type: ignore[no-untyped-def]
    exact = submit(api, scene_sha, blender_version="5.0.1", priority=90).get_json()
    series = submit(api, scene_sha, blender_version="5.0", priority=80).get_json()
    with app.app_context():
        newer = agent("newer", blender="5.1.0")
        assert claimed_job(newer) is None  # newer than the pin: not that Blender
        other_patch = agent("patch", blender="5.0.2")
        assert claimed_job(other_patch) == series["id"]
        assert claimed_job(agent("exact", blender="5.0.1")) == exact["id"]


def test_device_kind(app, api, scene_sha):  # type: ignore[no-untyped-def]
    gpu_only = submit(api, scene_sha, device="gpu", priority=90).get_json()
    cpu_only = submit(api, scene_sha, device="cpu", priority=80).get_json()
    with app.app_context():
        assert claimed_job(agent("cpu")) == cpu_only["id"]
        assert claimed_job(agent("optix", device="OPTIX")) == gpu_only["id"]
        assert claimed_job(agent("metal", device="METAL")) == gpu_only["id"]


def test_max_workers_counts_distinct_agents_rendering_at_once(app, api, scene_sha):  # type: ignore[no-untyped-def]
    capped = submit(api, scene_sha, max_workers=2, priority=90).get_json()
    other = submit(api, scene_sha).get_json()
    with app.app_context():
        first, second, third = agent("first"), agent("second"), agent("third")
        assert claimed_job(first) == capped["id"]
        assert claimed_job(second) == capped["id"]
        assert claimed_job(third) == other["id"]  # two agents render the capped job: the third gets other work
        assert claimed_job(first) == capped["id"]  # one already rendering it may take more of it
        finished = db.session.execute(select(Task).filter_by(job_id=capped["id"], worker_id=second)).scalar_one()
        leases.hand_back(finished)  # back in the queue: second no longer renders the job
        third_task = db.session.execute(select(Task).filter_by(worker_id=third, state="leased")).scalar_one()
        leases.hand_back(third_task)
        assert claimed_job(third) == capped["id"]


def test_the_default_chunk_spreads_over_the_agents_it_may_use(app, api, scene_sha):  # type: ignore[no-untyped-def]
    with app.app_context():
        for i in range(4):
            agent(f"w{i}")
    spread = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-12"}).get_json()
    capped = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-12", "max_workers": 1}).get_json()
    assert len(spread["tasks"]) > len(capped["tasks"])


def test_a_job_nobody_online_fits_says_what_it_needs(app, api, scene_sha):  # type: ignore[no-untyped-def]
    job = submit(api, scene_sha, device="gpu").get_json()
    with app.app_context():
        agent("old", blender="4.5.3")
        agent("cpu")
        leases.settle_jobs_nobody_may_run()
        waiting = db.session.get(Job, job["id"]).waiting
        assert waiting == ("needs Blender ≥ 5.0 and a GPU: none online (agents online: 1 with Blender 4.5.3 on "
                           "CPU, 1 with Blender 5.0.1 on CPU)")
        agent("gpu", device="CUDA")
        leases.settle_jobs_nobody_may_run()
        assert db.session.get(Job, job["id"], populate_existing=True).waiting is None


def test_a_failed_task_goes_back_to_its_owner_when_nobody_else_online_fits(app, api, scene_sha):  # type: ignore[no-untyped-def]
    """A task an account failed waits for another account's agent, but only for one that may render it: an older
    Blender online elsewhere must not hold it back from the owner that can."""
    job = submit(api, scene_sha, frames="1").get_json()
    with app.app_context():
        owner = agent("owner")
        agent("old", blender="4.5.3")  # another account, online, but the scene is too new for it
        task = leases.claim_task(owner)
        outcomes.record_failure(task, "render_failed", "a transient error")
        db.session.commit()
        assert claimed_job(owner) == job["id"]


def test_a_verifier_renders_the_scene_too(app, v):  # type: ignore[no-untyped-def]
    """A check re-renders part of the scene: a verifier whose Blender is too old for it is not given it either,
    even once the check may go to another device class."""
    app.config["FRAMEHIVE_FALLBACK_WAIT"] = 0
    render(leases.claim_task(v["renderer"].id))
    (check,) = db.session.execute(select(Check)).scalars().all()
    for name in ("verifier", "arbiter"):
        v[name].blender_version = "4.5.3"
    db.session.commit()
    assert leasing.claim_check(v["verifier"]) is None and leasing.claim_check(v["arbiter"]) is None
    v["verifier"].blender_version = "5.0.1"
    db.session.commit()
    assert leasing.claim_check(v["verifier"]).id == check.id


# ------------------------------------------------------------------------------------- SQL and Python agree

VERSIONS = st.sampled_from(["4.2.0", "4.5.3", "5.0.0", "5.0.1", "5.0.2", "5.1.0 Alpha", "5.10.0", "", "x"])
REQUIREMENTS = st.fixed_dictionaries({
    "scene_blender": st.sampled_from([None, 402, 500, 501, 510]),
    "blender_pin": st.sampled_from([None, "5.0", "5.0.1", "5.1", "5.10.0"]),
    "device_kind": st.sampled_from([None, "gpu", "cpu"]),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requirements=REQUIREMENTS, version=VERSIONS, device=st.sampled_from(["CPU", "CUDA", "OPTIX"]))
def test_the_claim_query_and_the_waiting_reason_apply_the_same_rules(app, api, scene_sha, requirements,  # type: ignore[no-untyped-def]
                                                                     version, device):
    with app.app_context():
        job = db.session.execute(select(Job)).scalars().first()
        if job is None:
            job_id = submit(api, scene_sha).get_json()["id"]
            job = db.session.get(Job, job_id)
        for key, value in requirements.items():
            setattr(job, key, value)
        worker = Worker(account_id=job.account_id, name="probe", blender_version=version, device=device)
        db.session.commit()
        by_sql = db.session.execute(select(Job.id).where(Job.id == job.id,
                                                         capabilities.scene_condition(worker))).first() is not None
        assert by_sql == (capabilities.unmet(job, worker) == []), (requirements, version, device)
        db.session.rollback()


@given(st.text(max_size=12))
def test_any_text_is_a_version_or_refused(text):  # type: ignore[no-untyped-def]
    release = bv.release(text)
    assert release is None or all(0 <= part <= 999 for part in release)
    try:
        pin = bv.parse_pin(text)
    except bv.BadVersion:
        return
    assert bv.parse_pin(pin) == pin and bv.release(pin) is not None


def test_versions_compare_as_numbers():  # type: ignore[no-untyped-def]
    assert bv.file_version("5.10") > bv.file_version("5.9") > bv.file_version("4.10")
    assert bv.file_version_of(bv.release("5.10.0")) == 510
    assert bv.release("5.1.0 Alpha") == (5, 1, 0)
    assert bv.parse_pin("05.0.01") == "5.0.1"

