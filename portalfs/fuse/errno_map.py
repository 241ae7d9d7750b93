"""The one table from exceptions to errno values the kernel sees.

Walks the exception's MRO, so a subclass inherits its parent's errno; anything unknown is EIO.
"""

from __future__ import annotations

import errno

from ..by_class import by_class
from ..client import errors

ERRNO_BY_CLASS: dict[type[BaseException], int] = {
    errors.NotFoundError: errno.ENOENT,
    errors.AuthError: errno.EACCES,
    errors.AccessDeniedError: errno.EACCES,
    errors.NameTooLongError: errno.ENAMETOOLONG,
    # Deliberate: a name the portal cannot store (".", control characters) is invalid.
    errors.InvalidNameError: errno.EINVAL,
    errors.TooLargeError: errno.EFBIG,
    errors.RejectedError: errno.EIO,
    errors.ConflictError: errno.ESTALE,
    errors.UnavailableError: errno.EIO,
    errors.ProtocolError: errno.EIO,
    errors.IntegrityError: errno.EIO,
    errors.PortalError: errno.EIO,
}


def errno_for(exc: BaseException) -> int:
    """The errno for `exc`: its own if it is an OSError that has one, else from the table."""
    if isinstance(exc, OSError) and isinstance(exc.errno, int) and exc.errno > 0:
        return exc.errno
    return by_class(ERRNO_BY_CLASS, exc, errno.EIO)
