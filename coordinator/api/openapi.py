"""The OpenAPI 3.1 document for /api/v1. A test checks that it lists exactly the routes the app serves."""

from __future__ import annotations

from typing import Any

from framehive.protocol.scenepaths import MAX_COMPONENT_BYTES, MAX_PATH_BYTES

from .. import __version__, config
from ..auth import MAX_EXPIRES_IN
from .error_codes import ERROR_CODES, error_table

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
ERROR = {"$ref": "#/components/responses/Error"}
RATE_LIMITED = {"$ref": "#/components/responses/RateLimited"}
BUSY = {"$ref": "#/components/responses/Busy"}
# What any operation with a token may answer besides its own codes: bad input, no or a bad token, the wrong kind
# of token, no such thing (or someone else's), a body over the size limit, and the token's rate limit.
COMMON_ERRORS = (400, 401, 403, 404, 413)


def _op(summary: str, ok: dict[str, Any], *, auth: bool = True, body: dict[str, Any] | None = None,
        errors: tuple[int, ...] = (), parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    codes = sorted({*COMMON_ERRORS, *errors}) if auth else sorted(errors)
    op: dict[str, Any] = {"summary": summary, "responses": {**ok, **{str(code): ERROR for code in codes}}}
    if auth:
        op["security"] = BEARER
        op["responses"]["429"] = RATE_LIMITED
    op["responses"]["503"] = BUSY  # any request, when the server is at its connection caps
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    if parameters:
        op["parameters"] = parameters
    return op


def _ref(schema: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{schema}"}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(schema)}}


def _ok(code: int, description: str, content: dict[str, Any] | None = None) -> dict[str, Any]:
    return {str(code): {"description": description, **({"content": content} if content else {})}}


BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
PNG = {"image/png": {"schema": {"type": "string", "format": "binary"}}}
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}
ACCOUNT = {"name": "account", "in": "query", "required": False, "schema": {"type": "string"},
           "description": "only this account's (admins; 404 if there is no such account)"}
WORKER_ID = {"name": "worker_id", "in": "path", "required": True, "schema": {"type": "integer"}}
SHA = {"name": "sha256", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}
SINCE = {"name": "since", "in": "query", "required": False,
         "schema": {"type": "string", "pattern": r"^1\.[A-Za-z0-9_-]*$"},
         "description": "the cursor of an earlier answer for this job, unchanged: only what changed since is sent"}
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "the ETag of an earlier answer: 304 with no body while the job is unchanged"}
PAGE = [
    {"name": "limit", "in": "query", "required": False, "description": "items per page (default: the "
     f"coordinator's page size, {config.PAGE_SIZE} unless set; at most its largest, {config.MAX_PAGE_SIZE})",
     "schema": {"type": "integer", "minimum": 1, "maximum": config.MAX_PAGE_SIZE}},
    {"name": "after", "in": "query", "required": False, "description": "the cursor of the previous page's `next` "
     "link", "schema": {"type": "integer", "minimum": 0}},
]
UPLOAD_HANDLE = {"name": "upload", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{32}$"}}
WORKER_HEADERS = [
    {"name": "attempt", "in": "query", "required": True, "schema": {"type": "integer"}},
    {"name": "X-Framehive-Worker", "in": "header", "required": True, "schema": {"type": "integer"}},
    {"name": "X-Content-SHA256", "in": "header", "required": True, "schema": {"type": "string"}},
]
CHECK_HANDLE = {"name": "handle", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"}}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Framehive coordinator", "version": __version__, "description": error_table()},
        "paths": {**_meta_paths(), **_job_paths(), **_worker_paths(), **_account_paths()},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {"description": "error", "content": _json("Error")},
                "RateLimited": {"description": "too many requests with this token (code rate_limited): try again "
                                "after Retry-After seconds", "content": _json("Error"),
                                "headers": {"Retry-After": {"required": True, "schema": {"type": "integer",
                                                                                          "minimum": 1}}}},
                "Busy": {"description": "code busy: the server is at its connection caps (then with Retry-After), "
                         "or an image upload found no decode slot in time; try again shortly",
                         "content": _json("Error"),
                         "headers": {"Retry-After": {"required": False, "schema": {"type": "integer",
                                                                                    "minimum": 1}}}},
            },
            "schemas": {**_schemas(), **_job_schemas(), **_account_schemas()},
        },
    }


