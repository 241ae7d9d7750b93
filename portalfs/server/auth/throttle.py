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
    """Counts failed logins. `reserve` counts an attempt as failed before its password is
    checked, or says how long it must wait; `succeeded` takes that count back."""

    def reserve(self, username: str, address: str) -> int: ...

    def succeeded(self, username: str, address: str) -> None: ...


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

    def reserve(self, username: str, address: str) -> int:
        """0, with the attempt counted as a failure until `succeeded`; or the whole seconds
        until an attempt for `username` from `address` is allowed. Check and count in one
        step: a burst of concurrent attempts cannot all pass a check made before any of
        them failed."""
        now = self._timer()
        with self._lock:
            wait = max(self._wait(key, now) for key in _keys(username, address))
            if wait == 0:
                for key in _keys(username, address):
                    times = self._failures.get(key) or deque(maxlen=self._limits[key[0]])
                    times.append(now)
                    self._failures[key] = times  # re-set: its expiry runs from this one
            return wait

    def succeeded(self, username: str, address: str) -> None:
        """The reserved attempt had the right password: it is no failure."""
        with self._lock:
            for key in _keys(username, address):
                times = self._failures.get(key)
                if times:
                    times.pop()

    def _wait(self, key: tuple[str, str], now: float) -> int:
        times = self._failures.get(key)
        if times is None or len(times) < self._limits[key[0]]:
            return 0
        # The deque holds the last `limit` failures; the oldest decides when one is allowed.
        return max(0, math.ceil(times[0] + self._window_s - now))


def _keys(username: str, address: str) -> tuple[tuple[str, str], ...]:
    return (("user", username), ("address", address))
