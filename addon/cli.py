"""The ``framehive`` command: submit a .blend to a coordinator, follow the job and download its frames.

``submit`` packs the scene with every file it uses, as the Blender add-on does (addon/submission.py and
addon/packing.py, which need blender-asset-tracer): files from outside the .blend's folder are uploaded only
with ``--allow-outside``, a scene with missing files is submitted only with ``--allow-missing``; otherwise
the command lists them and submits nothing.

Exit codes: 0 success; 1 the operation failed (error from the coordinator, coordinator unreachable, job
failed or cancelled, files to allow); 2 bad usage (missing coordinator or token, not a .blend file); 130
Ctrl-C. Results go to stdout (``submit`` a line naming the job, only its id with ``--quiet``, for scripts);
progress and messages to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from .client import (
    CLIENT_VERSION,
    UNVERIFIED_DIR,
    ApiError,
    Client,
    ConnectionFailed,
    InvalidSetting,
)
from .refusals import token_refusal
from .submission import Aborted, Options, Submission, Update
from .vocabulary import Device, FrameState, JobState, Policy

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

ENV_COORDINATOR = "FRAMEHIVE_COORDINATOR"
ENV_TOKEN = "FRAMEHIVE_TOKEN"
DEFAULT_OUTPUT = Path("framehive-output")

# What a .blend starts with: plain, zstd-compressed (Blender 3.0+) or gzip-compressed (older versions).
BLEND_MAGICS = (b"BLENDER", b"\x28\xb5\x2f\xfd", b"\x1f\x8b")
# Display order of frame states (the order a frame goes through them); states the coordinator adds later are shown
# after these.
STATE_ORDER = FrameState.ALL


class UsageError(Exception):
    """The command line cannot be carried out as given (exit code 2)."""


# ---------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Run the ``framehive`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on bad arguments; callers want a code
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return _run(args, os.environ)
    except UsageError as exc:
        _say(f"framehive: {exc}")
        return EXIT_USAGE
    except ApiError as exc:
        _say(f"framehive: {explain_error(exc, args.command)}")
        return EXIT_FAILED
    except OSError as exc:  # local files: unreadable scene, full disk, no permission on the output folder
        _say(f"framehive: {_describe_os_error(exc)}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _say("framehive: interrupted")
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its subcommands."""
    parser = argparse.ArgumentParser(prog="framehive", description="Render Blender scenes on a Framehive network.")
    parser.add_argument("--version", action="version", version=f"framehive {CLIENT_VERSION}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--coordinator", metavar="URL", help=f"coordinator address (default: ${ENV_COORDINATOR})")
    common.add_argument("--token", help=f"API token (default: ${ENV_TOKEN}; the variable keeps it out of `ps` output)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = commands.add_parser("submit", parents=[common],
                                 help="pack a .blend with the files it uses, upload it and start a render job")
    submit.add_argument("scene", metavar="SCENE.blend", type=Path)
    submit.add_argument("--allow-outside", action="store_true",
                        help="upload the files the scene uses from outside its folder (without: listed, refused)")
    submit.add_argument("--allow-missing", action="store_true",
                        help="submit even though files the scene uses are missing (they render magenta)")
    submit.add_argument("--frames", metavar="RANGE", help="frames to render, e.g. 1-24 or 1,5,10-12")
    submit.add_argument("--chunk", type=_positive_int, metavar="N", help="frames per task")
    submit.add_argument("--priority", type=int, metavar="P", help="job priority")
    submit.add_argument("--name", help="job name (default: the file name)")
    submit.add_argument("--policy", choices=Policy.ALL,
                        help=f"verification: {Policy.ADAPTIVE} trust (default), {Policy.CIRCLE} (each agent's first "
                             f"work in the job is checked), or {Policy.FULL} (every frame twice)")
    submit.add_argument("--blender-version", metavar="X.Y[.Z]",
                        help="render only on this Blender: 5.0 (any 5.0.x) or 5.0.1 (that release); default: any "
                             "Blender at least as new as the one that saved the scene")
    submit.add_argument("--max-workers", type=_positive_int, metavar="N",
                        help="at most N agents render the job at once (default: as many as are free)")
    submit.add_argument("--device", choices=Device.ALL,
                        help="only agents rendering on a GPU, or on the CPU (default: any)")
    submit.add_argument("--wait", action="store_true", help="follow the job and download the frames")
    submit.add_argument("-q", "--quiet", action="store_true",
                        help="print only the job id on stdout (for scripts: JOB=$(framehive submit -q s.blend))")
    submit.add_argument(
        "--out", type=Path, metavar="DIR", help=f"with --wait: frame folder (default: {DEFAULT_OUTPUT}/JOB)"
    )
    submit.set_defaults(handler=cmd_submit)

    status = commands.add_parser("status", parents=[common], help="show a job's progress")
    status.add_argument("job", type=_positive_int, metavar="JOB")
    status.add_argument("--json", action="store_true", help="print the job as JSON")
    status.set_defaults(handler=cmd_status)

    download = commands.add_parser("download", parents=[common], help="download a job's rendered frames")
    download.add_argument("job", type=_positive_int, metavar="JOB")
    download.add_argument("--out", type=Path, metavar="DIR", required=True, help="folder for the frames")
    download.add_argument("--unverified", action="store_true",
                          help="also the frames no check has accepted yet (they may be wrong or faked), marked as "
                               "such: DIR/unverified/frame_NNNN.UNVERIFIED.png")
    download.set_defaults(handler=cmd_download)

    cancel = commands.add_parser("cancel", parents=[common], help="cancel a job")
    cancel.add_argument("job", type=_positive_int, metavar="JOB")
    cancel.set_defaults(handler=cmd_cancel)

    pause = commands.add_parser("pause", parents=[common], help="pause a job: no new work starts, work under way ends")
    pause.add_argument("job", type=_positive_int, metavar="JOB")
    pause.set_defaults(handler=cmd_control, action="pause")

    resume = commands.add_parser("resume", parents=[common], help="resume a paused job")
    resume.add_argument("job", type=_positive_int, metavar="JOB")
    resume.set_defaults(handler=cmd_control, action="resume")

    requeue = commands.add_parser("requeue", parents=[common],
                                  help="give a job's failed tasks a fresh start (a failed job runs again, paid anew)")
    requeue.add_argument("job", type=_positive_int, metavar="JOB")
    requeue.set_defaults(handler=cmd_control, action="requeue")

    priority = commands.add_parser("priority", parents=[common], help="change a job's priority (higher first)")
    priority.add_argument("job", type=_positive_int, metavar="JOB")
    priority.add_argument("priority", type=int, metavar="PRIORITY", help="0 to 100")
    priority.set_defaults(handler=cmd_control, action="priority")

    claim = commands.add_parser("claim", parents=[common], help="dispute delivered frames of a job")
    claim.add_argument("job", type=_positive_int, metavar="JOB")
    claim.add_argument("--frames", required=True, metavar="LIST", help="frames to dispute, e.g. 3,7 or 10-12")
    claim.add_argument("--reason", required=True, help="what is wrong with them")
    claim.set_defaults(handler=cmd_claim)

    balance = commands.add_parser("balance", parents=[common], help="your points, escrow and agents' earnings")
    balance.add_argument("--json", action="store_true", help="print the raw JSON")
    balance.set_defaults(handler=cmd_balance)

    ledger = commands.add_parser("ledger", parents=[common], help="your ledger entries, newest first")
    ledger.add_argument("--job", type=_positive_int, metavar="JOB", help="only this job's entries")
    ledger.add_argument("--json", action="store_true", help="print the raw JSON")
    ledger.set_defaults(handler=cmd_ledger)

    jobs = commands.add_parser("jobs", parents=[common], help="list your jobs")
    jobs.set_defaults(handler=cmd_jobs)
    return parser


