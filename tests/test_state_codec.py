"""Share-link state codec: validation, content keys, exact round trips, the shipped dictionary."""

from __future__ import annotations

import gzip
import hashlib
import json
import statistics
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.state_corpus import EVAL_SEED, TRAIN_SEED, evaluation_set, generate, js_number, stringify
from state_links import codec
from state_links.codec import StateRejected, content_key, decode, encode, parse_state

ODD_STATES = [
    b"{}",
    '{"name":"シナプス — étiquette ✓ 🧠","layers":[]}'.encode(),
    b'{"segments":["18446744073709551615"],"raw":18446744073709551615,"neg":-9223372036854775808}',
    b'{"dimensions":{"x":[1e-9,"m"],"y":[1E-09,"m"],"z":[0.000000001,"m"]},"scale":1.0,"big":1e300}',
    b'  {\n  "layout" :  "4panel",\r\n\t"position": [ 1 , 2.50 , -0.0 ]\n}\n  ',
    b'{"a":"\\u00e9\\ud83e\\udde0\\"\\\\\\/","b":null,"c":true,"d":false,"e":[[],{}]}',
    b'{"dup":1,"dup":2}',
]


# ---------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("raw", evaluation_set(40) + ODD_STATES)
def test_round_trip_is_byte_exact(raw):
    codec_id, blob = encode(raw)
    assert codec_id in (codec.CODEC_RAW, codec.CODEC_ZSTD_V1)
    assert decode(codec_id, blob) == raw


def test_round_trip_large_state():
    raw = stringify({"layers": [{"type": "segmentation", "segments": [str((9 << 56) + i) for i in range(200_000)]}]})
    raw = raw.encode()
    codec_id, blob = encode(raw)
    assert codec_id == codec.CODEC_ZSTD_V1 and len(blob) < len(raw) / 5
    assert decode(codec_id, blob) == raw


def test_decode_codec_0_and_1():
    assert decode(0, b'{"a":1}') == b'{"a":1}'
    raw = evaluation_set(1)[0]
    codec_id, blob = encode(raw)
    assert codec_id == 1
    assert decode(1, blob) == raw
    assert decode(1, memoryview(blob)) == raw


def test_tiny_states_are_stored_raw():
    assert encode(b"{}") == (codec.CODEC_RAW, b"{}")


def test_unknown_codec_is_an_error():
    with pytest.raises(ValueError):
        decode(99, b"x")


def test_blob_is_a_plain_zstd_frame_with_the_v1_dictionary():
    """Anyone with the dictionary can read a stored blob (``zstd -d -D states-v1.zdict``)."""
    import zstandard

    raw = evaluation_set(2)[1]
    _, blob = encode(raw)
    d = zstandard.ZstdCompressionDict(codec.DICTIONARY_V1_FILE.read_bytes())
    assert zstandard.ZstdDecompressor(dict_data=d).decompress(blob) == raw


def test_threads_share_the_codec():
    states = evaluation_set(30)

    def trip(raw):
        return decode(*encode(raw)) == raw

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(trip, states * 4))


# ---------------------------------------------------------------------------------------------
# Content keys


def test_content_key_ignores_whitespace_and_key_order():
    a = b'{"layout":"xy-3d","position":[1.5,2,3],"layers":[{"name":"em","type":"image"}]}'
    b = b'{ "layers" : [ {"type":"image", "name":"em"} ],\n "position":[1.5, 2, 3], "layout":"xy-3d" }'
    assert content_key(parse_state(a)) == content_key(parse_state(b))
    assert content_key(parse_state(b'{"x":[1e-9]}')) == content_key(parse_state(b'{"x":[1E-09]}'))


def test_content_key_differs_for_different_states():
    states = [parse_state(raw) for raw in evaluation_set(50)]
    keys = {content_key(s) for s in states}
    assert len(keys) == 50
    assert content_key({"a": [1, 2]}) != content_key({"a": [2, 1]})
    assert content_key({"a": "1"}) != content_key({"a": 1})


def test_content_key_is_sha256_of_canonical_json():
    state = {"b": "é", "a": [1, {"d": None, "c": True}]}
    canonical = '{"a":[1,{"c":true,"d":null}],"b":"é"}'.encode()
    assert content_key(state) == hashlib.sha256(canonical).hexdigest()


def test_content_key_survives_lone_surrogates():
    state = parse_state(b'{"name":"\\ud800"}')
    assert len(content_key(state)) == 64


# ---------------------------------------------------------------------------------------------
# Rejections


def _rejected(raw, **limits) -> StateRejected:
    with pytest.raises(StateRejected) as info:
        parse_state(raw, **limits)
    assert isinstance(info.value, ValueError)
    return info.value


def test_too_large_is_413_and_names_the_limit():
    error = _rejected(b'{"a":"' + b"x" * (10 * 1024 * 1024) + b'"}')
    assert error.status == 413
    assert "10,485,760 bytes" in str(error) and "10 MB" in str(error)
    small = _rejected(b'{"a":"' + b"x" * 2000 + b'"}', max_bytes=1024)
    assert small.status == 413 and "1,024 bytes" in str(small)


