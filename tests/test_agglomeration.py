"""Agglomeration files: pairs or supervoxel→body tables in every format, refused rows named, bodies as roots."""

from __future__ import annotations

import numpy as np
import pytest

from segmentation import db
from segmentation.datasets import Datasets
from segmentation.graph import Graph, GraphError, ingest_dataset
from segmentation.graph.agglomeration import AgglomerationError, read_agglomeration
from segmentation.graph.ids import supervoxel_ids
from segmentation.graph.ingest import has_graph
from tests.helpers import write_volume


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ---- formats ---------------------------------------------------------------------------------


def test_csv_with_body_header_is_a_body_table(tmp_path):
    agg = read_agglomeration(write(tmp_path, "a.csv", "sv_id,body_id\n1,10\n2,10\n3,0\n"))
    assert agg.kind == "bodies" and "header" in agg.why
    assert agg.left.tolist() == [1, 2, 3] and agg.right.tolist() == [10, 10, 0]
    assert agg.rows.tolist() == [2, 3, 4]  # 1-based lines, the header is line 1


def test_csv_header_without_body_column_is_pairs(tmp_path):
    agg = read_agglomeration(write(tmp_path, "a.csv", "label_a, label_b\n1, 2\n2, 3\n"))
    assert agg.kind == "pairs" and agg.left.tolist() == [1, 2] and agg.right.tolist() == [2, 3]


def test_csv_without_header_decided_by_repeats(tmp_path):
    pairs = read_agglomeration(write(tmp_path, "p.csv", "1,2\n2,3\n"))
    assert pairs.kind == "pairs"  # column 1 repeats (2 in both columns is fine: a chain)
    bodies = read_agglomeration(write(tmp_path, "b.csv", "1,7\n2,7\n3,9\n"))
    assert bodies.kind == "bodies" and "auto" in bodies.why
    forced = read_agglomeration(write(tmp_path, "f.csv", "1,7\n2,7\n"), "pairs")
    assert forced.kind == "pairs" and forced.why == "as asked"


def test_whitespace_text_with_comments_raveler_style(tmp_path):
    text = "# segment_to_body_map.txt\n#  comment\n\n1\t100\n2   100\n  3 0\n4 4\n"
    agg = read_agglomeration(write(tmp_path, "segment_to_body_map.txt", text))
    assert agg.kind == "bodies"
    assert agg.left.tolist() == [1, 2, 3, 4] and agg.right.tolist() == [100, 100, 0, 4]
    assert agg.rows.tolist() == [4, 5, 6, 7]


def test_npy_pairs_and_bodies(tmp_path):
    np.save(tmp_path / "p.npy", np.array([[1, 2], [3, 4]], dtype=np.uint64))
    pairs = read_agglomeration(str(tmp_path / "p.npy"))
    assert pairs.kind == "pairs" and pairs.left.tolist() == [1, 3]
    np.save(tmp_path / "b.npy", np.array([[1, 5], [2, 5], [3, 6]], dtype=np.int64))
    bodies = read_agglomeration(str(tmp_path / "b.npy"))
    assert bodies.kind == "bodies" and bodies.right.tolist() == [5, 5, 6]
    np.save(tmp_path / "f.npy", np.array([[1.0, 5.0], [2.0, 5.0]]))  # integral floats are fine
    assert read_agglomeration(str(tmp_path / "f.npy"), "bodies").left.dtype == np.uint64


def test_layer_one_ids_are_accepted(tmp_path):
    sv = (1 << 56) + 5
    agg = read_agglomeration(write(tmp_path, "a.csv", f"{sv},{sv + 1}\n"), "pairs")
    assert agg.supervoxel_ids(agg.left).tolist() == [sv]


