"""The graph at connectome scale: ingest, start-up, memory, lookups and edits with several workers.

A synthetic graph of N supervoxels (neurons of 2 k–100 k supervoxels in runs of consecutive ids,
about two edges per supervoxel: a chain, short skips and contacts to the next neuron) is written
as a base, then ``axonlink serve --workers W`` answers it. Measured in one run:

- ingest: building and writing the base (``store_graph``)
- ready: from starting the server until every worker has answered a root lookup (each worker
  opens the graph on its first graph request; workers are told apart by the ``pid`` of the
  JSON request log)
- memory: RSS and PSS of each worker (``/proc/PID/smaps_rollup``) after warm-up and the edits;
  PSS counts shared pages divided among the processes sharing them, so it is the cost per worker
- 1 M root lookups in this process through ``Graph.roots``: cold (base pages dropped from the
  page cache with ``posix_fadvise``, before any worker maps them), warm, and as of before the edits
- merges via HTTP along existing edges and merges creating an edge; splits with a proofreader's
  two points a few dozen supervoxels apart, and with points at the two ends of a neuron

Then the graph is compacted (``compact``) while the server runs, and each worker answers again
on the new base. The last line is one JSON object (keys listed in issue 15).

    python -m bench.graph_scale --supervoxels 10000000 [--workers 4] [--edits 60]
                                [--database-url postgresql+psycopg://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from bench.fresh import free_port, fresh_settings, proofreader_token, tiny_layer
from bench.graph_http import post
from bench.serve_chunks import NO_RATE_LIMITS
from segmentation.datasets import Datasets
from segmentation.graph import Graph, store_graph
from segmentation.graph.compaction import compact
from segmentation.graph.ids import supervoxel_ids


def scale_graph(n: int, rng):
    """Edges (positions lo < hi, unique), initial activity and areas of a synthetic connectome."""
    sizes = rng.integers(2_000, 100_001, n // 2_000 + 2)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n) + 1]
    sizes[-1] -= int(sizes.sum()) - n
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    neuron = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
    chain = np.flatnonzero(neuron[:-1] == neuron[1:])
    lo = [chain]
    hi = [chain + 1]
    skip = rng.integers(0, n, n // 2)
    skip_to = np.minimum(skip + rng.integers(2, 50, len(skip)), n - 1)
    keep = neuron[skip] == neuron[skip_to]
    lo.append(skip[keep])
    hi.append(skip_to[keep])
    del keep
    contact = rng.integers(0, n, n // 2)
    nxt = np.minimum(neuron[contact] + 1, len(sizes) - 1)
    contact_to = np.minimum(starts[nxt] + rng.integers(0, 1000, len(contact)), n - 1)
    keep = neuron[contact] != neuron[contact_to]
    lo.append(contact[keep])
    hi.append(contact_to[keep])
    within = sum(len(x) for x in lo[:2])
    lo, hi = np.concatenate(lo).astype(np.int64), np.concatenate(hi).astype(np.int64)
    active = np.zeros(len(lo), dtype=bool)
    active[:within] = True
    keys, first = np.unique(lo * n + hi, return_index=True)
    del keys
    first = first[lo[first] != hi[first]]
    lo, hi, active = lo[first], hi[first], active[first]
    area = rng.uniform(10, 1000, len(lo)).astype(np.float32)
    return lo, hi, active, area, starts, sizes


def drop_from_page_cache(directory: Path) -> None:
    for file in directory.iterdir():
        with open(file, "rb") as stream:
            os.posix_fadvise(stream.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def smaps(pid: int) -> tuple[float, float, float]:
    """(RSS, PSS, private) of a process in MB: private pages are its own, not shared with any other."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        values[key] = int(value.split()[0]) / 1024
    return values["Rss"], values["Pss"], values["Private_Clean"] + values["Private_Dirty"]


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(c) for c in children]


def start_server(settings, workers: int, log: Path):
    port = free_port()
    env = {
        **os.environ,
        "AXONLINK_HOME": str(settings.home),
        "AXONLINK_DATABASE_URL": settings.database_url,
        "AXONLINK_RATE_LIMITS": NO_RATE_LIMITS,
    }
    command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--workers", str(workers)]
    command += ["--log-format", "json", "--access-log"]
    stream = open(log, "w")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stream)
    return process, f"http://127.0.0.1:{port}"


def answered_pids(log: Path) -> dict[int, int]:
    """pid → status of graph requests each worker answered so far (from the JSON request log)."""
    found = {}
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "/root" in str(entry.get("message", "")) and entry.get("status") == 200:
            found[entry["pid"]] = entry["status"]
    return found


