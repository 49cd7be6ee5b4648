"""The dataset registry, its HTTP API and the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from segmentation import db
from segmentation.datasets import DatasetError, DatasetNotFound, Datasets
from tests.helpers import POSTGRES_URL, postgres_available


def test_api_lists_and_describes_datasets(client, small_volumes):
    listing = client.get("/api/v1/datasets")
    assert listing.status_code == 200
    [dataset] = listing.get_json()["datasets"]
    assert dataset["name"] == "small"
    assert dataset["citation"] == "doi:10.0000/test"
    assert dataset["license"] == "CC0-1.0"
    assert dataset["voxel_resolution"] == [8.0, 8.0, 40.0]
    assert dataset["volume_size"] == [64, 48, 20]
    assert {l["name"]: l["type"] for l in dataset["layers"]} == {"image": "image", "segmentation": "segmentation"}
    one = client.get("/api/v1/datasets/small")
    assert one.get_json() == dataset
    missing = client.get("/api/v1/datasets/absent")
    assert missing.status_code == 404
    assert "absent" in missing.get_json()["message"]


def test_default_state_points_at_served_layers(client):
    state = client.get("/api/v1/datasets/small/state").get_json()
    assert state["position"] == [32.0, 24.0, 10.0]
    assert state["dimensions"]["z"] == [40e-9, "m"]
    sources = {layer["name"]: layer["source"] for layer in state["layers"]}
    assert sources == {
        "image": "precomputed://http://localhost/data/small/image",
        "segmentation": "precomputed://http://localhost/data/small/segmentation",
    }
    assert "emitGrayscale" in state["layers"][0]["shader"]


def test_registry_refuses_bad_input_without_storing_anything(settings, small_volumes):
    db.upgrade(settings.database_url)
    registry = Datasets(settings.database_url)
    with pytest.raises(DatasetError, match="names"):
        registry.add("../evil", image=small_volumes["image"], segmentation=small_volumes["segmentation"])
    with pytest.raises(DatasetError, match="missing info"):
        registry.add("x", image=small_volumes["image"], segmentation="file:///nonexistent/layer")
    assert registry.list() == []
    registry.add("x", image=small_volumes["image"], segmentation=small_volumes["segmentation"])
    with pytest.raises(DatasetError, match="already exists"):
        registry.add("x", image=small_volumes["image"], segmentation=small_volumes["segmentation"])
    assert [d.name for d in registry.list()] == ["x"]
    with pytest.raises(DatasetNotFound):
        registry.get("y")


def test_layer_urls_are_normalized(settings, small_volumes):
    db.upgrade(settings.database_url)
    bare_path = small_volumes["image"][len("file://") :]
    dataset = Datasets(settings.database_url).add(
        "paths", image=bare_path, segmentation="precomputed://" + small_volumes["segmentation"]
    )
    assert dataset.layer("image").url == small_volumes["image"]
    assert dataset.layer("segmentation").url == small_volumes["segmentation"]


def test_migrations_match_the_models(settings):
    """Alembic's autogenerate finds nothing to change: the migrations build exactly the models' schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from segmentation.models import Base

    db.upgrade(settings.database_url)
    db.upgrade(settings.database_url)  # idempotent
    with db.engine_for(settings.database_url).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert db.current_revision(settings.database_url) == db.head_revision() == "0013"


@pytest.mark.skipif(
    postgres_available() is not None,
    reason="the lock is PostgreSQL's (SQLite serializes writers itself); needs PostgreSQL on 127.0.0.1, as CI has",
)
def test_nodes_started_at_once_on_an_empty_postgresql_schema_all_migrate_it_once():
    """Alembic takes no lock: without the migration lock, processes upgrading one schema together
    race to create the same tables and all but one fail (as several nodes started at once would)."""
    from segmentation.db import private_schema

    with private_schema(POSTGRES_URL) as url:
        script = "import sys; from segmentation import db; db.upgrade(sys.argv[1])"
        starts = [
            subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE, text=True) for _ in range(3)
        ]
        failures = [p.stderr.read()[-800:] for p in starts if p.wait(timeout=120) != 0]
        assert failures == []
        assert db.current_revision(url) == db.head_revision()


