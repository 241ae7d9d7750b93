"""Non-interactive administration of a data folder (portals, users, organizations), safe
while a server runs on it. Returns plain dicts for the CLI to print; never prints."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from ..config import ServerConfig
from . import bootstrap
from .store import State, StateError

__all__ = ["StateError", "create_organization", "create_portal", "create_user"]


def create_portal(
    data_dir: Path,
    name: str,
    description: str = "",
    org_id: int | None = None,
    public_url: str | None = None,
) -> dict:
    """Creates a portal and returns {id, name, description, organization_id, token, link,
    api_url}. `org_id` None means the first organization. Links use `public_url`, else the
    api_url of the server's last start. Raises StateError (a ValueError) on bad input."""
    state, config = _open(data_dir, public_url)
    portal = state.add_portal(name, description, _org(state, org_id))
    return {
        "id": portal.id,
        "name": portal.name,
        "description": portal.description,
        "organization_id": portal.org_id,
        "token": portal.token,
        "link": config.portal_link(portal.id, portal.token),
        "api_url": config.api_url,
    }


def create_user(
    data_dir: Path, username: str, password: str | None = None, org_id: int | None = None
) -> dict:
    """Creates a member of organization `org_id` (None: the first organization) and returns
    {id, username, organization_id, password}; password is the generated one when
    `password` is None, else None (the caller already knows it). Raises StateError."""
    state, _ = _open(data_dir, None)
    generated = secrets.token_urlsafe(18) if password is None else None
    user = state.add_user(username, password or generated or "", _org(state, org_id))
    return {
        "id": user.id,
        "username": user.username,
        "organization_id": user.org_id,
        "password": generated,
    }


def create_organization(data_dir: Path, name: str) -> dict:
    """Creates an organization and returns {id, name}. Raises StateError."""
    state, _ = _open(data_dir, None)
    org = state.add_organization(name)
    return {"id": org.id, "name": org.name}


def _open(data_dir: Path, public_url: str | None) -> tuple[State, ServerConfig]:
    # A data folder is bootstrapped on first use, by whichever command comes first, so
    # portal 1 and the first user always exist.
    config = ServerConfig(data_dir=data_dir, public_url=public_url or _last_base_url(data_dir))
    bootstrap.ensure(config)
    return State.open(data_dir), config


def _last_base_url(data_dir: Path) -> str | None:
    path = data_dir / bootstrap.BOOTSTRAP_FILE
    if not path.exists():
        return None
    api_url = json.loads(path.read_text()).get("api_url", "")
    return api_url.removesuffix("/v1") or None


def _org(state: State, org_id: int | None) -> int:
    if org_id is not None:
        return org_id
    return state.organizations()[0].id
