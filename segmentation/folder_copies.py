"""Immutable folders of ``.npy`` arrays in object storage, copied to local disk before they are mapped.

A graph's base and a meshing run's index are arrays every server process memory-maps: that is
what makes a worker ready in a second and shares pages between workers, and it needs a file.
Several machines share such a folder through object storage, each keeping a local copy. This
module is that copy, done once for both:

- **Upload** puts the arrays first and ``manifest.json`` last: a folder without its manifest is
  incomplete and nothing copies it.
- **A copy** streams the files to a hidden folder (never whole in memory: a 10^8-supervoxel base
  has arrays of gigabytes), checks each file's size and SHA-256 against the manifest, and renames
  the folder into place, so a reader never maps half a copy or a damaged one. The folders never
  change under their URL, so a copy never goes stale.

A manifest is ``{"format": …, "version": …, "files": {name: {"bytes": n, "sha256": hex}}}``;
array ``name`` is the file ``name.npy``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from .errors import AxonlinkError
from .storage import cloud_files

MANIFEST = "manifest.json"
PARTIAL_EXPIRES_SECONDS = 3600  # a hidden half copy untouched this long was left by a killed process


class CopyError(AxonlinkError):
    """A folder in object storage that cannot be read, copied or verified: the server's data, not
    the request, is at fault (a logged 5xx; the message names the folder and the file)."""


def file_sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as stream:
        while block := stream.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def describe(folder: Path, names) -> dict[str, dict]:
    """The manifest's ``files`` for arrays ``names`` in ``folder``."""
    return {
        name: {"bytes": (folder / f"{name}.npy").stat().st_size, "sha256": file_sha256(folder / f"{name}.npy")}
        for name in names
    }


def upload(local: Path, url: str) -> None:
    """Copy the folder ``local`` (its manifest and the arrays it lists) to ``url``, manifest last."""
    manifest = json.loads((local / MANIFEST).read_text())
    arrays = [f"{name}.npy" for name in manifest["files"]]
    try:
        cloud_files(local.as_uri()).transfer_to(cloud_files(url), paths=arrays)  # streamed from open files
        cloud_files(url).put(MANIFEST, (local / MANIFEST).read_bytes(), compress=None, raw=True)
    except Exception as error:
        raise CopyError(f"{url} could not be written: {error}") from error


def verified_copy(url: str, target: Path, what: str, format: str, version: int) -> Path:
    """``target``: a verified copy of the folder at ``url`` (made now unless there is one); ``what``
    names it in errors; its manifest must say ``format`` and ``version``."""
    if (target / MANIFEST).exists():
        return target
    remote = cloud_files(url)
    try:
        manifest_bytes = remote.get(MANIFEST, raw=True)
    except Exception as error:
        raise CopyError(f"{what} {url} cannot be read ({error})") from None
    if manifest_bytes is None:
        raise CopyError(f"{what} {url}: no manifest.json (missing, deleted or not fully written)")
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError:
        raise CopyError(f"{what} {url}: manifest.json is not JSON") from None
    if manifest.get("format") != format or manifest.get("version") != version:
        raise CopyError(f"{what} {url}: not a {format} version {version}")
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    sweep_partial(root)  # copies a killed process left half made
    partial = root / f".{target.name}.{uuid.uuid4().hex[:8]}.partial"
    partial.mkdir()
    try:
        arrays = [f"{name}.npy" for name in manifest["files"]]
        try:
            remote.transfer_to(cloud_files(partial.as_uri()), paths=arrays)
        except Exception as error:
            raise CopyError(f"{what} {url} cannot be copied here ({error})") from None
        for name, entry in manifest["files"].items():
            file = partial / f"{name}.npy"
            if not file.exists() or file.stat().st_size != entry["bytes"] or file_sha256(file) != entry["sha256"]:
                raise CopyError(f"{what} {url}: {name}.npy is missing or damaged (size or checksum differs)")
        (partial / MANIFEST).write_bytes(manifest_bytes)
        try:
            os.replace(partial, target)
        except OSError:  # another process made the same copy meanwhile: keep theirs
            if not (target / MANIFEST).exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def sweep_partial(folder: Path) -> None:
    """Delete half-written folders a killed process left (untouched for an hour: nobody writes them)."""
    for partial in folder.glob(".*.partial"):
        try:
            if time.time() - partial.stat().st_mtime > PARTIAL_EXPIRES_SECONDS:
                shutil.rmtree(partial, ignore_errors=True)
        except OSError:
            continue
