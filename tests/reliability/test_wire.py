"""Faults only a connection can have, injected by tests/faultproxy.py between the client and
the portal server (API and signed storage URLs alike): resets and truncated bodies."""

from __future__ import annotations

import collections
import hashlib
import os
import random
import time

import pytest

from portalfs.write.upload import Outcome, Uploader, UploadRequest
from tests.faultproxy import Exchange, Fault, FaultProxy, Rule
from tests.faults import Delay, Status
from tests.portal_fixtures import clients, start_proxied_portal

pytestmark = pytest.mark.timeout(60)

MIB = 1024 * 1024


@pytest.fixture
def proxy():
    p = FaultProxy(seed=5)
    yield p
    p.close()


@pytest.fixture
def portal(request, tmp_path, proxy):
    """The test portal behind the proxy; indirect parameters are ServerConfig fields."""
    p = start_proxied_portal(tmp_path / "server", proxy, **getattr(request, "param", {}))
    yield p
    p.server.stop()


def _upload(portal, tmp_path, name: str, data: bytes) -> Outcome:
    src = tmp_path / f"src-{hashlib.md5(name.encode()).hexdigest()}"
    src.write_bytes(data)
    portal_client, storage = clients(portal.member)
    req = UploadRequest(src, name, len(data), hashlib.md5(data).hexdigest())
    return Uploader(portal_client, storage).upload(req)


def _gets(proxy: FaultProxy, name: str) -> list[Exchange]:
    return [ex for ex in proxy.exchanges if ex.method == "GET" and ex.path.endswith(name)]


def _download_links(proxy: FaultProxy) -> list[Exchange]:
    return [ex for ex in proxy.exchanges if ex.path.endswith("/files/download")]


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
    portal_client, storage = clients(portal.member)
    got = storage.get_range(portal_client.download_link("put.bin"), 0, len(data)).data
    assert got == data


@pytest.mark.parametrize("fault", list(Fault))
def test_a_fault_on_an_api_call_is_retried(portal, proxy, fault):
    portal_client, _ = clients(portal.member)
    proxy.add(Rule(fault, "POST", "/v1/api/portals/"))
    assert list(portal_client.iter_folder("")) == []
    proxy.add(Rule(fault, "POST", "/v1/api/portals/"))
    assert portal_client.upload_link("a.bin", 3, hashlib.md5(b"abc").hexdigest()).url


def _content(i: int) -> bytes:
    """Mostly small files, some of 100 KiB, and a few that take several 1 MiB blocks."""
    size = 2 * MIB + i if i % 40 == 0 else 100 * 1024 + i if i % 8 == 4 else 2000 + i
    return random.Random(i).randbytes(size)


def _copy_in_and_read_back(mount_portal, tag: str) -> int:
    """200 files in through one mount, back out through another: how many are byte-exact."""
    files = {f"{tag}-{i:03d}.bin": _content(i) for i in range(200)}
    writer = mount_portal()
    for name, data in files.items():
        (writer.path / name).write_bytes(data)
    reader = mount_portal()
    return sum((reader.path / name).read_bytes() == data for name, data in files.items())


@pytest.mark.timeout(180)
def test_503s_resets_and_truncations_on_every_route_lose_nothing(mount_portal, portal, proxy):
    before = proxy.requests()
    assert _copy_in_and_read_back(mount_portal, "clean") == 200
    clean = proxy.requests() - before
    portal.server.app.state.faults.add("*", Status(503), times=10**9, probability=0.10)
    proxy.set_chances(reset=0.02, truncate=0.01)
    before, started = proxy.requests(), time.monotonic()
    assert _copy_in_and_read_back(mount_portal, "faulty") == 200
    faulty = proxy.requests() - before
    metrics = portal.server.app.state.metrics.snapshot()
    unavailable = sum(n for (_, _, status), n in metrics.items() if status == 503)
    injected = proxy.injected()
    where = collections.Counter(
        f"{ex.method} {'storage' if ex.path.startswith('/storage/') else 'api'}"
        for ex in proxy.exchanges
        if ex.fault
    )
    print(
        f"fault-free {clean} requests; with faults {faulty} ({faulty / clean:.2f}x) in "
        f"{time.monotonic() - started:.1f}s: {unavailable} 503s, "
        + ", ".join(f"{n} {fault.name}" for fault, n in sorted(injected.items(), key=str))
        + f"; faults by request: {dict(where)}"
    )
    assert faulty <= 1.5 * clean, (clean, faulty)
    assert injected[Fault.TRUNCATE] and sum(injected.values()) > injected[Fault.TRUNCATE]