def until_every_worker_answers(url: str, process, log: Path, workers: int, sv: int, started: float) -> float:
    def ask(_):
        try:
            with urllib.request.urlopen(f"{url}/segmentation/api/v1/table/bench/node/{sv}/root", timeout=600) as r:
                r.read()
        except OSError:
            time.sleep(0.05)

    deadline = time.perf_counter() + 900
    with ThreadPoolExecutor(4 * workers) as pool:
        while len(answered_pids(log)) < workers:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"not every worker answered in 15 minutes: {answered_pids(log)}")
            if process.poll() is not None:
                raise RuntimeError(f"the server stopped: {log.read_text()[-2000:]}")
            list(pool.map(ask, range(4 * workers)))
    return time.perf_counter() - started


def pct(values, q) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supervoxels", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--edits", type=int, default=60, help="of each kind (merges, merges adding an edge, splits)")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary home")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.supervoxels
    figures: dict = {"supervoxels": n, "workers": args.workers}

    with fresh_settings(args.database_url) as settings:
        tiny = tiny_layer(settings.home)
        Datasets(settings.database_url).add("bench", image=tiny, segmentation=tiny)
        t = time.perf_counter()
        lo, hi, active, area, starts, sizes = scale_graph(n, rng)
        print(f"generated {n:,} supervoxels, {len(lo):,} edges in {time.perf_counter() - t:.1f} s", flush=True)
        svs = supervoxel_ids(np.arange(1, n + 1, dtype=np.uint64))
        inactive = np.flatnonzero(~active)
        cross = np.stack([lo, hi], axis=1)[inactive[rng.integers(0, len(inactive), 20_000)]]
        del inactive
        t = time.perf_counter()
        # the edges' supervoxel ids, made in place: ids are 1..N with the layer bits (a big run holds
        # each array of 2 N entries once)
        first = np.int64(int(svs[0]))
        lo += first
        hi += first
        edge_a, edge_b = lo.view(np.uint64), hi.view(np.uint64)
        del lo, hi
        store_graph(settings.database_url, "bench", svs, edge_a, edge_b, area, active)
        figures["ingest_s"] = round(time.perf_counter() - t, 1)
        del edge_a, edge_b, active, area
        graph = Graph(settings.database_url, "bench")
        base_dir = Path(urlsplit(graph.base_url).path)
        disk = sum(f.stat().st_size for f in base_dir.iterdir())
        print(f"ingest (build + write the base): {figures['ingest_s']} s; base on disk {disk / 1e9:.2f} GB", flush=True)
        figures["base_bytes_per_supervoxel"] = round(disk / n, 1)

        queries = svs[rng.integers(0, n, 1_000_000)]
        del graph
        drop_from_page_cache(base_dir)
        t = time.perf_counter()
        graph = Graph(settings.database_url, "bench")
        figures["open_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        graph.roots(queries)
        figures["lookup_1m_cold_ms"] = round((time.perf_counter() - t) * 1000, 1)
        timings = []
        for _ in range(5):
            t = time.perf_counter()
            graph.roots(queries)
            timings.append(time.perf_counter() - t)
        figures["lookup_1m_ms"] = round(min(timings) * 1000, 1)
        print(
            f"1 M root lookups: cold {figures['lookup_1m_cold_ms']} ms, warm {figures['lookup_1m_ms']} ms "
            f"(opening the graph: {figures['open_s']} s)",
            flush=True,
        )

        log = settings.home / "server.log"
        started = time.perf_counter()
        process, url = start_server(settings, args.workers, log)
        try:
            figures["ready_s"] = round(
                until_every_worker_answers(url, process, log, args.workers, int(svs[0]), started), 2
            )
            print(f"every one of {args.workers} workers answered {figures['ready_s']} s after start", flush=True)
            token = proofreader_token(settings, "bench")
            base = f"{url}/segmentation/api/v1/table/bench"
            before = time.time()
            time.sleep(0.01)
            merges, new_edge_merges, splits, far_splits = [], [], [], []
            for _ in range(args.edits):  # proofreader-style splits on neurons as ingested
                k = int(rng.integers(0, len(sizes)))
                at = int(starts[k]) + int(rng.integers(0, max(1, int(sizes[k]) - 100)))
                first, second = (
                    int(svs[at]),
                    int(svs[min(int(starts[k] + sizes[k]) - 1, at + int(rng.integers(20, 60)))]),
                )
                splits.append(
                    post(f"{base}/split", {"sources": [[first, 0, 0, 0]], "sinks": [[second, 0, 0, 0]]}, token)
                )
            for _ in range(max(1, args.edits // 4)):  # the two ends of a neuron
                k = int(rng.integers(0, len(sizes)))
                first, second = int(svs[starts[k]]), int(svs[starts[k] + sizes[k] - 1])
                if graph.root(first) != graph.root(second):
                    continue
                far_splits.append(
                    post(f"{base}/split", {"sources": [[first, 0, 0, 0]], "sinks": [[second, 0, 0, 0]]}, token)
                )
            # merges as a proofreader makes them: two neurons as segmented (2 k-100 k supervoxels each),
            # each neuron in at most one merge, so roots do not snowball into one giant root
            merged: set[int] = set()

            def untouched(*positions) -> bool:
                neurons = {int(np.searchsorted(starts, p, side="right")) for p in positions}
                if len(neurons) < len(positions) or neurons & merged:
                    return False
                merged.update(neurons)
                return True

            for a, b in cross:  # along contacts that exist
                if len(merges) == args.edits:
                    break
                if untouched(int(a), int(b)):
                    merges.append(post(f"{base}/merge", [[int(svs[a]), 0, 0, 0], [int(svs[b]), 0, 0, 0]], token))
            for _ in range(50 * args.edits):  # supervoxels that do not touch: the merge adds an edge
                if len(new_edge_merges) == args.edits:
                    break
                a, b = (int(x) for x in rng.integers(0, n, 2))
                if untouched(a, b) and graph.index.edge_state(int(svs[a]), int(svs[b])) is None:
                    new_edge_merges.append(
                        post(f"{base}/merge", [[int(svs[a]), 0, 0, 0], [int(svs[b]), 0, 0, 0]], token)
                    )
            memory = [smaps(pid) for pid in worker_pids(process.pid)]
            t = time.perf_counter()
            folded = compact(settings.database_url, "bench")
            figures["compaction_s"] = round(time.perf_counter() - t, 2)
            print(
                f"compaction of {folded.get('folded_operations')} operations: {figures['compaction_s']} s", flush=True
            )
            t = time.perf_counter()
            for _ in range(4 * args.workers):  # every worker switches to the new base at its next read
                post(f"{base}/roots", {"node_ids": [int(x) for x in svs[:10]]}, token)
            figures["after_compaction_s"] = round(time.perf_counter() - t, 2)
            memory_after = [smaps(pid) for pid in worker_pids(process.pid)]
        finally:
            process.terminate()
            process.wait(timeout=60)

        from datetime import UTC, datetime

        graph.sync()
        timings = []
        for _ in range(3):
            t = time.perf_counter()
            graph.roots(queries, at=datetime.fromtimestamp(before, UTC))
            timings.append(time.perf_counter() - t)
        figures["lookup_1m_past_ms"] = round(min(timings) * 1000, 1)
        figures["lookup_1m_after_edits_ms"] = round(min(_timed(graph.roots, queries) for _ in range(3)) * 1000, 1)

    figures.update(
        {
            "rss_mb_per_worker": round(max(m[0] for m in memory)),
            "pss_mb_per_worker": round(max(m[1] for m in memory)),
            "private_mb_per_worker": round(max(m[2] for m in memory)),
            "merge_p50_ms": pct(merges, 50),
            "merge_p99_ms": pct(merges, 99),
            "merge_new_edge_p50_ms": pct(new_edge_merges, 50),
            "merge_new_edge_p99_ms": pct(new_edge_merges, 99),
            "split_p50_ms": pct(splits, 50),
            "split_p99_ms": pct(splits, 99),
            "split_far_p50_ms": pct(far_splits, 50),
            "split_far_p99_ms": pct(far_splits, 99),
        }
    )
    print(f"workers after warm-up and edits: RSS/PSS/private MB {[tuple(round(x) for x in m) for m in memory]}")
    print(f"workers after compaction: RSS/PSS/private MB {[tuple(round(x) for x in m) for m in memory_after]}")
    figures["pss_mb_per_worker_after_compaction"] = round(max(m[1] for m in memory_after))
    figures["private_mb_per_worker_after_compaction"] = round(max(m[2] for m in memory_after))
    print(
        f"merge p50/p99 {figures['merge_p50_ms']}/{figures['merge_p99_ms']} ms ({len(merges)}); creating an edge "
        f"{figures['merge_new_edge_p50_ms']}/{figures['merge_new_edge_p99_ms']} ms ({len(new_edge_merges)})"
    )
    print(
        f"split p50/p99 {figures['split_p50_ms']}/{figures['split_p99_ms']} ms ({len(splits)}); far apart "
        f"{figures['split_far_p50_ms']}/{figures['split_far_p99_ms']} ms ({len(far_splits)})"
    )
    print(
        f"1 M root lookups as of before the edits {figures['lookup_1m_past_ms']} ms, now {figures['lookup_1m_after_edits_ms']} ms"
    )
    print(json.dumps(figures))
    return 0


def _timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