def _meta_paths() -> dict[str, Any]:
    return {
        "/api/v1/health": {"get": _op("Liveness and version", _ok(200, "ok", _json("Health")), auth=False)},
        "/api/v1/openapi.json": {"get": _op("This document", _ok(200, "OpenAPI", {"application/json": {
            "schema": {"type": "object"}}}), auth=False)},
        "/api/v1/me": {"get": _op("Who the token belongs to", _ok(200, "account and token kind", _json("Me")))},
        "/api/v1/blobs/missing": {"post": _op(
            "Which of these sha256 hashes the coordinator lacks (user)", _ok(200, "missing hashes", _json("Missing")),
            body=_json("HashList"))},
        "/api/v1/blobs/{sha256}": {
            "parameters": [SHA],
            "put": _op("Upload a blob; re-hashed on arrival, a mismatch stores nothing (user). 413 too_large, or "
                       "quota_exceeded when the account's stored uploads would pass its storage quota (details: "
                       "used, quota, size)", {**_ok(201, "stored", _json("Blob")),
                                              **_ok(200, "already stored", _json("Blob"))}, body=BINARY),
            "get": _op("Download a blob: a worker only a file (the .blend or an asset) of a job whose task or check "
                       "it holds", _ok(200, "bytes", BINARY)),
        },
        "/api/v1/blobs/{sha256}/uploads": {"parameters": [SHA], "post": _op(
            "Ask to upload a blob of {size} bytes straight to the object store (user): 201 a presigned PUT (url, "
            "the headers to send with it, the upload's handle); 200 {url: null} on local disk (PUT it here), or "
            "the Blob when the account has it already. 413 too_large or quota_exceeded",
            {**_ok(201, "presigned upload", _json("DirectUpload")), **_ok(200, "no presigning, or already stored",
                                                                          _json("DirectUpload"))},
            body=_json("UploadSize"), errors=(413,))},
        "/api/v1/blobs/{sha256}/uploads/{upload}": {
            "parameters": [SHA, UPLOAD_HANDLE], "post": _op(
                "Confirm a direct upload (user): the coordinator reads the staged object back, checks its size and "
                "sha256, and only then stores it as the blob (the staged object is deleted either way). 400 "
                "hash_mismatch; 404 when nothing was uploaded under the handle",
                _ok(201, "stored", _json("Blob")), body=_json("UploadSize"), errors=(413,))},
    }


