"""JSON messages on the worker WebSocket, defined once for both ends.

Every message is a JSON object with a ``"type"`` field. :func:`decode` validates the type and the fields
(names and JSON types) and returns a dataclass; :func:`encode` turns a dataclass back into text.
Large payloads (scenes, frames) never travel here: they move over HTTP as content-addressed blobs.

Flow::

    worker                          coordinator
      hello  ───────────────────────►
             ◄─────────────────────── welcome
             ◄─────────────────────── assign        (pushed the moment the worker is idle)
      progress / heartbeat ─────────►              (renew the lease)
      (frames: HTTP PUT, one per frame as soon as written)
      task_done | task_failed | handback ──►
             ◄─────────────────────── verify        (re-render a secret region: HTTP PUT the PNG)
      check_done | check_failed ─────►
             ◄─────────────────────── cancel        (job cancelled or lease lost)
      status ───────────────────────►              (paused by its owner or schedule, or resumed)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .json_numbers import is_int, is_number

# Messages from a worker are small; the coordinator refuses anything bigger.
MAX_MESSAGE_BYTES = 256 * 1024
# Orders from the coordinator (assign, verify) carry the list of the scene's files, which may be long: the
# worker accepts this much. A job's file list may use all of it but MAX_MESSAGE_BYTES, which is left for the
# rest of the order (the coordinator refuses bigger file lists on submission).
MAX_ORDER_BYTES = 16 * 1024 * 1024
MAX_MANIFEST_BYTES = MAX_ORDER_BYTES - MAX_MESSAGE_BYTES


class MessageError(ValueError):
    """A message that is not valid JSON, has an unknown type or wrong fields."""


@dataclass
class Message:
    TYPE: ClassVar[str] = ""

    def check(self) -> None:
        """Limits beyond the fields' JSON types (:func:`decode` calls it); raises :class:`MessageError`."""


# ---------------------------------------------------------------- worker → coordinator

@dataclass
class Hello(Message):
    """First message after connecting: who the agent is and what it can do."""

    TYPE: ClassVar[str] = "hello"
    protocol: int
    name: str
    agent_version: str
    blender_version: str
    device: str  # backend chosen: CPU, CUDA, OPTIX, HIP, METAL, ONEAPI
    devices: list[dict[str, Any]]  # every Cycles device seen: {"backend", "name", "id"}
    threads: int
    roles: list[str] = field(default_factory=lambda: ["render"])
    # What confines its renders (framehive.worker_agent.confinement.status()); None from agents that do not say. The
    # agent's own word: the coordinator shows it and may refuse unconfined agents, it proves nothing.
    confinement: dict[str, Any] | None = None
    # The task (id and attempt) the agent was running when its previous connection was lost, and dropped: the
    # coordinator hands that lease back without counting a failure (protocol/session.py, "hello after a lost
    # connection"). None from agents that held nothing, that restarted, or that do not say.
    dropped_task_id: int | None = None
    dropped_attempt: int | None = None

    def check(self) -> None:
        """Its text is kept and shown (the coordinator's columns have these sizes) and logged: short, printable."""
        if (self.dropped_task_id is None) != (self.dropped_attempt is None):
            raise MessageError("hello: dropped_task_id and dropped_attempt go together")
        for name, limit in HELLO_TEXT_LIMITS.items():
            _check_text(f"hello: {name}", getattr(self, name), limit)
        check_agent_name(self.name, "hello: the name")
        if len(self.devices) > MAX_DEVICES or len(self.roles) > MAX_ROLES or not 0 <= self.threads <= MAX_THREADS:
            raise MessageError(f"hello: at most {MAX_DEVICES} devices, {MAX_ROLES} roles and {MAX_THREADS} threads")
        for device in self.devices:
            if len(device) > MAX_DEVICE_KEYS:
                raise MessageError(f"hello: a device is described by at most {MAX_DEVICE_KEYS} fields")
            for key, value in device.items():
                _check_text("hello: a device field", key, MAX_DEVICE_TEXT)
                if isinstance(value, str):
                    _check_text(f"hello: device {key}", value, MAX_DEVICE_TEXT)
                elif not isinstance(value, int | float | bool) and value is not None:
                    raise MessageError(f"hello: device {key} must be text or a number")
        for role in self.roles:
            _check_text("hello: a role", role, MAX_ROLE_TEXT)
        if self.confinement is not None:
            _check_confinement(self.confinement)


