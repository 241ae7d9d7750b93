"""The read-ahead stream's pacing: it pauses `ahead` blocks in front of the reader and goes
on only once the reader is a quarter of that closer, not after every block read; it pauses
too while the streams together hold their budget, except for the block its reader waits
for; and it hands back the blocks its reader passed."""

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable, Iterator

import pytest

from portalfs.cache.blocks import BlockCache, BlockKey
from portalfs.cache.links import LinkCache
from portalfs.client import errors
from portalfs.fs.reader import IDLE_S, RemoteReader, _Budget, _Stream
from tests.faultproxy import Fault, FaultProxy, Rule
from tests.portal_fixtures import start_proxied_portal


def _until(cond, timeout_s: float = 5.0) -> bool:
    done = threading.Event()
    deadline = threading.Timer(timeout_s, done.set)
    deadline.start()
    try:
        while not done.is_set():
            if cond():
                return True
            done.wait(0.005)
        return cond()
    finally:
        deadline.cancel()


class _Watched(threading.Condition):
    """The stream's condition, telling which threads wait on it and whether each has been
    woken since it began to wait: a thread waiting unwoken has decided to stay paused."""

    def __init__(self, lock: threading.RLock) -> None:
        super().__init__(lock)
        self.waiting: dict[int, bool] = {}  # thread id: woken since

    def wait(self, timeout: float | None = None) -> bool:
        me = threading.get_ident()
        self.waiting[me] = False
        try:
            return super().wait(timeout)
        finally:
            del self.waiting[me]

    def notify_all(self) -> None:
        self.waiting = dict.fromkeys(self.waiting, True)
        super().notify_all()


def _stream(ahead: int, budget: int = 100, hand_back=lambda indices: None) -> _Stream:
    shared = _Budget(budget, max_window=100)
    stream = shared.streams[1] = _Stream("p", "etag", 0, 100, shared, hand_back)
    stream.cond = _Watched(shared.lock)
    stream.resize(ahead)
    return stream


@contextlib.contextmanager
def _running(stream: _Stream, went_on: list | None = None) -> Iterator[Callable[[], None]]:
    """The stream's thread, taking blocks 0-99 as they "arrive", for the `with` block;
    `went_on` gets (block, reader's position) each time it goes on after a block. Yields
    `settle`: returns once the thread waits unwoken (paused, having seen all the reader
    did) or is done, so that "it stays paused" is an event, not a time."""

    def run() -> None:
        for index in range(stream.last):
            if not stream.arrived(index, lambda: None):
                return
            if went_on is not None:
                went_on.append((index, stream.position))

    thread = threading.Thread(target=run, daemon=True)

    def settled() -> bool:
        with stream.cond:
            return not thread.is_alive() or stream.cond.waiting.get(thread.ident) is False

    def settle() -> None:
        assert _until(settled), "the stream thread neither paused nor ended"

    thread.start()
    try:
        yield settle
    finally:
        stream.end()
        thread.join(5)


def test_the_stream_pauses_ahead_and_resumes_a_quarter_window_later():
    stream = _stream(ahead=8)  # goes on at 6 ahead
    fetched: list[tuple[int, int]] = []  # (block, reader position when it went on)
    with _running(stream, fetched) as settle:
        assert _until(lambda: stream.next == 9)  # blocks 0-8 are in: 8 ahead of block 0
        stream.wait_for(1)
        stream.wait_for(2)
        settle()
        # Two blocks read: still paused (it used to go on after each block read).
        assert stream.next == 9
        stream.wait_for(3)  # now blocks 0-8 are at most 6 ahead of the reader
        assert _until(lambda: stream.next == 12)  # and fills up to 8 ahead again
        assert [position for index, position in fetched if index in (8, 9, 10)] == [3, 3, 3]


