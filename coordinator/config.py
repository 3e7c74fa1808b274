"""Coordinator configuration: every tunable is named here with its default and the reason for it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from framehive.protocol import messages
from framehive.protocol.untrusted_parse import ParseLimits

# How often a worker must say it is alive. Short enough that a silent worker is noticed quickly.
HEARTBEAT_INTERVAL = 5.0
# A lease not renewed for this long is lost and the task goes to another worker (several missed heartbeats).
LEASE_TIMEOUT = 30.0
# A connected agent's token is read again this often (s), so a revoked or expired token is cut off within this
# bound even if its agent stays silent (channel_upkeep: one read for every connection of the process; 0.5 s at least).
TOKEN_RECHECK_INTERVAL = 5.0
# A connected agent's last_seen is written at most this often (s), and at most every half lease whatever this says
# (channel_upkeep: the reaper's offline rule of two lease timeouts stays sound; one UPDATE for every agent heard).
SEEN_INTERVAL = 15.0
# How often the reaper looks for expired leases and stuck jobs.
REAPER_INTERVAL = 1.0
# A task whose renders failed this many times fails its job, if agents of two accounts failed it (see below).
MAX_TASK_FAILURES = 3
# An account whose agents failed this many times on one job is blocklisted for that job as a whole (all its agents,
# new names included). A job fails on repeated failures only when agents of two accounts failed it (or the job's
# own account, or a trusted one): one account's failures count against that account (failure_accounting.py).
BLOCKLIST_THRESHOLD = 3
# An account blocklisted for failing this many jobs of other artists within ACCOUNT_FAILURE_WINDOW seconds, with no
# frame of its verified in that window, is suspended (every agent it has or makes). A broken machine of an
# honest owner fails every job too, so it is held until an admin looks at it: it harms others just the same.
ACCOUNT_SUSPEND_JOBS = 3
ACCOUNT_FAILURE_WINDOW = 24 * 3600.0
# Per worker token: agents connected at once, and agent names (worker identities) it may ever sign on with. A new
# name is a new worker with no history, so unbounded names would escape every per-worker record; a farm with more
# machines gets more tokens or a higher limit.
MAX_AGENTS_PER_TOKEN = 4
MAX_NAMES_PER_TOKEN = 16
# Refuse agents whose hello says their renders are not confined (no Landlock: an old kernel, macOS, Windows; or an
# agent that does not say). It is the agent's own report: it keeps an honest owner's misconfigured machine off a
# network that promises confinement, it proves nothing about a hostile one. Off by default (the path checks at
# submit and on the worker apply everywhere).
REQUIRE_CONFINEMENT = False
# Upload limits: one file of a scene (the .blend or one of its textures, libraries, caches), and one frame.
MAX_SCENE_BYTES = 2 * 1024**3
MAX_FRAME_BYTES = 256 * 1024**2
# A job's scene tree: every worker that renders or checks it downloads all of it and keeps it on disk, so the
# number of files (each one a request) and their total size are bounded. A production shot with its textures
# fits; a whole project does not.
MAX_ASSETS = 10_000
MAX_JOB_BYTES = 20 * 1024**3
# Frames are decoded before anyone trusts them; refuse images bigger than 16K x 16K.
MAX_FRAME_PIXELS = 16384 * 16384
# Uploaded PNGs (frames, check crops) decoded at once; more wait up to DECODE_WAIT seconds, then get 503 busy.
# A frame's header must give the job's size before it is decoded, so one decode costs at most a frame of the
# job (a 4K RGBA frame: about 70 MB); a few at once keep bursts of a big job's frames bounded.
DECODE_SLOTS = 4
# Threads doing a request's or a WebSocket message's work at once (work_slots.py); the others wait asleep. Bodies are
# read and messages sent without a slot, so slow strangers cannot hold them.
WORK_SLOTS = 16
DECODE_WAIT = 60.0
# JSON request bodies: bigger ones are 413 too_large before they are parsed (a submission of MAX_ASSETS files
# with long paths fits), deeper nesting is 400 too_deep (the API's own bodies are 2 levels deep).
MAX_JSON_BYTES = 8 * 1024**2
MAX_JSON_DEPTH = 32
# ... and more values than this (arrays, objects, items) is 400 too_many_values before parsing: [[],[],...] takes
# 20 times its bytes once parsed (an 8 MiB body: +389 MiB, measured). The largest honest bodies (MAX_ASSETS files,
# 10 000 hashes asking what is missing) hold some 20 000.
MAX_JSON_VALUES = 100_000
# The child process that reads submitted .blend files, by setting (ParseLimits in protocol/untrusted_parse.py has
# the defaults and their reasons): its memory, CPU and wall time, and each file's inflated size and block count.
PARSE_SETTINGS = {"FRAMEHIVE_PARSE_MEMORY": "memory_bytes", "FRAMEHIVE_PARSE_CPU_SECONDS": "cpu_seconds",
                  "FRAMEHIVE_PARSE_WALL_SECONDS": "wall_seconds", "FRAMEHIVE_PARSE_INFLATED_BYTES": "inflated_bytes",
                  "FRAMEHIVE_PARSE_MAX_BLOCKS": "max_blocks"}
# Default chunking: aim for this many tasks per online worker so small jobs spread over all of them.
TASKS_PER_WORKER = 2
MAX_DEFAULT_CHUNK = 20
# Job priorities: higher first (leases.claim_task); set at submit, changed later by job_control.set_priority.
MIN_PRIORITY = 0
MAX_PRIORITY = 100
DEFAULT_PRIORITY = 50
# Verification (coordinator/verification/). Adaptive trust: every task of a new worker is checked until it
# passed TRUST_BURN_IN checks; then the rate falls as BURN_IN / trust to CHECK_FLOOR, never to zero.
TRUST_BURN_IN = 10
CHECK_FLOOR = 0.05
# Share of frames (not covered by a region check) that also get a spot check: a small region (keys.SPOT_FRACTION)
# that catches every fake changing the whole frame. 0.8 makes a renderer faking 5 frames of 100 in that way
# escape with 0.2^5 = 0.03 %, whatever its trust (docs/verification.md; benchmarks/verification.py).
SPOT_RATE = 0.8
# Share of an untrusted renderer's frames whose whole frame a verifier also re-renders at low resolution (tier 1,
# verification/tier1.py): it sees local cheats that region and spot checks miss; a flag orders a strict region
# check of the worst tile. 0.75 would catch a renderer tampering 1/16 of 5 frames in 100 in 99.95 % of such jobs,
# one showing the adjacent frame in 99.994 %, for 0.8-1.5 % more verification compute at 960x540 and 1920x1080
# (BENCHMARKS.md "Local cheats: tier 1"; region and spot checks alone: 45 % and 93 %). Frames tier1.factor_for has
# no factor for get none. The artist pays for it: a job's price holds TIER1_CHECK_PRICE x this rate per frame
# (payments.job_price), and the escrow keeps every unpaid frame's render price before it pays any check.
TIER1_RATE = 0.75
# A worker caught this many times (as renderer or verifier) is suspended.
SUSPEND_AFTER = 2
# Share of passed checks that get a second, independent verifier (catches colluding verifier + renderer).
AUDIT_RATE = 0.05
# Share of check assignments that are ringers: regions whose answer the coordinator already knows.
RINGER_RATE = 0.1
# Who may arbitrate a dispute: the network's trusted nodes, or a verifier never caught that has earned this
# much trust (known-answer ringers passed, verdicts confirmed by arbitration). A fresh account cannot: a
# cheater's partner could otherwise open one and side with it in every dispute it is the only third owner for.
ARBITER_MIN_TRUST = 20
# Every wait for a verifier is bounded (verification/eligibility.py): a check waits at most this many seconds for
# a verifier of the renderer's device class (bit-exact comparison) before one of another class may take it, and
# an arbitration as long for a trusted node or a veteran before any third owner's render decides by majority, and
# a claim as long for a trusted node before veterans of other owners re-render it (two must agree to overturn).
# Long enough for a same-class machine of a busy network to come free, short enough that a young network delivers.
FALLBACK_WAIT = 600.0
# Settings pinned in every job, over the artist's own. None: a delivered frame is the artist's own render, dither
# included. Dither is a fixed function of the pixel position in the image rendered (a full frame renders alike
# every time), so a region render's dither differs from the full frame's by up to 2 levels, which the strict
# rule's 4 levels allow (benchmarks/comparison.py, part (d) of BENCHMARKS.md: no honest dithered crop fails).
PINNED_SETTINGS: dict[str, object] = {}
POLICIES = ("adaptive", "circle", "full")
# Points (coordinator/ledger.py, payments.py). A job of M frames costs M x (FRAME_PRICE + CHECK_PRICE + the tier-1
# hold), held in escrow: what its frames and their expected checks pay out, so self-dealing never earns more than
# it costs (fRender's rule). Renders come first: checks are paid from the escrow only above the price of the renders
# it still owes, and checks beyond the price (the region checks tier-1 flags order, audits, arbitrations) by the
# network pool. A renderer working on its own account's job earns SELF_DEALING_RATE of the frame price (SheepIt's
# 30 %); a caught cheater forfeits STAKE points of its balance to the network.
FRAME_PRICE = 10
CHECK_PRICE = 2
# A spot check renders a small region: it pays less. A frame gets at most one of a region or a spot check from
# its keys, so CHECK_PRICE per frame in escrow covers both.
SPOT_CHECK_PRICE = 1
# A tier-1 check renders the whole frame at 1/10 (else 1/5 or 1/4) of each side: 0.9-1.7 % of a frame at 960x540
# and 1920x1080, about what a spot costs (1.3 % at 960x540), so it pays what a spot pays. A job's price holds
# ceil(TIER1_RATE x this) per frame for it (1 at the default rate); the region check a tier-1 flag orders is paid
# like any region check, from what the escrow has above its render reserve, else by the network pool.
TIER1_CHECK_PRICE = 1
SELF_DEALING_RATE = 0.3
STARTING_GRANT = 1000
STAKE = 50
# Limits against growth without bounds and floods (issue 12). Each has a FRAMEHIVE_ setting of the same name,
# which the admin sets in the coordinator's environment (see from_environment).
# Bytes an account may keep stored from its own uploads (scene files); 413 quota_exceeded past it. Uploads no job
# uses are deleted BLOB_GRACE after they arrived (time to upload a whole tree and submit it); a finished job's
# files (scene tree, frames, check crops) are kept JOB_RETENTION after it ended, for downloads and claims, and
# are then released (deleted unless a live or more recent job uses the same bytes). COLLECT_INTERVAL: how often
# the collector looks.
STORAGE_QUOTA = 50 * 1024**3
BLOB_GRACE = 24 * 3600.0
JOB_RETENTION = 30 * 86400.0
COLLECT_INTERVAL = 600.0
# Jobs an account may have queued, running or paused at once (each holds escrow, rows and scheduler time).
MAX_LIVE_JOBS = 20
# Frames in one job, however they are given (a range, or the scene's own range when none is): every frame is a
# row, a secret key and a share of the escrow. framehive.protocol.frameranges.MAX_FRAMES is the parser's own ceiling.
MAX_JOB_FRAMES = 100_000
# A claim has a trusted node render each disputed frame whole: it holds CLAIM_PRICE points per frame from the
# claimant, given back if the claim is confirmed and kept by the network if it is rejected. A job takes at most
# MAX_CLAIMS_PER_JOB claims.
CLAIM_PRICE = 10
MAX_CLAIMS_PER_JOB = 5
# Cancelling a job costs its owner this much of the escrow (to the network): creating and cancelling jobs in a
# loop writes rows (tasks, frames, keys) that stay, so it must not be free. An admin's cancel is free.
CANCEL_FEE = 5
# Rate limits per token (token buckets in each coordinator process): a sustained rate per second and a burst.
# Reads are GETs; writes are other methods, blob uploads included; an agent's work (its scene downloads, frame and
# check uploads) has a budget of its own, so nothing else the token does can starve it, with a burst for a whole
# scene tree (MAX_ASSETS files) at once. Generous: a person, the add-on, the dashboard and a farm of agents never
# reach them; a script hammering the API does (429 with Retry-After).
READ_RATE = 50.0
READ_BURST = 500
WRITE_RATE = 20.0
WRITE_BURST = 300
WORKER_RATE = 100.0
WORKER_BURST = 12_000
# List endpoints answer in pages (?limit=&after=, a `next` link): the default and the largest page.
PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


def defaults(data_dir: Path) -> dict[str, Any]:
    """Flask config for a coordinator whose state lives under ``data_dir``."""
    return {
        "FRAMEHIVE_DATA_DIR": str(data_dir),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{data_dir / 'framehive.sqlite3'}",
        "FRAMEHIVE_STORAGE": f"file://{data_dir / 'blobs'}",
        "FRAMEHIVE_HEARTBEAT_INTERVAL": HEARTBEAT_INTERVAL,
        "FRAMEHIVE_LEASE_TIMEOUT": LEASE_TIMEOUT,
        "FRAMEHIVE_TOKEN_RECHECK_INTERVAL": TOKEN_RECHECK_INTERVAL,
        "FRAMEHIVE_SEEN_INTERVAL": SEEN_INTERVAL,
        "FRAMEHIVE_REAPER_INTERVAL": REAPER_INTERVAL,
        "FRAMEHIVE_MAX_TASK_FAILURES": MAX_TASK_FAILURES,
        "FRAMEHIVE_BLOCKLIST_THRESHOLD": BLOCKLIST_THRESHOLD,
        "FRAMEHIVE_ACCOUNT_SUSPEND_JOBS": ACCOUNT_SUSPEND_JOBS,
        "FRAMEHIVE_ACCOUNT_FAILURE_WINDOW": ACCOUNT_FAILURE_WINDOW,
        "FRAMEHIVE_MAX_AGENTS_PER_TOKEN": MAX_AGENTS_PER_TOKEN,
        "FRAMEHIVE_MAX_NAMES_PER_TOKEN": MAX_NAMES_PER_TOKEN,
        "FRAMEHIVE_REQUIRE_CONFINEMENT": REQUIRE_CONFINEMENT,
        "FRAMEHIVE_MAX_SCENE_BYTES": MAX_SCENE_BYTES,
        "FRAMEHIVE_MAX_FRAME_BYTES": MAX_FRAME_BYTES,
        "FRAMEHIVE_MAX_ASSETS": MAX_ASSETS,
        "FRAMEHIVE_MAX_JOB_BYTES": MAX_JOB_BYTES,
        "FRAMEHIVE_MAX_FRAME_PIXELS": MAX_FRAME_PIXELS,
        "FRAMEHIVE_DECODE_SLOTS": DECODE_SLOTS,
        "FRAMEHIVE_WORK_SLOTS": WORK_SLOTS,
        "FRAMEHIVE_DECODE_WAIT": DECODE_WAIT,
        "FRAMEHIVE_MAX_JSON_BYTES": MAX_JSON_BYTES,
        "FRAMEHIVE_MAX_JSON_DEPTH": MAX_JSON_DEPTH,
        "FRAMEHIVE_MAX_JSON_VALUES": MAX_JSON_VALUES,
        **{name: getattr(ParseLimits(), field) for name, field in PARSE_SETTINGS.items()},
        # flask-sock: a worker message bigger than the protocol's limit closes its WebSocket (coordinator/ws_guard)
        "SOCK_SERVER_OPTIONS": {"max_message_size": messages.MAX_MESSAGE_BYTES},
        "FRAMEHIVE_START_REAPER": True,
        "FRAMEHIVE_TRUST_BURN_IN": TRUST_BURN_IN,
        "FRAMEHIVE_CHECK_FLOOR": CHECK_FLOOR,
        "FRAMEHIVE_SPOT_RATE": SPOT_RATE,
        "FRAMEHIVE_TIER1_RATE": TIER1_RATE,
        "FRAMEHIVE_SUSPEND_AFTER": SUSPEND_AFTER,
        "FRAMEHIVE_AUDIT_RATE": AUDIT_RATE,
        "FRAMEHIVE_RINGER_RATE": RINGER_RATE,
        "FRAMEHIVE_ARBITER_MIN_TRUST": ARBITER_MIN_TRUST,
        "FRAMEHIVE_FALLBACK_WAIT": FALLBACK_WAIT,
        "FRAMEHIVE_FRAME_PRICE": FRAME_PRICE,
        "FRAMEHIVE_CHECK_PRICE": CHECK_PRICE,
        "FRAMEHIVE_SPOT_CHECK_PRICE": SPOT_CHECK_PRICE,
        "FRAMEHIVE_TIER1_CHECK_PRICE": TIER1_CHECK_PRICE,
        "FRAMEHIVE_SELF_DEALING_RATE": SELF_DEALING_RATE,
        "FRAMEHIVE_STARTING_GRANT": STARTING_GRANT,
        "FRAMEHIVE_STAKE": STAKE,
        "FRAMEHIVE_STORAGE_QUOTA": STORAGE_QUOTA,
        "FRAMEHIVE_BLOB_GRACE": BLOB_GRACE,
        "FRAMEHIVE_JOB_RETENTION": JOB_RETENTION,
        "FRAMEHIVE_COLLECT_INTERVAL": COLLECT_INTERVAL,
        "FRAMEHIVE_START_COLLECTOR": True,
        "FRAMEHIVE_MAX_LIVE_JOBS": MAX_LIVE_JOBS,
        "FRAMEHIVE_MAX_JOB_FRAMES": MAX_JOB_FRAMES,
        "FRAMEHIVE_CLAIM_PRICE": CLAIM_PRICE,
        "FRAMEHIVE_MAX_CLAIMS_PER_JOB": MAX_CLAIMS_PER_JOB,
        "FRAMEHIVE_CANCEL_FEE": CANCEL_FEE,
        "FRAMEHIVE_READ_RATE": READ_RATE,
        "FRAMEHIVE_READ_BURST": READ_BURST,
        "FRAMEHIVE_WRITE_RATE": WRITE_RATE,
        "FRAMEHIVE_WRITE_BURST": WRITE_BURST,
        "FRAMEHIVE_WORKER_RATE": WORKER_RATE,
        "FRAMEHIVE_WORKER_BURST": WORKER_BURST,
        "FRAMEHIVE_PAGE_SIZE": PAGE_SIZE,
        "FRAMEHIVE_MAX_PAGE_SIZE": MAX_PAGE_SIZE,
    }


# Settings create_app itself reads from the environment, for every app (FRAMEHIVE_MAX_LIVE_JOBS=50 ...): the limits
# above. `framehive-coordinator serve` and wsgi.py read every setting from the environment and the --config file
# (config_sources.py); prices and verification rates change what jobs cost, so coordinators sharing one database
# should agree on them.
ENVIRONMENT_SETTINGS = (
    "FRAMEHIVE_STORAGE_QUOTA", "FRAMEHIVE_BLOB_GRACE", "FRAMEHIVE_JOB_RETENTION", "FRAMEHIVE_COLLECT_INTERVAL",
    "FRAMEHIVE_MAX_LIVE_JOBS", "FRAMEHIVE_MAX_JOB_FRAMES", "FRAMEHIVE_MAX_CLAIMS_PER_JOB",
    "FRAMEHIVE_READ_RATE", "FRAMEHIVE_READ_BURST", "FRAMEHIVE_WRITE_RATE", "FRAMEHIVE_WRITE_BURST",
    "FRAMEHIVE_WORKER_RATE", "FRAMEHIVE_WORKER_BURST", "FRAMEHIVE_PAGE_SIZE",
    "FRAMEHIVE_MAX_PAGE_SIZE", "FRAMEHIVE_MAX_AGENTS_PER_TOKEN", "FRAMEHIVE_MAX_NAMES_PER_TOKEN",
    "FRAMEHIVE_REQUIRE_CONFINEMENT",
    "FRAMEHIVE_DECODE_SLOTS", "FRAMEHIVE_DECODE_WAIT", "FRAMEHIVE_MAX_JSON_BYTES", "FRAMEHIVE_MAX_JSON_DEPTH",
    "FRAMEHIVE_MAX_JSON_VALUES",
    *PARSE_SETTINGS,
    "FRAMEHIVE_FALLBACK_WAIT",
)


def from_environment(settings: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """The ENVIRONMENT_SETTINGS that ``environ`` sets, parsed as the type of their default in ``settings``.

    A value that is not a number, or is negative, stops the start with a message naming the setting (a typo
    must not silently leave a limit at its default, or turn it off).
    """
    found: dict[str, Any] = {}
    for name in ENVIRONMENT_SETTINGS:
        text = environ.get(name)
        if text is None:
            continue
        kind = type(settings[name])
        if kind is bool:  # a switch: bool("0") would be True
            found[name] = _switch(name, text)
            continue
        try:
            value = kind(text.strip())
        except ValueError:
            raise ValueError(f"{name}={text!r}: expected {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}={text!r}: expected a finite number of at least 0")
        found[name] = value
    return found


def _switch(name: str, text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name}={text!r}: expected 1/true/yes/on or 0/false/no/off")
