"""The direct API path every figure is measured against: the seed script's client (upload
link + PUT, download link + GET, the list call), and the CLI's upload to put files in
place. Plain requests calls, as the seed makes them; no portalfs code.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import requests

from .files import MiB, md5_file
from .servers import PY, Portal


def seed_upload(portal: Portal, name: str, path: Path) -> None:
    """The seed script's upload: md5 of the file, upload link, PUT with the file object."""
    payload = {"fileName": name, "fileSize": os.path.getsize(path), "fileHash": md5_file(path)}
    r = requests.post(
        f"{portal.api_url}/api/portals/{portal.portal_id}/upload-link",
        json=payload,
        headers=portal.headers(),
    )
    with open(path, "rb") as f:
        requests.put(r.json()["url"], data=f).raise_for_status()


def kept_connection_upload(portal: Portal, uploads: list[tuple[str, Path]]) -> None:
    """Each (name, path) in turn, as the seed uploads one, but all on one kept connection:
    one thread, one requests.Session."""
    with requests.Session() as session:
        for name, path in uploads:
            session_upload(session, portal, name, path)


def session_upload(session: requests.Session, portal: Portal, name: str, path: Path) -> None:
    """The seed's upload on `session`: md5 of the file, upload link, PUT of the file."""
    payload = {"fileName": name, "fileSize": os.path.getsize(path), "fileHash": md5_file(path)}
    r = session.post(
        f"{portal.api_url}/api/portals/{portal.portal_id}/upload-link",
        json=payload,
        headers=portal.headers(),
    )
    r.raise_for_status()
    with open(path, "rb") as f:
        session.put(r.json()["url"], data=f).raise_for_status()


def delete(portal: Portal, name: str) -> None:
    """Remove a file the benchmark wrote (a member may), so the store's state stays put."""
    requests.post(
        f"{portal.api_url}/api/portals/{portal.portal_id}/files/delete",
        json={"path": name},
        headers=portal.headers(member=True),
    ).raise_for_status()


def download_url(portal: Portal, name: str) -> str:
    r = requests.post(
        f"{portal.api_url}/api/portals/{portal.portal_id}/files/download",
        json={"path": name},
        headers=portal.headers(member=True),
    )
    r.raise_for_status()
    return r.json()["url"]


def direct_get(portal: Portal, name: str) -> int:
    n = 0
    with requests.get(download_url(portal, name), stream=True) as resp:
        for chunk in resp.iter_content(MiB):
            n += len(chunk)
    return n


def direct_list_all(portal: Portal, prefix: str) -> int:
    """Every folder under prefix, all pages, as the seed's list call does it; returns files."""
    files, folders = 0, [prefix]
    session = requests.Session()
    while folders:
        current = folders.pop()
        token = None
        while True:
            body = {"prefix": current, **({"continuationToken": token} if token else {})}
            j = session.post(
                f"{portal.api_url}/api/portals/{portal.portal_id}/files",
                json=body,
                headers=portal.headers(),
            ).json()
            for f in j["files"]:
                if f["type"] == "folder":
                    folders.append(current + f["name"].rstrip("/") + "/")
                else:
                    files += 1
            token = j.get("continuationToken")
            if not token:
                break
    return files


def seed_tree(portal: Portal, prefix: str, folders: int, per_folder: int, workdir: Path) -> None:
    """Many small files, uploaded with the CLI (fast, concurrent)."""
    root = workdir / f"tree-{prefix}"
    for f in range(folders):
        sub = root / prefix / f"folder{f:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(per_folder):
            (sub / f"f{i:04d}.txt").write_bytes(b"x")
    env = {**os.environ, **portal.env(False), "HOME": str(workdir)}
    subprocess.run(
        [PY, "-m", "portalfs", "upload", "-q", "-j", "16", str(root / prefix)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
