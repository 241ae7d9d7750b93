"""Fixtures for these tests come from tests/portal_fixtures.py."""

from tests.portal_fixtures import portal  # noqa: F401