def run_cli(*args, env_home):
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args, "--home", str(env_home)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_add_dataset_then_list(tmp_path, small_volumes):
    home = tmp_path / "cli-home"
    add_mine = (
        "add-dataset",
        "mine",
        "--image",
        small_volumes["image"],
        "--segmentation",
        small_volumes["segmentation"],
    )
    added = run_cli(*add_mine, "--citation", "doi:10.1/abc", "--license", "CC-BY-4.0", env_home=home)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["citation"] == "doi:10.1/abc"
    listed = run_cli("datasets", env_home=home)
    assert [d["name"] for d in json.loads(listed.stdout)] == ["mine"]
    assert (home / "axonlink.sqlite").exists()
    again = run_cli(*add_mine, env_home=home)
    assert again.returncode == 1 and "already exists" in again.stderr


@pytest.mark.parametrize(
    "command", [[], ["demo"], ["serve"], ["add-dataset"], ["ingest-graph"], ["db", "upgrade"], ["datasets"]]
)
def test_cli_help(command):
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", *command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "usage: axonlink" in result.stdout


def test_openapi_describes_every_route(app):
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    described = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    import re

    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"OPTIONS"}:
            if method == "HEAD" and (path, "GET") in described and (path, "HEAD") not in described:
                continue  # Flask answers HEAD for every GET route
            served.add((path, method))
    assert served == described


def test_datasets_page_shows_citation_and_opens_the_viewer(client):
    from urllib.parse import unquote

    page = client.get("/datasets")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "doi:10.0000/test" in html and "CC0-1.0" in html and "64 × 48 × 20" in html
    link = html.split('href="/#!', 1)[1].split('"', 1)[0]
    state = json.loads(unquote(link.replace("&#34;", '"')))
    assert [layer["name"] for layer in state["layers"]] == ["image", "segmentation"]


def test_a_layer_keeps_its_store_object_while_its_url_stays_the_same(app, settings, small_volumes, monkeypatch):
    """The layer cache re-reads the dataset row and info every few seconds; the store object (and what is
    built on it: a live view with its chunk cache) stays the same unless the layer's URL changed."""
    registry = Datasets(settings.database_url)
    registry.add("kept", image=small_volumes["image"], segmentation=small_volumes["segmentation"])  # (app: the schema)
    _, first, _ = registry.layer_store("kept", "segmentation")
    monkeypatch.setattr(Datasets, "_STORE_TTL_SECONDS", 0.0)  # every call reads again
    _, again, _ = registry.layer_store("kept", "segmentation")
    assert again is first
    _, other, _ = registry.layer_store("kept", "image")
    assert other is not first


def test_a_layer_behind_a_re_pointed_symlink_is_opened_again(app, settings, small_volumes, tmp_path, monkeypatch):
    """A layer URL through a symlink (``current`` -> v1) re-pointed to v2 is read from v2 once the layer
    cache looks again, as before the store object was kept."""
    import shutil

    for version in ("v1", "v2"):
        shutil.copytree(small_volumes["image"].removeprefix("file://"), tmp_path / version)
    (tmp_path / "current").symlink_to(tmp_path / "v1")
    registry = Datasets(settings.database_url)
    registry.add("moving", image=f"file://{tmp_path / 'current'}", segmentation=small_volumes["segmentation"])
    _, first, _ = registry.layer_store("moving", "image")
    monkeypatch.setattr(Datasets, "_STORE_TTL_SECONDS", 0.0)
    assert registry.layer_store("moving", "image")[1] is first
    (tmp_path / "current").unlink()
    (tmp_path / "current").symlink_to(tmp_path / "v2")
    _, second, _ = registry.layer_store("moving", "image")
    assert second is not first and str(second.root) == str(tmp_path / "v2")
