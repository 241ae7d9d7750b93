"""StorageClient: PUT and GET on pre-signed storage URLs (S3, GCS, the portal's own store).

Sends no credentials of ours: the URL carries its own. Never logs or raises the URL's query.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import requests

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
        """`length` bytes from `start` (fewer at the end of the object), and the object's ETag.

        With `etag`, a changed object raises ConflictError instead of returning new bytes.
        """
        resp, skip = self._open_range(url, start, length, etag)
        if resp is None:
            return RangeRead(b"", etag)
        chunks = self.transport.iter_body(resp, "read", self.chunk_bytes)
        data = b"".join(_regroup(chunks, skip, length, max(length, 1)))
        return RangeRead(data, resp.headers.get("ETag"))

    def stream_range(
        self, url: str, start: int, length: int, etag: str | None, piece_bytes: int
    ) -> Iterator[bytes]:
        """[start, start+length) of the object from one GET, as pieces of `piece_bytes` (the
        last may be shorter, and all end early at the end of the object)."""
        resp, skip = self._open_range(url, start, length, etag)
        if resp is not None:
            chunks = self.transport.iter_body(resp, "read", self.chunk_bytes)
            yield from _regroup(chunks, skip, length, piece_bytes)

    def _open_range(
        self, url: str, start: int, length: int, etag: str | None
    ) -> tuple[requests.Response | None, int]:
        """The streaming response for a range and the bytes to skip at its start; None past
        the end. A changed ETag raises ConflictError before any byte is read."""
        headers = {"Range": f"bytes={start}-{start + length - 1}"}
        if etag:
            headers["If-Match"] = etag
        resp = self.transport.request(
            "GET", url, what="read", headers=headers, stream=True, storage=True, ok=(200, 206, 416)
        )
        if resp.status_code == 416:  # at or past the end
            resp.close()
            return None, 0
        got_etag = resp.headers.get("ETag")
        if etag and got_etag and md5_from_etag(got_etag) != md5_from_etag(etag):
            resp.close()
            raise errors.ConflictError("read: the file changed on the server during the read")
        # A store that ignores Range sends the whole object: skip to `start`.
        return resp, start if resp.status_code == 200 else 0

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


def _regroup(chunks: Iterator[bytes], skip: int, length: int, piece_bytes: int) -> Iterator[bytes]:
    """Re-cut a byte stream into pieces of `piece_bytes`, after dropping `skip` bytes and
    stopping after `length` bytes. Chunks that already are whole pieces pass uncopied."""
    buffer = bytearray()
    for chunk in chunks:
        if skip:
            dropped = min(skip, len(chunk))
            chunk, skip = chunk[dropped:], skip - dropped
        if len(chunk) > length:
            chunk = chunk[:length]
        length -= len(chunk)
        if not buffer and len(chunk) == piece_bytes:
            yield chunk
        else:
            buffer += chunk
            while len(buffer) >= piece_bytes:
                yield bytes(memoryview(buffer)[:piece_bytes])
                del buffer[:piece_bytes]
        if length == 0:
            break
    if buffer:
        yield bytes(buffer)
