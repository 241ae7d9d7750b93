"""First start, restarts, admin functions, startup output and backend start-up errors."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest
import requests

from portalfs.server.config import ServerConfig
from portalfs.server.runner import run_in_thread
from portalfs.server.state import admin
from portalfs.server.state.store import StateError
from portalfs.server.storage.base import StorageError


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_bootstrap_file_has_exactly_the_keys_and_mode_0600(server):
    path = server.data_dir / "bootstrap.json"
    boot = json.loads(path.read_text())
    assert set(boot) == {
        "api_url",
        "portal_id",
        "portal_token",
        "portal_url",
        "username",
        "password",
    }
    assert mode(path) == 0o600
    assert boot["api_url"] == server.handle.api_url
    assert boot["portal_id"] == 1
    assert len(boot["portal_token"]) >= 32  # >= 128 bits of entropy
    assert boot["portal_url"] == f"{server.handle.url}/portals/1?token={boot['portal_token']}"
    assert len(boot["password"]) >= 16


def test_private_files_are_owner_only(server):
    assert mode(server.data_dir / "state.json") == 0o600
    assert mode(server.data_dir / "tmp") == 0o700


def test_shareable_link_opens_the_portal_page(server):
    page = requests.get(server.bootstrap["portal_url"], timeout=10)
    assert page.status_code == 200
    assert "Upload portal" in page.text
    assert server.portal_token not in page.text
    wrong = requests.get(f"{server.handle.url}/portals/1?token=nope", timeout=10)
    assert wrong.status_code == 404


def test_restart_reuses_state_and_refreshes_the_api_url(start_server):
    first = start_server()
    first.upload("kept.txt", b"kept")
    first.handle.stop()
    second = start_server(data_dir=first.data_dir)
    assert second.portal_token == first.portal_token
    assert second.bootstrap["password"] == first.bootstrap["password"]
    assert second.api_url == second.handle.api_url != first.api_url
    on_disk = json.loads((first.data_dir / "bootstrap.json").read_text())
    assert on_disk["portal_url"].startswith(second.handle.url)
    assert second.download("kept.txt") == b"kept"
    assert len(second.app.state.services.state.portals()) == 1


def test_restart_without_bootstrap_file_still_serves(start_server):
    first = start_server()
    first.handle.stop()
    (first.data_dir / "bootstrap.json").unlink()
    handle = run_in_thread(ServerConfig(data_dir=first.data_dir, port=0))
    try:
        assert handle.bootstrap is None
        resp = requests.get(
            f"{handle.api_url}/api/portals/1", headers={"x-token": first.portal_token}, timeout=10
        )
        assert resp.status_code == 200
    finally:
        handle.stop()


def test_admin_create_portal_works_on_a_running_server(server):
    created = admin.create_portal(server.data_dir, "Field data", "from the field")
    assert created["id"] == 2
    assert created["organization_id"] == 1
    assert created["link"] == f"{server.handle.url}/portals/2?token={created['token']}"
    assert created["api_url"] == server.api_url
    info = server.call("GET", "", token=created["token"], portal_id=2)
    assert info.json()["name"] == "Field data"
    assert info.json()["description"] == "from the field"


def test_portals_do_not_share_files(server, second_portal):
    server.upload("mine.txt", b"1")
    other = server.call("POST", "files", {"prefix": ""}, token=second_portal["token"], portal_id=2)
    assert other.json()["files"] == []


def test_admin_create_user_with_generated_and_given_password(server):
    generated = admin.create_user(server.data_dir, "alice", None, 1)
    assert generated["organization_id"] == 1 and len(generated["password"]) >= 16
    assert server.login("alice", generated["password"])
    given = admin.create_user(server.data_dir, "bob", "correct horse", None)
    assert given["password"] is None
    assert server.login("bob", "correct horse")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda d: admin.create_user(d, "admin", None), "already exists"),
        (lambda d: admin.create_user(d, "carol", None, 42), "organization 42 does not exist"),
        (lambda d: admin.create_user(d, " ", None), "username"),
        (lambda d: admin.create_portal(d, "", ""), "portal name"),
        (lambda d: admin.create_portal(d, "x", "", 42), "organization 42"),
    ],
)
def test_admin_errors_are_state_errors(server, call, message):
    with pytest.raises(StateError, match=message):
        call(server.data_dir)


def test_admin_on_a_new_folder_bootstraps_it(tmp_path):
    created = admin.create_portal(tmp_path / "new", "Second")
    assert created["id"] == 2  # portal 1 came from the bootstrap
    assert created["link"].startswith("http://127.0.0.1:4800/portals/2?token=")
    assert (tmp_path / "new" / "bootstrap.json").exists()


def test_missing_bucket_fails_at_start_with_a_clear_message(aws_env, tmp_path):
    config = ServerConfig(data_dir=tmp_path, port=0, storage_url="s3://no-such-bucket/x")
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        run_in_thread(config)


def test_bad_storage_url_is_refused(tmp_path):
    with pytest.raises(StorageError, match="s3://bucket/prefix"):
        run_in_thread(ServerConfig(data_dir=tmp_path, port=0, storage_url="gs://bucket"))


def test_serve_prints_where_to_look_but_no_secret(tmp_path):
    # The CLI prints; the server itself (runner.serve) only hands it the message.
    command = [sys.executable, "-m", "portalfs", "serve", "--data", str(tmp_path), "--port", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(5)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    out = "".join(lines)
    boot = json.loads((tmp_path / "bootstrap.json").read_text())
    assert boot["api_url"] in out
    assert f"portalfs login --api-url {boot['api_url']}" in out
    assert "bootstrap.json (mode 0600)" in out
    assert boot["portal_token"] not in out and boot["password"] not in out


def test_a_second_server_on_the_same_data_folder_is_refused(tmp_path):
    # It would rewrite bootstrap.json with its own address under the running server.
    command = [sys.executable, "-m", "portalfs", "serve", "--data", str(tmp_path), "--port", "0"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert "portalfs server on" in first.stdout.readline()
        boot = (tmp_path / "bootstrap.json").read_text()
        second = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert "another portalfs server is using" in second.stderr and "--data" in second.stderr
        assert (tmp_path / "bootstrap.json").read_text() == boot
    finally:
        first.terminate()
        first.wait(timeout=10)


def test_the_production_server_does_not_load_the_fault_injector(tmp_path):
    # The fault middleware is test code: only run_with_faults (tests/faults.py) puts it in.
    script = (
        "import sys; from pathlib import Path; import portalfs.cli;"
        "from portalfs.server.app import create_app;"
        "from portalfs.server.config import ServerConfig;"
        f"app = create_app(ServerConfig(data_dir=Path({str(tmp_path)!r})));"
        "print(sorted(m for m in sys.modules if 'fault' in m), hasattr(app.state, 'faults'))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[] False", out.stderr
