"""PortalOperations: the thin mfusepy adapter. Each operation decodes its arguments, calls the
PortalFS method of the same name and encodes the result; one decorator logs and maps errors.

Holds no file-system logic and no state besides the PortalFS it wraps.
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
from collections.abc import Callable
from typing import Any

import mfusepy

from ..client.errors import PortalError, ServerDownError
from ..fs.filesystem import Attr, PortalFS
from .errno_map import errno_for

log = logging.getLogger(__name__)

# Errors that are answers, not trouble: logged at debug level only.
_QUIET = frozenset({errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY})


def _mapped(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: PortalOperations, *args: Any) -> Any:
        try:
            return method(self, *args)
        except mfusepy.FuseOSError:
            raise
        except Exception as exc:  # every exception leaves as an errno, never as EINVAL by accident
            code = errno_for(exc)
            if isinstance(exc, OSError | PortalError):
                # A server known to be down was reported once (client/reachability.py).
                quiet = code in _QUIET or isinstance(exc, ServerDownError)
                level = logging.DEBUG if quiet else logging.INFO
                log.log(level, "%s: %s", method.__name__, exc)
            else:
                log.exception("%s failed unexpectedly", method.__name__)
            raise mfusepy.FuseOSError(code) from exc

    return wrapper


def _stat(attr: Attr) -> dict[str, int]:
    return {
        "st_mode": attr.mode,
        "st_size": attr.size,
        "st_nlink": attr.nlink,
        "st_uid": attr.uid,
        "st_gid": attr.gid,
        "st_mtime": attr.mtime_ns,
        "st_ctime": attr.mtime_ns,
        "st_atime": attr.mtime_ns,
        "st_blocks": (attr.size + 511) // 512,
        "st_blksize": 1024 * 1024,
    }


class PortalOperations(mfusepy.Operations):
    """mfusepy callbacks over a PortalFS."""

    use_ns = True

    def __init__(self, fs: PortalFS, on_mounted: Callable[[], None] | None = None) -> None:
        self.fs = fs
        self.on_mounted = on_mounted
        self._next_dir_handle = itertools.count(1)

    def init(self, path: str) -> None:
        if self.on_mounted:
            self.on_mounted()

    @_mapped
    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        return _stat(self.fs.getattr(path))

    @_mapped
    def opendir(self, path: str) -> int:
        # A handle of its own per open directory: PlusFUSE keeps its listing under it.
        self.fs.opendir(path)
        return next(self._next_dir_handle)

    def releasedir(self, path: str, fh: int) -> int:
        return 0

    @_mapped
    def readdir(self, path: str, fh: int) -> list:
        entries = self.fs.readdir(path)
        return [".", "..", *((name, _stat(attr), 0) for name, attr in entries)]

    @_mapped
    def mkdir(self, path: str, mode: int) -> int:
        self.fs.mkdir(path)
        return 0

    @_mapped
    def rmdir(self, path: str) -> int:
        self.fs.rmdir(path)
        return 0

    @_mapped
    def create(self, path: str, mode: int, fi: Any = None) -> int:
        return self.fs.create(path)

    @_mapped
    def open(self, path: str, flags: int) -> int:
        return self.fs.open(path, flags)

    @_mapped
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self.fs.read(fh, offset, size)

    @_mapped
    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return self.fs.write(fh, offset, data)

    @_mapped
    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        self.fs.truncate(path, length, fh)
        return 0

    @_mapped
    def flush(self, path: str, fh: int) -> int:
        self.fs.flush(fh)
        return 0

    @_mapped
    def fsync(self, path: str, datasync: int, fh: int) -> int:
        self.fs.fsync(fh)
        return 0

    @_mapped
    def release(self, path: str, fh: int) -> int:
        self.fs.release(fh)
        return 0

    @_mapped
    def unlink(self, path: str) -> int:
        self.fs.unlink(path)
        return 0

    @_mapped
    def rename(self, old: str, new: str) -> int:
        self.fs.rename(old, new)
        return 0

    @_mapped
    def statfs(self, path: str) -> dict[str, int]:
        return self.fs.statfs()

    @_mapped
    def utimens(self, path: str, times: Any = None) -> int:
        self.fs.utimens(path, times)
        return 0

    @_mapped
    def chmod(self, path: str, mode: int) -> int:
        self.fs.chmod(path, mode)
        return 0

    @_mapped
    def chown(self, path: str, uid: int, gid: int) -> int:
        self.fs.chown(path, uid, gid)
        return 0

    def symlink(self, target: str, source: str) -> int:
        raise mfusepy.FuseOSError(errno.EPERM)

    def link(self, target: str, source: str) -> int:
        raise mfusepy.FuseOSError(errno.EPERM)

    def mknod(self, path: str, mode: int, dev: int) -> int:
        raise mfusepy.FuseOSError(errno.EPERM)

    def readlink(self, path: str) -> str:
        raise mfusepy.FuseOSError(errno.EINVAL)  # POSIX: not a symbolic link

    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        raise mfusepy.FuseOSError(errno.ENOTSUP)

    def destroy(self, path: str) -> None:
        self.fs.close()
