"""Shared fixtures: databases (SQLite always, PostgreSQL when it answers), volumes, live servers."""

from __future__ import annotations

import numpy as np
import pytest

from segmentation.config import Settings, sqlite_url
from tests.helpers import (
    NO_RATE_LIMITS,
    POSTGRES_URL,
    add_cg_dataset,
    postgres_available,
    proofreader_token,
    write_volume,
)


@pytest.fixture(autouse=True)
def graph_store(tmp_path, monkeypatch):
    """Graph bases written by a test go to its own folder (with PostgreSQL nothing else says where)."""
    store = tmp_path / "graph-store"
    monkeypatch.setenv("AXONLINK_GRAPH_STORE", str(store))
    monkeypatch.setenv("AXONLINK_GRAPH_CACHE", str(tmp_path / "graph-cache"))
    monkeypatch.delenv("AXONLINK_HOME", raising=False)  # the CLI sets it in-process: undone after each test
    return store


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (SeaweedFS) for the whole session; see :mod:`tests.object_store`."""
    from tests.object_store import SeaweedS3

    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The S3 server, with its credentials in the environment the way a user sets AWS's."""
    for key, value in s3_server.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return s3_server


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


@pytest.fixture
def settings(tmp_path, database_url):
    """Settings of a fresh home and database. Rate limits are off here: tests of other features post
    bursts no client would; tests/test_limits.py sets limits itself."""
    import dataclasses

    return dataclasses.replace(
        Settings.load(home=tmp_path / "home", database_url=database_url), rate_limits=NO_RATE_LIMITS
    )


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
    from segmentation.demo.install import ensure_demo

    home = tmp_path_factory.mktemp("demo-home")
    settings = Settings.load(home=home, database_url=sqlite_url(home / "axonlink.sqlite"))
    ensure_demo(settings, progress=False)
    return settings


@pytest.fixture
def fresh_demo(demo_home, tmp_path):
    """The built demo volumes with a database of their own (edits here leave the shared demo alone)."""
    import shutil

    from segmentation.demo.install import ensure_demo

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


@pytest.fixture
def cg_server(settings, small_volumes, tmp_path, monkeypatch):
    """Dataset `cg`: four slabs of plain labels 1-4 along x, graph agglomerated as {1,2} and {3,4}, served live.

    ``server.token`` is a token of user "tester", proofreader on `cg` (anyone may view: `cg` is public).
    """
    from server import create_app
    from server.runner import BackgroundServer

    monkeypatch.setenv("HOME", str(tmp_path))  # caveclient writes its caches under ~
    app = create_app(settings)
    labels = add_cg_dataset(settings.database_url, small_volumes["image"], tmp_path)
    with BackgroundServer(app) as server:
        server.labels = labels
        server.database_url = settings.database_url
        server.token = proofreader_token(settings.database_url, "cg")
        yield server


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, headless with WebGL 2 (SwiftShader); skips where either is missing."""
    import os

    from tests.browser import ARGS, CHROMIUM, WEBGL_PROBE

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install playwright)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            webgl = page.evaluate(WEBGL_PROBE)
            page.close()
            if not webgl["ok"]:
                pytest.skip(f"Chromium cannot create a WebGL 2 context: {webgl['message']}")
            yield browser
        finally:
            browser.close()


@pytest.fixture
def tubes(settings, small_volumes, tmp_path):
    """Dataset `tubes` with its graph: neuron a = supervoxels 1-7, neuron b = 11-17 (tests/meshing_helpers.py)."""
    from tests.meshing_helpers import tubes_dataset

    return tubes_dataset(settings, small_volumes, tmp_path)
