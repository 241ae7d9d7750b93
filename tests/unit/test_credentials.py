"""Where credentials come from: flags, files, links, the environment and saved logins."""

from __future__ import annotations

import base64
import json
import os

import pytest

from portalfs import credentials
from portalfs.credentials import CredentialsError, CredentialSources, resolve


def secret_file(tmp_path, name, text, mode=0o600):
    path = tmp_path / name
    path.write_text(text + "\n")
    os.chmod(path, mode)
    return str(path)


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def test_environment_like_the_seed_script():
    env = {
        "EI_API_URL": "http://h:1/v1/",
        "EI_PORTAL_ID": "122",
        "EI_PORTAL_TOKEN": "tok",
        "EI_JWT_TOKEN": "jwt",
    }
    creds = resolve(CredentialSources(), env)
    assert (creds.api_url, creds.portal_id, creds.portal_token, creds.jwt) == (
        "http://h:1/v1",
        122,
        "tok",
        "jwt",
    )


def test_default_api_is_the_real_service():
    assert resolve(CredentialSources(), {}).api_url == "https://studio.edgeimpulse.com/v1"


def test_flags_beat_link_beats_environment(tmp_path):
    link = secret_file(tmp_path, "link", "http://127.0.0.1:4800/portals/7?token=fromlink")
    token = secret_file(tmp_path, "tok", "fromfile")
    env = {"EI_PORTAL_ID": "1", "EI_PORTAL_TOKEN": "fromenv", "EI_API_URL": "http://env/v1"}
    creds = resolve(CredentialSources(link_file=link), env)
    assert (creds.api_url, creds.portal_id, creds.portal_token) == (
        "http://127.0.0.1:4800/v1",
        7,
        "fromlink",
    )
    creds = resolve(CredentialSources(link_file=link, token_file=token, portal_id=9), env)
    assert (creds.portal_id, creds.portal_token) == (9, "fromfile")


def test_link_from_environment():
    creds = resolve(CredentialSources(), {"EI_PORTAL_LINK": "https://x.test/portals/5?token=t"})
    assert (creds.api_url, creds.portal_id, creds.portal_token) == ("https://x.test/v1", 5, "t")


def test_secret_file_readable_by_others_is_refused(tmp_path):
    path = secret_file(tmp_path, "tok", "t", mode=0o644)
    with pytest.raises(CredentialsError, match="chmod 600"):
        resolve(CredentialSources(token_file=path), {})


def test_bad_portal_id_in_environment():
    with pytest.raises(CredentialsError, match="EI_PORTAL_ID"):
        resolve(CredentialSources(), {"EI_PORTAL_ID": "abc"})


def test_saved_login_is_0600_and_used_for_its_api_only(tmp_path):
    path = credentials.save_jwt("http://a/v1/", "jwt-a")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert resolve(CredentialSources(api_url="http://a/v1"), {}).jwt == "jwt-a"
    assert resolve(CredentialSources(api_url="http://b/v1"), {}).jwt is None
    same_api = {"EI_JWT_TOKEN": "e", "EI_API_URL": "http://a/v1"}
    assert resolve(CredentialSources(api_url="http://a/v1"), same_api).jwt == "e"


def test_jwt_expiry_is_read_without_verifying():
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 2000000000}).encode()).rstrip(b"=")
    token = f"e30.{claims.decode()}.sig"
    assert credentials.jwt_expiry(token).year == 2033
    assert credentials.jwt_expiry("garbage") is None


def test_secrets_are_hidden_from_repr():
    creds = resolve(
        CredentialSources(), {"EI_PORTAL_TOKEN": "canary-tok", "EI_JWT_TOKEN": "canary-jwt"}
    )
    assert "canary" not in repr(creds)


def test_environment_jwt_goes_only_to_the_api_named_beside_it():
    # EI_JWT_TOKEN belongs to EI_API_URL, or to the default service when that is unset.
    env = {"EI_JWT_TOKEN": "canary-jwt", "EI_PORTAL_LINK": "https://evil.test/portals/5?token=t"}
    with pytest.raises(CredentialsError) as refused:
        resolve(CredentialSources(), env)
    message = str(refused.value)
    assert "studio.edgeimpulse.com" in message and "evil.test" in message
    assert "canary" not in message
    with pytest.raises(CredentialsError, match=r"evil\.test"):
        resolve(CredentialSources(api_url="https://evil.test/v1"), {"EI_JWT_TOKEN": "j"})
    same = {**env, "EI_API_URL": "https://evil.test/v1/"}
    assert resolve(CredentialSources(), same).jwt == "canary-jwt"
    default = {"EI_JWT_TOKEN": "j", "EI_PORTAL_LINK": "https://studio.edgeimpulse.com/portals/1"}
    assert resolve(CredentialSources(), default).jwt == "j"


def test_jwt_file_goes_only_to_api_url_or_ei_api_url(tmp_path):
    jwt = secret_file(tmp_path, "jwt", "canary-jwt")
    link = secret_file(tmp_path, "link", "http://other.test:81/portals/5?token=t")
    with pytest.raises(CredentialsError) as refused:
        resolve(CredentialSources(jwt_file=jwt, link_file=link), {"EI_API_URL": "http://a/v1"})
    assert "other.test:81" in str(refused.value) and "canary" not in str(refused.value)
    with_flag = CredentialSources(jwt_file=jwt, link_file=link, api_url="http://other.test:81/v1")
    assert resolve(with_flag, {}).jwt == "canary-jwt"
    with_env = {"EI_API_URL": "http://other.test:81/v1"}
    assert resolve(CredentialSources(jwt_file=jwt, link_file=link), with_env).jwt == "canary-jwt"
