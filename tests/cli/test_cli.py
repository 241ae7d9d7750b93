"""The command line end to end, as a shell user runs it, against a server on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, env: dict, stdin: str | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "portalfs", *args],
        env=full,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def home(tmp_path) -> dict:
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "home/.config")}


def sample(root: Path) -> dict[str, bytes]:
    files = {"set/a.txt": b"alpha\n", "set/sub dir/ü.bin": os.urandom(200_000), "set/e": b""}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_upload_then_again_skips_everything(portal, tmp_path, home):
    sample(tmp_path)
    env = {**portal.env(), **home}
    first = cli("upload", str(tmp_path / "set"), "--to", "in", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("uploaded") == 3
    puts = portal.puts()
    second = cli("upload", str(tmp_path / "set"), "--to", "in", env=env)
    assert second.returncode == 0
    assert second.stdout.count("skipped") == 3 and "uploaded" not in second.stdout
    assert portal.puts() == puts


def test_ls_plain_long_and_recursive(portal, tmp_path, home):
    sample(tmp_path)
    env = {**portal.env(), **home}
    cli("upload", str(tmp_path / "set"), env=env)
    assert cli("ls", env=env).stdout.split() == ["set/"]
    assert cli("ls", "set", env=env).stdout.splitlines() == ["a.txt", "e", "sub dir/"]
    recursive = cli("ls", "-R", env=env).stdout.splitlines()
    assert "set/sub dir/ü.bin" in recursive
    long = cli("ls", "-l", "set/sub dir", env=env).stdout
    assert "200000" in long and "ü.bin" in long


def test_download_needs_a_login_then_works(portal, tmp_path, home):
    files = sample(tmp_path)
    env = {**portal.env(), **home}
    cli("upload", str(tmp_path / "set"), "--to", "in", env=env)
    denied = cli("download", "in/set", "-o", str(tmp_path / "out"), env=env)
    assert denied.returncode == 4 and "login" in denied.stderr
    login = cli(
        "login",
        "--username",
        portal.username,
        "--password-stdin",
        "--save",
        env=env,
        stdin=portal.password + "\n",
    )
    assert login.returncode == 0, login.stderr
    assert portal.jwt not in login.stdout + login.stderr
    saved = Path(home["XDG_CONFIG_HOME"]) / "portalfs/login.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    # Like cp -r: into an existing folder the folder keeps its name, else it becomes -o.
    (tmp_path / "into").mkdir()
    got = cli("download", "in/set", "-o", str(tmp_path / "into"), env=env)
    assert got.returncode == 0, got.stderr
    renamed = cli("download", "in/set", "-o", str(tmp_path / "out"), env=env)
    assert renamed.returncode == 0, renamed.stderr
    for rel, data in files.items():
        assert (tmp_path / "into" / rel).read_bytes() == data
        assert (tmp_path / "out" / rel.removeprefix("set/")).read_bytes() == data
    one = cli("download", "in/set/a.txt", "-o", str(tmp_path / "a-copy.txt"), env=env)
    assert one.returncode == 0 and (tmp_path / "a-copy.txt").read_bytes() == b"alpha\n"


def test_login_prints_an_export_line_like_the_seed_script(portal, home):
    result = cli(
        "login",
        "--username",
        portal.username,
        "--password-stdin",
        env={**portal.env(), **home},
        stdin=portal.password + "\n",
    )
    assert result.returncode == 0
    assert result.stdout.startswith("export EI_JWT_TOKEN=ey")


def test_wrong_password_wrong_token_and_unreachable_server(portal, home):
    bad_login = cli(
        "login",
        "--username",
        portal.username,
        "--password-stdin",
        env={**portal.env(), **home},
        stdin="nope\n",
    )
    assert bad_login.returncode == 3
    wrong = cli("ls", env={**portal.env(), **home, "EI_PORTAL_TOKEN": "f" * 64})
    assert wrong.returncode == 3 and "token" in wrong.stderr
    assert "f" * 64 not in wrong.stderr
    down = cli("ls", env={**portal.env(), **home, "EI_API_URL": "http://127.0.0.1:9/v1"})
    assert down.returncode == 6 and "reachable" in down.stderr


def test_missing_settings_say_what_to_set(home):
    result = cli("ls", env=home)
    assert result.returncode == 2 and "EI_PORTAL_ID" in result.stderr


def test_token_file_must_be_private(portal, tmp_path, home):
    token_file = tmp_path / "token"
    token_file.write_text(portal.token)
    token_file.chmod(0o644)
    env = {**home, "EI_API_URL": portal.api_url, "EI_PORTAL_ID": "1"}
    result = cli("ls", "--token-file", str(token_file), env=env)
    assert result.returncode == 2 and "chmod 600" in result.stderr
    token_file.chmod(0o600)
    assert cli("ls", "--token-file", str(token_file), env=env).returncode == 0


def test_link_file_gives_api_id_and_token(portal, tmp_path, home):
    link = tmp_path / "link"
    link.write_text(f"{portal.server.url}/portals/{portal.portal_id}?token={portal.token}\n")
    link.chmod(0o600)
    result = cli("info", "--link-file", str(link), env=home)
    assert result.returncode == 0, result.stderr
    assert "upload and list only" in result.stdout


def test_bad_names_are_reported_and_the_rest_uploads(portal, tmp_path, home):
    (tmp_path / "set").mkdir()
    (tmp_path / "set/ok.txt").write_bytes(b"ok")
    (tmp_path / "set/bad\x01name").write_bytes(b"bad")
    result = cli("upload", str(tmp_path / "set"), env={**portal.env(), **home})
    assert result.returncode == 1
    assert "uploaded    set/ok.txt" in result.stdout and "control characters" in result.stderr


def test_admin_create_portal_prints_json(portal, tmp_path):
    data_dir = portal.server.config.data_dir
    result = cli("admin", "create-portal", "--data", str(data_dir), "--name", "Second", env={})
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["id"] != portal.portal_id and len(created["token"]) >= 32


def test_ls_of_a_file_shows_it_and_of_nothing_is_not_found(portal, tmp_path, home):
    sample(tmp_path)
    env = {**portal.env(), **home}
    cli("upload", str(tmp_path / "set"), env=env)
    assert cli("ls", "set/a.txt", env=env).stdout.strip() == "set/a.txt"
    missing = cli("ls", "set/nothing", env=env)
    assert missing.returncode == 5 and "no such file" in missing.stderr


def test_password_stdin_needs_a_username(portal, home):
    result = cli("login", "--password-stdin", env={**portal.env(), **home}, stdin="pw\n")
    assert result.returncode == 2 and "--username" in result.stderr


def test_a_secret_given_to_an_abbreviated_flag_is_not_printed_back(home):
    # "--token" once matched --token-file, and "cannot read <the token>" followed.
    for command in ("ls", "upload", "mount"):
        done = cli(command, "--token", "CANARY-SECRET-1", env=home)
        assert done.returncode != 0
        assert "CANARY-SECRET-1" not in done.stdout + done.stderr


def test_mount_with_two_paths_says_the_first_is_not_a_link(portal, tmp_path, home):
    done = cli("mount", str(tmp_path / "a"), str(tmp_path / "b"), env={**portal.env(), **home})
    assert done.returncode == 2 and "is not a portal link" in done.stderr


def test_recover_says_why_and_sends_once_the_server_answers(portal, tmp_path, home):
    import hashlib

    from portalfs.write.journal import Journal

    data = b"left behind\n"
    source = tmp_path / "bytes"
    source.write_bytes(data)
    cache = tmp_path / "cache"
    Journal(cache / "unsent").record(source, "rec/r.txt", len(data), hashlib.md5(data).hexdigest())
    down = {**portal.env(), **home, "EI_API_URL": "http://127.0.0.1:9/v1"}
    failed = cli("recover", "--cache-dir", str(cache), env=down)
    assert failed.returncode == 6 and "1 still unsent" in failed.stdout
    assert "127.0.0.1:9" in failed.stderr or "unavailable" in failed.stderr.lower()
    done = cli("recover", "--cache-dir", str(cache), env={**portal.env(), **home})
    assert done.returncode == 0 and "1 sent, 0 still unsent" in done.stdout
    assert cli("ls", "rec", env={**portal.env(), **home}).stdout.split() == ["r.txt"]


def test_recover_list_shows_unsent_and_refused_files_and_changes_nothing(portal, tmp_path, home):
    import hashlib

    from portalfs.write.journal import Journal

    cache = tmp_path / "cache"
    journal = Journal(cache / "unsent")
    for name in ("a.txt", "big.bin"):
        (tmp_path / name).write_bytes(name.encode())
        journal.record(
            tmp_path / name, f"d/{name}", len(name), hashlib.md5(name.encode()).hexdigest()
        )
    journal.set_aside(journal.entries()[-1], "upload link: HTTP 400: too large")
    before = sorted(p.name for p in cache.rglob("*"))
    listed = cli("recover", "--list", "--cache-dir", str(cache), env=home)  # no credentials
    assert listed.returncode == 1, listed.stderr  # something waits
    assert (
        "unsent, sent by a running mount or portalfs recover: 1" in listed.stdout
        and "d/a.txt" in listed.stdout
    )
    assert "refused for good: 1" in listed.stdout and "too large" in listed.stdout
    assert sorted(p.name for p in cache.rglob("*")) == before
    empty = cli("recover", "--list", "--cache-dir", str(tmp_path / "none"), env=home)
    assert (
        empty.returncode == 0
        and "unsent, sent by a running mount or portalfs recover: 0" in empty.stdout
    )


def test_a_member_login_is_not_sent_to_another_portals_server(portal, tmp_path, home):
    from tests.portal_fixtures import start_portal

    other = start_portal(tmp_path / "other")
    before = other.server.app.state.metrics.snapshot()  # its own login, so far
    try:
        link = tmp_path / "link"
        link.write_text(f"{other.server.url}/portals/{other.portal_id}?token={other.token}\n")
        link.chmod(0o600)
        jwt_file = tmp_path / "jwt"
        jwt_file.write_text(portal.jwt)
        jwt_file.chmod(0o600)
        member = {**portal.env(member=True), **home}
        for how in (
            ["ls", "--link-file", str(link)],
            ["upload", str(link), "--link-file", str(link)],
        ):
            done = cli(*how, env=member)
            assert done.returncode == 2 and "not sent there" in done.stderr
            assert portal.jwt not in done.stdout + done.stderr
        by_file = cli("ls", "--link-file", str(link), "--jwt-file", str(jwt_file), env=home)
        assert by_file.returncode == 2 and "not sent there" in by_file.stderr
        assert other.server.app.state.metrics.snapshot() == before  # no request reached it
        # Named in the same place, the login goes there.
        same = cli(
            "ls",
            "--link-file",
            str(link),
            env={**home, "EI_JWT_TOKEN": other.jwt, "EI_API_URL": other.api_url},
        )
        assert same.returncode == 0, same.stderr
    finally:
        other.server.stop()


def test_an_expired_login_is_reported_with_its_time_from_every_source(portal, tmp_path, home):
    import base64

    claims = base64.urlsafe_b64encode(json.dumps({"exp": 1600000000}).encode()).rstrip(b"=")
    expired = f"e30.{claims.decode()}.sig"  # 2020-09-13 12:26 UTC; the server refuses it
    jwt_file = tmp_path / "jwt"
    jwt_file.write_text(expired)
    jwt_file.chmod(0o600)
    saved = Path(home["XDG_CONFIG_HOME"]) / "portalfs/login.json"
    saved.parent.mkdir(parents=True)
    saved.write_text(json.dumps({"logins": {portal.api_url: expired}}))
    saved.chmod(0o600)
    env = {**portal.env(), **home}
    runs = {
        "environment": cli("ls", env={**env, "EI_JWT_TOKEN": expired}),
        "file": cli("ls", "--jwt-file", str(jwt_file), env=env),
        "saved": cli("ls", env=env),
    }
    for source, done in runs.items():
        assert done.returncode == 3, (source, done.stderr)
        assert "your login expired at 2020-09-13 12:26 UTC" in done.stderr, source
