"""Every error code the REST API answers (``{"error": {"code": ...}}``), with its HTTP statuses and meaning.

The OpenAPI document lists them (the Error schema's ``code`` enum, and a table in its description).
tests/coordinator/test_error_codes.py reads the coordinator's source for every code it can raise and fails when
one is missing here or listed here without being raised anywhere.
"""

from __future__ import annotations

from ..auth import NOT_VALID

ERROR_CODES: dict[str, tuple[tuple[int, ...], str]] = {
    # the request itself
    "bad_request": ((400,), "a field is missing, of the wrong type or out of range (the message says which)"),
    "bad_json": ((400,), "the body must be JSON (Content-Type: application/json)"),
    "too_deep": ((400,), "JSON nested deeper than FRAMEHIVE_MAX_JSON_DEPTH"),
    "too_many_values": ((400,), "a JSON body of more values than FRAMEHIVE_MAX_JSON_VALUES (refused before parsing)"),
    "too_large": ((400, 413), "413: a body over its limit (FRAMEHIVE_MAX_JSON_BYTES for JSON, the blob or frame "
                              "limit for uploads); 400: a job's files add up to more than FRAMEHIVE_MAX_JOB_BYTES"),
    "request_entity_too_large": ((413,), "a JSON body sent without a length ran past FRAMEHIVE_MAX_JSON_BYTES"),
    "method_not_allowed": ((405,), "the path does not take this method"),
    "not_found": ((404,), "no such thing, or one that belongs to someone else"),
    # tokens
    "missing_token": ((401,), "no 'Authorization: Bearer <token>' header"),
    "bad_token": ((401,), NOT_VALID),
    "forbidden": ((403,), "the token's kind may not do this, or the thing is not the caller's"),
    "rate_limited": ((429,), "too many requests with this token; try again after Retry-After seconds"),
    "busy": ((503,), "the server is at its connection caps, or no image decode slot freed up in time"),
    "internal_error": ((500,), "a bug: the coordinator's log has the traceback"),
    # blobs
    "bad_hash": ((400,), "a blob is named by its sha256: 64 lowercase hex characters"),
    "hash_mismatch": ((400,), "the bytes sent do not hash to the sha256 named; nothing was stored"),
    "empty": ((400,), "an empty upload"),
    "quota_exceeded": ((413,), "the account's stored uploads would pass its storage quota (FRAMEHIVE_STORAGE_QUOTA)"),
    # submitting a job
    "unknown_blob": ((400,), "the scene or a file of its tree is not a blob this account uploaded"),
    "bad_path": ((400,), "a path of the scene's tree is unsafe, or collides with another"),
    "too_many_files": ((400,), "more files than FRAMEHIVE_MAX_ASSETS, or a file list too long for a worker message"),
    "not_a_blend": ((400,), "the scene is not a usable .blend file"),
    "scene_too_large": ((400,), "a .blend of the tree cannot be read within the coordinator's parse limits "
                                "(FRAMEHIVE_PARSE_*)"),
    "outside_reference": ((400,), "a .blend of the tree names a file outside the tree (details: file, datablock, "
                                  "path, and every problem)"),
    "unsupported_cache": ((400,), "a .blend of the tree uses a cache the network does not render (fluid domains)"),
    "bad_frames": ((400,), "the frame range cannot be parsed"),
    "bad_since": ((400,), "a job's since= is not the cursor of an earlier answer, unchanged"),
    "frames_out_of_range": ((400,), "frames outside the scene's range"),
    "too_many_frames": ((400,), "more frames than FRAMEHIVE_MAX_JOB_FRAMES, given or taken from the scene"),
    "bad_blender_version": ((400,), "the pinned Blender is malformed or older than the one that saved the scene"),
    "insufficient_points": ((402,), "the balance does not cover the price (details: balance, price)"),
    "too_many_jobs": ((409,), "the account has FRAMEHIVE_MAX_LIVE_JOBS queued, running or paused jobs"),
    # controlling jobs, frames and claims
    "bad_priority": ((400,), "the priority is not an integer in the allowed range"),
    "job_finished": ((409,), "the job is completed, failed or cancelled"),
    "not_pausable": ((409,), "only a queued or running job can be paused"),
    "not_paused": ((409,), "the job is not paused"),
    "nothing_to_requeue": ((409,), "the job has no failed tasks"),
    "files_collected": ((409,), "the finished job's files were deleted after the retention period"),
    "collected": ((410,), "the frame's pixels were deleted after the job's retention period"),
    "not_verified": ((404,), "the frame is not verified yet"),
    "not_rendered": ((404,), "the frame is not rendered yet"),
    "verified": ((409,), "the frame is verified: fetch it from /frames"),
    "not_delivered": ((400,), "a claim names frames that were not delivered"),
    "too_many_claims": ((409,), "the job has FRAMEHIVE_MAX_CLAIMS_PER_JOB claims"),
    # workers and tokens (admin)
    "already_suspended": ((409,), "the worker is suspended already"),
    "not_suspended": ((409,), "the worker is not suspended"),
    "already_revoked": ((409,), "the token was revoked already"),
    # worker uploads
    "lease_lost": ((409,), "the task or check is no longer leased to this agent: drop the work"),
    "bad_frame": ((400,), "a frame upload is not a PNG"),
    "bad_result": ((400,), "a check's result is not a PNG"),
    "wrong_resolution": ((400,), "the PNG's header gives another size than the job's or the check's (nothing was "
                                 "decoded)"),
}


def error_table() -> str:
    """The codes as a Markdown table, for the document's description."""
    rows = [f"| `{code}` | {', '.join(map(str, statuses))} | {meaning} |"
            for code, (statuses, meaning) in sorted(ERROR_CODES.items())]
    return "\n".join(["Errors are `{\"error\": {\"code\", \"message\", \"details\"?}}`. The codes:", "",
                      "| code | status | meaning |", "| --- | --- | --- |", *rows])
