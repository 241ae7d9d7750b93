"""Tokens, JWTs and URL signatures appear in no log (at --debug too), no error message, no
file name in the cache, no process arguments and not in the mount table."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.portal_fixtures import clients


def secrets_of(portal) -> list[str]:
    client, _ = clients(portal.member)
    url = client.download_link("seen.txt")
    signature = [v for values in parse_qs(urlsplit(url).query).values() for v in values]
    return [portal.token, portal.jwt, portal.password, *[s for s in signature if len(s) >= 16]]


def test_no_secret_in_logs_messages_files_or_arguments(mount_portal, portal, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    m = mount_portal("--debug")
    (m.path / "seen.txt").write_bytes(b"hello")
    assert (m.path / "seen.txt").read_bytes() == b"hello"
    subprocess.run(["ls", "-lR", str(m.path)], check=True, capture_output=True)
    portal.server.app.state.faults.fail_next("upload_link", 401, times=5)
    with pytest.raises(OSError):
        (m.path / "refused.txt").write_bytes(b"no")
    canaries = secrets_of(portal)
    texts = {
        "mount log": m.log(),
        "server and test logs": caplog.text,
        "mount arguments": Path(f"/proc/{m.process.pid}/cmdline").read_bytes().decode(),
        "mount table": Path("/proc/self/mountinfo").read_text(),
        "cache file names": "\n".join(str(p) for p in m.cache_dir.rglob("*")),
        "journal records": "\n".join(p.read_text() for p in m.cache_dir.rglob("*.json")),
    }
    assert "DEBUG" in texts["mount log"]  # it really logged at debug level
    for where, text in texts.items():
        for secret in canaries:
            assert secret not in text, f"a secret leaked into the {where}"


def test_cli_errors_do_not_echo_secrets(portal, tmp_path):
    env = {**os.environ, **portal.env(member=True), "HOME": str(tmp_path)}
    env["EI_API_URL"] = "http://127.0.0.1:9/v1"
    result = subprocess.run(
        [sys.executable, "-m", "portalfs", "-v", "-v", "ls"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 6
    for secret in (portal.token, portal.jwt):
        assert secret not in result.stdout + result.stderr


def test_token_file_readable_by_others_is_refused(portal, tmp_path):
    token = tmp_path / "token"
    token.write_text(portal.token)
    token.chmod(0o640)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env.update(EI_API_URL=portal.api_url, EI_PORTAL_ID="1", HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "portalfs", "ls", "--token-file", str(token)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "chmod 600" in result.stderr
