"""Files named by one string, a local path or an object-store URL (``s3://``, ``gs://`` …).

What axonlink writes beside the volumes (an import's bookkeeping, built-in meshes) must live
wherever the volumes live: a Dask worker on another machine cannot write to the importing
machine's disk, and a second server node cannot read the first one's. These few operations reach
either by one plain string, so tasks and settings carry strings between processes and machines.

Local files are written to a temporary name and renamed (a killed writer leaves no half file); an
object store's PUT is atomic already. Object storage is reached through CloudFiles
(:func:`segmentation.storage.cloud_files`), with the credentials it finds.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from .storage import cloud_files


def scheme_of(spec: str) -> str | None:
    """The URL scheme of ``spec`` (lower case), None for a plain path."""
    found = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", spec)
    return found.group(1).lower() if found else None


def is_remote(spec: str) -> bool:
    return scheme_of(spec) not in (None, "file")


def local_path(spec: str) -> Path:
    """The path of a local location (``file://`` or a plain path)."""
    return Path(spec.removeprefix("file://"))


def join(location: str, *names: str) -> str:
    """A file or folder below ``location``, as a path or a URL."""
    if is_remote(location):
        return "/".join([location.rstrip("/"), *names])
    return str(local_path(location).joinpath(*names))


def put(location: str, data: bytes) -> None:
    """Write one file, whole or not at all."""
    if not is_remote(location):
        path = local_path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
        return
    folder, name = location.rsplit("/", 1)
    cloud_files(folder).put(name, data, compress=None, raw=True, content_type="application/octet-stream")


def get(location: str) -> bytes | None:
    """A file's bytes, None when there is none."""
    if not is_remote(location):
        try:
            return local_path(location).read_bytes()
        except FileNotFoundError:
            return None
    folder, name = location.rsplit("/", 1)
    return cloud_files(folder).get(name, raw=True)


def read_range(location: str, start: int, stop: int) -> bytes | None:
    """Bytes [start, stop) of a file (one ranged GET in object storage), None when there is no file."""
    if not is_remote(location):
        try:
            with open(local_path(location), "rb") as handle:
                return os.pread(handle.fileno(), max(0, stop - start), start)
        except FileNotFoundError:
            return None
    folder, name = location.rsplit("/", 1)
    found = cloud_files(folder).get([{"path": name, "start": start, "end": stop}], raw=True, raise_errors=False)[0]
    if found["error"] is not None or found["content"] is None:
        return None
    return found["content"]


def size(location: str) -> int | None:
    """A file's size in bytes, None when there is none."""
    if not is_remote(location):
        try:
            return local_path(location).stat().st_size
        except FileNotFoundError:
            return None
    folder, name = location.rsplit("/", 1)
    found = cloud_files(folder).size(name)
    return None if found is None else int(found)


def exists(location: str) -> bool:
    if not is_remote(location):
        return local_path(location).exists()
    folder, name = location.rsplit("/", 1)
    return bool(cloud_files(folder).exists(name))


def names_in(folder: str) -> set[str]:
    """The names of the files directly in ``folder`` (one listing, however many files: an object
    store answers a listing of a thousand markers in one request, a thousand HEADs in a thousand)."""
    if not is_remote(folder):
        try:
            return {entry.name for entry in os.scandir(local_path(folder)) if entry.is_file()}
        except FileNotFoundError:
            return set()
    return {key.rsplit("/", 1)[-1] for key in cloud_files(folder).list(flat=True) if not key.endswith("/")}


def folders_in(folder: str) -> set[str]:
    """The names of the folders directly in ``folder``."""
    if not is_remote(folder):
        try:
            return {entry.name for entry in os.scandir(local_path(folder)) if entry.is_dir()}
        except FileNotFoundError:
            return set()
    listed = cloud_files(folder).list(flat=True)  # with the store's delimiter: folders come as "name/"
    return {key.rstrip("/").rsplit("/", 1)[-1] for key in listed if key.endswith("/")}


def remove_tree(folder: str) -> bool:
    """Delete ``folder`` and everything in it; whether there was anything."""
    if not is_remote(folder):
        path = local_path(folder)
        existed = path.exists()
        shutil.rmtree(path, ignore_errors=True)
        return existed
    files = cloud_files(folder)
    names = list(files.list())
    if names:
        files.delete(names)
    return bool(names)
