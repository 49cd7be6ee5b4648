"""Share-link states: validate what is posted, key it, store it small, give it back byte for byte.

Neuroglancer posts its state as JSON; we keep exactly those bytes (key order, number
spelling, whitespace) because the viewer, diff tools and users' scripts may depend on them,
and compress them with zstd and a dictionary trained on Neuroglancer states — share links
are small documents full of the same keys and URLs, which is where a dictionary pays.

Codec ids are stored next to each blob and are permanent:

* ``0`` — the raw bytes (used when compression would not make the blob smaller);
* ``1`` — zstd, shipped dictionary ``dictionaries/states-v1.zdict`` (pinned by SHA-256).

A new or retrained dictionary is a NEW codec id and a new file (``states-v2.zdict`` →
codec ``2``); the old file and its id stay forever, or the links stored with them stop
decoding.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from itertools import accumulate
from pathlib import Path

import zstandard

from segmentation.errors import Invalid

__all__ = [
    "StateRejected",
    "parse_state",
    "parse_json_object",
    "content_key",
    "encode",
    "decode",
    "CODEC_RAW",
    "CODEC_ZSTD_V1",
    "MAX_STATE_BYTES",
    "MAX_DEPTH",
]

CODEC_RAW = 0
CODEC_ZSTD_V1 = 1

MAX_STATE_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 100
MAX_STATE_LAYERS = 1_000  # layers in one stored state
MAX_STATE_SEGMENTS = 100_000  # segments listed across a stored state's layers (each is anchored on save)

#: Level 19: a state is written once and read many times. Measured (bench/state_store.py):
#: ~0.8 ms median encode, ~0.01 ms decode, ~0.12 s per MB for the rare big state; 22 stores
#: the same bytes, 9 stores ~10 % more. The level is baked into the precomputed dictionary.
ZSTD_LEVEL = 19
DICTIONARY_DIR = Path(__file__).resolve().parent / "dictionaries"
DICTIONARY_V1_FILE = DICTIONARY_DIR / "states-v1.zdict"
DICTIONARY_V1_SIZE = 32 * 1024
#: The shipped v1 bytes. If this check fails, the file was retrained or damaged: restore it
#: (``git checkout``) — blobs stored with codec 1 need exactly these bytes.
DICTIONARY_V1_SHA256 = "48f137d503e353900d45f510840a0561ecd5addf04d89b160238f305ae9bffe9"

#: codec id -> (dictionary file, its SHA-256). Append only.
_DICTIONARIES = {CODEC_ZSTD_V1: (DICTIONARY_V1_FILE, DICTIONARY_V1_SHA256)}


class StateRejected(Invalid):
    """A posted state we refuse; ``status`` is the HTTP status to answer with (400 or 413)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------
# Validation

# A JSON string, unrolled so the regex engine does not backtrack per character.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Everything except the four brackets, to delete with bytes.translate (C speed).
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
for _b in b"[{":
    _STEP[_b] = 1
for _b in b"]}":
    _STEP[_b] = -1
_DEPTH_CHUNK = 1 << 16


def _too_deep(raw: bytes, max_depth: int) -> bool:
    """True when brackets outside strings nest deeper than ``max_depth``.

    Checked before ``json.loads`` so a hostile ``[[[[…`` costs a scan, not a recursion: strings
    are cut out (brackets in them do not count), the rest reduced to its brackets, and the
    running depth summed in chunks that stop at the first one going too deep.
    """
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= max_depth:
        return False
    depth = 0
    for start in range(0, len(brackets), _DEPTH_CHUNK):
        running = list(accumulate(map(_STEP.__getitem__, brackets[start : start + _DEPTH_CHUNK]), initial=depth))
        if max(running) > max_depth:
            return True
        depth = running[-1]
    return False


def _reject_constant(name: str, what: str = "state"):
    raise StateRejected(400, f"{what} contains {name}, which is not JSON (Neuroglancer never writes it)")


