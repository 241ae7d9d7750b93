"""PortalFS built against a real portal server, without FUSE."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from portalfs.config import MountConfig
from portalfs.fs.factory import build_portalfs
from portalfs.fs.filesystem import PortalFS
from tests.portal_fixtures import TEST_HTTP, portal  # noqa: F401


@pytest.fixture
def make_fs(portal, tmp_path) -> Iterator[Callable[..., PortalFS]]:  # noqa: F811
    built: list[PortalFS] = []

    def make(member: bool = True, **config) -> PortalFS:
        creds = portal.member if member else portal.writer
        cache = tmp_path / f"cache{len(built)}"
        fs = build_portalfs(creds, MountConfig(cache_dir=str(cache), **config), TEST_HTTP)
        built.append(fs)
        return fs

    yield make
    for fs in built:
        fs.close()
