"""StorageClient: PUT and GET on pre-signed storage URLs (S3, GCS, the portal's own store).

Sends no credentials of ours: the URL carries its own. Never logs or raises the URL's query.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import requests

from . import errors
from .models import md5_from_etag
from .transport import Transport

log = logging.getLogger(__name__)


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
        body = _RangeBody(self, url, start, start + length, etag, None, "read")
        data = b"".join(body)
        return RangeRead(data, body.etag)

    def stream_range(
        self,
        url: str,
        start: int,
        length: int,
        etag: str | None,
        piece_bytes: int,
        renew: Callable[[], str] | None = None,
        object_size: int | None = None,
    ) -> Iterator[bytes]:
        """[start, start+length) of the object as pieces of `piece_bytes` (the last may be
        shorter, and all end early at the end of the object). Given the `object_size`, the
        whole object from byte 0 is asked for as a plain GET, without Range: some stores
        (moto) copy the whole object once more to cut a range out of it.

        A connection that breaks or ends early mid-body is resumed by Range where it broke,
        on the same ETag; a link the store refuses is replaced by `renew()`, if given.
        """
        body = _RangeBody(self, url, start, start + length, etag, renew, "read", object_size)
        with contextlib.closing(iter(body)) as chunks:
            yield from _regroup(chunks, piece_bytes)

    def download_to(
        self,
        url: str,
        out: BinaryIO,
        progress: Callable[[int], None] | None = None,
        renew: Callable[[], str] | None = None,
    ) -> str:
        """Stream the whole object into `out` (resuming as stream_range does); check size and
        MD5 against the store's headers. Returns the MD5 hex of the bytes written."""
        body = _RangeBody(self, url, 0, None, None, renew, "download")
        digest = hashlib.md5()
        written = 0
        with contextlib.closing(iter(body)) as chunks:
            for chunk in chunks:
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                if progress:
                    progress(len(chunk))
        if body.size is not None and body.size != written:
            raise errors.IntegrityError(f"download: got {written} of {body.size} bytes")
        md5 = digest.hexdigest()
        expected_md5 = md5_from_etag(body.etag)
        if expected_md5 and expected_md5 != md5:
            raise errors.IntegrityError("download: the bytes do not match the stored MD5")
        return md5


class _RangeBody:
    """Bytes [start, end) of one version of an object (to its end if `end` is None), from as
    many GETs as it takes: a body cut short is resumed by Range from the first byte missing,
    with If-Match on the ETag of the first answer, so bytes of two versions never mix.

    Gives up after `max_attempts` breaks in a row without a byte of progress. Iterated once,
    by one thread.
    """

    def __init__(
        self,
        storage: StorageClient,
        url: str,
        start: int,
        end: int | None,
        etag: str | None,
        renew: Callable[[], str] | None,
        what: str,
        size: int | None = None,
    ) -> None:
        self.storage, self.url, self.pos, self.end = storage, url, start, end
        self.etag, self.renew, self.what = etag, renew, what
        self.size = size  # the object's size, if the caller knows it or an answer told it

    def __iter__(self) -> Iterator[bytes]:
        transport = self.storage.transport
        stalls, renewed = 0, False
        while self.end is None or self.pos < self.end:
            try:
                resp = self._open()
            except errors.LinkExpiredError:
                if self.renew is None or renewed:
                    raise
                log.info("%s: the store refused the link; asking for a new one", self.what)
                self.url, renewed = self.renew(), True
                continue
            if resp is None:
                return
            before = self.pos
            try:
                yield from self._drain(resp)
                if not self._short():
                    return
                if self.pos == before:
                    raise errors.ProtocolError(f"{self.what}: the store sent none of the range")
                continue  # a store that answered with part of the range: ask for the rest
            except errors.UnavailableError as exc:
                if self.pos > before:
                    stalls, renewed = 0, False
                stalls += 1
                if stalls >= transport.config.max_attempts:
                    raise
                transport.backoff(stalls, None, self.what, f"resuming at byte {self.pos}: {exc}")

    def _short(self) -> bool:
        """Whether bytes asked for, and inside the object, are still missing."""
        if self.end is None:
            return False
        return self.pos < (self.end if self.size is None else min(self.end, self.size))

    def _open(self) -> requests.Response | None:
        """The answer for [pos, end); None past the end of the object. A changed ETag
        raises ConflictError before any byte is read."""
        headers = {}
        if self.pos or (self.end is not None and self.end != self.size):  # not all of it
            last = "" if self.end is None else str(self.end - 1)
            headers["Range"] = f"bytes={self.pos}-{last}"
        if self.etag:
            headers["If-Match"] = self.etag
        resp = self.storage.transport.request(
            "GET",
            self.url,
            what=self.what,
            headers=headers,
            stream=True,
            storage=True,
            ok=(200, 206, 416),
        )
        if resp.status_code == 416:  # at or past the end
            resp.close()
            return None
        got_etag = resp.headers.get("ETag")
        if self.etag and got_etag and md5_from_etag(got_etag) != md5_from_etag(self.etag):
            resp.close()
            raise errors.ConflictError(f"{self.what}: the file changed on the server")
        self.etag = self.etag or got_etag
        return resp

    def _drain(self, resp: requests.Response) -> Iterator[bytes]:
        """The answer's bytes from `pos` on; UnavailableError if it ends before its headers
        said it would (a clean close is a truncation too)."""
        try:
            at, announced_end, self.size = _span(resp, self.what)
            if at > self.pos:
                raise errors.ProtocolError(f"{self.what}: the store's range starts too late")
        except errors.ProtocolError:
            resp.close()
            raise
        chunks = self.storage.transport.iter_body(resp, self.what, self.storage.chunk_bytes)
        with contextlib.closing(chunks):
            for chunk in chunks:
                if at < self.pos:  # a store that ignores Range sends from byte 0: skip
                    dropped = min(self.pos - at, len(chunk))
                    chunk, at = chunk[dropped:], at + dropped
                if self.end is not None:
                    chunk = chunk[: self.end - self.pos]
                if chunk:
                    at += len(chunk)
                    self.pos += len(chunk)
                    yield chunk
                if self.pos == self.end:
                    return
        if announced_end is not None and self.pos < announced_end:
            raise errors.UnavailableError(
                f"{self.what}: the answer ended at byte {self.pos} of {announced_end}"
            )


def _span(resp: requests.Response, what: str) -> tuple[int, int | None, int | None]:
    """(first byte, end of the bytes announced, object size) of a 200 or 206 answer."""
    length = resp.headers.get("Content-Length")
    if resp.status_code == 206:
        unit, _, spec = resp.headers.get("Content-Range", "").partition(" ")
        span, _, total = spec.partition("/")
        first, _, last = span.partition("-")
        if unit == "bytes" and first.isdigit() and last.isdigit():
            return int(first), int(last) + 1, int(total) if total.isdigit() else None
        raise errors.ProtocolError(f"{what}: a 206 answer without a usable Content-Range")
    size = int(length) if length and length.isdigit() else None
    return 0, size, size


def _regroup(chunks: Iterator[bytes], piece_bytes: int) -> Iterator[bytes]:
    """Re-cut a byte stream into pieces of `piece_bytes`. Chunks that already are whole
    pieces pass uncopied."""
    buffer = bytearray()
    for chunk in chunks:
        if not buffer and len(chunk) == piece_bytes:
            yield chunk
        else:
            buffer += chunk
            while len(buffer) >= piece_bytes:
                yield bytes(memoryview(buffer)[:piece_bytes])
                del buffer[:piece_bytes]
    if buffer:
        yield bytes(buffer)
