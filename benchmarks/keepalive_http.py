"""A small asyncio HTTP/1.1 client with one kept-alive connection, for benchmarks/fleet.py's simulated agents.

A real agent talks HTTP through a ``requests.Session``, which keeps its connection open between uploads; a
thousand agents in one process cannot each have a thread for that, so each gets one of these instead. Only what
the coordinator's answers need is understood: a status line, headers, and a body sized by Content-Length or
sent chunked. A request on a kept-alive connection the server has meanwhile closed is sent again once on a fresh
one (every request the agents make is idempotent: a duplicate frame or check upload is harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

# The longest answer head (status line and headers) accepted.
MAX_HEAD = 64 * 1024


class HttpError(RuntimeError):
    """The server's answer could not be read."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class KeepAliveClient:
    """One connection to ``base_url`` (http only), opened on first use and reopened when the server closes it."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None, timeout: float = 120.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"not an http:// URL: {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.headers = headers or {}
        self.timeout = timeout
        self.connects = 0  # connections opened: how often the server closed a kept-alive one
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> Response:
        fresh = self._writer is None
        try:
            return await asyncio.wait_for(self._exchange(method, path, body, headers or {}), self.timeout)
        except (ConnectionError, asyncio.IncompleteReadError, HttpError):
            await self.close()
            if fresh:
                raise
        # The kept-alive connection was closed by the server between requests: once more on a new one.
        return await asyncio.wait_for(self._exchange(method, path, body, headers or {}), self.timeout)

    async def _exchange(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Response:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self.connects += 1
        assert self._reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in {**self.headers, **headers}.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self._writer.drain()
        response = await _read_response(self._reader)
        if response.headers.get("connection", "").lower() == "close":
            await self.close()
        return response

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> Response:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError("answer head too long") from None
    if len(head) > MAX_HEAD:
        raise HttpError("answer head too long")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split(" ", 2)[1])
    except (IndexError, ValueError):
        raise HttpError(f"not an HTTP status line: {status_line[:80]!r}") from None
    headers = {}
    for line in header_lines:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif "content-length" not in headers:  # sized by the end of the connection
        body = await reader.read()
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Response(status, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # the empty trailer
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
