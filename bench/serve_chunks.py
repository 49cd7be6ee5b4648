"""Benchmark: read a 256^3 cutout of the demo segmentation through axonlink vs a static file server.

axonlink runs as users run it (``axonlink serve``: gunicorn, threaded workers);
the baseline is Python's static file server over the same files. CloudVolume
reads the same cutout (256x256x128: the demo is 128 deep) from each,
alternating, several times; prints medians and the ratio axonlink / static
(target <= 1.3).

    python bench/serve_chunks.py [--home DIR] [--repeats 7] [--layer segmentation|segmentation_sharded|image]
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from cloudvolume import CloudVolume  # noqa: E402

from bench.static_server import StaticServer  # noqa: E402
from segmentation.config import Settings  # noqa: E402
from server.cli import DEMO_NAME, ensure_demo  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def axonlink_server(settings: Settings):
    """``axonlink serve`` in a subprocess on a free port, until the block ends."""
    port = free_port()
    env = {**os.environ, "AXONLINK_HOME": str(settings.home), "AXONLINK_DATABASE_URL": settings.database_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v1/datasets", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("axonlink serve did not start")
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def cutout_seconds(url: str, bounds) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    volume = CloudVolume(url, mip=0, progress=False, cache=False, parallel=1)
    data = volume[bounds]
    return time.perf_counter() - start, data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="axonlink data dir holding (or to hold) the demo")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--layer", default="segmentation", help="segmentation, segmentation_sharded or image")
    args = parser.parse_args()

    settings = Settings.load(home=args.home)
    ensure_demo(settings, progress=True)
    layer_dir = settings.demo_dir / args.layer
    size = CloudVolume(f"file://{layer_dir}", progress=False).volume_size
    bounds = tuple(slice(0, min(256, int(s))) for s in size)
    shape = "x".join(str(b.stop) for b in bounds)

    with axonlink_server(settings) as axonlink, StaticServer(settings.demo_dir) as static:
        urls = {"axonlink": f"{axonlink}/data/{DEMO_NAME}/{args.layer}", "static": f"{static.url}/{args.layer}"}
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
    print(f"cutout {shape} voxels of demo/{args.layer}, mip 0, {args.repeats} repeats (median)")
    print(f"  static file server: {medians['static'] * 1000:8.1f} ms")
    print(f"  axonlink          : {medians['axonlink'] * 1000:8.1f} ms")
    print(f"  ratio axonlink/static: {ratio:.2f}  (target <= 1.30)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
