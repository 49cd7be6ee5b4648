"""Share links: create and resolve throughput through HTTP, beside a bare Flask + SQL floor.

``axonlink serve`` (gunicorn, gthread workers, 2 on a 2-core machine) answers
``POST /api/v1/states`` (realistic states from bench.state_corpus, all different) and
``GET /api/v1/states/<short id>``; the floor is bench/links_floor.py (one INSERT or SELECT
per request) under the same gunicorn settings and database. Load comes from several client
processes with keep-alive connections on the same machine. Targets (issue 4): >= 1,000
resolves/s, ratio to the floor <= 1.5x.

    python -m bench.links [--seconds 5] [--clients 4] [--threads 4] [--database-url URL]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.fresh import free_port, fresh_settings, wait_until_answering
from bench.serve_chunks import axonlink_server
from bench.state_corpus import generate

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def floor_server(database_url: str, workers: int):
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE TABLE IF NOT EXISTS floor_states (id INTEGER PRIMARY KEY, body BLOB)"
                if database_url.startswith("sqlite")
                else "CREATE TABLE IF NOT EXISTS floor_states (id SERIAL PRIMARY KEY, body BYTEA)"
            )
        )
    engine.dispose()
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(workers),
            "-k",
            "gthread",
            "--threads",
            "32",
            "-b",
            f"127.0.0.1:{port}",
            "--preload",
            "bench.links_floor:app",
        ],
        env={**os.environ, "FLOOR_DATABASE_URL": database_url},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{url}/floor/states/1", process, "the floor server", seconds=30)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _client(
    url: str, method: str, paths: list[str], bodies: list[bytes] | None, seconds: float, threads: int, out
) -> None:
    """One client process: ``threads`` keep-alive connections sending requests until time is up."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = [0]
    kinds: dict[str, int] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def loop(offset: int):
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        mine, k = [], offset
        while time.monotonic() < stop_at:
            path = paths[k % len(paths)]
            body = bodies[k % len(bodies)] if bodies else None
            k += threads
            start = time.perf_counter()
            try:
                connection.request(
                    method, path, body=body, headers={"Content-Type": "application/json"} if body else {}
                )
                response = connection.getresponse()
                response.read()
                ok = response.status < 300
                kind = str(response.status)
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
                ok, kind = False, type(error).__name__
            if ok:
                mine.append(time.perf_counter() - start)
            else:
                with lock:
                    errors[0] += 1
                    kinds[kind] = kinds.get(kind, 0) + 1
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put((latencies, errors[0], kinds))


def load(url: str, method: str, paths, bodies, seconds: float, clients: int, threads: int) -> dict:
    queue = multiprocessing.Queue()
    share = [(paths[i::clients], bodies[i::clients] if bodies else None) for i in range(clients)]
    processes = [
        multiprocessing.Process(target=_client, args=(url, method, p, b, seconds, threads, queue)) for p, b in share
    ]
    for process in processes:
        process.start()
    results = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    latencies = np.array([x for lat, _, _ in results for x in lat])
    kinds: dict[str, int] = {}
    for _, _, found in results:
        for kind, count in found.items():
            kinds[kind] = kinds.get(kind, 0) + count
    return {
        "rate": len(latencies) / seconds,
        "p50": float(np.percentile(latencies, 50)) * 1000 if len(latencies) else 0,
        "p99": float(np.percentile(latencies, 99)) * 1000 if len(latencies) else 0,
        "errors": sum(e for _, e, _ in results),
        "error_kinds": kinds,
        "count": len(latencies),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--threads", type=int, default=4, help="keep-alive connections per client process")
    parser.add_argument("--states", type=int, default=4000, help="distinct states to create")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary home")
    args = parser.parse_args()
    workers = min(4, os.cpu_count() or 1)
    corpus = generate(args.states, seed=2026)
    print(
        f"{len(corpus)} states, median {int(np.median([len(s) for s in corpus])):,} bytes; "
        f"gunicorn with {workers} workers; {args.clients} client processes x {args.threads} connections"
    )

    with fresh_settings(args.database_url) as settings:
        rows = []
        with axonlink_server(settings, {}) as server:
            created = load(
                server, "POST", ["/api/v1/states"] * len(corpus), corpus, args.seconds, args.clients, args.threads
            )
            import sqlalchemy as sa

            engine = sa.create_engine(settings.database_url)
            with engine.connect() as connection:
                shorts = [r[0] for r in connection.execute(sa.text("SELECT short_id FROM states"))]
            engine.dispose()
            with urllib.request.urlopen(f"{server}/api/v1/states/{shorts[0]}/info") as response:
                json.load(response)  # stored and readable (ids are random: there is no "state 1")
            resolved = load(
                server, "GET", [f"/api/v1/states/{s}" for s in shorts], None, args.seconds, args.clients, args.threads
            )
            rows += [("create", created), ("resolve", resolved)]
        with floor_server(settings.database_url, workers) as floor:
            floor_created = load(
                floor, "POST", ["/floor/states"] * len(corpus), corpus, args.seconds, args.clients, args.threads
            )
            floor_resolved = load(
                floor,
                "GET",
                [f"/floor/states/{i}" for i in range(1, floor_created["count"] + 1)],
                None,
                args.seconds,
                args.clients,
                args.threads,
            )
        floors = {"create": floor_created, "resolve": floor_resolved}

    print(
        f"{'':8} {'axonlink req/s':>15} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} | "
        f"{'floor req/s':>12} {'p50 ms':>8} {'p99 ms':>8} | floor/axonlink"
    )
    for name, ours in rows:
        base = floors[name]
        ratio = base["rate"] / ours["rate"] if ours["rate"] else float("inf")
        print(
            f"{name:8} {ours['rate']:15,.0f} {ours['p50']:8.1f} {ours['p99']:8.1f} {ours['errors']:7} | "
            f"{base['rate']:12,.0f} {base['p50']:8.1f} {base['p99']:8.1f} | {ratio:.2f}x"
        )
    for name, ours in rows:
        if ours["errors"]:
            print(f"{name} errors by kind: {ours['error_kinds']}")
    resolves = dict(rows)["resolve"]["rate"]
    ratio = floors["resolve"]["rate"] / dict(rows)["resolve"]["rate"]
    print(
        f"target: >= 1,000 resolves/s ({'met' if resolves >= 1000 else 'NOT met'}), "
        f"floor ratio <= 1.5x ({'met' if ratio <= 1.5 else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
