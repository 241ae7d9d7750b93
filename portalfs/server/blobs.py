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
from typing import BinaryIO

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from .errors import ApiError, envelope, storage_errors
from .signing import Signer
from .storage.base import ObjectStat
from .storage.local import CHUNK_BYTES, LocalStorage

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
    temp, f = storage.new_temp()
    try:
        got_md5, got_size = await _receive(request, f)
        if got_size != size:
            raise ApiError(400, f"body has {got_size} bytes; the link was signed for {size}")
        if got_md5 != md5:
            raise ApiError(400, "BadDigest: the body's md5 differs from the signed fileHash")
        with storage_errors(key):
            await run_in_threadpool(storage.commit, temp, key, md5)
    except ClientDisconnect:
        log.info("upload cut off by the client; previous version kept")
        return envelope(400, "upload incomplete")
    finally:
        f.close()
        temp.unlink(missing_ok=True)  # gone already after a successful commit
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


async def _receive(request: Request, f: BinaryIO) -> tuple[str, int]:
    """Writes the body to `f` in 1 MiB writes off the event loop; returns (md5, size)."""
    digest, pending, total = hashlib.md5(), bytearray(), 0
    async for chunk in request.stream():
        pending += chunk
        if len(pending) >= CHUNK_BYTES:
            total += await run_in_threadpool(_write, f, digest, bytes(pending))
            pending.clear()
    total += await run_in_threadpool(_write, f, digest, bytes(pending), True)
    return digest.hexdigest(), total


def _write(f: BinaryIO, digest: hashlib._Hash, data: bytes, last: bool = False) -> int:
    f.write(data)
    digest.update(data)
    if last:
        # Durable before the rename makes it visible, as a 200 from S3 promises.
        f.flush()
        os.fsync(f.fileno())
    return len(data)


def _object_headers(st: ObjectStat) -> dict[str, str]:
    return {
        "ETag": f'"{st.etag}"',
        "Accept-Ranges": "bytes",
        "Last-Modified": email.utils.format_datetime(st.mtime, usegmt=True),
    }


def _read_span(f: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    with f:
        f.seek(start)
        while length > 0:
            chunk = f.read(min(CHUNK_BYTES, length))
            if not chunk:
                return  # the file shrank under us (an admin edit): stop short
            length -= len(chunk)
            yield chunk
