"""The journal of unsent files: entries by path, across restarts."""

import errno
import os
from pathlib import Path

from portalfs.write.journal import RECORD_XATTR, Journal


def _record(journal: Journal, tmp_path: Path, name: str, portal_path: str):
    source = tmp_path / name
    source.write_bytes(name.encode())
    return journal.record(source, portal_path, len(name), "0" * 32)


def test_forget_path_drops_every_version_of_that_path_and_nothing_else(tmp_path):
    journal = Journal(tmp_path / "unsent")
    old = _record(journal, tmp_path, "v1", "a/x.bin")
    new = _record(journal, tmp_path, "v2", "a/x.bin")
    other = _record(journal, tmp_path, "v3", "a/y.bin")
    journal.forget_path("a/x.bin")
    assert not journal.holds(old) and not journal.holds(new) and journal.holds(other)
    assert [e.portal_path for e in journal.entries()] == ["a/y.bin"]
    assert not old.data_path.exists()


def test_entries_left_by_an_earlier_process_are_forgotten_by_path(tmp_path):
    left = _record(Journal(tmp_path / "unsent"), tmp_path, "v1", "x.bin")
    journal = Journal(tmp_path / "unsent")  # the next mount of the same cache folder
    journal.forget_path("x.bin")
    assert not journal.holds(left)
    assert list(journal.entries()) == []


def test_a_clock_stepped_back_never_makes_an_older_version_win(tmp_path, monkeypatch):
    import time

    now = [2_000_000_000_000_000_000]
    monkeypatch.setattr(time, "time_ns", lambda: now[0])
    journal = Journal(tmp_path / "unsent")
    _record(journal, tmp_path, "old", "f.bin")
    now[0] -= 3_600 * 10**9  # an NTP step back of an hour between two failed uploads
    _record(journal, tmp_path, "new", "f.bin")
    # The next mount or `portalfs recover` reads the journal afresh: the last is the newest.
    entries = list(Journal(tmp_path / "unsent").entries())
    assert [e.data_path.read_bytes() for e in entries] == [b"old", b"new"]


def test_a_record_that_cannot_be_written_leaves_nothing_behind(tmp_path, monkeypatch):
    journal = Journal(tmp_path / "unsent")

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "setxattr", full)
    try:
        _record(journal, tmp_path, "v1", "a.bin")
    except OSError as exc:
        assert exc.errno == 28
    else:
        raise AssertionError("record() did not fail")
    assert list((tmp_path / "unsent").iterdir()) == [] and not journal


def test_data_without_its_record_is_reported_and_kept_not_dropped(tmp_path, caplog):
    journal = Journal(tmp_path / "unsent")
    entry = _record(journal, tmp_path, "v1", "a.bin")
    os.setxattr(entry.data_path, RECORD_XATTR, b'{"portal_path": "a.b')  # torn by a crash
    again = Journal(tmp_path / "unsent")
    assert again.orphans == [entry.data_path] and entry.data_path.read_bytes() == b"v1"
    assert list(again.entries()) == []
    assert "destination was never recorded" in caplog.text
    later = _record(again, tmp_path, "v2", "a.bin")
    assert later.seq > entry.seq  # the orphan's number is never given out again


def test_entries_refused_for_good_are_set_aside_and_survive_a_restart(tmp_path):
    journal = Journal(tmp_path / "unsent")
    entry = _record(journal, tmp_path, "v1", "big.bin")
    journal.set_aside(entry, "upload link: HTTP 400: too large")
    again = Journal(tmp_path / "unsent")
    assert list(again.entries()) == []
    (refused,) = again.refused()
    assert refused.portal_path == "big.bin" and "too large" in refused.reason
    assert refused.data_path.read_bytes() == b"v1"


def test_a_rename_moves_the_unsent_versions_to_the_new_name(tmp_path):
    journal = Journal(tmp_path / "unsent")
    _record(journal, tmp_path, "v1", "a.tmp")
    journal.move_path("a.tmp", "a.txt")
    assert [e.portal_path for e in Journal(tmp_path / "unsent").entries()] == ["a.txt"]


def test_recording_creates_no_file_besides_the_link_to_the_bytes(tmp_path):
    journal = Journal(tmp_path / "unsent")
    entry = _record(journal, tmp_path, "v1", "a/b.bin")
    # The record rides on the data file (an xattr): on a busy ext4 each file created costs
    # 0.3-0.5 ms, more than all the rest of the journal's work per small file.
    assert [p.name for p in (tmp_path / "unsent").iterdir()] == [entry.data_path.name]
    assert [e.portal_path for e in Journal(tmp_path / "unsent").entries()] == ["a/b.bin"]


def test_without_xattrs_the_record_is_a_json_file(tmp_path, monkeypatch):
    def unsupported(*args):
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", unsupported)
    monkeypatch.setattr(os, "getxattr", unsupported)
    journal = Journal(tmp_path / "unsent")
    entry = _record(journal, tmp_path, "v1", "a.bin")
    assert entry.data_path.with_suffix(".json").exists()
    journal.move_path("a.bin", "b.bin")
    journal.set_aside(journal.entries()[0], "refused")
    (refused,) = Journal(tmp_path / "unsent").refused()
    assert (refused.portal_path, refused.reason) == ("b.bin", "refused")


def test_entries_of_the_version_before_the_sequence_are_kept_in_their_order(tmp_path):
    unsent = tmp_path / "unsent"
    unsent.mkdir()
    for stamp, content in (
        ("01796498508810438668-965173bc4cb9", b"old"),
        ("01796498508810438669-0123456789ab", b"new"),
    ):
        (unsent / f"{stamp}.data").write_bytes(content)
        (unsent / f"{stamp}.json").write_text('{"portal_path": "f.bin", "size": 3, "md5": "x"}')
    entries = Journal(unsent).entries()
    assert [e.data_path.read_bytes() for e in entries] == [b"old", b"new"]