def _run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    url, token = resolve_connection(args, environ)
    try:
        client = Client(url, token)
    except InvalidSetting as exc:
        raise UsageError(exc.message) from None
    return args.handler(client, args)


def resolve_connection(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str]:
    """Coordinator URL and token from the options, else from the environment; UsageError if missing."""
    url = (args.coordinator or environ.get(ENV_COORDINATOR) or "").strip()
    token = (args.token or environ.get(ENV_TOKEN) or "").strip()
    if not url:
        raise UsageError(f"no coordinator given: pass --coordinator URL or set {ENV_COORDINATOR}")
    if not token:
        raise UsageError(f"no token given: pass --token TOKEN or set {ENV_TOKEN}")
    return url, token


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


# ---------------------------------------------------------------------- commands


def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    """Pack the scene, upload what the coordinator lacks, create the job, print its id; with --wait follow it
    to the end."""
    check_blend(args.scene)
    if args.out is not None and not args.wait:
        raise UsageError("--out needs --wait (or download later: framehive download JOB --out DIR)")
    options = Options(frames=args.frames, chunk=args.chunk, priority=args.priority, policy=args.policy,
                      name=args.name, allow_missing=args.allow_missing, allow_outside=args.allow_outside,
                      blender_version=args.blender_version, max_workers=args.max_workers, device=args.device)
    # The artist's own file is packed (packing never writes to it); the submission removes its scratch folder.
    submission = Submission(client, args.scene, Path(tempfile.mkdtemp(prefix="framehive-submit-")), options)
    final, uploaded = _run_submission(submission)
    if final.kind != "done" or final.job is None:
        if isinstance(final.error, ApiError):
            raise final.error  # explained by main(), as for every other command
        allow = final.to_allow("--allow-outside", "--allow-missing")
        _say(f"framehive: {final.text}" + (f". To submit anyway, pass {allow}" if allow else ""))
        return EXIT_INTERRUPTED if isinstance(final.error, Aborted) else EXIT_FAILED
    if not uploaded:
        _say(f"{args.scene.name} and the files it uses are already on the coordinator; nothing to upload")
    job = final.job
    job_id = _int(job.get("id"))
    if not job_id:
        raise ApiError(0, "bad_response", f"the coordinator created a job without an id: {job!r}"[:300])
    submitted = f"submitted job {job_id} ({_describe_job(job)}); follow it with `framehive status {job_id}`"
    if args.quiet:
        print(job_id, flush=True)
        _say(submitted)
    else:
        print(submitted, flush=True)
    _say(f"job {job_id} needs {describe_requirements(job.get('requirements'))}")
    if not args.wait:
        return EXIT_OK
    return _follow(client, job_id, args.out)