def _job_paths() -> dict[str, Any]:
    def control(summary: str, errors: tuple[int, ...] = (409,)) -> dict[str, Any]:
        return {"parameters": [JOB_ID], "post": _op(summary, _ok(200, "the job", _json("Job")), errors=errors)}

    return {
        "/api/v1/jobs": {
            "post": _op("Submit a job for an uploaded scene and its files (user). 400 codes: bad_request, bad_path, "
                        "unknown_blob (also for another account's blob), too_many_files, too_large, not_a_blend, "
                        "scene_too_large, outside_reference, unsupported_cache, bad_frames, frames_out_of_range, "
                        "bad_blender_version, too_deep, "
                        "too_many_frames (the frame limit, also when frames are left out and the scene's range is "
                        "used); 402 when the points do not cover the price; 409 too_many_jobs when the account has "
                        "its most live jobs", _ok(201, "the job", _json("Job")), body=_json("JobRequest"),
                        errors=(402, 409)),
            "get": _op("The caller's jobs (all jobs for admins), newest first, a page at a time",
                       _ok(200, "a page of jobs", _json("JobList")), parameters=PAGE),
        },
        "/api/v1/jobs/{job_id}": {"parameters": [JOB_ID], "get": _op(
            "A job with per-frame and per-task state. Its header ETag names the whole answer: with If-None-Match "
            "naming it, an unchanged job answers 304 with no body. With since=<cursor> (the cursor of an earlier "
            "answer) the summary and counts are whole, and frame_states, tasks, checks, failures and assets hold "
            "only the rows of blocks that changed: replace rows by key (frame, id, id, id, path) and add new ones. "
            "400 bad_since", {**_ok(200, "the job (since: what changed)", _json("Job")),
                              **_ok(304, "unchanged since the ETag given in If-None-Match")},
            parameters=[SINCE, IF_NONE_MATCH])},
        "/api/v1/jobs/{job_id}/cancel": control(
            "Cancel a queued, running or paused job; its owner pays the cancel fee out of the escrow (an admin's "
            "cancel is free). 409 job_finished"),
        "/api/v1/jobs/{job_id}/pause": control(
            "Pause a queued or running job (its owner or an admin): its queued tasks are leased to nobody, leases "
            "in flight may finish, the escrow stays. 409 not_pausable"),
        "/api/v1/jobs/{job_id}/resume": control("Resume a paused job (its owner or an admin). 409 not_paused"),
        "/api/v1/jobs/{job_id}/requeue": control(
            "Give a job's failed tasks a fresh start (its owner or an admin): a failed job runs again once its "
            "owner has paid again for its unverified frames (402 insufficient_points otherwise); a live job's "
            "tasks awaiting a retry get their failure count cleared. 409 job_finished (completed or cancelled), "
            "nothing_to_requeue, files_collected (its files are gone)", errors=(402, 409)),
        "/api/v1/jobs/{job_id}/priority": {"parameters": [JOB_ID], "post": _op(
            "Change a live job's priority (its owner or an admin); higher is leased first. 400 bad_priority, "
            "409 job_finished", _ok(200, "the job", _json("Job")), body=_json("PriorityRequest"), errors=(409,))},
        "/api/v1/jobs/{job_id}/frames/{number}": {
            "parameters": [JOB_ID, {"name": "number", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "get": _op("A verified frame (PNG); header X-Content-SHA256. 404 not_verified; 410 collected: the "
                       "finished job's files were deleted after the retention period", _ok(200, "PNG", PNG),
                       errors=(410,))},
        "/api/v1/jobs/{job_id}/unverified/{number}": {
            "parameters": [JOB_ID, {"name": "number", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "get": _op("A rendered frame no check has accepted yet, on request: a PNG tEXt chunk 'Framehive' says "
                       "UNVERIFIED (so its sha256 is never the verified frame's); headers X-Framehive-Verified: no, "
                       "X-Content-SHA256 (of these bytes). 404 not_rendered; 409 verified (GET .../frames/N); 410 "
                       "collected", _ok(200, "PNG", PNG), errors=(409, 410))},
        "/api/v1/jobs/{job_id}/claims": {
            "parameters": [JOB_ID],
            "post": _op("Dispute delivered frames: trusted nodes re-render them; confirmed → replaced. Holds the "
                        "claim price per frame, given back if confirmed (402 insufficient_points); 409 "
                        "too_many_claims, files_collected", _ok(201, "the claim", _json("Claim")),
                        body=_json("ClaimRequest"), errors=(402, 409)),
            "get": _op("The job's claims and their outcomes, oldest first, a page at a time",
                       _ok(200, "a page of claims", _json("ClaimList")), parameters=PAGE),
        },
    }


def _worker_paths() -> dict[str, Any]:
    number = {"name": "number", "in": "path", "required": True, "schema": {"type": "integer"}}
    return {
        "/api/v1/worker/tasks/{task_id}/frames/{number}": {
            "parameters": [{"name": "task_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                           number, *WORKER_HEADERS],
            "put": _op("Upload one rendered frame of a task the worker holds (worker). 400 bad_frame, "
                       "wrong_resolution (the PNG header's size is checked before any decode), hash_mismatch; "
                       "409 lease_lost; 503 busy (no decode slot)",
                       {**_ok(201, "accepted", _json("Accepted")), **_ok(200, "duplicate, ignored",
                                                                      _json("Accepted"))},
                       body=PNG, errors=(409, 503))},
        "/api/v1/worker/tasks/{task_id}/frames/{number}/uploads": {
            "parameters": [{"name": "task_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                           number, *WORKER_HEADERS],
            "post": _op("Ask to upload a frame of {size} bytes straight to the object store (worker): 201 a "
                        "presigned PUT; 200 {url: null} on local disk (PUT the frame here), or {accepted: false} for "
                        "a duplicate. 409 lease_lost; 413 too_large",
                        {**_ok(201, "presigned upload", _json("DirectUpload")), **_ok(200, "no presigning",
                                                                                      _json("DirectUpload"))},
                        body=_json("UploadSize"), errors=(409, 413))},
        "/api/v1/worker/tasks/{task_id}/frames/{number}/uploads/{upload}": {
            "parameters": [{"name": "task_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                           number, UPLOAD_HANDLE, *WORKER_HEADERS],
            "post": _op("Confirm a frame's direct upload (worker): read back from the store and checked like a PUT "
                        "(hash, lease, PNG header, tier 0); the staged object is deleted either way. 400 "
                        "hash_mismatch, bad_frame, wrong_resolution; 404 nothing uploaded; 409 lease_lost",
                        {**_ok(201, "accepted", _json("Accepted")), **_ok(200, "duplicate, ignored",
                                                                       _json("Accepted"))},
                        body=_json("UploadSize"), errors=(409, 413, 503))},
        "/api/v1/worker/checks/{handle}/result": {
            "parameters": [CHECK_HANDLE, *WORKER_HEADERS[1:]],  # the handle names the lease: no attempt
            "put": _op("Upload a verifier's region render (PNG of the check's rect); judged at once (worker). 400 "
                       "bad_result, wrong_resolution, hash_mismatch; 409 lease_lost; 503 busy (no decode slot)",
                       _ok(201, "accepted", _json("Accepted")), body=PNG, errors=(409, 503))},
        "/api/v1/worker/checks/{handle}/result/uploads": {
            "parameters": [CHECK_HANDLE, *WORKER_HEADERS[1:]],
            "post": _op("Ask to upload a check's result of {size} bytes straight to the object store (worker): 201 a "
                        "presigned PUT; 200 {url: null} on local disk (PUT the result here). 409 lease_lost; 413 "
                        "too_large",
                        {**_ok(201, "presigned upload", _json("DirectUpload")), **_ok(200, "no presigning",
                                                                                      _json("DirectUpload"))},
                        body=_json("UploadSize"), errors=(409, 413))},
        "/api/v1/worker/checks/{handle}/result/uploads/{upload}": {
            "parameters": [CHECK_HANDLE, UPLOAD_HANDLE, *WORKER_HEADERS[1:]],
            "post": _op("Confirm a check result's direct upload (worker): read back from the store, checked like a "
                        "PUT (hash, lease, PNG header, decode limits) and judged; the staged object is kept as the "
                        "render or deleted. 400 hash_mismatch, bad_result, wrong_resolution; 404 nothing uploaded; "
                        "409 lease_lost",
                        _ok(201, "accepted", _json("Accepted")), body=_json("UploadSize"), errors=(409, 413, 503))},
        "/api/v1/workers": {"get": _op("The caller's worker agents (all for admins), oldest first, a page at a time",
                                       _ok(200, "a page of workers", _json("WorkerList")), parameters=PAGE)},
        "/api/v1/admin/workers/{worker_id}/suspend": {"parameters": [WORKER_ID], "post": _op(
            "Suspend a worker (admin): it gets no more work and its leases go back to the queue, no failure "
            "counted. 409 already_suspended", _ok(200, "the worker", _json("Worker")), errors=(409,))},
        "/api/v1/admin/workers/{worker_id}/unsuspend": {"parameters": [WORKER_ID], "post": _op(
            "Let a suspended worker have work again (admin). 409 not_suspended", _ok(200, "the worker",
                                                                                   _json("Worker")), errors=(409,))},
        "/api/v1/admin/workers/{worker_id}/blocks": {
            "parameters": [WORKER_ID, {"name": "job", "in": "query", "required": False, "schema": {"type": "integer"},
                                       "description": "only this job's blocklist entry (404 if there is no such job)"}],
            "delete": _op("Remove a worker's per-job blocklist entries (admin)",
                          _ok(200, "how many were removed", _json("Unblocked")))},
        "/api/v1/worker/ws": {"get": _op(
            "WebSocket for worker agents (messages: protocol/messages.py)", _ok(101, "switching protocols"))},
    }


def _account_paths() -> dict[str, Any]:
    return {
        "/api/v1/events": {"get": _op(
            "Events, newest first, a page at a time (50 by default): all for admins, else those of the caller's "
            "jobs, workers and account", _ok(200, "a page of events", _json("EventList")), parameters=PAGE)},
        "/api/v1/stats": {"get": _op(
            "Network statistics (admins) or the caller's own (its jobs and workers)", _ok(200, "statistics",
                                                                                        _json("Stats")))},
        "/api/v1/pricing": {"get": _op("The price list and the rules that move points",
                                       _ok(200, "pricing", _json("Pricing")))},
        "/api/v1/balance": {"get": _op(
            "The caller's balance, its jobs' escrow and what each of its agents earned (?account=NAME: admins)",
            _ok(200, "balance", _json("Balance")), parameters=[ACCOUNT])},
        "/api/v1/ledger": {"get": _op(
            "The caller's ledger entries, newest first, a page at a time; filters ?job=ID, ?reason=R, "
            "?account=NAME (admins)", _ok(200, "a page of entries", _json("Ledger")), parameters=[
                ACCOUNT, {"name": "job", "in": "query", "required": False, "schema": {"type": "integer"}},
                {"name": "reason", "in": "query", "required": False, "schema": {"type": "string"}}, *PAGE])},
        "/api/v1/admin/grants": {"post": _op(
            "Grant points to an account (admin): an explicit entry from the mint",
            _ok(201, "new balance", _json("Granted")), body=_json("Grant"))},
        "/api/v1/admin/tokens": {
            "get": _op("API tokens, without secrets, oldest first, a page at a time (admin)",
                       _ok(200, "a page of tokens", _json("TokenList")), parameters=[ACCOUNT, *PAGE]),
            "post": _op("Create a token (and its account if new); the secret is in this response only (admin)",
                        _ok(201, "the token, with its secret", _json("NewToken")), body=_json("TokenRequest")),
        },
        "/api/v1/admin/tokens/{token_id}": {
            "parameters": [{"name": "token_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "delete": _op("Revoke a token at once (admin). Revoking the calling token itself is allowed: the "
                          "response then has a `warning`", _ok(200, "the revoked token", _json("Token")),
                          errors=(409,))},
    }


INT = {"type": "integer"}
STR = {"type": "string"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
NEXT = {"type": ["string", "null"], "description": "the path of the next page, null on the last"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


def _strict(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """An object with exactly these properties (every response field documented), ``required`` always there."""
    return {"type": "object", "additionalProperties": False, "required": required, "properties": properties}


def _page(key: str, item: str) -> dict[str, Any]:
    return _strict([key, "next"], {key: {"type": "array", "items": _ref(item)}, "next": NEXT})


def _schemas() -> dict[str, Any]:
    hexes = {"type": "array", "items": SHA256}
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"enum": sorted(ERROR_CODES), "description": "what went wrong, for programs: "
                                    "see the table of codes in the document's description"},
                           "message": STR, "details": {"type": "object"}}}}},
        "Health": {"type": "object", "required": ["status", "version"], "properties": {
            "status": {"const": "ok"}, "version": STR}},
        "Me": _strict(["account", "token"], {
            "account": _strict(["id", "name"], {"id": INT, "name": STR}),
            "token": _strict(["kind"], {"kind": {"enum": ["user", "worker", "admin"]}})}),
        "HashList": {"type": "object", "required": ["sha256"], "properties": {"sha256": hexes}},
        "Missing": {"type": "object", "required": ["missing"], "properties": {"missing": hexes}},
        "Blob": {"type": "object", "required": ["sha256", "size"], "properties": {
            "sha256": SHA256, "size": INT, "existed": BOOL}},
        "UploadSize": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "integer", "minimum": 0}}},
        "DirectUpload": {"type": "object", "properties": {
            "url": {"type": ["string", "null"], "description": "the presigned PUT; null: upload to the coordinator"},
            "method": {"type": "string", "enum": ["PUT"]},
            "headers": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "send exactly these with the PUT (the signature covers them)"},
            "upload": {"type": "string", "description": "the handle to confirm the upload with"},
            "expires_in": {"type": "integer"},
            "sha256": {"type": "string"}, "size": {"type": "integer"}, "existed": {"type": "boolean"},
            "accepted": {"type": "boolean"}, "reason": {"type": "string"}}},
        "Accepted": {"type": "object", "required": ["accepted"], "properties": {
            "accepted": BOOL, "reason": STR}},
        "Grant": {"type": "object", "required": ["account", "amount"], "properties": {
            "account": STR, "amount": {"type": "integer", "minimum": 1, "maximum": 10**9},
            "memo": STR}},
        "Granted": _strict(["account", "balance"], {"account": STR, "balance": INT}),
        "PriorityRequest": {"type": "object", "required": ["priority"], "additionalProperties": False,
                            "properties": {"priority": {"type": "integer", "minimum": config.MIN_PRIORITY,
                                                        "maximum": config.MAX_PRIORITY}}},
        "Unblocked": _strict(["worker", "job", "removed"], {
            "worker": INT, "job": _nullable(INT), "removed": INT}),
        "Worker": _strict(list(WORKER_FIELDS), WORKER_FIELDS),
        "WorkerList": _page("workers", "Worker"),
        "Event": _strict(list(EVENT_FIELDS), EVENT_FIELDS),
        "EventList": _page("events", "Event"),
        "Stats": {"type": "object", "properties": {
            "scope": {"type": "string", "description": "'network' (admins) or the account's name"},
            "workers_online": {"type": "object", "properties": {
                "total": INT, "by_device": {"type": "object", "additionalProperties": INT}}},
            "window_minutes": INT,
            "frames_verified": {"type": "integer", "description": "frames verified in the window"},
            "frames_per_minute": NUM,
            "queue_depth": {"type": "integer", "description": "queued tasks of queued and running jobs"},
            "jobs_running": INT, "jobs_queued": INT, "jobs_paused": INT,
            "verification": {"type": "object", "properties": {
                "passed": INT, "failed": INT, "pass_rate": _nullable(NUM)}},
            "points_in_circulation": {"type": "integer", "description":
                                      "network: every point granted; an account: its balance and live escrow"},
            "recent_events": {"type": "array", "items": _ref("Event")}}},
        "TokenRequest": {"type": "object", "required": ["kind", "name"], "additionalProperties": False,
                         "properties": {
            "kind": {"enum": ["user", "worker", "admin"]},
            "name": {"type": "string", "minLength": 1, "maxLength": 120},
            "account": {"type": "string", "minLength": 1, "maxLength": 120,
                        "description": "owning account, created if new; default: the token's name"},
            "expires_in": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_EXPIRES_IN,
                           "description": "seconds until the token expires; default: never"}}},
        "Token": _strict(list(TOKEN_FIELDS), {
            **TOKEN_FIELDS, "warning": {"type": "string", "description": "set when a caller revoked its own token"}}),
        "NewToken": _strict([*TOKEN_FIELDS, "token"], {
            **TOKEN_FIELDS, "token": {"type": "string", "description": "the secret, shown only once"}}),
        "TokenList": _page("tokens", "Token"),
    }


WORKER_FIELDS = {
    "id": INT, "name": STR, "owner": STR, "online": BOOL, "device": STR, "devices": {"type": "array"},
    "blender_version": STR, "threads": INT, "current_task": _nullable(INT),
    "last_seen": _nullable(NUM), "roles": {"type": "array", "items": STR}, "trust": INT, "checks_passed": INT,
    "checks_failed": INT, "times_caught": INT, "suspended": BOOL,
    "paused": {"type": "boolean", "description": "its owner paused it (by hand or by its schedule): it gets no work"},
    "pause_reason": {"type": ["string", "null"], "description": "why, as the agent said"},
    "confinement": {"type": ["object", "null"], "description": "what confines its renders, as its hello said (the "
                    "agent's own word): available, mechanism, abi, filesystem, network, scopes, reason; null when "
                    "it did not say"},
    "confined": {"type": "boolean", "description": "its report says its renders are confined"}}
EVENT_FIELDS = {
    "id": INT, "at": {"type": "string", "format": "date-time"},
    "time": {"type": "number", "description": "UNIX seconds"}, "kind": STR, "message": STR,
    "job": _nullable(INT), "job_name": _nullable(STR), "worker": _nullable(INT), "worker_name": _nullable(STR),
    "account": _nullable(STR),
    "actor": {"type": ["string", "null"], "description": "who acted, for actions of people"}}
TOKEN_FIELDS = {
    "id": INT, "account": STR, "kind": {"enum": ["user", "worker", "admin"]}, "name": STR,
    "created_at": {"type": "string", "format": "date-time"},
    "expires_at": {"type": ["string", "null"], "format": "date-time"},
    "revoked_at": {"type": ["string", "null"], "format": "date-time"},
    "state": {"enum": ["active", "expired", "revoked"]}}
TIME = {"type": ["string", "null"], "format": "date-time"}
CHECK_FIELDS = {
    "id": INT, "kind": {"enum": ["verify", "spot", "arbitration", "ringer", "audit", "claim"]}, "frame": INT,
    "region": {"type": "array", "items": INT, "minItems": 4, "maxItems": 4},
    "state": {"enum": ["queued", "leased", "done", "void"]}, "verifier": _nullable(STR),
    "renderer": _nullable(STR), "mode": {"enum": ["strict", "cross", None]},
    "verdict": {"enum": ["pass", "fail", None]}, "reason": _nullable(STR),
    "metrics": {"type": ["object", "null"]}, "parent": _nullable(INT)}
JOB_FIELDS = {
    "id": INT, "name": STR, "owner": STR,
    "state": {"enum": ["queued", "running", "paused", "completed", "failed", "cancelled"]},
    "priority": INT, "chunk": INT, "frames": {"type": "string", "description": "the frame range, e.g. 1-24"},
    "total": {"type": "integer", "description": "frames in the job"},
    "counts": {"type": "object", "description": "frames per state", "additionalProperties": INT},
    "resolution": {"type": "array", "items": INT, "minItems": 2, "maxItems": 2},
    "scene": {"type": "string", "description": "sha256 of the .blend"}, "filename": STR,
    "scene_path": {"type": "string", "description": "the .blend's path in its folder tree"},
    "asset_count": {"type": "integer", "description": "files of the tree besides the .blend"},
    "error": _nullable(STR), "policy": {"enum": list(config.POLICIES)},
    "waiting": {"type": ["string", "null"], "description": "why no online agent takes the job's queued tasks "
                                                           "(every one is blocklisted for it); null otherwise"},
    "requirements": _strict(["blender", "blender_version", "max_workers", "device", "summary"], {
        "blender": {"type": ["string", "null"], "description": "the Blender that saved the scene (major.minor, read "
                                                               "from the .blend): older agents are not given it"},
        "blender_version": {"type": ["string", "null"], "description": "the Blender the artist pinned, if any"},
        "max_workers": {"type": ["integer", "null"], "description": "most agents rendering it at once; null: any"},
        "device": {"enum": ["gpu", "cpu", "any"]},
        "summary": {"type": "string", "description": "the requirements in words, e.g. 'Blender ≥ 5.0, a GPU'"}}),
    "price": {"type": "integer", "description": "points the job held in escrow at submit"},
    "escrow": {"type": "integer", "description": "points still in escrow (0 once the job is finished)"},
    "created_at": {"type": "string", "format": "date-time"}, "started_at": TIME, "finished_at": TIME,
    "files_collected_at": {**TIME, "description": "when the finished job's files (scene tree, frames) were deleted "
                                                  "after the retention period; null while they are kept"},
}
JOB_DETAIL_FIELDS = {
    "assets": {"type": "array", "description": "the tree's other files", "items": _strict(
        ["path", "sha256", "size"], {"path": STR, "sha256": SHA256, "size": INT})},
    "frame_states": {"type": "array", "items": _strict(
        ["frame", "state", "sha256", "worker", "task", "verified_by", "flags"], {
            "frame": INT, "state": {"enum": ["queued", "rendering", "rendered", "verified", "failed", "cancelled"]},
            "sha256": {"type": ["string", "null"], "description": "the frame's pixels, once rendered"},
            "worker": _nullable(STR), "task": INT, "verified_by": {"enum": ["check", "trust", "claim", None]},
            "flags": {"type": "array", "items": STR}})},
    "checks": {"type": "array", "description": "checks: frame, region, verifier, metrics, verdict",
               "items": _ref("Check")},
    "tasks": {"type": "array", "items": _strict(["id", "frames", "state", "attempts", "failures", "worker"], {
        "id": INT, "frames": STR, "state": {"enum": ["queued", "leased", "verifying", "done", "failed",
                                                       "cancelled"]},
        "attempts": INT, "failures": INT, "worker": _nullable(STR)})},
    "failures": {"type": "array", "items": _strict(
        ["id", "task", "worker_id", "attempt", "reason", "error", "log_tail"], {
            "id": INT, "task": INT, "worker_id": INT, "attempt": INT, "reason": STR, "error": STR, "log_tail": STR})},
    "requeued": {"type": "integer", "description": "requeue only: how many tasks got a fresh start"},
    "cursor": {"type": "string", "description": "GET only: give it back as since= to be sent only what changed"},
    "since": {"const": True, "description": "GET with since= only: the lists hold only the rows that changed"},
}
ENTRY_FIELDS = {
    "id": INT, "at": {"type": "string", "format": "date-time"}, "from": STR, "to": STR, "amount": INT,
    "reason": STR, "memo": STR, "job": _nullable(INT), "task": _nullable(INT), "check": _nullable(INT),
    "claim": _nullable(INT), "worker": _nullable(INT), "frame": _nullable(INT),
    "from_label": {"type": "string", "description": "the from book in words: an account's name, 'escrow of job 7'"},
    "to_label": {"type": "string", "description": "the to book in words"}}


def _job_schemas() -> dict[str, Any]:
    return {
        "JobRequest": {"type": "object", "required": ["scene"], "additionalProperties": False, "properties": {
            "scene": SHA256,
            "frames": {"type": "string", "description": "e.g. '1-24' or '1,5,10-12'; default: the scene's range. "
                                                        f"At most {config.MAX_JOB_FRAMES} frames by default, "
                                                        "either way"},
            "chunk": {"type": "integer", "minimum": 1, "maximum": 10000},
            "priority": {"type": "integer", "minimum": 0, "maximum": 100, "default": 50},
            "name": {"type": "string", "maxLength": 200},
            "filename": {"type": "string", "maxLength": 200},
            "policy": {"enum": list(config.POLICIES), "default": "adaptive",
                       "description": "verification: adaptive trust, fRender's circle, or every frame twice"},
            "blender_version": {"type": "string", "pattern": r"^\d{1,3}\.\d{1,3}(\.\d{1,3})?$", "description":
                                "pin an exact Blender: 5.0.1 (that release) or 5.0 (any 5.0.x); not older than the "
                                "Blender that saved the scene (400 bad_blender_version). Default: any Blender at "
                                "least as new as the one that saved the scene"},
            "max_workers": {"type": "integer", "minimum": 1, "maximum": 10000,
                            "description": "at most this many distinct agents render the job at once"},
            "device": {"enum": ["gpu", "cpu", "any"], "default": "any",
                       "description": "only agents rendering on a GPU, or on the CPU"},
            "scene_path": {"type": "string", "maxLength": MAX_PATH_BYTES, "description":
                           "the .blend's relative POSIX path in the scene's folder tree, e.g. shots/shot.blend; "
                           "default: filename if it is a usable path, else scene.blend"},
            "assets": {"type": "object", "additionalProperties": SHA256,
                       "description": "every other file of the tree: relative POSIX path -> sha256 of an uploaded "
                                      "blob. Paths are normalised, without '..', ':', '\\' or control characters, "
                                      f"names of at most {MAX_COMPONENT_BYTES} bytes, paths of at most "
                                      f"{MAX_PATH_BYTES} bytes, distinct from each other and from scene_path ignoring "
                                      "case, no file where another path needs a folder. By default at most "
                                      f"{config.MAX_ASSETS} files and {config.MAX_JOB_BYTES // 1024**3} GiB with "
                                      "the .blend"}}},
        "Job": {"type": "object", "additionalProperties": False, "required": list(JOB_FIELDS),
                "description": "a job; the fields of the job detail (GET /jobs/{job_id} and the answers of the "
                               "job controls) are left out of list pages",
                "properties": {**JOB_FIELDS, **JOB_DETAIL_FIELDS}},
        "JobList": _page("jobs", "Job"),
        "Check": _strict(list(CHECK_FIELDS), CHECK_FIELDS),
        "ClaimRequest": {"type": "object", "required": ["frames", "reason"], "properties": {
            "frames": {"type": "string", "description": "e.g. '3,7' or '10-12'"},
            "reason": {"type": "string", "maxLength": 2000}}},
        "Claim": _strict(["id", "job", "frames", "reason", "state", "outcome", "created_at", "checks"], {
            "id": INT, "job": INT, "frames": STR, "reason": STR, "state": {"enum": ["open", "confirmed", "rejected"]},
            "outcome": _nullable(STR), "created_at": {"type": "string", "format": "date-time"},
            "checks": {"type": "array", "items": _ref("Check")}}),
        "ClaimList": _page("claims", "Claim"),
    }


def _account_schemas() -> dict[str, Any]:
    return {
        "Pricing": _strict(list(PRICING_FIELDS), PRICING_FIELDS),
        "Balance": _strict(["account", "balance", "escrow", "earned_by_worker"], {
            "account": STR, "balance": INT, "escrow": {"type": "integer", "description": "held by live jobs"},
            "earned_by_worker": {"type": "object", "additionalProperties": INT}}),
        "LedgerEntry": _strict(list(ENTRY_FIELDS), ENTRY_FIELDS),
        "Ledger": _strict(["account", "account_label", "entries", "next"], {
            "account": {"type": "string", "description": "the account's book"},
            "account_label": {"type": "string", "description": "the account's name"},
            "entries": {"type": "array", "items": _ref("LedgerEntry")}, "next": NEXT}),
    }


PRICING_FIELDS = {
    "frame_price": INT, "check_price": INT, "spot_check_price": INT, "tier1_check_price": INT, "tier1_rate": NUM,
    "tier1_hold_per_frame": INT, "job_price_per_frame": INT,
    "self_dealing_rate": NUM, "starting_grant": INT, "stake": INT, "claim_price_per_frame": INT, "cancel_fee": INT,
    "rules": {"type": "array", "items": STR}}
