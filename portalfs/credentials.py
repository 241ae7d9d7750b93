"""Finds the API URL, portal id, portal token and JWT from flags, files, links and the
environment (EI_API_URL, EI_PORTAL_ID, EI_PORTAL_TOKEN, EI_JWT_TOKEN, EI_PORTAL_LINK).

Never prints or logs a secret, and never wants one on the command line.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .client.portal import Credentials
from .config import DEFAULT_API_URL
from .private import private_dir, write_private


class CredentialsError(Exception):
    """The credentials cannot be assembled: a bad link, an unsafe file, a bad id."""


@dataclass(frozen=True)
class PortalLink:
    """What a shareable portal link (".../portals/<id>?token=...") says."""

    api_url: str
    portal_id: int | None
    token: str | None


def parse_portal_link(link: str) -> PortalLink:
    """Split a portal link into API root, portal id and token."""
    parts = urlsplit(link.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CredentialsError("a portal link starts with http:// or https://")
    match = re.search(r"/portals/(\d+)", parts.path)
    tokens = parse_qs(parts.query).get("token")
    return PortalLink(
        api_url=f"{parts.scheme}://{parts.netloc}/v1",
        portal_id=int(match.group(1)) if match else None,
        token=tokens[0] if tokens else None,
    )


def read_secret_file(path: str | os.PathLike[str]) -> str:
    """The secret in a file, refusing files that group or others may read."""
    try:
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            raise CredentialsError(f"{path} is readable by other users; run: chmod 600 {path}")
        return Path(path).read_text().strip()
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror}") from exc


def config_dir() -> Path:
    """Where saved logins live: $XDG_CONFIG_HOME/portalfs or ~/.config/portalfs."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "portalfs"


def _login_file() -> Path:
    return config_dir() / "login.json"


def saved_jwt(api_url: str) -> str | None:
    """The JWT that `portalfs login --save` stored for this API, if any."""
    path = _login_file()
    if not path.exists():
        return None
    try:
        logins = json.loads(read_secret_file(path)).get("logins", {})
    except ValueError as exc:
        raise CredentialsError(f"{path} is not valid JSON; delete it and log in again") from exc
    token = logins.get(api_url.rstrip("/"))
    return token if isinstance(token, str) else None


def save_jwt(api_url: str, jwt: str) -> Path:
    """Store a JWT for this API in the 0600 login file; returns its path."""
    path = _login_file()
    private_dir(path.parent)
    logins = {}
    if path.exists():
        logins = json.loads(read_secret_file(path)).get("logins", {})
    logins[api_url.rstrip("/")] = jwt
    write_private(path, json.dumps({"logins": logins}).encode())
    return path


def jwt_expiry(jwt: str) -> datetime | None:
    """The `exp` claim of a JWT, read without verifying it (the server verifies)."""
    try:
        payload = jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (IndexError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class CredentialSources:
    """What the command line said; None where it said nothing."""

    api_url: str | None = None
    portal_id: int | None = None
    token_file: str | None = None
    jwt_file: str | None = None
    link: str | None = None
    link_file: str | None = None


def resolve(sources: CredentialSources, environ: dict[str, str]) -> Credentials:
    """Flags beat the link, the link beats the environment, the environment beats saved logins."""
    link_text = sources.link or (
        read_secret_file(sources.link_file) if sources.link_file else environ.get("EI_PORTAL_LINK")
    )
    link = parse_portal_link(link_text) if link_text else None
    api_url = (
        sources.api_url
        or (link.api_url if link else None)
        or environ.get("EI_API_URL")
        or DEFAULT_API_URL
    ).rstrip("/")
    token = (
        (read_secret_file(sources.token_file) if sources.token_file else None)
        or (link.token if link else None)
        or environ.get("EI_PORTAL_TOKEN")
        or None
    )
    where = "--api-url" if sources.api_url else "the portal link" if link else "EI_API_URL"
    jwt = _jwt(sources, environ, api_url, where)
    return Credentials(api_url, _portal_id(sources, link, environ), token, jwt)


def _jwt(sources: CredentialSources, environ: dict, api_url: str, where: str) -> str | None:
    """The member's JWT, sent only to the API it belongs to: a saved login to the API it
    was saved for; --jwt-file to --api-url or EI_API_URL (else the default service);
    EI_JWT_TOKEN to EI_API_URL (else the default service). Another API, named by a link
    or --api-url, is refused: a JWT sent there would let its owner act as you."""
    env_api = (environ.get("EI_API_URL") or DEFAULT_API_URL).rstrip("/")
    if sources.jwt_file:
        _check_same_api("--jwt-file", (sources.api_url or env_api).rstrip("/"), api_url, where)
        return read_secret_file(sources.jwt_file)
    if environ.get("EI_JWT_TOKEN"):
        _check_same_api("EI_JWT_TOKEN", env_api, api_url, where)
        return environ["EI_JWT_TOKEN"]
    return saved_jwt(api_url)


def _check_same_api(source: str, owner: str, api_url: str, where: str) -> None:
    if owner == api_url:
        return
    raise CredentialsError(
        f"the login in {source} is for {urlsplit(owner).netloc} (EI_API_URL, or the default "
        f"service), not for {urlsplit(api_url).netloc} (from {where}); it is not sent there. "
        f"{'Drop --jwt-file' if source.startswith('-') else 'Unset ' + source} to use the "
        f"portal token alone, or set EI_API_URL={api_url} if you logged in to that server"
    )


def _portal_id(sources: CredentialSources, link: PortalLink | None, environ: dict) -> int | None:
    if sources.portal_id is not None:
        return sources.portal_id
    if link and link.portal_id is not None:
        return link.portal_id
    raw = environ.get("EI_PORTAL_ID")
    if not raw:
        return None
    if not raw.strip().isdigit():
        raise CredentialsError("EI_PORTAL_ID must be a number, e.g. export EI_PORTAL_ID=122")
    return int(raw)
