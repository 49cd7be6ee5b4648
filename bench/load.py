"""A bounded load test: 16 clients for 60 s mixing chunk reads, link resolves, searches and edits.

``axonlink serve`` (gunicorn, 2 workers) on the demo, PostgreSQL by default (SQLite with
``--database-url sqlite``). Clients run in 4 processes x 4 threads on loopback, each picking
a request kind by weight; edits merge and split the same few pairs of demo pieces from every
client at once (overlapping neurons), so refusals ("already merged", "already apart") are
expected 4xx. Afterwards: every acknowledged edit is in the log, the log has no gap, and the
graph loaded afresh from SQL gives the server's roots. Prints requests/s, p50/p99, 4xx and 5xx
per kind (targets, issue 6: 0 5xx, 0 lost edits, invariants hold).

    python -m bench.load [--seconds 60] [--database-url postgresql+psycopg://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import random
import sys
import threading
import time
from urllib.parse import quote

import numpy as np

from bench.fresh import chunk_paths, fresh_settings, proofreader_token
from bench.serve_chunks import axonlink_server
from segmentation.demo.install import ensure_demo

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1/test"
WEIGHTS = {"chunk": 50, "resolve": 25, "search": 15, "edit": 10}
SEARCHES = ["pyramidal", "inhibitory OR glia", "neuron dataset:demo", "astrocyte"]


def plan(url: str, settings) -> dict:
    """What clients ask for: chunk paths, stored links, searches, pairs of pieces to merge and split."""
    from segmentation.graph.ids import supervoxel_ids

    truth = json.loads((settings.demo_dir / "ground_truth.json").read_text())
    info = json.loads(_get(url, "/data/demo/segmentation/info"))
    chunks = chunk_paths(info)
    state = json.loads(_get(url, "/api/v1/datasets/demo/state"))
    links = []
    for k in range(100):
        state["position"] = [100 + k, 200, 60]
        links.append(json.loads(_post(url, "/api/v1/states", json.dumps(state).encode()))["short_id"])
    by_neuron: dict[int, list[int]] = {}
    for label, neuron in truth["supervoxel_to_neuron"].items():
        by_neuron.setdefault(neuron, []).append(int(supervoxel_ids(np.array([int(label)], dtype=np.uint64))[0]))
    pairs = [sorted(pieces)[:2] for pieces in by_neuron.values() if len(pieces) >= 2][:4]
    return {"chunks": chunks, "links": links, "pairs": pairs, "token": proofreader_token(settings, "demo")}


def _get(url, path) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request("GET", path)
    return connection.getresponse().read()


def _post(url, path, body: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    return connection.getresponse().read()


def _request(kind: str, rng: random.Random, work: dict) -> tuple[str, str, bytes | None]:
    if kind == "chunk":
        return "GET", rng.choice(work["chunks"]), None
    if kind == "resolve":
        return "GET", f"/api/v1/states/{rng.choice(work['links'])}", None
    if kind == "search":
        return "GET", f"/api/v1/search?q={quote(rng.choice(SEARCHES))}", None
    a, b = rng.choice(work["pairs"])
    cg = "/segmentation/api/v1/table/demo"
    if rng.random() < 0.5:
        return "POST", f"{cg}/merge", json.dumps([[a, 0, 0, 0], [b, 0, 0, 0]]).encode()
    return "POST", f"{cg}/split", json.dumps({"sources": [[a, 0, 0, 0]], "sinks": [[b, 0, 0, 0]]}).encode()


def _client(url: str, work: dict, seconds: float, threads: int, seed: int, out) -> None:
    host, port = url.removeprefix("http://").split(":")
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    results: dict[str, dict] = {k: {"times": [], "4xx": 0, "5xx": 0, "other": 0} for k in kinds}
    acknowledged: list[int] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def loop(n: int):
        rng = random.Random(seed * 100 + n)
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        while time.monotonic() < stop_at:
            kind = rng.choices(kinds, weights)[0]
            method, path, body = _request(kind, rng, work)
            start = time.perf_counter()
            try:
                headers = {"Authorization": f"Bearer {work['token']}"}  # every client is a signed-in proofreader
                if body:
                    headers["Content-Type"] = "application/json"
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=60)
                status, payload = 0, b""
            elapsed = time.perf_counter() - start
            with lock:
                entry = results[kind]
                if status < 400 and status:
                    entry["times"].append(elapsed)
                    if kind == "edit":
                        acknowledged.append(json.loads(payload)["operation_id"])
                elif 400 <= status < 500:
                    entry["4xx"] += 1
                elif status >= 500:
                    entry["5xx"] += 1
                else:
                    entry["other"] += 1

    workers = [threading.Thread(target=loop, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put((results, acknowledged))


def check(url: str, settings, acknowledged: list[int]) -> list[str]:
    """Invariants after the load: nothing acknowledged lost, no gap in the log, server = fresh load."""
    import sqlalchemy as sa

    from segmentation import db
    from segmentation.graph import Graph

    problems = []
    with db.engine_for(settings.database_url).connect() as connection:
        seqs = sorted(connection.scalars(sa.text("SELECT seq FROM graph_operations")).all())
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append("the operation log has gaps")
    lost = set(acknowledged) - set(seqs)  # operation ids are the dataset's sequence numbers
    if lost:
        problems.append(f"{len(lost)} acknowledged edits are not in the log")
    graph = Graph.open(settings.database_url, "demo")
    svs = [int(s) for s in graph.index.sv_ids]
    served = json.loads(_post(url, "/segmentation/api/v1/table/demo/roots", json.dumps({"node_ids": svs}).encode()))
    if served["root_ids"] != graph.roots(svs).tolist():
        problems.append("the server's roots differ from the graph loaded afresh from SQL")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4, help="clients per process")
    parser.add_argument("--database-url", default=POSTGRES, help="'sqlite' for a SQLite file")
    args = parser.parse_args()
    with fresh_settings(None if args.database_url == "sqlite" else args.database_url) as settings:
        print(f"database: {settings.database_url.split('?')[0]}; building the demo ...", flush=True)
        ensure_demo(settings, progress=False)
        with axonlink_server(settings, {}) as url:
            work = plan(url, settings)
            clients = args.processes * args.threads
            print(f"{clients} clients for {args.seconds:.0f} s: {WEIGHTS}", flush=True)
            queue = multiprocessing.Queue()
            processes = [
                multiprocessing.Process(target=_client, args=(url, work, args.seconds, args.threads, i, queue))
                for i in range(args.processes)
            ]
            for process in processes:
                process.start()
            outcomes = [queue.get() for _ in processes]
            for process in processes:
                process.join()
            problems = check(url, settings, [op for _, acked in outcomes for op in acked])
    print(f"{'kind':8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'4xx':>6} {'5xx':>5} {'failed':>6}")
    total_5xx = 0
    for kind in WEIGHTS:
        times = np.array([t for results, _ in outcomes for t in results[kind]["times"]]) * 1000
        count = lambda key: sum(results[kind][key] for results, _ in outcomes)  # noqa: E731
        total_5xx += count("5xx")
        p50, p99 = (np.percentile(times, q) if len(times) else float("nan") for q in (50, 99))
        print(
            f"{kind:8} {len(times) / args.seconds:8.1f} {p50:8.1f} {p99:8.1f} {count('4xx'):6} {count('5xx'):5} "
            f"{count('other'):6}"
        )
    acknowledged = sum(len(acked) for _, acked in outcomes)
    print(
        f"edits acknowledged: {acknowledged}; invariants: {'hold' if not problems else '; '.join(problems)}; "
        f"5xx: {total_5xx} (targets: 0 5xx, 0 lost edits)"
    )
    return 0 if not problems and not total_5xx else 1


if __name__ == "__main__":
    sys.exit(main())