# Lengths of a hello's text, in characters.
HELLO_TEXT_LIMITS = {"name": 120, "agent_version": 40, "blender_version": 40, "device": 16}


def check_agent_name(name: str, what: str = "the agent name") -> None:
    """An agent's name as the coordinator takes it in a hello: not empty, at most HELLO_TEXT_LIMITS["name"]
    characters, printable (the worker checks its --name with this before it connects)."""
    _check_text(what, name, HELLO_TEXT_LIMITS["name"])
    if not name:
        raise MessageError(f"{what} is empty")
MAX_DEVICES = 32
MAX_DEVICE_KEYS = 8
MAX_DEVICE_TEXT = 200
MAX_ROLES = 4
MAX_ROLE_TEXT = 16
MAX_THREADS = 65536


# A hello's confinement report: each field it may have, with its JSON type (the coordinator stores and shows it).
# "available" is required: whether renders are confined at all.
CONFINEMENT_FIELDS: dict[str, tuple[type, ...]] = {
    "available": (bool,), "mechanism": (str, type(None)), "abi": (int,), "filesystem": (bool,), "network": (bool,),
    "scopes": (list,), "device_ioctl": (bool,), "environment": (str,), "reason": (str, type(None)),
}
MAX_CONFINEMENT_TEXT = 200  # "reason": one line saying why renders are not confined
MAX_CONFINEMENT_WORD = 40  # "mechanism", "environment" and each scope
MAX_SCOPES = 8
MAX_ABI = 1000


