"""What a portal path may be: the checks the client makes before sending a name anywhere.

Pure functions; no I/O. The server checks the same rules again on its side.
"""

from __future__ import annotations

import re

from .errors import InvalidNameError, NameTooLongError

MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255
# One C-level scan per name: every listed name is checked, so this runs per entry.
_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f]")


def check_portal_path(portal_path: str) -> str:
    """Return `portal_path` (e.g. "flowers/daisy.jpg") if a portal can store it, else raise."""
    if not portal_path:
        raise InvalidNameError("a file name may not be empty")
    if portal_path.startswith("/"):
        raise InvalidNameError("a portal path is relative: it may not start with '/'")
    try:
        encoded = portal_path.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidNameError("a file name must be valid UTF-8") from exc
    if len(encoded) > MAX_PATH_BYTES:
        raise NameTooLongError(f"a portal path may be at most {MAX_PATH_BYTES} bytes")
    for segment in portal_path.split("/"):
        check_segment(segment)
    return portal_path


def check_segment(segment: str) -> str:
    """Return one path component if it is a name a portal can hold, else raise."""
    if segment in ("", ".", ".."):
        raise InvalidNameError("a path may not contain empty, '.' or '..' components")
    if _CONTROL_CHAR.search(segment):
        raise InvalidNameError("a file name may not contain control characters")
    if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        raise NameTooLongError(f"a name may be at most {MAX_SEGMENT_BYTES} bytes")
    return segment


def folder_prefix(folder: str) -> str:
    """The listing prefix of a folder path: "" for the root, "a/b/" for "a/b" or "/a/b/"."""
    stripped = folder.strip("/")
    if not stripped:
        return ""
    check_portal_path(stripped)
    return stripped + "/"
