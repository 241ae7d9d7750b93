"""The one mapping from failures to HTTP: ApiError, the {success, error} envelope, storage
errors, and the exception handlers. Messages name the problem but never echo credentials."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .storage.base import Conflict, InvalidContinuationToken, InvalidKey, NotFound, StorageError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request that fails with `status` and a message the caller can act on."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers  # e.g. Retry-After on a 429


def envelope(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The failure body every route uses: {"success": false, "error": message}."""
    return JSONResponse({"success": False, "error": message}, status, headers=headers)


@contextmanager
def storage_errors(path: str) -> Iterator[None]:
    """The one translation of storage failures into API errors; `path` names the object."""
    try:
        yield
    except NotFound as exc:
        raise ApiError(404, f"file not found: {path!r}") from exc
    except Conflict as exc:
        raise ApiError(409, str(exc)) from exc
    except (InvalidContinuationToken, InvalidKey) as exc:
        raise ApiError(400, str(exc)) from exc
    except StorageError as exc:
        raise ApiError(502, str(exc)) from exc


def install(app: FastAPI) -> None:
    """Routes every failure, including FastAPI's own, through `envelope`."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return envelope(exc.status, exc.message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI answers 422 by default; the portal API answers bad input with 400.
    assert isinstance(exc, RequestValidationError)
    return envelope(400, describe_validation(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return envelope(exc.status_code, str(exc.detail), headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return envelope(500, "internal server error")


def describe_validation(errors: list[dict]) -> str:
    """One line naming each bad field, e.g. "fileSize: Input should be a valid integer"."""
    parts = []
    for err in errors:
        source, *loc = [str(p) for p in err.get("loc", ())] or ["request"]
        if err.get("type") == "json_invalid":
            parts.append("request body is not valid JSON")
        elif source == "body" and not loc:
            parts.append("request body must be a JSON object (content-type: application/json)")
        else:
            parts.append(f"{'.'.join(loc) or source}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)