def _run_submission(submission: Submission) -> tuple[Update, bool]:
    """Run the submission in its thread, showing its updates on one status line, until it ends; returns its
    final update and whether anything was uploaded. Ctrl-C stops it: nothing is submitted then."""
    line = StatusLine(sys.stderr)
    uploaded = False
    submission.start()
    try:
        while True:
            try:
                update = submission.updates.get()
                if update.kind in ("done", "error"):
                    return update, uploaded
                if update.kind == "progress":
                    uploaded = True
                    percent = int(100 * (update.fraction or 0.0))
                    line.show(f"{update.text} ({percent}%)", key=percent // 10)  # off a terminal: every 10 %
                elif update.kind == "status" or line.tty:  # a "step" (each file read or copied) only live
                    line.show(update.text)
            except KeyboardInterrupt:
                submission.abort()  # it ends with its own "error" update, which the loop waits for
    finally:
        line.finish()


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    """Print a job's summary, or its raw JSON with --json."""
    job = client.job(args.job)
    print(json.dumps(job, indent=2) if args.json else format_summary(job))
    return EXIT_OK


def cmd_download(client: Client, args: argparse.Namespace) -> int:
    """Download the job's rendered frames that are not already in the output folder."""
    result = _download(client, args.job, args.out)
    return _download_unverified(client, args.job, args.out) if args.unverified else result


def _download_unverified(client: Client, job_id: int, out_dir: Path) -> int:
    files = client.download_unverified(job_id, out_dir)
    if files:
        _say(f"downloaded {len(files)} UNVERIFIED frame(s) to {out_dir / UNVERIFIED_DIR}: no other owner has "
             "checked them, they may be wrong or faked; `framehive download` replaces them once verified")
    else:
        _say(f"job {job_id} has no unverified frames")
    return EXIT_OK


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    """Cancel a job."""
    job = client.cancel(args.job)
    print(f"job {args.job} {job.get('state', JobState.CANCELLED)}")
    return EXIT_OK


def cmd_control(client: Client, args: argparse.Namespace) -> int:
    """pause, resume, requeue or priority: one line with the job's state afterwards."""
    if args.action == "priority":
        job = client.set_priority(args.job, args.priority)
        print(f"job {args.job} {job.get('state')}, priority {job.get('priority')}")
    elif args.action == "requeue":
        job = client.requeue(args.job)
        print(f"job {args.job} {job.get('state')}, {job.get('requeued')} task(s) requeued")
    else:
        job = client.pause(args.job) if args.action == "pause" else client.resume(args.job)
        print(f"job {args.job} {job.get('state')}")
    return EXIT_OK


def cmd_claim(client: Client, args: argparse.Namespace) -> int:
    """File a bad-result claim; trusted nodes re-render the frames and the coordinator decides."""
    claim = client.claim(args.job, args.frames, args.reason)
    print(f"claim {claim.get('id')} on job {args.job} frames {claim.get('frames')}: {claim.get('state')}")
    _say(f"trusted nodes re-render the frames; `framehive status {args.job}` shows the outcome")
    return EXIT_OK


def cmd_balance(client: Client, args: argparse.Namespace) -> int:
    """Points of the token's account."""
    info = client.balance()
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"{info.get('account')}: {info.get('balance')} points ({info.get('escrow')} held in escrow by running jobs)")
    for worker, earned in sorted((info.get("earned_by_worker") or {}).items()):
        print(f"  {worker}: earned {earned}")
    return EXIT_OK


