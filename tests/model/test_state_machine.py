"""A hypothesis state machine: PortalFS (a member's mount with --allow-delete) against a dict
model, through create, write, reopen, truncate, two handles on one file, read, mkdir, rmdir,
unlink and rename, plus changes another client makes on the server behind the mount's back.

Listings live for a TTL on a fake clock. A change made behind the mount's back may or may
not show until the clock passes the TTL: the model keeps those paths "uncertain" and checks
only what it can say; once the clock has moved on, everything must show.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from portalfs.config import MountConfig
from portalfs.fs.factory import build_portalfs
from portalfs.hashing import file_md5
from portalfs.write.upload import Uploader, UploadRequest
from tests.portal_fixtures import TEST_HTTP, clients, start_portal

# Small blocks, so that a few KiB make a file of several blocks (reads cross them, the
# read-ahead streams them, the cache evicts them).
BLOCK = 512
TTL_S = 5.0
FILE_NAMES = ["a", "b.txt", "c d", "é"]
FOLDERS = ["", "x", "x/y", "z"]  # folder names never clash with file names
PATHS = st.sampled_from([f"/{f}/{n}" if f else f"/{n}" for f in FOLDERS for n in FILE_NAMES])
FOLDER_PATHS = st.sampled_from([f"/{f}" for f in FOLDERS if f])


def pattern(seed: int, size: int) -> bytes:
    """`size` bytes that differ from block to block and from seed to seed."""
    return bytes((seed + i * 7 + i // BLOCK) % 256 for i in range(size))


def data_of(min_size: int, max_size: int) -> st.SearchStrategy[bytes]:
    """Short arbitrary bytes, or files of up to `max_size` (several blocks)."""
    sized = st.builds(pattern, st.integers(0, 255), st.integers(min_size, max_size))
    return st.one_of(st.binary(min_size=min_size, max_size=64), sized)


DATA = data_of(0, 5 * BLOCK)
# A write of no bytes at an offset changes nothing (POSIX), and the kernel never sends one.
SOME_DATA = data_of(1, 2 * BLOCK)
OFFSETS = st.integers(0, 6 * BLOCK)


# Its own limit: about 20 s alone, but several times that on a machine busy with other work.
pytestmark = pytest.mark.timeout(600)

# Marks the read handles of a file unlinked while open: they name no path any more.
UNLINKED = "\0unlinked"


def parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def ancestors(path: str) -> list[str]:
    """The folders above `path`, without "/": "/x/y/a" -> ["/x", "/x/y"]."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def child_of(folder: str, path: str) -> str | None:
    """The name under `folder` that leads to `path`, if `path` is below `folder`."""
    prefix = "" if folder == "/" else folder
    if not path.startswith(prefix + "/"):
        return None
    return path[len(prefix) + 1 :].split("/")[0]


class FakeClock:
    """The metadata cache's timer: moves on only when told, by a hair on every call, so that
    a write recorded after a listing is always newer than it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1e-6
        return self.now


class OpenModel:
    """One path open for writing in the mount: its spool's bytes and the handles on it."""

    def __init__(self, path: str, data: bytes, pending: bool) -> None:
        self.path = path
        self.unlinked = False  # unlinked while open: its handles go on, nothing is stored
        self.data = bytearray(data)
        self.handles: list[int] = []
        self.changed = False  # written since the last upload: flush uploads
        self.pending = pending  # created or truncated, never uploaded: release uploads


class PortalModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="portalfs-model-"))
        self.portal = start_portal(self.tmp / "server")
        config = MountConfig(
            cache_dir=str(self.tmp / "cache"),
            metadata_ttl_s=TTL_S,
            block_bytes=BLOCK,
            cache_bytes=8 * BLOCK,
            readahead_blocks=4,
            kernel_readahead_kb=1,
            list_ahead_folders=0,  # no background listings: each example runs the same way
            allow_delete=True,
        )
        self.fs = build_portalfs(self.portal.member, config, TEST_HTTP)
        self.clock = FakeClock()
        self.fs.metadata._timer = self.clock  # the one seam: the cache's clock
        self.other, storage = clients(self.portal.member)
        self.other_uploader = Uploader(self.other, storage)
        self.files: dict[str, bytes] = {}  # what the server holds
        self.versions: dict[str, set[bytes]] = {}  # every version each path has held
        self.local_dirs: set[str] = set()  # made here with mkdir: shown while mounted
        # Changed behind the mount's back since the clock last moved on: path -> the
        # versions the mount may still show (None: no file).
        self.uncertain: dict[str, set[bytes | None]] = {}
        # Folders the mount emptied this TTL: the parent's fresh listing may still show them.
        self.emptied: set[str] = set()
        self.open: dict[str, OpenModel] = {}  # by path; not the unlinked ones
        self.handles: dict[int, OpenModel] = {}
        self.read_handles: dict[int, str] = {}

    def teardown(self) -> None:
        for fh in [*self.handles, *self.read_handles]:
            self.fs.release(fh)
        self.fs.close()
        self.portal.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------ what the model can say

    def shown(self) -> dict[str, bytes]:
        """What the mount must show where it is certain: the server, with open spools over it."""
        view = dict(self.files)
        view.update({p: bytes(o.data) for p, o in self.open.items()})
        return view

    def certain(self, path: str) -> bool:
        return path not in self.uncertain

    def busy(self, path: str) -> bool:
        """Open in the mount: for writing, or for reading (a spool written meanwhile stays)."""
        return path in self.open or path in self.read_handles.values()

    def doubtful(self, folder: str) -> bool:
        """Whether the mount may or may not show `folder` (or a folder above it)."""
        chain = [*ancestors(folder), folder]
        return any(d.rsplit("/", 1)[1] in self.doubtful_names(parent(d)) for d in chain)

    def is_folder(self, path: str) -> bool:
        return path in self.local_dirs or any(path in ancestors(p) for p in self.shown())

    def doubtful_names(self, folder: str) -> set[str]:
        names = {child_of(folder, p) for p in [*self.uncertain, *self.emptied]}
        return names - {None}

    def folders_to_check(self) -> list[str]:
        sure = set(self.local_dirs)
        for path in self.shown():
            if self.certain(path):
                sure.update(ancestors(path))
        return ["/", *sorted(sure)]

    # ------------------------------------------------------------ helpers that act

    def _make_parents(self, path: str) -> None:
        """mkdir -p of the folders above `path`, as a user would, where the mount lacks them."""
        for folder in ancestors(path):
            try:
                self.fs.getattr(folder)
            except FileNotFoundError:
                self.fs.mkdir(folder)
                self.local_dirs.add(folder)

    def _uploaded(self, path: str, data: bytes) -> None:
        """The mount stored `path` (written or renamed there): the folders above it made
        here are the portal's from now on, shown only while something is in them."""
        self.local_dirs.difference_update(ancestors(path))
        self.files[path] = data
        self.versions.setdefault(path, set()).add(data)
        self.uncertain.pop(path, None)

    def _may_write(self, path: str, data: bytes) -> bool:
        return not self.busy(path)

    def _removed_here(self, path: str) -> None:
        del self.files[path]
        self.emptied.update(d for d in ancestors(path) if d not in self.local_dirs)

    # ------------------------------------------------------------ choices the state allows

    def stored(self) -> list[str]:
        """Files on the server the mount must show as they are, and not held open."""
        return sorted(p for p in self.files if self.certain(p) and not self.busy(p))

    def readable(self) -> list[str]:
        return sorted(p for p in self.shown() if self.certain(p))

    # ------------------------------------------------------------ the mount's own changes

    @rule(path=PATHS, data=DATA, piece=st.integers(1, 3 * BLOCK))
    def write_a_file(self, path, data, piece):
        self._write_a_file(path, data, piece)

    @precondition(lambda self: self.versions)
    @rule(choice=st.data())
    def write_back_earlier_bytes(self, choice):
        """The same bytes as now (nothing is sent) or as before (they must be sent)."""
        path = choice.draw(st.sampled_from(sorted(self.versions)))
        data = choice.draw(st.sampled_from(sorted(self.versions[path])))
        unchanged = self.certain(path) and self.files.get(path) == data
        puts = self.portal.puts()
        if self._write_a_file(path, data, BLOCK) and unchanged:
            assert self.portal.puts() == puts, "the same bytes were sent again"

    def _write_a_file(self, path: str, data: bytes, piece: int) -> bool:
        if not self._may_write(path, data):
            return False
        self._make_parents(path)
        fh = self.fs.create(path)
        try:
            for offset in range(0, len(data), piece):
                chunk = data[offset : offset + piece]
                assert self.fs.write(fh, offset, chunk) == len(chunk)
            self.fs.flush(fh)
        finally:
            self.fs.release(fh)
        self._uploaded(path, data)
        return True

    @precondition(lambda self: self.stored())
    @rule(choice=st.data(), offset=OFFSETS, data=SOME_DATA, read_too=st.booleans())
    def reopen_and_write_in_place(self, choice, offset, data, read_too):
        path = choice.draw(st.sampled_from(self.stored()))
        fh = self.fs.open(path, os.O_RDWR if read_too else os.O_WRONLY)
        try:
            assert self.fs.write(fh, offset, data) == len(data)
            self.fs.flush(fh)
        finally:
            self.fs.release(fh)
        old = self.files[path]
        self._uploaded(path, old[:offset].ljust(offset, b"\0") + data + old[offset + len(data) :])

    @precondition(lambda self: self.stored())
    @rule(choice=st.data(), length=OFFSETS)
    def truncate_by_path(self, choice, length):
        path = choice.draw(st.sampled_from(self.stored()))
        self.fs.truncate(path, length)
        self._uploaded(path, self.files[path][:length].ljust(length, b"\0"))

    @precondition(lambda self: self.stored())
    @rule(choice=st.data())
    def unlink(self, choice):
        path = choice.draw(st.sampled_from(self.stored()))
        self.fs.unlink(path)
        self._removed_here(path)
        with_errno(errno.ENOENT, self.fs.getattr, path)

    @precondition(lambda self: self.open)
    @rule(choice=st.data())
    def unlink_a_file_open_for_writing(self, choice):
        """POSIX: the name goes at once; the handles go on writing; closing stores nothing."""
        path = choice.draw(st.sampled_from(sorted(self.open)))
        self.fs.unlink(path)
        self.open.pop(path).unlinked = True
        if path in self.files:
            self._removed_here(path)
        # Its read handles read the unlinked file from now on, not whatever takes its name.
        for fh, read_path in self.read_handles.items():
            if read_path == path:
                self.read_handles[fh] = path + UNLINKED
        with_errno(errno.ENOENT, self.fs.getattr, path)

    @rule(path=PATHS)
    def unlink_a_missing_file(self, path):
        if path not in self.shown() and self.certain(path):
            with_errno(errno.ENOENT, self.fs.unlink, path)

    @precondition(lambda self: self.stored())
    @rule(choice=st.data(), new=PATHS)
    def rename(self, choice, new):
        old = choice.draw(st.sampled_from(self.stored()))
        if new == old or not self.certain(new) or self.busy(new):
            return
        self._make_parents(new)
        self.fs.rename(old, new)
        data = self.files[old]
        self._removed_here(old)
        self._uploaded(new, data)
        with_errno(errno.ENOENT, self.fs.getattr, old)

    @precondition(lambda self: self.open)
    @rule(choice=st.data(), new=PATHS)
    def rename_a_file_open_for_writing(self, choice, new):
        """POSIX: the open file moves; its handles go on; closing stores it under the new
        name only (and the version the portal held moves with it)."""
        old = choice.draw(st.sampled_from(sorted(self.open)))
        if new == old or not self.certain(new) or self.busy(new):
            return
        self._make_parents(new)
        self.fs.rename(old, new)
        opened = self.open.pop(old)
        if old in self.files:
            data = self.files[old]
            self._removed_here(old)
            self._uploaded(new, data)
        elif new in self.files:
            self._removed_here(new)  # replaced at once, as rename(2) says
        opened.path = new
        self.open[new] = opened
        for fh, read_path in self.read_handles.items():
            if read_path == old:
                self.read_handles[fh] = new  # a read handle follows its file
        with_errno(errno.ENOENT, self.fs.getattr, old)

    @rule(folder=FOLDER_PATHS)
    def mkdir(self, folder):
        if self.doubtful(folder):
            return
        if self.is_folder(folder):
            with_errno(errno.EEXIST, self.fs.mkdir, folder)
        else:
            self._make_parents(folder + "/f")

    @rule(folder=FOLDER_PATHS)
    def rmdir(self, folder):
        below = [p for p in [*self.shown(), *self.local_dirs] if p.startswith(folder + "/")]
        doubtful = [p for p in [*self.uncertain, *self.emptied] if p.startswith(folder + "/")]
        if doubtful or self.doubtful(folder) or not self.is_folder(folder):
            return
        if below:
            with_errno(errno.ENOTEMPTY, self.fs.rmdir, folder)
            return
        self.fs.rmdir(folder)
        self.local_dirs.discard(folder)
        self.emptied.discard(folder)
        with_errno(errno.ENOENT, self.fs.getattr, folder)

    # ------------------------------------------------------------ files held open

    @precondition(lambda self: len(self.handles) < 4)
    @rule(path=PATHS, truncate=st.booleans())
    def open_for_writing(self, path, truncate):
        if self.certain(path):
            self._open_for_writing(path, truncate)

    @precondition(lambda self: self.open and len(self.handles) < 4)
    @rule(choice=st.data(), truncate=st.booleans())
    def open_a_second_handle(self, choice, truncate):
        self._open_for_writing(choice.draw(st.sampled_from(sorted(self.open))), truncate)

    def _open_for_writing(self, path: str, truncate: bool) -> None:
        exists = path in self.shown()
        if not exists:
            self._make_parents(path)
            fh = self.fs.create(path)
        else:
            fh = self.fs.open(path, os.O_WRONLY | (os.O_TRUNC if truncate else 0))
        opened = self.open.get(path)
        if opened is None:
            start = b"" if truncate or not exists else self.shown()[path]
            opened = self.open[path] = OpenModel(path, start, truncate or not exists)
        elif truncate:
            opened.data, opened.pending = bytearray(), True
        opened.handles.append(fh)
        self.handles[fh] = opened

    @precondition(lambda self: self.handles)
    @rule(choice=st.data(), offset=OFFSETS, data=SOME_DATA)
    def write_through_an_open_handle(self, choice, offset, data):
        fh = choice.draw(st.sampled_from(sorted(self.handles)))
        opened = self.handles[fh]
        assert self.fs.write(fh, offset, data) == len(data)
        end = offset + len(data)
        opened.data.extend(b"\0" * max(0, end - len(opened.data)))
        opened.data[offset:end] = data
        opened.changed = True

    @precondition(lambda self: self.handles)
    @rule(choice=st.data(), length=OFFSETS)
    def truncate_an_open_handle(self, choice, length):
        fh = choice.draw(st.sampled_from(sorted(self.handles)))
        opened = self.handles[fh]
        self.fs.truncate(opened.path, length, fh)
        opened.data = bytearray(bytes(opened.data[:length]).ljust(length, b"\0"))
        opened.changed = True

    @precondition(lambda self: self.readable() and len(self.read_handles) < 2)
    @rule(choice=st.data())
    def open_for_reading(self, choice):
        path = choice.draw(st.sampled_from(self.readable()))
        self.read_handles[self.fs.open(path, os.O_RDONLY)] = path

    @precondition(lambda self: any(p in self.open for p in self.read_handles.values()))
    @rule(choice=st.data(), offset=OFFSETS, size=st.integers(0, 3 * BLOCK))
    def read_a_file_being_written(self, choice, offset, size):
        # Only files open for writing: for the others the server's version may have moved on.
        fh = choice.draw(
            st.sampled_from(sorted(h for h, p in self.read_handles.items() if p in self.open))
        )
        expected = bytes(self.open[self.read_handles[fh]].data[offset : offset + size])
        assert self.fs.read(fh, offset, size) == expected

    @precondition(lambda self: self.handles or self.read_handles)
    @rule(choice=st.data())
    def close_a_handle(self, choice):
        fh = choice.draw(st.sampled_from(sorted([*self.handles, *self.read_handles])))
        if fh in self.read_handles:
            del self.read_handles[fh]
            self.fs.release(fh)
            return
        opened = self.handles.pop(fh)
        try:
            self.fs.flush(fh)
        finally:
            self.fs.release(fh)
        opened.handles.remove(fh)
        last = not opened.handles
        # flush sends what changed; the last release sends a file created or truncated.
        if opened.changed or (last and opened.pending):
            if not opened.unlinked:
                self._uploaded(opened.path, bytes(opened.data))
            opened.changed = opened.pending = False
        if last and not opened.unlinked:
            del self.open[opened.path]

    # ------------------------------------------------------------ another client

    @rule(path=PATHS, data=DATA)
    def another_client_uploads(self, path, data):
        if self.busy(path):
            return
        src = self.tmp / "upload"
        src.write_bytes(data)
        self.other_uploader.upload(UploadRequest(src, path[1:], len(data), file_md5(src)))
        self.uncertain.setdefault(path, set()).add(self.files.get(path))
        self.files[path] = data

    @precondition(lambda self: any(not self.busy(p) for p in self.files))
    @rule(choice=st.data())
    def another_client_deletes(self, choice):
        path = choice.draw(st.sampled_from(sorted(p for p in self.files if not self.busy(p))))
        self.other.delete(path[1:])
        self.uncertain.setdefault(path, set()).add(self.files.pop(path))

    @rule()
    def time_passes_beyond_the_ttl(self):
        self.clock.now += TTL_S + 1
        self.uncertain.clear()
        self.emptied.clear()

    # ------------------------------------------------------------ reading and looking

    @precondition(lambda self: self.readable())
    @rule(choice=st.data(), offset=OFFSETS, size=st.integers(0, 6 * BLOCK), whole=st.booleans())
    def read(self, choice, offset, size, whole):
        path = choice.draw(st.sampled_from(self.readable()))
        data = self.shown()[path]
        fh = self.fs.open(path, os.O_RDONLY)
        try:
            if whole:  # block by block from the start: the read-ahead's stream
                got = b"".join(self.fs.read(fh, o, BLOCK) for o in range(0, len(data), BLOCK))
                assert got == data
            else:
                assert self.fs.read(fh, offset, size) == data[offset : offset + size]
        finally:
            self.fs.release(fh)

    @rule(path=PATHS)
    def open_a_missing_file(self, path):
        if path not in self.shown() and self.certain(path):
            with_errno(errno.ENOENT, self.fs.open, path, os.O_RDONLY)

    @invariant()
    def listings_and_sizes_match(self):
        view = self.shown()
        for folder in self.folders_to_check():
            doubtful = self.doubtful_names(folder)
            expected = {child_of(folder, p) for p in [*view, *self.local_dirs]} - {None}
            got = {name for name, _ in self.fs.readdir(folder)}
            assert got - doubtful == expected - doubtful, (folder, got, expected, doubtful)
        for path, data in view.items():
            if self.certain(path):
                assert self.fs.getattr(path).size == len(data), path


def with_errno(code: int, call, *args) -> None:
    try:
        call(*args)
    except OSError as exc:
        assert exc.errno == code, exc
    else:
        raise AssertionError(f"{call.__name__}{args} did not fail with {errno.errorcode[code]}")


TestPortalModel = PortalModel.TestCase
TestPortalModel.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays stable
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
