"""``ingest-graph``: checks before any chunk is read, body tables from the shell, ``--replace [--yes]``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segmentation.access.audit import AuditLog
from segmentation.config import Settings
from segmentation.graph import Graph
from segmentation.graph.ids import supervoxel_ids
from segmentation.graph.registry import forget_everywhere
from server.cli import main
from tests.helpers import slab_labels, write_volume

SV = [int(s) for s in supervoxel_ids(np.arange(1, 5))]


@pytest.fixture
def home(tmp_path, small_volumes, capsys):
    """Dataset `d`: labels 1-4 in 8-voxel slabs along x (each touches its neighbours), registered, no graph."""
    seg = write_volume(
        tmp_path / "seg", slab_labels(), layer_type="segmentation", encoding="compressed_segmentation", mips=1
    )
    home = tmp_path / "home"
    assert (
        main(["add-dataset", "d", "--segmentation", seg, "--image", small_volumes["image"], "--home", str(home)]) == 0
    )
    capsys.readouterr()
    return home


def cli(capsys, home, *args):
    status = main([*args, "--home", str(home)])
    out = capsys.readouterr()
    return status, out.out, out.err


def database(home):
    return Settings.load(home=home).database_url


class ChunkReads:
    """Counts what reads chunks: the check's sample and the region graph."""

    def __init__(self, monkeypatch):
        from segmentation import check
        from segmentation.graph import ingest

        self.sampled, self.region_graphs = 0, 0
        sample, region_graph = check._sample_labels, ingest.region_graph

        def counted_sample(*args, **kwargs):
            self.sampled += 1
            return sample(*args, **kwargs)

        def counted_region_graph(*args, **kwargs):
            self.region_graphs += 1
            return region_graph(*args, **kwargs)

        monkeypatch.setattr(check, "_sample_labels", counted_sample)
        monkeypatch.setattr(ingest, "region_graph", counted_region_graph)


def test_body_table_from_the_shell(home, tmp_path, capsys):
    table = tmp_path / "segment_to_body_map.txt"
    table.write_text("# supervoxel body\n1 50\n3 50\n2 60\n")
    status, out, err = cli(capsys, home, "ingest-graph", "d", "--agglomeration", str(table))
    assert status == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["bodies"] == 2 and summary["bodies_made_whole"] == 1 and summary["agglomeration_only_edges"] == 1
    assert "agglomeration: 3 bodies row(s)" in err
    roots = Graph(database(home), "d").roots(SV).tolist()
    assert roots[0] == roots[2] and len({roots[0], roots[1], roots[3]}) == 3


def test_existing_graph_is_refused_before_any_chunk_is_read(home, capsys, monkeypatch):
    assert cli(capsys, home, "ingest-graph", "d")[0] == 0
    reads = ChunkReads(monkeypatch)
    status, _, err = cli(capsys, home, "ingest-graph", "d")
    assert status == 1 and "dataset d already has a graph (use --replace)" in err
    assert (reads.sampled, reads.region_graphs) == (0, 0)


def test_bad_file_and_check_problems_stop_before_the_region_graph(home, tmp_path, capsys, monkeypatch, small_volumes):
    reads = ChunkReads(monkeypatch)
    bad = tmp_path / "bad.csv"
    bad.write_text("sv,body\n1,5\n2,x\n")
    status, _, err = cli(capsys, home, "ingest-graph", "d", "--agglomeration", str(bad))
    assert status == 1 and "non-integer fields at line 3" in err
    assert (reads.sampled, reads.region_graphs) == (0, 0)

    # a volume that mixes plain and layered ids: the check's sample finds it, the region graph never starts
    assert cli(capsys, home, "add-dataset", "mixed", "--segmentation", small_volumes["segmentation"])[0] == 0
    status, _, err = cli(capsys, home, "ingest-graph", "mixed")
    assert status == 1
    assert "mixed cannot be ingested: labels: plain ids (11, 42) and layered layer-1 ids" in err
    assert reads.sampled == 1 and reads.region_graphs == 0


