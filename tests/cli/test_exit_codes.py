"""Exit codes and errno values come from one lookup: the most specific listed class wins."""

from __future__ import annotations

import errno

from portalfs.by_class import by_class
from portalfs.cli import _exit_code
from portalfs.client import errors
from portalfs.credentials import CredentialsError
from portalfs.fuse.errno_map import errno_for


def test_the_most_specific_listed_class_wins():
    table = {errors.PortalError: "portal", errors.AuthError: "auth"}
    assert by_class(table, errors.TotpRequiredError("m"), "none") == "auth"
    assert by_class(table, errors.ConflictError("m"), "none") == "portal"
    assert by_class(table, ValueError("m"), "none") == "none"


def test_exit_codes_and_errno_values_of_subclasses():
    assert _exit_code(errors.TotpRequiredError("m")) == 3
    assert _exit_code(errors.LinkExpiredError("m")) == 4
    assert _exit_code(errors.RateLimitedError("m")) == 6
    assert _exit_code(errors.IntegrityError("m")) == 1
    assert _exit_code(CredentialsError("m")) == 2
    assert _exit_code(RuntimeError("m")) == 1
    assert errno_for(errors.NameTooLongError("m")) == errno.ENAMETOOLONG
    assert errno_for(errors.LinkExpiredError("m")) == errno.EACCES
    assert errno_for(RuntimeError("m")) == errno.EIO
