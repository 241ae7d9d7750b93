"""Private files and folders (0600/0700) whatever the umask, and a mount log that rotates."""

from __future__ import annotations

import logging
import logging.handlers
import os
import stat

import pytest

from portalfs.cli_mount import _log_to_file
from portalfs.private import (
    PrivateRotatingFileHandler,
    copy_private,
    open_private,
    private_dir,
    write_private,
)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0)  # the widest umask: nothing private may come from it
    yield
    os.umask(old)


def test_folders_and_files_are_private_whatever_the_umask(tmp_path, open_umask):
    folder = private_dir(tmp_path / "a")
    assert mode(folder) == 0o700
    (tmp_path / "wide").mkdir(mode=0o777)
    assert mode(private_dir(tmp_path / "wide")) == 0o700
    write_private(folder / "f", b"secret")
    assert (folder / "f").read_bytes() == b"secret" and mode(folder / "f") == 0o600
    assert [p.name for p in folder.iterdir()] == ["f"]  # no temp file left
    copy_private(folder / "f", folder / "g")
    assert (folder / "g").read_bytes() == b"secret" and mode(folder / "g") == 0o600
    old = tmp_path / "old.log"
    old.write_text("from before\n")
    old.chmod(0o644)
    os.close(open_private(old, os.O_WRONLY | os.O_APPEND))
    assert mode(old) == 0o600


def test_the_log_handler_rotates_and_keeps_every_file_private(tmp_path, open_umask):
    path = tmp_path / "mount.log"
    handler = PrivateRotatingFileHandler(path, maxBytes=200, backupCount=2)
    record = logging.LogRecord("t", logging.INFO, "", 0, "x" * 100, None, None)
    for _ in range(10):
        handler.emit(record)
    handler.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["mount.log", "mount.log.1", "mount.log.2"]
    assert all(mode(tmp_path / n) == 0o600 for n in names)


def test_the_mount_log_is_created_0600_and_rotates(tmp_path, open_umask):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        _log_to_file(tmp_path / "cache" / "mount.log", 0)
        [handler] = root.handlers
        assert isinstance(handler, logging.handlers.RotatingFileHandler)
        assert handler.maxBytes > 0 and handler.backupCount > 0
        logging.getLogger("portalfs.test").warning("hello")
        handler.flush()
        assert mode(tmp_path / "cache" / "mount.log") == 0o600
        assert mode(tmp_path / "cache") == 0o700
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], level = saved
        root.setLevel(level)
