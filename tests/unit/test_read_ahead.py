"""The read-ahead stream's pacing: it pauses `ahead` blocks in front of the reader and goes
on only once the reader is a quarter of that closer, not after every block read."""

import threading

from portalfs.fs.reader import _Stream


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


def test_the_stream_pauses_ahead_and_resumes_a_quarter_window_later():
    stream = _Stream("p", "etag", first=0, last=100, ahead=8)  # goes on at 6 ahead
    fetched: list[tuple[int, int]] = []  # (block, reader position when it went on)

    def run() -> None:
        for index in range(100):
            if not stream.arrived(index):
                return
            fetched.append((index, stream.position))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert _until(lambda: stream.next == 9)  # blocks 0-8 are in: 8 ahead of block 0
        stream.wait_for(1)
        stream.wait_for(2)
        # Two blocks read: still paused (it used to go on after each block read).
        assert not _until(lambda: stream.next > 9, timeout_s=0.3)
        stream.wait_for(3)  # now blocks 0-8 are at most 6 ahead of the reader
        assert _until(lambda: stream.next == 12)  # and fills up to 8 ahead again
        assert [position for index, position in fetched if index in (8, 9, 10)] == [3, 3, 3]
    finally:
        stream.end()
        thread.join(5)
