"""Connectivity at connectome scale: 10 M synapses over 1 M neurons, against pandas and DuckDB.

A synthetic graph of N neurons (1–6 supervoxels each, chained) is written as a base; S synapses
join random supervoxels of neurons drawn with heavy-tailed weights (a few neurons carry
thousands of synapses, most a handful), written to a Parquet file with CAVE's columns
(supervoxel ids given, as in a CAVE dump); every neuron gets one of T cell types (1 M tags,
written in bulk), and a few merges happen after the import, so "now" differs from ingest.

Measured in one run:

- import: ``axonlink synapses import`` (a subprocess): wall time and peak memory;
- ``axonlink serve --workers W``: the first partner request (each worker maps the snapshot),
  partner queries p50/p99 over HTTP for neurons drawn by synapse count and uniformly, and each
  worker's memory (PSS: shared pages divided among the processes sharing them);
- the type × type matrix of all T types over HTTP (and of 10 types);
- the baselines, in this process on the same data: pandas and DuckDB given every synapse's
  pre and post root *as of now* already worked out (a materialization, timed apart), answering
  the same partner queries by scanning and the same matrix by a join and GROUP BY. Their answers
  are checked equal to axonlink's.

The last line is one JSON object.

    python -m bench.connectivity [--synapses 10000000] [--neurons 1000000] [--types 1000]
                                 [--queries 200] [--workers 2] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from bench.fresh import fresh_settings, tiny_layer
from bench.graph_scale import pct, smaps, start_server, worker_pids
from bench.search import insert_tags
from segmentation import db
from segmentation.datasets import Datasets
from segmentation.graph import Graph, store_graph
from segmentation.graph.ids import supervoxel_ids
from segmentation.models import CellTagStateRow

NAME = "bench"


def build_graph(settings, neurons: int, rng):
    """Neurons of 1–6 chained supervoxels; returns (supervoxel ids, first position and size of each neuron)."""
    sizes = rng.integers(1, 7, neurons)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n = int(sizes.sum())
    neuron = np.repeat(np.arange(neurons), sizes)
    chain = np.flatnonzero(neuron[:-1] == neuron[1:])
    cross = starts[1:] - 1  # the last supervoxel of each neuron touches the next neuron's first
    lo = np.concatenate([chain, cross])
    active = np.concatenate([np.ones(len(chain), bool), np.zeros(len(cross), bool)])
    svs = supervoxel_ids(np.arange(1, n + 1, dtype=np.uint64))
    area = np.full(len(lo), 100.0, dtype=np.float32)
    store_graph(settings.database_url, NAME, svs, svs[lo], svs[lo + 1], area, active)
    return svs, starts, sizes


def synapse_file(path: Path, svs, starts, sizes, count: int, rng) -> None:
    """``count`` synapses between random supervoxels of neurons drawn with lognormal weights."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    weights = rng.lognormal(0, 1.5, len(starts))
    weights /= weights.sum()
    pre_n = rng.choice(len(starts), count, p=weights)
    post_n = rng.choice(len(starts), count, p=rng.permutation(weights))
    pre = starts[pre_n] + (rng.random(count) * sizes[pre_n]).astype(np.int64)
    post = starts[post_n] + (rng.random(count) * sizes[post_n]).astype(np.int64)
    table = {
        "pre_pt_supervoxel_id": svs[pre].astype(np.int64),
        "post_pt_supervoxel_id": svs[post].astype(np.int64),
        "size": rng.lognormal(5, 1, count).astype(np.float32),
    }
    for end in ("pre", "post"):
        for axis in "xyz":
            table[f"{end}_pt_position_{axis}"] = rng.integers(0, 8, count).astype(np.int32)  # the tiny volume
    pq.write_table(pa.table(table), path)


