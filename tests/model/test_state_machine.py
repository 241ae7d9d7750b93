"""A hypothesis state machine: PortalFS against a dict model, through create/write/read/mkdir/
list, plus changes made directly on the server behind the mount's back."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from portalfs.config import MountConfig
from portalfs.fs.factory import build_portalfs
from portalfs.hashing import file_md5
from portalfs.write.upload import Uploader, UploadRequest
from tests.portal_fixtures import TEST_HTTP, clients, start_portal

NAMES = st.sampled_from(["a", "b.txt", "c d", "é"])
FOLDERS = st.sampled_from(["", "x", "x/y"])
DATA = st.binary(max_size=3000)


class PortalModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="portalfs-model-"))
        self.portal = start_portal(self.tmp / "server")
        # TTL 0: every look asks the server, so remote changes show at once.
        config = MountConfig(cache_dir=str(self.tmp / "cache"), metadata_ttl_s=0)
        self.fs = build_portalfs(self.portal.member, config, TEST_HTTP)
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = set()

    def teardown(self) -> None:
        self.fs.close()
        self.portal.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _ensure_parents(self, folder: str) -> None:
        parts = folder.split("/") if folder else []
        for i in range(1, len(parts) + 1):
            path = "/" + "/".join(parts[:i])
            if path not in self.dirs and not any(p.startswith(path + "/") for p in self.files):
                self.fs.mkdir(path)
            self.dirs.add(path)

    @rule(folder=FOLDERS, name=NAMES, data=DATA)
    def write_through_mount(self, folder, name, data):
        self._ensure_parents(folder)
        path = f"/{folder}/{name}" if folder else f"/{name}"
        if path in self.dirs:
            return
        fh = self.fs.create(path)
        try:
            self.fs.write(fh, 0, data)
            self.fs.flush(fh)
        finally:
            self.fs.release(fh)
        self.files[path] = data

    @rule(folder=FOLDERS, name=NAMES, data=DATA)
    def write_on_server(self, folder, name, data):
        path = f"/{folder}/{name}" if folder else f"/{name}"
        if path in self.dirs or any(p.startswith(path + "/") for p in self.files):
            return
        src = self.tmp / hashlib.md5(path.encode()).hexdigest()
        src.write_bytes(data)
        client, storage = clients(self.portal.member)
        req = UploadRequest(src, path[1:], len(data), file_md5(src))
        Uploader(client, storage).upload(req)
        self.files[path] = data
        parent = path.rsplit("/", 1)[0]
        while parent:
            self.dirs.add(parent)
            parent = parent.rsplit("/", 1)[0]

    @rule(offset=st.integers(0, 3000), size=st.integers(0, 4000))
    def read_a_range(self, offset, size):
        for path, data in self.files.items():
            fh = self.fs.open(path, os.O_RDONLY)
            try:
                assert self.fs.read(fh, offset, size) == data[offset : offset + size]
            finally:
                self.fs.release(fh)

    @invariant()
    def listings_match(self):
        for folder in ["/", *sorted(self.dirs)]:
            prefix = "" if folder == "/" else folder
            expected = {
                p[len(prefix) + 1 :].split("/")[0] for p in self.files if p.startswith(prefix + "/")
            }
            expected |= {
                d[len(prefix) + 1 :].split("/")[0] for d in self.dirs if d.startswith(prefix + "/")
            }
            got = {name for name, _ in self.fs.readdir(folder)}
            assert got == expected, (folder, got, expected)
        for path, data in self.files.items():
            assert self.fs.getattr(path).size == len(data)


TestPortalModel = PortalModel.TestCase
TestPortalModel.settings = settings(
    max_examples=25,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
