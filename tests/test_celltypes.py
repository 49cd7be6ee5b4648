"""Cell-type tags through a live server: they follow merges and splits, search, CSV, segment properties."""

from __future__ import annotations

import csv
import datetime
import io
import json
import time
from urllib.parse import quote

from tests.helpers import CG_SV as SV
from tests.helpers import call


def tag(server, position, term, **extra):
    body = json.dumps({"position": position, "term": term, **extra}).encode()
    status, answer = call(f"{server.url}/api/v1/datasets/cg/tags", body, token=server.token)
    return status, json.loads(answer)


def roots(server, svs):
    status, body = call(
        f"{server.url}/segmentation/api/v1/table/cg/roots", json.dumps({"node_ids": svs}).encode(), token=server.token
    )
    return json.loads(body)["root_ids"]


def find(server, q, **params):
    query = "&".join([f"q={quote(q)}", *(f"{k}={v}" for k, v in params.items())])
    status, body = call(f"{server.url}/api/v1/search?{query}", token=server.token)
    return status, json.loads(body)


def test_tags_follow_a_merge_and_a_split_and_are_never_deleted(cg_server):
    status, first = tag(cg_server, [4, 16, 4], "L2/3 PC", note="big soma", confidence=0.9)  # a synonym
    assert status == 201, first
    assert first["term"] == "L2/3 pyramidal" and first["supervoxel_id"] == str(SV[0])
    assert first["root_id"] == str(roots(cg_server, [SV[0]])[0])
    before = datetime.datetime.now(datetime.UTC)
    time.sleep(0.01)

    status, merged = call(
        f"{cg_server.url}/segmentation/api/v1/table/cg/merge",
        json.dumps([[SV[1], 0, 0, 0], [SV[2], 0, 0, 0]]).encode(),
        token=cg_server.token,
    )
    merged_root = json.loads(merged)["new_root_ids"][0]
    status, body = call(f"{cg_server.url}/api/v1/datasets/cg/tags?root_id={merged_root}", token=cg_server.token)
    assert [t["id"] for t in json.loads(body)["tags"]] == [first["id"]]  # the tag moved with its neuron
    status, body = call(f"{cg_server.url}/api/v1/datasets/cg/tags?t={before.timestamp()}", token=cg_server.token)
    assert json.loads(body)["tags"][0]["root_id"] == first["root_id"]  # and was on the old root before

    call(
        f"{cg_server.url}/segmentation/api/v1/table/cg/split",
        json.dumps({"sources": [[SV[3], 0, 0, 0]], "sinks": [[SV[0], 0, 0, 0]]}).encode(),
        token=cg_server.token,
    )
    status, body = call(f"{cg_server.url}/api/v1/datasets/cg/tags", token=cg_server.token)
    assert json.loads(body)["tags"][0]["root_id"] == str(roots(cg_server, [SV[0]])[0])

    status, body = call(f"{cg_server.url}/api/v1/tags/{first['id']}", method="DELETE", token=cg_server.token)
    assert status == 200 and json.loads(body)["retracted"] is not None
    assert json.loads(call(f"{cg_server.url}/api/v1/datasets/cg/tags", token=cg_server.token)[1])["tags"] == []
    kept = json.loads(call(f"{cg_server.url}/api/v1/datasets/cg/tags?include_retracted=1", token=cg_server.token)[1])[
        "tags"
    ]
    assert [t["id"] for t in kept] == [first["id"]]
    assert call(f"{cg_server.url}/api/v1/tags/{first['id']}", method="DELETE", token=cg_server.token)[0] == 400
    assert call(f"{cg_server.url}/api/v1/tags/99999", method="DELETE", token=cg_server.token)[0] == 404


def test_bad_tags_are_refused_clearly(cg_server):
    status, body = tag(cg_server, [4, 16, 4], "pyramidl")
    assert status == 400 and "pyramidal" in body["suggestions"]
    for position, term, words in [
        ([99, 0, 0], "astrocyte", "outside"),
        ([1, 2], "astrocyte", "three integers"),
        (["a", 1, 1], "astrocyte", "three integers"),
    ]:
        status, body = tag(cg_server, position, term)
        assert status == 400 and words in body["message"], body
    status, body = tag(cg_server, [4, 16, 4], "astrocyte", confidence=3)
    assert status == 400 and "confidence" in body["message"]
    assert call(f"{cg_server.url}/api/v1/datasets/cg/tags", b"[]", token=cg_server.token)[0] == 400
    assert (
        call(
            f"{cg_server.url}/api/v1/datasets/nope/tags",
            b'{"position": [1, 1, 1], "term": "glia"}',
            token=cg_server.token,
        )[0]
        == 404
    )
    assert json.loads(call(f"{cg_server.url}/api/v1/datasets/cg/tags", token=cg_server.token)[1])["tags"] == []


