"""First start of an empty data folder: one organization, one user, portal 1, and the
credentials in DATA/bootstrap.json (mode 0600). Never prints or logs those credentials."""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

from ..config import ServerConfig
from .store import State, write_private_json

log = logging.getLogger(__name__)

BOOTSTRAP_FILE = "bootstrap.json"
DEFAULT_ORGANIZATION = "Default organization"
DEFAULT_USERNAME = "admin"
DEFAULT_PORTAL = "Upload portal"


def ensure(config: ServerConfig) -> dict | None:
    """Bootstraps `config.data_dir` if it holds no organization yet, else reuses it.

    Returns the content of DATA/bootstrap.json (keys: api_url, portal_id, portal_token,
    portal_url, username, password), rewritten when the server's api_url changed; None when
    an operator removed that file (the password is only stored hashed, so it cannot be
    written again)."""
    state = State.open(config.data_dir)
    path = config.data_dir / BOOTSTRAP_FILE
    if not state.organizations():
        return _first_start(state, config, path)
    return _refresh(config, path)


def _first_start(state: State, config: ServerConfig, path: Path) -> dict:
    org = state.add_organization(DEFAULT_ORGANIZATION)
    password = secrets.token_urlsafe(18)
    user = state.add_user(DEFAULT_USERNAME, password, org.id)
    portal = state.add_portal(DEFAULT_PORTAL, "Created on first start", org.id)
    info = {
        "api_url": config.api_url,
        "portal_id": portal.id,
        "portal_token": portal.token,
        "portal_url": config.portal_link(portal.id, portal.token),
        "username": user.username,
        "password": password,
    }
    write_private_json(path, info)
    log.info(
        "bootstrapped %s: organization %d, user %r, portal %d",
        path.parent,
        org.id,
        user.username,
        portal.id,
    )
    return info


def _refresh(config: ServerConfig, path: Path) -> dict | None:
    if not path.exists():
        log.warning("%s is missing; create users with `portalfs admin`", path)
        return None
    info = json.loads(path.read_text())
    if info.get("api_url") != config.api_url:
        info["api_url"] = config.api_url
        info["portal_url"] = config.portal_link(info["portal_id"], info["portal_token"])
        write_private_json(path, info)
    return info
