"""An answer marked immutable (cached for a year) never changes, with editors and readers at work.

A reader asking for moment T just after an editor stamped its edit at T' <= T, but before that
edit is committed, must not be told the answer without the edit is final.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.request
from datetime import UTC, datetime

from tests.helpers import CG_SV as SV
from tests.helpers import call

CG = "/segmentation/api/v1/table/cg"
CHUNK = "segmentation/8_8_40/0-16_0-16_0-8"  # holds supervoxels 1 and 2, whose roots the edits change


def fetch(url):
    with urllib.request.urlopen(url) as response:
        return response.read(), response.headers["Cache-Control"]


def test_no_answer_marked_immutable_ever_changes(cg_server, monkeypatch):
    from segmentation.access import audit

    record = audit.record

    def slow_record(*args, **kwargs):  # widen the window between an edit's stamp and its commit
        time.sleep(0.15)
        return record(*args, **kwargs)

    monkeypatch.setattr(audit, "record", slow_record)
    stop = threading.Event()
    immutable: dict[str, bytes] = {}
    errors = []

    def edit():
        merge = json.dumps([[SV[1], 0, 0, 0], [SV[2], 0, 0, 0]]).encode()
        try:
            for _ in range(8):
                status, body = call(f"{cg_server.url}{CG}/merge", merge, token=cg_server.token)
                assert status == 200, body
                operation = json.loads(body)["operation_id"]
                status, body = call(
                    f"{cg_server.url}{CG}/undo", json.dumps({"operation_id": operation}).encode(), token=cg_server.token
                )
                assert status == 200, body
        except AssertionError as error:
            errors.append(error)
        finally:
            stop.set()

    def read(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            moment = f"{datetime.now(UTC).timestamp() - rng.uniform(0, 0.3):.6f}"
            body, cache = fetch(f"{cg_server.url}/data/cg@{moment}/{CHUNK}")
            if "immutable" in cache:
                immutable[moment] = body

    readers = [threading.Thread(target=read, args=(seed,)) for seed in range(3)]
    writer = threading.Thread(target=edit)
    for thread in readers + [writer]:
        thread.start()
    for thread in readers + [writer]:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(immutable) > 10  # moments did become final while the edits went on
    changed = [
        moment for moment, body in immutable.items() if fetch(f"{cg_server.url}/data/cg@{moment}/{CHUNK}")[0] != body
    ]
    assert not changed, f"{len(changed)} of {len(immutable)} immutable answers changed later"
