"""ASGI middleware around the routes: access log and request counters (`Metrics`), and the
JSON body limit for /v1. The log line has method, path (never the query string, which
holds signatures), status and duration; no header or body is ever logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("portalfs.server.access")

ROUTE_SCOPE_KEY = "portalfs.route"
UNMATCHED = "unmatched"


class Metrics:
    """Request counts by (method, route name, status), and connections accepted.
    Thread-safe: one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, int]] = Counter()
        self.connections = 0

    def connection_opened(self) -> None:
        with self._lock:
            self.connections += 1

    def record(self, method: str, route: str, status: int) -> None:
        with self._lock:
            self._counts[(method, route, status)] += 1

    def count(self, method: str, route: str, status: int | None = None) -> int:
        """Requests seen for `method` on route `route` (e.g. "PUT", "storage_put")."""
        with self._lock:
            return sum(
                n
                for (m, r, s), n in self._counts.items()
                if m == method and r == route and status in (None, s)
            )

    def snapshot(self) -> dict[tuple[str, str, int], int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


def route_name(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The name of the route in `routes` that `scope` will reach (e.g. "list_files"), or
    "unmatched"."""
    partial = UNMATCHED
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route.name
        if match is Match.PARTIAL and partial == UNMATCHED:
            partial = route.name  # right path, other method
    return partial


class AccessLogMiddleware:
    """Outermost layer: names the route once (for inner layers too), counts and logs."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute], metrics: Metrics) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = scope[ROUTE_SCOPE_KEY] = route_name(self.routes, scope)
        status, started = 500, time.perf_counter()

        counted = False

        async def send_and_note(message: Message) -> None:
            nonlocal status, counted
            if message["type"] == "http.response.start":
                status = message["status"]
                # Counted before the client can see the answer, so tests read exact counts.
                self.metrics.record(scope["method"], route, status)
                counted = True
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            if not counted:
                self.metrics.record(scope["method"], route, status)
            access_log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, elapsed_ms)


class JsonBodyLimitMiddleware:
    """Answers 413 to /v1 requests whose body exceeds `max_bytes`, counted as it arrives
    (a Content-Length can be absent or wrong)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                # FastAPI passes HTTPException through its body parsing and errors.py makes
                # it the envelope; uvicorn discards the unread rest of the body, so a client
                # still sending reads this answer, not a reset.
                raise HTTPException(413, f"request body larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)
