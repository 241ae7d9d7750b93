"""Journal: the durable record of files whose bytes are final but not yet stored in the
portal, in CACHE_DIR/unsent/, and of files the portal refused for good, in CACHE_DIR/refused/.
An entry is made before every upload and dropped after it, so a failed upload, a dead server
or a killed mount loses nothing: the next mount (or `portalfs recover`) sends what is left.

Each entry is a data file, named by a sequence number that only grows (one more than any
entry found at start), never by the clock: a clock stepped back cannot make an older version
look newer. Its record (portal path, size, MD5, as JSON) is an extended attribute of the
data file: recording a small file then creates no file at all, where a file creation on a
busy ext4 costs 0.3-0.5 ms, more than the rest of the journal's work (docs/PERFORMANCE.md).
Where the file system has no user xattrs, the record is a JSON file beside the data. Names
never hold tokens or user paths. Uploads of one path go one at a time (`sending`), so a
resent old version can never land after a newer one. Does no network I/O itself.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ..private import copy_private, open_private

log = logging.getLogger(__name__)

_NAME = re.compile(r"(\d{16})\.(data|json)")
# Entries of versions before the sequence: "<time_ns>-<random>.data" + ".json".
_LEGACY_NAME = re.compile(r"\d{20}-[0-9a-f]{12}\.json")
RECORD_XATTR = "user.portalfs.unsent"
# What a file system without user xattrs answers: the record goes into a JSON file then.
_NO_XATTRS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM})


@dataclass(frozen=True)
class Unsent:
    """One journal entry: where its bytes are and where they go; `reason` says why the
    portal refused it (refused entries only)."""

    seq: int
    data_path: Path
    portal_path: str
    size: int
    md5: str
    reason: str = ""


class Journal:
    """The unsent/ and refused/ folders (0700, files 0600). Thread-safe: entries are separate
    files, `_guard` guards the in-memory index, and per-path locks order the uploads of one
    path within this process. Only one process uses a cache folder at a time (the mount's
    flock), so the index stays true."""

    def __init__(self, directory: Path, refused_dir: Path | None = None) -> None:
        self.directory = directory
        self.refused_dir = refused_dir or directory.with_name("refused")
        for folder in (directory, self.refused_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._guard = threading.Lock()
        self._sending: dict[str, tuple[threading.Lock, list[int]]] = {}
        self._by_path: dict[str, list[Unsent]] = {}
        _migrate_legacy(directory)
        entries, self.orphans, junk = _scan(directory)
        refused, refused_orphans, refused_junk = _scan(self.refused_dir)
        for leftover in junk + refused_junk:
            leftover.unlink(missing_ok=True)  # records without data, copies cut short
        for entry in entries:
            self._by_path.setdefault(entry.portal_path, []).append(entry)
        self.orphans += refused_orphans
        known = [e.seq for e in entries + refused] + [_seq_of(p) for p in self.orphans]
        self._seq = itertools.count(max(known, default=0) + 1)
        for orphan in self.orphans:
            log.warning(
                "%s holds %d bytes whose destination was never recorded (the mount died or "
                "the disk was full while recording it); kept, not sent",
                orphan,
                orphan.stat().st_size,
            )

    @contextlib.contextmanager
    def sending(self, *portal_paths: str) -> Iterator[None]:
        """Held around recording, uploading and forgetting a version of a path (or moving
        one path's versions to another): the mount's own uploads and the resender's take
        turns, in the order they come. Several paths are locked in sorted order, so two
        renames in opposite directions cannot deadlock."""
        with contextlib.ExitStack() as stack:
            for portal_path in sorted(set(portal_paths)):
                stack.enter_context(self._path_lock(portal_path))
            yield

    @contextlib.contextmanager
    def _path_lock(self, portal_path: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._sending.setdefault(portal_path, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if users[0] == 0:
                    del self._sending[portal_path]

    def has(self, portal_path: str) -> bool:
        """Whether an unsent version of `portal_path` waits here."""
        with self._guard:
            return portal_path in self._by_path

    def newest(self) -> dict[str, Unsent]:
        """The newest unsent entry of each portal path."""
        with self._guard:
            return {path: max(es, key=_by_seq) for path, es in self._by_path.items()}

    def newest_of(self, portal_path: str) -> Unsent | None:
        """The newest unsent entry of `portal_path`, if any."""
        with self._guard:
            entries = self._by_path.get(portal_path)
            return max(entries, key=_by_seq) if entries else None

    def holds(self, entry: Unsent) -> bool:
        """Whether `entry` is still unsent (not forgotten as sent or superseded)."""
        with self._guard:
            return entry in self._by_path.get(entry.portal_path, ())

    def record(self, source: Path, portal_path: str, size: int, md5: str) -> Unsent:
        """Enter `source` (final bytes) before its upload: a hard link, so it costs no copy.
        The record goes onto the bytes first, so the journal's name for them never exists
        without their own record (a spool keeps the xattr of its last upload). Raises
        OSError (e.g. ENOSPC) and leaves nothing behind if it cannot be recorded."""
        seq = next(self._seq)
        entry = Unsent(seq, self.directory / f"{seq:016d}.data", portal_path, size, md5)
        try:
            on_bytes = _set_record_xattr(source, entry)
            try:
                os.link(source, entry.data_path)
            except OSError:
                _copy_private(source, entry.data_path)  # a copy carries no xattrs
                on_bytes = on_bytes and _set_record_xattr(entry.data_path, entry)
            if not on_bytes:
                _write_record_file(entry)
        except OSError:
            entry.data_path.unlink(missing_ok=True)
            _record_path(entry).unlink(missing_ok=True)
            raise
        with self._guard:
            self._by_path.setdefault(portal_path, []).append(entry)
        return entry

    def adopt(self, source: Path, portal_path: str, size: int, md5: str) -> Unsent | None:
        """The last resort when record() failed and so did the upload: move `source` itself
        into the journal (a rename needs no free space), with its record if it can be
        written. If not, the bytes stay as an orphan, reported now and at every start and
        listed by `portalfs recover --list`; returns None then."""
        seq = next(self._seq)
        entry = Unsent(seq, self.directory / f"{seq:016d}.data", portal_path, size, md5)
        try:
            on_bytes: bool | None = _set_record_xattr(source, entry)
        except OSError as exc:
            on_bytes, failure = None, exc
            # The record of an earlier upload of the same spool must not name these bytes.
            with contextlib.suppress(OSError):
                os.removexattr(source, RECORD_XATTR)
        os.replace(source, entry.data_path)
        try:
            if on_bytes is False:
                _write_record_file(entry)
            elif on_bytes is None:
                raise failure
            self.make_durable(entry)
        except OSError as exc:
            self.orphans.append(entry.data_path)
            log.warning(
                "%s: kept in %s, but its record cannot be written (%s): send it by hand",
                portal_path,
                entry.data_path,
                exc.strerror,
            )
            return None
        with self._guard:
            self._by_path.setdefault(portal_path, []).append(entry)
        return entry

    def make_durable(self, entry: Unsent) -> None:
        """The upload failed, so the entry may live long: flush it to disk. Only here, not on
        every record: a successful upload never needs the journal's copy to survive a crash of
        the machine, and an fsync per small file would double the cost of `cp -r`."""
        for path in (entry.data_path, _record_path(entry)):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # the record is an xattr: the data file's fsync covers it
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_folder(self.directory)

    def own_bytes(self, entry: Unsent) -> None:
        """Give the entry a copy of its bytes, before the spool it shares them with changes
        (a full copy, so only when the spool is written to again). Raises OSError."""
        if entry.data_path.stat().st_nlink == 1:
            return  # no other name: nothing else can change them
        private = entry.data_path.with_suffix(".copy")
        try:
            _copy_private(entry.data_path, private)
            _set_record_xattr(private, entry)  # the copy needs its record too
            os.replace(private, entry.data_path)
        except OSError:
            private.unlink(missing_ok=True)
            raise

    def entries(self) -> list[Unsent]:
        """Every unsent entry, oldest first."""
        with self._guard:
            return sorted((e for es in self._by_path.values() for e in es), key=_by_seq)

    def __bool__(self) -> bool:
        with self._guard:
            return bool(self._by_path)

    def refused(self) -> list[Unsent]:
        """Entries the portal refused for good (too large, a name it cannot store), oldest
        first; kept until the user deletes them."""
        return _scan(self.refused_dir)[0]

    def forget(self, entry: Unsent) -> None:
        """Drop an entry once its bytes are stored (or superseded)."""
        _record_path(entry).unlink(missing_ok=True)
        entry.data_path.unlink(missing_ok=True)
        self._unindex(entry)

    def forget_path(self, portal_path: str) -> None:
        """Drop every entry of `portal_path`: a newer version of it is stored, or it was
        deleted."""
        with self._guard:
            entries = self._by_path.pop(portal_path, [])
        for entry in entries:
            self.forget(entry)

    def set_aside(self, entry: Unsent, reason: str) -> Unsent:
        """The portal refused the entry for good: move it to refused/, never to be sent,
        with bytes of its own (not a spool the file may still change)."""
        self.own_bytes(entry)
        moved = replace(
            entry, data_path=self.refused_dir / entry.data_path.name, reason=reason[:500]
        )
        os.replace(entry.data_path, moved.data_path)
        _write_record(moved)
        _record_path(entry).unlink(missing_ok=True)
        self._unindex(entry)
        log.warning(
            "the portal refused %s for good (%s); its bytes are kept in %s and not sent again",
            entry.portal_path,
            reason,
            moved.data_path,
        )
        return moved

    def move_path(self, old: str, new: str) -> None:
        """The file at portal path `old` was renamed to `new`: its unsent versions go there."""
        with self._guard:
            entries = self._by_path.pop(old, [])
        for entry in entries:
            moved = replace(entry, portal_path=new)
            _write_record(moved, replace_existing=True)
            with self._guard:
                self._by_path.setdefault(new, []).append(moved)

    def _unindex(self, entry: Unsent) -> None:
        with self._guard:
            entries = self._by_path.get(entry.portal_path, [])
            if entry in entries:
                entries.remove(entry)
            if not entries:
                self._by_path.pop(entry.portal_path, None)


def _by_seq(entry: Unsent) -> int:
    return entry.seq


def _seq_of(path: Path) -> int:
    match = _NAME.fullmatch(path.name)
    return int(match.group(1)) if match else 0  # a stray name takes no number


def _record_path(entry: Unsent) -> Path:
    return entry.data_path.with_suffix(".json")


def _write_record(entry: Unsent, replace_existing: bool = False) -> None:
    """The entry's record: an xattr of its data file (one atomic call, no file created), or
    where xattrs are missing a JSON file."""
    if not _set_record_xattr(entry.data_path, entry):
        _write_record_file(entry, replace_existing)


def _set_record_xattr(target: Path, entry: Unsent) -> bool:
    """Put the entry's record on `target` as an xattr; False where the file system has no
    user xattrs (the record then goes into a JSON file). Raises any other OSError."""
    try:
        os.setxattr(target, RECORD_XATTR, _encode(entry))
        return True
    except OSError as exc:
        if exc.errno in _NO_XATTRS:
            return False
        raise


def _write_record_file(entry: Unsent, replace_existing: bool = False) -> None:
    """The record as a JSON file beside the data, written in one go. No temp file for a new
    one: a record torn by a crash is unreadable, and its data then shows as an orphan."""
    path = _record_path(entry)
    if replace_existing:
        tmp = path.with_suffix(".tmp")
        _write_private(tmp, _encode(entry))
        os.replace(tmp, path)
    else:
        _write_private(path, _encode(entry))


def _encode(entry: Unsent) -> bytes:
    doc = {"portal_path": entry.portal_path, "size": entry.size, "md5": entry.md5}
    if entry.reason:
        doc["reason"] = entry.reason
    return json.dumps(doc).encode()


def _write_private(path: Path, data: bytes) -> None:
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def contents(cache_dir: Path) -> tuple[list[Unsent], list[Unsent], list[Path]]:
    """(unsent, refused, orphans) of a cache folder, read without changing anything: safe
    while a mount uses it (`portalfs recover --list`)."""
    unsent, orphans, _ = _scan(cache_dir / "unsent")
    refused, refused_orphans, _ = _scan(cache_dir / "refused")
    return unsent, refused, orphans + refused_orphans


def _scan(directory: Path) -> tuple[list[Unsent], list[Path], list[Path]]:
    """(complete entries oldest first, data files without a readable record, junk: JSON
    records without their data and temp files of a copy or move cut short). Changes
    nothing."""
    data: dict[int, Path] = {}
    records: dict[int, Path] = {}
    junk: list[Path] = []
    strays: list[Path] = []
    for path in directory.iterdir() if directory.is_dir() else ():
        match = _NAME.fullmatch(path.name)
        if match:
            (data if match.group(2) == "data" else records)[int(match.group(1))] = path
        elif path.suffix in (".copy", ".tmp"):
            junk.append(path)
        elif path.suffix == ".data":
            strays.append(path)  # bytes under a name we did not give: never ignored
    junk += [path for seq, path in records.items() if seq not in data]
    entries, orphans = [], []
    for seq, data_path in sorted(data.items()):
        entry = _read_record(seq, data_path, records.get(seq))
        (entries if entry else orphans).append(entry or data_path)
    return entries, orphans + sorted(strays), junk


def _read_record(seq: int, data_path: Path, record_path: Path | None) -> Unsent | None:
    try:
        encoded = os.getxattr(data_path, RECORD_XATTR)
    except OSError:
        if record_path is None:
            return None
        try:
            encoded = record_path.read_bytes()
        except OSError:
            return None
    try:
        doc = json.loads(encoded)
        return Unsent(
            seq, data_path, doc["portal_path"], doc["size"], doc["md5"], doc.get("reason", "")
        )
    except (ValueError, KeyError, TypeError):
        return None


def _migrate_legacy(directory: Path) -> None:
    """Entries of versions before the sequence ("<time_ns>-<random>"): numbered after any
    entry of this version, in the order those versions sent them (by name)."""
    legacy = sorted(p for p in directory.glob("*-*.json") if _LEGACY_NAME.fullmatch(p.name))
    if not legacy:
        return
    known = [int(m.group(1)) for p in directory.iterdir() if (m := _NAME.fullmatch(p.name))]
    for seq, record_path in enumerate(legacy, start=max(known, default=0) + 1):
        data_path = record_path.with_suffix(".data")
        if data_path.exists():
            os.replace(data_path, directory / f"{seq:016d}.data")
            os.replace(record_path, directory / f"{seq:016d}.json")
        else:
            record_path.unlink()


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_private(source: Path, target: Path) -> None:
    try:
        copy_private(source, target)
    except BaseException:
        target.unlink(missing_ok=True)  # never a partial copy that looks whole
        raise
