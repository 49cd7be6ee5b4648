"""SIGKILL the production server in the middle of a stream of edits, link creations and background
compactions, restart it: every acknowledged write is there and the graph is consistent (SQLite and
PostgreSQL)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from segmentation.graph.registry import forget_everywhere
from tests.helpers import CG_SV as SV
from tests.helpers import free_port, proofreader_token, write_volume

ROOT = Path(__file__).resolve().parent.parent


def start_server(settings, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "AXONLINK_HOME": str(settings.home),
        "AXONLINK_DATABASE_URL": settings.database_url,
        "AXONLINK_COMPACT_AFTER": "5",  # workers compact in the background all along: kills land mid-compaction too
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/datasets", timeout=2).read()
            return process
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("axonlink serve did not start") from None
            time.sleep(0.2)


def post(url: str, body, token: str) -> dict | None:
    """The JSON answer of an acknowledged write, None if the server did not acknowledge it."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response) if response.status < 300 else None
    except (OSError, urllib.error.HTTPError, ValueError, http.client.HTTPException):
        return None  # refused, or cut off mid-answer by the kill (IncompleteRead): not acknowledged


def test_acknowledged_writes_survive_sigkill(settings, small_volumes, tmp_path):
    from segmentation import db
    from segmentation.datasets import Datasets
    from segmentation.graph import Graph, ingest_dataset

    labels = np.zeros((32, 32, 8), dtype=np.uint64)
    for label in range(1, 5):
        labels[(label - 1) * 8 : label * 8] = label
    seg = write_volume(tmp_path / "seg", labels, layer_type="segmentation", encoding="compressed_segmentation")
    db.upgrade(settings.database_url)
    Datasets(settings.database_url).add("cg", image=small_volumes["image"], segmentation=seg)
    ingest_dataset(settings.database_url, "cg", agglomeration=[[1, 2], [3, 4]], progress=False)
    token = proofreader_token(settings.database_url, "cg")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cg = f"{base}/segmentation/api/v1/table/cg"
    server = start_server(settings, port)
    edits, states, stop = [], [], threading.Event()

    def stream():
        k = 0
        while not stop.is_set():
            k += 1
            answer = post(f"{cg}/merge", [[SV[1], 0, 0, 0], [SV[2], 0, 0, 0]], token)
            if answer:
                edits.append(answer["operation_id"])
            answer = post(f"{cg}/split", {"sources": [[SV[1], 0, 0, 0]], "sinks": [[SV[2], 0, 0, 0]]}, token)
            if answer:
                edits.append(answer["operation_id"])
            raw = json.dumps({"layers": [], "position": [k, 0, 0]}).encode()
            answer = post(f"{base}/api/v1/states", raw, token)
            if answer:
                states.append((answer["short_id"], raw))

    writers = [threading.Thread(target=stream) for _ in range(2)]
    try:
        for writer in writers:
            writer.start()
        deadline = time.monotonic() + 30
        while len(edits) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(server.pid, signal.SIGKILL)  # the master and both workers, mid-stream
        server.wait(timeout=10)
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
        assert len(edits) >= 20 and states

        server = start_server(settings, port)
        ids = json.dumps(edits, separators=(",", ":"))
        with urllib.request.urlopen(f"{cg}/operation_details?operation_ids={ids}") as response:
            details = json.load(response)
        assert sorted(int(k) for k in details) == sorted(edits)  # every acknowledged edit is there
        for short, raw in states:
            with urllib.request.urlopen(f"{base}/api/v1/states/{short}") as response:
                assert response.read() == raw
        # the log is whole (its sequence numbers run 1..n with no gap: no half edit), a fresh load
        # replays it, and that agrees with the restarted server
        import sqlalchemy as sa

        with db.engine_for(settings.database_url).connect() as connection:
            seqs = sorted(connection.scalars(sa.text("SELECT seq FROM graph_operations")).all())
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= len(edits)
        # every committed edit has its audit entry (written in the same transaction), by the token's user
        from segmentation.access import AuditLog

        audited = AuditLog(settings.database_url).entries(action="graph.*", limit=100000)
        assert any(e["action"] == "graph.compact" for e in audited)
        audited = [e for e in audited if e["action"] != "graph.compact"]
        assert len(audited) == len(seqs) and {e["user"] for e in audited} == {"tester"}
        forget_everywhere(settings.database_url, "cg")
        graph = Graph.open(settings.database_url, "cg")
        assert graph.index.seq == len(seqs)
        assert graph.index.base.seq > 0  # compactions happened, and the base named is whole
        graph.index.base.verify()
        replayed = Graph.open(settings.database_url, "cg")  # the same answers at every moment
        for seq in range(0, len(seqs) + 1, 5):
            moment = graph.operation_time(seq)
            assert graph.roots(SV, at=moment).tolist() == replayed.roots(SV, at=moment).tolist()
        assert sorted(graph.operation(op)["seq"] for op in edits) == sorted(
            set(graph.operation(op)["seq"] for op in edits)
        )
        served = post(f"{cg}/roots", {"node_ids": SV}, token)["root_ids"]
        assert served == graph.roots(SV).tolist()
        assert len(set(served[:2])) == 1 and len(set(served[2:])) == 1  # {1,2}{3,4} or all four joined
        assert post(f"{cg}/merge", [[SV[0], 0, 0, 0], [SV[3], 0, 0, 0]], token) or served[0] == served[3]
    finally:
        stop.set()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
