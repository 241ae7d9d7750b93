"""The FUSE edge: a thin mfusepy adapter over PortalFS; the only package importing mfusepy."""

import os

# mfusepy picks libfuse 2 first when both are installed, and libfuse 2 without big_writes
# hands us 4 KiB writes; libfuse 3 gives 1 MiB. Must be set before mfusepy is imported.
os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
