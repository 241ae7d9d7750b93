"""Fixtures for these tests come from tests/portal_fixtures.py, tests/fs and tests/mount."""

from tests.fs.conftest import make_fs  # noqa: F401
from tests.mount.conftest import mount_portal  # noqa: F401
from tests.portal_fixtures import portal  # noqa: F401
