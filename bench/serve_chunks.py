"""Benchmark: read a 256^3 cutout of the demo through axonlink vs a static file server.

axonlink runs as users run it (``axonlink serve``: gunicorn, threaded
workers); the baseline is Python's static file server. CloudVolume reads the
same cutout (256x256x128: the demo is 128 deep) from each, alternating, several
times; medians and the ratio axonlink / static are printed (target <= 1.3).

Modes:
  stored  a dataset without a graph: axonlink serves the stored files (issue 2)
  live    the demo with its graph: axonlink remaps supervoxels to root ids per
          request; the baseline serves the same root-id chunks written to disk
          beforehand (issue 3). ``--cold`` turns axonlink's chunk cache off.

    python -m bench.serve_chunks [--mode stored|live] [--layer segmentation|segmentation_sharded|image]
                                 [--cold] [--home DIR] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from cloudvolume import CloudVolume

from bench.fresh import free_port, wait_until_answering
from bench.static_server import StaticServer
from segmentation.config import Settings
from segmentation.datasets import Datasets
from segmentation.demo.install import DEMO_NAME, demo_layers, ensure_demo

PLAIN = "bench_plain"


NO_RATE_LIMITS = "edit=none;create=none;expensive=none"  # throughput benchmarks measure the server, not the limiter


@contextmanager
def axonlink_server(settings: Settings, extra_env=None):
    """``axonlink serve`` in a subprocess on a free port, until the block ends (no rate limits unless
    ``extra_env`` sets ``AXONLINK_RATE_LIMITS``)."""
    port = free_port()
    env = {
        **os.environ,
        "AXONLINK_HOME": str(settings.home),
        "AXONLINK_DATABASE_URL": settings.database_url,
        "AXONLINK_RATE_LIMITS": NO_RATE_LIMITS,
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{url}/api/v1/datasets", process, "axonlink serve")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def cutout_seconds(url: str, bounds) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    data = CloudVolume(url, mip=0, progress=False, cache=False, parallel=1)[bounds]
    return time.perf_counter() - start, data


def prepare(settings: Settings, mode: str, layer: str, scratch: Path) -> tuple[str, Path, str]:
    """(dataset to ask axonlink for, directory the static server serves, layer path under it)."""
    demo = settings.demo_dir
    if mode == "stored":
        registry = Datasets(settings.database_url)
        if not registry.exists(PLAIN):
            registry.add(PLAIN, **demo_layers(demo))
        return PLAIN, demo, layer
    # live: the same chunks, remapped to the current roots once and written as plain files
    import fastremap

    from segmentation.graph import Graph
    from segmentation.graph.ids import supervoxel_ids
    from segmentation.precomputed import write_layer

    source = CloudVolume(f"file://{demo / layer}", mip=0, progress=False)
    labels = source[:, :, :][..., 0]
    unique = fastremap.unique(labels)
    unique = unique[unique != 0]
    graph = Graph.open(settings.database_url, DEMO_NAME)
    roots = fastremap.remap(
        labels, dict(zip(unique.tolist(), graph.roots(supervoxel_ids(unique)).tolist())), preserve_missing_labels=True
    )
    scale = source.info["scales"][0]
    write_layer(scratch / layer, [roots], "segmentation", scale["encoding"], source.resolution, scale["chunk_sizes"][0])
    return DEMO_NAME, scratch, layer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="axonlink data dir holding (or to hold) the demo")
    parser.add_argument("--mode", choices=("stored", "live"), default="stored")
    parser.add_argument("--layer", default="segmentation", help="segmentation, segmentation_sharded or image")
    parser.add_argument("--cold", action="store_true", help="live mode: no chunk cache in axonlink")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if args.mode == "live" and args.layer == "image":
        parser.error("the live mode remaps segmentation layers")

    settings = Settings.load(home=args.home)
    ensure_demo(settings, progress=True)
    with tempfile.TemporaryDirectory() as scratch:
        dataset, static_root, static_layer = prepare(settings, args.mode, args.layer, Path(scratch))
        size = CloudVolume(f"file://{settings.demo_dir / args.layer}", progress=False).volume_size
        bounds = tuple(slice(0, min(256, int(s))) for s in size)
        env = {"AXONLINK_LIVE_CACHE_CHUNKS": "0"} if args.cold else {}
        with axonlink_server(settings, env) as axonlink, StaticServer(static_root) as static:
            urls = {"axonlink": f"{axonlink}/data/{dataset}/{args.layer}", "static": f"{static.url}/{static_layer}"}
            reference = None
            times: dict[str, list[float]] = {name: [] for name in urls}
            for _ in range(args.repeats + 1):  # the first round warms both up and is dropped
                for name, url in urls.items():
                    seconds, data = cutout_seconds(url, bounds)
                    times[name].append(seconds)
                    if reference is None:
                        reference = data
                    elif not np.array_equal(reference, data):
                        raise SystemExit(f"{name} returned different voxels")
    medians = {name: statistics.median(values[1:]) for name, values in times.items()}
    ratio = medians["axonlink"] / medians["static"]
    shape = "x".join(str(b.stop) for b in bounds)
    extra = " (chunk cache off)" if args.cold else ""
    print(f"{args.mode}: cutout {shape} voxels of demo/{args.layer}, mip 0, {args.repeats} repeats (median){extra}")
    print(f"  static file server: {medians['static'] * 1000:8.1f} ms")
    print(f"  axonlink          : {medians['axonlink'] * 1000:8.1f} ms")
    print(f"  ratio axonlink/static: {ratio:.2f}  (target <= 1.30)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
