"""Graph bases in object storage (a real S3 server): written by ingest and compaction, copied and
verified by each machine that reads them, deleted with their dataset."""

from __future__ import annotations

import time

import numpy as np
import pytest

from segmentation.check import OK, PROBLEM, check_dataset
from segmentation.datasets import Datasets
from segmentation.graph import Graph
from segmentation.graph.base import BaseError
from segmentation.graph.store import open_base
from tests.graph_workload import N, answers, chain_of_neurons, edit_at_random


@pytest.fixture
def remote_store(s3, monkeypatch):
    url = s3.url()
    monkeypatch.setenv("AXONLINK_GRAPH_STORE", url)
    return url


def another_machine(monkeypatch, tmp_path, name: str):
    """Switch this process to a local cache of its own (as a second server machine has)."""
    cache = tmp_path / f"cache-{name}"
    monkeypatch.setenv("AXONLINK_GRAPH_CACHE", str(cache))
    return cache


def test_an_ingested_base_lives_in_s3_and_another_machine_copies_and_verifies_it(
    database_url, small_volumes, s3, remote_store, monkeypatch, tmp_path
):
    svs = chain_of_neurons(database_url, small_volumes)
    graph = Graph.open(database_url, "c")
    assert graph.base_url.startswith(remote_store + "/")
    folder = graph.base_url.rsplit("/", 1)[1]
    stored = s3.keys(graph.base_url)
    assert "manifest.json" in stored and "root_of.npy" in stored and "csr_neighbors.npy" in stored
    assert not [key for key in s3.keys(remote_store) if not key.startswith(folder + "/")]

    edit_at_random(graph, svs, np.random.default_rng(3), 12)
    expected = answers(graph, svs)

    cache = another_machine(monkeypatch, tmp_path, "b")
    elsewhere = Graph.open(database_url, "c")
    assert answers(elsewhere, svs) == expected
    copies = list(cache.iterdir())
    assert [copy.name.endswith(folder) for copy in copies] == [True]
    assert not list(cache.glob(".*"))  # no half-made copy left behind
    verified = [f for f in check_dataset(database_url, "c", verify_graph_base=True) if "checksum verified" in f.reason]
    assert [f.level for f in verified] == [OK]


def test_a_damaged_or_incomplete_remote_base_is_refused(
    database_url, small_volumes, s3, remote_store, monkeypatch, tmp_path
):
    chain_of_neurons(database_url, small_volumes)
    url = Graph.open(database_url, "c").base_url
    key = url.split("/axonlink/", 1)[1]
    client = s3.client()
    roots = client.get_object(Bucket="axonlink", Key=f"{key}/root_of.npy")["Body"].read()
    damaged = roots[:-8] + bytes(8 * [0xFF])
    client.put_object(Bucket="axonlink", Key=f"{key}/root_of.npy", Body=damaged)

    cache = another_machine(monkeypatch, tmp_path, "c")
    with pytest.raises(BaseError, match="root_of.npy is missing or damaged"):
        open_base(url)
    assert not list(cache.glob("*")) and not list(cache.glob(".*"))  # nothing half-copied kept
    graph_findings = [f for f in check_dataset(database_url, "c", verify_graph_base=True) if f.topic == "graph"]
    assert any(f.level == PROBLEM and "root_of.npy is missing or damaged" in f.reason for f in graph_findings)

    client.delete_object(Bucket="axonlink", Key=f"{key}/manifest.json")
    with pytest.raises(BaseError, match="no manifest.json"):
        open_base(url)


def test_compaction_writes_the_new_base_to_s3_and_deletes_the_old_one(
    database_url, small_volumes, s3, remote_store, monkeypatch, tmp_path
):
    svs = chain_of_neurons(database_url, small_volumes)
    graph = Graph.open(database_url, "c")
    edit_at_random(graph, svs, np.random.default_rng(5), 20)
    before = answers(graph, svs)
    old_url = graph.base_url

    result = graph.compact(by="tests")
    assert result["compacted"] and result["base"].startswith(remote_store + "/")
    assert s3.keys(old_url) == []
    assert "history_keys.npy" in s3.keys(result["base"])
    graph.sync()
    assert answers(graph, svs) == before

    another_machine(monkeypatch, tmp_path, "d")
    fresh = Graph.open(database_url, "c")
    assert fresh.base_url == result["base"]
    assert answers(fresh, svs) == before
    assert len(fresh.leaves(fresh.roots(svs[:1])[0])) <= N


def test_removing_a_dataset_deletes_its_remote_base(database_url, small_volumes, s3, remote_store):
    chain_of_neurons(database_url, small_volumes)
    url = Graph.open(database_url, "c").base_url
    assert s3.keys(url)
    Datasets(database_url).remove("c", by="tests")
    assert s3.keys(url) == []


def test_a_machine_copies_a_new_remote_base_in_the_background_and_answers_meanwhile(
    database_url, small_volumes, s3, remote_store, monkeypatch, tmp_path
):
    svs = chain_of_neurons(database_url, small_volumes)
    cache_b = another_machine(monkeypatch, tmp_path, "b")
    on_b = Graph.open(database_url, "c")
    old_url = on_b.base_url
    another_machine(monkeypatch, tmp_path, "a")
    on_a = Graph.open(database_url, "c")
    edit_at_random(on_a, svs, np.random.default_rng(8), 15)
    expected = answers(on_a, svs)
    new_url = on_a.compact(by="tests")["base"]

    monkeypatch.setenv("AXONLINK_GRAPH_CACHE", str(cache_b))
    on_b.sync()  # learns of the new base: starts copying it, answers from the old one meanwhile
    assert on_b.base_url == old_url
    assert answers(on_b, svs) == expected
    deadline = time.monotonic() + 60
    while on_b.base_url != new_url and time.monotonic() < deadline:
        time.sleep(0.1)
        on_b.sync()
    assert on_b.base_url == new_url
    assert answers(on_b, svs) == expected
    names = sorted(path.name for path in cache_b.iterdir())
    assert [name.endswith(new_url.rsplit("/", 1)[1]) for name in names] == [True]  # the old copy is gone
    assert old_url != new_url