def cmd_ledger(client: Client, args: argparse.Namespace) -> int:
    """The account's ledger, one entry a line."""
    entries = client.ledger(args.job)
    if args.json:
        print(json.dumps(entries, indent=2))
        return EXIT_OK
    for e in entries:
        print(format_entry(e))
    if not entries:
        _say("no ledger entries")
    return EXIT_OK


def format_entry(entry: dict[str, Any]) -> str:
    """One ledger line: time, amount, from -> to by name (the books' labels; the books themselves from a
    coordinator that sends no labels), reason, what it refers to and the memo."""
    where = " ".join(f"{k} {entry[k]}" for k in ("job", "frame", "check", "claim") if entry.get(k) is not None)
    source = _printable(entry.get("from_label") or entry.get("from"), 60)
    target = _printable(entry.get("to_label") or entry.get("to"), 60)
    return (f"{str(entry.get('at', ''))[:19]}  {entry.get('amount'):>7}  {source} -> {target}  "
            f"{_printable(entry.get('reason'), 40)}  {where}  {_printable(entry.get('memo'), 200)}").rstrip()


def cmd_jobs(client: Client, args: argparse.Namespace) -> int:
    """List the token owner's jobs."""
    print(format_job_list(client.jobs()))
    return EXIT_OK


def _follow(client: Client, job_id: int, out: Path | None) -> int:
    """--wait: show live progress until the job ends, then download the frames if it completed."""
    try:
        job = _wait_with_progress(client, job_id)
    except KeyboardInterrupt:
        # Only the local wait stops; the job itself is the coordinator's and renders on.
        _say(f"job {job_id} keeps running; `framehive status {job_id}`")
        return EXIT_INTERRUPTED
    if job.get("state") != JobState.COMPLETED:
        error = job.get("error")
        _say(f"framehive: job {job_id} {job.get('state')}" + (f": {error}" if error else ""))
        return EXIT_FAILED
    return _download(client, job_id, out if out is not None else DEFAULT_OUTPUT / str(job_id))


