"""PortalClient: one method per upload-portal endpoint, with auth headers and the
success-envelope check. Sends secrets only to the configured API origin; holds no cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .models import ListPage, PortalFile, PortalInfo, UploadLink
from .names import check_portal_path, folder_prefix
from .transport import Transport

# The error text the API documents for accounts with two-factor login (GetJWTRequest.totpToken).
_TOTP_REQUIRED = "ERR_TOTP_TOKEN IS REQUIRED"
# A listing that hands out more pages than this is looping; stop instead of spinning forever.
MAX_LIST_PAGES = 100_000


@dataclass(frozen=True)
class Credentials:
    """Where the portal is and what the caller holds. Secrets are hidden from repr()."""

    api_url: str
    portal_id: int | None = None
    portal_token: str | None = field(default=None, repr=False)
    jwt: str | None = field(default=None, repr=False)

    @property
    def can_read(self) -> bool:
        """Download, view, delete and rename need an organization member's JWT."""
        return bool(self.jwt)


class PortalClient:
    """The upload-portal API. Thread-safe (the transport keeps a session per thread)."""

    def __init__(self, credentials: Credentials, transport: Transport) -> None:
        self.credentials = credentials
        self.transport = transport

    def _url(self, route: str) -> str:
        return self.credentials.api_url.rstrip("/") + route

    def _portal_route(self, suffix: str = "") -> str:
        if self.credentials.portal_id is None:
            raise errors.RejectedError("no portal id: pass --portal-id or set EI_PORTAL_ID")
        return f"/api/portals/{self.credentials.portal_id}{suffix}"

    def _headers(self) -> dict[str, str]:
        headers = {"accept": "application/json"}
        if self.credentials.portal_token:
            headers["x-token"] = self.credentials.portal_token
        if self.credentials.jwt:
            headers["x-jwt-token"] = self.credentials.jwt
        return headers

    def _call(self, method: str, route: str, what: str, body: Any = None, **kw: Any) -> dict:
        resp = self.transport.request(
            method, self._url(route), what=what, headers=self._headers(), json=body, **kw
        )
        try:
            payload = resp.json()
        except ValueError as exc:
            raise errors.ProtocolError(f"{what}: the server did not answer with JSON") from exc
        if not isinstance(payload, dict) or payload.get("success") is not True:
            message = payload.get("error") if isinstance(payload, dict) else None
            raise errors.RejectedError(f"{what}: {str(message or 'request failed')[:200]}")
        return payload

    def login(self, username: str, password: str, totp: str | None = None) -> str:
        """A JWT for the user (POST /api-login)."""
        body: dict[str, str] = {"username": username, "password": password}
        if totp:
            body["totpToken"] = totp
        try:
            payload = self._call("POST", "/api-login", "login", body)
        except (errors.RejectedError, errors.AuthError) as exc:
            if _TOTP_REQUIRED in exc.message.upper():
                raise errors.TotpRequiredError("login needs a TOTP code") from exc
            raise
        token = payload.get("token")
        if not isinstance(token, str) or not token:
            raise errors.ProtocolError("login: the answer carries no token")
        return token

    def info(self) -> PortalInfo:
        """Name, organization and bucket of the portal."""
        return PortalInfo.from_json(self._call("GET", self._portal_route(), "portal info"))

    def list_page(
        self, prefix: str, token: str | None = None, folders_only: bool = False
    ) -> ListPage:
        """One page of one folder level; `prefix` is "" or "a/b/"."""
        body: dict[str, Any] = {"prefix": prefix}
        if token:
            body["continuationToken"] = token
        if folders_only:
            body["onlyFetchFolders"] = True
        payload = self._call("POST", self._portal_route("/files"), f"list {prefix or '/'}", body)
        return ListPage.from_json(payload)

    def iter_folder(self, folder: str, folders_only: bool = False) -> Iterator[PortalFile]:
        """Every entry of one folder level, all pages; fails on a repeated page token."""
        prefix = folder_prefix(folder)
        seen: set[str] = set()
        token: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = self.list_page(prefix, token, folders_only)
            yield from page.files
            token = page.next_token
            if token is None:
                return
            if token in seen:
                raise errors.ProtocolError(f"list {prefix or '/'}: the server repeated a page")
            seen.add(token)
        raise errors.ProtocolError(f"list {prefix or '/'}: more than {MAX_LIST_PAGES} pages")

    def upload_link(self, portal_path: str, size: int, md5: str) -> UploadLink:
        """A pre-signed PUT URL for `portal_path`, and the stored ETag under that name."""
        body = {"fileName": check_portal_path(portal_path), "fileSize": size, "fileHash": md5}
        payload = self._call("POST", self._portal_route("/upload-link"), "upload link", body)
        url = payload.get("url")
        if not isinstance(url, str) or not url:
            raise errors.ProtocolError("upload link: the answer carries no url")
        etag = payload.get("ETag")
        return UploadLink(url, etag if isinstance(etag, str) else None)

    def download_link(self, portal_path: str) -> str:
        """A pre-signed GET URL for `portal_path` (needs a member's JWT)."""
        body = {"path": check_portal_path(portal_path)}
        payload = self._call("POST", self._portal_route("/files/download"), "download link", body)
        url = payload.get("url")
        if not isinstance(url, str) or not url:
            raise errors.ProtocolError("download link: the answer carries no url")
        return url

    def delete(self, portal_path: str) -> None:
        """Delete one file (needs a member's JWT)."""
        body = {"path": check_portal_path(portal_path)}
        self._call("POST", self._portal_route("/files/delete"), "delete", body, idempotent=False)

    def rename(self, old_path: str, new_path: str) -> None:
        """Rename one file (needs a member's JWT)."""
        body = {"oldPath": check_portal_path(old_path), "newPath": check_portal_path(new_path)}
        self._call("POST", self._portal_route("/files/rename"), "rename", body, idempotent=False)
