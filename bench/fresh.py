"""What benchmarks share: a throwaway home and database, a token, a tiny layer, the demo's chunk
paths, a free port, and waiting for a server they started."""

from __future__ import annotations

import socket
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from segmentation import db
from segmentation.config import Settings, sqlite_url


def scratch_with_s3(stack, prefix: str, logs: Path | None):
    """(a throwaway folder, the logs folder: ``logs`` or one in it, a SeaweedFS S3 server logging there),
    all cleaned up by ``stack``; for the benchmarks whose nodes share an object store."""
    from tests.object_store import SeaweedS3

    scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
    logs = logs or scratch / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    s3 = SeaweedS3(logs / "seaweedfs")
    stack.callback(s3.stop)
    return scratch, logs, s3


@contextmanager
def fresh_settings(database_url: str | None = None):
    """Settings on a new SQLite file, or on a private schema of ``database_url`` (PostgreSQL), migrated."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        url = database_url or sqlite_url(home / "a.sqlite")
        if url.startswith("postgresql"):
            with db.private_schema(url) as scoped:
                yield _migrated(home, scoped)
        else:
            yield _migrated(home, url)


def proofreader_token(settings: Settings, dataset: str, user: str = "bench") -> str:
    """A token of ``user`` (made if missing) with the proofreader role on ``dataset``: edits need one."""
    from segmentation.access import Accounts

    return Accounts(settings.database_url).role_token(user, dataset, "proofreader", by="bench")


def _migrated(home: Path, url: str) -> Settings:
    settings = Settings.load(home=home, database_url=url)
    db.upgrade(settings.database_url)
    return settings


def tiny_layer(home: Path) -> str:
    """An 8×8×8 all-background segmentation layer: the segmentation of synthetic-graph datasets."""
    import numpy as np

    from segmentation.precomputed import write_layer

    return write_layer(
        home / "layer",
        [np.zeros((8, 8, 8), dtype=np.uint64)],
        "segmentation",
        "compressed_segmentation",
        (8, 8, 40),
        (8, 8, 8),
    )


def chunk_paths(info: dict, dataset: str = "demo", layers=("segmentation", "image")) -> list[str]:
    """Every mip-0 chunk path of ``layers`` of a dataset whose layers share ``info``'s grid."""
    scale = info["scales"][0]
    (cx, cy, cz), (sx, sy, sz) = scale["chunk_sizes"][0], scale["size"]
    return [
        f"/data/{dataset}/{layer}/{scale['key']}/{x}-{min(x + cx, sx)}_{y}-{min(y + cy, sy)}_{z}-{min(z + cz, sz)}"
        for layer in layers
        for x in range(0, sx, cx)
        for y in range(0, sy, cy)
        for z in range(0, sz, cz)
    ]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on, for a server the benchmark starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answering(url: str, process, what: str, seconds: float = 60) -> None:
    """Poll ``url`` until the server ``process`` started answers (any HTTP status); SystemExit if it
    dies or does not answer within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return  # answering
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"{what} did not start") from None
            time.sleep(0.2)
