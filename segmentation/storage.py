"""Read the files of one precomputed layer, wherever it lives.

A :class:`LayerStore` answers "give me the stored bytes of key K (or bytes
a..b of it)" for a layer at any CloudVolume path. Local layers (``file://``)
are read straight from disk with ``pread``; every other protocol (``gs://``,
``s3://``, ``http(s)://``, ``mem://``) goes through CloudFiles, so a remote
layer is proxied exactly like a local one.

Keys are checked by :func:`validate_key` before any storage is touched: a key
that is absolute, contains ``..`` or unusual characters never reaches a
filesystem or bucket.

Stored bytes are not trusted either: gzip is inflated through :func:`inflate`,
which stops at a cap (a few hundred bytes of gzip can expand to gigabytes), and
any inconsistency in what is stored raises :class:`CorruptStoredData`.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Invalid
from .file_memory import FILES

_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9_.,:@~+=-]+$")
_MAX_KEY_LENGTH = 1024
MAX_INFLATED_BYTES = 256 * 2**20  # default cap on what one stored gzip object may inflate to
_INFLATE_STEP = 2**20  # output produced per zlib call while only counting


class CorruptStoredData(RuntimeError):
    """Stored bytes contradict themselves or their info: a file, shard index or chunk we refuse to decode.

    Raised instead of allocating what the bytes claim (a gzip bomb, an index pointing past the
    end of its shard, a lookup table outside its chunk); the request fails with a 5xx and the
    log names the key and the reason.
    """

    def __init__(self, key: str, reason: str):
        super().__init__(f"corrupt stored data in {key!r}: {reason}")
        self.key = key
        self.reason = reason


def inflate(data: bytes, key: str, max_bytes: int = MAX_INFLATED_BYTES, *, prefix: bool = False) -> bytes:
    """Gunzip ``data`` without ever producing more than ``max_bytes``.

    Inflating past the cap raises :class:`CorruptStoredData`; with ``prefix=True`` only the
    first ``max_bytes`` are wanted (a byte range) and the rest is never inflated. A truncated
    or malformed stream is corrupt too.
    """
    out: list[bytes] = []
    produced = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            piece = inflater.decompress(rest, max_bytes - produced + 1)
        except zlib.error as error:
            raise CorruptStoredData(key, f"gzip: {error}") from None
        produced += len(piece)
        if produced > max_bytes:
            if prefix:
                out.append(piece[: len(piece) - (produced - max_bytes)])
                return b"".join(out)
            raise CorruptStoredData(key, f"gzip inflates beyond the {max_bytes}-byte cap")
        out.append(piece)
        if not inflater.eof:
            if prefix and produced == max_bytes:
                return b"".join(out)
            raise CorruptStoredData(key, "gzip stream is truncated")
        rest = inflater.unused_data
    return b"".join(out)


def inflated_size(data: bytes, key: str, max_bytes: int = MAX_INFLATED_BYTES) -> int:
    """Length of gunzipped ``data``, counted a step at a time (nothing kept), refused past ``max_bytes``."""
    produced = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        pending = rest
        try:
            while not inflater.eof:
                piece = inflater.decompress(pending, _INFLATE_STEP)
                produced += len(piece)
                if produced > max_bytes:
                    raise CorruptStoredData(key, f"gzip inflates beyond the {max_bytes}-byte cap")
                pending = inflater.unconsumed_tail
                if not inflater.eof and not pending and len(piece) < _INFLATE_STEP:
                    raise CorruptStoredData(key, "gzip stream is truncated")  # input used up, no end
        except zlib.error as error:
            raise CorruptStoredData(key, f"gzip: {error}") from None
        rest = inflater.unused_data
    return produced


def decompress(data: bytes, encoding: str, key: str, max_bytes: int = MAX_INFLATED_BYTES) -> bytes:
    """Decode a stored object compressed as CloudFiles writes it (br, zstd, bz2, xz), never producing
    more than ``max_bytes``: a few stored bytes of any of these can expand to gigabytes."""
    import bz2
    import lzma

    encoding = encoding.lower()
    try:
        if encoding == "br":
            import brotli

            decoder, out, produced = brotli.Decompressor(), [], 0
            piece = decoder.process(data, output_buffer_limit=max_bytes + 1)
            while True:
                out.append(piece)
                produced += len(piece)
                if produced > max_bytes:
                    raise CorruptStoredData(key, f"brotli inflates beyond the {max_bytes}-byte cap")
                if decoder.is_finished() or not piece:
                    break
                piece = decoder.process(b"", output_buffer_limit=max_bytes + 1 - produced)
            if not decoder.is_finished():
                raise CorruptStoredData(key, "brotli stream is truncated")
            return b"".join(out)
        if encoding == "zstd":
            import io

            import zstandard

            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
            out, produced = [], 0
            while produced <= max_bytes:
                piece = reader.read(min(_INFLATE_STEP, max_bytes + 1 - produced))
                if not piece:
                    return b"".join(out)
                out.append(piece)
                produced += len(piece)
            raise CorruptStoredData(key, f"zstd inflates beyond the {max_bytes}-byte cap")
        if encoding in ("bz2", "bzip2", "xz", "lzma"):
            decoder = bz2.BZ2Decompressor() if encoding.startswith("bz") else lzma.LZMADecompressor()
            out = decoder.decompress(data, max_length=max_bytes + 1)
            if len(out) > max_bytes:
                raise CorruptStoredData(key, f"{encoding} inflates beyond the {max_bytes}-byte cap")
            if not decoder.eof:
                raise CorruptStoredData(key, f"{encoding} stream is truncated")
            return out
    except CorruptStoredData:
        raise
    except Exception as error:  # each codec has its own error class; all mean the same here
        raise CorruptStoredData(key, f"{encoding}: {error}") from None
    raise CorruptStoredData(key, f"stored with an unknown compression {encoding!r}")


class InvalidKey(Invalid):
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
    key: str = field(default="", compare=False)  # names the object in errors

    def decoded(self, max_bytes: int = MAX_INFLATED_BYTES) -> bytes:
        """The bytes as stored, gunzipped; :class:`CorruptStoredData` when they would exceed ``max_bytes``.

        Callers that know what the object should hold (a chunk of known shape) pass a
        tighter cap; the default only stops gzip bombs.
        """
        if self.encoding == "gzip":
            return inflate(self.content, self.key, max_bytes)
        if len(self.content) > max_bytes:
            raise CorruptStoredData(self.key, f"{len(self.content)} bytes, more than the {max_bytes}-byte cap")
        return self.content


def normalize_layer_url(url: str) -> str:
    """Turn what a user typed into a CloudFiles path (``file://`` for bare paths)."""
    url = url.strip()
    if url.startswith("precomputed://"):
        url = url[len("precomputed://") :]
    if "://" not in url:
        url = "file://" + str(Path(url).expanduser().resolve())
    return url.rstrip("/")


class LayerStore:
    """Read-only access to one layer's files."""

    def get(self, key: str, max_stored_bytes: int | None = None) -> StoredObject | None:
        """The object as stored, or None; larger than ``max_stored_bytes`` → :class:`CorruptStoredData`."""
        raise NotImplementedError

    def get_range(self, key: str, start: int, end: int) -> bytes | None:
        """Bytes ``[start, end)`` of the *decoded* object (``end`` already clipped)."""
        obj = self.get(key)
        return None if obj is None else obj.decoded()[start:end]

    def size(self, key: str) -> int | None:
        """Length of the decoded object, or None when missing."""
        obj = self.get(key)
        return None if obj is None else len(obj.decoded())


# A file changed this recently is not kept in memory: file times advance by the kernel's tick
# (milliseconds), so a same-size rewrite within one tick would look like the file kept ("racy git").
SETTLED_NS = 2_000_000_000


class FileLayerStore(LayerStore):
    """A layer on local disk; ``key`` may be stored as ``key`` or ``key.gz``."""

    _REMEMBERED = 65536  # keys whose file was found and checked (inside the layer)

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self._root = str(self.root)  # string paths: os calls, no pathlib objects per request (the hot path)
        self._inside = self._root.rstrip(os.sep) + os.sep
        # key -> (path, encoding) of a file found and checked to lie inside the layer: later requests
        # for the key cost one stat (resolving symlinks is a stat per path component). A file
        # replaced by a symlink out of the layer afterwards would take write access to the layer.
        self._found: dict[str, tuple[str, str | None]] = {}

    def _locate(self, key: str) -> tuple[str, str | None, os.stat_result] | None:
        known = self._found.get(key)
        if known is not None:
            try:
                found = os.stat(known[0])
            except OSError:
                found = None
            if found is not None and stat.S_ISREG(found.st_mode):
                return known[0], known[1], found
            self._found.pop(key, None)
        base = os.path.join(self._root, validate_key(key))
        for path, encoding in ((base, None), (base + ".gz", "gzip")):
            try:
                found = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if not stat.S_ISREG(found.st_mode):
                continue
            if not os.path.realpath(path).startswith(self._inside):  # a symlink leading out of the layer
                raise InvalidKey(f"key {key!r} resolves outside the layer")
            if len(self._found) < self._REMEMBERED:
                self._found[key] = (path, encoding)
            return path, encoding, found
        return None

    def get(self, key, max_stored_bytes: int | None = None):
        """The stored object; ``max_stored_bytes`` refuses (before reading) a file larger than expected.

        Small files are kept in memory (:mod:`segmentation.file_memory`) while their ``stat`` says
        they are the file read: one system call instead of four."""
        located = self._locate(key)
        if located is None:
            return None
        path, encoding, found = located
        if max_stored_bytes is not None and found.st_size > max_stored_bytes:
            raise CorruptStoredData(key, f"{found.st_size} bytes stored, more than the {max_stored_bytes}-byte cap")
        name = (self._root, key)
        # ctime: every write, rename or utime sets it to now (a copy keeping the old mtime included)
        identity = (found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_ino, found.st_dev, encoding)
        obj = FILES.confirmed(name, identity)
        if obj is None:
            obj = StoredObject(_read(path, found.st_size), encoding, f"{found.st_size:x}-{found.st_mtime_ns:x}", key)
            if time.time_ns() - found.st_ctime_ns > SETTLED_NS:
                FILES.keep(name, obj, identity, len(obj.content))
        return obj

    def file_of(self, key: str) -> tuple[str, str | None, str] | None:
        """(path with symlinks resolved, encoding, unquoted ETag) of the file holding ``key``, without
        reading it: for a front server to send (``server.accel``). None when there is none."""
        located = self._locate(key)
        if located is None:
            return None
        path, encoding, found = located
        real = os.path.realpath(path)
        if not real.startswith(self._inside):  # checked again: the front server sends whatever it names
            raise InvalidKey(f"key {key!r} resolves outside the layer")
        return real, encoding, f"{found.st_size:x}-{found.st_mtime_ns:x}"

    def get_range(self, key, start, end):
        located = self._locate(key)
        if located is None:
            return None
        path, encoding, _ = located
        if encoding is not None:  # only the prefix up to ``end`` is ever inflated
            return inflate(_read(path), key, min(end, MAX_INFLATED_BYTES), prefix=True)[start:end]
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, end - start, start)
        finally:
            os.close(fd)

    def size(self, key):
        located = self._locate(key)
        if located is None:
            return None
        path, encoding, found = located
        return found.st_size if encoding is None else inflated_size(_read(path), key)