def test_replace_swaps_the_graph_and_is_audited(home, tmp_path, capsys):
    assert cli(capsys, home, "ingest-graph", "d")[0] == 0
    url = database(home)
    graph = Graph.open(url, "d")
    graph.merge(SV[0], SV[1], user="alice")
    old_roots = graph.roots(SV).tolist()

    status, _, err = cli(capsys, home, "ingest-graph", "d", "--replace")  # stdin is no terminal: must say --yes
    assert status == 1 and "confirm with --yes" in err

    table = tmp_path / "bodies.csv"
    table.write_text("supervoxel,body\n3,7\n4,7\n")
    status, out, err = cli(capsys, home, "ingest-graph", "d", "--agglomeration", str(table), "--replace", "--yes")
    assert status == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["replaced"] == {"operations": 1, "edges": 3, "supervoxels": 4, "graph": 1}
    assert "operation ids start again" in err
    fresh = Graph.open(url, "d")
    assert fresh is not graph
    roots = fresh.roots(SV).tolist()
    assert roots[2] == roots[3] and len({roots[0], roots[1], roots[2]}) == 3  # alice's merge is gone
    assert roots != old_roots
    every_old_root = set(old_roots) | {int(r) for r in graph.index.base.root_ids}  # initial ones too
    assert not every_old_root & set(roots)  # a root id never comes back naming another neuron
    assert min(r & ((1 << 56) - 1) for r in roots) > max(r & ((1 << 56) - 1) for r in every_old_root)
    assert fresh.user_operations(None) == []
    (entry,) = AuditLog(url).entries(action="graph.replace")
    assert entry["dataset"] == "d" and entry["user"].startswith("cli:") and entry["origin"] == "cli"
    assert entry["detail"]["removed"]["operations"] == 1 and entry["detail"]["new"]["bodies"] == 1


def test_a_failed_replace_keeps_the_old_graph(home, tmp_path, capsys):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("1,2\n")
    assert cli(capsys, home, "ingest-graph", "d", "--agglomeration", str(pairs))[0] == 0
    url = database(home)
    before = Graph(url, "d").roots(SV).tolist()
    missing = tmp_path / "missing.csv"
    missing.write_text("sv,body\n1,9\n77,9\n")  # 77 is not in the volume: found after the region graph
    status, _, err = cli(capsys, home, "ingest-graph", "d", "--agglomeration", str(missing), "--replace", "--yes")
    assert status == 1 and "not in the volume (line 3; e.g. label(s) 77)" in err
    assert Graph(url, "d").roots(SV).tolist() == before
    assert AuditLog(url).entries(action="graph.replace") == []


