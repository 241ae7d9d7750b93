"""MD5 of local files, the hash the portal API identifies content by; reads, never writes."""

from __future__ import annotations

import hashlib
import os


def file_md5(path: str | os.PathLike[str]) -> str:
    """MD5 hex digest of a file's content, read in chunks (memory stays flat)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()