def test_without_room_the_stream_fetches_only_what_its_reader_waits_for():
    stream = _stream(ahead=8, budget=1)  # the streams may hold 1 block ahead in all
    with _running(stream) as settle:
        assert _until(lambda: stream.next == 1)  # block 0, then no room for more
        settle()
        assert stream.next == 1
        stream.wait_for(3)  # the reader needs block 3: blocks 1-3 come, nothing after
        settle()
        assert stream.next == 4
        with stream.budget.lock:
            stream.budget.blocks = 100
            stream.budget.wake_all()
        assert _until(lambda: stream.next == 12)  # room again: a full window ahead


def test_blocks_the_reader_passes_are_handed_back_taken_or_skipped():
    handed: list[int] = []
    stream = _stream(ahead=8, hand_back=handed.extend)
    with _running(stream):
        assert _until(lambda: stream.next == 9)
        stream.advance(1)
        stream.wait_for(5)  # skips blocks 2-4
        assert _until(lambda: stream.next == 14)  # the window, full again from block 5
        assert handed == [0, 1, 2, 3, 4]
        assert list(stream.unread()) == list(range(5, 14))


def test_a_block_arriving_after_its_stream_ended_is_not_kept():
    # Its reader closed and handed back what the stream held: a block kept now would stay
    # unevictable with no one to take it.
    stream = _stream(ahead=8)
    stream.end()
    kept: list[int] = []
    assert stream.arrived(0, lambda: kept.append(0)) is False
    assert kept == []


def test_the_blocks_just_behind_the_reader_stay_for_its_late_requests():
    handed: list[int] = []
    stream = _stream(ahead=8, hand_back=handed.extend)
    stream.lag = 2
    with _running(stream):
        assert _until(lambda: stream.next == 9)
        stream.wait_for(5)  # block 4, answered after 5, may still be asked for
        assert _until(lambda: stream.next == 14)
        assert handed == [0, 1, 2]
        assert list(stream.unread()) == list(range(3, 14))


def test_a_reader_jumping_beyond_the_streams_reach_does_not_move_it_on():
    stream = _stream(ahead=2)
    with _running(stream):
        assert _until(lambda: stream.next == 3)
        assert stream.advance(600) is False  # the caller ends the stream instead
        assert stream.next == 3 and stream.position == 0
        assert stream.advance(2) is True


def test_an_idle_readers_read_ahead_is_given_back_when_another_needs_room():
    handed: list[int] = []
    idle = _stream(ahead=4, budget=4, hand_back=handed.extend)
    budget = idle.budget
    with _running(idle):
        assert _until(lambda: idle.next == 4)  # 4 blocks ahead of its reader: the whole budget
        assert not budget.room()  # its reader moved a moment ago: it keeps them
        idle.moved_at -= IDLE_S + 1
        with budget.lock:
            assert budget.room()  # now it gives them back
        assert idle.ended and 1 not in budget.streams
        assert handed == [0, 1, 2, 3]


class _Source:
    """A RangeSource of one file's bytes; `broken` raises from every GET of more than one
    block (the read-ahead stream's), as a bug or an OSError would."""

    def __init__(self, data: bytes, broken: BaseException | None = None) -> None:
        self.data, self.broken = data, broken
        self.gets: list[tuple[int, int]] = []

    def stream_range(self, url, start, length, etag, piece_bytes, renew=None, object_size=None):
        self.gets.append((start, length))
        if self.broken is not None and length > piece_bytes:
            raise self.broken
        for at in range(start, start + length, piece_bytes):
            yield self.data[at : min(at + piece_bytes, start + length)]


def _reader(source: _Source, cache_bytes: int) -> RemoteReader:
    links = LinkCache(lambda portal_path: f"http://store/{portal_path}", ttl_s=60)
    return RemoteReader(links, source, BlockCache(10, cache_bytes), ahead_blocks=4)


