"""Through a real mount, with faults injected on the wire by the server."""

from __future__ import annotations

import os
import time

import pytest

from tests.faults import Hold, Status

pytestmark = pytest.mark.timeout(180)


def _requests(portal) -> int:
    return sum(portal.server.app.state.metrics.snapshot().values())


def _copy_in_and_read_back(mount_portal, tag):
    """200 files in through one mount, back out through another: how many are byte-exact."""
    files = {f"{tag}-{i:03d}.bin": os.urandom(2000 + i) for i in range(200)}
    writer = mount_portal()
    for name, data in files.items():
        (writer.path / name).write_bytes(data)
    reader = mount_portal()
    return sum((reader.path / name).read_bytes() == data for name, data in files.items())


def test_10_percent_503s_on_every_route_lose_nothing(mount_portal, portal):
    before = _requests(portal)
    assert _copy_in_and_read_back(mount_portal, "clean") == 200
    clean = _requests(portal) - before
    portal.server.app.state.faults.add("*", Status(503), times=10**9, probability=0.10)
    before = _requests(portal)
    started = time.monotonic()
    assert _copy_in_and_read_back(mount_portal, "faulty") == 200
    faulty = _requests(portal) - before
    assert faulty <= 1.5 * clean, (clean, faulty)
    print(
        f"fault-free {clean} requests, with 10% 503s {faulty} "
        f"({faulty / clean:.2f}x) in {time.monotonic() - started:.1f}s"
    )


def test_429_with_retry_after_is_waited_for(mount_portal, portal):
    m = mount_portal()
    metrics = portal.server.app.state.metrics
    portal.server.app.state.faults.fail_next("upload_link", 429, headers={"Retry-After": "2"})
    started = time.monotonic()
    (m.path / "patient.txt").write_bytes(b"waited")
    assert time.monotonic() - started >= 2.0  # Retry-After was waited out (a floor: no flake)
    # Then exactly one retry, which succeeded: counted, not timed.
    assert metrics.count("POST", "upload_link", 429) == 1
    assert metrics.count("POST", "upload_link", 200) == 1
    assert (m.path / "patient.txt").read_bytes() == b"waited"


@pytest.mark.parametrize(
    "route, method", [("storage_put", "PUT"), ("storage_get", "GET"), ("upload_link", "POST")]
)
def test_a_stalled_request_is_abandoned_after_the_timeout_and_retried(
    portal, tmp_path, route, method
):
    from dataclasses import replace

    from portalfs.config import MountConfig
    from portalfs.fs.factory import build_portalfs
    from tests.portal_fixtures import TEST_HTTP

    http = replace(TEST_HTTP, read_timeout_s=0.5)
    fs = build_portalfs(portal.member, MountConfig(cache_dir=str(tmp_path / "c")), http)
    metrics = portal.server.app.state.metrics
    hold = Hold()
    try:
        fh = fs.create("/seed.bin")
        fs.write(fh, 0, b"s" * 10_000)
        fs.flush(fh)
        fs.release(fh)
        portal.server.app.state.faults.add(route, hold)
        before = metrics.count(method, route)
        if route == "storage_get":
            fh = fs.open("/seed.bin", os.O_RDONLY)
            assert fs.read(fh, 0, 20_000) == b"s" * 10_000
        else:
            fh = fs.create("/stalled.bin")
            fs.write(fh, 0, b"t" * 10_000)
            fs.flush(fh)
        fs.release(fh)
        # Done while the first request is still held: it was abandoned, not waited out.
        assert hold.held.is_set() and not hold.timed_out and not hold.release.is_set()
        assert metrics.count(method, route) - before == 1  # the retry (the held one: not yet)
    finally:
        hold.release.set()
        fs.close()
