"""Fixtures for the client side's tests: a real portal server on a loopback port with fresh
state per test, and clients holding a token only or a token plus a member's JWT."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest

from portalfs.client import errors
from portalfs.client.portal import Credentials, PortalClient
from portalfs.client.storage import StorageClient
from portalfs.client.transport import Transport
from portalfs.config import HttpConfig
from portalfs.server.config import ServerConfig
from portalfs.server.runner import ServerHandle
from tests.faultproxy import FaultProxy
from tests.faults import run_with_faults

# Fast failure in tests: a dead server should not cost 30 s of retries.
# probe_interval_s=0: a server found unreachable is tried (once) on every request, so a
# test that restarts it needs no wait; tests of the fast failure set their own interval.
TEST_HTTP = HttpConfig(
    connect_timeout_s=2, read_timeout_s=10, max_attempts=3, backoff_max_s=0.2, probe_interval_s=0
)


@dataclass
class Portal:
    """A running portal server and what a user of it knows."""

    server: ServerHandle
    api_url: str
    portal_id: int
    token: str = field(repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    jwt: str = field(default="", repr=False)

    @property
    def writer(self) -> Credentials:
        """An external party: the portal token only."""
        return Credentials(self.api_url, self.portal_id, self.token)

    @property
    def member(self) -> Credentials:
        """An organization member: the token and a JWT."""
        return replace(self.writer, jwt=self.jwt)

    def puts(self) -> int:
        """Storage PUTs the server has accepted so far."""
        metrics = self.server.app.state.metrics
        return sum(
            n
            for (m, route, status), n in metrics.snapshot().items()
            if m == "PUT" and status == 200
        )

    def env(self, member: bool = False) -> dict[str, str]:
        """The seed script's environment variables for this portal."""
        env = {
            "EI_API_URL": self.api_url,
            "EI_PORTAL_ID": str(self.portal_id),
            "EI_PORTAL_TOKEN": self.token,
        }
        if member:
            env["EI_JWT_TOKEN"] = self.jwt
        return env


def clients(creds: Credentials) -> tuple[PortalClient, StorageClient]:
    transport = Transport(TEST_HTTP)
    return PortalClient(creds, transport), StorageClient(transport)


def start_portal(data_dir, **config) -> Portal:
    return logged_in(run_with_faults(ServerConfig(data_dir=data_dir, port=0, **config)))


def start_proxied_portal(data_dir, proxy: FaultProxy, **config) -> Portal:
    """A portal server behind `proxy`: its API URL and every signed link point at the proxy."""
    server = run_with_faults(
        ServerConfig(data_dir=data_dir, port=0, public_url=proxy.url, **config)
    )
    proxy.start(server.port)
    return logged_in(server)


def logged_in(server: ServerHandle) -> Portal:
    """The Portal of a running server, with the bootstrap user logged in."""
    boot = server.bootstrap
    portal, _ = clients(Credentials(server.api_url))
    jwt = portal.login(boot["username"], boot["password"])
    return Portal(
        server,
        server.api_url,
        boot["portal_id"],
        boot["portal_token"],
        boot["username"],
        boot["password"],
        jwt,
    )


@pytest.fixture
def portal(tmp_path) -> Iterator[Portal]:
    p = start_portal(tmp_path / "server")
    yield p
    p.server.stop()


__all__ = [
    "TEST_HTTP",
    "Portal",
    "clients",
    "errors",
    "portal",
    "start_portal",
    "start_proxied_portal",
]
