"""Benchmark what a proofreader waits for in the viewer: from a merge or split request to the new
root's mesh manifest, and the graphene ``leaves`` route for 500 roots at once.

On a fresh demo served by ``axonlink serve`` (gunicorn), as a signed-in proofreader:

- merge → manifest: POST merge, then GET the new root's manifest (what the viewer does next), and
  the first of its Draco fragments; split → manifests the same way. Baseline of the same run: what
  a remeshing service must do at the least after an edit (CAVE remeshes; meshes vanish for a couple
  of seconds meanwhile) — cut the new root out of the live segmentation and mesh it with zmesh,
  Draco-encoded. Target (issue 7): merge-to-manifest p50 <= 100 ms.
- leaves for 500 roots: one ``leaves_many`` request for 500 roots of a synthetic graph (500
  neurons), beside 500 single ``leaves`` requests (a client without leaves_many); and the demo's
  roots within one graph chunk (``bounds``), as the viewer asks when zoomed in.

    python -m bench.proofread [--edits 30] [--database-url sqlite|postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request

import numpy as np

from bench.fresh import fresh_settings, proofreader_token
from bench.graph_ops import synthetic_graph
from bench.serve_chunks import axonlink_server

TABLE = "/segmentation/api/v1/table"
SYNTHETIC_SUPERVOXELS = 150_000  # about 700 neurons of 20-400 supervoxels: 500 roots to ask for


def request(url, body=None, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=120) as response:
        return response.read()


def timed(function):
    start = time.perf_counter()
    value = function()
    return (time.perf_counter() - start) * 1000, value


def pct(values, q):
    return float(np.percentile(values, q)) if len(values) else float("nan")


def leaves_many_ms(base, dataset, roots, query: str = "", repeats: int = 5) -> list[float]:
    """ms of each of ``repeats`` leaves_many requests for ``roots`` (``query`` adds e.g. ``&bounds=…``)."""
    url = f"{base}{TABLE}/{dataset}/node/leaves_many?int64_as_str=1{query}"
    return [timed(lambda: request(url, {"node_ids": [str(r) for r in roots]}))[0] for _ in range(repeats)]


def edit_to_manifest(base, dataset, route, body, token) -> tuple[float, list[str]]:
    """ms from the edit request to the new roots' manifests and their first fragments, and those roots."""

    def run():
        answer = json.loads(request(f"{base}{TABLE}/{dataset}/{route}?int64_as_str=1", body, token))
        for root in answer["new_root_ids"]:
            manifest = json.loads(request(f"{base}/meshing/api/v1/table/{dataset}/manifest/{root}:0?verify=1"))
            request(
                f"{base}/data/{dataset}@supervoxels/segmentation/graphene_meshes/dynamic/{manifest['fragments'][0]}"
            )
        return answer["new_root_ids"]

    return timed(run)


