"""Uploader: puts one local file into the portal, skipping it when the same MD5 is stored.

Knows nothing of folders, FUSE or the command line; the caller supplies size and MD5.
"""

from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass

from ..client import errors
from ..client.models import md5_from_etag
from ..client.portal import PortalClient
from ..client.storage import StorageClient
from ..config import MAX_SINGLE_PUT_BYTES

log = logging.getLogger(__name__)

# A signed URL that expires between being issued and being used is fetched again this often.
_LINK_ATTEMPTS = 3


def refused_for_good(exc: BaseException) -> bool:
    """Whether an upload failed in a way no retry can change: the portal's API refused the
    upload link itself (too large, a name or placement it cannot store) rather than failed
    to answer. Not wrong credentials (a new token or login can still send the file), and not
    a storage's 4xx to the PUT: S3 says 400 for a request that timed out or a link whose
    temporary credentials expired, and the next try asks for a new link anyway."""
    refused = isinstance(exc, errors.RejectedError | errors.ConflictError)
    return refused and not getattr(exc, "storage", False)


class Outcome(enum.Enum):
    UPLOADED = "uploaded"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class UploadRequest:
    """One file to upload: where it is, where it goes, and what it is."""

    source: str | os.PathLike[str]
    portal_path: str
    size: int
    md5: str
    # The ETag the caller already knows for portal_path (from a listing), if any.
    known_etag: str | None = None


class Uploader:
    """Upload link + PUT, with dedup by MD5. Thread-safe."""

    def __init__(self, portal: PortalClient, storage: StorageClient) -> None:
        self.portal = portal
        self.storage = storage

    def upload(self, req: UploadRequest) -> Outcome:
        """Store `req.source` under `req.portal_path` unless the same bytes are already there."""
        if req.size > MAX_SINGLE_PUT_BYTES:
            raise errors.TooLargeError(
                f"{req.portal_path}: {req.size} bytes is over the {MAX_SINGLE_PUT_BYTES}-byte limit"
            )
        if md5_from_etag(req.known_etag) == req.md5:
            return Outcome.SKIPPED
        attempt = 1
        while True:
            link = self.portal.upload_link(req.portal_path, req.size, req.md5)
            if md5_from_etag(link.existing_etag) == req.md5:
                return Outcome.SKIPPED
            try:
                self.storage.put_file(link.url, req.source, req.size)
                return Outcome.UPLOADED
            except errors.LinkExpiredError:
                if attempt >= _LINK_ATTEMPTS:
                    raise
                attempt += 1
                log.info("upload link for %s was refused; asking for a new one", req.portal_path)
