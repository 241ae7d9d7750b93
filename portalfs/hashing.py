"""MD5 of local files, the hash the portal API identifies content by; reads, never writes."""

from __future__ import annotations

import hashlib
import os

CHUNK_BYTES = 1024 * 1024


def file_md5(path: str | os.PathLike[str]) -> str:
    """MD5 hex digest of a file's content, read in 1 MiB chunks (memory stays flat)."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
