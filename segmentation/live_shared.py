"""Remapped "now" chunks shared by the server processes of one machine, as files under the home.

Each worker process keeps its own memory cache of live chunks (:mod:`segmentation.live`). Without
this, N workers remap every chunk N times: the first cutout after a start (or after an edit) pays
the decode, remap, encode and gzip once per worker that happens to be asked. Here a chunk made by
one process is written once with what tells whether it is still current — the version it was
made at and the graph positions of its supervoxels — and a CRC-32 of it all; another process
reads it, checks it as it checks its own memory entry (no operation since gave any of those
supervoxels a new root), and answers it without computing. A stale, unreadable or damaged file
is a miss, never an answer.

Files are named by a digest of (dataset, layer URL, graph ingest time, chunk key): a re-ingested
graph or a re-pointed layer never meets an old file, and no name from a request reaches the file
system. Writes go to a temporary file renamed into place, so a reader sees a whole file or none.
The files are bounded (``AXONLINK_LIVE_SHARED_MB``, default 1024, 0 = off): each process, after
writing an eighth of the bound, removes the oldest files until they fill at most 80 % of it.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np

MEGABYTE = 1 << 20
DEFAULT_MEGABYTES = 1024
_MAGIC = b"AXLIVE2\n"
_HEAD = struct.Struct("<8sQQQQI")  # magic, version, supervoxels, encoded bytes, gzip bytes, CRC-32 of the rest
FOLDER = "live-chunks"
HEAD_BYTES = _HEAD.size  # where a file's supervoxel positions start


def configured_bytes() -> int:
    """The bound on the shared files, from ``AXONLINK_LIVE_SHARED_MB`` (0: no sharing)."""
    try:
        return max(0, int(os.environ.get("AXONLINK_LIVE_SHARED_MB", DEFAULT_MEGABYTES))) * MEGABYTE
    except ValueError:
        return DEFAULT_MEGABYTES * MEGABYTE


class SharedChunks:
    """The shared chunk files under ``root`` (``<home>/live-chunks``), at most ``max_bytes``."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._written = 0  # bytes this process wrote since its last sweep
        self._lock = threading.Lock()

    def namespace(self, *parts: str) -> str:
        """A short digest naming one layer of one graph (files of another never match it)."""
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]

    def _path(self, namespace: str, key: str) -> Path:
        name = hashlib.sha256(f"{namespace}\0{key}".encode()).hexdigest()
        return self.root / namespace / name[:2] / name[2:]

    def read(self, namespace: str, key: str) -> tuple[int, np.ndarray, bytes, bytes] | None:
        """(version, supervoxel positions, encoded chunk, its gzip) as written, or None when there is
        no whole file (the caller still checks that the version is current)."""
        try:
            with open(self._path(namespace, key), "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        if len(data) < _HEAD.size:
            return None
        magic, version, count, encoded_size, gzip_size, checksum = _HEAD.unpack_from(data)
        if magic != _MAGIC or len(data) != _HEAD.size + 8 * count + encoded_size + gzip_size:
            return None
        if zlib.crc32(memoryview(data)[_HEAD.size :]) != checksum:
            return None  # damaged in place (same length): made again
        start = _HEAD.size
        positions = np.frombuffer(data, dtype="<i8", count=count, offset=start)
        start += 8 * count
        encoded = data[start : start + encoded_size]
        return version, positions, encoded, data[start + encoded_size :]

    def write(self, namespace: str, key: str, version: int, positions, encoded: bytes, gzipped: bytes) -> None:
        """Keep a chunk for the other processes (best effort: a full disk only means no sharing)."""
        positions = np.ascontiguousarray(positions, dtype="<i8")
        path = self._path(namespace, key)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        body = positions.tobytes()
        checksum = zlib.crc32(encoded, zlib.crc32(body))
        checksum = zlib.crc32(gzipped, checksum)
        head = _HEAD.pack(_MAGIC, version, len(positions), len(encoded), len(gzipped), checksum)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as handle:
                handle.write(head)
                handle.write(body)
                handle.write(encoded)
                handle.write(gzipped)
            os.replace(temporary, path)
        except OSError:
            temporary.unlink(missing_ok=True)
            return
        with self._lock:
            self._written += len(head) + len(body) + len(encoded) + len(gzipped)
            sweep = self._written > self.max_bytes // 8
            if sweep:
                self._written = 0
        if sweep:
            self.sweep()

    def sweep(self) -> None:
        """Remove the oldest files until those left fill at most 80 % of the bound."""
        files = []
        total = 0
        for folder, _, names in os.walk(self.root):
            for name in names:
                path = os.path.join(folder, name)
                try:
                    found = os.stat(path)
                except OSError:
                    continue  # removed meanwhile by another process
                files.append((found.st_mtime, found.st_size, path))
                total += found.st_size
        if total <= self.max_bytes:
            return
        files.sort()
        for _, size, path in files:
            if total <= self.max_bytes * 4 // 5:
                break
            try:
                os.unlink(path)
            except OSError:
                continue
            total -= size
