"""Faults only a connection can have, injected by tests/faultproxy.py between the client and
the portal server (API and signed storage URLs alike): resets and truncated bodies."""

from __future__ import annotations

import hashlib
import os

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
def test_a_fault_during_a_ranged_read_resumes_where_it_broke(portal, proxy, tmp_path, fault):
    data = os.urandom(3 * MIB + 17)
    _upload(portal, tmp_path, "big.bin", data)
    portal_client, storage = clients(portal.member)
    url = portal_client.download_link("big.bin")
    proxy.add(Rule(fault, "GET", "/storage/", at_bytes=MIB + 5))
    got = b"".join(storage.stream_range(url, 100, len(data) - 100, None, MIB))
    assert got == data[100:]
    first, second = _gets(proxy, "big.bin")
    assert first.fault is fault and second.fault is None
    if fault in (Fault.RESET_BODY, Fault.TRUNCATE):
        # Resumed from what had arrived, not from the start: only the bytes of the read
        # (one chunk, 1 MiB) that the reset interrupted travel twice.
        assert 100 + MIB <= second.range_start <= 100 + MIB + 5
        assert first.body_bytes + second.body_bytes - len(got) == 100 + MIB + 5 - second.range_start
    else:
        assert second.range_start == 100


@pytest.mark.parametrize("fault", list(Fault))
def test_a_fault_during_a_whole_download_resumes_and_checks_the_md5(portal, proxy, tmp_path, fault):
    data = os.urandom(2 * MIB + 3)
    _upload(portal, tmp_path, "whole.bin", data)
    portal_client, storage = clients(portal.member)
    url = portal_client.download_link("whole.bin")
    proxy.add(Rule(fault, "GET", "/storage/", at_bytes=MIB + 5))
    with open(tmp_path / "out", "wb") as out:
        assert storage.download_to(url, out) == hashlib.md5(data).hexdigest()
    assert (tmp_path / "out").read_bytes() == data
    first, second = _gets(proxy, "whole.bin")
    assert first.fault is fault and second.fault is None
    if fault in (Fault.RESET_BODY, Fault.TRUNCATE):
        assert MIB <= second.range_start <= MIB + 5
    else:
        assert second.range_start is None  # nothing arrived: the whole object again


@pytest.mark.parametrize("fault", list(Fault))
def test_a_fault_during_a_put_is_retried_from_the_start_of_the_body(portal, proxy, tmp_path, fault):
    data = os.urandom(3 * MIB)
    proxy.add(Rule(fault, "PUT", "/storage/", at_bytes=MIB))
    assert _upload(portal, tmp_path, "put.bin", data) == Outcome.UPLOADED
    puts = [ex for ex in proxy.exchanges if ex.method == "PUT"]
    assert [ex.fault for ex in puts] == [fault, None]
    assert portal.server.app.state.services.storage  # the server is the judge of what it stored
    portal_client, storage = clients(portal.member)
    got = storage.get_range(portal_client.download_link("put.bin"), 0, len(data)).data
    assert got == data


@pytest.mark.parametrize("fault", list(Fault))
def test_a_fault_on_an_api_call_is_retried(portal, proxy, tmp_path, fault):
    portal_client, _ = clients(portal.member)
    proxy.add(Rule(fault, "POST", "/v1/api/portals/"))
    assert list(portal_client.iter_folder("")) == []
    proxy.add(Rule(fault, "POST", "/v1/api/portals/"))
    assert portal_client.upload_link("a.bin", 3, hashlib.md5(b"abc").hexdigest()).url
