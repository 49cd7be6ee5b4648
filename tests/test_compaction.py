"""Compaction folds the operation log into a new base while others read and edit; nothing changes or is lost."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from segmentation.access.audit import AuditLog
from segmentation.graph import Graph
from segmentation.graph.compaction import compact
from tests.graph_workload import answers, chain_of_neurons, edit_at_random


def test_compaction_keeps_every_answer_while_another_thread_edits(database_url, small_volumes):
    svs = chain_of_neurons(database_url, small_volumes)
    first = Graph.open(database_url, "c")
    first_done = edit_at_random(first, svs, np.random.default_rng(1), 30)
    bystander = Graph.open(database_url, "c")  # another process's graph, on the old base
    before = answers(bystander, svs)
    old_base = bystander.base_url

    editor = Graph.open(database_url, "c")
    finished = []

    def keep_editing():
        finished.extend(edit_at_random(editor, svs, np.random.default_rng(2), 40))

    thread = threading.Thread(target=keep_editing)
    thread.start()
    summaries = []
    while thread.is_alive() or not summaries:
        summaries.append(compact(database_url, "c", by="tests"))
        time.sleep(0.05)
    thread.join()
    assert any(s["compacted"] for s in summaries)
    assert not Path(urlsplit(old_base).path).exists()  # the old base is gone: the bystander reads mapped pages

    fresh = Graph.open(database_url, "c")
    assert fresh.base_url != old_base and fresh.index.base.seq > 0
    assert fresh.seq == editor.seq == len(first_done) + len(finished)  # every edit is in the log
    assert [fresh.operation(s)["seq"] for s in range(1, fresh.seq + 1)] == list(range(1, fresh.seq + 1))
    after = answers(fresh, svs)
    assert after == answers(editor, svs) == answers(bystander, svs)  # the bystander switched at its read
    assert bystander.base_url == fresh.base_url
    # what the graph was before the concurrent edits is unchanged by them and by compaction
    for key in ("roots_then",):
        assert after[key][: len(before[key])] == before[key]
    for root, leaves in before["leaves"].items():
        assert after["leaves"][root] == leaves
    # edits go on from the new base, and a second compaction folds them in too
    edit_at_random(fresh, svs, np.random.default_rng(3), 10)
    reference = answers(fresh, svs)
    assert compact(database_url, "c")["compacted"]
    assert answers(Graph.open(database_url, "c"), svs) == reference
    assert compact(database_url, "c")["compacted"] is False  # nothing new to fold


def test_compacted_base_keeps_edges_merges_added(database_url, small_volumes):
    svs = chain_of_neurons(database_url, small_volumes)
    graph = Graph.open(database_url, "c")
    far_a, far_b = int(svs[3]), int(svs[250])  # never touching
    merged = graph.merge(far_a, far_b, user="t")
    compact(database_url, "c")
    fresh = Graph.open(database_url, "c")
    root = fresh.root(far_a)
    assert root == fresh.root(far_b) == merged.new_root_ids[0]
    assert sorted([far_a, far_b]) in fresh.supervoxel_edges(root).tolist()
    split = fresh.split([far_a], [far_b], user="t")  # the added edge is the cut
    assert fresh.operation(split.operation_id)["edge_changes"] == [[far_a, far_b, False]]
    assert fresh.root(far_a) != fresh.root(far_b)


def test_cli_compact_and_automatic_compaction(tmp_path, small_volumes, monkeypatch):
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'axonlink.sqlite'}"
    home.mkdir()
    svs = chain_of_neurons(url, small_volumes)
    graph = Graph.open(url, "c")
    edit_at_random(graph, svs, np.random.default_rng(4), 12)
    expected = answers(graph, svs)
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "compact", "c", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["compacted"] and summary["seq"] == graph.seq and summary["folded_operations"] == graph.seq
    assert answers(Graph.open(url, "c"), svs) == expected
    assert AuditLog(url).entries(action="graph.compact")[0]["detail"]["seq"] == graph.seq

    monkeypatch.setenv("AXONLINK_COMPACT_AFTER", "5")  # a server process compacts by itself past 5
    base_seq = Graph.open(url, "c").index.base.seq
    edit_at_random(graph, svs, np.random.default_rng(5), 20)
    deadline = time.monotonic() + 30
    while Graph.open(url, "c").index.base.seq == base_seq and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Graph.open(url, "c").index.base.seq > base_seq
    if graph._compacting is not None:
        graph._compacting.join(30)
    assert answers(Graph.open(url, "c"), svs) == answers(graph, svs)


def test_a_followed_registry_replays_other_processes_edits_before_anyone_asks(database_url, small_volumes):
    from segmentation.graph.registry import Graphs, follow

    svs = chain_of_neurons(database_url, small_volumes)
    registry = Graphs(database_url)
    served = registry.open("c")  # a server worker's graph
    thread = follow(registry, 0.05)
    done = edit_at_random(Graph.open(database_url, "c"), svs, np.random.default_rng(6), 10)  # another worker
    deadline = time.monotonic() + 10
    while served.seq < len(done) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert served.seq == len(done) > 0  # replayed with no request reading it
    del registry, served
    deadline = time.monotonic() + 10
    while thread.is_alive() and time.monotonic() < deadline:
        thread.join(0.1)
    assert not thread.is_alive()  # it stops once the registry is gone (no cycle keeps it alive)


def test_the_follower_asks_the_database_when_signalled_or_seldom_and_still_hears_other_machines(
    database_url, small_volumes, monkeypatch
):
    """Idle, the follower reads only the edit counter between its rare polls; an edit made on this
    machine is read at once, and one made elsewhere (no counter raised here) within the quiet poll."""
    from segmentation.graph import registry as registry_module

    svs = chain_of_neurons(database_url, small_volumes)
    polls = []
    original = registry_module.StatePoll.rows
    monkeypatch.setattr(
        registry_module.StatePoll, "rows", lambda self, engine: polls.append(1) or original(self, engine)
    )
    graphs = registry_module.Graphs(database_url)
    served = graphs.open("c")
    registry_module.follow(graphs, 0.01, quiet_interval=1.0)
    time.sleep(2.2)
    assert 2 <= len(polls) <= 4  # every 1 s, not every 0.01 s (220 polls)

    polled = len(polls)
    while len(polls) == polled:  # just after a quiet poll: the next is a second away
        time.sleep(0.002)
    before_edit = time.monotonic()
    Graph.open(database_url, "c").merge(int(svs[0]), int(svs[10]), user="t")  # two neurons: one edit
    while served.seq < 1 and time.monotonic() - before_edit < 5:
        time.sleep(0.002)
    assert served.seq == 1 and time.monotonic() - before_edit < 0.6  # signalled: no quiet wait

    elsewhere = Graph.open(database_url, "c")
    monkeypatch.setattr(elsewhere.edit_signal, "raise_to", lambda seq: None)  # as on another machine
    elsewhere.merge(int(svs[20]), int(svs[30]), user="t")
    started = time.monotonic()
    while served.seq < 2 and time.monotonic() - started < 5:
        time.sleep(0.005)
    assert served.seq == 2  # heard through the quiet poll
    assert time.monotonic() - started < 1.5
    del graphs, served


def test_the_followers_poll_ends_each_read_and_survives_a_dropped_connection(database_url, small_volumes):
    """The follower's kept connection holds no transaction between polls (PostgreSQL would keep a
    snapshot, and vacuum would wait on it), and a connection the database dropped is replaced."""
    import sqlalchemy as sa

    from segmentation.graph.registry import StatePoll

    svs = chain_of_neurons(database_url, small_volumes)
    graph = Graph.open(database_url, "c")
    poll = StatePoll()
    before = poll.rows(graph.engine)
    assert [(row[0], row[1]) for row in before] == [(graph.dataset_id, 0)]
    postgresql = database_url.startswith("postgresql")
    if postgresql:
        cursor = poll._connection.cursor()  # which backend is the poll's
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
        cursor.close()
    done = edit_at_random(Graph.open(database_url, "c"), svs, np.random.default_rng(7), 3)
    assert poll.rows(graph.engine)[0][1] == len(done) > 0  # a new read sees the edits (no snapshot kept)
    if postgresql:
        with graph.engine.connect() as other:
            state = other.execute(sa.text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})
            assert state.scalar_one() == "idle"  # not "idle in transaction"
            other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(Exception):
            poll.rows(graph.engine)  # the dropped connection fails once …
        assert poll.rows(graph.engine)[0][1] == len(done)  # … and the next poll opens another
    poll.close()
