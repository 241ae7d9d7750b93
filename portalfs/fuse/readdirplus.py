"""mfusepy's FUSE class, answering READDIRPLUS with each entry's attributes so that
`ls -l` and `find -size` get them with the listing instead of one LOOKUP per entry.

Only changes how readdir results reach libfuse 3; holds no file-system logic.
"""

from __future__ import annotations

import errno
import threading
from typing import Any

import mfusepy

from .. import paths

# libfuse 3: readdir's flags carry FUSE_READDIR_PLUS when the kernel asked for READDIRPLUS,
# and the filler takes FUSE_FILL_DIR_PLUS when its stat is complete.
_FUSE_READDIR_PLUS = 1
_FUSE_FILL_DIR_PLUS = 2


class PlusFUSE(mfusepy.FUSE):
    """mfusepy.FUSE whose readdir hands libfuse full attributes, page by page.

    mfusepy fills directories with offset 0, and in that mode libfuse 3.14 sends the
    kernel every READDIRPLUS entry with inode 0, so the kernel ignores the attributes and
    looks up each name again: 1012 LOOKUPs for `ls -lR` of 1000 files. With offsets and
    FUSE_FILL_DIR_PLUS, libfuse registers each entry and the kernel keeps its attributes
    for attr_timeout, as it does for a LOOKUP's answer.

    Offsets mean libfuse asks again for each kernel page (about 26 entries), so the
    listing of an open directory is kept from its first page to releasedir. libfuse 3.14
    also counts a lookup for the entry that did not fit in a full page; that node then
    outlives the kernel's last reference, so its memory grows with the names ever listed
    (about 100 bytes each), not with the number of listings.
    """

    def __init__(self, operations: Any, mountpoint: str, **kwargs: Any) -> None:
        # operations.opendir must give each open directory a handle of its own.
        self._lock = threading.Lock()
        self._listings: dict[int, list] = {}
        super().__init__(operations, mountpoint, **kwargs)

    def releasedir(self, path: bytes | None, fip: Any) -> int:
        with self._lock:
            self._listings.pop(fip.contents.fh, None)
        return super().releasedir(path, fip)

    def readdir_fuse_3(self, path: bytes, buf: Any, filler: Any, offset: int, fip: Any, flags: int):
        if path is None:  # the folder went away while open
            return -errno.ENOENT
        folder = path.decode(self.encoding, self.errors)
        fh = fip.contents.fh
        with self._lock:
            entries = self._listings.get(fh) if offset else None
        fresh = entries is None
        if fresh:
            # Offset 0 is the first page, or a rewinddir(): list afresh.
            entries = list(self.operations.readdir(folder, fh))
            with self._lock:
                self._listings[fh] = entries
        plus = bool(flags & _FUSE_READDIR_PLUS)
        for position in range(offset, len(entries)):
            item = entries[position]
            st = mfusepy.c_stat()
            fill_flags = 0
            if isinstance(item, str):
                name = item
            else:
                name, attrs, _ = item
                if plus and not fresh:
                    # The kernel applies these attributes: take them now, not from the
                    # first page's listing, or a file written since would shrink back.
                    try:
                        attrs = self.operations.getattr(paths.join(folder, name))
                    except mfusepy.FuseOSError:
                        continue  # gone since the first page
                mfusepy.set_st_attrs(st, attrs, self.use_ns)
                fill_flags = _FUSE_FILL_DIR_PLUS if plus else 0
            # The offset given is where the next call resumes; nonzero, so libfuse passes
            # our attributes on instead of keeping the listing itself.
            encoded = name.encode(self.encoding, self.errors)
            if filler(buf, encoded, st, position + 1, fill_flags) != 0:
                break  # the kernel's buffer is full; it asks again from here
        return 0
