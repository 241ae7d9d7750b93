"""Every route's JSON, successes and failures, parsed by the edgeimpulse-api models."""

from __future__ import annotations

import pytest
import requests
from edgeimpulse_api.models.create_signed_upload_link_response import (
    CreateSignedUploadLinkResponse,
)
from edgeimpulse_api.models.download_portal_file_response import DownloadPortalFileResponse
from edgeimpulse_api.models.generic_api_response import GenericApiResponse
from edgeimpulse_api.models.get_jwt_response import GetJWTResponse
from edgeimpulse_api.models.list_portal_files_in_folder_response import (
    ListPortalFilesInFolderResponse,
)
from edgeimpulse_api.models.portal_info_response import PortalInfoResponse
from pydantic.v1 import ValidationError


def parsed(model, resp: requests.Response, status: int = 200):
    assert resp.status_code == status, resp.text
    return model.parse_obj(resp.json())


def test_login(server):
    body = {"username": server.bootstrap["username"], "password": server.bootstrap["password"]}
    ok = parsed(GetJWTResponse, requests.post(f"{server.api_url}/api-login", json=body, timeout=10))
    assert ok.success and ok.token
    body["password"] = "wrong"
    bad = requests.post(f"{server.api_url}/api-login", json=body, timeout=10)
    failed = parsed(GetJWTResponse, bad, 401)
    assert not failed.success and failed.error and failed.token is None


def test_portal_info(any_server, request):
    info = parsed(PortalInfoResponse, any_server.call("GET", ""))
    assert info.success and info.organization_id == 1 and info.name == "Upload portal"
    # Each backend names its own provider (before, either was accepted on either).
    backend = request.node.callspec.params["any_server"]
    assert str(info.storage_provider) == {"local": "other", "s3": "s3"}[backend]


def test_listing_with_files_folders_and_paging(start_server):
    server = start_server(page_size=2)
    server.upload("flowers/daisy.jpg", b"daisy")
    server.upload("a.txt", b"a")
    server.upload("b.txt", b"b")
    first = parsed(ListPortalFilesInFolderResponse, server.call("POST", "files", {"prefix": ""}))
    assert first.continuation_token and len(first.files) == 2
    body = {"prefix": "", "continuationToken": first.continuation_token}
    second = parsed(ListPortalFilesInFolderResponse, server.call("POST", "files", body))
    assert second.continuation_token is None
    [folder] = second.files
    assert (folder.type, folder.name, folder.path) == ("folder", "flowers", "flowers/")
    inner = parsed(
        ListPortalFilesInFolderResponse, server.call("POST", "files", {"prefix": "flowers/"})
    )
    [daisy] = inner.files
    assert (daisy.type, daisy.size, daisy.added_date.tzinfo is not None) == ("file", 5, True)


def test_listing_on_s3(server_s3):
    server_s3.upload("flowers/daisy.jpg", b"daisy")
    server_s3.upload("a.txt", b"a")
    listing = parsed(
        ListPortalFilesInFolderResponse, server_s3.call("POST", "files", {"prefix": ""})
    )
    assert [(f.path, f.type) for f in listing.files] == [("a.txt", "file"), ("flowers/", "folder")]


def test_upload_link_with_and_without_etag(any_server):
    fresh = parsed(CreateSignedUploadLinkResponse, any_server.upload_link("a.txt", b"a"))
    assert fresh.url and fresh.e_tag is None
    any_server.upload("a.txt", b"a")
    again = parsed(CreateSignedUploadLinkResponse, any_server.upload_link("a.txt", b"a"))
    assert again.e_tag and again.url


def test_download_delete_rename(any_server):
    any_server.upload("a.txt", b"a")
    jwt = any_server.member_jwt()
    download = any_server.call("POST", "files/download", {"path": "a.txt"}, jwt=jwt)
    assert parsed(DownloadPortalFileResponse, download).url
    rename = any_server.call(
        "POST", "files/rename", {"oldPath": "a.txt", "newPath": "b.txt"}, jwt=jwt
    )
    assert parsed(GenericApiResponse, rename).success
    delete = any_server.call("POST", "files/delete", {"path": "b.txt"}, jwt=jwt)
    assert parsed(GenericApiResponse, delete).success


@pytest.mark.parametrize(
    "method, route, body, kwargs, status",
    [
        ("GET", "", None, {"token": None}, 401),
        ("POST", "files", {"prefix": 1}, {}, 400),
        ("POST", "files", {"prefix": "", "continuationToken": "x"}, {}, 400),
        ("POST", "upload-link", {"fileName": "../x", "fileSize": 1, "fileHash": "0" * 32}, {}, 400),
        ("POST", "files/download", {"path": "a.txt"}, {}, 403),
        ("POST", "files/delete", {"path": "a.txt"}, {"token": "bad"}, 401),
        ("POST", "files/rename", {"oldPath": "x", "newPath": "y"}, {"member": True}, 404),
        ("GET", "", None, {"portal_id": 99}, 404),
        (
            "POST",
            "upload-link",
            {"fileName": "a.txt/b", "fileSize": 1, "fileHash": "0" * 32},
            {},
            409,
        ),
        ("POST", "files", {"prefix": "x" * 2 * 1024**2}, {}, 413),
    ],
)
def test_every_failure_is_a_generic_api_response(server, method, route, body, kwargs, status):
    server.upload("a.txt", b"a")
    if kwargs.pop("member", False):
        kwargs["jwt"] = server.member_jwt()
    failure = parsed(GenericApiResponse, server.call(method, route, body, **kwargs), status)
    assert failure.success is False and failure.error


def test_the_models_do_reject_a_wrong_shape():
    # Guards the guard: parse_obj is strict enough to catch a protocol slip.
    with pytest.raises(ValidationError):
        ListPortalFilesInFolderResponse.parse_obj({"success": True, "files": [{"name": "x"}]})
    with pytest.raises(ValidationError):
        PortalInfoResponse.parse_obj({"success": True, "name": "x", "organizationId": "1"})