def remesh_baseline(base, dataset, root: int, graph) -> float:
    """ms to cut a root out of the live segmentation and mesh it (zmesh + Draco): a remesh's floor."""
    import DracoPy
    import zmesh
    from cloudvolume import CloudVolume

    boxes = graph.index.boxes[graph.index.index_of(graph.leaves(root))]
    low, high = boxes[:, :3].min(axis=0), boxes[:, 3:].max(axis=0)

    def run():
        volume = CloudVolume(f"{base}/data/{dataset}/segmentation", mip=0, progress=False, cache=False)
        labels = np.asarray(volume[low[0] : high[0], low[1] : high[1], low[2] : high[2]])[..., 0]
        mesher = zmesh.Mesher(volume.resolution)
        mesher.mesh(labels == root)
        mesh = mesher.get(1, normals=False)
        return DracoPy.encode(mesh.vertices.astype(np.float32), mesh.faces)

    return timed(run)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=30, help="merges (and as many splits) to time")
    parser.add_argument("--database-url", default="sqlite", help="'sqlite' for a SQLite file, or a PostgreSQL URL")
    args = parser.parse_args()
    from segmentation.datasets import Datasets
    from segmentation.demo.install import ensure_demo
    from segmentation.graph import Graph, store_graph
    from segmentation.graph.ids import supervoxel_ids

    with fresh_settings(None if args.database_url == "sqlite" else args.database_url) as settings:
        print("building the demo ...", flush=True)
        ensure_demo(settings, progress=False)
        # a synthetic graph with more than 500 neurons for the leaves route (the demo has fewer roots)
        rng = np.random.default_rng(0)
        edges, active, area, _, starts, sizes = synthetic_graph(SYNTHETIC_SUPERVOXELS, 400, rng)
        svs = supervoxel_ids(np.arange(1, SYNTHETIC_SUPERVOXELS + 1, dtype=np.uint64))
        demo = Datasets(settings.database_url).get("demo")
        Datasets(settings.database_url).add(
            "synthetic", image=demo.layer("image").url, segmentation=demo.layer("segmentation").url
        )
        store_graph(settings.database_url, "synthetic", svs, svs[edges[:, 0]], svs[edges[:, 1]], area, active)
        graph = Graph.open(settings.database_url, "demo")
        token = proofreader_token(settings, "demo")
        truth = json.loads((settings.demo_dir / "ground_truth.json").read_text())
        as_sv = lambda label: int(supervoxel_ids(np.array([int(label)], dtype=np.uint64))[0])  # noqa: E731
        neuron_of = {as_sv(k): v for k, v in truth["supervoxel_to_neuron"].items()}
        with axonlink_server(settings, {}) as base:
            request(f"{base}/segmentation/table/demo/info")  # both workers warm
            merges, splits, remesh = [], [], []
            by_neuron: dict = {}
            for sv, neuron in neuron_of.items():
                by_neuron.setdefault(neuron, []).append(sv)
            pairs = [(a, b) for pieces in by_neuron.values() for a, b in zip(pieces, pieces[1:])]
            for a, b in pairs[: args.edits]:
                graph.sync()
                if graph.root(a) == graph.root(b):
                    continue
                ms, roots = edit_to_manifest(base, "demo", "merge", [[str(a), 0, 0, 0], [str(b), 0, 0, 0]], token)
                merges.append(ms)
                graph.sync()
                if len(remesh) < 10:
                    remesh.append(remesh_baseline(base, "demo", int(roots[0]), graph))
                ms, _ = edit_to_manifest(
                    base, "demo", "split", {"sources": [[str(a), 0, 0, 0]], "sinks": [[str(b), 0, 0, 0]]}, token
                )
                splits.append(ms)
                # merge back, so the next pair starts from a whole neuron again
                request(f"{base}{TABLE}/demo/merge", [[str(a), 0, 0, 0], [str(b), 0, 0, 0]], token)

            synthetic = Graph.open(settings.database_url, "synthetic")
            roots = sorted({int(r) for r in synthetic.roots(svs[starts[:500]])})
            leaves_many = leaves_many_ms(base, "synthetic", roots)
            one_by_one = timed(
                lambda: [request(f"{base}{TABLE}/synthetic/node/{r}/leaves?int64_as_str=1") for r in roots]
            )[0]
            graph.sync()
            demo_roots = sorted({int(r) for r in graph.roots(graph.index.sv_ids)})
            chunk = json.loads(request(f"{base}/segmentation/table/demo/info"))["graph"]["chunk_size"]
            bounds = "_".join(f"{c}-{2 * c}" for c in chunk)
            in_chunk = leaves_many_ms(base, "demo", demo_roots, f"&bounds={bounds}")
            total_leaves = int(sum(sizes[:500]))

    print(
        f"merge → manifest + first fragment: p50 {pct(merges, 50):6.1f} ms  p99 {pct(merges, 99):6.1f} ms "
        f"({len(merges)} merges; target p50 <= 100 ms)"
    )
    print(
        f"split → both manifests + fragments: p50 {pct(splits, 50):6.1f} ms  p99 {pct(splits, 99):6.1f} ms "
        f"({len(splits)} splits)"
    )
    print(
        f"baseline, remeshing the merged root (cutout + zmesh + Draco): p50 {pct(remesh, 50):6.1f} ms "
        f"→ manifest path is {pct(remesh, 50) / pct(merges, 50):.1f}× faster (CAVE: seconds, meshes gone meanwhile)"
    )
    print(
        f"leaves_many, {len(roots)} roots ({total_leaves:,} supervoxels) at once: p50 {pct(leaves_many, 50):6.1f} ms"
        f"  | {len(roots)} single leaves requests: {one_by_one:7.1f} ms  ({one_by_one / pct(leaves_many, 50):.1f}×)"
    )
    print(f"leaves_many with bounds {bounds}, all {len(demo_roots)} demo roots: p50 {pct(in_chunk, 50):6.1f} ms")
    return 0 if pct(merges, 50) <= 100 else 1


if __name__ == "__main__":
    sys.exit(main())
