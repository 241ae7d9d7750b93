"""Shared fixtures: a real portal server on 127.0.0.1:0 with fresh state per test, on the
local backend (`server`), on S3 via moto (`server_s3`) or on both (`any_server`), plus raw
HTTP helpers. No HTTP mocking: every request crosses a loopback socket."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from portalfs.server.config import ServerConfig
from portalfs.server.runner import ServerHandle
from portalfs.server.state import admin
from tests.faults import run_with_faults

HTTP_TIMEOUT_S = 10
_TOKEN = object()  # "send the portal's own token" (the default for `call`)


@dataclass
class PortalServer:
    """A running portal server, the content of its bootstrap.json, and raw API calls."""

    handle: ServerHandle
    bootstrap: dict = field(repr=False)
    data_dir: Path
    _jwt: str | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        return self.bootstrap["api_url"]

    @property
    def portal_id(self) -> int:
        return self.bootstrap["portal_id"]

    @property
    def portal_token(self) -> str:
        return self.bootstrap["portal_token"]

    @property
    def app(self) -> Any:
        return self.handle.app

    def login(self, username: str | None = None, password: str | None = None) -> str:
        """A JWT from POST /api-login (the bootstrap user by default)."""
        body = {
            "username": username or self.bootstrap["username"],
            "password": password or self.bootstrap["password"],
        }
        resp = requests.post(f"{self.api_url}/api-login", json=body, timeout=HTTP_TIMEOUT_S)
        assert resp.status_code == 200, resp.text
        return resp.json()["token"]

    def member_jwt(self) -> str:
        """The bootstrap user's JWT (a member of portal 1's organization), cached."""
        if self._jwt is None:
            self._jwt = self.login()
        return self._jwt

    def call(
        self,
        method: str,
        route: str,
        json: Any = None,
        *,
        token: Any = _TOKEN,
        jwt: str | None = None,
        portal_id: int | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """`method` on /api/portals/{id}/{route} ("" for portal info) with the portal token
        (token=None: none, token="...": that one) and optionally a JWT."""
        headers = dict(kwargs.pop("headers", {}))
        if token is _TOKEN:
            token = self.portal_token
        if token is not None:
            headers["x-token"] = token
        if jwt is not None:
            headers["x-jwt-token"] = jwt
        url = f"{self.api_url}/api/portals/{portal_id or self.portal_id}"
        url += f"/{route}" if route else ""
        return requests.request(
            method, url, json=json, headers=headers, timeout=HTTP_TIMEOUT_S, **kwargs
        )

    def upload_link(self, path: str, data: bytes, **kwargs: Any) -> requests.Response:
        body = {"fileName": path, "fileSize": len(data), "fileHash": md5_hex(data)}
        return self.call("POST", "upload-link", body, **kwargs)

    def upload(self, path: str, data: bytes) -> None:
        """Stores `data` at `path` through upload-link + PUT, as the seed's client does."""
        link = self.upload_link(path, data)
        assert link.status_code == 200, link.text
        put = requests.put(link.json()["url"], data=data, timeout=HTTP_TIMEOUT_S)
        assert put.status_code == 200, put.text

    def download_url(self, path: str) -> str:
        resp = self.call("POST", "files/download", {"path": path}, jwt=self.member_jwt())
        assert resp.status_code == 200, resp.text
        return resp.json()["url"]

    def download(self, path: str) -> bytes:
        resp = requests.get(self.download_url(path), timeout=HTTP_TIMEOUT_S)
        assert resp.status_code == 200, resp.text
        return resp.content

    def list_page(self, prefix: str = "", token: str | None = None, **extra: Any) -> dict:
        body = {"prefix": prefix} | ({"continuationToken": token} if token else {}) | extra
        resp = self.call("POST", "files", body)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def list_all(self, prefix: str = "", **extra: Any) -> list[dict]:
        """Every entry of one folder level, following continuation tokens."""
        files, token = [], None
        while True:
            page = self.list_page(prefix, token, **extra)
            files += page["files"]
            token = page.get("continuationToken")
            if not token:
                return files

    def add_portal(self, name: str = "Second portal", org_id: int | None = None) -> dict:
        """A new portal (admin.create_portal's dict: id, token, link, ...)."""
        return admin.create_portal(self.data_dir, name, "", org_id)

    def add_outsider(self) -> dict:
        """A user in a new organization, i.e. not a member of portal 1's: {username,
        password, organization_id, jwt}."""
        org = admin.create_organization(self.data_dir, f"Other org {uuid.uuid4().hex[:6]}")
        user = admin.create_user(self.data_dir, f"outsider-{org['id']}", None, org["id"])
        return user | {"jwt": self.login(user["username"], user["password"])}


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., PortalServer]]:
    """Factory: start_server(data_dir=None, **ServerConfig fields) -> PortalServer on
    127.0.0.1:0. Every server it started is stopped after the test."""
    started: list[ServerHandle] = []

    def start(data_dir: Path | None = None, **config: Any) -> PortalServer:
        data_dir = data_dir or tmp_path_factory.mktemp("portal-data")
        handle = run_with_faults(
            ServerConfig(data_dir=data_dir, host="127.0.0.1", port=0, **config)
        )
        started.append(handle)
        assert handle.bootstrap is not None, "bootstrap.json is missing"
        return PortalServer(handle, handle.bootstrap, data_dir)

    yield start
    for handle in started:
        handle.stop(wait=False)  # its port and data dir are not reused: no need to wait


@pytest.fixture
def server(start_server: Callable[..., PortalServer]) -> PortalServer:
    """A portal server on the local-folder backend, fresh data dir."""
    return start_server()


@dataclass(frozen=True)
class MotoS3:
    endpoint: str
    bucket: str
    client: Any  # boto3 S3 client with explicit test credentials


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """moto's S3 server on a free loopback port, with one bucket, for the whole session."""
    import boto3  # imported here: only S3 tests pay for it
    from moto.server import ThreadedMotoServer

    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3.start()
    host, port = s3.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="portalfs-test")
    yield MotoS3(endpoint, "portalfs-test", client)
    s3.stop()


@pytest.fixture
def aws_env(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MotoS3:
    """The standard AWS variables pointing at moto, for this test only (no ~/.aws)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return moto_s3


@pytest.fixture
def server_s3(aws_env: MotoS3, start_server: Callable[..., PortalServer]) -> PortalServer:
    """A portal server on the S3 backend (moto), under a prefix of its own."""
    return start_server(storage_url=f"s3://{aws_env.bucket}/{uuid.uuid4().hex}")


@pytest.fixture(params=["local", "s3"])
def any_server(request: pytest.FixtureRequest) -> PortalServer:
    """The same test on both storage backends."""
    return request.getfixturevalue("server" if request.param == "local" else "server_s3")


@pytest.fixture
def second_portal(server: PortalServer) -> dict:
    """Portal 2 of `server`, in the same organization as portal 1."""
    return server.add_portal()


@pytest.fixture
def outsider(server: PortalServer) -> dict:
    """A logged-in user of `server` who is not a member of portal 1's organization."""
    return server.add_outsider()


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """wait_until(condition, timeout_s=5, what=""): polls until condition() is true."""

    def wait(condition: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout_s}s waiting for {what or condition}"
                )
            time.sleep(0.01)

    return wait
