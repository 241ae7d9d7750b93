"""RunningMD5: an MD5 fed in order, on a thread of its own once the input gets large, so
hashing a big file overlaps with receiving its next bytes instead of following it.

Not thread-safe for callers: one owner feeds it (its spool's lock serialises that).
"""

from __future__ import annotations

import hashlib
import queue
import threading

# Below this many bytes hashing inline is cheaper than a thread.
BACKGROUND_AFTER_BYTES = 8 * 1024 * 1024
# Chunks waiting for the hashing thread; a writer faster than MD5 waits here.
_QUEUE_CHUNKS = 32


class RunningMD5:
    """update() in order, hexdigest() at the end; abandon() if the result is not wanted."""

    def __init__(self, start: hashlib._Hash | None = None) -> None:
        """`start`: an MD5 already fed with the bytes before the first update()."""
        self._digest = start or hashlib.md5()
        self._dropping = False
        self._fed = 0
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None

    def update(self, data: bytes) -> None:
        self._fed += len(data)
        if self._queue is None and self._fed > BACKGROUND_AFTER_BYTES:
            self._queue = queue.Queue(_QUEUE_CHUNKS)
            self._thread = threading.Thread(target=self._drain, name="md5", daemon=True)
            self._thread.start()
        if self._queue is None:
            self._digest.update(data)
        else:
            self._queue.put(data)

    def _drain(self) -> None:
        # hashlib drops the GIL for large buffers: this runs beside the writer for real.
        while (chunk := self._queue.get()) is not None:
            if not self._dropping:
                self._digest.update(chunk)

    def _finish(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = self._thread = None

    def hexdigest(self) -> str:
        self._finish()
        return self._digest.hexdigest()

    def abandon(self) -> None:
        """Stop the hashing thread without hashing what still waits for it: the digest is
        not wanted any more."""
        self._dropping = True
        self._finish()
