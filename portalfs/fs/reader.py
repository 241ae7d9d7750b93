"""RemoteReader: serves reads of portal files from the block cache, fetching missing blocks
with ranged GETs on cached download links, and reading ahead for sequential readers.

Thread-safe. Never returns bytes from two versions of a file: every block is keyed and
checked by the ETag the reader opened.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from ..cache.blocks import BlockCache, BlockKey
from ..cache.links import LinkCache
from ..client import errors
from ..client.storage import RangeRead

log = logging.getLogger(__name__)

GetRange = Callable[[str, int, int, str | None], RangeRead]


class RemoteReader:
    """Reads [offset, offset+length) of a file known by (portal path, ETag, size)."""

    def __init__(
        self,
        links: LinkCache,
        get_range: GetRange,
        blocks: BlockCache,
        readahead_blocks: int,
        workers: int = 4,
    ) -> None:
        self.links = links
        self.get_range = get_range
        self.blocks = blocks
        self.readahead_blocks = readahead_blocks
        self._pool: ThreadPoolExecutor | None = None
        self._workers = workers
        self._lock = threading.Lock()
        self._inflight: dict[BlockKey, Future[bytes]] = {}

    def read(self, portal_path: str, etag: str, size: int, offset: int, length: int) -> bytes:
        bs = self.blocks.block_bytes
        end = min(offset + length, size)
        if offset >= end:
            return b""
        parts = []
        for index in range(offset // bs, (end - 1) // bs + 1):
            block = self._block(BlockKey(portal_path, etag, index), size)
            lo = max(offset - index * bs, 0)
            hi = min(end - index * bs, len(block))
            parts.append(block[lo:hi])
        return b"".join(parts)

    def prefetch(self, portal_path: str, etag: str, size: int, offset: int, count: int) -> None:
        """Start fetching up to `count` blocks from the one holding `offset`, in the background."""
        bs = self.blocks.block_bytes
        first = offset // bs
        last = min(first + count, (size + bs - 1) // bs)
        for index in range(first, last):
            key = BlockKey(portal_path, etag, index)
            if self.blocks.get(key) is None:
                self._start(key, size)

    def _block(self, key: BlockKey, size: int) -> bytes:
        data = self.blocks.get(key)
        if data is not None:
            return data
        return self._start(key, size, background=False).result()

    def _start(self, key: BlockKey, size: int, background: bool = True) -> Future[bytes]:
        with self._lock:
            future = self._inflight.get(key)
            if future is not None:
                return future
            future = self._inflight[key] = Future()
        if background:
            self._executor().submit(self._run, key, size, future)
        else:
            self._run(key, size, future)
        return future

    def _run(self, key: BlockKey, size: int, future: Future[bytes]) -> None:
        try:
            data = self._fetch(key, size)
            self.blocks.put(key, data)
            future.set_result(data)
        except BaseException as exc:
            future.set_exception(exc)
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def _fetch(self, key: BlockKey, size: int) -> bytes:
        bs = self.blocks.block_bytes
        start = key.index * bs
        expected = min(bs, size - start)
        try:
            got = self.get_range(self.links.get(key.portal_path), start, expected, key.etag)
        except errors.LinkExpiredError:
            log.info("download link for %s was refused; asking for a new one", key.portal_path)
            self.links.drop(key.portal_path)
            got = self.get_range(self.links.get(key.portal_path), start, expected, key.etag)
        if len(got.data) != expected:
            raise errors.ConflictError(f"{key.portal_path}: the file changed on the server")
        return got.data

    def _executor(self) -> ThreadPoolExecutor:
        # Created on first use: a mount daemonizes by forking, and threads do not survive it.
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="readahead")
            return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
