"""What the agent says about a failed HTTP request: the status code and a fixed phrase, never the body.

The body of an error page is someone else's text: it may hold terminal escapes, be megabytes long, or carry
whatever a proxy in between put there. Echoed into task_failed it would travel to the coordinator, its
dashboard and the artist. So it stays on this machine: logged once, escaped and cut, for the owner to read.
"""

from __future__ import annotations

import logging

import requests

log = logging.getLogger("framehive.worker")

#: How much of an error body the local log keeps.
LOGGED_BODY_CHARS = 300


def refusal(what: str, response: requests.Response) -> str:
    """Log ``response``'s body locally and return ``"<what>: HTTP <status>"`` for messages that leave it."""
    message = f"{what}: HTTP {response.status_code}"
    log.warning("%s; the response said %s", message, escaped(_body(response)))
    return message


def escaped(text: str, limit: int = LOGGED_BODY_CHARS) -> str:
    """``text`` cut to ``limit`` characters and escaped (an ascii repr: no control characters reach a terminal)."""
    cut = text[:limit]
    return ascii(cut) + (f" (cut at {limit} characters)" if len(text) > limit else "")


def _body(response: requests.Response) -> str:
    """The start of the body (of a streamed download too: read no further than that)."""
    try:
        start = next(response.iter_content(LOGGED_BODY_CHARS * 4), b"")
    except (requests.RequestException, OSError, RuntimeError):
        return ""
    return start.decode("utf-8", errors="replace") if isinstance(start, bytes) else str(start)
