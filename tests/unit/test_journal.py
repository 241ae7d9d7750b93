"""The journal of unsent files: entries by path, across restarts."""

from pathlib import Path

from portalfs.write.journal import Journal


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
