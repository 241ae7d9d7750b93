"""Turns API listing entries into mount entries, skipping names no file system can show.

Pure functions; no I/O.
"""

from __future__ import annotations

import logging

from ..cache.metadata import Entry
from ..client import errors
from ..client.models import PortalFile
from ..client.names import check_segment

log = logging.getLogger(__name__)


def entry_of(file: PortalFile) -> Entry | None:
    """The mount entry for a listed file or folder; None (and a warning) for a hostile name."""
    name = file.name.removesuffix("/") if file.is_folder else file.name
    try:
        if "/" in name or "\0" in name:
            raise errors.InvalidNameError("a name may not contain '/' or NUL")
        check_segment(name)
        name.encode("utf-8")
    except (errors.InvalidNameError, UnicodeEncodeError) as exc:
        log.warning("skipping a listed entry with an unusable name %r: %s", name[:80], exc)
        return None
    if file.is_folder:
        return Entry(name, True)
    mtime_ns = int(file.added.timestamp() * 1e9) if file.added else 0
    return Entry(name, False, file.size or 0, mtime_ns, file.etag)


def entries_of(files: list[PortalFile]) -> list[Entry]:
    """Entries for one folder's listing; the first of two entries with one name wins."""
    seen: dict[str, Entry] = {}
    for file in files:
        entry = entry_of(file)
        if entry is not None and entry.name not in seen:
            seen[entry.name] = entry
    return list(seen.values())
