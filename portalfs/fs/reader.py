"""RemoteReader: serves reads of portal files from the block cache. Missing blocks come from
ranged GETs on cached download links; sequential readers get read-ahead as one streaming GET
per window, so a large file costs a few requests, not one per block.

Thread-safe. Never returns bytes from two versions of a file: every block is keyed by the
ETag the reader opened, and every GET is checked against it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from ..cache.blocks import BlockCache, BlockKey
from ..cache.links import LinkCache
from ..client import errors

log = logging.getLogger(__name__)


class RangeSource(Protocol):
    """What the reader needs of the storage client."""

    def stream_range(
        self, url: str, start: int, length: int, etag: str | None, piece_bytes: int
    ) -> Iterator[bytes]: ...


class RemoteReader:
    """Reads [offset, offset+length) of a file known by (portal path, ETag, size)."""

    def __init__(
        self, links: LinkCache, source: RangeSource, blocks: BlockCache, workers: int = 4
    ) -> None:
        self.links = links
        self.source = source
        self.blocks = blocks
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
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
            parts.append(block[lo : end - index * bs])
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def prefetch(self, portal_path: str, etag: str, size: int, offset: int, window: int) -> None:
        """Keep `window` blocks from `offset` on cached or coming. A new stream starts only
        when less than half the window is covered, so streams are long, not one block each."""
        bs = self.blocks.block_bytes
        first, last = offset // bs, min(offset // bs + window, (size + bs - 1) // bs)
        with self._lock:
            index = first
            while index < last and self._covered(BlockKey(portal_path, etag, index)):
                index += 1
            if index >= last or (index - first) * 2 > window:
                return
            keys = []
            while index < last and not self._covered(BlockKey(portal_path, etag, index)):
                key = BlockKey(portal_path, etag, index)
                self._inflight[key] = Future()
                keys.append(key)
                index += 1
        self._executor().submit(self._stream, keys, size)

    def _covered(self, key: BlockKey) -> bool:
        return key in self._inflight or self.blocks.get(key) is not None

    def _block(self, key: BlockKey, size: int) -> bytes:
        data = self.blocks.get(key)
        if data is not None:
            return data
        with self._lock:
            future = self._inflight.get(key)
        if future is not None:
            try:
                return future.result()
            except errors.ConflictError:
                raise
            except errors.PortalError as exc:  # a read-ahead failed: try once more, here
                log.info("read-ahead of %s failed (%s); reading directly", key.portal_path, exc)
        return self._fetch_now(key, size)

    def _fetch_now(self, key: BlockKey, size: int) -> bytes:
        bs = self.blocks.block_bytes
        start = key.index * bs
        expected = min(bs, size - start)
        data = b"".join(self._with_link(key.portal_path, start, expected, key.etag))
        if len(data) != expected:
            raise errors.ConflictError(f"{key.portal_path}: the file changed on the server")
        self.blocks.put(key, data)
        return data

    def _with_link(self, portal_path: str, start: int, length: int, etag: str) -> list[bytes]:
        # A cached link the store refuses has expired: ask for a new one, once.
        try:
            url = self.links.get(portal_path)
            return list(self.source.stream_range(url, start, length, etag, length))
        except errors.LinkExpiredError:
            log.info("download link for %s was refused; asking for a new one", portal_path)
            self.links.drop(portal_path)
            url = self.links.get(portal_path)
            return list(self.source.stream_range(url, start, length, etag, length))

    def _stream(self, keys: list[BlockKey], size: int) -> None:
        bs = self.blocks.block_bytes
        start = keys[0].index * bs
        length = min(len(keys) * bs, size - start)
        pending = list(keys)
        try:
            url = self.links.get(keys[0].portal_path)
            pieces = self.source.stream_range(url, start, length, keys[0].etag, bs)
            for piece in pieces:
                key = pending.pop(0)
                self.blocks.put(key, piece)
                self._settle(key, result=piece)
                if not pending:
                    break
            if pending:
                raise errors.ConflictError(f"{keys[0].portal_path}: the file changed on the server")
        except errors.LinkExpiredError as exc:
            self.links.drop(keys[0].portal_path)
            self._fail(pending, exc)
        except BaseException as exc:
            self._fail(pending, exc)

    def _fail(self, keys: list[BlockKey], exc: BaseException) -> None:
        for key in keys:
            self._settle(key, error=exc)

    def _settle(
        self, key: BlockKey, result: bytes | None = None, error: BaseException | None = None
    ) -> None:
        with self._lock:
            future = self._inflight.pop(key, None)
        if future is None:
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def _executor(self) -> ThreadPoolExecutor:
        # Created on first use: a mount daemonizes by forking, and threads do not survive it.
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="readahead")
            return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
