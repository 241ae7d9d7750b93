"""Reachability: which servers (by origin) stopped answering, so that requests to them fail
at once, instead of each spending its own retries, until one answers again.

A server that could not be reached after a request's retries is marked down, with one log
line. While it is down, one request every `probe_interval_s` goes through, once, as a probe;
the others fail at once with ServerDownError. The first answer (of any status) marks it up
again, with one log line. Thread-safe (one lock); sends nothing itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from . import errors

log = logging.getLogger(__name__)


class Reachability:
    """Down origins and when each may next be probed."""

    def __init__(
        self, probe_interval_s: float, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self.probe_interval_s = probe_interval_s
        self._timer = timer
        self._lock = threading.Lock()
        self._next_probe: dict[str, float] = {}  # down origin: when a probe may go
        self.fast_failures = 0  # requests failed at once, without being sent

    def admit(self, origin: str, what: str) -> bool:
        """May a request to `origin` go? True: as usual; False: as a probe, tried once.
        Raises ServerDownError when the origin is down and no probe is due."""
        with self._lock:
            due = self._next_probe.get(origin)
            if due is None:
                return True
            now = self._timer()
            if now < due:
                self.fast_failures += 1
                raise errors.ServerDownError(
                    f"{what}: {origin} is unreachable; not trying again until it answers"
                )
            self._next_probe[origin] = now + self.probe_interval_s
            return False

    def answered(self, origin: str) -> None:
        """`origin` answered (any status): it is up."""
        with self._lock:
            was_down = self._next_probe.pop(origin, None) is not None
        if was_down:
            log.warning("%s answers again", origin)

    def unreachable(self, origin: str, reason: str) -> None:
        """A request to `origin` could not reach it, retries included: it is down."""
        with self._lock:
            was_up = origin not in self._next_probe
            self._next_probe[origin] = self._timer() + self.probe_interval_s
        if was_up:
            log.warning(
                "%s is unreachable (%s): requests to it fail at once until it answers "
                "(tried again every %gs)",
                origin,
                reason,
                self.probe_interval_s,
            )

    def is_down(self, origin: str) -> bool:
        with self._lock:
            return origin in self._next_probe
