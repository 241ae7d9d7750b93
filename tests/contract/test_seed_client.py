"""The seed's own scripts, unchanged but for the host, run as subprocesses against the
server: get_jwt_token.py logs in, portal_api.py uploads, lists and downloads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def run_seed(
    script: str, env: dict[str, str], cwd: Path, *args: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HERE / script), *args],
        env=os.environ | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def seed_jwt(server, tmp_path: Path) -> str:
    proc = run_seed(
        "seed_get_jwt_token.py",
        {"EI_API_URL": server.api_url},
        tmp_path,
        "--username",
        server.bootstrap["username"],
        # One "--password=..." argument: a random password may start with "-" (token_urlsafe
        # does 1 time in 64), which argparse takes for an option when it stands alone.
        f"--password={server.bootstrap['password']}",
    )
    assert proc.returncode == 0, proc.stderr
    [line] = [ln for ln in proc.stdout.splitlines() if "export EI_JWT_TOKEN=" in ln]
    return line.split("=", 1)[1]


def sample_files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "test.jpg").write_bytes(b"\xff\xd8test" + os.urandom(3000))
    (tmp_path / "daisy.jpg").write_bytes(b"\xff\xd8daisy" + os.urandom(70_000))
    return {"EI_TEST_JPG": str(tmp_path / "test.jpg"), "EI_DAISY_JPG": str(tmp_path / "daisy.jpg")}


def portal_env(server) -> dict[str, str]:
    return {
        "EI_API_URL": server.api_url,
        "EI_PORTAL_ID": str(server.portal_id),
        "EI_PORTAL_TOKEN": server.portal_token,
    }


def test_get_jwt_token_flow_gives_a_working_jwt(server, tmp_path):
    jwt = seed_jwt(server, tmp_path)
    resp = server.call("POST", "files", {"prefix": ""}, token=None, jwt=jwt)
    assert resp.status_code == 200


def test_get_jwt_token_with_a_wrong_password_fails(server, tmp_path):
    proc = run_seed(
        "seed_get_jwt_token.py",
        {"EI_API_URL": server.api_url},
        tmp_path,
        "--username",
        "admin",
        "--password",
        "wrong",
    )
    assert proc.returncode != 0
    assert "status code was not 200, but 401" in proc.stderr


def test_seed_portal_api_uploads_lists_and_downloads(any_server, tmp_path):
    env = portal_env(any_server) | sample_files(tmp_path)
    env["EI_JWT_TOKEN"] = seed_jwt(any_server, tmp_path)
    proc = run_seed("seed_portal_api.py", env, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "output.jpg").read_bytes() == (tmp_path / "daisy.jpg").read_bytes()
    assert "Uploading flowers/daisy.jpg OK" in proc.stdout
    assert "'path': 'flowers/'" in proc.stdout and "'path': 'flowers/daisy.jpg'" in proc.stdout
    assert any_server.download("test.jpg") == (tmp_path / "test.jpg").read_bytes()


def test_seed_portal_api_without_jwt_is_write_only(server, tmp_path):
    proc = run_seed("seed_portal_api.py", portal_env(server) | sample_files(tmp_path), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Not downloading files, EI_JWT_TOKEN not set" in proc.stdout
    assert not (tmp_path / "output.jpg").exists()
    assert [f["path"] for f in server.list_all()] == ["flowers/", "test.jpg"]


def test_seed_portal_api_with_a_wrong_token_stops(server, tmp_path):
    env = portal_env(server) | sample_files(tmp_path) | {"EI_PORTAL_TOKEN": "wrong"}
    proc = run_seed("seed_portal_api.py", env, tmp_path)
    assert proc.returncode != 0
    assert "status code was not 200, but 401" in proc.stderr
    assert server.list_all() == []