def test_a_sequential_read_from_byte_0_asks_for_the_whole_object_without_range(
    mount_portal, portal, proxy, tmp_path
):
    # A Range costs some stores (moto) a copy of the whole object: a stream from byte 0 asks
    # for the object as it is (no Range), a stream from further in for the rest of it.
    data = random.Random(6).randbytes(6 * MIB + 3)
    _upload(portal, tmp_path, "seq.bin", data)
    m = mount_portal()
    with open(m.path / "seq.bin", "rb") as f:
        f.seek(3 * MIB)
        assert f.read() == data[3 * MIB :]
    ranges = [ex.headers.get("range") for ex in _gets(proxy, "seq.bin")]
    assert ranges[-1] == f"bytes={4 * MIB}-{len(data) - 1}", ranges  # a block, then the stream
    before = len(ranges)
    with open(m.path / "seq.bin", "rb") as f:
        assert f.read() == data
    first_stream = _gets(proxy, "seq.bin")[before]
    assert first_stream.headers.get("range") is None and first_stream.status == 200


# Signed links live 2-3 s (`expires` is a whole second; the server refuses a link once the
# clock is past it): long enough to be used at once on a busy machine, short enough to wait.
SHORT_LINKS = pytest.mark.parametrize("portal", [{"link_ttl_s": 3}], indirect=True)


def _link_expired(ex: Exchange) -> bool:
    return time.time() > int(ex.query["expires"]) + 0.05


def _stored(portal, name: str) -> bytes:
    portal_client, storage = clients(portal.member)
    url = portal_client.download_link(name)
    return storage.get_range(url, 0, 64 * MIB).data


@SHORT_LINKS
def test_a_download_link_that_expires_mid_read_is_renewed_and_the_read_resumes(
    mount_portal, portal, proxy, tmp_path
):
    data = random.Random(4).randbytes(8 * MIB + 7)
    _upload(portal, tmp_path, "long.bin", data)
    m = mount_portal()
    cut = 3 * MIB + 5
    # The stream is cut after 3 MiB, once its link has expired: the resumed GET is refused.
    proxy.add(Rule(Fault.RESET_BODY, "GET", "/storage/", at_bytes=cut, hold=_link_expired))
    assert (m.path / "long.bin").read_bytes() == data
    gets = _gets(proxy, "long.bin")
    assert len(gets) == 3, [(ex.headers.get("range"), ex.status, ex.fault) for ex in gets]
    first, refused, resumed = gets
    # The stream from byte 0 is a plain GET (no Range); the resumed one asks from where it broke.
    assert (first.range_start, first.fault, first.body_bytes) == (None, Fault.RESET_BODY, cut)
    assert refused.status == 403 and resumed.status == 206
    assert refused.query["expires"] == first.query["expires"] != resumed.query["expires"]
    # From where the read was (only the chunk the reset interrupted travels twice), never 0.
    assert MIB <= resumed.range_start <= cut
    assert refused.range_start == resumed.range_start
    assert first.body_bytes + resumed.body_bytes - len(data) == cut - resumed.range_start
    assert len(_download_links(proxy)) == 2


@SHORT_LINKS
@pytest.mark.parametrize("when", ["before", "during"])
def test_an_upload_link_that_expires_before_or_during_the_put_is_renewed(
    mount_portal, portal, proxy, when
):
    data = random.Random(5).randbytes(4 * MIB + 3)
    if when == "before":  # the PUT reaches the server after its link expired
        portal.server.app.state.faults.add("storage_put", Delay(4.0))
    else:  # the link expires while the body is on its way, and then the connection resets
        proxy.add(Rule(Fault.RESET_REQUEST, "PUT", "/storage/", at_bytes=MIB, hold=_link_expired))
    m = mount_portal()
    (m.path / "up.bin").write_bytes(data)
    puts = [ex for ex in proxy.exchanges if ex.method == "PUT"]
    links = [ex for ex in proxy.exchanges if ex.path.endswith("/upload-link")]
    statuses = [403, 200] if when == "before" else [None, 403, 200]
    assert [ex.status for ex in puts] == statuses
    assert len(links) == 2 and puts[-1].query["expires"] != puts[0].query["expires"]
    assert _stored(portal, "up.bin") == data
