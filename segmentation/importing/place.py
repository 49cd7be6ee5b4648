"""Where an import writes: a local folder, or a prefix in an object store (``s3://``, ``gs://``).

An import leaves two kinds of things at its destination: the layers (written by CloudVolume, which
takes any of these URLs) and its own bookkeeping (the plan, one marker per finished task, the
skeleton blocks, ``complete``). The bookkeeping is what lets a killed import continue, so it must
live beside the layers wherever they are: on another machine's Dask worker, a marker written to the
importing machine's disk would be lost. This module reads and writes those small files by one
string, a local path or a URL, so tasks carry plain strings between processes.

Local files are written to a temporary name and renamed (a killed writer leaves no half file); an
object store's PUT is atomic already.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from ..storage import cloud_files
from .pyramid import ImportProblem
from .reachability import bucket_exists, bucket_of, check_scheme, endpoint, explain, scheme_of

WRITABLE_SCHEMES = ("s3", "gs")


class Place:
    """The destination of one import: ``url`` (``file://…`` or the store's URL), and for a local one
    its ``path``. Children are named with :meth:`child` (a path or URL string)."""

    def __init__(self, spec: str):
        scheme = scheme_of(spec)
        if scheme in (None, "file"):
            self.path: Path | None = Path(spec.removeprefix("file://")).expanduser().resolve()
            self.url = f"file://{self.path}"
            return
        if scheme not in WRITABLE_SCHEMES:
            complaint = check_scheme(spec)
            raise ImportProblem(
                complaint
                or f"--to cannot write to {scheme}:// URLs: give a folder, s3://bucket/path or gs://bucket/path"
            )
        if endpoint(spec) is not None:  # CloudFiles' s3://http://host/bucket: CloudVolume refuses it
            host = "{}://{}".format(*urlsplit(spec[len("s3://") :])[:2])
            raise ImportProblem(
                f"--to {spec}: name the S3 server in the environment instead, AWS_ENDPOINT_URL={host}, and "
                f"give --to s3://{bucket_of(spec)}/…"
            )
        self.path = None
        self.url = spec.rstrip("/")

    @property
    def remote(self) -> bool:
        return self.path is None

    def __str__(self) -> str:
        return self.url if self.remote else str(self.path)

    def child(self, *names: str) -> str:
        """A file or folder below this place, as a local path or a URL."""
        if self.remote:
            return "/".join([self.url, *names])
        return str(self.path.joinpath(*names))

    def layer_url(self, kind: str) -> str:
        return f"{self.url}/{kind}"

    def is_empty(self) -> bool:
        if not self.remote:
            return not (self.path.exists() and any(self.path.iterdir()))
        return next(iter(_files(self.url).list()), None) is None

    def check_reachable(self) -> None:
        """Refuse a bucket that does not exist, or a store that refuses us, before anything is
        planned (the storage library's own error would come after long retries, mid-import)."""
        if not self.remote:
            return
        if bucket_exists(self.url) is False:
            raise ImportProblem(f"cannot write to {self.url}: its bucket does not exist; create it first")
        try:
            self.is_empty()
        except Exception as error:  # noqa: BLE001 - said in one line with its fix
            raise ImportProblem(explain(self.url, error)) from None

    def stored_bytes(self, kind: str) -> int | None:
        """Bytes under a layer (local folders only: an object store would be asked once per file)."""
        if self.remote:
            return None
        return sum(entry.stat().st_size for entry in (self.path / kind).rglob("*") if entry.is_file())


def put(location: str, data: bytes) -> None:
    """Write one small bookkeeping file, whole or not at all."""
    if scheme_of(location) is None:
        path = Path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
        return
    folder, name = location.rsplit("/", 1)
    _files(folder).put(name, data, compress=None, raw=True, content_type="application/octet-stream")


def get(location: str) -> bytes | None:
    """A bookkeeping file's bytes, None when there is none."""
    if scheme_of(location) is None:
        try:
            return Path(location).read_bytes()
        except FileNotFoundError:
            return None
    folder, name = location.rsplit("/", 1)
    return _files(folder).get(name, raw=True)


def exists(location: str) -> bool:
    if scheme_of(location) is None:
        return os.path.exists(location)
    folder, name = location.rsplit("/", 1)
    return bool(_files(folder).exists(name))


def names_in(folder: str) -> set[str]:
    """The names of the files directly in ``folder`` (one listing, however many files: an object
    store answers a listing of a thousand markers in one request, a thousand HEADs in a thousand)."""
    if scheme_of(folder) is None:
        try:
            return {entry.name for entry in os.scandir(folder) if entry.is_file()}
        except FileNotFoundError:
            return set()
    return {key.rsplit("/", 1)[-1] for key in _files(folder).list(flat=True)}


def _files(url: str):
    return cloud_files(url)
