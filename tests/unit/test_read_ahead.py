"""The read-ahead stream's pacing: it pauses `ahead` blocks in front of the reader and goes
on only once the reader is a quarter of that closer, not after every block read; it pauses
too while the streams together hold their budget, except for the block its reader waits
for; and it hands back the blocks its reader passed."""

import contextlib
import threading
from collections.abc import Iterator

from portalfs.fs.reader import IDLE_S, _Budget, _Stream


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


def _stream(ahead: int, budget: int = 100, passed=lambda indices: None) -> _Stream:
    shared = _Budget(budget, max_window=100)
    stream = shared.streams[1] = _Stream("p", "etag", 0, 100, shared, passed)
    stream.resize(ahead)
    return stream


@contextlib.contextmanager
def _running(stream: _Stream, went_on: list | None = None) -> Iterator[None]:
    """The stream's thread, taking blocks 0-99 as they "arrive", for the `with` block;
    `went_on` gets (block, reader's position) each time it goes on after a block."""

    def run() -> None:
        for index in range(stream.last):
            if not stream.arrived(index, lambda: None):
                return
            if went_on is not None:
                went_on.append((index, stream.position))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stream.end()
        thread.join(5)


def test_the_stream_pauses_ahead_and_resumes_a_quarter_window_later():
    stream = _stream(ahead=8)  # goes on at 6 ahead
    fetched: list[tuple[int, int]] = []  # (block, reader position when it went on)
    with _running(stream, fetched):
        assert _until(lambda: stream.next == 9)  # blocks 0-8 are in: 8 ahead of block 0
        stream.wait_for(1)
        stream.wait_for(2)
        # Two blocks read: still paused (it used to go on after each block read).
        assert not _until(lambda: stream.next > 9, timeout_s=0.3)
        stream.wait_for(3)  # now blocks 0-8 are at most 6 ahead of the reader
        assert _until(lambda: stream.next == 12)  # and fills up to 8 ahead again
        assert [position for index, position in fetched if index in (8, 9, 10)] == [3, 3, 3]


def test_without_room_the_stream_fetches_only_what_its_reader_waits_for():
    stream = _stream(ahead=8, budget=1)  # the streams may hold 1 block ahead in all
    with _running(stream):
        assert _until(lambda: stream.next == 1)  # block 0, then no room for more
        assert not _until(lambda: stream.next > 1, timeout_s=0.3)
        stream.wait_for(3)  # the reader needs block 3: blocks 1-3 come, nothing after
        assert stream.next == 4
        assert not _until(lambda: stream.next > 4, timeout_s=0.3)
        with stream.budget.lock:
            stream.budget.blocks = 100
            stream.budget.wake_all()
        assert _until(lambda: stream.next == 12)  # room again: a full window ahead


def test_blocks_the_reader_passes_are_handed_back_taken_or_skipped():
    handed: list[int] = []
    stream = _stream(ahead=8, passed=handed.extend)
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
    stream = _stream(ahead=8, passed=handed.extend)
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
    idle = _stream(ahead=4, budget=4, passed=handed.extend)
    budget = idle.budget
    with _running(idle):
        assert _until(lambda: idle.next == 4)  # 4 blocks ahead of its reader: the whole budget
        assert not budget.room()  # its reader moved a moment ago: it keeps them
        idle.moved_at -= IDLE_S + 1
        with budget.lock:
            assert budget.room()  # now it gives them back
        assert idle.ended and 1 not in budget.streams
        assert handed == [0, 1, 2, 3]
