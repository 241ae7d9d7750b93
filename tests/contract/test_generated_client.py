"""The official generated Python client (edgeimpulse-api) against this server: it builds
the requests and deserialises the answers itself, so any drift from the contract shows."""

from __future__ import annotations

import hashlib

import pytest
import requests
from edgeimpulse_api import ApiClient, Configuration, LoginApi, UploadPortalApi
from edgeimpulse_api.exceptions import ApiException
from edgeimpulse_api.models.create_signed_upload_link_request import (
    CreateSignedUploadLinkRequest,
)
from edgeimpulse_api.models.delete_portal_file_request import DeletePortalFileRequest
from edgeimpulse_api.models.download_portal_file_request import DownloadPortalFileRequest
from edgeimpulse_api.models.get_jwt_request import GetJWTRequest
from edgeimpulse_api.models.list_portal_files_in_folder_request import (
    ListPortalFilesInFolderRequest,
)
from edgeimpulse_api.models.rename_portal_file_request import RenamePortalFileRequest


def client(server, jwt: str | None = None) -> ApiClient:
    api_key = {"JWTHttpHeaderAuthentication": jwt} if jwt else {}
    return ApiClient(Configuration(host=server.api_url, api_key=api_key))


def test_generated_client_full_flow(any_server):
    token = {"x-token": any_server.portal_token}
    login = LoginApi(client(any_server)).login(
        GetJWTRequest(
            username=any_server.bootstrap["username"], password=any_server.bootstrap["password"]
        )
    )
    portals = UploadPortalApi(client(any_server, login.token))
    pid = any_server.portal_id
    data = b"generated client"
    link = portals.create_signed_upload_link(
        pid,
        CreateSignedUploadLinkRequest(
            fileName="docs/g.txt", fileSize=len(data), fileHash=hashlib.md5(data).hexdigest()
        ),
        _headers=token,
    )
    assert requests.put(link.url, data=data, timeout=10).status_code == 200
    info = portals.get_portal_info(pid, _headers=token)
    assert info.organization_id == 1
    listing = portals.list_portal_files_in_folder(
        pid, ListPortalFilesInFolderRequest(prefix="docs/"), _headers=token
    )
    assert [(f.path, f.e_tag) for f in listing.files] == [
        ("docs/g.txt", hashlib.md5(data).hexdigest())
    ]
    url = portals.download_portal_file(
        pid, DownloadPortalFileRequest(path="docs/g.txt"), _headers=token
    ).url
    assert requests.get(url, timeout=10).content == data
    portals.rename_portal_file(
        pid, RenamePortalFileRequest(oldPath="docs/g.txt", newPath="h.txt"), _headers=token
    )
    assert portals.delete_portal_file(
        pid, DeletePortalFileRequest(path="h.txt"), _headers=token
    ).success
    assert (
        portals.list_portal_files_in_folder(
            pid, ListPortalFilesInFolderRequest(prefix=""), _headers=token
        ).files
        == []
    )


def test_generated_client_sees_http_errors(server):
    portals = UploadPortalApi(client(server))
    with pytest.raises(ApiException) as caught:
        portals.download_portal_file(
            server.portal_id,
            DownloadPortalFileRequest(path="a.txt"),
            _headers={"x-token": server.portal_token},
        )
    assert caught.value.status == 403
