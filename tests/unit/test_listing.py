"""Listing entries become mount entries; hostile names are skipped, the rest survive."""

from __future__ import annotations

from portalfs.client.models import PortalFile
from portalfs.fs.listing import entries_of


def f(name, kind="file"):
    return PortalFile(name=name, path=name, is_folder=kind == "folder", size=1, etag='"e"')


def test_listing_skips_hostile_names(caplog):
    files = [
        f(".."),
        f("."),
        f(""),
        f("a/b"),
        f("nul\0"),
        f("x" * 256),
        f("ok.txt"),
        f("sub/", "folder"),
        f("ok.txt"),
        f("\udcff"),
    ]
    entries = entries_of(files)
    assert [(e.name, e.is_dir) for e in entries] == [("ok.txt", False), ("sub", True)]
    assert caplog.text.count("skipping a listed entry") == 7
