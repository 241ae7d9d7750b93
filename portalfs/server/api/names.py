"""Validation of the paths clients send: file names ("flowers/daisy.jpg") and listing
prefixes ("" or "flowers/"). Pure functions; never builds storage keys (storage/base.py does).
"""

from __future__ import annotations

MAX_PATH_BYTES = 1024  # S3's key limit
# Most local file systems (and FUSE) stop at 255 bytes per name; enforcing it on every
# backend keeps the backends interchangeable.
MAX_SEGMENT_BYTES = 255


class InvalidName(ValueError):
    """A path the API refuses; the message says what is wrong with it."""


def file_path(value: str, field: str = "fileName") -> str:
    """Returns `value` when it is a valid portal file path, else raises InvalidName."""
    if not value:
        raise InvalidName(f"{field} is empty")
    if value.startswith("/"):
        raise InvalidName(f"{field} must be relative to the portal root (no leading '/')")
    if value.endswith("/"):
        raise InvalidName(f"{field} names a folder (ends with '/'); a file name is needed")
    _check_text(value, field)
    for segment in value.split("/"):
        _check_segment(segment, field)
    return value


def folder_prefix(value: str, field: str = "prefix") -> str:
    """Returns the listing prefix in "" or "a/b/" form ("a/b" gets its slash), else raises."""
    if value == "":
        return ""
    if value.startswith("/"):
        raise InvalidName(f"{field} must be relative to the portal root: use '' for the root")
    normalised = value if value.endswith("/") else value + "/"
    _check_text(normalised, field)
    for segment in normalised[:-1].split("/"):
        _check_segment(segment, field)
    return normalised


def _check_text(value: str, field: str) -> None:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidName(f"{field} is not valid UTF-8 (lone surrogate)") from exc
    if size > MAX_PATH_BYTES:
        raise InvalidName(f"{field} is {size} bytes long; the limit is {MAX_PATH_BYTES}")
    bad = next((c for c in value if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        raise InvalidName(f"{field} contains control character U+{ord(bad):04X}")


def _check_segment(segment: str, field: str) -> None:
    if segment == "":
        raise InvalidName(f"{field} has an empty segment ('//')")
    if segment in (".", ".."):
        raise InvalidName(f"{field} has a '{segment}' segment; paths must be plain")
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        raise InvalidName(f"{field} has a name longer than {MAX_SEGMENT_BYTES} bytes")
