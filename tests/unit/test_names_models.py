"""Local name checks and JSON parsing: what is refused before any request is sent."""

from __future__ import annotations

import pytest

from portalfs.client import errors
from portalfs.client.models import ListPage, PortalFile, md5_from_etag
from portalfs.client.names import check_portal_path, folder_prefix


@pytest.mark.parametrize(
    "good",
    ["a.jpg", "flowers/daisy.jpg", "spaces in name/ünïcødé.txt", "a" * 255, ".hidden", "c1\x80ok"],
)
def test_accepts_names_a_portal_can_store(good):
    assert check_portal_path(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/abs",
        "a//b",
        "a/./b",
        "../up",
        "a/..",
        "tab\there",
        "nul\0",
        "unit\x1fseparator",
        "del\x7f",
        "a" * 256,
        "x/" * 600 + "y",
        "trailing/",
    ],
)
def test_refuses_names_a_portal_cannot_store(bad):
    with pytest.raises(errors.InvalidNameError):
        check_portal_path(bad)


def test_folder_prefix_forms():
    assert folder_prefix("") == "" and folder_prefix("/") == ""
    assert folder_prefix("a/b") == "a/b/" == folder_prefix("/a/b/")


@pytest.mark.parametrize(
    ("etag", "md5"),
    [
        ('"0cc175b9c0f1b6a831c399e269772661"', "0cc175b9c0f1b6a831c399e269772661"),
        ("0CC175B9C0F1B6A831C399E269772661", "0cc175b9c0f1b6a831c399e269772661"),
        ('"0cc175b9c0f1b6a831c399e269772661-3"', None),
        (None, None),
        ("", None),
    ],
)
def test_md5_from_etag(etag, md5):
    assert md5_from_etag(etag) == md5


def test_parses_a_listing_page():
    page = ListPage.from_json(
        {
            "success": True,
            "files": [
                {"name": "f", "path": "f/", "type": "folder"},
                {
                    "name": "a.jpg",
                    "path": "a.jpg",
                    "type": "file",
                    "size": 3,
                    "ETag": '"900150983cd24fb0d6963f7d28e17f72"',
                    "addedDate": "2026-01-02T03:04:05Z",
                },
            ],
            "continuationToken": "next",
        }
    )
    folder, file = page.files
    assert folder.is_folder and not file.is_folder
    assert file.size == 3 and file.md5 == "900150983cd24fb0d6963f7d28e17f72"
    assert file.added.year == 2026 and file.added.tzinfo is not None
    assert page.next_token == "next"


@pytest.mark.parametrize(
    "raw",
    [
        {"name": "a", "path": "a", "type": "symlink"},
        {"path": "a", "type": "file"},
        {"name": 3, "path": "a", "type": "file"},
        ["not", "an", "object"],
    ],
)
def test_malformed_entries_are_protocol_errors(raw):
    with pytest.raises(errors.ProtocolError):
        PortalFile.from_json(raw)


def test_bool_is_not_a_size():
    assert (
        PortalFile.from_json({"name": "a", "path": "a", "type": "file", "size": True}).size is None
    )
