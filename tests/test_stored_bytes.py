"""Stored gzip never inflates past a cap: a few hundred KB of gzip must not become gigabytes in a worker."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest

from segmentation.storage import MAX_INFLATED_BYTES, CorruptStoredData, FileLayerStore, StoredObject, inflate

BOMB_BYTES = MAX_INFLATED_BYTES + 2**20


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A layer directory holding ``bomb.gz``: ~260 KB of gzip inflating to just over the default cap."""
    root = tmp_path_factory.mktemp("bomb")
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(2**20)
    parts = [compressor.compress(zeros) for _ in range(BOMB_BYTES // len(zeros))]
    (root / "bomb.gz").write_bytes(b"".join(parts) + compressor.flush())
    (root / "fine.gz").write_bytes(gzip.compress(b"0123456789" * 1000) + gzip.compress(b"tail"))
    return FileLayerStore(root)


def peak_of(call):
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_decoded_refuses_a_bomb_within_its_cap(bomb):
    stored = bomb.get("bomb")
    tracemalloc.start()
    try:
        with pytest.raises(CorruptStoredData, match="'bomb'.*cap"):
            stored.decoded(2**20)
        assert tracemalloc.get_traced_memory()[1] < 4 * 2**20
    finally:
        tracemalloc.stop()


def test_decoded_has_a_default_cap(bomb):
    with pytest.raises(CorruptStoredData, match="cap"):
        bomb.get("bomb").decoded()


def test_a_range_of_a_gzip_file_inflates_only_up_to_its_end(bomb):
    body, peak = peak_of(lambda: bomb.get_range("bomb", 10, 26))
    assert body == bytes(16)
    assert peak < 12 * 2**20


def test_size_of_a_gzip_file_is_counted_not_kept(bomb):
    tracemalloc.start()
    try:
        with pytest.raises(CorruptStoredData, match="cap"):
            bomb.size("bomb")
        assert tracemalloc.get_traced_memory()[1] < 8 * 2**20
    finally:
        tracemalloc.stop()


def test_ordinary_gzip_files_read_as_before(bomb):
    whole = b"0123456789" * 1000 + b"tail"
    assert bomb.get("fine").decoded() == whole  # two gzip members, as gzip.decompress reads them
    assert bomb.size("fine") == len(whole)
    assert bomb.get_range("fine", 9995, 10004) == whole[9995:10004]
    assert bomb.get_range("fine", 9000, 20000) == whole[9000:]


def test_truncated_or_garbled_gzip_is_corrupt():
    data = gzip.compress(bytes(range(256)) * 100)
    for bad in (data[: len(data) // 2], data[:-4], b"\x1f\x8b" + bytes(30), data + b"junk"):
        with pytest.raises(CorruptStoredData):
            StoredObject(bad, "gzip", "etag", "k").decoded()
    assert inflate(data, "k", 5, prefix=True) == bytes(range(5))


def test_a_file_larger_than_expected_is_refused_before_reading(tmp_path):
    (tmp_path / "chunk").write_bytes(bytes(5000))
    store = FileLayerStore(tmp_path)
    with pytest.raises(CorruptStoredData, match="5000 bytes"):
        store.get("chunk", max_stored_bytes=4096)
    assert len(store.get("chunk", max_stored_bytes=5000).content) == 5000


@pytest.mark.parametrize("compress", ["br", "zstd", "bz2", "xz"])
def test_remote_objects_in_any_compression_are_decoded_within_a_cap(compress):
    """A bucket object stored with brotli, zstd, bz2 or xz: decoded for the client, never past the cap
    (24 MB of zeros are a few kilobytes at most in any of them). The peak allows for the codec's
    own window (xz keeps an 8 MiB dictionary), not for the output."""
    import uuid

    from cloudfiles import CloudFiles

    from segmentation.storage import CloudLayerStore

    url = f"mem://bombs-{uuid.uuid4().hex}"
    CloudFiles(url).put("small", b"hello" * 100, compress=compress, raw=False)
    CloudFiles(url).put("bomb", bytes(24 * 2**20), compress=compress, raw=False)
    store = CloudLayerStore(url)
    assert store.get("small").decoded() == b"hello" * 100
    tracemalloc.start()
    try:
        with pytest.raises(CorruptStoredData, match="cap"):
            store.get("bomb", max_stored_bytes=2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * 2**20


def test_a_file_found_once_is_found_by_one_stat_and_forgotten_when_it_goes(tmp_path):
    """FileLayerStore remembers where a key's file is (plain or .gz, checked inside the layer); a file
    that changes, is removed or is replaced by its other spelling is read as it is now."""
    (tmp_path / "s").mkdir()
    store = FileLayerStore(tmp_path)
    (tmp_path / "s" / "a").write_bytes(b"one")
    assert store.get("s/a").decoded() == b"one"
    (tmp_path / "s" / "a").write_bytes(b"two!")
    assert store.get("s/a").decoded() == b"two!"
    (tmp_path / "s" / "a").unlink()
    assert store.get("s/a") is None
    (tmp_path / "s" / "a.gz").write_bytes(gzip.compress(b"three"))
    found = store.get("s/a")
    assert found.encoding == "gzip" and found.decoded() == b"three"
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_bytes(b"secret")
    (tmp_path / "s" / "b").symlink_to(outside)
    with pytest.raises(Exception, match="outside the layer"):
        store.get("s/b")


def test_a_kept_file_is_read_again_when_rewritten_in_place_or_replaced(tmp_path):
    """Small files are kept in memory (segmentation.file_memory) only while their stat says they are
    the file read: a same-size rewrite that even puts the old mtime back (as ``cp -p`` does), a
    replacement, and a fresh file (kept only once settled: file times advance by ticks) are all read
    as they are now."""
    import os
    import time

    from segmentation import storage
    from segmentation.file_memory import FILES

    (tmp_path / "s").mkdir()
    chunk = tmp_path / "s" / "a"
    store = FileLayerStore(tmp_path)
    chunk.write_bytes(b"old!")
    kept_before = FILES.bytes
    assert store.get("s/a").decoded() == b"old!"
    assert FILES.bytes == kept_before  # just written: not kept
    old = time.time_ns() - 10_000_000_000
    os.utime(chunk, ns=(old, old))
    settled = storage.SETTLED_NS
    try:
        storage.SETTLED_NS = -(10**12)  # as if the change (its ctime) were long ago
        assert store.get("s/a").decoded() == b"old!"
        assert FILES.bytes == kept_before + 4  # read, now kept
        with open(chunk, "r+b") as handle:  # same size, same inode, in place
            handle.write(b"new!")
        os.utime(chunk, ns=(old, old))  # and the old times put back
        assert store.get("s/a").decoded() == b"new!"
        replacement = tmp_path / "s" / "a.tmp"
        replacement.write_bytes(b"repl")
        os.utime(replacement, ns=(old, old))
        os.replace(replacement, chunk)
        assert store.get("s/a").decoded() == b"repl"
    finally:
        storage.SETTLED_NS = settled
