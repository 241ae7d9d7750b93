"""The bench's input files (made here, in the work folder) and `dd` reads of files through
a mount. Knows no server and no mount."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

MiB = 1024 * 1024


def make_file(path: Path, size: int) -> None:
    chunk = os.urandom(MiB)
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(chunk)
        f.write(chunk[: size % MiB])


def md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def make_small_tree(root: Path, count: int, size: int) -> None:
    for i in range(count):
        sub = root / f"d{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05d}.bin").write_bytes(os.urandom(size))


def cp_order(root: Path) -> list[Path]:
    """The files under `root` in the order `cp -r` copies them: depth first, each folder's
    entries by inode number (GNU cp reads a folder whole and sorts it so, to read faster)."""
    files: list[Path] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.inode()):
        if entry.is_dir(follow_symlinks=False):
            files += cp_order(Path(entry.path))
        else:
            files.append(Path(entry.path))
    return files


def dd_read(path: Path) -> None:
    dd_all(path.parent, [path.name])


def dd_all(point: Path, names: list[str]) -> None:
    """`dd bs=1M` of every file at once, each to /dev/null; each must read the whole file
    (a short read would pass for a fast one)."""
    sizes = [(point / name).stat().st_size for name in names]
    procs = [
        subprocess.Popen(
            ["dd", f"if={point / name}", "of=/dev/null", "bs=1M"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    reports = [proc.communicate()[1] for proc in procs]  # every one waited for
    for proc, size, report in zip(procs, sizes, reports, strict=True):
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, stderr=report)
        if f"\n{size} bytes" not in "\n" + report:
            raise RuntimeError(f"{proc.args[1]}: dd read less than {size} bytes: {report!r}")
