"""Where a merge's time goes: the same merges timed by the client and by the server itself.

Writes the synthetic connectome of :mod:`bench.graph_scale`, starts ``axonlink serve --workers W``
with the JSON access log, merges pairs of whole neurons (each neuron once) one after the other,
and prints the client's p50/p90 beside the server's own (the ``ms`` of each request's log line).
Run it with ``--workers 1`` and ``4`` (and ``AXONLINK_GRAPH_FOLLOW_SECONDS``) to see what several
workers add.

    python -m bench.merge_latency --supervoxels 10000000 --workers 4 [--merges 60] [--gap-ms 100]

``--gap-ms`` pauses between merges (a proofreader's pace; by default they go back to back, so each
arrives while the other workers still replay the one before).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bench.fresh import fresh_settings, proofreader_token, tiny_layer
from bench.graph_http import post
from bench.graph_scale import scale_graph, start_server, until_every_worker_answers
from segmentation.datasets import Datasets
from segmentation.graph import store_graph
from segmentation.graph.ids import supervoxel_ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supervoxels", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--merges", type=int, default=60)
    parser.add_argument("--gap-ms", type=float, default=0.0, help="pause between merges")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.supervoxels
    with fresh_settings(None) as settings:
        tiny = tiny_layer(settings.home)
        Datasets(settings.database_url).add("bench", image=tiny, segmentation=tiny)
        lo, hi, active, area, starts, sizes = scale_graph(n, rng)
        svs = supervoxel_ids(np.arange(1, n + 1, dtype=np.uint64))
        first = np.int64(int(svs[0]))
        lo += first
        hi += first
        store_graph(settings.database_url, "bench", svs, lo.view(np.uint64), hi.view(np.uint64), area, active)
        del lo, hi, active, area
        log = settings.home / "server.log"
        process, url = start_server(settings, args.workers, log)
        try:
            until_every_worker_answers(url, process, log, args.workers, int(svs[0]), time.perf_counter())
            token = proofreader_token(settings, "bench")
            merge = f"{url}/segmentation/api/v1/table/bench/merge"
            neurons = rng.permutation(len(sizes))
            client = []
            for k in range(0, min(2 * args.merges, len(neurons) - 1), 2):
                a, b = int(svs[starts[neurons[k]]]), int(svs[starts[neurons[k + 1]]])
                client.append(post(merge, [[a, 0, 0, 0], [b, 0, 0, 0]], token) * 1000)
                time.sleep(args.gap_ms / 1000)
            time.sleep(1)  # the last log lines
        finally:
            process.terminate()
            process.wait(timeout=60)
        server = []
        for line in log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "/merge" in str(entry.get("message", "")) and "ms" in entry:
                server.append(float(entry["ms"]))
    figures = {
        "supervoxels": n,
        "workers": args.workers,
        "gap_ms": args.gap_ms,
        "merges": len(client),
        "client_p50_ms": round(float(np.percentile(client, 50)), 1),
        "client_p90_ms": round(float(np.percentile(client, 90)), 1),
        "server_p50_ms": round(float(np.percentile(server, 50)), 1) if server else None,
        "server_p90_ms": round(float(np.percentile(server, 90)), 1) if server else None,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
