"""Every failure the API can answer with, on every operation, reaches the application as the
errno docs/RELIABILITY.md promises; 503 and 429 never look like a missing file."""

from __future__ import annotations

import errno
import os

import pytest

from portalfs.client import errors
from portalfs.fuse.errno_map import ERRNO_BY_CLASS, errno_for

STATUS_ERRNO = {
    400: errno.EIO,
    401: errno.EACCES,
    403: errno.EACCES,
    404: errno.ENOENT,
    409: errno.ESTALE,
    413: errno.EFBIG,
    429: errno.EIO,
    500: errno.EIO,
    502: errno.EIO,
    503: errno.EIO,
}


def _write(fs, path="/f.txt"):
    fh = fs.create(path)
    try:
        fs.write(fh, 0, b"data")
        fs.flush(fh)
    finally:
        fs.release(fh)


def _read(fs, path="/seed.txt"):
    fh = fs.open(path, os.O_RDONLY)
    try:
        return fs.read(fh, 0, 100)
    finally:
        fs.release(fh)


OPERATIONS = {
    "list_files": lambda fs: fs.readdir("/"),
    "upload_link": _write,
    "storage_put": _write,
    "download_link": _read,
    "storage_get": _read,
    "delete_file": lambda fs: fs.unlink("/seed.txt"),
    "rename_file": lambda fs: fs.rename("/seed.txt", "/other.txt"),
}


@pytest.mark.parametrize("status", sorted(STATUS_ERRNO))
@pytest.mark.parametrize("route", sorted(OPERATIONS))
def test_status_on_route_maps_to_its_errno(make_fs, portal, route, status):
    setup = make_fs(metadata_ttl_s=0)
    _write(setup, "/seed.txt")
    fs = make_fs(metadata_ttl_s=0, allow_delete=True)
    if route != "list_files":
        fs.getattr("/seed.txt")  # listings warm where the operation is not the listing
    # (A folder listed before keeps its last listing while the server fails with 429/503:
    # tests/fs test_with_the_server_down_the_last_listings_still_answer.)
    portal.server.app.state.faults.fail_next(route, status, times=20)
    with pytest.raises((errors.PortalError, OSError)) as info:
        OPERATIONS[route](fs)
    assert errno_for(info.value) == STATUS_ERRNO[status], info.value
    if status in (429, 503):
        assert errno_for(info.value) != errno.ENOENT


def test_every_error_class_has_an_errno():
    classes = set()
    pending = [errors.PortalError]
    while pending:
        cls = pending.pop()
        classes.add(cls)
        pending.extend(cls.__subclasses__())
    for cls in classes:
        assert any(base in ERRNO_BY_CLASS for base in cls.__mro__), cls
        assert (
            errno_for(cls("x")) != errno.EINVAL
            or cls is errors.InvalidNameError
            or issubclass(cls, errors.InvalidNameError)
        )


def test_unknown_exceptions_are_eio_not_einval():
    assert errno_for(RuntimeError("boom")) == errno.EIO
    assert errno_for(OSError("no errno")) == errno.EIO
