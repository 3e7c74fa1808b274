"""Log lines that hold strangers' text (agent names, failure messages, claim reasons, paths): one line each.

A newline in a claim reason used to start a line of its own, which looked like the coordinator's (a fake
"worker suspended"); a terminal escape sequence could rewrite what an admin's terminal shows. :func:`protect`
puts a filter on a logger that rewrites each record before any handler sees it: every string argument longer
than :data:`MAX_FIELD` characters is cut (saying how much was dropped), and control, format and line-separator
characters anywhere in the message are written as escapes (``\\n``, ``\\x1b``, ``\\u202e``). Tracebacks are
the handler's business and keep their lines.
"""

from __future__ import annotations

import logging
import re
from typing import Any

# Longest text of one argument in a log line: a name or a reason, not a document.
MAX_FIELD = 200
# C0 and C1 controls, DEL, soft hyphen, zero-width and bidi controls, line and paragraph separators, BOM.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\xad\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """``text`` with every unsafe character written as an escape; a backslash stays as it is."""
    return _UNSAFE.sub(lambda found: _NAMED.get(found[0]) or f"\\u{ord(found[0]):04x}", text)


def cut(text: str, limit: int = MAX_FIELD) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text) - limit} more characters)"


def clean(text: str, limit: int = MAX_FIELD) -> str:
    """A stranger's text fit for one log line: cut to ``limit`` characters, unsafe characters escaped."""
    return escape(cut(text, limit))


class OneLineRecords(logging.Filter):
    """Rewrites each record's message as described in the module's docstring (and lets every record through)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "framehive_one_line", False):
            return True
        if isinstance(record.args, tuple):
            record.args = tuple(_cut_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _cut_arg(value) for key, value in record.args.items()}
        record.msg = escape(record.getMessage())
        record.args = None
        record.framehive_one_line = True
        return True


def _cut_arg(value: Any) -> Any:
    return cut(value) if isinstance(value, str) else value


def protect(logger: logging.Logger) -> None:
    """Filter every record logged on ``logger`` (once, however often this is called)."""
    if not any(isinstance(f, OneLineRecords) for f in logger.filters):
        logger.addFilter(OneLineRecords())
