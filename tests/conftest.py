"""Shared fixtures: databases (SQLite always, PostgreSQL when it answers), volumes, live servers."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from segmentation.config import Settings, sqlite_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for bench.static_server

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


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database: a SQLite file, or a private schema in PostgreSQL's `test` database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "axonlink.sqlite")
        return
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    from segmentation.db import private_schema

    with private_schema(POSTGRES_URL) as url:
        yield url


NO_RATE_LIMITS = "edit=none;create=none;expensive=none"
# For tests of HTTP behaviour that does not depend on the database (origins, caps, cache headers, parsing):
# ``pytestmark = SQLITE_ONLY`` (or as a decorator) runs them once, on SQLite.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def settings(tmp_path, database_url):
    """Settings of a fresh home and database. Rate limits are off here: tests of other features post
    bursts no client would; tests/test_limits.py sets limits itself."""
    import dataclasses

    return dataclasses.replace(
        Settings.load(home=tmp_path / "home", database_url=database_url), rate_limits=NO_RATE_LIMITS
    )


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
        else tinybrain.downsample_with_averaging(array, (2, 2, 1), num_mips=mips - 1)
    )
    for mip, level in enumerate(levels, start=1):
        CloudVolume(f"file://{path}", mip=mip, compress=compress, progress=False)[:, :, :] = level
    return f"file://{path}"


@pytest.fixture(scope="session")
def small_volumes(tmp_path_factory):
    """A tiny image + segmentation pair (64x48x20 voxels, two mips), gzip-compressed as CloudVolume writes."""
    root = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(7)
    image = rng.integers(0, 255, size=(64, 48, 20), dtype=np.uint8)
    labels = np.zeros((64, 48, 20), dtype=np.uint64)
    labels[:32] = 11
    labels[32:, :24] = 2**56 + 5
    labels[32:, 24:] = 42
    return {
        "image": write_volume(root / "image", image, layer_type="image", encoding="raw"),
        "segmentation": write_volume(
            root / "segmentation", labels, layer_type="segmentation", encoding="compressed_segmentation"
        ),
        "image_array": image,
        "labels_array": labels,
        "root": root,
    }


@pytest.fixture
def app(settings, small_volumes):
    from segmentation.datasets import Datasets
    from server import create_app

    application = create_app(settings)
    Datasets(settings.database_url).add(
        "small",
        image=small_volumes["image"],
        segmentation=small_volumes["segmentation"],
        description="tiny test volume",
        license="CC0-1.0",
        citation="doi:10.0000/test",
    )
    return application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory):
    """The real demo dataset, built once per test session and registered in a SQLite database."""
    from server.cli import ensure_demo

    home = tmp_path_factory.mktemp("demo-home")
    settings = Settings.load(home=home, database_url=sqlite_url(home / "axonlink.sqlite"))
    ensure_demo(settings, progress=False)
    return settings


@pytest.fixture
def fresh_demo(demo_home, tmp_path):
    """The built demo volumes with a database of their own (edits here leave the shared demo alone)."""
    import shutil

    from server.cli import ensure_demo

    home = tmp_path / "home"
    shutil.copytree(demo_home.demo_dir, home / "demo", symlinks=True)
    settings = Settings.load(home=home, database_url=sqlite_url(home / "axonlink.sqlite"))
    ensure_demo(settings, progress=False)
    return settings


@pytest.fixture(scope="session")
def demo_server(demo_home):
    """A live axonlink server on 127.0.0.1 (a free port) serving the demo dataset."""
    from server import create_app
    from server.runner import BackgroundServer

    with BackgroundServer(create_app(demo_home)) as server:
        yield server


CG_RESOLUTION = np.array([8, 8, 40])
CG_SV = [int(s) for s in (np.arange(1, 5, dtype=np.uint64) | np.uint64(1 << 56))]


def cg_point_nm(label: int) -> list[float]:
    """A point (nm) inside plain label ``label`` of the `cg` volume."""
    x = (label - 1) * 8 + 4
    return [x * 8 + 4, 16 * 8 + 4, 4 * 40 + 20]


def proofreader_token(database_url: str, dataset: str, user: str = "tester") -> str:
    """A token of ``user`` (made if missing) with the proofreader role on ``dataset``."""
    from segmentation.access import Accounts

    return Accounts(database_url).role_token(user, dataset, "proofreader", by="tests")


@pytest.fixture
def cg_server(settings, small_volumes, tmp_path, monkeypatch):
    """Dataset `cg`: four slabs of plain labels 1-4 along x, graph agglomerated as {1,2} and {3,4}, served live.

    ``server.token`` is a token of user "tester", proofreader on `cg` (anyone may view: `cg` is public).
    """
    from segmentation.datasets import Datasets
    from segmentation.graph import ingest_dataset
    from server import create_app
    from server.runner import BackgroundServer

    monkeypatch.setenv("HOME", str(tmp_path))  # caveclient writes its caches under ~
    labels = np.zeros((32, 32, 8), dtype=np.uint64)
    for label in range(1, 5):
        labels[(label - 1) * 8 : label * 8] = label
    seg = write_volume(tmp_path / "seg", labels, layer_type="segmentation", encoding="compressed_segmentation", mips=2)
    app = create_app(settings)
    Datasets(settings.database_url).add("cg", image=small_volumes["image"], segmentation=seg)
    ingest_dataset(settings.database_url, "cg", agglomeration=[[1, 2], [3, 4]], progress=False)
    with BackgroundServer(app) as server:
        server.labels = labels
        server.database_url = settings.database_url
        server.token = proofreader_token(settings.database_url, "cg")
        yield server


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
