"""Cell-type search through HTTP at scale, beside a plain SQL LIKE over the tag table.

Three datasets with synthetic graphs (bench/graph_ops.py; ~167 k neurons each, 500 k in all)
and 1 M tags on random supervoxels (terms across the default vocabulary's levels, a few
users, 5 % retracted), written in bulk; then a few merges per dataset, so a past moment
differs from now. ``axonlink serve`` answers ``GET /api/v1/search`` for hierarchical type
queries now and at a past moment; the baseline is ``SELECT … WHERE term LIKE …`` on the same
database (what a search without the in-memory index would at least cost). Also times
``segment_properties`` for a dataset with >= 100 k tagged neurons. Targets (issue 5): search
p50 <= 50 ms and p99 <= 200 ms; segment_properties <= 1 s.

    python -m bench.search [--tags 1000000] [--neurons 500000] [--queries 100] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import numpy as np
import sqlalchemy as sa

from bench.fresh import fresh_settings, tiny_layer
from bench.graph_ops import synthetic_graph
from bench.serve_chunks import axonlink_server
from segmentation import db
from segmentation.celltypes.vocabulary import Vocabulary
from segmentation.config import Settings
from segmentation.datasets import Datasets
from segmentation.graph import Graph, store_graph
from segmentation.graph.bulk import write_rows
from segmentation.graph.ids import supervoxel_ids
from segmentation.models import CellTagStateRow

DATASETS = ("cortex_a", "cortex_b", "cortex_c")
USERS = ("ana", "ben", "chen", "dara", "importer")
QUERIES = ("pyramidal", "inhibitory OR glia", "excitatory dataset:cortex_b", "L2/3 pyramidal user:ana")
MEAN_NEURON = 10.5  # supervoxels per neuron in synthetic_graph(max_neuron=20)


def build(settings: Settings, tags_total: int, neurons: int, rng) -> datetime:
    """Datasets, graphs and tags; returns a moment after the tags and before the merges."""
    home = settings.home
    tiny = tiny_layer(home)
    registry = Datasets(settings.database_url)
    terms = [t.name for t in Vocabulary.default().terms()]
    per_dataset = tags_total // len(DATASETS)
    sv_count = int(neurons / len(DATASETS) * MEAN_NEURON)
    created0 = datetime.now(UTC) - timedelta(days=30)
    engine = db.engine_for(settings.database_url)
    for number, name in enumerate(DATASETS, start=1):
        registry.add(name, image=tiny, segmentation=tiny)
        edges, active, area, *_ = synthetic_graph(sv_count, 20, rng)
        svs = supervoxel_ids(np.arange(1, sv_count + 1, dtype=np.uint64))
        store_graph(settings.database_url, name, svs, svs[edges[:, 0]], svs[edges[:, 1]], area, active)
        chosen = rng.integers(0, sv_count, per_dataset)
        created = np.sort(rng.uniform(0, 29 * 86400, per_dataset))
        with engine.begin() as connection:
            dataset_id = connection.scalar(sa.text("SELECT id FROM datasets WHERE name = :n"), {"n": name})
            rows = {
                "sv_id": svs[chosen].astype(np.int64),
                "x": rng.integers(0, 1000, per_dataset).astype(np.int32),
                "y": rng.integers(0, 1000, per_dataset).astype(np.int32),
                "z": rng.integers(0, 100, per_dataset).astype(np.int32),
            }
            retracted = rng.random(per_dataset) < 0.05
            users = np.array(USERS, dtype=object)[rng.integers(0, len(USERS), per_dataset)]
            when = [created0 + timedelta(seconds=float(c)) for c in created]
            columns = {
                "dataset_id": np.full(per_dataset, dataset_id),
                **rows,
                "term": np.array(terms, dtype=object)[rng.integers(0, len(terms), per_dataset)],
                "note": np.full(per_dataset, "", dtype=object),
                "user_id": users,
                "created_at": np.array(when, dtype=object),
                "retracted_at": np.array(
                    [w + timedelta(hours=1) if r else None for w, r in zip(when, retracted)], dtype=object
                ),
                "retracted_by": np.where(retracted, users, None),
                "change_seq": np.full(per_dataset, number),
            }
            insert_tags(connection, columns)
            state = CellTagStateRow.__table__
            connection.execute(state.delete())
            connection.execute(state.insert().values(id=1, last_seq=number))
        print(f"  {name}: {sv_count:,} supervoxels, {per_dataset:,} tags", flush=True)
    past = datetime.now(UTC)
    time.sleep(0.05)
    for name in DATASETS:  # a few merges, so "now" and "past" answer differently
        graph = Graph.open(settings.database_url, name)
        for _ in range(20):
            a, b = (int(v) for v in supervoxel_ids(rng.integers(1, sv_count + 1, 2).astype(np.uint64)))
            if graph.root(a) != graph.root(b):
                graph.merge(a, b, "bench")
    return past


def insert_tags(connection, columns: dict) -> None:
    """Bulk rows into cell_tags: the driver's executemany on SQLite, SQLAlchemy's on PostgreSQL."""
    if connection.dialect.name == "sqlite":
        to_sql = {
            "created_at": lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "retracted_at": lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f") if d else None,
        }
        values = {k: [to_sql[k](v) for v in a] if k in to_sql else a for k, a in columns.items()}
        write_rows(connection, "cell_tags", {k: np.asarray(v, dtype=object) for k, v in values.items()})
        return
    table = sa.table("cell_tags", *(sa.column(c) for c in columns))
    records = [dict(zip(columns, row)) for row in zip(*(a.tolist() for a in columns.values()))]
    for start in range(0, len(records), 50_000):
        connection.execute(table.insert(), records[start : start + 50_000])


def timed_get(url: str) -> tuple[float, dict]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = json.load(response)
    return time.perf_counter() - start, body


def percentiles(values) -> str:
    ms = np.asarray(values) * 1000
    return f"p50 {np.percentile(ms, 50):7.1f} ms  p99 {np.percentile(ms, 99):7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=1_000_000)
    parser.add_argument("--neurons", type=int, default=500_000)
    parser.add_argument("--queries", type=int, default=100, help="requests per kind of query")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary home")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with fresh_settings(args.database_url) as settings:
        print(f"building {args.tags:,} tags over {len(DATASETS)} datasets, ~{args.neurons:,} neurons ...", flush=True)
        t = time.perf_counter()
        past = build(settings, args.tags, args.neurons, rng)
        print(f"built in {time.perf_counter() - t:.0f} s", flush=True)

        engine = sa.create_engine(settings.database_url)
        baseline = []
        with engine.connect() as connection:
            for _k in range(max(5, args.queries // 10)):
                start = time.perf_counter()
                connection.execute(
                    sa.text(
                        "SELECT dataset_id, sv_id, term FROM cell_tags WHERE term LIKE :t AND retracted_at IS NULL"
                    ),
                    {"t": "%pyramidal%"},
                ).fetchall()
                baseline.append(time.perf_counter() - start)
        engine.dispose()

        with axonlink_server(settings, {}) as server:
            t = time.perf_counter()
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(8) as pool:  # every worker loads tags and graphs before timing
                list(pool.map(lambda _: timed_get(f"{server}/api/v1/search?q=neuron"), range(16)))
            print(f"server warm (tags and graphs loaded in each worker) in {time.perf_counter() - t:.1f} s")
            print(f"baseline: SQL LIKE '%pyramidal%' over the tag table      {percentiles(baseline)}")
            for query in QUERIES:
                for moment, suffix in (("now", ""), ("past", f" t:{past.timestamp():.3f}")):
                    times, body = [], None
                    for _ in range(args.queries):
                        elapsed, body = timed_get(f"{server}/api/v1/search?q={quote(query + suffix)}&per_page=50")
                        times.append(elapsed)
                    print(f"search {query!r:34} {moment:4}  {percentiles(times)}  ({body['total']:,} neurons)")
            times = []
            for _ in range(5):
                elapsed, body = timed_get(f"{server}/data/{DATASETS[0]}/segmentation/segment_properties/info")
                times.append(elapsed)
            print(
                f"segment_properties of {DATASETS[0]} ({len(body['inline']['ids']):,} tagged neurons): "
                f"{percentiles(times)}  (target <= 1 s)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
