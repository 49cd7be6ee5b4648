"""Synapse tables: import, binding to supervoxels, partners and matrices that follow proofreading
and answer past moments — each checked against a brute-force recomputation from the labels and
the graph asked one supervoxel at a time. SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest

from segmentation import db
from segmentation.connectivity import Synapses, read_table
from segmentation.connectivity import queries as connectivity_queries
from segmentation.connectivity.queries import matrix, partners
from segmentation.datasets import Datasets
from segmentation.graph.ids import supervoxel_ids
from segmentation.graph.registry import Graphs
from tests.helpers import add_wired_dataset, random_synapses, synapse_csv, write_volume


@pytest.fixture
def wired(tmp_path, database_url):
    db.upgrade(database_url)
    image = write_volume(tmp_path / "img", np.zeros((64, 48, 16), np.uint8), layer_type="image", encoding="raw", mips=1)
    labels = add_wired_dataset(database_url, image, tmp_path)
    graphs = Graphs(database_url)
    synapses = Synapses(database_url, graphs, tmp_path / "synapses")
    return {
        "url": database_url,
        "labels": labels,
        "graphs": graphs,
        "graph": graphs.open("wired"),
        "synapses": synapses,
        "dataset": Datasets(database_url).get("wired"),
        "tmp": tmp_path,
    }


def points(columns: dict, name: str) -> np.ndarray:
    return np.stack([np.asarray(columns[f"{name}_{a}"]).astype(np.int64) for a in "xyz"], axis=1)


def brute_roots(graph, labels, xyz, at) -> np.ndarray:
    """Each point's root at ``at``, looked up one supervoxel at a time (0 on background)."""
    svs = supervoxel_ids(labels[xyz[:, 0], xyz[:, 1], xyz[:, 2]].astype(np.uint64))
    return np.array([graph.root(int(s), at) if s else 0 for s in svs], dtype=np.uint64)


def brute_partners(pre: np.ndarray, post: np.ndarray, root: int) -> dict:
    """Partners of ``root`` from every synapse's pre and post roots (:func:`brute_roots`)."""
    return {
        "outputs": Counter(post[pre == root].tolist()),
        "inputs": Counter(pre[post == root].tolist()),
    }


def as_counter(side) -> Counter:
    return Counter(dict(zip(side.roots.tolist(), side.counts.tolist())))


def test_import_binds_every_point_and_reports_rows_it_cannot_add(wired):
    rng = np.random.default_rng(1)
    columns = random_synapses(wired["labels"], 200, rng)
    text = synapse_csv(columns).decode()
    bad = [
        "1000,4,4,5,5,5,3",  # outside the volume (x)
        "4,4,4,,5,5,3",  # missing post x
        "4,4,4,five,5,5,3",  # not a number
        "4,4,4,5,5,5,inf",  # size not finite
    ]
    header = text.splitlines()[0]
    assert header.startswith("size,pre_pt_position_x")
    bad = [f"{row.split(',')[-1]},{','.join(row.split(',')[:-1])}" for row in bad]  # size first, as the header
    report = wired["synapses"].add(wired["dataset"], read_table((text + "\n".join(bad) + "\n").encode()), "tester")
    assert report.added == 200 and report.rejected_count == 4
    assert [row for row, _ in report.rejected] == [201, 202, 203, 204]
    assert "outside the volume" in report.rejected[0][1]
    held = wired["synapses"].of("wired")
    rows = held.parts()[0][0].columns if len(held.parts()[0][0].columns) else held.parts()[1][0].columns
    order = np.argsort(rows.ids)
    expected_pre = supervoxel_ids(wired["labels"][tuple(points(columns, "pre_pt_position").T)].astype(np.uint64))
    expected_post = supervoxel_ids(wired["labels"][tuple(points(columns, "post_pt_position").T)].astype(np.uint64))
    assert np.array_equal(rows.pre_sv[order], expected_pre)
    assert np.array_equal(rows.post_sv[order], expected_post)
    assert (rows.post_sv == 0).sum() >= 10  # posts on background are kept, with supervoxel 0 (as CAVE does)
    assert np.isnan(rows.size[order][::7]).all() and not np.isnan(rows.size[order][1::7]).any()