# ---- refusals name the rows --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, match",
    [
        ("sv,body\n1,2\n3,x\n4,5\n", r"non-integer fields at line 3"),
        ("1,2\n3,4\n1.5,2\n", r"non-integer fields at line 3"),
        ("1,2\n-3,4\n", r"negative values at line 2"),
        ("1,2\n3,4,5\n6\n", r"wrong column count at line 2, line 3"),
        ("1 2\n3 4 5\n", r"wrong column count at line 2 .*Raveler's superpixel_to_segment_map.txt has three"),
        (
            "1,2\n" + "\n".join(f"{i},x" for i in range(10)) + "\n",
            r"line 2, line 3, line 4, line 5, line 6 … \(10 in all\)",
        ),
        ("1,2\n99999999999999999999999,3\n", r"non-integer fields at line 2"),
    ],
)
def test_bad_text_rows_are_named(tmp_path, text, match):
    with pytest.raises(AgglomerationError, match=match):
        read_agglomeration(write(tmp_path, "bad.csv", text))


def test_supervoxel_under_two_bodies_is_named(tmp_path):
    with pytest.raises(
        AgglomerationError,
        match=r"supervoxel\(s\) 2 listed under two different bodies at "
        r"line 3, line 5",
    ):
        read_agglomeration(write(tmp_path, "b.csv", "sv,body\n1,10\n2,10\n3,11\n2,11\n"))
    same = read_agglomeration(write(tmp_path, "ok.csv", "sv,body\n1,10\n1,10\n"))  # the same row twice is fine
    assert same.kind == "bodies"


def test_labels_beyond_the_id_layout_are_named(tmp_path):
    big = (3 << 56) + 1
    with pytest.raises(AgglomerationError, match=rf"2\*\*56 or more .* at line 2 \(e.g. {big}\)"):
        read_agglomeration(write(tmp_path, "b.csv", f"1,2\n{big},3\n"), "pairs")
    # a body id is only a name: it may be large
    assert read_agglomeration(write(tmp_path, "ok.csv", f"sv,body\n1,{big}\n"), "auto").right.tolist() == [big]


def test_label_zero_is_refused(tmp_path):
    with pytest.raises(AgglomerationError, match="label 0 is background.*line 1"):
        read_agglomeration(write(tmp_path, "z.csv", "0,2\n"), "pairs")


def test_bad_npy_rows_are_named_by_index(tmp_path):
    np.save(tmp_path / "neg.npy", np.array([[1, 2], [3, -4], [5, 6]], dtype=np.int64))
    with pytest.raises(AgglomerationError, match=r"negative labels in row 1"):
        read_agglomeration(str(tmp_path / "neg.npy"))
    np.save(tmp_path / "frac.npy", np.array([[1, 2], [3, 4.5]]))
    with pytest.raises(AgglomerationError, match=r"non-integer values in row 1"):
        read_agglomeration(str(tmp_path / "frac.npy"))
    np.save(tmp_path / "three.npy", np.zeros((4, 3), dtype=np.uint64))
    with pytest.raises(AgglomerationError, match=r"N x 2 array .* shape \(4, 3\)"):
        read_agglomeration(str(tmp_path / "three.npy"))
    np.save(tmp_path / "obj.npy", np.array([["a", "b"]]))
    with pytest.raises(AgglomerationError, match="must be integers"):
        read_agglomeration(str(tmp_path / "obj.npy"))


def test_oversized_and_binary_files_are_refused(tmp_path):
    path = write(tmp_path, "big.csv", "1,2\n" * 100)
    with pytest.raises(AgglomerationError, match="more than the"):
        read_agglomeration(path, max_bytes=100)
    with pytest.raises(AgglomerationError, match="more than the 10 rows"):
        read_agglomeration(write(tmp_path, "rows.csv", "1,2\n" * 70000), max_rows=10)
    (tmp_path / "bin.csv").write_bytes(b"1,2\n\xff\xfe\x00\x01\n")
    with pytest.raises(AgglomerationError, match="not text"):
        read_agglomeration(str(tmp_path / "bin.csv"))
    with pytest.raises(AgglomerationError, match="cannot read"):
        read_agglomeration(str(tmp_path / "missing.csv"))


