"""Fault injection on the wire, for tests and scripts/soak.py: rules in a `FaultInjector`,
consulted by a middleware before each request, replace or delay matching requests. Lives
outside the package: only `run_with_faults` puts it into a server (via the extra-middleware
seam of run_in_thread), as `handle.app.state.faults`; the production server never imports it."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Protocol

import anyio
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from portalfs.server.config import ServerConfig
from portalfs.server.errors import envelope
from portalfs.server.middleware import ROUTE_SCOPE_KEY
from portalfs.server.runner import ServerHandle, run_in_thread

ANY = "*"


class FaultAction(Protocol):
    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Handles one request in place of (or around) `app`."""


@dataclass(frozen=True)
class Status:
    """Answers with `status` and an error envelope, without running the route."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "injected fault"

    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        await envelope(self.status, self.message, self.headers)(scope, receive, send)


@dataclass(frozen=True)
class Delay:
    """Stalls `seconds` before handling the request normally."""

    seconds: float

    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep(self.seconds)
        await app(scope, receive, send)


class Hold:
    """Stalls each request it is given until `release` is set (at most 30 s), telling when
    the first arrived: a test can act while a request is surely held, with no timing."""

    def __init__(self) -> None:
        self.held, self.release, self.timed_out = threading.Event(), threading.Event(), False

    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        self.held.set()
        self.timed_out = not await anyio.to_thread.run_sync(self.release.wait, 30)
        await app(scope, receive, send)


@dataclass
class _Rule:
    route: str
    method: str | None
    remaining: int
    action: FaultAction
    # Each matching request is hit with this probability (1.0: every one, until `remaining`).
    probability: float = 1.0


class FaultInjector:
    """The rules. A rule matches a route name (see middleware.route_name, "*" for any) and
    optionally a method, fires a given number of times, and runs a `FaultAction`: `Status`
    (5xx bursts, 429 + Retry-After) or `Delay` (stalls); resets and truncated bodies can be
    added as further actions. Thread-safe: tests add rules while the server runs."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._rng = random.Random(seed)  # seeded: a failing run can be replayed

    def add(
        self,
        route: str,
        action: FaultAction,
        times: int = 1,
        method: str | None = None,
        probability: float = 1.0,
    ) -> None:
        """Runs `action` for the next `times` requests to route `route` ("*": any); with a
        `probability` below 1, each matching request is hit by chance (a seeded RNG)."""
        with self._lock:
            self._rules.append(_Rule(route, method, times, action, probability))

    def fail_next(
        self,
        route: str,
        status: int,
        times: int = 1,
        method: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next `times` requests to `route` get `status` (e.g. 503, or 429 with
        headers={"Retry-After": "1"})."""
        self.add(route, Status(status, headers or {}), times, method)

    def take(self, method: str, route: str) -> FaultAction | None:
        """The action for this request, counting it against its rule; None if no rule."""
        with self._lock:
            for rule in self._rules:
                if rule.route in (route, ANY) and rule.method in (None, method):
                    if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                        continue
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                    return rule.action
        return None

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def pending(self) -> int:
        """Requests still to be faulted, over all rules."""
        with self._lock:
            return sum(rule.remaining for rule in self._rules)


class FaultMiddleware:
    """Runs the matching fault action, if any, in place of the request."""

    def __init__(self, app: ASGIApp, faults: FaultInjector) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        action = None
        if scope["type"] == "http":
            action = self.faults.take(scope["method"], scope.get(ROUTE_SCOPE_KEY, ""))
        if action is None:
            return await self.app(scope, receive, send)
        await action(self.app, scope, receive, send)


def run_with_faults(config: ServerConfig) -> ServerHandle:
    """runner.run_in_thread with a FaultInjector in the app, at `handle.app.state.faults`."""
    faults = FaultInjector()
    handle = run_in_thread(config, [Middleware(FaultMiddleware, faults=faults)])
    handle.app.state.faults = faults
    return handle