def tag_every_neuron(settings, svs, starts, types: int, rng) -> np.ndarray:
    """One tag per neuron (on its first supervoxel), type ``type-NNNN``; returns each neuron's type."""
    vocabulary = {"terms": [{"name": f"type-{t:04d}"} for t in range(types)]}
    (settings.home / "vocabularies").mkdir(exist_ok=True)
    (settings.home / "vocabularies" / f"{NAME}.json").write_text(json.dumps(vocabulary))
    kinds = rng.integers(0, types, len(starts))
    n = len(starts)
    engine = db.engine_for(settings.database_url)
    when = datetime.now(UTC) - timedelta(days=1)
    with engine.begin() as connection:
        dataset_id = connection.scalar(sa.text("SELECT id FROM datasets WHERE name = :n"), {"n": NAME})
        insert_tags(
            connection,
            {
                "dataset_id": np.full(n, dataset_id),
                "sv_id": svs[starts].astype(np.int64),
                "x": np.zeros(n, np.int32),
                "y": np.zeros(n, np.int32),
                "z": np.zeros(n, np.int32),
                "term": np.array([f"type-{t:04d}" for t in range(types)], dtype=object)[kinds],
                "note": np.full(n, "", dtype=object),
                "user_id": np.full(n, "bench", dtype=object),
                "created_at": np.array([when] * n, dtype=object),
                "retracted_at": np.array([None] * n, dtype=object),
                "retracted_by": np.array([None] * n, dtype=object),
                "change_seq": np.full(n, 1),
            },
        )
        state = CellTagStateRow.__table__
        connection.execute(state.delete())
        connection.execute(state.insert().values(id=1, last_seq=1))
    return kinds


