"""A reference for scripts/bench, not part of portalfs: the least a Python FUSE mount must do
to serve one file from a download link. One streaming GET; each read is answered with the
next bytes of it, in order. No cache, no retries, no listing, nothing else.

The bench reads a file through it beside portalfs, so the table shows what mfusepy, libfuse 3
and the kernel's FUSE path cost on the machine by themselves. It must stay this small: every
feature added here would hide that cost instead of showing it.

Usage: minimal_mount.py MOUNTPOINT, with MINIMAL_MOUNT_URL (the signed link: a secret, so
never an argument) and MINIMAL_MOUNT_SIZE in the environment. Unmount with fusermount3 -u.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # before mfusepy loads a libfuse

import mfusepy
import requests
import urllib3

# The daemon's own set-up, so the two mounts differ only in what serves the reads.
from portalfs.config import MountConfig
from portalfs.fuse.mount import limit_malloc_growth, tune_readahead

NAME = "/file"


class MinimalMount(mfusepy.Operations):
    """One read-only file, served from one GET in the order the kernel asks."""

    use_ns = True

    def __init__(self, url: str, size: int) -> None:
        self.url, self.size = url, size
        self.mu = threading.Lock()  # not `lock`: that name is a FUSE operation
        self.session = requests.Session()
        self.response: requests.Response | None = None
        self.position = 0
        # libfuse's threads may answer the kernel's read-ahead out of order: bytes read past
        # on the way to a later offset wait here for their own request.
        self.early: dict[int, bytes] = {}

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2}
        if path == NAME:
            return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": self.size}
        raise mfusepy.FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", NAME[1:]]

    def open(self, path: str, flags: int) -> int:
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        size = min(size, self.size - offset)
        if size <= 0:
            return b""
        with self.mu:
            if offset in self.early:
                return self.early.pop(offset)
            if offset >= self.position:
                if self.response is None:
                    self.response = self._get({}, 200)
                while self.position < offset:
                    piece = self._next(min(size, offset - self.position))
                    self.early[self.position] = piece
                    self.position += len(piece)
                data = self._next(size)
                self.position += len(data)
                return data
        # Behind the stream (a second reader): a ranged GET of its own.
        response = self._get({"Range": f"bytes={offset}-{offset + size - 1}"}, 206)
        return response.content

    def _get(self, headers: dict[str, str], status: int) -> requests.Response:
        # Errors carry no URL: the signed link is a secret, and requests puts it in its own.
        try:
            response = self.session.get(self.url, headers=headers, stream=True)
        except requests.RequestException:
            raise mfusepy.FuseOSError(errno.EIO) from None
        if response.status_code != status:
            raise mfusepy.FuseOSError(errno.EIO)
        return response

    def _next(self, count: int) -> bytes:
        """The stream's next `count` bytes; EIO if it ends or breaks first (no short reads,
        which the kernel would take for the end of the file and the bench for speed)."""
        assert self.response is not None
        try:
            data = self.response.raw.read(count)
        except (urllib3.exceptions.HTTPError, OSError):
            raise mfusepy.FuseOSError(errno.EIO) from None
        if len(data) != count:
            raise mfusepy.FuseOSError(errno.EIO)
        return data


def _raise_readahead(point: Path) -> None:
    """The kernel read-ahead portalfs sets, once the mount is there."""
    while not os.path.ismount(point):
        time.sleep(0.005)
    tune_readahead(point, MountConfig.kernel_readahead_kb)


def main() -> None:
    point = Path(sys.argv[1])
    # Page faults, not FUSE, would decide the figure without these. portalfs's daemon's
    # settings (1 MiB buffers from one heap, not each a fresh mapping), and one more: the
    # heap is not trimmed each time the one buffer in use is freed at its top (portalfs's
    # block cache keeps its heap's top in use); that doubled this mount's CPU per GiB in
    # some reads.
    limit_malloc_growth()
    ctypes.CDLL(None).mallopt(-1, 256 * 1024 * 1024)  # M_TRIM_THRESHOLD
    threading.Thread(target=_raise_readahead, args=(point,), daemon=True).start()
    operations = MinimalMount(
        os.environ["MINIMAL_MOUNT_URL"], int(os.environ["MINIMAL_MOUNT_SIZE"])
    )
    mfusepy.FUSE(operations, str(point), foreground=True, nothreads=False, auto_cache=True)


if __name__ == "__main__":
    main()