def test_search_by_type_hierarchy_across_time_with_conflicts(cg_server):
    tag(cg_server, [4, 16, 4], "L2/3 pyramidal")
    tag(cg_server, [20, 16, 4], "astrocyte", note="near a vessel")
    status, body = find(cg_server, "excitatory")
    assert status == 200 and body["total"] == 1 and body["counts"] == {"cg": 1}
    hit = body["results"][0]
    assert hit["terms"] == ["L2/3 pyramidal"] and hit["root_id"] == str(roots(cg_server, [SV[0]])[0])
    assert hit["link"].endswith("/at/cg/4,16,4") and not hit["conflict"]
    assert find(cg_server, "neuron OR glia")[1]["total"] == 2
    assert find(cg_server, "NOT astrocyte")[1]["total"] == 1
    assert find(cg_server, "note:vessel")[1]["results"][0]["terms"] == ["astrocyte"]
    assert find(cg_server, "astrocyte dataset:other")[1]["total"] == 0
    assert find(cg_server, "user:tester")[1]["total"] == 2
    before = datetime.datetime.now(datetime.UTC)
    time.sleep(0.01)

    call(
        f"{cg_server.url}/segmentation/api/v1/table/cg/merge",
        json.dumps([[SV[1], 0, 0, 0], [SV[2], 0, 0, 0]]).encode(),
        token=cg_server.token,
    )
    now = find(cg_server, "neuron OR glia")[1]
    assert now["total"] == 1 and now["results"][0]["terms"] == ["L2/3 pyramidal", "astrocyte"]
    assert now["results"][0]["conflict"] is True
    past = find(cg_server, f"neuron OR glia t:{before.timestamp()}")[1]
    assert past["total"] == 2 and past["results"][0]["link"].endswith(f"?t={before.timestamp():.6f}")
    assert [len(find(cg_server, "neuron OR glia", per_page=1, page=p)[1]["results"]) for p in (1, 2)] == [1, 0]

    for q, words in [("", "empty"), ("pyramidl", "pyramidal"), ("foo:bar", "foo"), ("astrocyte t:soon", "soon")]:
        status, body = find(cg_server, q)
        assert status == 400 and words in body["message"], (q, body)
    assert find(cg_server, "glia", per_page=0)[0] == 400


def test_csv_import_reports_bad_rows_and_export_round_trips(cg_server):
    rows = (
        "pt_position_x,pt_position_y,pt_position_z,cell_type,note\n"
        "4,16,4,L2/3 pyramidal,first\n"
        "20,16,4,astrocite,typo\n"  # row 2: unknown term
        "500,16,4,astrocyte,outside\n"  # row 3: outside the volume
        "x,16,4,astrocyte,not a number\n"  # row 4
        "28,16,4,basket,fine\n"
    )
    status, body = call(f"{cg_server.url}/api/v1/datasets/cg/tags/import", rows.encode(), token=cg_server.token)
    report = json.loads(body)
    assert status == 200 and report["added"] == 2
    assert [r["row"] for r in report["rejected"]] == [2, 3, 4]
    assert "astrocyte" in report["rejected"][0]["reason"] and "outside" in report["rejected"][1]["reason"]

    status, body = call(f"{cg_server.url}/api/v1/datasets/cg/tags/export", token=cg_server.token)
    exported = list(csv.DictReader(io.StringIO(body.decode())))
    assert [(r["cell_type"], r["pt_position_x"], r["note"]) for r in exported] == [
        ("L2/3 pyramidal", "4", "first"),
        ("basket", "28", "fine"),
    ]
    assert exported[0]["pt_root_id"] == str(roots(cg_server, [SV[0]])[0])
    # the export is itself importable (CAVE's columns), giving the same tags again
    status, body = call(f"{cg_server.url}/api/v1/datasets/cg/tags/import", body, token=cg_server.token)
    assert json.loads(body) == {"added": 2, "rejected": []}
    status, body = call(f"{cg_server.url}/api/v1/datasets/cg/tags/import", b"a,b\n1,2\n", token=cg_server.token)
    assert status == 400 and "pt_position" in json.loads(body)["message"]


def test_segment_properties_carry_the_tags_of_the_moment(cg_server):
    tag(cg_server, [4, 16, 4], "L2/3 pyramidal")
    tag(cg_server, [28, 16, 4], "basket")
    info = json.loads(call(f"{cg_server.url}/data/cg/segmentation/info", token=cg_server.token)[1])
    assert info["segment_properties"] == "segment_properties"
    status, body = call(f"{cg_server.url}/data/cg/segmentation/segment_properties/info", token=cg_server.token)
    document = json.loads(body)
    assert status == 200 and document["@type"] == "neuroglancer_segment_properties"
    inline = document["inline"]
    label, tags = inline["properties"]
    assert label["type"] == "label" and tags["type"] == "tags"
    assert len(label["values"]) == len(tags["values"]) == len(inline["ids"]) == 2
    assert all(" " not in t and not t.startswith("#") for t in tags["tags"])
    assert len(tags["tag_descriptions"]) == len(tags["tags"])
    by_root = dict(zip(inline["ids"], tags["values"]))
    pyramidal = {tags["tags"][i] for i in by_root[str(roots(cg_server, [SV[0]])[0])]}
    assert pyramidal == {"neuron", "excitatory", "pyramidal", "L2/3_pyramidal"}  # ancestors, for #pyramidal
    assert sorted(label["values"]) == ["L2/3 pyramidal", "basket"]