def test_exactly_at_the_limit_is_accepted():
    raw = b'{"a":"' + b"x" * 1016 + b'"}'
    assert len(raw) == 1024
    assert parse_state(raw, max_bytes=1024) == {"a": "x" * 1016}


@pytest.mark.parametrize("raw", [b'{"a":"\xff"}', b'{"a":"\xc3"}', b'\xef\xbb\xbf{"a":1}'])
def test_not_utf8_or_bom_is_400(raw):
    assert _rejected(raw).status == 400


@pytest.mark.parametrize(
    "raw",
    [b"", b"   ", b"{", b'{"a":1,}', b"{'a':1}", b'{"a":1} {"b":2}', b"layout=4panel", b'{"a":undefined}', b'{"a":01}'],
)
def test_not_json_is_400(raw):
    error = _rejected(raw)
    assert error.status == 400 and "not JSON" in str(error)


@pytest.mark.parametrize("raw", [b"[]", b'[{"a":1}]', b'"state"', b"1", b"null", b"true"])
def test_not_an_object_is_400(raw):
    error = _rejected(raw)
    assert error.status == 400 and "JSON object" in str(error)


@pytest.mark.parametrize("raw", [b'{"a":NaN}', b'{"a":[Infinity]}', b'{"a":-Infinity}'])
def test_nan_and_infinity_are_400(raw):
    error = _rejected(raw)
    assert error.status == 400 and "Neuroglancer never writes" in str(error)


def test_hostile_nesting_is_400_and_cheap(monkeypatch):
    """Refused by the depth scan before the JSON parser runs (a parser would build millions of nested
    lists, or overflow its stack). Checked by what runs, not by a clock a busy machine could fail."""
    import state_links.codec as codec

    def no_parsing(*args, **kwargs):
        raise AssertionError("the parser ran on input the depth scan should have refused")

    monkeypatch.setattr(codec.json, "loads", no_parsing)
    for raw in (b"[" * 100_000, b'{"a":' * 100_000, b"[" * 100_000 + b"]" * 100_000, b"[" * 5_000_000):
        error = _rejected(raw)
        assert error.status == 400 and "deeper than 100" in str(error)


def test_depth_limit_is_exact_and_ignores_brackets_in_strings():
    def nested(depth):  # an object holding depth - 1 nested arrays: depth levels in all
        return b'{"a":' + b"[" * (depth - 1) + b"1" + b"]" * (depth - 1) + b"}"

    assert parse_state(nested(100))["a"]
    assert _rejected(nested(101)).status == 400
    assert parse_state(nested(10), max_depth=10)
    assert _rejected(nested(11), max_depth=10).status == 400
    in_strings = b'{"q":"' + b"[{" * 5000 + b'\\"[[[","r":["]]]]\\\\"]}'
    assert parse_state(in_strings)["r"] == ["]]]]\\"]


def test_recursion_error_becomes_400():
    """With the scan's limit raised, json.loads itself recurses too deep; that is a 400, not a 500."""
    raw = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    error = _rejected(raw, max_depth=10**7)
    assert error.status == 400


def test_valid_states_parse():
    for raw in evaluation_set(20) + ODD_STATES:
        assert parse_state(raw) == json.loads(raw)


# ---------------------------------------------------------------------------------------------
# Dictionary and corpus


def test_shipped_dictionary_is_pinned():
    data = codec.DICTIONARY_V1_FILE.read_bytes()
    assert len(data) <= 64 * 1024
    assert hashlib.sha256(data).hexdigest() == codec.DICTIONARY_V1_SHA256


def test_corpus_compresses_as_measured():
    """Measured on 100 evaluation states: codec median 27.7 % of raw, gzip -9 43.4 % (the issue's
    15 % is not reached on this corpus; see bench/state_store.py for why)."""
    states = evaluation_set(100)
    ratios = [len(encode(raw)[1]) / len(raw) for raw in states]
    gzip_ratios = [len(gzip.compress(raw, 9)) / len(raw) for raw in states]
    assert statistics.median(ratios) < 0.30
    assert statistics.median(ratios) < 0.7 * statistics.median(gzip_ratios)


def test_corpus_is_deterministic_and_seeds_are_disjoint():
    assert TRAIN_SEED != EVAL_SEED
    assert generate(5, 123) == generate(5, 123)
    assert generate(5, TRAIN_SEED)[0] != generate(5, EVAL_SEED)[0]


@pytest.mark.parametrize(
    "value, spelling",
    [
        (8e-9, "8e-9"),
        (4.5e-8, "4.5e-8"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (100.0, "100"),
        (-0.25, "-0.25"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (0.2887498140335083, "0.2887498140335083"),
        (0.0, "0"),
        (123456.296875, "123456.296875"),
        (18446744073709551615, "18446744073709551615"),
    ],
)
def test_corpus_spells_numbers_like_javascript(value, spelling):
    assert js_number(value) == spelling


def test_corpus_states_are_compact_json_objects_with_neuroglancer_keys():
    for raw in evaluation_set(20):
        state = json.loads(raw)
        assert raw == stringify(state).encode()  # no whitespace, order kept
        assert list(state)[:2] == ["dimensions", "position"] and "layers" in state and "layout" in state
