"""Every URL the agent requests: its coordinator's base URL, a fixed path, and ids and sha256s it has checked.

Orders from the coordinator carry URLs too (each scene file's ``url``, the ``upload_url`` template). The agent
does not follow them: it builds each URL itself and refuses an order whose URLs differ from what it built, so a
hostile or confused coordinator (or someone between the two) cannot send it to another host (``@evil``, an
absolute or scheme-relative URL), another path (``..``, a backslash, percent-encoding, a query) or another
blob or task, with the worker token in the request. The refusal names the field and is logged; nothing is
fetched. The paths are the coordinator's routes (coordinator/scene_files.py, coordinator/dispatch.py).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from framehive.protocol import messages as m
from framehive.protocol.json_numbers import is_int

SHA256_RE = re.compile(r"[0-9a-f]{64}")
# URLs quoted in refusals: cut, and escaped (they are a stranger's text and end up in logs and terminals).
_SHOWN = 120
WEBSOCKET_PATH = "/api/v1/worker/ws"


class RefusedUrl(ValueError):
    """A URL the agent will not request, or an order naming one."""


def base_url(text: str) -> str:
    """The coordinator's base URL as given by the owner, checked: ``http(s)://host[:port][/prefix]`` with no
    user name, query or fragment; returned without a trailing slash."""
    if not isinstance(text, str) or not text.isascii() or not text.isprintable() or any(c in text for c in " \\@"):
        raise ValueError(f"the coordinator URL {_shown(text)} holds a character URLs of it never hold")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the coordinator URL must start with http:// or https://, not {_shown(text)}")
    try:
        parts.port  # noqa: B018 (raises for a port that is not a number)
    except ValueError:
        raise ValueError(f"the coordinator URL {_shown(text)} has a bad port") from None
    if not parts.hostname or parts.query or parts.fragment or "?" in text or "#" in text:
        raise ValueError(f"the coordinator URL is http(s)://host[:port], not {_shown(text)}")
    if any(part in (".", "..") or "%" in part for part in parts.path.split("/")):
        raise ValueError(f"the coordinator URL {_shown(text)} has a path the agent does not follow")
    return text.rstrip("/")


def base_urls(given: list[str]) -> list[str]:
    """The owner's coordinators, in the order given: each ``--coordinator`` may itself be a comma list (as
    ``FRAMEHIVE_COORDINATOR`` is); every URL checked as :func:`base_url`, duplicates dropped. The agent sends its
    token to these and nowhere else."""
    urls: list[str] = []
    for text in given:
        for part in text.split(","):
            url = base_url(part.strip())
            if url not in urls:
                urls.append(url)
    if not urls:
        raise ValueError("no coordinator URL given")
    return urls


def websocket_url(base: str) -> str:
    """``http://host:8400`` → ``ws://host:8400/api/v1/worker/ws`` (https → wss)."""
    base = base_url(base)
    scheme = "wss" if base.startswith("https://") else "ws"
    return scheme + base[base.index("://"):] + WEBSOCKET_PATH


def blob_path(sha256: object) -> str:
    """Where a scene file is downloaded (coordinator/api/blobs.py); RefusedUrl unless ``sha256`` is one."""
    if not isinstance(sha256, str) or not SHA256_RE.fullmatch(sha256):
        raise RefusedUrl(f"{_shown(sha256)} is not a sha256")
    return f"/api/v1/blobs/{sha256}"


def upload_template(task_id: int, attempt: int) -> str:
    """Where a task's frames go, with ``{frame}`` for the frame number (coordinator/api/worker_frames.py)."""
    return f"/api/v1/worker/tasks/{_id(task_id)}/frames/{{frame}}?attempt={_id(attempt)}"


def frame_path(template: str, frame: int) -> str:
    """One frame's upload path from a template this module built (a frame number may be negative)."""
    if not is_int(frame):
        raise RefusedUrl(f"{_shown(frame)} is not a frame number")
    return template.replace("{frame}", str(frame))


def check_result_path(handle: str) -> str:
    """Where a check's region render goes (coordinator/api/worker_checks.py), named by the lease's handle."""
    if not isinstance(handle, str) or not m.HANDLE_RE.fullmatch(handle):
        raise RefusedUrl(f"{_shown(handle)} is not a check handle")
    return f"/api/v1/worker/checks/{handle}/result"


def join(base: str, path: str) -> str:
    """The full URL of one of this module's paths on the coordinator."""
    if not _OWN_PATH.fullmatch(path):
        raise RefusedUrl(f"{_shown(path)} is not a path the agent builds")
    return base_url(base) + path


def check_order(order: m.Assign | m.Verify) -> None:
    """Raise :class:`RefusedUrl` unless every URL in ``order`` is the one the agent builds from its ids."""
    own = upload_template(order.task_id, order.attempt) if isinstance(order, m.Assign) \
        else check_result_path(order.handle)
    if order.upload_url != own:
        raise RefusedUrl(f"upload_url {_shown(order.upload_url)} is not {own!r}")
    for entry in _scene_entries(order.scene):
        sha, url = entry.get("sha256"), entry.get("url")
        if url is not None and url != blob_path(sha):
            raise RefusedUrl(f"the url of scene file {_shown(entry.get('path'))} is {_shown(url)}, not "
                             f"{blob_path(sha)!r}")


def _scene_entries(scene: Any) -> list[dict[str, Any]]:
    """The main .blend and the assets of an order's ``scene``, where they are objects (their shape is
    scene_cache.scene_files's to check)."""
    if not isinstance(scene, dict):
        return []
    assets = scene.get("assets", [])
    return [scene, *(a for a in assets if isinstance(a, dict))] if isinstance(assets, list) else [scene]


def _id(value: int) -> int:
    if not is_int(value) or value < 0:
        raise RefusedUrl(f"{_shown(value)} is not an id")
    return value


# Every path this module builds, and nothing else: what join() accepts.
_OWN_PATH = re.compile(r"/api/v1/(?:blobs/[0-9a-f]{64}|worker/tasks/\d+/frames/-?\d+\?attempt=\d+"
                       r"|worker/checks/[A-Za-z0-9_-]{16,64}/result)")


def _shown(value: object) -> str:
    """A stranger's value for a message: escaped (ascii repr) and cut."""
    text = ascii(value)
    return text[:_SHOWN] + ("…" if len(text) > _SHOWN else "")
