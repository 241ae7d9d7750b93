"""The FUSE options a `portalfs mount` command line turns into."""

from __future__ import annotations

import pytest

from portalfs.cli import build_parser
from portalfs.cli_common import UsageError
from portalfs.cli_mount import _fuse_options
from portalfs.config import MountConfig


def options_for(*argv: str) -> dict[str, object]:
    args = build_parser().parse_args(["mount", *argv, "/mnt/p"])
    config = MountConfig(
        cache_dir="/tmp/c", metadata_ttl_s=args.metadata_ttl, read_only=args.read_only
    )
    return _fuse_options(args, config)


def test_allow_other_turns_on_default_permissions():
    assert "allow_other" not in options_for()
    options = options_for("--allow-other")
    assert options["allow_other"] is True and options["default_permissions"] is True


def test_kernel_caches_follow_the_metadata_ttl():
    options = options_for("--metadata-ttl", "7")
    assert options["attr_timeout"] == options["entry_timeout"] == 7


def test_allow_other_given_as_o_also_turns_on_default_permissions():
    options = options_for("-o", "allow_other")
    assert options["allow_other"] is True and options["default_permissions"] is True


def test_default_permissions_with_a_value_is_refused():
    with pytest.raises(UsageError, match="default_permissions takes no value"):
        options_for("-o", "allow_other,default_permissions=0")


def test_read_only_is_passed_to_the_kernel():
    assert options_for("--read-only")["ro"] is True
    assert "ro" not in options_for()
