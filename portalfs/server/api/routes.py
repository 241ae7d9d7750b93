"""The /v1 portal API routes, as documented in the edgeimpulse-api package: login, portal
info, list, upload-link, download, delete, rename, view. Routes check input and rights,
then call storage; they never build storage keys except through `storage_key`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from ..auth.access import Access, JwtIssuer, authorize
from ..auth.signing import Signer
from ..auth.throttle import LoginThrottle
from ..config import ServerConfig
from ..errors import ApiError, storage_errors
from ..state.store import Portal, State
from ..storage.base import Conflict, Entry, NotFound, Storage, storage_key
from . import guards, names

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", dependencies=[Depends(guards.require_json)])
_MD5_HEX = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Services:
    """Everything a route needs, built once by app.py."""

    config: ServerConfig
    state: State
    storage: Storage
    issuer: JwtIssuer
    signer: Signer
    login_throttle: LoginThrottle


class _Body(BaseModel):
    # strict: "12" is not a size and true is not a string; unknown fields are ignored.
    model_config = ConfigDict(strict=True, extra="ignore")


class LoginRequest(_Body):
    username: str
    password: str
    totp_token: str | None = Field(None, alias="totpToken")  # accepted; no MFA here


class ListRequest(_Body):
    prefix: str
    continuation_token: str | None = Field(None, alias="continuationToken")
    only_fetch_folders: bool | None = Field(None, alias="onlyFetchFolders")


class UploadLinkRequest(_Body):
    file_name: str = Field(alias="fileName")
    file_size: int = Field(alias="fileSize")
    file_hash: str = Field(alias="fileHash")


class PathRequest(_Body):
    path: str


class RenameRequest(_Body):
    old_path: str = Field(alias="oldPath")
    new_path: str = Field(alias="newPath")


@router.post("/api-login", name="api_login")
def api_login(body: LoginRequest, request: Request) -> dict:
    services = _services(request)
    address = request.client.host if request.client else ""
    # Counted before scrypt, so a throttled attempt costs next to nothing.
    wait_s = services.login_throttle.reserve(body.username, address)
    if wait_s:
        retry = {"Retry-After": str(wait_s)}
        raise ApiError(429, f"too many failed logins: try again in {wait_s} s", retry)
    user = services.state.authenticate(body.username, body.password)
    if user is None:
        raise ApiError(401, "invalid username or password")
    services.login_throttle.succeeded(body.username, address)
    return {"success": True, "token": services.issuer.issue(user.id)}


@router.get("/api/portals/{portal_id}", name="portal_info")
def portal_info(portal_id: int, request: Request) -> dict:
    services, portal = _authorized(request, portal_id, Access.UPLOAD)
    org = services.state.organization(portal.org_id)
    return {
        "success": True,
        "name": portal.name,
        "description": portal.description,
        "organizationId": portal.org_id,
        "organizationName": org.name if org else "",
        "bucketName": services.storage.bucket_name,
        "storageProvider": services.storage.provider,
    }


@router.post("/api/portals/{portal_id}/files", name="list_files")
def list_files(portal_id: int, body: ListRequest, request: Request) -> dict:
    services, portal = _authorized(request, portal_id, Access.UPLOAD)
    prefix = _checked(names.folder_prefix, body.prefix, "prefix")
    with storage_errors(prefix):
        entries, token = services.storage.list_page(
            storage_key(portal.prefix, prefix),
            body.continuation_token or None,
            services.config.page_size,
            bool(body.only_fetch_folders),
        )
    files = [f for f in (portal_file(portal, e) for e in entries) if f is not None]
    return {"success": True, "files": files} | ({"continuationToken": token} if token else {})


@router.post("/api/portals/{portal_id}/upload-link", name="upload_link")
def upload_link(portal_id: int, body: UploadLinkRequest, request: Request) -> dict:
    services, portal = _authorized(request, portal_id, Access.UPLOAD)
    path = _checked(names.file_path, body.file_name, "fileName")
    _check_size(body.file_size, services.config.max_file_bytes)
    md5 = body.file_hash.lower()
    if not _MD5_HEX.fullmatch(md5):
        raise ApiError(400, "fileHash must be the MD5 of the content as 32 hex digits")
    key = storage_key(portal.prefix, path)
    with storage_errors(path):
        _check_placement(services.storage, portal, path)
        existing = services.storage.stat(key)
        url = services.storage.upload_url(key, body.file_size, md5)
    # The stored object's ETag lets a client skip uploading identical content.
    known = existing.etag if existing else None
    return {"success": True, "url": url} | ({"ETag": known} if known else {})


@router.post("/api/portals/{portal_id}/files/download", name="download_link")
def download_link(portal_id: int, body: PathRequest, request: Request) -> dict:
    services, portal = _authorized(request, portal_id, Access.MEMBER)
    return {"success": True, "url": _download_url(services, portal, body.path)}


@router.get("/api/portals/{portal_id}/files/view", name="view_file")
def view_file(portal_id: int, path: str, request: Request) -> RedirectResponse:
    services, portal = _authorized(request, portal_id, Access.MEMBER, cookie_ok=True)
    # 302, not 307: the browser should GET the signed URL, which carries its own rights.
    return RedirectResponse(_download_url(services, portal, path), status_code=302)


@router.post("/api/portals/{portal_id}/files/delete", name="delete_file")
def delete_file(portal_id: int, body: PathRequest, request: Request) -> dict:
    services, portal = _authorized(request, portal_id, Access.MEMBER)
    path = _checked(names.file_path, body.path, "path")
    with storage_errors(path):
        services.storage.delete(storage_key(portal.prefix, path))
    return {"success": True}


@router.post("/api/portals/{portal_id}/files/rename", name="rename_file")
def rename_file(portal_id: int, body: RenameRequest, request: Request) -> dict:
    services, portal = _authorized(request, portal_id, Access.MEMBER)
    old = _checked(names.file_path, body.old_path, "oldPath")
    new = _checked(names.file_path, body.new_path, "newPath")
    with storage_errors(old):
        if old == new:
            if services.storage.stat(storage_key(portal.prefix, old)) is None:
                raise NotFound(old)
            return {"success": True}
        _check_placement(services.storage, portal, new)
        services.storage.rename(storage_key(portal.prefix, old), storage_key(portal.prefix, new))
    return {"success": True}


def portal_file(portal: Portal, entry: Entry) -> dict | None:
    """The API's PortalFile for a listing entry; None for a name the API could not address
    (e.g. "a//b" put into the bucket by other tools)."""
    path = entry.key.removeprefix(portal.prefix)
    try:
        (names.folder_prefix if entry.is_folder else names.file_path)(path)
    except names.InvalidName:
        log.debug("listing skips an unaddressable name in portal %d", portal.id)
        return None
    item = {"name": path.rstrip("/").rsplit("/", 1)[-1], "path": path}
    if entry.stat is None:
        return item | {"type": "folder"}
    added = entry.stat.mtime.astimezone(UTC).isoformat(timespec="milliseconds")
    file = item | {
        "type": "file",
        "size": entry.stat.size,
        "ETag": entry.stat.etag,
        "addedDate": added.replace("+00:00", "Z"),
    }
    if file["ETag"] is None:
        del file["ETag"]  # not known yet; the API makes it optional
    return file


def _services(request: Request) -> Services:
    return request.app.state.services


def _authorized(
    request: Request, portal_id: int, need: Access, cookie_ok: bool = False
) -> tuple[Services, Portal]:
    services = _services(request)
    portal = services.state.portal(portal_id)
    if portal is None:
        raise ApiError(404, f"portal {portal_id} not found")
    creds = guards.credentials(request, cookie_ok)
    authorize(services.state, services.issuer, portal, creds, need)
    return services, portal


def _download_url(services: Services, portal: Portal, raw_path: str) -> str:
    path = _checked(names.file_path, raw_path, "path")
    key = storage_key(portal.prefix, path)
    with storage_errors(path):
        if services.storage.stat(key) is None:
            raise NotFound(path)
        return services.storage.download_url(key)


def _checked(check: Callable[[str, str], str], value: str, field: str) -> str:
    try:
        return check(value, field)
    except names.InvalidName as exc:
        raise ApiError(400, str(exc)) from exc


def _check_size(size: int, limit: int) -> None:
    if size < 0:
        raise ApiError(400, f"fileSize must not be negative (got {size})")
    if size > limit:
        raise ApiError(400, f"fileSize {size} exceeds this server's limit of {limit} bytes")


def _check_placement(storage: Storage, portal: Portal, path: str) -> None:
    """Refuses a file under a file ("a" is a file, so no "a/b") or over a folder: a file
    system cannot hold both, and every backend must behave the same."""
    segments = path.split("/")
    for depth in range(1, len(segments)):
        ancestor = "/".join(segments[:depth])
        if storage.stat(storage_key(portal.prefix, ancestor)) is not None:
            raise Conflict(f"{ancestor!r} is a file, so it cannot hold {path!r}")
    inside, _ = storage.list_page(storage_key(portal.prefix, path + "/"), None, 1, False)
    if inside:
        raise Conflict(f"{path!r} is a folder")