def get(url: str, body=None) -> tuple[float, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as answer:
        body = answer.read()
    seconds = time.perf_counter() - start  # the answer, whole; decoding it is the client's time
    return seconds, json.loads(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synapses", type=int, default=10_000_000)
    parser.add_argument("--neurons", type=int, default=1_000_000)
    parser.add_argument("--types", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    rng = np.random.default_rng(20)
    report = {"synapses": args.synapses, "neurons": args.neurons, "types": args.types}
    with fresh_settings(args.database_url) as settings:
        report["database"] = settings.database_url.split(":", 1)[0]
        tiny = tiny_layer(settings.home)
        Datasets(settings.database_url).add(NAME, image=tiny, segmentation=tiny)
        started = time.perf_counter()
        svs, starts, sizes = build_graph(settings, args.neurons, rng)
        print(
            f"graph: {len(svs):,} supervoxels, {args.neurons:,} neurons in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        path = settings.home / "synapses.parquet"
        synapse_file(path, svs, starts, sizes, args.synapses, rng)
        kinds = tag_every_neuron(settings, svs, starts, args.types, rng)

        env = {**os.environ, "AXONLINK_HOME": str(settings.home), "AXONLINK_DATABASE_URL": settings.database_url}
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", "synapses", "import", NAME, str(path)],
            env=env,
            capture_output=True,
            text=True,
        )
        report["import_s"] = round(time.perf_counter() - started, 1)
        report["import_peak_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        print(done.stdout.strip(), f"({report['import_s']} s, peak {report['import_peak_mb']} MB)", flush=True)

        graph = Graph.open(settings.database_url, NAME)
        merges = 0
        for neuron in rng.choice(args.neurons - 1, 20, replace=False):  # edits after the import
            last, first = int(starts[neuron] + sizes[neuron] - 1), int(starts[neuron + 1])
            if graph.root(int(svs[last])) != graph.root(int(svs[first])):
                graph.merge(int(svs[last]), int(svs[first]), "bench")
                merges += 1
        report["merges_after_import"] = merges

        # the baselines' materialization: every synapse's roots as of now, and each neuron's type
        import pyarrow.parquet as pq

        started = time.perf_counter()
        table = pq.read_table(path, columns=["pre_pt_supervoxel_id", "post_pt_supervoxel_id", "size"])
        pre_sv = table.column(0).to_numpy().astype(np.uint64)
        post_sv = table.column(1).to_numpy().astype(np.uint64)
        size = table.column(2).to_numpy()
        all_roots = graph.roots(svs)
        position = lambda s: (s & np.uint64((1 << 56) - 1)).astype(np.int64) - 1  # noqa: E731 — ids are 1..n
        pre_root, post_root = all_roots[position(pre_sv)], all_roots[position(post_sv)]
        root_type = {}
        for neuron_root, kind in zip(all_roots[starts].tolist(), kinds.tolist()):
            root_type.setdefault(neuron_root, set()).add(kind)
        report["baseline_materialize_s"] = round(time.perf_counter() - started, 1)

        import duckdb
        import pandas as pd

        frame = pd.DataFrame({"pre": pre_root.astype(np.int64), "post": post_root.astype(np.int64), "size": size})
        duck = duckdb.connect()
        duck.register("synapses", frame)
        typed = pd.DataFrame([(r, k) for r, ks in root_type.items() for k in ks], columns=["root", "kind"]).astype(
            {"root": np.int64}
        )
        duck.register("types", typed)

        out_degree = np.bincount(np.searchsorted(np.unique(pre_root), pre_root))
        heavy = np.unique(pre_root)[np.argsort(out_degree)[-args.queries // 2 :]]
        uniform = np.unique(all_roots)[rng.integers(0, len(np.unique(all_roots)), args.queries - len(heavy))]
        asked = np.concatenate([heavy, uniform])
        rng.shuffle(asked)

        log = settings.home / "serve.log"
        process, url = start_server(settings, args.workers, log)
        try:
            deadline = time.time() + 300
            while True:
                try:
                    urllib.request.urlopen(f"{url}/api/v1/datasets", timeout=5).read()
                    break
                except OSError:
                    if time.time() > deadline or process.poll() is not None:
                        raise SystemExit(log.read_text()[-3000:]) from None
                    time.sleep(0.2)
            first = []
            for _ in range(args.workers * 3):  # until every worker has mapped its synapses
                seconds, _ = get(f"{url}/api/v1/datasets/{NAME}/neurons/{int(asked[0])}/partners")
                first.append(seconds)
            report["first_request_s"] = round(max(first), 2)
            latencies, checked = [], 0
            for root in asked.tolist():
                seconds, found = get(f"{url}/api/v1/datasets/{NAME}/neurons/{root}/partners?limit=10000")
                latencies.append(seconds)
                if checked < 20:  # the answer equals the baseline's
                    mine = {int(p["root_id"]): p["synapses"] for p in found["outputs"]["partners"]}
                    theirs = frame.loc[frame["pre"] == np.int64(root), "post"].value_counts()
                    assert mine == {int(k) & (2**64 - 1): int(v) for k, v in theirs.items()}, root
                    checked += 1
            report["partners_p50_ms"] = pct(latencies, 50)
            report["partners_p99_ms"] = pct(latencies, 99)
            report["partners_heaviest_synapses"] = int(out_degree.max())

            labels = [f"type-{t:04d}" for t in range(args.types)]
            body = {"pre": {"cell_types": labels}, "post": {"cell_types": labels}}
            seconds = []
            for _ in range(args.workers * 2 + 1):  # the first in each worker works out its graph state
                seconds.append(get(f"{url}/api/v1/datasets/{NAME}/connectivity", body)[0])
            report["matrix_all_types_first_s"] = round(seconds[0], 2)
            _, matrix = get(f"{url}/api/v1/datasets/{NAME}/connectivity", body)
            report["matrix_all_types_s"] = round(min(seconds), 2)
            arrow = []
            for _ in range(3):
                request = urllib.request.Request(
                    f"{url}/api/v1/datasets/{NAME}/connectivity?format=arrow",
                    data=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"},
                )
                started = time.perf_counter()
                with urllib.request.urlopen(request, timeout=600) as answer:
                    answer.read()
                arrow.append(time.perf_counter() - started)
            report["matrix_all_types_arrow_s"] = round(min(arrow), 2)
            small = {"pre": {"cell_types": labels[:10]}, "post": {"cell_types": labels[:10]}}
            report["matrix_10_types_s"] = round(
                min(get(f"{url}/api/v1/datasets/{NAME}/connectivity", small)[0] for _ in range(3)), 3
            )
            report["worker_pss_mb"] = [round(smaps(pid)[1]) for pid in worker_pids(process.pid)]
            report["worker_rss_mb"] = [round(smaps(pid)[0]) for pid in worker_pids(process.pid)]
            report["worker_private_mb"] = [round(smaps(pid)[2]) for pid in worker_pids(process.pid)]
            snapshots = settings.home / "synapses"
            report["snapshot_mb"] = round(sum(f.stat().st_size for f in snapshots.rglob("*.npy")) / 2**20)
        finally:
            process.terminate()
            process.wait(timeout=60)

        # where the time goes: the same questions in this process, without HTTP and JSON
        from segmentation.celltypes.tags import CellTags
        from segmentation.celltypes.vocabulary import Vocabulary
        from segmentation.connectivity import Synapses
        from segmentation.connectivity.celltyped import neurons_of_types
        from segmentation.connectivity.queries import matrix as type_matrix
        from segmentation.connectivity.queries import partners as partners_of
        from segmentation.connectivity.synapses import FOLDER
        from segmentation.graph.registry import Graphs

        graphs = Graphs(settings.database_url)
        local = Synapses(settings.database_url, graphs, settings.home / FOLDER)
        started = time.perf_counter()
        held = local.of(NAME)
        report["in_process_load_s"] = round(time.perf_counter() - started, 2)
        mapped = graphs.open(NAME)
        latencies = []
        for root in asked.tolist():
            started = time.perf_counter()
            partners_of(held, mapped, root, None)
            latencies.append(time.perf_counter() - started)
        report["in_process_partners_p50_ms"] = pct(latencies, 50)
        report["in_process_partners_p99_ms"] = pct(latencies, 99)
        tags = CellTags(settings.database_url, graphs)
        vocabulary = Vocabulary.for_dataset(settings.home, NAME)
        started = time.perf_counter()
        side = neurons_of_types(tags, NAME, labels, vocabulary, None)
        report["in_process_types_to_neurons_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        type_matrix(held, mapped, side, side, len(labels), len(labels), None)
        report["in_process_matrix_s"] = round(time.perf_counter() - started, 2)

        # baselines, same questions
        for name, ask in (
            ("pandas", lambda r: frame.loc[frame["pre"] == np.int64(r), "post"].value_counts()),
            (
                "duckdb",
                lambda r: duck.execute(
                    "SELECT post, count(*) FROM synapses WHERE pre = ? GROUP BY post", [int(np.int64(np.uint64(r)))]
                ).fetchall(),
            ),
        ):
            latencies = []
            for root in asked.tolist():
                started = time.perf_counter()
                ask(root)
                latencies.append(time.perf_counter() - started)
            report[f"{name}_partners_p50_ms"] = pct(latencies, 50)
            report[f"{name}_partners_p99_ms"] = pct(latencies, 99)
        started = time.perf_counter()
        found = duck.execute(
            "SELECT a.kind, b.kind, count(*) FROM synapses s JOIN types a ON s.pre = a.root "
            "JOIN types b ON s.post = b.root GROUP BY 1, 2"
        ).fetchall()
        report["duckdb_matrix_s"] = round(time.perf_counter() - started, 2)
        expected = np.zeros((args.types, args.types), dtype=np.int64)
        for a, b, n in found:
            expected[a, b] = n
        assert np.array_equal(np.array(matrix["counts"]), expected), "the matrix differs from DuckDB's"
        report["matrix_equal_to_duckdb"] = True
        report["partners_vs_duckdb_p50"] = round(
            report["partners_p50_ms"] / max(report["duckdb_partners_p50_ms"], 1e-3), 2
        )
        report["matrix_vs_duckdb"] = round(report["matrix_all_types_s"] / max(report["duckdb_matrix_s"], 1e-3), 2)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
