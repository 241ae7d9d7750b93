"""Typed views of the API's JSON: PortalFile, PortalInfo, ListPage; parsing only, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import ProtocolError

_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")


def md5_from_etag(etag: str | None) -> str | None:
    """The MD5 hex inside an ETag, or None when the ETag is not one (multipart, missing)."""
    if not etag:
        return None
    bare = etag.strip().removeprefix("W/").strip('"').lower()
    return bare if _MD5_HEX.match(bare) else None


def _field(raw: dict[str, Any], key: str, kind: type) -> Any:
    value = raw.get(key)
    # bool is an int in Python; a JSON true must not pass as a number.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ProtocolError(f"response field {key!r} is missing or not {kind.__name__}")
    return value


def _parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class PortalFile:
    """One entry of a folder listing: a file or a folder."""

    name: str
    path: str
    is_folder: bool
    size: int | None = None
    etag: str | None = None
    added: datetime | None = None

    @property
    def md5(self) -> str | None:
        return md5_from_etag(self.etag)

    @classmethod
    def from_json(cls, raw: Any) -> PortalFile:
        if not isinstance(raw, dict):
            raise ProtocolError("a listing entry is not an object")
        kind = _field(raw, "type", str)
        if kind not in ("file", "folder"):
            raise ProtocolError(f"a listing entry has unknown type {kind!r}")
        size = raw.get("size")
        etag = raw.get("ETag")
        return cls(
            name=_field(raw, "name", str),
            path=_field(raw, "path", str),
            is_folder=kind == "folder",
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            etag=etag if isinstance(etag, str) else None,
            added=_parse_date(raw.get("addedDate")),
        )


@dataclass(frozen=True)
class ListPage:
    """One page of a folder listing and the token for the next page (None at the end)."""

    files: list[PortalFile]
    next_token: str | None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ListPage:
        files = raw.get("files")
        if not isinstance(files, list):
            raise ProtocolError("response field 'files' is missing or not a list")
        token = raw.get("continuationToken")
        return cls([PortalFile.from_json(f) for f in files], token if token else None)


@dataclass(frozen=True)
class PortalInfo:
    """What GET /api/portals/{id} tells about a portal."""

    name: str
    description: str
    organization_id: int
    organization_name: str
    bucket_name: str
    storage_provider: str | None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PortalInfo:
        provider = raw.get("storageProvider")
        return cls(
            name=_field(raw, "name", str),
            description=_field(raw, "description", str),
            organization_id=_field(raw, "organizationId", int),
            organization_name=_field(raw, "organizationName", str),
            bucket_name=_field(raw, "bucketName", str),
            storage_provider=provider if isinstance(provider, str) else None,
        )


@dataclass(frozen=True)
class UploadLink:
    """A pre-signed PUT URL and the ETag of what is stored under that name already, if any."""

    url: str
    existing_etag: str | None

    def __repr__(self) -> str:  # the URL carries credentials
        return f"UploadLink(url=<redacted>, existing_etag={self.existing_etag!r})"
