"""Throttles failed logins per username and per client address, so that guessing passwords
(and the 16 MiB of scrypt each attempt costs) is bounded. Behind the `LoginThrottle`
interface, so the counts can later live in state shared by replicas. Never logs a password."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from cachetools import TTLCache

# Counters kept at most; an attacker choosing names and addresses cannot grow memory past
# this (the least recently used counter goes first).
_MAX_COUNTERS = 100_000


class LoginThrottle(Protocol):
    """Counts failed logins; `wait_s` says how long an attempt must wait (0: go ahead)."""

    def wait_s(self, username: str, address: str) -> int: ...

    def failed(self, username: str, address: str) -> None: ...


class MemoryLoginThrottle:
    """Refuses logins for a username after `per_user` failures, and from an address after
    `per_address` failures, within the last `window_s`, until the oldest of those failures
    is `window_s` old. Thread-safe: one lock around the counters; no hashing under it."""

    def __init__(
        self,
        per_user: int,
        per_address: int,
        window_s: float,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"user": per_user, "address": per_address}
        self._window_s = window_s
        self._timer = timer
        self._lock = threading.Lock()
        # A counter's failures all lie within the window, so it can go window_s after its last.
        self._failures: TTLCache[tuple[str, str], deque[float]] = TTLCache(
            _MAX_COUNTERS, window_s, timer=timer
        )

    def wait_s(self, username: str, address: str) -> int:
        """Whole seconds until an attempt for `username` from `address` is allowed."""
        now = self._timer()
        with self._lock:
            waits = [self._wait(key, now) for key in _keys(username, address)]
        return max(waits)

    def failed(self, username: str, address: str) -> None:
        now = self._timer()
        with self._lock:
            for key in _keys(username, address):
                times = self._failures.get(key) or deque(maxlen=self._limits[key[0]])
                times.append(now)
                self._failures[key] = times  # re-set: its expiry runs from this failure

    def _wait(self, key: tuple[str, str], now: float) -> int:
        times = self._failures.get(key)
        if times is None or len(times) < self._limits[key[0]]:
            return 0
        # The deque holds the last `limit` failures; the oldest decides when one is allowed.
        return max(0, math.ceil(times[0] + self._window_s - now))


def _keys(username: str, address: str) -> tuple[tuple[str, str], ...]:
    return (("user", username), ("address", address))
