"""Helpers the tests share: databases, volumes, tokens, requests to live servers.

Fixtures live in ``conftest.py``; what a test imports lives here (``from tests.helpers import …``).
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from contextlib import contextmanager

import numpy as np
import pytest
import sqlalchemy as sa

POSTGRES_URL = os.environ.get("AXONLINK_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else why not (used as the skip reason)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as error:  # noqa: BLE001 - any failure means "not here"
        return f"PostgreSQL at {POSTGRES_URL} does not answer: {error.__class__.__name__}"
    return None


NO_RATE_LIMITS = "edit=none;create=none;expensive=none"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (for a server a test starts as a process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# For tests of HTTP behaviour that does not depend on the database (origins, caps, cache headers, parsing):
# ``pytestmark = SQLITE_ONLY`` (or as a decorator) runs them once, on SQLite.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def image_mips(array: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` mips of an integer image, each the floor of the mean of each 2×2×1 block of the one
    before, a block cut by the volume's edge averaging the voxels it has: a plain reference for the
    pyramids axonlink writes (tinybrain leaves an odd axis' last row uninitialised)."""
    levels = []
    for _ in range(count):
        source = array.astype(np.int64)
        shape = ((array.shape[0] + 1) // 2, (array.shape[1] + 1) // 2, *array.shape[2:])
        total, count_of = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        for dx in range(2):
            for dy in range(2):
                part = source[dx::2, dy::2]
                total[: part.shape[0], : part.shape[1]] += part
                count_of[: part.shape[0], : part.shape[1]] += 1
        array = (total // count_of).astype(array.dtype)
        levels.append(array)
    return levels


def read_back(url: str) -> list[np.ndarray]:
    """Every mip of the layer at ``url``, read by CloudVolume, as (x, y, z) arrays."""
    from cloudvolume import CloudVolume

    mips = len(CloudVolume(url, progress=False).info["scales"])
    volumes = [CloudVolume(url, mip=mip, progress=False, fill_missing=False) for mip in range(mips)]
    return [np.asarray(volume[volume.bounds])[..., 0] for volume in volumes]


def write_volume(path, array, *, layer_type, encoding, resolution=(8, 8, 40), chunk=(16, 16, 8), mips=2, compress=True):
    """Write ``array`` as a precomputed layer with CloudVolume, downsampled (2,2,1) per mip."""
    import tinybrain
    from cloudvolume import CloudVolume

    info = CloudVolume.create_new_info(
        num_channels=1,
        layer_type=layer_type,
        data_type=str(array.dtype),
        encoding=encoding,
        resolution=list(resolution),
        voxel_offset=[0, 0, 0],
        volume_size=list(array.shape),
        chunk_size=list(chunk),
    )
    vol = CloudVolume(f"file://{path}", info=info, compress=compress, progress=False)
    for mip in range(1, mips):
        vol.add_scale((2**mip, 2**mip, 1), chunk_size=list(chunk), encoding=encoding)
    vol.commit_info()
    vol[:, :, :] = array
    levels = (
        tinybrain.downsample_segmentation(array, (2, 2, 1), num_mips=mips - 1)
        if layer_type == "segmentation"
        else image_mips(array, mips - 1)
    )
    for mip, level in enumerate(levels, start=1):
        CloudVolume(f"file://{path}", mip=mip, compress=compress, progress=False)[:, :, :] = level
    return f"file://{path}"


def add_two_neuron_dataset(database_url: str, name: str, image: str, directory, *, public: bool = True) -> None:
    """Register and ingest dataset ``name``: a 32×32×8 segmentation of two slabs along x (plain labels
    1 and 2, one neuron each) written under ``directory``, beside the layer ``image``."""
    from segmentation.datasets import Datasets
    from segmentation.graph import ingest_dataset

    labels = np.zeros((32, 32, 8), dtype=np.uint64)
    labels[:16], labels[16:] = 1, 2
    seg = write_volume(
        directory / f"{name}-seg", labels, layer_type="segmentation", encoding="compressed_segmentation", mips=1
    )
    Datasets(database_url).add(name, image=image, segmentation=seg, public=public)
    ingest_dataset(database_url, name, progress=False)


def slab_labels(dtype=np.uint64) -> np.ndarray:
    """Plain labels 1-4 in 8-voxel slabs along x of a 32×32×8 volume, each touching its neighbours."""
    labels = np.zeros((32, 32, 8), dtype=dtype)
    for label in range(1, 5):
        labels[(label - 1) * 8 : label * 8] = label
    return labels


def add_cg_dataset(database_url: str, image: str, directory, dtype=np.uint64) -> np.ndarray:
    """Register and ingest dataset `cg`: :func:`slab_labels` of ``dtype`` (compressed_segmentation, two
    mips) agglomerated as {1,2} and {3,4}, beside the layer ``image``; returns the labels."""
    from segmentation.datasets import Datasets
    from segmentation.graph import ingest_dataset

    labels = slab_labels(dtype)
    seg = write_volume(directory / "seg", labels, layer_type="segmentation", encoding="compressed_segmentation", mips=2)
    Datasets(database_url).add("cg", image=image, segmentation=seg)
    ingest_dataset(database_url, "cg", agglomeration=[[1, 2], [3, 4]], progress=False)
    return labels


CG_RESOLUTION = np.array([8, 8, 40])


CG_SV = [int(s) for s in (np.arange(1, 5, dtype=np.uint64) | np.uint64(1 << 56))]


def cg_point_nm(label: int) -> list[float]:
    """A point (nm) inside plain label ``label`` of the `cg` volume."""
    x = (label - 1) * 8 + 4
    return [x * 8 + 4, 16 * 8 + 4, 4 * 40 + 20]


def cg_site(settings, image: str, directory, dtype=np.uint32):
    """The app on ``settings`` serving dataset ``cg`` (:func:`add_cg_dataset`, uint32 labels as labs
    store them), with ``app.tokens``: a proofreader's on it and a site admin's ("root")."""
    from segmentation.access import Accounts
    from server import create_app

    app = create_app(settings)
    add_cg_dataset(settings.database_url, image, directory, dtype=dtype)
    accounts = Accounts(settings.database_url)
    accounts.add_user("root", site_admin=True, by="tests")
    app.tokens = {
        "proofreader": proofreader_token(settings.database_url, "cg"),
        "root": accounts.create_token("root", by="tests")[1],
    }
    return app


def proofreader_token(database_url: str, dataset: str, user: str = "tester") -> str:
    """A token of ``user`` (made if missing) with the proofreader role on ``dataset``."""
    from segmentation.access import Accounts

    return Accounts(database_url).role_token(user, dataset, "proofreader", by="tests")


def call(
    url, body: bytes | None = None, method: str | None = None, token: str | None = None, headers: dict | None = None
) -> tuple[int, bytes]:
    """(status, body) of one request to a live test server, error statuses included (POST when a body is given).

    ``token`` is sent as ``Authorization: Bearer <token>``.
    """
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url, data=body, method=method or ("POST" if body is not None else "GET"), headers=headers
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def without_request_id(answer):
    """An error answer (a dict, or JSON bytes) without its request id: each request has its own."""
    if isinstance(answer, dict):
        return {key: value for key, value in answer.items() if key != "request_id"}
    try:
        document = json.loads(answer)
    except ValueError:
        return answer
    return json.dumps(without_request_id(document) if isinstance(document, dict) else document).encode()


WIRED_SHAPE = (64, 48, 16)
WIRED_BLOCK = 8


def wired_labels(dtype=np.uint32) -> np.ndarray:
    """Supervoxels as 8-voxel blocks of a 64x48x16 volume (8 x 6 x 2 blocks, labels 1-96), the top
    four z-planes background; neurons are the rows of blocks along x (12 neurons of 8 supervoxels)."""
    nx, ny, nz = (s // WIRED_BLOCK for s in WIRED_SHAPE)
    labels = np.zeros(WIRED_SHAPE, dtype=dtype)
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                block = np.s_[
                    i * WIRED_BLOCK : (i + 1) * WIRED_BLOCK,
                    j * WIRED_BLOCK : (j + 1) * WIRED_BLOCK,
                    k * WIRED_BLOCK : (k + 1) * WIRED_BLOCK,
                ]
                labels[block] = 1 + i + nx * (j + ny * k)
    labels[:, :, 12:] = 0
    return labels


def wired_bodies(labels: np.ndarray) -> list[list[int]]:
    """The 12 neurons of :func:`wired_labels` (each row of blocks along x), as merged label pairs."""
    nx = WIRED_SHAPE[0] // WIRED_BLOCK
    rows = (int(labels.max()) + nx - 1) // nx
    return [[1 + i + nx * row, 2 + i + nx * row] for row in range(rows) for i in range(nx - 1)]


def add_wired_dataset(database_url: str, image: str, directory, name: str = "wired", dtype=np.uint32, **layer):
    """Register and ingest dataset ``name`` of :func:`wired_labels` (compressed_segmentation, odd 13x11x5
    chunks unless ``layer`` says otherwise); returns the labels."""
    from segmentation.datasets import Datasets
    from segmentation.graph import ingest_dataset

    labels = wired_labels(dtype)
    options = {"encoding": "compressed_segmentation", "chunk": (13, 11, 5), "mips": 1, **layer}
    seg = write_volume(directory / f"{name}-seg", labels, layer_type="segmentation", **options)
    Datasets(database_url).add(name, image=image, segmentation=seg)
    ingest_dataset(database_url, name, agglomeration=wired_bodies(labels), progress=False)
    return labels


def random_synapses(labels: np.ndarray, count: int, rng) -> dict:
    """``count`` synapses between random voxels inside supervoxels (a few posts on background),
    as CAVE's split columns, with sizes (some missing)."""
    inside = np.argwhere(labels > 0)
    background = np.argwhere(labels == 0)
    pre = inside[rng.integers(0, len(inside), count)]
    post = inside[rng.integers(0, len(inside), count)]
    post[: max(1, count // 20)] = background[rng.integers(0, len(background), max(1, count // 20))]
    size = rng.integers(10, 500, count).astype(float)
    size[::7] = np.nan
    columns = {"size": size}
    for name, points in (("pre_pt_position", pre), ("post_pt_position", post)):
        for axis, suffix in enumerate("xyz"):
            columns[f"{name}_{suffix}"] = points[:, axis]
    return columns


def synapse_csv(columns: dict) -> bytes:
    """CAVE-style CSV text of :func:`random_synapses` columns (empty where a size is missing)."""
    names = list(columns)
    lines = [",".join(names)]
    for values in zip(*(columns[n] for n in names)):
        lines.append(
            ",".join(
                "" if isinstance(v, float) and v != v else str(int(v)) if float(v).is_integer() else str(v)
                for v in values
            )
        )
    return ("\n".join(lines) + "\n").encode()


@contextmanager
def wired_synapse_server(settings, directory, count: int, seed: int = 11):
    """Dataset ``wired`` (:func:`add_wired_dataset`) with ``count`` random synapses imported over HTTP
    by a dataset admin, served live. The server carries ``labels``, ``columns`` (the synapses, in id
    order from 1), ``settings``, ``admin`` and ``proofreader`` (tokens)."""
    import requests

    from segmentation.access import Accounts
    from server import create_app
    from server.runner import BackgroundServer

    app = create_app(settings)
    image = write_volume(
        directory / "img", np.zeros((64, 48, 16), np.uint8), layer_type="image", encoding="raw", mips=1
    )
    labels = add_wired_dataset(settings.database_url, image, directory)
    columns = random_synapses(labels, count, np.random.default_rng(seed))
    with BackgroundServer(app) as server:
        server.labels, server.columns, server.settings = labels, columns, settings
        server.admin = Accounts(settings.database_url).role_token("boss", "wired", "admin", by="tests")
        server.proofreader = proofreader_token(settings.database_url, "wired")
        answer = requests.post(
            f"{server.url}/api/v1/datasets/wired/synapses/import",
            data=synapse_csv(columns),
            headers={"Authorization": f"Bearer {server.admin}", "Content-Type": "text/csv"},
        )
        assert answer.status_code == 200 and answer.json()["added"] == count, answer.text
        yield server
