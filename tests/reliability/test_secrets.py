"""Tokens, JWTs and URL signatures appear in no log (at --debug too), no error message, no
file name in the cache, no process arguments and not in the mount table."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest


def record_issued_links(portal, monkeypatch) -> list[str]:
    """Every signed storage URL the server hands out from now on (upload and download)."""
    storage = portal.server.app.state.services.storage
    issued: list[str] = []
    for name in ("upload_url", "download_url"):
        sign = getattr(storage, name)

        def recording(*args, sign=sign, **kwargs):
            url = sign(*args, **kwargs)
            issued.append(url)
            return url

        monkeypatch.setattr(storage, name, recording)
    return issued


def signatures_in(urls: list[str]) -> set[str]:
    """The signature parameters of `urls` (`signature` locally, `X-Amz-Signature` on S3)."""
    return {
        value
        for url in urls
        for name, values in parse_qs(urlsplit(url).query).items()
        if "signature" in name.lower()
        for value in values
    }


def test_no_secret_in_logs_messages_files_or_arguments(mount_portal, portal, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    issued = record_issued_links(portal, monkeypatch)
    m = mount_portal("--debug")
    (m.path / "seen.txt").write_bytes(b"hello")
    assert (m.path / "seen.txt").read_bytes() == b"hello"
    subprocess.run(["ls", "-lR", str(m.path)], check=True, capture_output=True)
    portal.server.app.state.faults.fail_next("upload_link", 401, times=5)
    with pytest.raises(OSError):
        (m.path / "refused.txt").write_bytes(b"no")
    # The very links the mount received: one to upload seen.txt, one to read it back.
    signatures = signatures_in(issued)
    assert len(signatures) >= 2, issued
    canaries = [portal.token, portal.jwt, portal.password, *signatures]
    texts = {
        "mount log": m.log(),
        "server and test logs": caplog.text,
        "mount arguments": Path(f"/proc/{m.process.pid}/cmdline").read_bytes().decode(),
        "mount table": Path("/proc/self/mountinfo").read_text(),
        "cache file names": "\n".join(str(p) for p in m.cache_dir.rglob("*")),
        "journal records": "\n".join(journal_records(m.cache_dir)),
    }
    assert "DEBUG" in texts["mount log"]  # it really logged at debug level
    assert "refused.txt" in texts["journal records"]  # the records were really read
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


def journal_records(cache_dir) -> list[str]:
    """Every journal record of the mount: xattrs of its data files, or JSON files."""
    from portalfs.write.journal import RECORD_XATTR

    records = [p.read_text() for p in cache_dir.rglob("*.json")]
    for data in cache_dir.rglob("*.data"):
        with contextlib.suppress(OSError):
            records.append(os.getxattr(data, RECORD_XATTR).decode())
    return records
