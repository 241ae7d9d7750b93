"""BlockCache: file bytes in fixed-size blocks, bounded in bytes. Blocks read ahead stay until
their reader takes them; every other block goes least recently used first.

Keys carry the ETag, so bytes of an old and a new version never mix. Thread-safe: one lock
guards the cache and is never held while fetching. Decides nothing about what to read ahead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple


class BlockKey(NamedTuple):
    portal_path: str
    etag: str
    index: int


class BlockCache:
    """Blocks of `block_bytes` each, holding at most `max_bytes` in all (blocks read ahead
    and not yet taken count too, and are never the ones evicted: the read-ahead windows are
    sized to leave room)."""

    def __init__(self, block_bytes: int, max_bytes: int) -> None:
        self.block_bytes = block_bytes
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._lru: OrderedDict[BlockKey, bytes] = OrderedDict()  # least recently used first
        # Read ahead, not read yet. Evicting them would make their reader fetch each one
        # again, one GET per block, exactly when several files are read at once.
        self._unread: dict[BlockKey, bytes] = {}
        self._bytes = 0

    @property
    def bytes_held(self) -> int:
        with self._lock:
            return self._bytes

    def __contains__(self, key: object) -> bool:
        """Whether the block is here; unlike get(), takes no block read ahead and leaves the
        order of eviction as it was."""
        with self._lock:
            return key in self._unread or key in self._lru

    def get(self, key: BlockKey) -> bytes | None:
        """The block, or None; a block read ahead is taken (evictable from now on)."""
        with self._lock:
            data = self._unread.pop(key, None)
            if data is not None:
                self._lru[key] = data  # taken: an ordinary cached block from now on
                return data
            data = self._lru.get(key)
            if data is not None:
                self._lru.move_to_end(key)
            return data

    def put(self, key: BlockKey, data: bytes, unread: bool = False) -> None:
        """Keep a block; `unread`: read ahead, kept until get() takes it or release()."""
        if not unread and len(data) > self.max_bytes:
            return  # larger than the whole cache: serve it, keep nothing
        with self._lock:
            self._discard(key)
            (self._unread if unread else self._lru)[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes and self._lru:
                _, old = self._lru.popitem(last=False)
                self._bytes -= len(old)

    def release(self, keys: Iterable[BlockKey]) -> None:
        """Blocks read ahead that no reader will take (it closed or went elsewhere): the first
        to go when room is needed."""
        with self._lock:
            for key in keys:
                data = self._unread.pop(key, None)
                if data is not None:
                    self._lru[key] = data
                    self._lru.move_to_end(key, last=False)

    def _discard(self, key: BlockKey) -> None:
        old = self._unread.pop(key, None)
        if old is None:
            old = self._lru.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
