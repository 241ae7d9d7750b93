"""StorageClient: PUT and GET on pre-signed storage URLs (S3, GCS, the portal's own store).

Sends no credentials of ours: the URL carries its own. Never logs or raises the URL's query.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from . import errors
from .models import md5_from_etag
from .transport import Transport


class FileBody:
    """A file range as a request body: iterable in big chunks, with a length.

    requests sends a sized iterable with Content-Length (not chunked), and urllib3 writes each
    chunk as is; a plain file object would be sent in 16 KiB reads.
    """

    def __init__(self, path: str | os.PathLike[str], size: int, chunk_bytes: int) -> None:
        self.path = path
        self.size = size
        self.chunk_bytes = chunk_bytes

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        remaining = self.size
        with open(self.path, "rb") as f:
            while remaining > 0:
                chunk = f.read(min(self.chunk_bytes, remaining))
                if not chunk:
                    raise errors.IntegrityError("the file shrank while it was being uploaded")
                remaining -= len(chunk)
                yield chunk


@dataclass(frozen=True)
class RangeRead:
    """Bytes from a ranged GET and the object's ETag at the time they were read."""

    data: bytes
    etag: str | None
    total_size: int | None


class StorageClient:
    """Transfers bytes on pre-signed URLs. Thread-safe."""

    def __init__(self, transport: Transport, chunk_bytes: int = 1024 * 1024) -> None:
        self.transport = transport
        self.chunk_bytes = chunk_bytes

    def put_file(self, url: str, path: str | os.PathLike[str], size: int) -> None:
        """Upload `size` bytes of the file at `path`; returns once the store said 200."""
        # An empty iterable would go out chunked, which S3 refuses (411): send b"" instead.
        body = FileBody(path, size, self.chunk_bytes) if size else b""
        resp = self.transport.request("PUT", url, what="upload", body=lambda: body, storage=True)
        resp.close()

    def get_range(self, url: str, start: int, length: int, etag: str | None = None) -> RangeRead:
        """`length` bytes from `start` (fewer at the end of the object).

        With `etag`, a changed object raises ConflictError instead of returning new bytes.
        """
        headers = {"Range": f"bytes={start}-{start + length - 1}"}
        if etag:
            headers["If-Match"] = etag
        resp = self.transport.request(
            "GET", url, what="read", headers=headers, storage=True, ok=(200, 206, 416)
        )
        if resp.status_code == 416:
            resp.close()
            return RangeRead(b"", resp.headers.get("ETag"), _total_size(resp))
        data = b"".join(self.transport.iter_body(resp, "read", self.chunk_bytes))
        if resp.status_code == 200:
            # The store ignored Range and sent the whole object: cut out what was asked for.
            data = data[start : start + length]
        got_etag = resp.headers.get("ETag")
        if etag and got_etag and md5_from_etag(got_etag) != md5_from_etag(etag):
            raise errors.ConflictError("read: the file changed on the server during the read")
        return RangeRead(data, got_etag, _total_size(resp))

    def download_to(
        self, url: str, out: BinaryIO, progress: Callable[[int], None] | None = None
    ) -> str:
        """Stream the whole object into `out`; check size and MD5 against the store's headers.

        Returns the MD5 hex of the bytes written.
        """
        resp = self.transport.request("GET", url, what="download", stream=True, storage=True)
        expected_size = resp.headers.get("Content-Length")
        expected_md5 = md5_from_etag(resp.headers.get("ETag"))
        digest = hashlib.md5()
        written = 0
        for chunk in self.transport.iter_body(resp, "download", self.chunk_bytes):
            out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            if progress:
                progress(len(chunk))
        if expected_size is not None and int(expected_size) != written:
            raise errors.IntegrityError(f"download: got {written} of {expected_size} bytes")
        md5 = digest.hexdigest()
        if expected_md5 and expected_md5 != md5:
            raise errors.IntegrityError("download: the bytes do not match the stored MD5")
        return md5


def _total_size(resp) -> int | None:
    content_range = resp.headers.get("Content-Range", "")
    total = content_range.rpartition("/")[2]
    if total.isdigit():
        return int(total)
    length = resp.headers.get("Content-Length")
    return int(length) if resp.status_code == 200 and length and length.isdigit() else None
