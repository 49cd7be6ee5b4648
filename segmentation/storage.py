"""Read the files of one precomputed layer, wherever it lives.

A :class:`LayerStore` answers "give me the stored bytes of key K (or bytes
a..b of it)" for a layer at any CloudVolume path. Local layers (``file://``)
are read straight from disk with ``pread``; every other protocol (``gs://``,
``s3://``, ``http(s)://``, ``mem://``) goes through CloudFiles, so a remote
layer is proxied exactly like a local one.

Keys are checked by :func:`validate_key` before any storage is touched: a key
that is absolute, contains ``..`` or unusual characters never reaches a
filesystem or bucket.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cloudfiles import CloudFiles

_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9_.,:@~+=-]+$")
_MAX_KEY_LENGTH = 1024


class InvalidKey(ValueError):
    """The key is malformed or tries to leave the layer."""


def validate_key(key: str) -> str:
    if not key or len(key) > _MAX_KEY_LENGTH:
        raise InvalidKey("empty or overlong key")
    segments = key.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise InvalidKey(f"key {key!r} has an empty, '.' or '..' path segment")
        if not _KEY_SEGMENT.match(segment):
            raise InvalidKey(f"key {key!r} contains characters not allowed in a precomputed key")
    return key


@dataclass(frozen=True)
class StoredObject:
    """Bytes of a stored file, possibly still compressed as stored."""

    content: bytes
    encoding: str | None  # "gzip" when ``content`` is gzip-compressed, else None
    etag: str  # unquoted entity tag

    def decoded(self) -> bytes:
        return gzip.decompress(self.content) if self.encoding == "gzip" else self.content


def normalize_layer_url(url: str) -> str:
    """Turn what a user typed into a CloudFiles path (``file://`` for bare paths)."""
    url = url.strip()
    if url.startswith("precomputed://"):
        url = url[len("precomputed://"):]
    if "://" not in url:
        url = "file://" + str(Path(url).expanduser().resolve())
    return url.rstrip("/")


class LayerStore:
    """Read-only access to one layer's files."""

    def get(self, key: str) -> StoredObject | None:
        raise NotImplementedError

    def get_range(self, key: str, start: int, end: int) -> bytes | None:
        """Bytes ``[start, end)`` of the *decoded* object (``end`` already clipped)."""
        obj = self.get(key)
        return None if obj is None else obj.decoded()[start:end]

    def size(self, key: str) -> int | None:
        """Length of the decoded object, or None when missing."""
        obj = self.get(key)
        return None if obj is None else len(obj.decoded())


class FileLayerStore(LayerStore):
    """A layer on local disk; ``key`` may be stored as ``key`` or ``key.gz``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def _locate(self, key: str) -> tuple[Path, str | None, os.stat_result] | None:
        base = self.root / validate_key(key)
        for path, encoding in ((base, None), (base.with_name(base.name + ".gz"), "gzip")):
            try:
                stat = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                continue
            if not path.is_file():
                continue
            if not path.resolve().is_relative_to(self.root):
                raise InvalidKey(f"key {key!r} resolves outside the layer")
            return path, encoding, stat
        return None

    def get(self, key):
        located = self._locate(key)
        if located is None:
            return None
        path, encoding, stat = located
        return StoredObject(path.read_bytes(), encoding, f"{stat.st_size:x}-{stat.st_mtime_ns:x}")

    def get_range(self, key, start, end):
        located = self._locate(key)
        if located is None:
            return None
        path, encoding, _ = located
        if encoding is not None:
            return gzip.decompress(path.read_bytes())[start:end]
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, end - start, start)
        finally:
            os.close(fd)

    def size(self, key):
        located = self._locate(key)
        if located is None:
            return None
        path, encoding, stat = located
        return stat.st_size if encoding is None else len(gzip.decompress(path.read_bytes()))


class CloudLayerStore(LayerStore):
    """A layer behind any CloudFiles protocol (gs, s3, http(s), mem, ...)."""

    def __init__(self, url: str):
        self.url = url
        self._files = CloudFiles(url, progress=False)

    def get(self, key):
        result = self._files.get([validate_key(key)], raw=True, raise_errors=False)[0]
        if result["error"] is not None or result["content"] is None:
            return None
        content = result["content"]
        encoding = result["compress"]
        if encoding in (None, "", "none"):
            encoding = None
        elif encoding != "gzip":
            # Brotli/zstd as stored: decode here so clients see a single, common encoding.
            from cloudfiles import compression

            content, encoding = compression.decompress(content, encoding), None
        return StoredObject(content, encoding, hashlib.md5(content).hexdigest())

    def get_range(self, key, start, end):
        result = self._files.get(
            [{"path": validate_key(key), "start": start, "end": end}], raw=True, raise_errors=False
        )[0]
        if result["error"] is not None or result["content"] is None:
            return None
        if result["compress"] not in (None, "", "none"):
            return super().get_range(key, start, end)
        return result["content"]

    def size(self, key):
        size = self._files.size(validate_key(key))
        return size


def open_layer_store(url: str) -> LayerStore:
    url = normalize_layer_url(url)
    if url.startswith("file://"):
        return FileLayerStore(url[len("file://"):])
    return CloudLayerStore(url)
