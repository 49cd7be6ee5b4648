"""Meshes for big neurons: what the viewer fetches, edit latency, and meshing throughput against igneous.

A generated segmentation (Raveler-style: every supervoxel lies in one z-plane) holds a neuron of
about 100 k supervoxels (a tree of vertical branches joined at the bottom), one of about 5 k, and
filler neurons around them, with a supervoxel→neuron table as agglomeration. Measured in one run:

- meshing: ``axonlink mesh`` (``mesh_dataset``, ``--workers``) against igneous' ``mesh forge`` on
  the same volume (megavoxels per second), when igneous is installed (``--igneous PATH`` to its
  ``igneous`` command; it pins old numpy, so give it a venv of its own:
  ``python -m venv /work/.venv-igneous && /work/.venv-igneous/bin/pip install igneous-pipeline``)
- what Neuroglancer's graphene source does to show a neuron: ask its manifest, then every fragment it
  names (byte ranges of chunk files), six at a time as a browser does per host: requests, bytes and
  wall time, against ``axonlink serve --workers W``
- merge → manifest: post a merge, then ask the merged root's manifest (p50, p99)
- split → both halves shown: post a split, then fetch both halves' manifests and every fragment
  they name (the cut chunks by quick unsimplified twins while their new fragments are being made), and
  split → both halves fully meshed: until their manifests list the new fragments (the switch: asked
  every 20 ms), and every fragment those name (p50, p99)

    python -m bench.meshes [--workers 4] [--mesh-workers 2] [--mesh-chunk X,Y,Z]
                           [--igneous /work/.venv-igneous/bin/igneous | none]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.fresh import fresh_settings, proofreader_token
from bench.graph_http import post
from bench.graph_scale import pct, start_server, until_every_worker_answers
from segmentation.datasets import Datasets
from segmentation.graph import ingest_dataset
from segmentation.graph.agglomeration import read_agglomeration
from segmentation.meshing import mesh_dataset
from segmentation.precomputed import write_layer

SHAPE = (512, 512, 256)
RESOLUTION = (8, 8, 40)
CHUNK = (64, 64, 64)
BROWSER_CONNECTIONS = 6  # what Chromium opens per host over HTTP/1.1


def neuron_volume(branches_big: int = 96, branches_small: int = 5, radius: int = 6):
    """(labels, supervoxel → neuron table, {"big": a supervoxel of it, "small": …, "fillers": [...]})."""
    labels = np.zeros(SHAPE, dtype=np.uint32)
    sx, sy, sz = SHAPE
    xs, ys = np.meshgrid(np.arange(sx), np.arange(sy), indexing="ij")
    spacing = 40
    sites = [(x, y) for x in range(24, sx - 16, spacing) for y in range(24, sy - 16, spacing)]
    neuron_of_site = []
    for k in range(len(sites)):  # the big neuron, the small one, then one filler neuron per site
        neuron_of_site.append(1 if k < branches_big else 2 if k < branches_big + branches_small else 3 + k)
    next_label = 1
    table = []
    examples = {"big": [], "small": [], "fillers": []}
    for (cx, cy), neuron in zip(sites, neuron_of_site):
        disk = (xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2
        quadrant = ((xs >= cx).astype(np.int64) * 2 + (ys >= cy))[disk]
        for z in range(sz):
            plane = labels[:, :, z]
            plane[disk] = next_label + quadrant  # four supervoxels per plane per branch (Raveler-style)
            table += [(next_label + q, neuron) for q in range(4)]
            next_label += 4
        first = next_label - 4 * sz
        kind = "big" if neuron == 1 else "small" if neuron == 2 else "fillers"
        examples[kind].append((first, first + 4 * (sz - 1)))  # a supervoxel at the bottom and one at the top
    for neuron in (1, 2):  # the branches of a neuron are joined by a slab at the bottom
        members = [s for s, n in zip(sites, neuron_of_site) if n == neuron]
        x0, x1 = min(x for x, _ in members), max(x for x, _ in members)
        y0, y1 = min(y for _, y in members), max(y for _, y in members)
        slab = np.zeros((sx, sy), dtype=bool)
        for x, _ in members:
            slab[x - 2 : x + 3, y0 : y1 + 1] = True
        slab[x0 : x1 + 1, y0 - 2 : y0 + 3] = True
        labels[:, :, 0][slab & (labels[:, :, 0] == 0)] = next_label
        table.append((next_label, neuron))
        next_label += 1
    return labels, np.array(table, dtype=np.uint64), examples


def fetch_neuron(url: str, table: str, root: int, data_dir: str, settled: bool = False) -> tuple[int, int]:
    """What the graphene source does for one neuron: (requests, bytes); ``settled``: ask its manifest
    again until it lists no quick twin, before fetching the fragments."""
    while True:
        with urllib.request.urlopen(
            f"{url}/meshing/api/v1/table/{table}/manifest/{root}:0?verify=1&prepend_seg_ids=1"
        ) as r:
            names = json.load(r)["fragments"]
            quick = r.headers.get("ETag", "").endswith('-quick"')
        if not (settled and quick):
            break
        time.sleep(0.02)

    def get(name: str) -> int:
        _, _, rest = name[1:].partition(":")
        if rest.startswith("~"):
            path, offset, size = rest[1:].split(":")
            request = urllib.request.Request(
                f"{data_dir}/graphene_meshes/initial/{path}",
                headers={"Range": f"bytes={offset}-{int(offset) + int(size) - 1}"},
            )
        else:
            request = urllib.request.Request(f"{data_dir}/graphene_meshes/dynamic/{rest}")
        with urllib.request.urlopen(request, timeout=120) as response:
            return len(response.read())

    with ThreadPoolExecutor(BROWSER_CONNECTIONS) as pool:
        sizes = list(pool.map(get, names))
    return 1 + len(names), sum(sizes)


def igneous_forge(igneous: str, layer_url: str, voxels: int, processes: int) -> dict | None:
    """igneous mesh forge on a copy of the same layer (its default task shape, a local queue executed by
    ``processes`` processes, as many as meshed for axonlink): seconds and MVx/s."""
    import shutil

    if not igneous or not Path(igneous).exists():
        return None
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "seg"
        shutil.copytree(layer_url.removeprefix("file://"), copy)  # forge adds a mesh directory to the layer
        queue = f"fq://{scratch}/queue"
        started = time.perf_counter()
        subprocess.run(
            [igneous, "mesh", "forge", f"file://{copy}", "--mip", "0", "--queue", queue],
            check=True,
            capture_output=True,
        )
        runs = [
            subprocess.Popen(
                [igneous, "execute", "-x", "-q", queue], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            for _ in range(processes)
        ]
        if any(run.wait() for run in runs):
            raise RuntimeError("igneous execute failed")
        seconds = time.perf_counter() - started
        fragments = sum(1 for p in copy.rglob("*") if p.is_file() and ":" in p.name)
    return {
        "seconds": round(seconds, 2),
        "megavoxels_per_second": round(voxels / 1e6 / seconds, 2),
        "processes": processes,
        "fragment_files": fragments,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4, help="server workers")
    parser.add_argument("--mesh-workers", type=int, default=2, help="processes meshing chunks")
    parser.add_argument("--edits", type=int, default=14, help="merges and splits (each; 43 filler neurons)")
    parser.add_argument(
        "--mesh-chunk",
        help="X,Y,Z voxels per mesh chunk (default: axonlink's); smaller chunks stand for bigger neurons",
    )
    parser.add_argument("--keep-log", help="copy the server's JSON request log here")
    parser.add_argument("--igneous", default=os.environ.get("AXONLINK_IGNEOUS", "/work/.venv-igneous/bin/igneous"))
    args = parser.parse_args()
    labels, table, examples = neuron_volume()
    voxels = int(np.prod(SHAPE))
    figures: dict = {"voxels": voxels}
    with fresh_settings(None) as settings:
        started = time.perf_counter()
        seg = write_layer(settings.home / "seg", [labels], "segmentation", "compressed_segmentation", RESOLUTION, CHUNK)
        image = write_layer(
            settings.home / "img", [np.zeros((64, 64, 64), np.uint8)], "image", "raw", RESOLUTION, CHUNK
        )
        del labels
        Datasets(settings.database_url).add("bench", image=image, segmentation=seg)
        np.save(settings.home / "bodies.npy", table)  # supervoxel -> neuron, as agglomeration pipelines export
        bodies = read_agglomeration(str(settings.home / "bodies.npy"), "bodies")
        ingest_dataset(settings.database_url, "bench", agglomeration=bodies, progress=False)
        print(f"volume written and graph ingested in {time.perf_counter() - started:.1f} s", flush=True)

        chunk = tuple(int(v) for v in args.mesh_chunk.split(",")) if args.mesh_chunk else None
        summary = mesh_dataset(
            settings.database_url, settings.home, "bench", chunk=chunk, workers=args.mesh_workers, progress=False
        )
        figures["axonlink_mesh"] = summary
        print(f"axonlink mesh: {summary}", flush=True)
        figures["igneous_forge"] = igneous_forge(args.igneous, seg, voxels, args.mesh_workers)
        print(f"igneous mesh forge: {figures['igneous_forge']}", flush=True)

        log = settings.home / "server.log"
        process, url = start_server(settings, args.workers, log)
        try:
            from segmentation.graph import Graph
            from segmentation.graph.ids import supervoxel_ids

            def sv(label):
                return int(supervoxel_ids(np.array([label], dtype=np.uint64))[0])

            until_every_worker_answers(url, process, log, args.workers, sv(examples["big"][0][0]), time.perf_counter())
            graph = Graph.open(settings.database_url, "bench")
            data_dir = f"{url}/data/bench@supervoxels/segmentation"
            # every worker reads the layer and the mesh index once (the first request of each): not timed
            with ThreadPoolExecutor(2 * args.workers) as pool:
                warm = graph.root(sv(examples["fillers"][-1][0]))
                list(pool.map(lambda _: fetch_neuron(url, "bench", warm, data_dir), range(4 * args.workers)))
            for kind in ("small", "big"):
                root = graph.root(sv(examples[kind][0][0]))
                supervoxels = len(graph.leaves(root))
                started = time.perf_counter()
                requests, size = fetch_neuron(url, "bench", root, data_dir)
                figures[f"{kind}_neuron"] = {
                    "supervoxels": supervoxels,
                    "requests": requests,
                    "megabytes": round(size / 1e6, 2),
                    "seconds": round(time.perf_counter() - started, 3),
                }
                print(f"{kind} neuron: {figures[f'{kind}_neuron']}", flush=True)
            token = proofreader_token(settings, "bench")
            base = f"{url}/segmentation/api/v1/table/bench"
            fillers = examples["fillers"]
            merge_s = []  # seconds (pct gives ms)
            for k in range(0, 2 * args.edits, 2):
                a, b = sv(fillers[k][0]), sv(fillers[k + 1][0])
                started = time.perf_counter()
                request = urllib.request.Request(
                    f"{base}/merge",
                    data=json.dumps([[a, 0, 0, 0], [b, 0, 0, 0]]).encode(),
                    method="POST",
                    headers={"Authorization": f"Bearer {token}"},
                )
                with urllib.request.urlopen(request) as response:
                    merged = json.load(response)["new_root_ids"][0]
                with urllib.request.urlopen(f"{url}/meshing/api/v1/table/bench/manifest/{merged}:0") as response:
                    json.load(response)
                merge_s.append(time.perf_counter() - started)
            request_s, shown_s, split_s, shown_requests = [], [], [], []
            for bottom, top in fillers[2 * args.edits : 3 * args.edits]:
                started = time.perf_counter()
                post(f"{base}/split", {"sources": [[sv(bottom), 0, 0, 0]], "sinks": [[sv(top), 0, 0, 0]]}, token)
                request_s.append(time.perf_counter() - started)
                halves = (graph.root(sv(bottom)), graph.root(sv(top)))
                shown_requests.append(sum(fetch_neuron(url, "bench", half, data_dir)[0] for half in halves))
                shown_s.append(time.perf_counter() - started)
                for half in halves:
                    fetch_neuron(url, "bench", half, data_dir, settled=True)
                split_s.append(time.perf_counter() - started)
            figures.update(
                merge_to_manifest_p50_ms=pct(merge_s, 50),
                merge_to_manifest_p99_ms=pct(merge_s, 99),
                split_request_p50_ms=pct(request_s, 50),
                split_to_shown_p50_ms=pct(shown_s, 50),
                split_to_shown_p99_ms=pct(shown_s, 99),
                split_shown_requests_p50=int(np.median(shown_requests)),
                split_to_meshed_p50_ms=pct(split_s, 50),
                split_to_meshed_p99_ms=pct(split_s, 99),
            )
        finally:
            process.terminate()
            process.wait(timeout=60)
            if args.keep_log:
                Path(args.keep_log).write_text(log.read_text())
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
