"""Files and folders only their owner may use: folders 0700, files 0600, whatever the umask.

Creates, writes and copies; decides nothing about what goes in them or where they live.
"""

from __future__ import annotations

import logging.handlers
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

FILE_MODE, DIR_MODE = 0o600, 0o700
_COPY_CHUNK_BYTES = 1024 * 1024


def private_dir(path: Path) -> Path:
    """Create `path` (0700; missing parents as the umask says) if needed, and make `path`
    itself 0700 even if it was there before. Returns `path`."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    path.chmod(DIR_MODE)
    return path


def open_private(path: str | os.PathLike[str], flags: int) -> int:
    """os.open() that creates a 0600 file, and makes an existing one 0600 too (a log from
    an older version may be 0644). Returns the descriptor."""
    fd = os.open(path, flags, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data` at once (temp file in the same folder, then rename): a
    reader sees the old content or the new, never half, and never a wider mode."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp: 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def copy_private(source: Path, target: Path) -> None:
    """Copy `source` into `target` (0600), replacing what `target` held."""
    fd = open_private(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "wb") as dst, open(source, "rb") as src:
        shutil.copyfileobj(src, dst, _COPY_CHUNK_BYTES)


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files, the current one and each rotated one, are 0600."""

    def _open(self) -> IO[Any]:
        return open(
            self.baseFilename,
            self.mode,
            encoding=self.encoding,
            errors=self.errors,
            opener=open_private,
        )
