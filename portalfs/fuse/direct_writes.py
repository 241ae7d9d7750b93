"""mfusepy's FUSE class (with READDIRPLUS) whose write-only opens bypass the kernel's page
cache. Only sets a flag on the open file; holds no file-system logic.
"""

from __future__ import annotations

import os
from typing import Any

from .readdirplus import PlusFUSE


class PortalFUSE(PlusFUSE):
    """PlusFUSE that opens write-only descriptors with direct_io.

    What is written through them goes to the spool and then the portal, and nothing can
    read through them: kept in the page cache as well, a 1 GiB copy held 1 GiB of memory
    twice (the page cache's and the spool's), which slowed a store sharing the machine
    (docs/PERFORMANCE.md). Descriptors opened for reading, or reading and writing, keep the
    page cache, and with it mmap.
    """

    def open(self, path: bytes, fip: Any) -> int:
        result = super().open(path, fip)
        _direct_if_write_only(fip.contents)
        return result

    def create(self, path: bytes, mode: int, fip: Any) -> int:
        result = super().create(path, mode, fip)
        _direct_if_write_only(fip.contents)
        return result


def _direct_if_write_only(fi: Any) -> None:
    if fi.flags & os.O_ACCMODE == os.O_WRONLY:
        fi.direct_io = 1
