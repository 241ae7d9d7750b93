"""Mounts a PortalFS with mfusepy: in the foreground, or as a daemon that reports to its
parent whether the mount came up. Knows nothing of credentials or HTTP.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..fs.filesystem import PortalFS
from .direct_writes import PortalFUSE
from .operations import PortalOperations

log = logging.getLogger(__name__)


class MountError(Exception):
    """The mount cannot be made; the message says why and what to do."""


def check_mountpoint(mountpoint: Path) -> None:
    """Fail early and clearly on a missing FUSE, a bad or busy mountpoint."""
    if not Path("/dev/fuse").exists():
        raise MountError("/dev/fuse is missing: FUSE is not available on this machine")
    if shutil.which("fusermount3") is None and os.geteuid() != 0:
        raise MountError("fusermount3 is missing: install the fuse3 package")
    if not mountpoint.exists():
        raise MountError(f"{mountpoint} does not exist: mkdir it first")
    if not mountpoint.is_dir():
        raise MountError(f"{mountpoint} is not a directory")
    if os.path.ismount(mountpoint):
        raise MountError(f"{mountpoint} is busy: something is mounted there already")
    if any(mountpoint.iterdir()):
        raise MountError(f"{mountpoint} is not empty")


def limit_malloc_growth() -> None:
    """Keep the daemon's RSS close to its live data, and its 1 MiB buffers reused (glibc only;
    elsewhere a no-op).

    One arena: with dozens of FUSE threads glibc makes an arena per thread, and freed 1 MiB
    blocks scattered over them grew RSS to 297 MiB under scripts/soak. A fixed mmap threshold
    of 2 MiB: every 1 MiB block, socket read and libfuse read buffer comes from that arena and
    is reused. (At 256 KiB each one was a fresh mmap, faulted in page by page and unmapped
    again: two page faults per byte read, half the daemon's CPU on a cold read.) Larger,
    rare buffers are still mapped and given back whole.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, 1)
        libc.mallopt(_M_MMAP_THRESHOLD, 2 * 1024 * 1024)
    except (OSError, AttributeError):
        log.debug("mallopt is not available; memory is left to the allocator's defaults")


_M_ARENA_MAX, _M_MMAP_THRESHOLD = -8, -3  # from glibc's malloc.h
_TRIM_INTERVAL_S = 60.0


