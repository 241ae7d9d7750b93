"""The FUSE options a `portalfs mount` command line turns into."""

from __future__ import annotations

from portalfs.cli import build_parser
from portalfs.cli_mount import _fuse_options
from portalfs.config import MountConfig


def options_for(*argv: str) -> dict[str, object]:
    args = build_parser().parse_args(["mount", *argv, "/mnt/p"])
    return _fuse_options(args, MountConfig(cache_dir="/tmp/c", metadata_ttl_s=args.metadata_ttl))


def test_allow_other_turns_on_default_permissions():
    assert "allow_other" not in options_for()
    options = options_for("--allow-other")
    assert options["allow_other"] is True and options["default_permissions"] is True


def test_kernel_caches_follow_the_metadata_ttl():
    options = options_for("--metadata-ttl", "7")
    assert options["attr_timeout"] == options["entry_timeout"] == 7
