"""Cross-site request guards for the /v1 routes. A page on another site can make a browser
send its cookies with a form or a Blob body (any content type but JSON, or none), but cannot
set our credential headers or a JSON content type without a CORS preflight. So POST routes
take credentials from headers only and bodies only as JSON; the JWT cookie counts on the GET
view route alone, which changes nothing. Never logs a credential."""

from __future__ import annotations

from fastapi import Request

from ..auth.access import JWT_COOKIE, JWT_HEADER, TOKEN_HEADER, Credentials
from ..errors import ApiError


def require_json(request: Request) -> None:
    """Router dependency: a POST whose content type is not JSON is refused (400). Older
    FastAPI (pyproject allows >=0.110) read a body with no content type as JSON; this
    guard does not depend on the version's default."""
    if request.method == "POST" and not _is_json(request.headers.get("content-type", "")):
        raise ApiError(400, "request body must be a JSON object (content-type: application/json)")


def credentials(request: Request, cookie_ok: bool = False) -> Credentials:
    """The caller's credentials from the headers; the JWT cookie only where `cookie_ok`
    (a route that changes nothing and that a browser opens by link)."""
    cookie = request.cookies.get(JWT_COOKIE) if cookie_ok else None
    return Credentials(
        token=request.headers.get(TOKEN_HEADER) or None,
        jwt=request.headers.get(JWT_HEADER) or cookie or None,
    )


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
