"""Requests per second for the hot routes, against nginx serving the same files, with wrk.

One run, one machine: nginx (Debian's, ``gzip_static always`` as for CloudVolume's ``.gz`` chunk
files) serves the demo's precomputed files; ``axonlink serve`` (``--workers``, no rate limits)
serves the demo through its routes, alone and behind nginx as a caching reverse proxy
(docs/deploy.md: what axonlink marks ``public`` is kept and answered by nginx).
wrk (Debian's) loads one target at a time, ``Accept-Encoding: gzip`` as browsers send it:

- ``stored_one``: one stored chunk (the demo image); ``stored_cycle``: every mip-0 chunk of the
  image and of a plain (graph-less) copy of the segmentation, in turn;
- ``live_cycle``: every mip-0 chunk of the demo segmentation remapped to root ids, the chunk
  cache warm (and ``live_cold``: a second server with the cache off); nginx's figure for these
  is the same chunks as stored (what a remapping server is up against);
- ``fragments``: byte ranges of built-in mesh fragment files, as the graphene source asks (nginx:
  the same files and ranges); ``links``: ``GET /api/v1/states/<id>`` of 200 stored states.

Each at 16 and 64 connections: requests/s, p50, p99, the ratio to nginx. ``sequential``: the
stored cycle on one connection (one request after another: the latency of a kept-alive request,
which is what a cutout's threads wait on). Then ``cutout``:
CloudVolume reads the whole mip-0 volume of the image, the plain segmentation and the live
segmentation from nginx and from axonlink alone, in turn (``--repeats`` each), as a user's script
would; median seconds and the ratio axonlink / nginx (target ≤ 1.1). The last line is one JSON
object: ``stored_ratio`` (stored_cycle at 16 connections, alone / nginx), ``live_ratio``
(live_cycle), ``fronted_ratio`` (stored_cycle behind nginx / nginx), ``stored_p99_ms``,
``link_rps``, ``cutout_ratio`` (the largest of the three), and every figure.

    python -m bench.serve_rps [--seconds 5] [--workers 2] [--database-url URL] [--only a,b] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from bench.fresh import chunk_paths, free_port, fresh_settings, proofreader_token, wait_until_answering
from bench.serve_chunks import NO_RATE_LIMITS
from segmentation.datasets import Datasets
from segmentation.demo.install import DEMO_NAME, demo_layers, ensure_demo

PLAIN = "bench_plain"
CONNECTIONS = (16, 64)


# ---- servers -------------------------------------------------------------------------
@contextmanager
def axonlink(settings, workers: int, env: dict | None = None):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env={
            **os.environ,
            "AXONLINK_HOME": str(settings.home),
            "AXONLINK_DATABASE_URL": settings.database_url,
            "AXONLINK_RATE_LIMITS": NO_RATE_LIMITS,
            **(env or {}),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(url + "/api/v1/datasets", process, "axonlink serve")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


NGINX_CONF = """
{user}
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{files_port};
        gzip_static always;
        add_header Access-Control-Allow-Origin *;
{locations}
    }}
    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=axonlink_cache:16m max_size=1g inactive=1h
                     use_temp_path=off;
    upstream axonlink {{
        server {upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{front_port};
        location / {{
            proxy_pass http://axonlink;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Request-Id $request_id;
            proxy_buffering on;
            proxy_cache axonlink_cache;  # as docs/deploy.md: what axonlink marks public is kept
            proxy_cache_revalidate on;
            proxy_cache_lock off;  # see docs/deploy.md: a lock makes uncacheable answers wait 0.5 s steps
        }}
    }}
}}
"""


@contextmanager
def nginx(folders: dict[str, Path], upstream: str, workers: int):
    """nginx serving ``folders`` (URL prefix → directory) and proxying everything else on a second port
    to ``upstream``: (files URL, front URL)."""
    prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    files_port, front_port = free_port(), free_port()
    locations = "\n".join(
        f"        location ~ ^{re.escape(p)}/g\\d+-(.+)$ {{ alias {d}/$1; }}"  # a meshing run's files: g<run>-<file>
        if p.endswith("/initial")
        else f"        location {p}/ {{ alias {d}/; }}"
        for p, d in folders.items()
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "",  # its workers read the files the bench just wrote
            workers=workers,
            prefix=prefix,
            files_port=files_port,
            front_port=front_port,
            upstream=upstream.removeprefix("http://"),
            locations=locations,
        )
    )
    process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(prefix)], stderr=subprocess.PIPE)
    files, front = f"http://127.0.0.1:{files_port}", f"http://127.0.0.1:{front_port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(front + "/api/v1/datasets", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {(prefix / 'error.log').read_text()}") from None
                time.sleep(0.1)
        yield files, front
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(prefix, ignore_errors=True)


# ---- load ----------------------------------------------------------------------------
LUA = """
-- built in init(), not at load: only then does wrk know the Host header to send
local requests = {}
local n = 0
local i = 0
function init(args)
  for line in io.lines("%s") do
    local path, range = line:match("^(%%S+)%%s*(.*)$")
    local headers = {["Host"] = wrk.headers["Host"], ["Accept-Encoding"] = "gzip"}
    if range ~= "" then headers["Range"] = range end
    n = n + 1
    requests[n] = wrk.format("GET", path, headers)
  end
  i = math.random(n) - 1
