"""Benchmark: chunk requests per second through ``axonlink serve`` from two source trees, with wrk.

Made to compare gunicorn workers (a tree from before ``server.worker``, i.e.
stock ``gthread``, against this one): both trees serve the same home, 2
workers each, one under load at a time, in alternating order, after a warm-up
run; the median of the rounds is printed per path, in requests per second and
in server CPU time per request (less sensitive to whatever else the machine
is doing), and the median of the two trees' ratio within each round (the
two runs of a round are seconds apart, so slow changes in load cancel). wrk must be installed.

    git worktree add /tmp/axonlink-before <commit>   # or: git archive <commit> | tar -x -C DIR
    python -m bench.worker_throughput --home /tmp/axhome --baseline /tmp/axonlink-before

Defaults: ``wrk -t2 -c16 -d10s`` against a stored chunk (demo image) and a
live one (demo segmentation, remapped to root ids), 3 rounds. ``--side-by-side``
loads both servers at once instead (one wrk each): on a machine shared with
other work, both then see the same background load, and their ratio is what
to read (each gets about half the CPUs).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.fresh import free_port

ROOT = Path(__file__).resolve().parent.parent
PATHS = {
    "stored": "/data/demo/image/8_8_40/0-64_0-64_0-32",
    "live": "/data/demo/segmentation/8_8_40/0-64_0-64_0-32",
}


def serve(tree: Path, home: str, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "AXONLINK_HOME": home, "PYTHONPATH": str(tree)}
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--workers", str(workers)],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/api/v1/datasets", timeout=2).read()
            return process, url
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"axonlink serve from {tree} did not start") from None
            time.sleep(0.2)


def cpu_seconds(process: subprocess.Popen) -> float:
    """User and system time of the server's processes (the arbiter and its workers) so far."""
    import psutil

    parent = psutil.Process(process.pid)
    return sum(sum(p.cpu_times()[:2]) for p in [parent, *parent.children(recursive=True)])


def wrk(url: str, threads: int, connections: int, seconds: int, server=None) -> tuple[float, float]:
    """(requests per second, server CPU milliseconds per request)."""
    return wrk_together([(url, server)], threads, connections, seconds)[0]


def wrk_together(targets, threads: int, connections: int, seconds: int) -> list[tuple[float, float]]:
    """wrk against each (url, server process) at the same time; per target (req/s, server CPU ms/request)."""
    before = [cpu_seconds(server) if server else 0.0 for _, server in targets]
    runs = [
        subprocess.Popen(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", url], stdout=subprocess.PIPE, text=True
        )
        for url, _ in targets
    ]
    outs = [run.communicate()[0] for run in runs]
    results = []
    for (url, server), out, start in zip(targets, outs, before):
        used = cpu_seconds(server) - start if server else 0.0
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if errors:
            raise RuntimeError(f"{url}: {errors.group(1)} failed responses\n{out}")
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        results.append((rate, 1000 * used / max(1, requests)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="an axonlink home with the demo (axonlink demo --no-serve)")
    parser.add_argument("--baseline", required=True, type=Path, help="source tree to compare against")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--side-by-side", action="store_true", help="load both servers at once")
    args = parser.parse_args()

    trees = {"baseline": args.baseline.resolve(), "this tree": ROOT}
    servers = {name: serve(tree, args.home, args.workers) for name, tree in trees.items()}
    results = {(name, kind): [] for name in trees for kind in PATHS}
    try:
        for _name, (_, url) in servers.items():  # warm up: caches, connections, the live chunk's remapping
            for path in PATHS.values():
                wrk(url + path, args.threads, args.connections, 2)
        for round_ in range(args.rounds):
            order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
            for kind, path in PATHS.items():
                if args.side_by_side:
                    both = wrk_together(
                        [(servers[name][1] + path, servers[name][0]) for name in order],
                        args.threads,
                        args.connections,
                        args.seconds,
                    )
                    for name, (rate, cpu) in zip(order, both):
                        results[(name, kind)].append((rate, cpu))
                        print(
                            f"round {round_ + 1} {kind:6} {name:9} {rate:8.0f} req/s {cpu:6.3f} ms CPU/request",
                            flush=True,
                        )
                    continue
                for name in order:
                    process, url = servers[name]
                    rate, cpu = wrk(url + path, args.threads, args.connections, args.seconds, process)
                    results[(name, kind)].append((rate, cpu))
                    print(
                        f"round {round_ + 1} {kind:6} {name:9} {rate:8.0f} req/s {cpu:6.3f} ms CPU/request", flush=True
                    )
    finally:
        for process, _ in servers.values():
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
    print(
        f"\nwrk -t{args.threads} -c{args.connections} -d{args.seconds}s, {args.workers} workers, "
        f"median of {args.rounds} rounds" + (", both servers loaded at once" if args.side_by_side else "")
    )
    baseline, this = trees
    for kind in PATHS:
        paired = statistics.median(
            new / old for (old, _), (new, _) in zip(results[(baseline, kind)], results[(this, kind)])
        )
        print(f"  {kind:6} req/s, this tree / baseline within each round, median: {paired:.3f}")
    for kind in PATHS:
        (base, base_cpu), (new, new_cpu) = (
            (
                statistics.median(r for r, _ in results[(name, kind)]),
                statistics.median(c for _, c in results[(name, kind)]),
            )
            for name in trees
        )
        print(
            f"  {kind:6} req/s: baseline {base:6.0f}  this tree {new:6.0f}  ratio {new / base:.3f}   "
            f"CPU ms/request: baseline {base_cpu:.3f}  this tree {new_cpu:.3f}  ratio {new_cpu / base_cpu:.3f}"
        )


if __name__ == "__main__":
    main()