def test_positions_as_lists_strings_and_other_units_and_given_ids(wired, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    labels = wired["labels"]
    nm = np.array([8, 8, 40])
    table = pa.table(  # a CAVE dump in nm, positions as lists, ids kept (one given twice)
        {
            "id": [10, 11, 12, 11],
            "pre_pt_position": [(np.array(v) * nm).tolist() for v in ([4, 4, 4], [12, 4, 4], [4, 20, 4], [5, 5, 5])],
            "post_pt_position": [(np.array(v) * nm).tolist() for v in ([20, 4, 4], [20, 40, 6], [4, 4, 4], [6, 6, 6])],
        }
    )
    path = tmp_path / "synapses.parquet"
    pq.write_table(table, path)
    incoming = read_table(path, scale=tuple(1 / nm))
    assert incoming.ids.tolist() == [10, 11, 12] and [r for r, _ in incoming.rejected] == [4]
    assert incoming.pre_xyz.tolist() == [[4, 4, 4], [12, 4, 4], [4, 20, 4]]
    report = wired["synapses"].add(wired["dataset"], incoming, "tester")
    assert report.added == 3 and (report.first_id, report.last_id) == (10, 12)
    again = wired["synapses"].add(wired["dataset"], read_table(path, scale=tuple(1 / nm)), "tester")
    assert again.added == 0
    assert {reason for _, reason in again.rejected} == {
        "the dataset already has a synapse with this id",
        "id given twice in the file (its first row is kept)",
    }
    one = wired["synapses"].of("wired").by_id(11)[0]
    assert one.post_xyz.tolist() == [[20, 40, 6]]
    assert int(one.post_sv[0]) == int(supervoxel_ids(np.array([labels[20, 40, 6]], dtype=np.uint64))[0])
    # positions as pandas writes arrays into CSV ("[x y z]"), and as tuples; new ids continue after 12
    text = 'pre_pt_position,post_pt_position\n[4 4 4],"(20, 4, 4)"\n[ 5  6  7 ],[9 9 9]\n[1 2],[3 3 3]\n'
    from_csv = read_table(text.encode())
    assert from_csv.pre_xyz.tolist() == [[4, 4, 4], [5, 6, 7]] and from_csv.rejected_count == 1
    report = wired["synapses"].add(wired["dataset"], from_csv, "tester")
    assert (report.first_id, report.last_id) == (13, 14)


def test_files_that_are_not_synapse_tables_are_clear_errors():
    from segmentation.connectivity import SynapseFileError

    for body, words in (
        (b"a,b\n1,2\n", "no pre-synaptic point"),
        (b"PAR1garbage", "cannot read"),
        (b"pre_pt_position,post_pt_position,pre_pt_supervoxel_id\n[1 1 1],[2 2 2],5\n", "both"),
        (b"pre_pt_position,post_pt_position\n1,2\n", "lists or strings"),
        (b"\x89pre,post\n1,2\n", "not UTF-8"),  # found by the API fuzzer: was a 500
        (b"pre_pt_position,post_pt_position\n[1 1 1],\xff\n", "lists or strings"),  # bytes: binary
    ):
        with pytest.raises(SynapseFileError, match=words):
            read_table(body)


def test_partners_follow_merges_and_splits_and_answer_past_moments(wired):
    graph, labels = wired["graph"], wired["labels"]
    columns = random_synapses(labels, 400, np.random.default_rng(2))
    wired["synapses"].add(wired["dataset"], read_table(synapse_csv(columns)), "tester")
    neuron = lambda row, i=0: int(supervoxel_ids(np.array([1 + i + 8 * row]))[0])  # noqa: E731
    moments = [datetime.now(UTC)]
    time.sleep(0.01)
    graph.merge(neuron(0), neuron(1), "tester")  # neurons 0 and 1 become one
    moments.append(datetime.now(UTC))
    time.sleep(0.01)
    graph.split([neuron(2, 0)], [neuron(2, 7)], "tester")  # neuron 2 cut in two
    moments.append(datetime.now(UTC))
    time.sleep(0.01)
    held = wired["synapses"].of("wired")
    for at in [*moments, None]:
        roots = np.unique(graph.roots(supervoxel_ids(np.arange(1, 97, dtype=np.uint64)), at))
        pre = brute_roots(graph, labels, points(columns, "pre_pt_position"), at)
        post = brute_roots(graph, labels, points(columns, "post_pt_position"), at)
        for root in roots.tolist():
            found = partners(held, graph, root, at)
            expected = brute_partners(pre, post, root)
            assert as_counter(found["outputs"]) == expected["outputs"], (at, root)
            assert as_counter(found["inputs"]) == expected["inputs"], (at, root)
    # a root of before the merge is no neuron now: refused, and answered as of then
    old = graph.root(neuron(0), moments[0])
    with pytest.raises(connectivity_queries.ConnectivityError):
        partners(held, graph, old, None)
    assert partners(held, graph, old, moments[0])["outputs"].counts.sum() > 0


def test_removed_synapses_leave_now_but_stay_in_the_past_and_other_processes_follow(wired):
    columns = random_synapses(wired["labels"], 120, np.random.default_rng(3))
    first = wired["synapses"]
    first.add(wired["dataset"], read_table(synapse_csv(columns)), "tester")
    other = Synapses(wired["url"], Graphs(wired["url"]), wired["tmp"] / "synapses")  # another process
    other_graph = other.graphs.open("wired")
    assert other.of("wired").count() == 120
    before = datetime.now(UTC)
    time.sleep(0.01)
    assert first.remove("wired", [1, 2, 3, 999], "tester") == 3
    assert first.of("wired").count() == 117 and first.of("wired").count(before) == 120
    time.sleep(0.6)  # the other process asks SQL at most every 0.5 s
    assert other.of("wired", other_graph).count() == 117
    assert other.of("wired", other_graph).count(before) == 120
    more = random_synapses(wired["labels"], 5, np.random.default_rng(4))
    report = first.add(wired["dataset"], read_table(synapse_csv(more)), "tester")
    assert (report.first_id, report.last_id) == (121, 125)
    time.sleep(0.6)
    assert other.of("wired", other_graph).count() == 122


def test_a_fresh_process_maps_the_snapshot_and_a_large_write_makes_a_new_one(wired, monkeypatch):
    from segmentation.connectivity import index as synapse_index

    monkeypatch.setattr(synapse_index, "REBUILD_AFTER", 50)
    monkeypatch.setattr("segmentation.connectivity.synapses.REBUILD_AFTER", 50)
    columns = random_synapses(wired["labels"], 80, np.random.default_rng(5))
    wired["synapses"].add(wired["dataset"], read_table(synapse_csv(columns)), "tester")
    folder = wired["tmp"] / "synapses"
    written = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert len(written) == 1  # the import of more rows than REBUILD_AFTER wrote this machine's snapshot
    fresh = Synapses(wired["url"], Graphs(wired["url"]), folder)
    held = fresh.of("wired")
    base = held.parts()[0][0].columns
    assert isinstance(base.ids, np.memmap) and len(base) == 80 and len(held.parts()[1][0].columns) == 0
    wired["synapses"].add(
        wired["dataset"],
        read_table(synapse_csv(random_synapses(wired["labels"], 60, np.random.default_rng(6)))),
        "tester",
    )
    assert len([p for p in folder.iterdir() if not p.name.startswith(".")]) == 1  # the older one removed
    assert Synapses(wired["url"], Graphs(wired["url"]), folder).of("wired").count() == 140


def test_matrix_between_neurons_and_between_types_equals_brute_force(wired, monkeypatch):
    graph, labels = wired["graph"], wired["labels"]
    columns = random_synapses(labels, 500, np.random.default_rng(7))
    wired["synapses"].add(wired["dataset"], read_table(synapse_csv(columns)), "tester")
    held = wired["synapses"].of("wired")
    roots = np.unique(graph.roots(supervoxel_ids(np.arange(1, 97, dtype=np.uint64))))
    pre_roots, post_roots = roots[:4], roots[2:]
    pre = brute_roots(graph, labels, points(columns, "pre_pt_position"), None)
    post = brute_roots(graph, labels, points(columns, "post_pt_position"), None)
    expected = np.array([[int(((pre == a) & (post == b)).sum()) for b in post_roots] for a in pre_roots])
    sides = ((pre_roots, np.arange(len(pre_roots))), (post_roots, np.arange(len(post_roots))))
    through_members = matrix(held, graph, *sides, len(pre_roots), len(post_roots), None)
    assert np.array_equal(through_members.counts, expected) and expected.sum() > 0
    monkeypatch.setattr(connectivity_queries, "MEMBER_PATH_ROOTS", 0)  # one pass over every synapse
    assert np.array_equal(matrix(held, graph, *sides, len(pre_roots), len(post_roots), None).counts, expected)
    # two labels on one neuron: it counts for both
    doubled = (np.concatenate([pre_roots, pre_roots[:1]]), np.concatenate([np.zeros(4, int), [1]]))
    both = matrix(held, graph, doubled, sides[1], 2, len(post_roots), None)
    assert np.array_equal(both.counts[1], expected[0]) and np.array_equal(both.counts[0], expected.sum(axis=0))
