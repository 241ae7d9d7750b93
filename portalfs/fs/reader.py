"""RemoteReader: serves reads of portal files from the block cache. A missing block is one
ranged GET on a cached download link; a sequential reader gets one streaming GET to the end
of the file that runs a bounded number of blocks ahead of it, so a large file costs one
request, not one per block. The streams of files read at once share half the block cache.

Thread-safe. Never returns bytes from two versions of a file: every block is keyed by the
ETag the reader opened, and every GET is checked against it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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


# A reader that has not moved for this long gives its read-ahead back when another needs
# the room (`less` on a big file, a handle a program keeps open after reading its start).
IDLE_S = 5.0


class _Budget:
    """What the read-ahead streams of one RemoteReader share: their registry (by reader),
    the number of blocks they may hold read ahead together, the largest window, and the
    lock that guards them all. Each stream waits on a condition of its own on that lock, so
    an arriving block wakes its own reader, not every thread of every stream. Methods
    other than window() are called under the lock."""

    def __init__(self, blocks: int, max_window: int) -> None:
        self.blocks, self.max_window = blocks, max_window
        self.lock = threading.RLock()
        self.streams: dict[int, _Stream] = {}

    def window(self, streams: int) -> int:
        """Each stream's window when `streams` are running: an equal share of the budget."""
        return min(self.max_window, self.blocks // max(1, streams))

    def running(self) -> int:
        """How many streams have not ended."""
        return sum(not s.ended for s in self.streams.values())

    def share_out(self) -> None:
        window = self.window(self.running())
        for stream in self.streams.values():
            stream.resize(window)

    def room(self) -> bool:
        """Whether the streams may hold one more block read ahead; if not, the streams of
        readers idle for IDLE_S give theirs back."""
        if self._held() < self.blocks:
            return True
        now = time.monotonic()
        idle = [
            (reader, stream)
            for reader, stream in self.streams.items()
            if stream.held() and now - stream.moved_at > IDLE_S
        ]
        for reader, stream in idle:
            self.retire(reader, stream)
        return bool(idle) and self._held() < self.blocks

    def retire(self, reader: int, stream: _Stream) -> None:
        """End a stream and hand back the blocks it kept; the others' windows grow."""
        if self.streams.get(reader) is stream:
            del self.streams[reader]
        stream.end()
        stream.hand_back(stream.unread())
        self.share_out()

    def wake_all(self) -> None:
        """Room again: streams that paused for it may go on."""
        for stream in self.streams.values():
            stream.cond.notify_all()

    def _held(self) -> int:
        return sum(s.held() for s in self.streams.values())


class _Stream:
    """One streaming GET of blocks [first, last) of one file version, for one reader.

    Its thread pauses `ahead` blocks in front of the reader's position (every block the
    reader takes, cached or not), or when the streams together hold all the blocks read
    ahead they may; it goes on once the reader is a quarter of a window closer, not after
    every block, and always for a block the reader waits for. So memory stays bounded
    however large and however many the files. Blocks more than `lag` behind the reader,
    taken or skipped, are handed back (`hand_back`: evictable from then on); the `lag` nearest
    stay, for the reader's requests that come out of order.

    Guarded by the budget's lock, through a condition of its own.
    """

    def __init__(
        self,
        portal_path: str,
        etag: str,
        first: int,
        last: int,
        budget: _Budget,
        hand_back: Callable[[Iterable[int]], None],
        lag: int = 0,
    ) -> None:
        self.portal_path, self.etag = portal_path, etag
        self.first, self.last, self.lag = first, last, lag
        self.budget, self.hand_back = budget, hand_back
        self.cond = threading.Condition(budget.lock)
        self.next = first  # the next block to arrive
        self.position = first  # the block the reader is at
        self.moved_at = time.monotonic()  # when the reader last moved on
        self.ended = False
        self.ahead = self.resume_gap = 1

    def resize(self, ahead: int) -> None:
        """Another window size (streams were added or ended)."""
        with self.cond:
            self.ahead = ahead
            self.resume_gap = max(1, ahead // 4)
            self.cond.notify_all()

    def held(self) -> int:
        """Blocks read ahead of the reader (under the lock). The few kept behind it for its
        late requests it has mostly taken already: not counted."""
        return max(0, self.next - self.position)

    def _kept(self) -> range:
        return range(max(self.first, self.position - self.lag), self.next)

    def covers(self, index: int) -> bool:
        """Whether block `index` is still to come, within one window of what has arrived.
        A block further on would be a wait for the stream to download all between."""
        with self.cond:
            return not self.ended and self.next <= index < min(self.next + self.ahead, self.last)

    def advance(self, index: int) -> bool:
        """The reader is at block `index` (cached or not): the stream may go on. False:
        `index` is beyond the stream's reach, which should end rather than download all the
        blocks in between."""
        with self.cond:
            if not self.ended and index >= self.next + self.ahead:
                return False
            self._advance(index)
            return True

    def wait_for(self, index: int) -> None:
        """Until block `index` has arrived or the stream ended."""
        with self.cond:
            self._advance(index)
            while self.next <= index and not self.ended:
                self.cond.wait()

    def _advance(self, index: int) -> None:
        if index > self.position:
            self.moved_at = time.monotonic()
            kept = self._kept()
            others_paused = not self.budget.room()  # they may go on once this holds less
            self.position = index
            self.hand_back(range(kept.start, min(self._kept().start, kept.stop)))
            if others_paused:
                self.budget.wake_all()
            elif self.next <= self.position + self.ahead - self.resume_gap:
                self.cond.notify_all()

    def arrived(self, index: int, keep: Callable[[], None]) -> bool:
        """Keep block `index` (unless the stream ended: then no one would take it or hand it
        back); then wait while the stream is too far ahead. False: stop."""
        with self.cond:
            if self.ended:
                return False
            keep()
            self.next = index + 1
            self.cond.notify_all()
            if index < self._kept().start:
                self.hand_back((index,))  # the reader jumped past it while it was on its way
            if self._paused(gap=0):
                while not self.ended and self._paused(self.resume_gap):
                    self.cond.wait()
            return not self.ended

    def _paused(self, gap: int) -> bool:
        if self.next <= self.position or self.next >= self.last:
            return False  # the reader waits for the very next block, or there is none
        return self.next > self.position + self.ahead - gap or not self.budget.room()

    def end(self) -> None:
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def unread(self) -> range:
        """The blocks it keeps for the reader, to hand back when the reader is gone."""
        with self.cond:
            return self._kept()


class RemoteReader:
    """Reads [offset, offset+length) of a file known by (portal path, ETag, size)."""

    def __init__(
        self,
        links: LinkCache,
        source: RangeSource,
        blocks: BlockCache,
        ahead_blocks: int,
        lag_blocks: int = 0,
    ) -> None:
        self.links = links
        self.source = source
        self.blocks = blocks
        self.lag_blocks = lag_blocks  # kept behind a reader, for its late requests
        # Blocks read ahead stay, unevictable, until taken. All streams together hold
        # about half the cache, so the blocks already read keep the other half.
        self._budget = _Budget(blocks.max_bytes // blocks.block_bytes // 2, ahead_blocks)
        self._streams = self._budget.streams  # by reader (file handle)

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

    def stream(
        self, portal_path: str, etag: str, size: int, offset: int, reader: int, replace: bool = True
    ) -> None:
        """Make sure a read-ahead stream from `offset` to the end of the file serves `reader`;
        without `replace`, only if the reader has none. With more files read at once than the
        budget has blocks for, the newest go without (one GET per block)."""
        bs = self.blocks.block_bytes
        index, last = offset // bs, (size + bs - 1) // bs
        if index >= last:
            return
        if BlockKey(portal_path, etag, index) in self.blocks:
            # Already here (typically: a stream that finished before the reader caught up).
            # The next read that misses the cache starts a stream from there. Only looked
            # at: a block read ahead stays unevictable until its reader reads it.
            return
        with self._budget.lock:
            current = self._streams.get(reader)
            if current and (not replace or (current.etag == etag and current.covers(index))):
                return
            if current:
                self._budget.retire(reader, current)
            new = None
            if self._budget.window(self._budget.running() + 1) > 0:
                hand_back = functools.partial(self._release, portal_path, etag)
                new = _Stream(
                    portal_path, etag, index, last, self._budget, hand_back, self.lag_blocks
                )
                self._streams[reader] = new
                self._budget.share_out()
        if new:
            threading.Thread(target=self._run, args=(new, size), daemon=True, name="stream").start()

    def forget(self, reader: int) -> None:
        """The reader closed: stop its stream."""
        with self._budget.lock:
            stream = self._streams.get(reader)
            if stream:
                self._budget.retire(reader, stream)

    def _release(self, portal_path: str, etag: str, indices: Iterable[int]) -> None:
        self.blocks.release(BlockKey(portal_path, etag, index) for index in indices)

    def _block(self, key: BlockKey, size: int, reader: int) -> bytes:
        data = self.blocks.get(key)
        with self._budget.lock:
            stream = self._streams.get(reader)
        if data is not None:
            if stream and stream.etag == key.etag and not stream.advance(key.index):
                # A jump onto a cached block beyond the stream's reach: its bytes in between
                # are not wanted. (Blocks read from the cache move the reader on too, so the
                # stream keeps the window full instead of stopping at its edge.)
                with self._budget.lock:
                    self._budget.retire(reader, stream)
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
                    key = BlockKey(stream.portal_path, stream.etag, index)
                    keep = functools.partial(self.blocks.put, key, piece, unread=True)
                    if not stream.arrived(index, keep):
                        return
        except errors.PortalError as exc:
            # The reader falls back to single-block GETs, which report the error itself.
            log.info("read-ahead of %s stopped: %s", stream.portal_path, exc)
        except Exception:
            # Anything else (OSError, a bug) too: the reader falls back all the same, and the
            # cause is logged here, since a thread's uncaught exception reaches no log.
            log.exception("read-ahead of %s failed; reading block by block", stream.portal_path)
        finally:
            stream.end()

    def close(self) -> None:
        with self._budget.lock:
            for reader, stream in list(self._streams.items()):
                self._budget.retire(reader, stream)