def _read(path: str, expected: int = 0) -> bytes:
    """The file's bytes in three system calls when ``expected`` (its size as just stat'ed) is right:
    ``open().read()`` makes seven (fstat twice, isatty, two seeks, a read to find the end), which
    was a fifth of a stored chunk's answer in the poller."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, expected + 1)  # a regular file reads short only at its end
        if len(data) <= expected:
            return data
        parts = [data]
        while part := os.read(fd, 1 << 20):
            parts.append(part)
        return b"".join(parts)
    finally:
        os.close(fd)


def supply_session_token() -> None:
    """CloudFiles (and so CloudVolume) reads AWS keys from the environment only together with
    ``AWS_SESSION_TOKEN`` (a ``KeyError`` otherwise); long-lived keys have no token, so an empty one
    is supplied. Called before any object store is reached, in every process that reaches one (a
    Dask worker started by hand has only the keys its user exported)."""
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault("AWS_SESSION_TOKEN", "")


def cloud_files(url: str):
    """A CloudFiles for ``url``: the one way axonlink reaches object storage (volumes, graph bases)."""
    from cloudfiles import CloudFiles  # imported here: its cloud clients take most of a second to load

    supply_session_token()
    return CloudFiles(url, progress=False)


class CloudLayerStore(LayerStore):
    """A layer behind any CloudFiles protocol (gs, s3, http(s), mem, ...)."""

    def __init__(self, url: str):
        self.url = url
        self._files = cloud_files(url)

    def get(self, key, max_stored_bytes: int | None = None):
        result = self._files.get([validate_key(key)], raw=True, raise_errors=False)[0]
        if result["error"] is not None or result["content"] is None:
            return None
        content = result["content"]
        encoding = result["compress"]
        if encoding in (None, "", "none"):
            encoding = None
        elif encoding != "gzip":
            # Brotli/zstd/… as stored: decoded here (capped) so clients see a single, common encoding.
            cap = MAX_INFLATED_BYTES if max_stored_bytes is None else max_stored_bytes
            content, encoding = decompress(content, encoding, key, cap), None
        if max_stored_bytes is not None and len(content) > max_stored_bytes:
            raise CorruptStoredData(key, f"{len(content)} bytes stored, more than the {max_stored_bytes}-byte cap")
        return StoredObject(content, encoding, hashlib.md5(content).hexdigest(), key)

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


def same_place(store: LayerStore, url: str) -> bool:
    """Whether ``store`` still reads what ``url`` names now (a local path through a symlink that was
    re-pointed names another folder: the store must be opened again)."""
    if isinstance(store, FileLayerStore):
        found = normalize_layer_url(url)
        return found.startswith("file://") and os.path.realpath(found[len("file://") :]) == store._root
    return True


def open_layer_store(url: str) -> LayerStore:
    url = normalize_layer_url(url)
    if url.startswith("file://"):
        return FileLayerStore(url[len("file://") :])
    return CloudLayerStore(url)
