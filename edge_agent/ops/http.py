"""A tiny HTTP/1.1 server for `/metrics` and `/health`, on asyncio streams alone.

Two GET endpoints do not need a web framework on a gateway. Each connection answers one
request and closes. Reading the request is bounded by real time (not the agent's Clock):
it guards the agent against a stuck client on the network, not a simulated device.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from .exposition import CONTENT_TYPE
from .health import Health

__all__ = ["OpsServer"]

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 2.0
_MAX_HEADERS = 100
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


class OpsServer:
    """`/metrics` renders `metrics()`; `/health` answers `health()` as JSON, 503 if failing."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        metrics: Callable[[], str],
        health: Callable[[], Health],
    ) -> None:
        self._host, self._port = host, port
        self._metrics, self._health = metrics, health
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the OS chose for port 0)."""
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen; raises OSError if the address is taken, so the caller can say so."""
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        log.info("metrics and health on http://%s:%d/", self._host, self.port)

    async def serve(self) -> None:
        """Serve until cancelled, then stop listening within a bound."""
        assert self._server is not None, "start() first"
        try:
            await self._server.serve_forever()
        finally:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                method, status, content_type, body = await self._answer(reader)
                head = (
                    f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                    f"Content-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    "Cache-Control: no-store\r\n"
                    "Connection: close\r\n\r\n"
                )
                writer.write(head.encode("ascii") + (b"" if method == "HEAD" else body))
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away or stalled; nothing to answer
        except Exception:
            log.exception("metrics endpoint: answering a request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, int, str, bytes]:
        """(method, status, content type, body); a HEAD gets the headers of the GET."""
        request_line = (await reader.readline()).decode("latin-1").split()
        for _ in range(_MAX_HEADERS):
            if (await reader.readline()) in (b"\r\n", b"\n", b""):
                break
        if len(request_line) != 3:
            return "", 400, "text/plain; charset=utf-8", b"bad request\n"
        method, target, _ = request_line
        path = target.split("?", 1)[0]
        if path not in ("/metrics", "/health"):
            return method, 404, "text/plain; charset=utf-8", b"try /metrics or /health\n"
        if method not in ("GET", "HEAD"):
            return method, 405, "text/plain; charset=utf-8", b"GET only\n"
        if path == "/metrics":
            return method, 200, CONTENT_TYPE, self._metrics().encode()
        health = self._health()
        body = (json.dumps(health.as_json()) + "\n").encode()
        return method, health.http_status, "application/json", body