end
function request()
  i = i %% n + 1
  return requests[i]
end
"""


def wrk(base: str, paths: list[str], connections: int, seconds: float, scratch: Path) -> dict:
    """wrk cycling through ``paths`` (each ``PATH`` or ``PATH bytes=A-B``): req/s, p50/p99 ms, errors."""
    listing = scratch / f"paths-{abs(hash(tuple(paths)))}.txt"
    listing.write_text("\n".join(paths) + "\n")
    script = scratch / f"cycle-{listing.stem}.lua"
    script.write_text(LUA % listing)
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)

    def latency(q: str) -> float:
        value, unit = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 2)

    return {
        "rps": round(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
    }


# ---- what is asked -----------------------------------------------------------------------
def fragment_requests(url: str, dataset: str, roots: list[int]) -> list[str]:
    """``PATH bytes=A-B`` for every stored fragment the manifests of ``roots`` list."""
    out = []
    for root in roots:
        with urllib.request.urlopen(f"{url}/meshing/api/v1/table/{dataset}/manifest/{root}:0") as answer:
            names = json.load(answer)["fragments"]
        for name in names:
            rest = name[1:].partition(":")[2]
            if rest.startswith("~"):
                path, offset, size = rest[1:].split(":")
                end = int(offset) + int(size) - 1
                out.append(
                    f"/data/{dataset}@supervoxels/segmentation/graphene_meshes/initial/{path} bytes={offset}-{end}"
                )
    return out


def stored_states(url: str, token: str, count: int) -> list[str]:
    from bench.state_corpus import generate

    paths = []
    for state in generate(count, seed=11):
        request = urllib.request.Request(
            f"{url}/api/v1/states",
            data=state,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request) as answer:
            paths.append(f"/api/v1/states/{json.load(answer)['id']}")
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="axonlink serve --workers (and nginx workers)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: a fresh SQLite file)")
    parser.add_argument("--only", help="comma-separated targets (stored_one, stored_cycle, live_cycle, cutout, …)")
    parser.add_argument("--repeats", type=int, default=15, help="CloudVolume cutouts per server and layer")
    args = parser.parse_args()
    figures: dict = {}
    with fresh_settings(args.database_url) as settings, tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        ensure_demo(settings, progress=False)
        demo = settings.demo_dir
        Datasets(settings.database_url).add(PLAIN, **demo_layers(demo))
        from segmentation.meshing import mesh_dataset

        mesh_dataset(settings.database_url, settings.home, DEMO_NAME, workers=args.workers, progress=False)
        info = json.loads((demo / "segmentation" / "info").read_text())
        image_info = json.loads((demo / "image" / "info").read_text())
        image_chunks = chunk_paths(image_info, DEMO_NAME, ("image",))
        plain_chunks = chunk_paths(info, PLAIN, ("segmentation",))
        live_chunks = chunk_paths(info, DEMO_NAME, ("segmentation",))
        folders = {
            f"/data/{DEMO_NAME}/image": demo / "image",
            f"/data/{DEMO_NAME}/segmentation": demo / "segmentation",
            f"/data/{PLAIN}/segmentation": demo / "segmentation",
            f"/data/{DEMO_NAME}@supervoxels/segmentation/graphene_meshes/initial": _initial_folder(settings),
        }
        from segmentation.graph import Graph

        graph = Graph.open(settings.database_url, DEMO_NAME)
        with axonlink(settings, args.workers) as alone, nginx(folders, alone, args.workers) as (files, front):
            roots = sorted({int(r) for r in graph.roots(graph.supervoxel_ids[:2000])})[:50]
            fragments = fragment_requests(alone, DEMO_NAME, roots)
            links = stored_states(alone, proofreader_token(settings, DEMO_NAME), 200)
            targets = {
                "stored_one": [image_chunks[len(image_chunks) // 2]],
                "stored_cycle": image_chunks + plain_chunks,
                # one client's chunks one after another on one connection (what a CloudVolume cutout's
                # threads each do): the latency of one kept-alive request, not throughput
                "sequential": image_chunks + plain_chunks,
                "live_cycle": live_chunks,
                "fragments": fragments,
                "links": links,
            }
            wanted = set(args.only.split(",")) if args.only else None
            servers = {"nginx": files, "axonlink": alone, "fronted": front}
            for name, paths in targets.items():
                if wanted and name not in wanted:
                    continue
                for server, base in servers.items():
                    if server == "nginx" and name == "links":
                        continue  # no file to serve: links are measured against their target alone
                    # warm up (caches, connections); live chunks are remapped once per worker process, each
                    # a few milliseconds: long enough that both workers' caches hold every chunk
                    wrk(base, paths, 16, 3 if name == "live_cycle" else 1, scratch)
                    for connections in (1,) if name == "sequential" else CONNECTIONS:
                        result = wrk(base, paths, connections, args.seconds, scratch)
                        figures[f"{name}/{server}/c{connections}"] = result
                        print(f"{name:13} {server:9} c={connections:<3} {_line(result)}", flush=True)
            if not wanted or "cutout" in wanted:
                layers = {"image": f"/data/{DEMO_NAME}/image", "plain": f"/data/{PLAIN}/segmentation"}
                layers["live"] = f"/data/{DEMO_NAME}/segmentation"  # nginx: the same chunks as stored
                for layer, path in layers.items():
                    times = cutouts(files, alone, path, args.repeats)
                    figures[f"cutout/{layer}"] = times
                    print(
                        f"{'cutout':13} {layer:9} nginx {times['nginx_s']:.3f} s  axonlink {times['axonlink_s']:.3f} s"
                        f"  ratio {times['ratio']:.2f} (paired {times['paired_ratio']:.2f}, best of each:"
                        f" {times['min_ratio']:.2f}); server CPU per cutout nginx {times['server_cpu_ms']['nginx']} ms,"
                        f" axonlink {times['server_cpu_ms']['axonlink']} ms",
                        flush=True,
                    )
        if not wanted or "live_cold" in wanted:
            with axonlink(settings, args.workers, {"AXONLINK_LIVE_CACHE_CHUNKS": "0"}) as cold:
                wrk(cold, live_chunks, 16, 1, scratch)
                for connections in CONNECTIONS:
                    result = wrk(cold, live_chunks, connections, args.seconds, scratch)
                    figures[f"live_cold/axonlink/c{connections}"] = result
                    print(f"{'live_cold':13} {'axonlink':9} c={connections:<3} {_line(result)}", flush=True)
    summary = _summary(figures)
    for key, value in summary.items():
        if key.endswith("ratio"):
            print(f"{key}: {value}")
    print(json.dumps({**summary, "figures": figures}))
    return 0


def server_processes(base: str) -> list:
    """The processes of the server listening at ``base``'s port: the one holding the socket, its
    parent when that is the same program (gunicorn's arbiter, nginx's master), and all their children."""
    import psutil

    port = int(base.rsplit(":", 1)[1])
    found: dict = {}
    for connection in psutil.net_connections("tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
            process = psutil.Process(connection.pid)
            parent = process.parent()
            top = parent if parent is not None and parent.name() == process.name() else process
            for each in [top, *top.children(recursive=True)]:
                found[each.pid] = each
    return list(found.values())


def cpu_seconds_of(processes: list) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except Exception:  # ended meanwhile
            continue
        total += times.user + times.system
    return total


def cutouts(nginx_base: str, axonlink_base: str, path: str, repeats: int) -> dict:
    """Median seconds for CloudVolume to read the layer's whole mip-0 volume from each server, in turn
    (alternating which goes first). The client's decoding is most of each cutout and shares the two
    cores with the server, so single cutouts vary by ±15 % here (±30 % on a noisy machine): hence
    the repeats, the ratio of each round's pair (``paired_ratio``, drift between rounds left out),
    and each server's CPU per cutout (``server_cpu_ms``: what the server takes from the client's
    cores, steadier than any time)."""
    import statistics

    from cloudvolume import CloudVolume

    processes = {"nginx": server_processes(nginx_base), "axonlink": server_processes(axonlink_base)}
    server_cpu = {server: 0.0 for server in processes}

    volumes = {
        server: CloudVolume(f"precomputed://{base}{path}", mip=0, progress=False, cache=False)
        for server, base in (("nginx", nginx_base), ("axonlink", axonlink_base))
    }
    seconds: dict[str, list[float]] = {server: [] for server in volumes}
    reference = None
    for round_ in range(repeats + 1):  # the first round warms both (connections, the live cache)
        order = list(volumes.items()) if round_ % 2 == 0 else list(volumes.items())[::-1]  # neither always first
        for server, volume in order:
            cpu_before = cpu_seconds_of(processes[server])
            started = time.perf_counter()
            cutout = volume[volume.bounds]
            seconds[server].append(time.perf_counter() - started)
            if round_:
                server_cpu[server] += cpu_seconds_of(processes[server]) - cpu_before
            if reference is None:
                reference = cutout.shape
            assert cutout.shape == reference
    nginx_s, axonlink_s = (statistics.median(seconds[s][1:]) for s in ("nginx", "axonlink"))
    nginx_min, axonlink_min = (min(seconds[s][1:]) for s in ("nginx", "axonlink"))
    # each round's two cutouts ran back to back: their ratio leaves out what drifts between rounds
    paired = [a / n for a, n in zip(seconds["axonlink"][1:], seconds["nginx"][1:])]
    return {
        "nginx_s": round(nginx_s, 4),
        "axonlink_s": round(axonlink_s, 4),
        "ratio": round(axonlink_s / nginx_s, 3),
        "paired_ratio": round(statistics.median(paired), 3),
        "min_ratio": round(axonlink_min / nginx_min, 3),  # best of each: the least noisy comparison
        "server_cpu_ms": {server: round(cpu / repeats * 1000, 1) for server, cpu in server_cpu.items()},
        "rounds": {server: [round(t, 4) for t in times[1:]] for server, times in seconds.items()},
    }


def _initial_folder(settings) -> Path:
    from segmentation.meshing import MeshStore

    root = Path(MeshStore(settings.home, DEMO_NAME).root)  # the demo's meshes are in its home
    return root / (root / "current").read_text().strip() / "initial"


def _line(result: dict) -> str:
    errors = f"  errors {result['errors']}" if result["errors"] else ""
    return f"{result['rps']:8d} req/s  p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms{errors}"


def _summary(figures: dict) -> dict:
    def rps(key):
        return figures.get(key, {}).get("rps")

    def ratio(a, b):
        return round(rps(a) / rps(b), 3) if rps(a) and rps(b) else None

    return {
        "stored_ratio": ratio("stored_cycle/axonlink/c16", "stored_cycle/nginx/c16"),
        "live_ratio": ratio("live_cycle/axonlink/c16", "live_cycle/nginx/c16"),
        "fronted_ratio": ratio("stored_cycle/fronted/c16", "stored_cycle/nginx/c16"),
        "stored_p99_ms": figures.get("stored_cycle/axonlink/c16", {}).get("p99_ms"),
        "link_rps": rps("links/axonlink/c16"),
        "link_p99_ms": figures.get("links/axonlink/c16", {}).get("p99_ms"),
        "cutout_ratio": max((v["ratio"] for k, v in figures.items() if k.startswith("cutout/")), default=None),
        "fragments_ratio": ratio("fragments/axonlink/c16", "fragments/nginx/c16"),
    }


if __name__ == "__main__":
    raise SystemExit(main())