def _size_text(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB" if n >= 1024 * 1024 else f"{n / 1024:g} KB"


def parse_state(raw: bytes, *, max_bytes: int = MAX_STATE_BYTES, max_depth: int = MAX_DEPTH) -> dict:
    """Validate a posted Neuroglancer state and return it parsed.

    Raises :class:`StateRejected`: 413 when larger than ``max_bytes``; 400 when not UTF-8,
    not JSON, not an object, nested deeper than ``max_depth`` or containing NaN/Infinity.
    """
    state = parse_json_object(raw, max_bytes=max_bytes, max_depth=max_depth, what="state")
    layers = state.get("layers")
    layers = list(layers.values()) if isinstance(layers, dict) else layers if isinstance(layers, list) else []
    if len(layers) > MAX_STATE_LAYERS:
        raise StateRejected(413, f"a state may have at most {MAX_STATE_LAYERS:,} layers (this one has {len(layers):,})")
    segments = sum(
        len(layer["segments"])
        for layer in layers
        if isinstance(layer, dict) and isinstance(layer.get("segments"), list)
    )
    if segments > MAX_STATE_SEGMENTS:
        raise StateRejected(
            413, f"a state may list at most {MAX_STATE_SEGMENTS:,} segments (this one lists {segments:,})"
        )
    return state


def parse_json_object(raw: bytes, *, max_bytes: int, max_depth: int, what: str = "body") -> dict:
    """A JSON object from untrusted bytes, or :class:`StateRejected` (4xx) naming ``what`` was wrong.

    Depth is checked before ``json.loads`` runs, so ``[[[[…`` nested 100,000 deep is a 400, never
    a RecursionError.
    """
    if len(raw) > max_bytes:
        raise StateRejected(
            413, f"{what} is {len(raw):,} bytes; the limit is {max_bytes:,} bytes ({_size_text(max_bytes)})"
        )
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as error:
        raise StateRejected(400, f"{what} is not UTF-8 (byte {error.start}: {error.reason})") from None
    if _too_deep(raw, max_depth):
        raise StateRejected(400, f"{what} nests deeper than {max_depth} levels")
    try:
        state = json.loads(text, parse_constant=lambda name: _reject_constant(name, what))
    except StateRejected:
        raise
    except RecursionError:  # unreachable after _too_deep, but never let it become a 500
        raise StateRejected(400, f"{what} nests deeper than {max_depth} levels") from None
    except json.JSONDecodeError as error:
        raise StateRejected(
            400, f"{what} is not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    if not isinstance(state, dict):
        raise StateRejected(400, f"{what} must be a JSON object, not {_json_type(state)}")
    return state


def _json_type(value) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def content_key(state: dict) -> str:
    """Hex SHA-256 of the canonical JSON: the same state posted twice gets the same key.

    Canonical means sorted keys, no whitespace, UTF-8 — so key order and spacing do not
    matter; numbers compare as parsed (``1e-9`` and ``1e-09`` are equal, ``1`` and ``1.0`` not).
    """
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # surrogatepass: a lone "\ud800" escape is valid JSON and must not crash the hash.
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


# ---------------------------------------------------------------------------------------------
# Storage

_dictionaries: dict[int, zstandard.ZstdCompressionDict] = {}
_dictionaries_lock = threading.Lock()
_local = threading.local()  # zstd (de)compressors are not safe to share between threads


def dictionary(codec_id: int) -> zstandard.ZstdCompressionDict:
    """The codec's dictionary, read and checked once per process."""
    loaded = _dictionaries.get(codec_id)
    if loaded is not None:
        return loaded
    if codec_id not in _DICTIONARIES:
        raise ValueError(f"unknown state codec {codec_id}")
    with _dictionaries_lock:
        if codec_id not in _dictionaries:
            path, sha256 = _DICTIONARIES[codec_id]
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha256:
                raise RuntimeError(
                    f"{path} is not the dictionary codec {codec_id} was stored with "
                    f"(SHA-256 differs); restore the shipped file"
                )
            loaded = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT)
            loaded.precompute_compress(level=ZSTD_LEVEL)
            _dictionaries[codec_id] = loaded
    return _dictionaries[codec_id]


def _compressor() -> zstandard.ZstdCompressor:
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        # No dictionary id in the frame (the codec id says which); a checksum, since exact bytes
        # back is the promise; the content size, so decode allocates once.
        compressor = zstandard.ZstdCompressor(
            level=ZSTD_LEVEL,
            dict_data=dictionary(CODEC_ZSTD_V1),
            write_checksum=True,
            write_content_size=True,
            write_dict_id=False,
        )
        _local.compressor = compressor
    return compressor


def _decompressor(codec_id: int) -> zstandard.ZstdDecompressor:
    cache = getattr(_local, "decompressors", None)
    if cache is None:
        cache = _local.decompressors = {}
    decompressor = cache.get(codec_id)
    if decompressor is None:
        decompressor = cache[codec_id] = zstandard.ZstdDecompressor(dict_data=dictionary(codec_id))
    return decompressor


def encode(raw: bytes) -> tuple[int, bytes]:
    """Compress a state for storage: ``(codec_id, blob)``; :func:`decode` gives ``raw`` back exactly."""
    raw = bytes(raw)
    blob = _compressor().compress(raw)
    if len(blob) >= len(raw):
        return CODEC_RAW, raw
    return CODEC_ZSTD_V1, blob


def decode(codec_id: int, blob: bytes) -> bytes:
    """The exact bytes that were encoded; every codec id ever written stays decodable."""
    if codec_id == CODEC_RAW:
        return bytes(blob)
    if codec_id in _DICTIONARIES:
        return _decompressor(codec_id).decompress(blob)
    raise ValueError(f"unknown state codec {codec_id}")
