"""Resender: uploads what the journal holds, at mount start, every so often while mounted,
and for `portalfs recover`. The newest entry of a path wins; older ones are dropped, and an
entry the portal refuses for good is set aside, not tried again.

Thread-safe: one sender at a time (a lock); the background thread can be stopped, and
survives any failure of a round (logged at ERROR), so unsent files are never left behind by
a thread that died where nobody sees it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..client import errors
from .journal import Journal, Unsent
from .upload import Uploader, UploadRequest, refused_for_good

log = logging.getLogger(__name__)

_SENT, _UNSENT, _REFUSED, _SKIPPED = "sent", "unsent", "refused", "skipped"


class Resender:
    """Sends journal entries; `start()` runs it in the background every `interval_s`."""

    def __init__(
        self,
        journal: Journal,
        uploader: Uploader,
        interval_s: float = 30.0,
        on_sent: Callable[[Unsent], None] | None = None,
    ) -> None:
        self.journal = journal
        self.uploader = uploader
        self.interval_s = interval_s
        # Told what is now stored, so a mount's next close() compares against it (and does
        # not skip bytes equal to what the portal held before this resend).
        self.on_sent = on_sent
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Why the last entry that could not be sent was not: `portalfs recover` reports it.
        self.last_error: errors.PortalError | OSError | None = None
        self.rounds = 0  # background rounds finished, failed ones included

    def send_all(self, busy: Callable[[], set[str]] | None = None) -> tuple[int, int]:
        """Upload the newest entry of each path, except paths `busy()` names (open for
        writing right now: asked per entry, once its path's turn has come); returns (sent,
        still unsent). Entries the portal refuses for good are neither: they move to the
        journal's refused/."""
        with self._lock:
            newest: dict[str, Unsent] = {}
            for entry in self.journal.entries():
                older = newest.get(entry.portal_path)
                if older is not None:
                    self.journal.forget(older)  # superseded by a later version of the file
                newest[entry.portal_path] = entry
            results = [self._send(entry, busy) for entry in newest.values()]
            return results.count(_SENT), results.count(_UNSENT)

    def _send(self, entry: Unsent, busy: Callable[[], set[str]] | None) -> str:
        request = UploadRequest(entry.data_path, entry.portal_path, entry.size, entry.md5)
        with self.journal.sending(entry.portal_path):
            if not self.journal.holds(entry):
                return _SENT  # a newer version was stored while we waited our turn
            if busy is not None and entry.portal_path in busy():
                # Open for writing: its entry may share the spool's bytes, which may change
                # during the PUT; its next close sends it anyway.
                return _SKIPPED
            try:
                outcome = self.uploader.upload(request)
            except (errors.PortalError, OSError) as exc:
                if refused_for_good(exc):
                    self.journal.set_aside(entry, str(exc))
                    return _REFUSED
                log.info("%s is still unsent: %s", entry.portal_path, exc)
                self.last_error = exc
                return _UNSENT
            log.info("%s: %s from the journal of unsent files", entry.portal_path, outcome.value)
            self.journal.forget(entry)
            if self.on_sent:
                self.on_sent(entry)
            return _SENT

    def start(self, busy_paths: Callable[[], set[str]] | None = None) -> None:
        """Send now and then every interval, in the background, until stop()."""
        self._thread = threading.Thread(
            target=self._loop, args=(busy_paths,), name="resend", daemon=True
        )
        self._thread.start()

    def _loop(self, busy_paths: Callable[[], set[str]] | None) -> None:
        while True:
            try:
                if self.journal:
                    self.send_all(busy_paths)
            except Exception:
                # A bug or a disk error in one round must not end the resending for good.
                log.exception("resending unsent files failed; trying again in %gs", self.interval_s)
            self.rounds += 1
            if self._stop.wait(self.interval_s):
                return

    def stop(self) -> None:
        self._stop.set()