def test_no_backtracking_on_hostile_lines(tmp_path):
    import time

    path = write(tmp_path, "h.csv", "1," + "9" * 900 + "\n" + ("," * 900) + "\n" + "1 2" * 3000)
    started = time.monotonic()
    with pytest.raises(AgglomerationError, match="non-integer fields at line 1; wrong column count at line 2"):
        read_agglomeration(write(tmp_path, "h2.csv", "1," + "9" * 900 + "\n" + ("," * 900) + "\n"))
    with pytest.raises(AgglomerationError, match="line 3 is longer than 1000 characters"):
        read_agglomeration(path)
    assert time.monotonic() - started < 2


# ---- bodies become roots -----------------------------------------------------------------------

SLABS = 6  # labels 1..6, 8-voxel slabs along x: each touches only its neighbours


@pytest.fixture
def slabs(settings, small_volumes, tmp_path):
    db.upgrade(settings.database_url)
    labels = np.zeros((8 * SLABS, 16, 8), dtype=np.uint64)
    for label in range(1, SLABS + 1):
        labels[(label - 1) * 8 : label * 8] = label
    seg = write_volume(tmp_path / "seg", labels, layer_type="segmentation", encoding="compressed_segmentation", mips=1)
    Datasets(settings.database_url).add("b", image=small_volumes["image"], segmentation=seg)
    return settings.database_url


SV = [int(s) for s in supervoxel_ids(np.arange(1, SLABS + 1))]


def test_body_table_roots_equal_bodies_and_pieces_are_joined(slabs, tmp_path):
    # body 10: {1, 2} and {4, 5} (3 lies between) -> two pieces; body 20: {3}; 6 is body 0 (its own)
    agg = read_agglomeration(write(tmp_path, "b.csv", "sv,body\n1,10\n2,10\n4,10\n5,10\n3,20\n6,0\n"))
    summary = ingest_dataset(slabs, "b", agglomeration=agg, progress=False)
    assert summary["bodies"] == 2 and summary["bodies_made_whole"] == 1
    assert summary["agglomeration_only_edges"] == 1
    assert summary["edges"] == 5 and summary["active_edges"] == 3  # 1-2, 4-5 and the 1-4 agglomeration edge
    assert "bodies" in summary["agglomeration"]
    graph = Graph(slabs, "b")
    roots = graph.roots(SV).tolist()
    assert roots[0] == roots[1] == roots[3] == roots[4]
    assert len({roots[0], roots[2], roots[5]}) == 3
    assert sorted(graph.leaves(roots[0]).tolist()) == [SV[0], SV[1], SV[3], SV[4]]

    # a split between the pieces cuts the agglomeration-only edge (area 0: the cheapest), nothing else
    split = graph.split([SV[1]], [SV[4]], user="t")
    after = graph.roots(SV).tolist()
    assert after[0] == after[1] != after[3] == after[4]
    assert graph.operation(split.operation_id)["edge_changes"] == [[SV[0], SV[3], False]]


def test_body_of_three_pieces_gets_a_chain(slabs, tmp_path):
    path = tmp_path / "b.npy"
    np.save(path, np.array([[1, 7], [3, 7], [5, 7], [2, 8], [4, 8]], dtype=np.uint64))
    summary = ingest_dataset(slabs, "b", agglomeration=read_agglomeration(str(path), "bodies"), progress=False)
    assert summary["bodies"] == 2 and summary["bodies_made_whole"] == 2
    assert summary["agglomeration_only_edges"] == 3  # 1-3, 3-5 and 2-4
    assert summary["unlisted_supervoxels"] == 1
    roots = Graph(slabs, "b").roots(SV).tolist()
    assert roots[0] == roots[2] == roots[4] and roots[1] == roots[3]
    assert len({roots[0], roots[1], roots[5]}) == 3


def test_body_table_labels_not_in_the_volume_are_named(slabs, tmp_path):
    agg = read_agglomeration(write(tmp_path, "b.txt", "# sv body\n1 10\n2 10\n99 10\n"))
    with pytest.raises(GraphError, match=r"not in the volume \(line 4; e.g. label\(s\) 99\)"):
        ingest_dataset(slabs, "b", agglomeration=agg, progress=False)
    assert not has_graph(slabs, "b")  # nothing stored


