"""Batch uploads and downloads for the CLI: walks local folders and portal folders, runs
transfers concurrently and reports each file's outcome.

Prints nothing (the CLI does); holds no state between calls.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .client import errors
from .client.models import PortalFile
from .client.names import check_portal_path, check_segment, folder_prefix
from .client.portal import PortalClient
from .client.storage import StorageClient
from .hashing import file_md5
from .write.upload import Uploader, UploadRequest


@dataclass(frozen=True)
class Result:
    """What happened to one file: "uploaded", "skipped", "downloaded" or "failed"."""

    portal_path: str
    outcome: str
    size: int = 0
    error: errors.PortalError | OSError | None = None


@dataclass(frozen=True)
class _Planned:
    source: Path
    portal_path: str


def plan_upload(sources: list[str], to: str) -> Iterator[_Planned | Result]:
    """Each regular file under `sources` with its portal path under the folder `to`.

    A folder keeps its own name in the portal, as with `cp -r folder dest/`.
    """
    prefix = folder_prefix(to)
    for raw in sources:
        source = Path(raw)
        if source.is_dir():
            base = source.resolve().name
            for root, dirs, files in os.walk(source):
                dirs.sort()
                rel = Path(root).relative_to(source)
                for name in sorted(files):
                    yield _planned(Path(root) / name, prefix + (Path(base) / rel / name).as_posix())
        elif source.exists():
            yield _planned(source, prefix + source.name)
        else:
            yield Result(
                prefix + source.name, "failed", error=FileNotFoundError(2, "no such file", raw)
            )


def _planned(source: Path, portal_path: str) -> _Planned | Result:
    portal_path = portal_path.replace("/./", "/")
    try:
        return _Planned(source, check_portal_path(portal_path))
    except errors.InvalidNameError as exc:
        return Result(portal_path, "failed", error=exc)


class BatchUploader:
    """Uploads many files with a pool of workers, skipping those already stored."""

    def __init__(self, portal: PortalClient, uploader: Uploader, workers: int) -> None:
        self.portal = portal
        self.uploader = uploader
        self.workers = workers

    def run(self, sources: list[str], to: str, report: Callable[[Result], None]) -> None:
        planned = []
        for item in plan_upload(sources, to):
            if isinstance(item, Result):
                report(item)
            else:
                planned.append(item)
        etags = self._stored_etags({p.portal_path.rpartition("/")[0] for p in planned})
        with ThreadPoolExecutor(self.workers, thread_name_prefix="upload") as pool:
            for result in pool.map(lambda p: self._one(p, etags.get(p.portal_path)), planned):
                report(result)

    def _stored_etags(self, folders: set[str]) -> dict[str, str]:
        # One listing per destination folder lets unchanged files skip without any request.
        etags: dict[str, str] = {}
        for folder in sorted(folders):
            try:
                for entry in self.portal.iter_folder(folder):
                    if not entry.is_folder and entry.etag:
                        etags[folder_prefix(folder) + entry.name] = entry.etag
            except errors.NotFoundError:
                continue
        return etags

    def _one(self, item: _Planned, known_etag: str | None) -> Result:
        try:
            size = item.source.stat().st_size
            request = UploadRequest(
                item.source, item.portal_path, size, file_md5(item.source), known_etag
            )
            outcome = self.uploader.upload(request)
            return Result(item.portal_path, outcome.value, size)
        except (errors.PortalError, OSError) as exc:
            return Result(item.portal_path, "failed", error=exc)


class BatchDownloader:
    """Downloads files and whole folders, verifying each against the stored size and MD5."""

    def __init__(self, portal: PortalClient, storage: StorageClient, workers: int) -> None:
        self.portal = portal
        self.storage = storage
        self.workers = workers
        # Read once here: os.umask() can only be read by setting it, which races with threads.
        self.file_mode = 0o666 & ~_umask()

    def run(self, paths: list[str], dest: str, report: Callable[[Result], None]) -> None:
        jobs: list[_Job] = []
        dest_path = Path(dest)
        single_target = len(paths) == 1 and not dest_path.is_dir()
        for raw in paths:
            try:
                for job in self._expand(raw.strip("/"), dest_path, single_target):
                    if isinstance(job, Result):
                        report(job)
                    else:
                        jobs.append(job)
            except errors.PortalError as exc:
                report(Result(raw, "failed", error=exc))
        with ThreadPoolExecutor(self.workers, thread_name_prefix="download") as pool:
            for result in pool.map(self._one, jobs):
                report(result)

    def _expand(self, portal_path: str, dest: Path, single_target: bool) -> Iterator[_Job | Result]:
        entry = self._lookup(portal_path)
        if not entry.is_folder:
            if single_target:  # the user named the file: dest is theirs to choose
                yield _Job(portal_path, dest.parent, dest.name)
            else:
                yield _Job(portal_path, dest, local_name(entry.name))
            return
        # Everything of a folder lands inside `root`, which the user named.
        root = dest if single_target else dest / local_name(entry.name)
        for item in self._walk(portal_path):
            if isinstance(item, Result):
                yield item
            else:
                yield _Job(item, root, item[len(portal_path) + 1 :])

    def _lookup(self, portal_path: str) -> PortalFile:
        check_portal_path(portal_path)
        parent, _, name = portal_path.rpartition("/")
        for entry in self.portal.iter_folder(parent):
            if entry.name.rstrip("/") == name:
                return entry
        raise errors.NotFoundError(f"{portal_path}: no such file or folder in the portal")

    def _walk(self, folder: str) -> Iterator[str | Result]:
        """Every file below `folder`; a name from the server that is not one plain path
        component ("/etc/x", "..", "a/../../b") is a failed Result, never a path."""
        for entry in self.portal.iter_folder(folder):
            try:
                child = f"{folder}/{local_name(entry.name)}"
            except errors.ProtocolError as exc:
                yield Result(f"{folder}/{entry.name}", "failed", error=exc)
                continue
            if entry.is_folder:
                yield from self._walk(child)
            else:
                yield child

    def _one(self, job: _Job) -> Result:
        try:
            target = job.target()  # checked before anything touches the disk
            target.parent.mkdir(parents=True, exist_ok=True)
            size = self._fetch(job.portal_path, target)
            return Result(job.portal_path, "downloaded", size)
        except (errors.PortalError, OSError) as exc:
            return Result(job.portal_path, "failed", error=exc)

    def _fetch(self, portal_path: str, target: Path) -> int:
        url = self.portal.download_link(portal_path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                renew = functools.partial(self.portal.download_link, portal_path)
                self.storage.download_to(url, out, renew=renew)
                size = out.tell()
            os.chmod(tmp, self.file_mode)  # mkstemp made it 0600
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
        return size


@dataclass(frozen=True)
class _Job:
    """One file to download: to `root / relative`, which must stay inside `root`."""

    portal_path: str
    root: Path
    relative: str

    def target(self) -> Path:
        root = self.root.resolve()
        name = Path(self.relative).name
        # The folder resolved, so that neither "..", an absolute name nor a symlink already
        # in the destination leads outside it; the last component is replaced, not followed.
        parent = (root / self.relative).parent.resolve()
        if (
            self.relative.startswith("/")
            or name in ("", ".", "..")
            or not parent.is_relative_to(root)
        ):
            raise errors.ProtocolError(
                f"{self.portal_path}: refused, the name would be written outside {root}"
            )
        return parent / name


def local_name(name: str) -> str:
    """A name the server listed, as one safe local path component; else ProtocolError."""
    bare = name.rstrip("/")  # folders are listed with a trailing slash
    try:
        if "/" in bare:
            raise errors.InvalidNameError("a listed name may not contain '/'")
        return check_segment(bare)
    except errors.InvalidNameError as exc:
        raise errors.ProtocolError(f"the server listed an unsafe name {bare!r}: {exc}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
