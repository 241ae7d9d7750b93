"""The only conversions between mount paths ("/a/b.jpg") and portal paths ("a/b.jpg").

Pure functions; no I/O.
"""

from __future__ import annotations

from .client.names import check_segment


def to_portal(path: str) -> str:
    """Portal path of a mount path: "/a/b.jpg" -> "a/b.jpg", "/" -> ""."""
    return path.strip("/")


def from_portal(portal_path: str) -> str:
    """Mount path of a portal path: "a/b.jpg" -> "/a/b.jpg", "" -> "/"."""
    return "/" + portal_path.strip("/")


def split(path: str) -> tuple[str, str]:
    """(parent mount path, name): "/a/b.jpg" -> ("/a", "b.jpg"); "/a" -> ("/", "a")."""
    parent, _, name = path.rstrip("/").rpartition("/")
    return parent or "/", name


def join(parent: str, name: str) -> str:
    """Mount path of `name` inside the folder `parent`."""
    return f"{parent.rstrip('/')}/{name}"


def check_new_name(path: str) -> str:
    """`path` if a portal can store its last component, else InvalidNameError."""
    check_segment(split(path)[1])
    return path
