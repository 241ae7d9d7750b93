"""The local backend's storage endpoints, playing S3 for pre-signed URLs:
PUT /storage/{key} stores a body atomically, GET /storage/{key} serves it with Range.
Only signed requests get through; a failed or cut-off PUT never replaces what was stored.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ..auth.signing import Signer
from ..errors import ApiError, envelope, storage_errors
from ..storage.base import ObjectStat
from ..storage.local import CHUNK_BYTES, LocalStorage

log = logging.getLogger(__name__)

router = APIRouter()
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class Unsatisfiable(Exception):
    """A Range that selects no byte of the object (416)."""


@router.put("/storage/{key:path}", name="storage_put")
async def put_object(key: str, request: Request) -> Response:
    storage, signer = _local(request)
    signer.verify("PUT", key, request.query_params)
    size, md5 = int(request.query_params["size"]), request.query_params["md5"]
    _check_length(request.headers.get("content-length"), size)
    incoming = _Incoming(storage)
    try:
        pending = bytearray()
        async for chunk in request.stream():
            pending += chunk
            if len(pending) >= CHUNK_BYTES:
                await run_in_threadpool(incoming.write, bytes(pending))
                pending.clear()
        # A small body costs one trip to a worker thread in all: create, write, check, store.
        await run_in_threadpool(incoming.finish, bytes(pending), key, size, md5)
    except ClientDisconnect:
        log.info("upload cut off by the client; previous version kept")
        return envelope(400, "upload incomplete")
    finally:
        if not incoming.stored:
            # Shielded: a cancelled request (the server stopping) must still drop its file.
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(incoming.discard)
    return Response(status_code=200, headers={"ETag": f'"{md5}"'})


@router.get("/storage/{key:path}", name="storage_get")
def get_object(key: str, request: Request) -> Response:
    storage, signer = _local(request)
    signer.verify("GET", key, request.query_params)
    with storage_errors(key):
        f, st = storage.open_read(key)
    headers = _object_headers(st)
    try:
        span = parse_range(request.headers.get("range"), st.size)
    except Unsatisfiable:
        f.close()
        return Response(status_code=416, headers=headers | {"Content-Range": f"bytes */{st.size}"})
    start, end = span or (0, st.size - 1)
    headers["Content-Length"] = str(end - start + 1)
    status = 200
    if span:
        status, headers["Content-Range"] = 206, f"bytes {start}-{end}/{st.size}"
    body = _read_span(f, start, end - start + 1)
    return StreamingResponse(body, status, headers, media_type="application/octet-stream")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte of a single `Range: bytes=...`, or None to send the
    whole object (no header, or one we do not support: RFC 9110 lets us ignore it).
    Raises Unsatisfiable when the range starts past the end."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # suffix: the last n bytes
        if int(last) == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - int(last)), size - 1
    if int(first) >= size:
        raise Unsatisfiable
    if last and int(last) < int(first):
        return None  # syntactically invalid: ignore, as RFC 9110 says
    return int(first), min(int(last), size - 1) if last else size - 1


def _local(request: Request) -> tuple[LocalStorage, Signer]:
    services = request.app.state.services
    return services.storage, services.signer


def _check_length(header: str | None, size: int) -> None:
    if header is None:
        raise ApiError(411, "Content-Length is required (chunked uploads are not supported)")
    if not header.isdigit() or int(header) != size:
        raise ApiError(400, f"Content-Length {header} differs from the signed fileSize {size}")


class _Incoming:
    """One PUT's body on its way into a temp file. Every method touches the disk, so each runs
    in a worker thread: creating a file alone can take a millisecond, which on the event loop
    would hold up every other request."""

    def __init__(self, storage: LocalStorage) -> None:
        self.storage = storage
        self.digest = hashlib.md5()
        self.size = 0
        self.temp: Path | None = None
        self.file: BinaryIO | None = None
        self.stored = False

    def write(self, data: bytes) -> None:
        if self.file is None:
            self.temp, self.file = self.storage.new_temp()
        self.file.write(data)
        self.digest.update(data)
        self.size += len(data)

    def finish(self, data: bytes, key: str, size: int, md5: str) -> None:
        """The last bytes; stores the object if the body is the one the link was signed for."""
        self.write(data)
        if self.size != size:
            raise ApiError(400, f"body has {self.size} bytes; the link was signed for {size}")
        if self.digest.hexdigest() != md5:
            raise ApiError(400, "BadDigest: the body's md5 differs from the signed fileHash")
        assert self.file is not None and self.temp is not None
        # Durable before the rename makes it visible, as a 200 from S3 promises.
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        with storage_errors(key):
            self.storage.commit(self.temp, key, md5)
        self.stored = True

    def discard(self) -> None:
        """Drops the temp file of a body that was refused or cut off."""
        try:
            if self.file is not None:
                self.file.close()
        finally:
            if self.temp is not None:
                self.temp.unlink(missing_ok=True)


def _object_headers(st: ObjectStat) -> dict[str, str]:
    headers = {
        "Accept-Ranges": "bytes",
        "Last-Modified": email.utils.format_datetime(st.mtime, usegmt=True),
    }
    return headers | ({"ETag": f'"{st.etag}"'} if st.etag else {})


def _read_span(f: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    with f:
        f.seek(start)
        while length > 0:
            chunk = f.read(min(CHUNK_BYTES, length))
            if not chunk:
                return  # the file shrank under us (an admin edit): stop short
            length -= len(chunk)
            yield chunk
