"""Which opens bypass the kernel's page cache (direct_io): write-only ones only."""

import os

import pytest

from portalfs.fuse.direct_writes import _direct_if_write_only


@pytest.mark.parametrize(
    ("flags", "direct"),
    [
        (os.O_WRONLY, 1),
        (os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 1),
        (os.O_WRONLY | os.O_APPEND, 1),
        (os.O_RDONLY, 0),
        (os.O_RDWR, 0),
        (os.O_RDWR | os.O_CREAT, 0),
    ],
)
def test_only_write_only_opens_skip_the_page_cache(flags, direct):
    from mfusepy import fuse_file_info  # once portalfs.fuse has made it load libfuse 3

    fi = fuse_file_info()
    fi.flags = flags
    _direct_if_write_only(fi)
    assert fi.direct_io == direct
