"""RemoteReader: serves reads of portal files from the block cache. A missing block is one
ranged GET on a cached download link; a sequential reader gets one streaming GET to the end
of the file that runs a bounded number of blocks ahead of it, so a large file costs one
request, not one per block.

Thread-safe. Never returns bytes from two versions of a file: every block is keyed by the
ETag the reader opened, and every GET is checked against it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from ..cache.blocks import BlockCache, BlockKey
from ..cache.links import LinkCache
from ..client import errors

log = logging.getLogger(__name__)


class RangeSource(Protocol):
    """What the reader needs of the storage client."""

    def stream_range(
        self,
        url: str,
        start: int,
        length: int,
        etag: str | None,
        piece_bytes: int,
        renew: Callable[[], str] | None = None,
        object_size: int | None = None,
    ) -> Iterator[bytes]: ...


class _Stream:
    """One streaming GET of blocks [first, last) of one file version, for one reader.

    Its thread stops `ahead` blocks in front of the reader's position (every block the
    reader takes, cached or not), so memory stays bounded however large the file, and goes
    on once the reader is a quarter of that closer, not after every block. Guarded by its
    own condition.
    """

    def __init__(self, portal_path: str, etag: str, first: int, last: int, ahead: int) -> None:
        self.portal_path, self.etag = portal_path, etag
        self.first, self.last, self.ahead = first, last, ahead
        self.next = first  # the next block to arrive
        self.position = first  # the block the reader is at
        self.ended = False
        self.resume_gap = max(1, ahead // 4)
        self.cond = threading.Condition()

    def covers(self, index: int) -> bool:
        """Whether block `index` is still to come, within one window of what has arrived.
        A block further on would be a wait for the stream to download all between."""
        with self.cond:
            return not self.ended and self.next <= index < min(self.next + self.ahead, self.last)

    def advance(self, index: int) -> None:
        """The reader is at block `index` (cached or not): the stream may go on."""
        with self.cond:
            self._advance(index)

    def wait_for(self, index: int) -> None:
        """Until block `index` has arrived or the stream ended."""
        with self.cond:
            self._advance(index)
            while self.next <= index and not self.ended:
                self.cond.wait()

    def _advance(self, index: int) -> None:
        if index > self.position:
            self.position = index
            if self.next <= self.position + self.ahead - self.resume_gap:
                self.cond.notify_all()  # the stream, if it paused, may go on

    def arrived(self, index: int) -> bool:
        """Record a block; then wait while the stream is too far ahead. False: stop."""
        with self.cond:
            self.next = index + 1
            self.cond.notify_all()
            if self.next > self.position + self.ahead:
                while self.next > self.position + self.ahead - self.resume_gap and not self.ended:
                    self.cond.wait()
            return not self.ended

    def end(self) -> None:
        with self.cond:
            self.ended = True
            self.cond.notify_all()


class RemoteReader:
    """Reads [offset, offset+length) of a file known by (portal path, ETag, size)."""

    def __init__(
        self, links: LinkCache, source: RangeSource, blocks: BlockCache, ahead_blocks: int
    ) -> None:
        self.links = links
        self.source = source
        self.blocks = blocks
        self.ahead_blocks = ahead_blocks
        self._lock = threading.Lock()
        self._streams: dict[int, _Stream] = {}  # by reader (file handle)

    def read(
        self, portal_path: str, etag: str, size: int, offset: int, length: int, reader: int = 0
    ) -> bytes:
        bs = self.blocks.block_bytes
        end = min(offset + length, size)
        if offset >= end:
            return b""
        parts = []
        for index in range(offset // bs, (end - 1) // bs + 1):
            block = self._block(BlockKey(portal_path, etag, index), size, reader)
            lo = max(offset - index * bs, 0)
            parts.append(block[lo : end - index * bs])
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def stream(self, portal_path: str, etag: str, size: int, offset: int, reader: int) -> None:
        """Make sure a read-ahead stream from `offset` to the end of the file serves `reader`."""
        bs = self.blocks.block_bytes
        index, last = offset // bs, (size + bs - 1) // bs
        if index >= last or self.ahead_blocks <= 0:
            return
        if self.blocks.get(BlockKey(portal_path, etag, index)) is not None:
            # Already here (typically: a stream that finished before the reader caught up).
            # The next read that misses the cache starts a stream from there.
            return
        with self._lock:
            current = self._streams.get(reader)
            if current and current.etag == etag and current.covers(index):
                return
            new = self._streams[reader] = _Stream(portal_path, etag, index, last, self.ahead_blocks)
        if current:
            current.end()
        threading.Thread(target=self._run, args=(new, size), daemon=True, name="stream").start()

    def forget(self, reader: int) -> None:
        """The reader closed: stop its stream."""
        with self._lock:
            stream = self._streams.pop(reader, None)
        if stream:
            stream.end()

    def _block(self, key: BlockKey, size: int, reader: int) -> bytes:
        data = self.blocks.get(key)
        with self._lock:
            stream = self._streams.get(reader)
        if data is not None:
            if stream and stream.etag == key.etag:
                # Blocks read from the cache move the reader on too, so the stream keeps
                # the window full instead of stopping until the reader hits its edge.
                stream.advance(key.index)
            return data
        if stream and stream.etag == key.etag and stream.covers(key.index):
            stream.wait_for(key.index)
            data = self.blocks.get(key)
            if data is not None:
                return data
        return self._fetch_now(key, size)

    def _fetch_now(self, key: BlockKey, size: int) -> bytes:
        bs = self.blocks.block_bytes
        start = key.index * bs
        expected = min(bs, size - start)
        data = b"".join(self._pieces(key.portal_path, key.etag, start, expected, expected, size))
        if len(data) != expected:
            raise errors.ConflictError(f"{key.portal_path}: the file changed on the server")
        self.blocks.put(key, data)
        return data

    def _pieces(
        self, portal_path: str, etag: str, start: int, length: int, piece: int, size: int
    ) -> Iterator[bytes]:
        def renew() -> str:
            # The store refused the cached link (it expired): forget it and ask for a new one.
            self.links.drop(portal_path)
            return self.links.get(portal_path)

        url = self.links.get(portal_path)
        yield from self.source.stream_range(url, start, length, etag, piece, renew, size)

    def _run(self, stream: _Stream, size: int) -> None:
        bs = self.blocks.block_bytes
        start = stream.first * bs
        index = stream.first
        pieces = self._pieces(stream.portal_path, stream.etag, start, size - start, bs, size)
        try:
            with contextlib.closing(pieces):
                for index, piece in enumerate(pieces, stream.first):
                    if len(piece) != min(bs, size - index * bs):
                        raise errors.ConflictError(f"{stream.portal_path}: the file changed")
                    self.blocks.put(BlockKey(stream.portal_path, stream.etag, index), piece)
                    if not stream.arrived(index):
                        return
        except errors.PortalError as exc:
            # The reader falls back to single-block GETs, which report the error itself.
            log.info("read-ahead of %s stopped: %s", stream.portal_path, exc)
        finally:
            stream.end()

    def close(self) -> None:
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.end()