def _check_confinement(report: dict[str, Any]) -> None:
    """A stranger's self-report of its confinement: known fields of the right types, short printable text."""
    unknown = set(report) - set(CONFINEMENT_FIELDS)
    if unknown:
        raise MessageError(f"hello: confinement has unknown field(s) {sorted(unknown)[:4]}")
    for key, value in report.items():
        kinds = CONFINEMENT_FIELDS[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise MessageError(f"hello: confinement {key} has the wrong type")
    if not isinstance(report.get("available"), bool):
        raise MessageError("hello: confinement must say whether it is available")
    if not 0 <= report.get("abi", 0) <= MAX_ABI:
        raise MessageError(f"hello: confinement abi must be from 0 to {MAX_ABI}")
    scopes = report.get("scopes", [])
    if len(scopes) > MAX_SCOPES or not all(isinstance(scope, str) for scope in scopes):
        raise MessageError(f"hello: confinement scopes are at most {MAX_SCOPES} words")
    for scope in scopes:
        _check_text("hello: a confinement scope", scope, MAX_CONFINEMENT_WORD)
    for key in ("mechanism", "environment"):
        if isinstance(report.get(key), str):
            _check_text(f"hello: confinement {key}", report[key], MAX_CONFINEMENT_WORD)
    if isinstance(report.get("reason"), str):
        _check_text("hello: confinement reason", report["reason"], MAX_CONFINEMENT_TEXT)


#: A check handle: URL-safe base64 (secrets.token_urlsafe), so it goes into a URL path as it is.
HANDLE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def check_handle(handle: str) -> None:
    if not HANDLE_RE.fullmatch(handle):
        raise MessageError("a check handle is 16 to 64 characters of A-Z, a-z, 0-9, - and _")


def _check_text(what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise MessageError(f"{what} is longer than {limit} characters")
    if not value.isprintable():  # control, format and separator characters (a newline would forge log lines)
        raise MessageError(f"{what} holds control or invisible characters")


@dataclass
class Heartbeat(Message):
    """Sent every ``welcome.heartbeat_interval`` seconds; renews the lease of ``task_id`` or of the check ``handle``."""

    TYPE: ClassVar[str] = "heartbeat"
    task_id: int | None = None
    handle: str | None = None

    def check(self) -> None:
        if self.handle is not None:
            check_handle(self.handle)


@dataclass
class Progress(Message):
    """The agent started rendering ``frame`` of its task (also renews the lease)."""

    TYPE: ClassVar[str] = "progress"
    task_id: int
    attempt: int
    frame: int


@dataclass
class TaskDone(Message):
    """Every frame of the task was rendered and uploaded."""

    TYPE: ClassVar[str] = "task_done"
    task_id: int
    attempt: int


@dataclass
class TaskFailed(Message):
    """The task could not be rendered; ``log_tail`` holds the last lines of Blender's output."""

    TYPE: ClassVar[str] = "task_failed"
    task_id: int
    attempt: int
    error: str
    log_tail: str = ""
    limit: str | None = None  # the worker's limit the scene crossed: "memory", "frame_time" or "output_size"


@dataclass
class Handback(Message):
    """The agent is shutting down and gives the task back unfinished (not counted as a failure)."""

    TYPE: ClassVar[str] = "handback"
    task_id: int
    attempt: int


@dataclass
class CheckDone(Message):
    """The verifier uploaded its region render (the upload carries the pixels; this frees the agent)."""

    TYPE: ClassVar[str] = "check_done"
    handle: str

    def check(self) -> None:
        check_handle(self.handle)


@dataclass
class CheckFailed(Message):
    """The verifier could not render the region."""

    TYPE: ClassVar[str] = "check_failed"
    handle: str
    error: str
    log_tail: str = ""
    limit: str | None = None  # as in TaskFailed

    def check(self) -> None:
        check_handle(self.handle)


# ---------------------------------------------------------------- coordinator → worker

@dataclass
class Welcome(Message):
    TYPE: ClassVar[str] = "welcome"
    worker_id: int
    heartbeat_interval: float
    lease_timeout: float


@dataclass
class Assign(Message):
    """Render ``frames`` of ``job_id``'s scene and PUT each frame to ``upload_url``.

    ``upload_url`` is a path template relative to the coordinator's base URL with a ``{frame}`` field.
    ``scene`` is ``{"sha256": hex, "size": int, "url": path, "path": str, "assets": [...]}``: the main .blend as
    a blob, its relative POSIX path in the scene's folder tree (``shots/shot.blend``), and every other file of
    the tree as ``{"path", "sha256", "size", "url"}`` (textures, libraries, caches; empty for a lone .blend).
    The worker lays the tree out and opens the .blend inside it, so ``//``-relative paths resolve.
    ``settings`` are applied on top of the scene's own settings by the render runner.
    """

    TYPE: ClassVar[str] = "assign"
    task_id: int
    attempt: int
    job_id: int
    frames: list[int]
    scene: dict[str, Any]
    settings: dict[str, Any]
    upload_url: str


@dataclass
class Verify(Message):
    """Re-render ``rect`` of ``frame`` (pixels, top-left origin) and PUT the PNG to ``upload_url``.

    Blind: the verifier learns the scene, frame and region, never the renderer or its output. ``scene`` is
    the same as in :class:`Assign`. ``handle`` names this lease of the check: random, new on every lease (it
    stands for the check and its attempt), so it says nothing about when or why the check was made or whether
    it is a ringer; the verifier quotes it in check_done, check_failed, heartbeats and the upload URL.
    """

    TYPE: ClassVar[str] = "verify"
    handle: str
    job_id: int
    frame: int
    rect: list[int]
    scene: dict[str, Any]
    settings: dict[str, Any]
    upload_url: str
    # A second seed: the verifier renders the region with it too, below the job-seed render in the same PNG,
    # when ``cross`` (the renderer is of another device class) or the scene is denoised; its distance to the
    # first render measures the region's noise (coordinator/verification/comparison.py). None: never.
    yardstick_seed: int | None = None
    cross: bool = False
    # Render settings changed for this render only (tier 1: the resolution, at 100 %, and pixel_filter_type; the agent's
    # render runner accepts only REGION_OVERRIDES); ``rect`` is in pixels of the resolution they give.
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class Cancel(Message):
    """Stop working on ``task_id`` (or the check ``handle``) now; its results are no longer wanted."""

    TYPE: ClassVar[str] = "cancel"
    task_id: int | None = None
    reason: str = ""
    handle: str | None = None  # a check's handle (Verify.handle)

    def check(self) -> None:
        if self.handle is not None:
            check_handle(self.handle)


@dataclass
class Error(Message):
    TYPE: ClassVar[str] = "error"
    code: str
    message: str


# ---------------------------------------------------------------- worker → coordinator, added later

@dataclass
class Status(Message):
    """The agent's owner paused it (by hand or by its schedule), or it resumed. A paused agent finishes the work
    in hand and is given nothing new; it may hand back work pushed to it before the coordinator read this.
    Sent right after hello when the agent starts paused, then on every change. ``reason`` is for people."""

    TYPE: ClassVar[str] = "status"
    paused: bool
    reason: str = ""

    def check(self) -> None:
        """The reason is shown on the dashboard and logged: one short printable line."""
        _check_text("status: reason", self.reason, MAX_STATUS_REASON)


#: A paused agent's reason: one line for the dashboard (the coordinator's column has this size).
MAX_STATUS_REASON = 200


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (Hello, Heartbeat, Progress, TaskDone, TaskFailed, Handback, CheckDone, CheckFailed, Welcome, Assign,
                Verify, Cancel, Error, Status)
}


def encode(message: Message) -> str:
    """Serialise a message to JSON text."""
    payload = {"type": message.TYPE, **dataclasses.asdict(message)}
    return json.dumps(payload, separators=(",", ":"))


@functools.cache
def _fields_of(kind: str) -> tuple[dict[str, Any], frozenset[str]]:
    """The field types and names of message type ``kind``, read once per type (get_type_hints evaluates every
    annotation: the largest share of a coordinator's time spent decoding messages at 1,000 agents, issue 16)."""
    cls = MESSAGE_TYPES[kind]
    return typing.get_type_hints(cls), frozenset(f.name for f in dataclasses.fields(cls))


def decode(text: str | bytes, limit: int = MAX_MESSAGE_BYTES) -> Message:
    """Parse and validate a message of at most ``limit`` bytes; raises :class:`MessageError` with a reason.

    The worker passes :data:`MAX_ORDER_BYTES` (orders carry file lists); the coordinator keeps the default.
    """
    if len(text) > limit:
        raise MessageError("message too large")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError("a message must be a JSON object")
    kind = data.pop("type", None)
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MessageError(f"unknown message type {kind!r}")
    hints, known = _fields_of(kind)
    # Fields this version does not know are dropped, not refused: a newer peer may send some (a new agent's hello
    # on an older coordinator during a rolling upgrade, a new coordinator's order to an older agent). A change an
    # older peer must not ignore raises PROTOCOL_VERSION instead. The message's size bounds what is dropped.
    for name in set(data) - known:
        del data[name]
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise MessageError(f"{kind}: missing field {f.name!r}")
            continue
        if not _matches(data[f.name], hints[f.name]):
            raise MessageError(f"{kind}: field {f.name!r} has the wrong type")
    message = cls(**data)
    message.check()
    return message


def _matches(value: Any, hint: Any) -> bool:
    """Shallow JSON type check of ``value`` against a type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return is_number(value)
    if hint is int:
        return is_int(value)
    return isinstance(value, hint)