def test_a_stream_asked_for_at_a_block_read_ahead_leaves_it_unread():
    # Before: stream() looked with get(), which took the block read ahead; evictable, it
    # could go before its reader read it, and cost a GET of its own.
    source = _Source(b"abcdefghij" * 4)
    reader = _reader(source, cache_bytes=40)
    reader.blocks.put(BlockKey("f", "e", 1), b"abcdefghij", unread=True)
    reader.stream("f", "e", 40, 10, reader=1)  # already here: no stream
    for index in range(10, 14):  # other files' blocks fill the cache
        reader.blocks.put(BlockKey("g", "e", index), b"x" * 10)
    assert reader.read("f", "e", 40, 10, 10, reader=1) == b"abcdefghij"
    assert source.gets == []


@pytest.mark.parametrize("failure", [OSError(5, "disk"), ValueError("a bug")])
def test_a_read_ahead_failing_with_any_exception_is_logged_and_the_reader_falls_back(
    failure, caplog, monkeypatch
):
    # Before: only PortalError was caught; anything else left the thread to the default
    # excepthook (stderr, which a daemon has not) and no log line said why reads slowed.
    uncaught: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: uncaught.append(args.exc_value))
    data = bytes(range(40))
    source = _Source(data, broken=failure)
    reader = _reader(source, cache_bytes=400)
    reader.stream("f", "e", 40, 0, reader=1)
    with caplog.at_level(logging.ERROR, logger="portalfs.fs.reader"):
        # The stream logs before it ends, and the reader falls back once it has ended.
        assert reader.read("f", "e", 40, 0, 40, reader=1) == data
    reader.close()
    assert source.gets[0] == (0, 40) and source.gets[1:] == [(i, 10) for i in (0, 10, 20, 30)]
    assert [r.exc_info[1] for r in caplog.records] == [failure]
    assert uncaught == []


@pytest.fixture
def proxied(tmp_path):
    """A portal server behind a FaultProxy, which can cut a GET and hold it there."""
    proxy = FaultProxy(seed=3)
    portal = start_proxied_portal(tmp_path / "server", proxy)
    yield portal, proxy
    portal.server.stop()
    proxy.close()


def _write(fs, path: str, data: bytes) -> None:
    fh = fs.create(path)
    fs.write(fh, 0, data)
    fs.flush(fh)
    fs.release(fh)


def test_a_file_replaced_during_a_streamed_read_is_estale_never_mixed(proxied, tmp_path):
    from portalfs.config import MountConfig
    from portalfs.fs.factory import build_portalfs
    from portalfs.fuse.errno_map import errno_for

    portal, proxy = proxied
    bs, blocks = 64 * 1024, 16
    built = [
        build_portalfs(portal.member, MountConfig(cache_dir=str(tmp_path / name), **config))
        for name, config in (("w", {}), ("r", {"block_bytes": bs, "readahead_blocks": 4}))
    ]
    writer, reader = built
    try:
        old, new = b"a" * (blocks * bs), b"b" * (blocks * bs)
        _write(writer, "/v.bin", old)
        replaced = threading.Event()
        # The read-ahead stream's GET breaks after 3 blocks, once the file has been replaced:
        # it resumes on the old version's ETag, which the store no longer has.
        cut = Rule(
            Fault.RESET_BODY,
            "GET",
            "/storage/",
            at_bytes=3 * bs + 5,
            hold=lambda ex: replaced.is_set(),
        )
        proxy.add(cut)
        fh = reader.open("/v.bin", os.O_RDONLY)
        for index in range(3):
            assert reader.read(fh, index * bs, bs) == old[:bs]
        _write(writer, "/v.bin", new)
        replaced.set()
        for index in range(3, blocks):  # every later block: the error, never the new bytes
            with pytest.raises(errors.ConflictError) as info:
                reader.read(fh, index * bs, bs)
            assert errno_for(info.value) == errno.ESTALE
        reader.release(fh)
        streamed = [ex for ex in proxy.exchanges if ex.method == "GET" and ex.fault]
        assert [(ex.range_start, ex.fault) for ex in streamed] == [(None, Fault.RESET_BODY)]
    finally:
        for fs in built:
            fs.close()
