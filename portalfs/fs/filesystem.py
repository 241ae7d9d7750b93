"""PortalFS: the mount's file-system operations on plain Python types (paths, ints, bytes).

Listings come from the metadata cache, reads from the remote reader, writes go to spools and
are uploaded on flush. Never imports mfusepy; raises OSError or PortalError, never returns
error codes. Thread-safe: `_lock` guards the handle and open-file tables and local folders;
each OpenFile's own lock guards its spool. Lock order: OpenFile.lock, then _lock.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..cache.metadata import Entry, MetadataCache
from ..client import errors
from ..client.models import md5_from_etag
from ..client.portal import PortalClient
from ..client.storage import StorageClient
from ..config import MountConfig
from ..write.journal import Journal, Unsent
from ..write.resend import Resender
from ..write.spool import Spool
from ..write.upload import Uploader, UploadRequest, refused_for_good
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


def _show(entries: dict[str, Entry], folder: str, path: str, file: Callable[[], Entry]) -> None:
    """Add to the listing of `folder` the file at `path` if it lies directly inside, or the
    folder on its way if it lies deeper."""
    prefix = folder.rstrip("/") + "/"
    if not path.startswith(prefix):
        return
    name, deeper, _ = path[len(prefix) :].partition("/")
    if deeper:
        entries.setdefault(name, Entry(name, True))
    else:
        entries[name] = file()


def _open_entry(open_file: OpenFile) -> Entry:
    """A file being written: its current size, and when it last changed."""
    name = paths.split(open_file.path)[1]
    return Entry(name, False, open_file.current_size, open_file.mtime_ns)


def _unsent_entry(unsent: Unsent) -> Entry:
    """A file that waits in the journal: its size, and when its upload failed. No ETag:
    the portal does not have these bytes yet."""
    try:
        mtime_ns = unsent.data_path.stat().st_mtime_ns
    except OSError:
        mtime_ns = 0
    return Entry(paths.split(unsent.portal_path)[1], False, unsent.size, mtime_ns)


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
            return _open_entry(open_file)
        unsent = self.journal.newest_of(paths.to_portal(path))
        if unsent is not None:  # rarely: only while uploads failed and wait to be sent again
            return _unsent_entry(unsent)
        entry = self.metadata.lookup(path)
        if entry is None and self._holds_unstored(path):
            return Entry(paths.split(path)[1], True)
        return entry

    def _holds_unstored(self, folder: str) -> bool:
        """Whether something not in the portal lies below `folder` (a file open for writing or
        waiting in the journal, a folder made here): the folder is shown while it does, even
        when the portal has nothing there (or never had)."""
        prefix = folder.rstrip("/") + "/"
        with self._lock:
            if any(p.startswith(prefix) and f.spool for p, f in self._files.items()):
                return True
            if any(d.startswith(prefix) for d in self._local_dirs):
                return True  # a folder made here lies below
        below = paths.to_portal(folder) + "/"
        return bool(self.journal) and any(p.startswith(below) for p in self.journal.newest())

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
            local_dirs = list(self._local_dirs)
            open_files = [f for f in self._files.values() if f.spool is not None]
        for d in local_dirs:
            _show(entries, path, d, lambda d=d: Entry(paths.split(d)[1], True))
        # Files not in the portal yet are shown, with the folders on their way: files whose
        # upload failed until they are sent, deleted or renamed; files being written.
        if self.journal:
            for portal_path, unsent in self.journal.newest().items():
                _show(
                    entries, path, paths.from_portal(portal_path), lambda u=unsent: _unsent_entry(u)
                )
        for f in open_files:
            _show(entries, path, f.path, lambda f=f: _open_entry(f))
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
        self.metadata.record_new_folder(path)

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
                if etag is None:
                    open_file.unsent_fd = self._open_unsent(path)
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

    def _open_unsent(self, path: str) -> int | None:
        """A descriptor on the bytes of `path` waiting in the journal, if any: they stay
        readable through it even once the resender has sent and dropped them."""
        unsent = self.journal.newest_of(paths.to_portal(path))
        if unsent is None:
            return None
        try:
            return os.open(unsent.data_path, os.O_RDONLY)
        except FileNotFoundError:
            return None  # sent meanwhile: the portal has it now

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
            open_file.unstored = truncate or open_file.etag is None
        elif truncate:
            self._before_change(open_file)
            open_file.spool.truncate(0)
            open_file.unstored = True
            open_file.error = None

    def _copy_down(self, open_file: OpenFile, spool: Spool) -> None:
        if open_file.unsent_fd is not None:  # the newest bytes are here, not in the portal
            copied = 0
            while copied < open_file.size:  # one call copies at most about 2 GiB
                done = os.copy_file_range(
                    open_file.unsent_fd, spool.fd, open_file.size - copied, copied, copied
                )
                if done == 0:
                    raise fail(errno.EIO, f"{open_file.path}: its unsent bytes are cut short")
                copied += done
            spool.size = copied
            return
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
                if open_file.refs == 1 and self._unsent_at_release(open_file):
                    self._upload(open_file)
            except (errors.PortalError, OSError) as exc:
                # release()'s result reaches no one: the journal keeps the bytes.
                log.error("upload of %s on release failed: %s", open_file.path, exc)
                if open_file.refs == 1 and self._unsent_at_release(open_file):
                    self._adopt_spool(open_file)
            finally:
                self._drop_ref(open_file)

    @staticmethod
    def _unsent_at_release(open_file: OpenFile) -> bool:
        """Bytes that must still go: not stored, not in the journal, not refused, and the
        file neither deleted nor left incomplete by a failed write."""
        return (
            open_file.unstored
            and open_file.journaled is None
            and open_file.error is None
            and not open_file.unlinked
        )

    def _adopt_spool(self, open_file: OpenFile) -> None:
        """The last close of a file whose bytes could be neither stored nor journaled (a full
        disk): the spool itself goes into the journal instead of being deleted."""
        spool = open_file.spool
        try:
            self.journal.adopt(spool.path, paths.to_portal(open_file.path), spool.size, spool.md5())
        except OSError as exc:
            log.error("%s: its bytes are lost: %s", open_file.path, exc)

    def _drop_ref(self, open_file: OpenFile) -> None:
        with self._lock:
            open_file.refs -= 1
            if open_file.refs > 0:
                return
            if self._files.get(open_file.path) is open_file:
                del self._files[open_file.path]
        if open_file.spool is not None:
            open_file.spool.close()
            open_file.spool = None
        if open_file.unsent_fd is not None:
            os.close(open_file.unsent_fd)
            open_file.unsent_fd = None

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
            if open_file.unsent_fd is not None:
                return os.pread(open_file.unsent_fd, size, offset)
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
        self._refuse_past_limit(handle.file.path, offset + len(data))
        with handle.file.lock:
            self._before_change(handle.file)
            try:
                written = handle.file.spool.write(offset, data)
            except OSError as exc:
                # A file with a hole where a write failed (e.g. ENOSPC) must never be sent.
                handle.file.error = exc.errno or errno.EIO
                raise
            self._changed(handle.file)
        return written

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        self._refuse_if_read_only(path)
        self._refuse_past_limit(path, length)
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
            self._before_change(handle.file)
            handle.file.spool.truncate(length)
            self._changed(handle.file)

    def _refuse_past_limit(self, path: str, size: int) -> None:
        # Refused at write(), not after the whole file is spooled and sent.
        if size > self.config.max_file_bytes:
            limit = self.config.max_file_bytes
            raise fail(errno.EFBIG, f"{path}: a portal file holds {limit} bytes at most")

    def _before_change(self, open_file: OpenFile) -> None:
        """The spool is about to change: a journal entry sharing its bytes gets its own copy
        first (it keeps the version whose upload failed). Under the path's sending lock, so
        a resend of that entry is never fed bytes half old, half new. Raises OSError, e.g.
        ENOSPC."""
        open_file.refusal = None  # other bytes: the portal has not refused these
        entry, open_file.journaled = open_file.journaled, None
        if entry is not None:
            with self.journal.sending(entry.portal_path):
                if self.journal.holds(entry):  # not sent, deleted or superseded meanwhile
                    self.journal.own_bytes(entry)

    @staticmethod
    def _changed(open_file: OpenFile) -> None:
        open_file.changed = open_file.unstored = True
        open_file.mtime_ns = time.time_ns()

    def flush(self, fh: int) -> None:
        """Upload the file if its bytes changed and are not stored yet; close() reports the
        result. After a failed upload every flush (and fsync) tries again; after the portal
        refused these bytes for good, every one fails again, until they change."""
        open_file = self._handle(fh).file
        with open_file.lock:
            if open_file.refusal is not None and not open_file.unlinked:
                raise open_file.refusal
            if open_file.changed and not open_file.unlinked:
                self._upload(open_file)

    fsync = flush

    def _upload(self, open_file: OpenFile) -> None:
        """Store the spool's bytes. They enter the journal first and leave it once stored,
        so nothing is lost if the upload fails or this process dies during it. Whether the
        portal holds them already is the portal's word now (the upload link's ETag), never a
        listing's: a cached one may be stale."""
        if open_file.error is not None:
            raise fail(open_file.error, f"{open_file.path}: an earlier write failed; not sent")
        spool = open_file.spool
        portal_path = paths.to_portal(open_file.path)
        md5, size = spool.md5(), spool.size
        started = time.monotonic()
        with self.journal.sending(portal_path):
            entry, unjournaled = open_file.journaled, None
            if entry is None or not self.journal.holds(entry):
                entry, unjournaled = self._record(spool, portal_path, size, md5)
            try:
                outcome = self.uploader.upload(UploadRequest(spool.path, portal_path, size, md5))
            except (errors.PortalError, OSError) as exc:
                self._not_stored(open_file, entry, exc, unjournaled)
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
        open_file.changed = open_file.unstored = False
        open_file.journaled = None
        open_file.etag, open_file.size = md5, size
        self.metadata.record_stored(open_file.path, size, md5)
        self._landed(open_file.path)

    def _landed(self, path: str) -> None:
        """A file is stored at `path`, so the folders above it exist in the portal. Those
        made here leave the folders made here (which would grow with every mkdir), and any
        a cached listing of their parent lacks become own writes of the metadata cache
        (bounded, dropped once a listing shows them): read-after-write for folders too."""
        above, folder = [], paths.split(path)[0]
        while folder != "/":
            above.append(folder)
            folder = paths.split(folder)[0]
        with self._lock:
            self._local_dirs.difference_update(above)
        for folder in above:
            parent, name = paths.split(folder)
            listed = self.metadata.cached_listing(parent)
            if listed is not None and name not in listed:
                self.metadata.record(folder, Entry(name, True))

    def _record(
        self, spool: Spool, portal_path: str, size: int, md5: str
    ) -> tuple[Unsent | None, OSError | None]:
        try:
            return self.journal.record(spool.path, portal_path, size, md5), None
        except OSError as exc:
            # Most likely the disk is full, spool and journal sharing it: the upload is
            # still worth trying, and if it fails too the spool is kept (see release).
            log.warning("%s cannot enter the journal (%s); sending it anyway", portal_path, exc)
            return None, exc

    def _not_stored(
        self,
        open_file: OpenFile,
        entry: Unsent | None,
        exc: BaseException,
        unjournaled: OSError | None,
    ) -> None:
        """The upload failed: say where the bytes are now; raises when the real cause is
        that they could not be journaled either."""
        if entry is None:
            assert unjournaled is not None
            raise fail(
                unjournaled.errno or errno.EIO,
                f"{open_file.path} is not stored ({exc}) nor journaled ({unjournaled.strerror})",
            ) from exc
        if refused_for_good(exc):
            with contextlib.suppress(OSError):  # then it stays unsent, and is tried again
                self.journal.set_aside(entry, str(exc))
            open_file.changed = open_file.unstored = False  # refused: not sent again
            open_file.refusal = exc
            return
        open_file.journaled = entry
        try:
            self.journal.make_durable(entry)
        except OSError as sync_error:
            log.error("cannot flush the journal entry of %s: %s", open_file.path, sync_error)
        # While the server is known to be down, one line said so already (reachability).
        level = logging.INFO if isinstance(exc, errors.ServerDownError) else logging.WARNING
        log.log(
            level,
            "upload of %s failed (%s); its bytes are kept in %s",
            open_file.path,
            exc,
            entry.data_path,
        )

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
        with self._lock:
            open_file = self._files.get(path)
        portal_path = paths.to_portal(path)
        with self.journal.sending(portal_path):
            unsent = self.journal.has(portal_path)
            try:
                self.portal.delete(portal_path)
            except errors.NotFoundError:
                if not (unsent or open_file):
                    raise  # never stored, nor about to be: it was not there
            # Only once the portal's copy is gone: a failed rm keeps every version.
            self.journal.forget_path(portal_path)  # deleted: its unsent versions go too
        if open_file is not None:
            # Open elsewhere: it keeps its bytes until closed, but is never uploaded again.
            with open_file.lock:
                open_file.unlinked = True
            with self._lock:
                if self._files.get(path) is open_file:
                    del self._files[path]
        self.metadata.record(path, None)

    def rename(self, old: str, new: str) -> None:
        # Refused, it is most often rsync or an editor replacing a file through a temporary one.
        self._refuse_unless_delete_allowed(f"{old} -> {new}", "; copy with rsync --inplace instead")
        paths.check_new_name(new)
        entry = self._existing(old)
        if entry.is_dir:
            raise fail(errno.EPERM, f"{old}: folders cannot be renamed")
        with self._lock:
            moving = self._files.get(old)
        # Held so that an upload of the open file finishes first, under its old name.
        with moving.lock if moving else contextlib.nullcontext():
            self._rename_in_portal(old, new, stored=moving is None or moving.etag is not None)
            with self._lock:
                self._files.pop(old, None)
                replaced = self._files.pop(new, None)
                if moving is not None:
                    moving.path = new  # its next upload goes to the new name
                    self._files[new] = moving
        if replaced is not None:
            replaced.unlinked = True
        self.metadata.record(old, None)
        if moving is None:
            self.metadata.record_stored(new, entry.size, entry.etag)
        if moving is None or moving.etag is not None:
            self._landed(new)  # the portal holds a file there now

    def _rename_in_portal(self, old: str, new: str, stored: bool) -> None:
        """Rename what the portal holds and what waits to be sent, so that neither lands
        under the old name later."""
        old_pp, new_pp = paths.to_portal(old), paths.to_portal(new)
        with self.journal.sending(old_pp, new_pp):
            unsent = self.journal.has(old_pp)
            if stored:
                try:
                    self.portal.rename(old_pp, new_pp)
                except errors.NotFoundError:
                    if not unsent:
                        raise
            else:
                # A file not stored yet moves over `new`: what the portal holds there is
                # replaced now, as rename(2) says, not when this file is closed (it may move
                # on before then, and the old file must not stay behind).
                with contextlib.suppress(errors.NotFoundError):
                    self.portal.delete(new_pp)
            self.journal.forget_path(new_pp)  # the file it replaces, unsent versions too
            self.journal.move_path(old_pp, new_pp)

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
        """Stop background work, and settle files still open: after a lazy unmount (SIGTERM)
        the kernel may end the mount without releasing them. Bytes not stored go into the
        journal for the next mount; spools are deleted."""
        self.resender.stop()
        self.list_ahead.close()
        self.reader.close()
        with self._lock:
            left = list(self._files.values())
            self._files.clear()
        for open_file in left:
            with open_file.lock:
                if open_file.spool is not None and self._unsent_at_release(open_file):
                    self._adopt_spool(open_file)
                open_file.refs = 1
                self._drop_ref(open_file)
