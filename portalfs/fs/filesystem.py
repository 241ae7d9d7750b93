"""PortalFS: the mount's file-system operations on plain Python types (paths, ints, bytes).

Listings come from the metadata cache, reads from the remote reader, writes go to spools and
are uploaded on flush. Never imports mfusepy; raises OSError or PortalError, never returns
error codes. Thread-safe: `_lock` guards the handle and open-file tables and local folders;
each OpenFile's own lock guards its spool. Lock order: OpenFile.lock, then _lock.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..cache.metadata import Entry, MetadataCache
from ..client import errors
from ..client.models import md5_from_etag
from ..client.portal import PortalClient
from ..client.storage import StorageClient
from ..config import MountConfig
from ..write.journal import Journal
from ..write.resend import Resender
from ..write.spool import Spool
from ..write.upload import Uploader, UploadRequest
from . import paths
from .handles import Handle, OpenFile
from .listahead import ListAhead
from .reader import RemoteReader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attr:
    """What stat() shows for one path."""

    mode: int
    size: int
    mtime_ns: int
    nlink: int
    uid: int
    gid: int


def fail(code: int, why: str) -> OSError:
    """An OSError with `code`, for the errno table to pass through."""
    return OSError(code, f"{os.strerror(code)}: {why}")


class PortalFS:
    """A portal as a tree of folders and files."""

    def __init__(
        self,
        config: MountConfig,
        portal: PortalClient,
        storage: StorageClient,
        uploader: Uploader,
        metadata: MetadataCache,
        reader: RemoteReader,
        journal: Journal,
        resender: Resender,
        spool_dir: Path,
    ) -> None:
        self.config = config
        self.portal = portal
        self.storage = storage
        self.uploader = uploader
        self.metadata = metadata
        self.reader = reader
        self.journal = journal
        self.resender = resender
        self.spool_dir = spool_dir
        self.list_ahead = ListAhead(metadata, config.list_ahead_folders)
        self.can_read = portal.credentials.can_read
        self._lock = threading.Lock()
        self._files: dict[str, OpenFile] = {}
        self._handles: dict[int, Handle] = {}
        self._next_fh = itertools.count(1)
        self._local_dirs: set[str] = set()
        self._mount_time_ns = time.time_ns()

    # ------------------------------------------------------------ attributes

    def _file_mode(self) -> int:
        perms = (0o444 if self.can_read else 0) | (0 if self.config.read_only else 0o200)
        return stat.S_IFREG | perms

    def _dir_attr(self) -> Attr:
        perms = 0o555 if self.config.read_only else 0o755
        return Attr(
            stat.S_IFDIR | perms, 0, self._mount_time_ns, 2, self.config.uid, self.config.gid
        )

    def _attr(self, entry: Entry) -> Attr:
        if entry.is_dir:
            return self._dir_attr()
        mtime = entry.mtime_ns or self._mount_time_ns
        return Attr(self._file_mode(), entry.size, mtime, 1, self.config.uid, self.config.gid)

    def _entry(self, path: str) -> Entry | None:
        if path == "/":
            return Entry("", True)
        with self._lock:
            open_file = self._files.get(path)
            if path in self._local_dirs:
                return Entry(paths.split(path)[1], True)
        if open_file is not None and open_file.spool is not None:
            return Entry(paths.split(path)[1], False, open_file.current_size, open_file.mtime_ns)
        return self.metadata.lookup(path)

    def _existing(self, path: str) -> Entry:
        entry = self._entry(path)
        if entry is None:
            raise fail(errno.ENOENT, path)
        return entry

    def getattr(self, path: str) -> Attr:
        return self._attr(self._existing(path))

    def opendir(self, path: str) -> None:
        if not self._existing(path).is_dir:
            raise fail(errno.ENOTDIR, path)

    def readdir(self, path: str) -> list[tuple[str, Attr]]:
        if not self._existing(path).is_dir:
            raise fail(errno.ENOTDIR, path)
        # Before this folder's own listing: the walk's next folders need not wait for it.
        self.list_ahead.listed(path)
        entries = dict(self.metadata.listing(path))
        with self._lock:
            local_dirs = [d for d in self._local_dirs if paths.split(d)[0] == path]
            open_files = [f for p, f in self._files.items() if paths.split(p)[0] == path]
        for d in local_dirs:
            entries.setdefault(paths.split(d)[1], Entry(paths.split(d)[1], True))
        for f in open_files:
            if f.spool is not None:
                name = paths.split(f.path)[1]
                entries[name] = Entry(name, False, f.current_size, f.mtime_ns)
        return [(name, self._attr(e)) for name, e in sorted(entries.items())]

    def statfs(self) -> dict[str, int]:
        # Plenty of room, so cp and df do not refuse: the bucket is the real limit.
        block = 4096
        total = 2**50 // block
        return {
            "f_bsize": block,
            "f_frsize": block,
            "f_blocks": total,
            "f_bfree": total,
            "f_bavail": total,
            "f_files": 2**32,
            "f_ffree": 2**32,
            "f_favail": 2**32,
            "f_namemax": 255,
        }

    # ------------------------------------------------------------ folders

    def mkdir(self, path: str) -> None:
        self._refuse_if_read_only(path)
        paths.check_new_name(path)
        if self._entry(path) is not None:
            raise fail(errno.EEXIST, path)
        if not self._existing(paths.split(path)[0]).is_dir:
            raise fail(errno.ENOTDIR, path)
        with self._lock:
            self._local_dirs.add(path)

    def rmdir(self, path: str) -> None:
        self._refuse_if_read_only(path)
        entry = self._existing(path)
        if not entry.is_dir:
            raise fail(errno.ENOTDIR, path)
        if self.readdir(path):
            raise fail(errno.ENOTEMPTY, path)
        # A portal has no empty folders: one that lists nothing (made here, or emptied by
        # deleting its files) goes away from this mount too.
        with self._lock:
            self._local_dirs.discard(path)
        self.metadata.record(path, None)

    # ------------------------------------------------------------ open and close

    def create(self, path: str) -> int:
        self._refuse_if_read_only(path)
        paths.check_new_name(path)
        if not self._existing(paths.split(path)[0]).is_dir:
            raise fail(errno.ENOTDIR, path)
        return self._open_handle(path, None, 0, writable=True, truncate=True)

    def open(self, path: str, flags: int) -> int:
        entry = self._existing(path)
        if entry.is_dir:
            raise fail(errno.EISDIR, path)
        writable = flags & os.O_ACCMODE != os.O_RDONLY
        truncate = writable and bool(flags & os.O_TRUNC)
        if writable:
            self._refuse_if_read_only(path)
        elif not self.can_read:
            raise fail(errno.EACCES, f"{path}: reading needs a member's login")
        return self._open_handle(path, entry.etag, entry.size, writable, truncate)

    def _open_handle(
        self, path: str, etag: str | None, size: int, writable: bool, truncate: bool
    ) -> int:
        with self._lock:
            open_file = self._files.get(path)
            if open_file is None:
                open_file = self._files[path] = OpenFile(path, etag, size)
            open_file.refs += 1
            fh = next(self._next_fh)
            self._handles[fh] = Handle(open_file, writable)
        try:
            if writable:
                with open_file.lock:
                    self._prepare_spool(open_file, truncate)
        except BaseException:
            self.release(fh)
            raise
        return fh

    def _prepare_spool(self, open_file: OpenFile, truncate: bool) -> None:
        if open_file.spool is None:
            spool = Spool(self.spool_dir)
            if not truncate and open_file.size > 0:
                try:
                    self._copy_down(open_file, spool)
                except BaseException:
                    spool.close()
                    raise
            open_file.spool = spool
            open_file.pending = truncate or open_file.etag is None
        elif truncate:
            open_file.spool.truncate(0)
            open_file.pending = True
            open_file.error = None

    def _copy_down(self, open_file: OpenFile, spool: Spool) -> None:
        # Editing in place needs the current bytes, which only a member may read.
        if not self.can_read:
            raise fail(errno.EACCES, f"{open_file.path}: changing a file in place needs a login")
        url = self.portal.download_link(paths.to_portal(open_file.path))
        with open(spool.path, "r+b") as out:
            md5 = self.storage.download_to(url, out)
        spool.size = os.fstat(spool.fd).st_size
        if open_file.etag and md5_from_etag(open_file.etag) not in (None, md5):
            raise errors.ConflictError(f"{open_file.path}: the file changed while opening")

    def release(self, fh: int) -> None:
        with self._lock:
            handle = self._handles.pop(fh, None)
        if handle is None:
            return
        self.reader.forget(fh)
        open_file = handle.file
        with open_file.lock:
            try:
                last = open_file.refs == 1
                if last and open_file.error is None and (open_file.dirty or open_file.pending):
                    self._upload(open_file)
            except (errors.PortalError, OSError) as exc:
                # release()'s result reaches no one; the bytes are in the journal already.
                log.error("upload of %s on release failed: %s", open_file.path, exc)
            finally:
                self._drop_ref(open_file)

    def _drop_ref(self, open_file: OpenFile) -> None:
        with self._lock:
            open_file.refs -= 1
            if open_file.refs > 0:
                return
            self._files.pop(open_file.path, None)
        if open_file.spool is not None:
            open_file.spool.close()
            open_file.spool = None

    # ------------------------------------------------------------ data

    def _handle(self, fh: int) -> Handle:
        with self._lock:
            handle = self._handles.get(fh)
        if handle is None:
            raise fail(errno.EBADF, f"file handle {fh}")
        return handle

    def read(self, fh: int, offset: int, size: int) -> bytes:
        handle = self._handle(fh)
        open_file = handle.file
        with open_file.lock:
            if open_file.spool is not None:
                return open_file.spool.read(offset, size)
        if not open_file.etag:
            raise fail(errno.EIO, f"{open_file.path}: the portal gives no ETag to read it by")
        portal_path = paths.to_portal(open_file.path)
        # A read from the start, or one that continues the last, is most likely part of a
        # whole-file read (cat, cp, md5sum): stream ahead. One GET then serves the file,
        # which matters on stores that load the whole object for every GET. "Continues"
        # allowing for requests answered out of order.
        sequential = abs(offset - handle.next_offset) <= self.config.reorder_bytes
        if sequential:
            # A read behind the run's end is a late request, or a reader going backwards
            # (tac): it starts a stream if there is none, never replaces one.
            start, ahead = min(offset, handle.next_offset), offset >= handle.next_offset
            self.reader.stream(portal_path, open_file.etag, open_file.size, start, fh, ahead)
        try:
            data = self.reader.read(portal_path, open_file.etag, open_file.size, offset, size, fh)
        except errors.ConflictError:
            # This handle stays on its version (ESTALE); the next open() sees the new one.
            self.metadata.invalidate(paths.split(open_file.path)[0])
            raise
        end = offset + len(data)
        handle.next_offset = max(handle.next_offset, end) if sequential else end
        return data

    def write(self, fh: int, offset: int, data: bytes) -> int:
        handle = self._handle(fh)
        if not handle.writable:
            raise fail(errno.EBADF, f"{handle.file.path} is open for reading only")
        with handle.file.lock:
            try:
                written = handle.file.spool.write(offset, data)
            except OSError as exc:
                # A file with a hole where a write failed (e.g. ENOSPC) must never be sent.
                handle.file.error = exc.errno or errno.EIO
                raise
            handle.file.dirty = True
            handle.file.mtime_ns = time.time_ns()
        return written

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        self._refuse_if_read_only(path)
        if fh is None:
            fh = self.open(path, os.O_WRONLY | (os.O_TRUNC if length == 0 else 0))
            try:
                self.truncate(path, length, fh)
                self.flush(fh)
            finally:
                self.release(fh)
            return
        handle = self._handle(fh)
        with handle.file.lock:
            if handle.file.spool is None:
                raise fail(errno.EBADF, f"{path} is open for reading only")
            handle.file.spool.truncate(length)
            handle.file.dirty = True
            handle.file.mtime_ns = time.time_ns()

    def flush(self, fh: int) -> None:
        """Upload the file if its bytes changed; close() reports the result."""
        open_file = self._handle(fh).file
        with open_file.lock:
            if open_file.dirty:
                self._upload(open_file)

    fsync = flush

    def _upload(self, open_file: OpenFile) -> None:
        """Store the spool's bytes. They enter the journal first and leave it once stored,
        so nothing is lost if the upload fails or this process dies during it."""
        if open_file.error is not None:
            raise fail(open_file.error, f"{open_file.path}: an earlier write failed; not sent")
        spool = open_file.spool
        portal_path = paths.to_portal(open_file.path)
        md5, size = spool.md5(), spool.size
        started = time.monotonic()
        with self.journal.sending(portal_path):
            entry = self.journal.record(spool.path, portal_path, size, md5)
            try:
                known = self.metadata.lookup(open_file.path)
                etag = known.etag if known else None
                request = UploadRequest(spool.path, portal_path, size, md5, etag)
                outcome = self.uploader.upload(request)
            except (errors.PortalError, OSError):
                self.journal.keep(entry)
                # The journal owns these bytes now; release must not keep a second copy.
                open_file.dirty = open_file.pending = False
                raise
            # This entry and any older unsent version of the same file: all superseded now.
            self.journal.forget_path(portal_path)
        log.info(
            "%s %s (%d bytes) in %.2fs",
            outcome.value,
            portal_path,
            size,
            time.monotonic() - started,
        )
        open_file.dirty = open_file.pending = False
        open_file.etag, open_file.size = md5, size
        self.metadata.record_stored(open_file.path, size, md5)

    def busy_paths(self) -> set[str]:
        """Portal paths open for writing: the journal must not resend old versions of them."""
        with self._lock:
            return {paths.to_portal(p) for p, f in self._files.items() if f.spool is not None}

    # ------------------------------------------------------------ changes the portal may refuse

    def _refuse_if_read_only(self, path: str) -> None:
        if self.config.read_only:
            raise fail(errno.EROFS, f"{path}: the mount is read-only")

    def _refuse_unless_delete_allowed(self, path: str, advice: str = "") -> None:
        self._refuse_if_read_only(path)
        if not (self.config.allow_delete and self.can_read):
            raise fail(
                errno.EPERM,
                f"{path}: deleting and renaming need --allow-delete and a login{advice}",
            )

    def unlink(self, path: str) -> None:
        self._refuse_unless_delete_allowed(path)
        if self._existing(path).is_dir:
            raise fail(errno.EISDIR, path)
        self.portal.delete(paths.to_portal(path))
        self.metadata.record(path, None)

    def rename(self, old: str, new: str) -> None:
        # Refused, it is most often rsync or an editor replacing a file through a temporary one.
        self._refuse_unless_delete_allowed(f"{old} -> {new}", "; copy with rsync --inplace instead")
        paths.check_new_name(new)
        entry = self._existing(old)
        if entry.is_dir:
            raise fail(errno.EPERM, f"{old}: folders cannot be renamed")
        self.portal.rename(paths.to_portal(old), paths.to_portal(new))
        self.metadata.record(old, None)
        self.metadata.record_stored(new, entry.size, entry.etag)

    # ------------------------------------------------------------ modes, owners and times

    def chmod(self, path: str, mode: int) -> None:
        """Accepted and ignored: the portal keeps no modes. Refusing made `rsync -a` and
        `cp -a` exit non-zero after copying everything (gcsfuse and rclone accept it too)."""
        self._accept_ignored_change(path)

    def chown(self, path: str, uid: int, gid: int) -> None:
        """Accepted and ignored: the portal keeps no owners; the mount shows --uid/--gid."""
        self._accept_ignored_change(path)

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        """Accepted and ignored: times are the portal's upload times; touch(1) keeps working."""
        self._accept_ignored_change(path)

    def _accept_ignored_change(self, path: str) -> None:
        # Like a kernel file system: a missing name is ENOENT before a read-only one is EROFS.
        self._existing(path)
        self._refuse_if_read_only(path)

    def start_background(self) -> None:
        """Once mounted: send what earlier runs left unsent, and keep retrying it."""
        self.resender.start(self.busy_paths)

    def close(self) -> None:
        """Stop background work; open files are the kernel's to release first."""
        self.resender.stop()
        self.list_ahead.close()
        self.reader.close()
