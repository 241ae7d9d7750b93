"""Faults only a connection can have, injected by tests/faultproxy.py between the client and
the portal server (API and signed storage URLs alike): resets and truncated bodies."""

from __future__ import annotations

import hashlib

import pytest

from portalfs.write.upload import Outcome, Uploader, UploadRequest
from tests.faultproxy import Fault, FaultProxy, Rule
from tests.portal_fixtures import clients, start_proxied_portal

pytestmark = pytest.mark.timeout(60)

MIB = 1024 * 1024


@pytest.fixture
def proxy():
    p = FaultProxy(seed=5)
    yield p
    p.close()


@pytest.fixture
def portal(tmp_path, proxy):
    p = start_proxied_portal(tmp_path / "server", proxy)
    yield p
    p.server.stop()


def _upload(portal, tmp_path, name: str, data: bytes) -> Outcome:
    src = tmp_path / f"src-{hashlib.md5(name.encode()).hexdigest()}"
    src.write_bytes(data)
    portal_client, storage = clients(portal.member)
    req = UploadRequest(src, name, len(data), hashlib.md5(data).hexdigest())
    return Uploader(portal_client, storage).upload(req)


def _gets(proxy: FaultProxy, name: str) -> list:
    return [ex for ex in proxy.exchanges if ex.method == "GET" and ex.path.endswith(name)]


@pytest.mark.parametrize("fault", list(Fault))
def test_a_fault_on_an_api_call_is_retried(portal, proxy, tmp_path, fault):
    portal_client, _ = clients(portal.member)
    proxy.add(Rule(fault, "POST", "/v1/api/portals/"))
    assert list(portal_client.iter_folder("")) == []
    proxy.add(Rule(fault, "POST", "/v1/api/portals/"))
    assert portal_client.upload_link("a.bin", 3, hashlib.md5(b"abc").hexdigest()).url