def test_non_touching_pairs_stay_an_error(slabs, tmp_path):
    agg = read_agglomeration(write(tmp_path, "p.csv", "1,2\n1,3\n"), "pairs")
    with pytest.raises(GraphError, match=r"1 agglomeration pair\(s\) are not touching .*line 2.*body table"):
        ingest_dataset(slabs, "b", agglomeration=agg, progress=False)


def test_labels_beyond_the_layout_fail_at_their_block(settings, small_volumes, tmp_path):
    db.upgrade(settings.database_url)
    labels = np.ones((64, 64, 136), dtype=np.uint64)  # three blocks of reading along z (64 voxels each)
    labels[60, 60, 130] = (5 << 56) + 3
    seg = write_volume(
        tmp_path / "seg",
        labels,
        layer_type="segmentation",
        encoding="compressed_segmentation",
        mips=1,
        chunk=(16, 16, 8),
    )
    Datasets(settings.database_url).add("big", image=small_volumes["image"], segmentation=seg)
    with pytest.raises(GraphError, match=rf"block at voxel 0,0,128 .* not layer-1 supervoxel ids: {(5 << 56) + 3}"):
        ingest_dataset(settings.database_url, "big", progress=False)


def test_mixed_layouts_name_both_values(settings, small_volumes):
    db.upgrade(settings.database_url)
    Datasets(settings.database_url).add("m", image=small_volumes["image"], segmentation=small_volumes["segmentation"])
    with pytest.raises(
        GraphError,
        match=rf"mix plain ids and layered .*plain \d+ in the block .*layered "
        rf"{(1 << 56) + 5} \(= layer 1, label 5\)",
    ):
        ingest_dataset(settings.database_url, "m", progress=False)


@pytest.mark.parametrize(
    "text",
    [
        "sv_id,body_id\n1,10\n2,10\n3,0\n",
        "# Raveler\n# segment body\n\n1 100\n2\t100\n3  0\n",
        "sv,body\r\n1,7\r\n2,7\r\n",
        "\ufeffsupervoxel,body\n5,18446744073709551615\n6,1",  # BOM, a 64-bit body, no final newline
        "1, 2\n 2 ,3\n",
    ],
)
def test_regular_files_take_the_fast_path_and_agree_with_the_line_reader(tmp_path, text):
    from segmentation.graph.agglomeration import _read_regular_text, _read_text_by_line

    path = write(tmp_path, "t.csv", text)
    fast, slow = _read_regular_text(path, "auto", 100), _read_text_by_line(path, "auto", 100)
    assert fast is not None
    for name in ("kind", "why", "header", "row_word"):
        assert getattr(fast, name) == getattr(slow, name)
    for name in ("left", "right", "rows"):
        assert getattr(fast, name).tolist() == getattr(slow, name).tolist()


@pytest.mark.parametrize(
    "text",
    [
        "1,2\n\n3,4\n",
        "1,2\n# late comment\n3,4\n",
        "1,2\n3,x\n",
        "1,2,3\n",
        "1,2\n" + "9" * 2000 + "\n",
        "",
        "# only a comment\n",
        "1,2\n-3,4\n",
    ],
)
def test_irregular_files_leave_the_fast_path(tmp_path, text):
    from segmentation.graph.agglomeration import _read_regular_text

    assert _read_regular_text(write(tmp_path, "t.csv", text), "auto", 100) is None


def test_fast_path_line_numbers_name_clashing_bodies(tmp_path):
    text = "# exported\nsv,body\n" + "".join(f"{i},{i // 2 + 100}\n" for i in range(1, 50)) + "7,999\n"
    with pytest.raises(
        AgglomerationError,
        match=r"supervoxel\(s\) 7 listed under two different bodies at "
        r"line 9, line 52",
    ):
        read_agglomeration(write(tmp_path, "b.csv", text))


def test_whitespace_only_line_is_not_miscounted(tmp_path):
    agg = read_agglomeration(write(tmp_path, "w.txt", "1 7\n   \n2 7\n3 9\n"))
    assert agg.rows.tolist() == [1, 3, 4] and agg.kind == "bodies"