def test_search_spans_datasets(cg_server):
    from segmentation.access import Accounts
    from segmentation.datasets import Datasets
    from segmentation.graph import ingest_dataset

    registry = Datasets(cg_server.database_url)
    cg = registry.get("cg")
    registry.add("cg2", image=cg.layer("image").url, segmentation=cg.layer("segmentation").url)
    ingest_dataset(cg_server.database_url, "cg2", progress=False)
    Accounts(cg_server.database_url).grant("tester", "cg2", "proofreader")
    tag(cg_server, [4, 16, 4], "basket")
    status, answer = call(
        f"{cg_server.url}/api/v1/datasets/cg2/tags",
        json.dumps({"position": [20, 16, 4], "term": "chandelier"}).encode(),
        token=cg_server.token,
    )
    assert status == 201, answer
    body = find(cg_server, "inhibitory")[1]
    assert body["counts"] == {"cg": 1, "cg2": 1}
    assert [(hit["dataset"], hit["terms"]) for hit in body["results"]] == [("cg", ["basket"]), ("cg2", ["chandelier"])]
    assert body["results"][1]["link"].endswith("/at/cg2/20,16,4")
    assert find(cg_server, "inhibitory -dataset:cg")[1]["counts"] == {"cg2": 1}


def test_demo_false_merge_shows_as_a_conflict_until_split(fresh_demo):
    """The demo's tags: a false merge joins two typed neurons (a conflict); splitting it gives each its type."""
    from segmentation.celltypes.query import parse
    from segmentation.celltypes.search import search
    from segmentation.celltypes.tags import CellTags
    from segmentation.celltypes.vocabulary import Vocabulary
    from segmentation.graph import Graph
    from segmentation.graph.ids import supervoxel_ids

    tags = CellTags(fresh_demo.database_url)
    graph = Graph.open(fresh_demo.database_url, "demo")
    vocabulary = Vocabulary.for_dataset(fresh_demo.home, "demo")
    everything = parse("neuron OR glia")

    def hits():
        return search(tags, everything, lambda _: vocabulary, ["demo"], per_page=1000).hits

    conflicts = [hit for hit in hits() if hit.conflict]
    assert conflicts, "the demo's false merges join neurons of different types"
    hit = conflicts[0]
    truth = json.loads((fresh_demo.demo_dir / "ground_truth.json").read_text())
    tagged = {t.sv_id: t for t, _ in tags.of_dataset("demo")}
    on_root = [sv for sv in tagged if graph.root(sv) == hit.root_id]
    assert len(on_root) == 2
    for a, b in truth["false_merges"]:  # proofread: split every false merge
        a, b = (int(v) for v in supervoxel_ids([a, b]))
        graph.split([a], [b], user="proofreader")
    after = {h.root_id: h for h in hits()}
    assert not [h for h in after.values() if h.conflict]
    for sv in on_root:
        assert after[graph.root(sv)].terms == [tagged[sv].term]


def test_csv_export_never_hands_a_spreadsheet_a_formula(cg_server):
    notes = ['=HYPERLINK("http://evil.example","click")', "+1+cmd|' /C calc'!A0", "-2", "@SUM(A1)", "fine"]
    for i, note in enumerate(notes):
        assert tag(cg_server, [4 + 8 * (i % 4), 16, 4], "astrocyte", note=note)[0] == 201
    status, body = call(f"{cg_server.url}/api/v1/datasets/cg/tags/export", token=cg_server.token)
    exported = list(csv.DictReader(io.StringIO(body.decode())))
    cells = [row[c] for row in exported for c in row]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells), cells
    assert sorted(row["note"] for row in exported) == sorted("'" + n if n != "fine" else n for n in notes)
    status, answer = call(
        f"{cg_server.url}/api/v1/datasets/cg/tags/import",
        body,
        token=cg_server.token,
        headers={"Content-Type": "text/csv"},
    )
    assert status == 200 and json.loads(answer)["added"] == len(notes)
    listed = json.loads(call(f"{cg_server.url}/api/v1/datasets/cg/tags", token=cg_server.token)[1])["tags"]
    assert sorted(t["note"] for t in listed) == sorted(notes * 2)  # the round trip gives the notes back
