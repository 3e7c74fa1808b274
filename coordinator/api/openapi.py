"""The OpenAPI 3.1 document for /api/v1. A test checks that it lists exactly the routes the app serves."""

from __future__ import annotations

from typing import Any

from protocol.scenepaths import MAX_COMPONENT_BYTES, MAX_PATH_BYTES

from .. import __version__, config

BEARER = [{"bearer": []}]
ERROR = {"$ref": "#/components/responses/Error"}


def _op(summary: str, ok: dict[str, Any], *, auth: bool = True, body: dict[str, Any] | None = None,
        errors: tuple[int, ...] = (400, 401, 403, 404)) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**ok, **{str(code): ERROR for code in errors}}}
    if auth:
        op["security"] = BEARER
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    return op


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _ok(code: int, description: str, content: dict[str, Any] | None = None) -> dict[str, Any]:
    return {str(code): {"description": description, **({"content": content} if content else {})}}


BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
PNG = {"image/png": {"schema": {"type": "string", "format": "binary"}}}
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}
ACCOUNT = {"name": "account", "in": "query", "required": False, "schema": {"type": "string"},
           "description": "only this account's tokens (404 if there is no such account)"}
WORKER_ID = {"name": "worker_id", "in": "path", "required": True, "schema": {"type": "integer"}}
SHA = {"name": "sha256", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/v1/health": {"get": _op("Liveness and version", _ok(200, "ok"), auth=False, errors=())},
        "/api/v1/openapi.json": {"get": _op("This document", _ok(200, "OpenAPI"), auth=False, errors=())},
        "/api/v1/me": {"get": _op("Who the token belongs to", _ok(200, "account and token kind"))},
        "/api/v1/blobs/missing": {"post": _op(
            "Which of these sha256 hashes the coordinator lacks (user)", _ok(200, "missing hashes", _json("Missing")),
            body=_json("HashList"))},
        "/api/v1/blobs/{sha256}": {
            "parameters": [SHA],
            "put": _op("Upload a blob; re-hashed on arrival, a mismatch stores nothing (user)",
                       {**_ok(201, "stored"), **_ok(200, "already stored")}, body=BINARY, errors=(400, 401, 403, 413)),
            "get": _op("Download a blob: a worker only a file (the .blend or an asset) of a job whose task or check "
                       "it holds", _ok(200, "bytes", BINARY)),
        },
        "/api/v1/jobs": {
            "post": _op("Submit a job for an uploaded scene and its files (user). 400 codes: bad_request, bad_path, "
                        "unknown_blob, too_many_files, too_large, not_a_blend, bad_frames, frames_out_of_range; "
                        "402 when the points do not cover the price", _ok(201, "the job", _json("Job")),
                        body=_json("JobRequest"), errors=(400, 401, 402, 403, 404)),
            "get": _op("The caller's jobs (all jobs for admins)", _ok(200, "jobs")),
        },
        "/api/v1/jobs/{job_id}": {"parameters": [JOB_ID], "get": _op(
            "A job with per-frame and per-task state", _ok(200, "the job", _json("Job")))},
        "/api/v1/jobs/{job_id}/cancel": {"parameters": [JOB_ID], "post": _op(
            "Cancel a queued or running job", _ok(200, "the job", _json("Job")), errors=(401, 403, 404, 409))},
        "/api/v1/jobs/{job_id}/pause": {"parameters": [JOB_ID], "post": _op(
            "Pause a queued or running job (its owner or an admin): its queued tasks are leased to nobody, leases "
            "in flight may finish, the escrow stays. 409 not_pausable", _ok(200, "the job", _json("Job")),
            errors=(401, 403, 404, 409))},
        "/api/v1/jobs/{job_id}/resume": {"parameters": [JOB_ID], "post": _op(
            "Resume a paused job (its owner or an admin). 409 not_paused", _ok(200, "the job", _json("Job")),
            errors=(401, 403, 404, 409))},
        "/api/v1/jobs/{job_id}/requeue": {"parameters": [JOB_ID], "post": _op(
            "Give a job's failed tasks a fresh start (its owner or an admin): a failed job runs again once its "
            "owner has paid again for its unverified frames (402 insufficient_points otherwise); a live job's "
            "tasks awaiting a retry get their failure count cleared. 409 job_finished (completed or cancelled), "
            "nothing_to_requeue", _ok(200, "the job, with `requeued`: how many tasks", _json("Job")),
            errors=(401, 402, 403, 404, 409))},
        "/api/v1/jobs/{job_id}/priority": {"parameters": [JOB_ID], "post": _op(
            "Change a live job's priority (its owner or an admin); higher is leased first. 400 bad_priority, "
            "409 job_finished", _ok(200, "the job", _json("Job")), body=_json("PriorityRequest"),
            errors=(400, 401, 403, 404, 409))},
        "/api/v1/jobs/{job_id}/frames/{number}": {
            "parameters": [JOB_ID, {"name": "number", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "get": _op("A rendered frame (PNG); header X-Content-SHA256", _ok(200, "PNG", PNG))},
        "/api/v1/jobs/{job_id}/claims": {
            "parameters": [JOB_ID],
            "post": _op("Dispute delivered frames: trusted nodes re-render them; confirmed → replaced",
                        _ok(201, "the claim", _json("Claim")), body=_json("ClaimRequest")),
            "get": _op("The job's claims and their outcomes", _ok(200, "claims")),
        },
        "/api/v1/worker/tasks/{task_id}/frames/{number}": {
            "parameters": [
                {"name": "task_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                {"name": "number", "in": "path", "required": True, "schema": {"type": "integer"}},
                {"name": "attempt", "in": "query", "required": True, "schema": {"type": "integer"}},
                {"name": "X-Framehive-Worker", "in": "header", "required": True, "schema": {"type": "integer"}},
                {"name": "X-Content-SHA256", "in": "header", "required": True, "schema": {"type": "string"}},
            ],
            "put": _op("Upload one rendered frame of a task the worker holds (worker)",
                       {**_ok(201, "accepted"), **_ok(200, "duplicate, ignored")}, body=PNG,
                       errors=(400, 401, 403, 409, 413))},
        "/api/v1/worker/checks/{check_id}/result": {
            "parameters": [
                {"name": "check_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                {"name": "attempt", "in": "query", "required": True, "schema": {"type": "integer"}},
                {"name": "X-Framehive-Worker", "in": "header", "required": True, "schema": {"type": "integer"}},
                {"name": "X-Content-SHA256", "in": "header", "required": True, "schema": {"type": "string"}},
            ],
            "put": _op("Upload a verifier's region render (PNG of the check's rect); judged at once (worker)",
                       _ok(201, "accepted"), body=PNG, errors=(400, 401, 403, 409, 413))},
        "/api/v1/workers": {"get": _op("The caller's worker agents (all for admins)", _ok(200, "workers"))},
        "/api/v1/admin/workers/{worker_id}/suspend": {"parameters": [WORKER_ID], "post": _op(
            "Suspend a worker (admin): it gets no more work and its leases go back to the queue, no failure "
            "counted. 409 already_suspended", _ok(200, "the worker"), errors=(401, 403, 404, 409))},
        "/api/v1/admin/workers/{worker_id}/unsuspend": {"parameters": [WORKER_ID], "post": _op(
            "Let a suspended worker have work again (admin). 409 not_suspended", _ok(200, "the worker"),
            errors=(401, 403, 404, 409))},
        "/api/v1/admin/workers/{worker_id}/blocks": {
            "parameters": [WORKER_ID, {"name": "job", "in": "query", "required": False, "schema": {"type": "integer"},
                                       "description": "only this job's blocklist entry (404 if there is no such job)"}],
            "delete": _op("Remove a worker's per-job blocklist entries (admin)",
                          _ok(200, "how many were removed", _json("Unblocked")), errors=(401, 403, 404))},
        "/api/v1/events": {"get": {**_op(
            "Recent events, newest first: all for admins, else those of the caller's jobs, workers and account",
            _ok(200, "events", _json("EventList"))), "parameters": [
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}]}},
        "/api/v1/stats": {"get": _op(
            "Network statistics (admins) or the caller's own (its jobs and workers)", _ok(200, "statistics",
                                                                                        _json("Stats")))},
        "/api/v1/pricing": {"get": _op("The price list and the rules that move points", _ok(200, "pricing"))},
        "/api/v1/balance": {"get": _op(
            "The caller's balance, its jobs' escrow and what each of its agents earned (?account=NAME: admins)",
            _ok(200, "balance"))},
        "/api/v1/ledger": {"get": _op(
            "The caller's ledger entries, newest first; filters ?job=ID, ?reason=R, ?account=NAME (admins)",
            _ok(200, "entries"))},
        "/api/v1/admin/grants": {"post": _op(
            "Grant points to an account (admin): an explicit entry from the mint", _ok(201, "new balance"),
            body=_json("Grant"))},
        "/api/v1/admin/tokens": {
            "get": {**_op("All API tokens, without secrets (admin)", _ok(200, "tokens", _json("TokenList")),
                          errors=(401, 403, 404)), "parameters": [ACCOUNT]},
            "post": _op("Create a token (and its account if new); the secret is in this response only (admin)",
                        _ok(201, "the token, with its secret", _json("NewToken")), body=_json("TokenRequest"),
                        errors=(400, 401, 403)),
        },
        "/api/v1/admin/tokens/{token_id}": {
            "parameters": [{"name": "token_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "delete": _op("Revoke a token at once (admin). Revoking the calling token itself is allowed: the "
                          "response then has a `warning`", _ok(200, "the revoked token", _json("Token")),
                          errors=(401, 403, 404, 409))},
        "/api/v1/worker/ws": {"get": _op(
            "WebSocket for worker agents (messages: protocol/messages.py)", _ok(101, "switching protocols"),
            errors=(401, 403))},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Framehive coordinator", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "error", "content": _json("Error")}},
            "schemas": _schemas(),
        },
    }


def _schemas() -> dict[str, Any]:
    hexes = {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}}},
        "HashList": {"type": "object", "required": ["sha256"], "properties": {"sha256": hexes}},
        "Missing": {"type": "object", "properties": {"missing": hexes}},
        "JobRequest": {"type": "object", "required": ["scene"], "additionalProperties": False, "properties": {
            "scene": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "frames": {"type": "string", "description": "e.g. '1-24' or '1,5,10-12'; default: the scene's range"},
            "chunk": {"type": "integer", "minimum": 1, "maximum": 10000},
            "priority": {"type": "integer", "minimum": 0, "maximum": 100, "default": 50},
            "name": {"type": "string", "maxLength": 200},
            "filename": {"type": "string", "maxLength": 200},
            "policy": {"enum": ["adaptive", "circle", "full"], "default": "adaptive",
                       "description": "verification: adaptive trust, fRender's circle, or every frame twice"},
            "scene_path": {"type": "string", "maxLength": MAX_PATH_BYTES, "description":
                           "the .blend's relative POSIX path in the scene's folder tree, e.g. shots/shot.blend; "
                           "default: filename if it is a usable path, else scene.blend"},
            "assets": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                       "description": "every other file of the tree: relative POSIX path -> sha256 of an uploaded "
                                      "blob. Paths are normalised, without '..', ':', '\\' or control characters, "
                                      f"names of at most {MAX_COMPONENT_BYTES} bytes, paths of at most "
                                      f"{MAX_PATH_BYTES} bytes, distinct from each other and from scene_path ignoring "
                                      "case, no file where another path needs a folder. By default at most "
                                      f"{config.MAX_ASSETS} files and {config.MAX_JOB_BYTES // 1024**3} GiB with "
                                      "the .blend"}}},
        "Grant": {"type": "object", "required": ["account", "amount"], "properties": {
            "account": {"type": "string"}, "amount": {"type": "integer", "minimum": 1},
            "memo": {"type": "string"}}},
        "PriorityRequest": {"type": "object", "required": ["priority"], "additionalProperties": False,
                            "properties": {"priority": {"type": "integer", "minimum": config.MIN_PRIORITY,
                                                        "maximum": config.MAX_PRIORITY}}},
        "Unblocked": {"type": "object", "properties": {
            "worker": {"type": "integer"}, "job": {"type": ["integer", "null"]}, "removed": {"type": "integer"}}},
        "Event": {"type": "object", "properties": {
            "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
            "time": {"type": "number", "description": "UNIX seconds"}, "kind": {"type": "string"},
            "message": {"type": "string"}, "job": {"type": ["integer", "null"]},
            "job_name": {"type": ["string", "null"]}, "worker": {"type": ["integer", "null"]},
            "worker_name": {"type": ["string", "null"]}, "account": {"type": ["string", "null"]},
            "actor": {"type": ["string", "null"], "description": "who acted, for actions of people"}}},
        "EventList": {"type": "object", "properties": {
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}},
        "Stats": {"type": "object", "properties": {
            "scope": {"type": "string", "description": "'network' (admins) or the account's name"},
            "workers_online": {"type": "object", "properties": {
                "total": {"type": "integer"}, "by_device": {"type": "object", "additionalProperties": {
                    "type": "integer"}}}},
            "window_minutes": {"type": "integer"},
            "frames_verified": {"type": "integer", "description": "frames verified in the window"},
            "frames_per_minute": {"type": "number"},
            "queue_depth": {"type": "integer", "description": "queued tasks of queued and running jobs"},
            "jobs_running": {"type": "integer"}, "jobs_queued": {"type": "integer"},
            "jobs_paused": {"type": "integer"},
            "verification": {"type": "object", "properties": {
                "passed": {"type": "integer"}, "failed": {"type": "integer"},
                "pass_rate": {"type": ["number", "null"]}}},
            "points_in_circulation": {"type": "integer", "description":
                                      "network: every point granted; an account: its balance and live escrow"},
            "recent_events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}},
        "ClaimRequest": {"type": "object", "required": ["frames", "reason"], "properties": {
            "frames": {"type": "string", "description": "e.g. '3,7' or '10-12'"},
            "reason": {"type": "string", "maxLength": 2000}}},
        "Claim": {"type": "object", "properties": {
            "id": {"type": "integer"}, "frames": {"type": "string"}, "reason": {"type": "string"},
            "state": {"enum": ["open", "confirmed", "rejected"]}, "outcome": {"type": ["string", "null"]},
            "checks": {"type": "array"}}},
        "TokenRequest": {"type": "object", "required": ["kind", "name"], "additionalProperties": False,
                         "properties": {
            "kind": {"enum": ["user", "worker", "admin"]},
            "name": {"type": "string", "minLength": 1, "maxLength": 120},
            "account": {"type": "string", "minLength": 1, "maxLength": 120,
                        "description": "owning account, created if new; default: the token's name"},
            "expires_in": {"type": "number", "exclusiveMinimum": 0,
                           "description": "seconds until the token expires; default: never"}}},
        "Token": {"type": "object", "properties": {
            "id": {"type": "integer"}, "account": {"type": "string"}, "kind": {"enum": ["user", "worker", "admin"]},
            "name": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
            "revoked_at": {"type": ["string", "null"], "format": "date-time"},
            "state": {"enum": ["active", "expired", "revoked"]},
            "warning": {"type": "string", "description": "set when a caller revoked its own token"}}},
        "NewToken": {"allOf": [{"$ref": "#/components/schemas/Token"}, {"type": "object", "required": ["token"],
                     "properties": {"token": {"type": "string", "description": "the secret, shown only once"}}}]},
        "TokenList": {"type": "object", "properties": {
            "tokens": {"type": "array", "items": {"$ref": "#/components/schemas/Token"}}}},
        "Job": {"type": "object", "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}, "owner": {"type": "string"},
            "state": {"enum": ["queued", "running", "paused", "completed", "failed", "cancelled"]},
            "priority": {"type": "integer"}, "chunk": {"type": "integer"}, "frames": {"type": "string"},
            "total": {"type": "integer"}, "counts": {"type": "object"},
            "resolution": {"type": "array", "items": {"type": "integer"}},
            "scene": {"type": "string"}, "filename": {"type": "string"},
            "scene_path": {"type": "string", "description": "the .blend's path in its folder tree"},
            "asset_count": {"type": "integer", "description": "files of the tree besides the .blend"},
            "assets": {"type": "array", "description": "job detail only: the tree's other files", "items": {
                "type": "object", "properties": {"path": {"type": "string"}, "sha256": {"type": "string"},
                                                 "size": {"type": "integer"}}}},
            "frame_states": {"type": "array"}, "tasks": {"type": "array"}, "failures": {"type": "array"},
            "checks": {"type": "array", "description": "checks: frame, region, verifier, metrics, verdict"},
            "error": {"type": ["string", "null"]}}},
    }
