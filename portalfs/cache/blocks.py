"""BlockCache: file bytes in fixed-size blocks, least recently used out first, bounded in bytes.

Keys carry the ETag, so bytes of an old and a new version never mix. Thread-safe: one lock
guards the LRU and is never held while fetching.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

from cachetools import LRUCache


class BlockKey(NamedTuple):
    portal_path: str
    etag: str
    index: int


class BlockCache:
    """Blocks of `block_bytes` each, holding at most `max_bytes` in all."""

    def __init__(self, block_bytes: int, max_bytes: int) -> None:
        self.block_bytes = block_bytes
        self._lock = threading.Lock()
        self._lru: LRUCache[BlockKey, bytes] = LRUCache(maxsize=max(max_bytes, 1), getsizeof=len)

    def get(self, key: BlockKey) -> bytes | None:
        with self._lock:
            return self._lru.get(key)

    def put(self, key: BlockKey, data: bytes) -> None:
        if len(data) > self._lru.maxsize:
            return  # larger than the whole cache: serve it, keep nothing
        with self._lock:
            self._lru[key] = data
