"""LinkCache: pre-signed download URLs by portal path, reused for less than their life.

Thread-safe: one lock guards the TTL map and is never held while asking for a link.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cachetools import TTLCache


class LinkCache:
    """Download links kept for `ttl_s` seconds; `drop` forgets one the store refused."""

    def __init__(
        self,
        fetch: Callable[[str], str],
        ttl_s: float,
        timer: Callable[[], float] = time.monotonic,
        max_links: int = 4096,
    ) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._links: TTLCache[str, str] = TTLCache(maxsize=max_links, ttl=ttl_s, timer=timer)

    def get(self, portal_path: str) -> str:
        with self._lock:
            url = self._links.get(portal_path)
        if url is None:
            url = self._fetch(portal_path)
            with self._lock:
                self._links[portal_path] = url
        return url

    def drop(self, portal_path: str) -> None:
        with self._lock:
            self._links.pop(portal_path, None)
