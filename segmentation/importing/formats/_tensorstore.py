"""What the Zarr and N5 readers share: tensorstore, which reads both from a local folder, gs://,
s3:// or http(s):// alike, and decodes only the chunks a box touches."""

from __future__ import annotations

import json
from pathlib import Path

import tensorstore as ts

from ..volume import SourceError, VolumeSource, cached_handle, local_path, resolve_axes

# few, short retries: a source that does not answer is told in seconds, not after minutes of backoff
_RETRIES = {"max_retries": 4, "initial_delay": "0.2s", "max_delay": "4s"}
CONTEXT = {
    "http_request_retries": _RETRIES,
    "gcs_request_retries": _RETRIES,
    "s3_request_retries": _RETRIES,
    "cache_pool": {"total_bytes_limit": 0},
}


def store_url(spec: str, inner: str | None = None) -> str:
    """A tensorstore kvstore URL for ``spec`` (a local path becomes ``file://``), ending in ``/``."""
    path = local_path(spec)
    url = ("file://" + str(path.resolve())) if path is not None else spec
    url = url.rstrip("/") + "/"
    if inner:
        url += inner.strip("/") + "/"
    return url


def parent_url(url: str) -> str | None:
    """The folder above ``url`` (a group holding an array), None at a root."""
    head = url.rstrip("/").rsplit("/", 1)[0]
    return head + "/" if "://" in head and not head.endswith(":/") and not head.endswith(":") else None


def read_json(url: str, key: str) -> dict | None:
    """The JSON object stored at ``key`` under ``url``, None when missing."""
    kvstore = cached_handle(("kvstore", url), lambda: ts.KvStore.open(url, context=ts.Context(CONTEXT)).result())
    found = kvstore.read(key).result()
    if found.state != "value":
        return None
    try:
        value = json.loads(bytes(found.value))
    except ValueError as error:
        raise SourceError(f"{url}{key} is not JSON ({error}): the metadata is damaged") from None
    return value if isinstance(value, dict) else None


def local_children(url: str, markers: tuple[str, ...]) -> list[str]:
    """Sub-folders of a local ``url`` holding one of ``markers`` (to name them in an error)."""
    if not url.startswith("file://"):
        return []
    folder = Path(url[len("file://") :])
    try:
        return sorted(c.name for c in folder.iterdir() if c.is_dir() and any((c / m).exists() for m in markers))
    except OSError:
        return []


class TensorstoreSource(VolumeSource):
    """A Zarr or N5 array opened with tensorstore (``driver``, ``url``). Voxel sizes and offsets come per
    stored axis (``stored_voxel_size``, ``stored_offset``) and are put in x, y, z order here."""

    def __init__(
        self,
        driver: str,
        url: str,
        *,
        axes: str | None,
        default_axes: str | None,
        description: str,
        stored_voxel_size: list[float] | None = None,
        stored_offset: list[int] | None = None,
    ):
        self.driver, self.url = driver, url
        store = self._store()
        shape = tuple(store.shape)
        axes = resolve_axes(axes, shape, description, default=default_axes)
        super().__init__(
            stored_shape=shape,
            dtype=store.dtype.numpy_dtype,
            axes=axes,
            description=description,
            stored_chunks=tuple(store.chunk_layout.read_chunk.shape),
        )
        if stored_voxel_size is not None and len(stored_voxel_size) == len(axes):
            self.voxel_size = tuple(float(v) for v in self.to_xyz(stored_voxel_size))
        if stored_offset is not None and len(stored_offset) == len(axes):
            self.voxel_offset = tuple(int(v) for v in self.to_xyz(stored_offset))

    def _store(self) -> ts.TensorStore:
        def opener():
            spec = {"driver": self.driver, "kvstore": self.url, "context": CONTEXT}
            return ts.open(spec, read=True, open=True).result()

        return cached_handle(("tensorstore", self.driver, self.url), opener)

    def _read_stored(self, index):
        return self._store()[index].read().result()