def _wait_with_progress(client: Client, job_id: int) -> dict[str, Any]:
    line = StatusLine(sys.stderr)
    started = time.monotonic()

    def show(job: dict[str, Any]) -> None:
        line.show(format_progress(job, time.monotonic() - started), key=progress_key(job))

    try:
        return client.wait(job_id, on_update=show)
    finally:
        line.finish()


def _download(client: Client, job_id: int, out_dir: Path) -> int:
    line = StatusLine(sys.stderr)
    totals = [0]

    def progress(done: int, total: int) -> None:
        totals[0] = total
        # Off a terminal: a line every 10 %, not one per frame of a 2000-frame job.
        line.show(f"downloading frames: {done}/{total}", key=done * 10 // total)

    try:
        paths = client.download_job(job_id, out_dir, progress=progress)
    finally:
        line.finish()
    if not totals[0]:
        _say(f"job {job_id} has no rendered frames to download yet")
    elif not paths:
        _say(f"all {totals[0]} frame(s) already in {out_dir}")
    else:
        skipped = totals[0] - len(paths)
        note = f" ({skipped} already there)" if skipped else ""
        _say(f"downloaded {len(paths)} frame(s) to {out_dir}{note}")
    return EXIT_OK


# ---------------------------------------------------------------------- checks and messages


def check_blend(path: Path) -> None:
    """Refuse, before any upload, a path that is missing or does not start like a .blend file."""
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: not a file")
    with path.open("rb") as fp:
        head = fp.read(8)
    if not head.startswith(BLEND_MAGICS):
        raise UsageError(f"{path}: not a .blend file (no Blender, zstd or gzip header)")


def explain_error(exc: ApiError, command: str = "") -> str:
    """One line for an API error of ``framehive <command>``, with a hint where the usual fix is known."""
    if isinstance(exc, ConnectionFailed):
        return f"{exc}; is it running? (--coordinator or ${ENV_COORDINATOR})"
    action = f"run `framehive {command}`" if command else "use the artist's commands"
    return token_refusal(exc, action, hint=f"check --token or ${ENV_TOKEN}") or str(exc)


def _describe_os_error(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- display


class StatusLine:
    """A progress line on ``stream``: redrawn in place on a terminal, printed once per change otherwise.

    CI logs have no terminal; there a carriage-return line would be repeated on every poll, so a new line
    is written only when ``key`` (default: the text) changes.
    """

    def __init__(self, stream: TextIO, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = _isatty(stream) if tty is None else tty
        self._drawn = 0  # characters of the in-place line currently on screen
        self._key: object = None

    def show(self, text: str, key: object = None) -> None:
        """Display ``text`` as the current status."""
        if self.tty:
            # Longer than the terminal, the line would wrap and "\r" could no longer overwrite it.
            text = text[: max(20, shutil.get_terminal_size().columns - 1)]
            self.stream.write("\r" + text + " " * max(0, self._drawn - len(text)))
            self._drawn = len(text)
        else:
            key = text if key is None else key
            if key == self._key:
                return
            self._key = key
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the in-place line so that later output starts on a line of its own."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = 0


def format_progress(job: dict[str, Any], elapsed: float, width: int = 20) -> str:
    """One progress line: state, bar, done/total frames, per-state counts and elapsed time.

    ``job 7 running 01:05 [########------------] 8/20 frames 40%  queued 11, rendering 1, rendered 8``
    """
    counts = job_counts(job)
    done = sum(counts.get(state, 0) for state in FrameState.DELIVERED)
    total = _int(job.get("total")) or sum(counts.values())
    filled = min(width, width * done // total) if total else 0
    bar = "#" * filled + "-" * (width - filled)
    percent = f"{100 * done // total}%" if total else "-"
    states = ", ".join(f"{state} {count}" for state, count in counts.items() if count)
    # The clock comes before the counts: a narrow terminal cuts the end of the line.
    line = f"job {job.get('id')} {job.get('state')} {format_elapsed(elapsed)} [{bar}] {done}/{total} frames {percent}"
    line = f"{line}  {states}" if states else line
    # Why nothing moves, when the coordinator knows (no verifier of another owner online, ...).
    return f"{line}  waiting: {job['waiting']}" if job.get("waiting") else line


def progress_key(job: dict[str, Any]) -> tuple[Any, ...]:
    """What must change for a new progress line off a terminal: state and counts, not the clock."""
    return (job.get("state"), tuple(job_counts(job).items()), job.get("waiting"))


def job_counts(job: dict[str, Any]) -> dict[str, int]:
    """Frames per state in display order, from ``counts`` or else counted from ``frame_states``."""
    raw = job.get("counts")
    if isinstance(raw, dict):
        counts = {str(state): _int(count) for state, count in raw.items()}
    else:
        counts = {}
        for entry in job.get("frame_states") or []:
            state = str(entry.get("state")) if isinstance(entry, dict) else "unknown"
            counts[state] = counts.get(state, 0) + 1
    order = {state: i for i, state in enumerate(STATE_ORDER)}
    return dict(sorted(counts.items(), key=lambda item: order.get(item[0], len(order))))


def format_summary(job: dict[str, Any]) -> str:
    """A readable multi-line summary of a job for ``framehive status``."""
    counts = job_counts(job)
    done = sum(counts.get(state, 0) for state in FrameState.DELIVERED)
    total = _int(job.get("total")) or sum(counts.values())
    states = ", ".join(f"{state} {count}" for state, count in counts.items() if count) or "none yet"
    rows = [
        ("state", str(job.get("state"))),
        ("frames", f"{job.get('frames') or '-'}: {done}/{total} done ({states})"),
        ("priority", f"{job.get('priority', '-')}, chunk {job.get('chunk', '-')}"),
        ("tasks", _task_summary(job.get("tasks"))),
        ("created", str(job.get("created_at") or "-")),
        ("finished", str(job.get("finished_at") or "-")),
        ("needs", describe_requirements(job.get("requirements"))),
    ]
    if job.get("error"):
        rows.append(("error", str(job["error"])))
    if job.get("waiting"):
        rows.append(("waiting", str(job["waiting"])))
    if counts.get(FrameState.RENDERED):
        rows.append(("unverified", f"{counts[FrameState.RENDERED]} rendered frame(s) await checks; `framehive download "
                                   f"{job.get('id')} --out DIR --unverified` gets them now, marked UNVERIFIED"))
    header = f"job {job.get('id')} {job.get('name', '')}".rstrip()
    lines = [header, *(f"  {label:<9} {value}" for label, value in rows)]
    return "\n".join([*lines, *_check_lines(job.get("checks")), *_failure_lines(job.get("failures"))])


SHOWN_ROWS = 10  # checks and failures listed by `status`, the latest; --json has them all


def _check_lines(checks: Any) -> list[str]:
    """The job's checks: counts by verdict, then the latest: frame, region, verifier, verdict, reason, metrics."""
    if not isinstance(checks, list) or not checks:
        return ["  checks    none yet"]
    checks = [c for c in checks if isinstance(c, dict)]
    verdicts: dict[str, int] = {}
    for check in checks:
        key = str(check.get("verdict") or check.get("state"))
        verdicts[key] = verdicts.get(key, 0) + 1
    lines = [f"  checks    {len(checks)} (" + ", ".join(f"{k} {n}" for k, n in verdicts.items()) + ")"]
    lines += _earlier(len(checks))
    for c in checks[-SHOWN_ROWS:]:
        region = ",".join(str(_int(v)) for v in c.get("region") or []) or "-"
        verdict = _printable(c.get("verdict") or c.get("state"), 20)
        details = [_printable(c.get("mode"), 10), _printable(c.get("reason"), 120), _metrics(c.get("metrics"))]
        detail = "; ".join(d for d in details if d)
        lines.append(f"    frame {_int(c.get('frame'))} region {region} {_printable(c.get('kind'), 12)} by "
                     f"{_printable(c.get('verifier'), 60) or '-'}: {verdict}" + (f" ({detail})" if detail else ""))
    return lines


def _failure_lines(failures: Any) -> list[str]:
    """The job's task failures, the latest: task, attempt, reason, error."""
    if not isinstance(failures, list) or not failures:
        return []
    failures = [f for f in failures if isinstance(f, dict)]
    lines = [f"  failures  {len(failures)}", *_earlier(len(failures))]
    for f in failures[-SHOWN_ROWS:]:
        lines.append(f"    task {_int(f.get('task'))} attempt {_int(f.get('attempt'))}: "
                     f"{_printable(f.get('reason'), 40)}: {_printable(f.get('error'), 200)}")
    return lines


def _earlier(count: int) -> list[str]:
    return [f"    ({count - SHOWN_ROWS} earlier; --json shows every one)"] if count > SHOWN_ROWS else []


def _metrics(metrics: Any) -> str:
    if not isinstance(metrics, dict):
        return ""
    shown = [f"{_printable(k, 30)} {v:.3g}" for k, v in metrics.items()
             if isinstance(v, int | float) and not isinstance(v, bool)]
    return ", ".join(shown)


def _printable(value: Any, limit: int) -> str:
    """Text from the coordinator (names, reasons, errors a worker wrote) with printable characters only, no
    terminal escapes, at most ``limit`` of them."""
    if value is None:
        return ""
    return "".join(char for char in " ".join(str(value).split()) if char.isprintable())[:limit]


def _task_summary(tasks: Any) -> str:
    if not isinstance(tasks, list) or not tasks:
        return "-"
    by_state: dict[str, int] = {}
    for task in tasks:
        state = str(task.get("state")) if isinstance(task, dict) else "unknown"
        by_state[state] = by_state.get(state, 0) + 1
    return f"{len(tasks)} (" + ", ".join(f"{state} {n}" for state, n in by_state.items()) + ")"


def format_job_list(jobs: list[dict[str, Any]]) -> str:
    """A table of jobs for ``framehive jobs``."""
    if not jobs:
        return "no jobs"
    rows = [("ID", "STATE", "DONE", "CREATED", "NAME")]
    for job in jobs:
        counts = job_counts(job)
        done = sum(counts.get(state, 0) for state in FrameState.DELIVERED)
        total = _int(job.get("total")) or sum(counts.values())
        created = str(job.get("created_at") or "-")
        rows.append((str(job.get("id")), str(job.get("state")), f"{done}/{total}", created, str(job.get("name"))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    )


def format_elapsed(seconds: float) -> str:
    """``mm:ss``, or ``h:mm:ss`` from one hour on."""
    minutes, secs = divmod(int(max(0.0, seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _describe_job(job: dict[str, Any]) -> str:
    total = job.get("total")
    frames = f"frames {job.get('frames')}" if job.get("frames") else "scene frame range"
    return f"{job.get('name')}, {frames}" + (f", {total} frames" if total else "")


def describe_requirements(requirements: Any) -> str:
    """What an agent needs to be given the job, in the coordinator's words ("Blender ≥ 5.0, a GPU"): printable
    characters only (no terminal escapes from a hostile coordinator), at most 200."""
    text = requirements.get("summary") if isinstance(requirements, dict) else None
    shown = "".join(char for char in text if char.isprintable())[:200] if isinstance(text, str) else ""
    return shown or "any agent"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _isatty(stream: TextIO) -> bool:
    isatty: Callable[[], bool] | None = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


if __name__ == "__main__":
    sys.exit(main())
