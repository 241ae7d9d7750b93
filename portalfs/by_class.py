"""The one way an exception is looked up in a table keyed by exception class: the first
class of its MRO that the table lists wins, so a subclass inherits its parent's entry.

Pure lookup; the tables themselves (errno values, exit codes) live with their users."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def by_class(table: Mapping[type[BaseException], T], exc: BaseException, default: T) -> T:
    """The entry of the most specific class of `exc` in `table`, else `default`."""
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return default