def trim_memory_now_and_then() -> None:
    """Every minute, give the heap's free memory back (glibc only; elsewhere a no-op).

    With one arena, glibc returns memory only from the top of its heap, so after a burst
    (many reads at once, each with 1 MiB buffers) the daemon would keep its peak RSS.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return

    def loop() -> None:  # ends with the daemon
        while True:
            time.sleep(_TRIM_INTERVAL_S)
            trim(0)

    threading.Thread(target=loop, name="malloc-trim", daemon=True).start()


def run(
    fs: PortalFS,
    mountpoint: Path,
    options: dict[str, Any],
    on_mounted: Callable[[], None] | None = None,
) -> None:
    """Serve the mount until it is unmounted (fusermount3 -u, SIGINT, SIGTERM)."""

    def mounted() -> None:
        # Not in init() itself: stat() of the mount needs the loop that init() holds up.
        tune = threading.Thread(
            target=tune_readahead, args=(mountpoint, fs.config.kernel_readahead_kb), daemon=True
        )
        tune.start()
        # Here, not beside limit_malloc_growth(): a thread started before libfuse runs
        # would not block signals, and a SIGTERM delivered to it made fuse_main fail (8).
        trim_memory_now_and_then()
        fs.start_background()
        if on_mounted:
            on_mounted()

    limit_malloc_growth()
    operations = PortalOperations(fs, mounted)
    watcher = _SignalWatcher(mountpoint)
    try:
        PortalFUSE(operations, str(mountpoint), foreground=True, nothreads=False, **options)
    finally:
        watcher.close()


def tune_readahead(mountpoint: Path, kb: int) -> None:
    """Raise the kernel's read-ahead for this mount, so sequential reads arrive as 1 MiB
    requests instead of 128 KiB ones. Needs root; without it the default stays."""
    dev = os.stat(mountpoint).st_dev
    knob = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
    try:
        knob.write_text(str(kb))
    except OSError as exc:
        log.info("kernel read-ahead stays at its default (%s)", exc.strerror)


class _SignalWatcher:
    """Turns SIGINT, SIGTERM and SIGHUP into a lazy unmount.

    libfuse's own handlers would end the loop at once and cancel its worker threads in the
    middle of uploads. A lazy unmount instead hides the mount from new opens while the files
    already open are written, closed and uploaded; the loop ends after the last one.
    The signals are blocked here, before libfuse starts its threads, so that only this
    watcher's sigwait() receives them.
    """

    _STOP = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    _WAKE = signal.SIGUSR1  # sent by close() to end the watcher after a normal unmount

    def __init__(self, mountpoint: Path) -> None:
        self.mountpoint = mountpoint
        signal.pthread_sigmask(signal.SIG_BLOCK, self._STOP | {self._WAKE})
        self.thread = threading.Thread(target=self._watch, name="signals", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        received = signal.sigwait(self._STOP | {self._WAKE})
        if received == self._WAKE:
            return
        log.info("%s received: unmounting once open files are closed", signal.strsignal(received))
        try:
            unmount(self.mountpoint, lazy=True)
        except MountError as exc:
            log.error("unmount after %s failed: %s", signal.strsignal(received), exc)

    def close(self) -> None:
        if self.thread.is_alive():
            signal.pthread_kill(self.thread.ident, self._WAKE)
            self.thread.join()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, self._STOP | {self._WAKE})


def daemonize(start: Callable[[Callable[[], None]], None]) -> str | None:
    """Fork; the child calls `start(ready)`. The parent returns None once `ready()` was
    called, or the child's error message. The child never returns."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            message = pipe.read().decode(errors="replace")
        if message == "ok":
            return None
        os.waitpid(pid, 0)
        return message or "the mount process ended before mounting"
    os.close(read_fd)
    os.setsid()
    _detach_stdio()
    pipe = os.fdopen(write_fd, "wb", buffering=0)

    def ready() -> None:
        pipe.write(b"ok")
        pipe.close()

    try:
        start(ready)
        code = 0
    except BaseException as exc:
        log.exception("mount failed")
        if not pipe.closed:
            pipe.write(str(exc).encode())
        code = 1
    os._exit(code)


def _detach_stdio() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def is_dead(mountpoint: Path) -> bool:
    """True for a FUSE mount whose process has ended (killed, crashed): the kernel keeps it
    and answers every access with ENOTCONN until it is unmounted. statvfs(), because stat()
    may still be answered from the kernel's attribute cache for a while."""
    try:
        os.statvfs(mountpoint)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def unmount(mountpoint: Path, lazy: bool = False) -> None:
    """Unmount with fusermount3 -u (umount where it is missing, as root); `lazy` detaches a
    busy mount at once and lets its open files finish."""
    if not is_dead(mountpoint):  # a dead mount fails every stat(), yet unmounts fine
        if not os.path.exists(mountpoint):
            raise MountError(f"{mountpoint} does not exist")
        if not os.path.ismount(mountpoint):
            raise MountError(f"{mountpoint} is not mounted")
    if shutil.which("fusermount3"):
        command = ["fusermount3", "-uz" if lazy else "-u", str(mountpoint)]
    else:
        command = ["umount", *(["-l"] if lazy else []), str(mountpoint)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = result.stderr.strip() or f"cannot unmount {mountpoint}"
        if "busy" in message.lower():
            # Files open in the mount, or a shell inside it. SIGTERM to the mount process
            # detaches it and lets open files finish and upload first.
            message += (
                "; close the files and shells using it, or stop the mount process "
                "(kill PID: open files finish and upload first)"
            )
        if is_dead(mountpoint):
            message += f"; this mount's process has ended: run fusermount3 -u {mountpoint}"
        raise MountError(message)
