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

from pathlib import Path
from urllib.parse import urlsplit

from .. import locations
from ..locations import exists, get, names_in, put  # noqa: F401 - the bookkeeping's reads and writes
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
        return locations.join(self.url if self.remote else str(self.path), *names)

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


def _files(url: str):
    return cloud_files(url)
