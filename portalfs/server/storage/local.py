"""Objects as files under DATA/objects/<key>; md5s in the xattr `user.portalfs.md5` (see
md5s.py: files placed by other means are hashed in the background, never by a request),
temp files in DATA/tmp (outside listings). Serves regular files only, never via symlinks."""

from __future__ import annotations

import bisect
import logging
import os
import stat as stat_mod
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from ..auth.signing import Signer
from .base import Conflict, Entry, InvalidKey, NotFound, ObjectStat, unwrap_token, wrap_token
from .folders import FolderNames
from .md5s import MD5_XATTR, Hasher, Md5Cache, xattr_value

log = logging.getLogger(__name__)

__all__ = ["CHUNK_BYTES", "MD5_XATTR", "LocalStorage"]

CHUNK_BYTES = 1024 * 1024
# A concurrent delete may prune the folder between mkdir and rename: try again this often.
_COMMIT_ATTEMPTS = 3
# Linux's NAME_MAX: a longer name (or a NUL) makes every os call fail, not just this key's.
_NAME_MAX_BYTES = 255


class LocalStorage:
    """Storage in a local folder. Thread-safe: every change is one atomic rename/unlink."""

    provider = "other"
    bucket_name = "local"

    def __init__(self, data_dir: Path, signer: Signer) -> None:
        # Absolute, so that path_for's containment check compares like with like.
        self.root = (data_dir / "objects").resolve()
        self.tmp_dir = (data_dir / "tmp").resolve()
        self._signer = signer
        self._md5 = Md5Cache()
        self.hasher = Hasher(self._md5)
        self.folders = FolderNames()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _remove_leftovers(self.tmp_dir)

    # ------------------------------------------------------------ interface

    def list_page(
        self, prefix: str, token: str | None, page_size: int, only_folders: bool
    ) -> tuple[list[Entry], str | None]:
        folder = self._folder(prefix)
        names = self.folders.names(folder)
        start = 0
        if token is not None:
            start = bisect.bisect_right(names, unwrap_token(prefix, token))
        page, more = _page(names, start, page_size, only_folders)
        next_token = wrap_token(prefix, page[-1]) if more else None
        # Names straight from the checked folder's scandir: no per-entry path_for, whose
        # realpath was over half the CPU of a listing.
        entries = [self._entry_in(folder, prefix, name) for name in page]
        return [e for e in entries if e is not None], next_token

    def stat(self, key: str) -> ObjectStat | None:
        path = self.path_for(key)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self._object_stat(path, st) if stat_mod.S_ISREG(st.st_mode) else None

    def upload_url(self, key: str, size: int, md5: str) -> str:
        return self._signer.url("PUT", key, size=size, md5=md5)

    def download_url(self, key: str) -> str:
        return self._signer.url("GET", key)

    def delete(self, key: str) -> None:
        path = self._existing_file(key)
        path.unlink()
        self._prune(path.parent)

    def rename(self, old: str, new: str) -> None:
        source = self._existing_file(old)
        self._place(source, self.path_for(new))
        self._prune(source.parent)

    # ------------------------------------------------------ used by blobs.py

    def new_temp(self) -> tuple[Path, BinaryIO]:
        """A fresh temp file (outside the visible tree) open for writing."""
        fd, name = tempfile.mkstemp(dir=self.tmp_dir, prefix="put-")
        return Path(name), os.fdopen(fd, "wb")

    def commit(self, temp: Path, key: str, md5: str) -> None:
        """Atomically makes the complete temp file the object at `key`; raises Conflict."""
        st = os.stat(temp)
        try:
            os.setxattr(temp, MD5_XATTR, xattr_value(md5, st).encode())
        except OSError:
            log.debug("xattrs unsupported in %s; md5 kept in memory", self.tmp_dir)
        dest = self.path_for(key)
        self._place(temp, dest)
        self._md5.put(dest, os.stat(dest), md5)

    def open_read(self, key: str) -> tuple[BinaryIO, ObjectStat]:
        """The open file at `key` and its stat; raises NotFound."""
        path = self.path_for(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise NotFound(key) from exc
        f = os.fdopen(fd, "rb")
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            f.close()
            raise NotFound(key)
        return f, self._object_stat(path, st)

    def path_for(self, key: str) -> Path:
        """The file of `key`; refuses anything that would land outside the objects root,
        by ".." or through a symlinked folder someone put into the tree, and any name the
        file system cannot hold."""
        if "\0" in key or any(len(s.encode()) > _NAME_MAX_BYTES for s in key.split("/")):
            raise InvalidKey("storage key is not a name this file system can hold")
        path = Path(os.path.normpath(self.root / key))
        if path == self.root or not _within(path, self.root):
            raise InvalidKey("storage key escapes the objects folder")
        self._refuse_escape(path.parent)
        return path

    # ------------------------------------------------------------- helpers

    def _folder(self, prefix: str) -> Path:
        """The folder a listing of `prefix` ("" for the root, or "a/b/") reads: like
        path_for, but the folder itself may not be a symlink leading out of the root."""
        if not prefix:
            return self.root
        folder = self.path_for(prefix)
        self._refuse_escape(folder)
        return folder

    def _refuse_escape(self, folder: Path) -> None:
        """Raise InvalidKey if a symlinked folder on the way down to `folder` leads out of
        the root; symlinks that stay inside are allowed."""
        if _symlink_below(self.root, folder) and not _within(
            Path(os.path.realpath(folder)), self.root
        ):
            raise InvalidKey("storage key escapes the objects folder")

    def _entry_in(self, folder: Path, prefix: str, name: str) -> Entry | None:
        if name.endswith("/"):
            return Entry(prefix + name, None)
        path = folder / name
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None  # deleted since the folder was read
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        return Entry(prefix + name, self._object_stat(path, st))

    def _object_stat(self, path: Path, st: os.stat_result) -> ObjectStat:
        mtime = datetime.fromtimestamp(st.st_mtime, UTC)
        md5 = self._md5.get(path, st)
        if md5 is None:
            # Listed without an ETag (the API makes it optional) until the hasher has it:
            # hashing here would read every such file on the request path.
            self.hasher.request(path, st)
        return ObjectStat(st.st_size, md5, mtime)

    def _existing_file(self, key: str) -> Path:
        path = self.path_for(key)
        try:
            is_file = stat_mod.S_ISREG(os.lstat(path).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            is_file = False
        if not is_file:
            raise NotFound(key)
        return path

    def _place(self, source: Path, dest: Path) -> None:
        for _ in range(_COMMIT_ATTEMPTS):
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, dest)
                return
            except FileNotFoundError:
                continue  # a concurrent delete pruned dest.parent; make it again
            except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
                raise Conflict(f"a file and a folder would share the name {dest.name!r}") from exc
        raise Conflict(f"{dest.name!r}: its folder kept disappearing")

    def _prune(self, folder: Path) -> None:
        # S3 has no empty folders: remove the ones a delete or rename leaves behind.
        while folder != self.root and _within(folder, self.root):
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (or already gone): stop
            folder = folder.parent


def _page(names: list[str], start: int, size: int, only_folders: bool) -> tuple[list[str], bool]:
    """Up to `size` names from `start` on (folders only, if asked), and whether more follow.
    Walks only as far as the page needs, not the rest of the folder."""
    page: list[str] = []
    for index in range(start, len(names)):
        if only_folders and not names[index].endswith("/"):
            continue
        if len(page) == size:
            return page, True
        page.append(names[index])
    return page, False


def _within(path: Path, root: Path) -> bool:
    # Both are absolute and normalised, so a string prefix is exact (and pathlib's
    # `root in path.parents` cost more than the rest of path_for).
    p, r = os.fspath(path), os.fspath(root)
    return p == r or p.startswith(r + os.sep)


def _symlink_below(root: Path, folder: Path) -> bool:
    """Whether a folder on the way from `root` (resolved) down to `folder` is a symlink.
    One lstat per level below the root: a full realpath of every key's folder, which also
    walks the levels above the root, was a third of the server's CPU per upload."""
    current = os.fspath(root)
    below = os.fspath(folder)[len(current) + 1 :]
    for part in below.split(os.sep) if below else ():
        current = os.path.join(current, part)
        try:
            mode = os.lstat(current).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return False  # nothing exists from here down, so no symlink either
        if stat_mod.S_ISLNK(mode):
            return True
    return False


def _remove_leftovers(tmp_dir: Path) -> None:
    # Temp files of a server that died mid-upload; one server owns a data folder.
    for leftover in tmp_dir.glob("put-*"):
        leftover.unlink(missing_ok=True)
        log.info("removed unfinished upload %s", leftover.name)