def test_a_replace_failing_while_writing_rolls_back(settings, small_volumes, tmp_path, monkeypatch, graph_store):
    """The new base is written first and the old graph is deleted in the transaction that points to the
    new one: a failure while writing or swapping leaves the old graph and no stray files."""
    from segmentation import db
    from segmentation.datasets import Datasets
    from segmentation.graph import base as base_module
    from segmentation.graph import ingest

    db.upgrade(settings.database_url)
    labels = np.zeros((32, 32, 8), dtype=np.uint64)
    labels[:16], labels[16:] = 1, 2
    seg = write_volume(tmp_path / "seg", labels, layer_type="segmentation", encoding="compressed_segmentation", mips=1)
    Datasets(settings.database_url).add("r", image=small_volumes["image"], segmentation=seg)
    ingest.ingest_dataset(settings.database_url, "r", agglomeration=[[1, 2]], progress=False)
    svs = SV[:2]
    before = Graph(settings.database_url, "r").roots(svs).tolist()
    assert before[0] == before[1]
    store = graph_store  # the folder the bases are written to
    old_files = sorted(p.name for p in store.iterdir())
    saved = []

    def failing_save(file, array):  # the disk fills up while the new base is being written
        saved.append(file)
        if len(saved) == 3:
            raise OSError("disk full")
        return save(file, array)

    save = base_module.np.save
    monkeypatch.setattr(base_module.np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        ingest.ingest_dataset(settings.database_url, "r", replace=True, progress=False)
    monkeypatch.undo()
    assert len(saved) == 3  # it got as far as writing
    assert sorted(p.name for p in store.iterdir()) == old_files  # nothing half-written is left

    def failing_audit(*args, **kwargs):  # the base is written, then the swap's transaction fails
        raise RuntimeError("connection lost")

    monkeypatch.setattr("segmentation.access.audit.record", failing_audit)
    with pytest.raises(RuntimeError, match="connection lost"):
        ingest.ingest_dataset(settings.database_url, "r", replace=True, progress=False)
    assert sorted(p.name for p in store.iterdir()) == old_files  # the unused new base is deleted
    after = Graph(settings.database_url, "r")
    assert after.roots(svs).tolist() == before
    assert len(after.index.sv_ids) == 2
    assert AuditLog(settings.database_url).entries(action="graph.replace") == []


def test_search_after_replace_answers_from_the_new_graph(home, tmp_path, capsys):
    """Tags follow their supervoxels to the new roots; cached search answers of the old graph are not reused."""
    from segmentation.celltypes.query import parse
    from segmentation.celltypes.search import search
    from segmentation.celltypes.tags import CellTags
    from segmentation.celltypes.vocabulary import Vocabulary
    from segmentation.datasets import Datasets

    url = database(home)
    assert cli(capsys, home, "ingest-graph", "d")[0] == 0  # 1, 2, 3, 4 each its own neuron
    tags, vocabulary = CellTags(url), Vocabulary.for_dataset(home, "d")
    rows = [{"voxel": [x, 16, 4], "term": "basket"} for x in (4, 12)]  # in supervoxels 1 and 2
    added, refused = tags.add_many(Datasets(url).get("d"), rows, "t", vocabulary)
    assert len(added) == 2 and not refused

    def neurons():
        return sorted(hit.root_id for hit in search(tags, parse("basket"), lambda _: vocabulary, ["d"]).hits)

    assert len(neurons()) == 2
    table = tmp_path / "bodies.csv"
    table.write_text("sv,body\n1,5\n2,5\n")
    assert cli(capsys, home, "ingest-graph", "d", "--agglomeration", str(table), "--replace", "--yes")[0] == 0
    forget_everywhere(url, "d")
    assert neurons() == [Graph.open(url, "d").root(SV[0])]  # one neuron now, with both tags


def test_after_a_replace_no_cached_chunk_is_revalidated(home, tmp_path, capsys):
    """The live chunk's ETag names the graph it came from: a browser's copy from the old graph is not
    "not modified" although the new graph has made as many edits (none)."""
    from server import create_app

    assert cli(capsys, home, "ingest-graph", "d")[0] == 0
    client = create_app(Settings.load(home=home)).test_client()
    info = client.get("/data/d/segmentation/info").get_json()
    key = f"/data/d/segmentation/{info['scales'][0]['key']}/0-16_0-16_0-8"
    before = client.get(key)
    assert before.status_code == 200
    table = tmp_path / "bodies.csv"
    table.write_text("supervoxel,body\n1,7\n2,7\n")
    assert cli(capsys, home, "ingest-graph", "d", "--agglomeration", str(table), "--replace", "--yes")[0] == 0
    after = client.get(key, headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]


def test_check_names_a_damaged_base_and_replace_still_mends_it(home, capsys):
    from pathlib import Path
    from urllib.parse import urlsplit

    assert cli(capsys, home, "ingest-graph", "d")[0] == 0
    status, out, _ = cli(capsys, home, "check", "d")
    assert status == 0 and "every file's checksum verified" in out
    roots = Path(urlsplit(Graph.open(database(home), "d").base_url).path) / "root_of.npy"
    data = roots.read_bytes()
    roots.write_bytes(data[:-8] + bytes(8 * [0xFF]))  # same size: only the checksum tells

    status, out, _ = cli(capsys, home, "check", "d")
    assert status == 1 and "root_of.npy is damaged" in out
    status, _, err = cli(capsys, home, "ingest-graph", "d", "--replace", "--yes")  # not stopped by the damage
    assert status == 0, err
    status, out, _ = cli(capsys, home, "check", "d")
    assert status == 0 and "every file's checksum verified" in out
