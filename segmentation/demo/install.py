"""Install the demo into an axonlink home: build its volumes, register dataset ``demo``, ingest its
graph (with deliberate false merges to proofread), tag its neurons, give it synapses where neurons
touch and keep a proofreader's token.

``axonlink demo`` calls :func:`ensure_demo`; so do the tests and benchmarks that need the demo.
"""

from __future__ import annotations

import json
from datetime import UTC

DEMO_NAME = "demo"
DEMO_METADATA = {
    "description": (
        "Synthetic EM-like volume (512x512x128 voxels at 8x8x40 nm) with 48 branching neurites, "
        "each over-segmented into several supervoxels along its length. Built by `axonlink demo`."
    ),
    "license": "CC0-1.0",
    "citation": "axonlink demo dataset (synthetic; generated deterministically, seed 0)",
}


def ensure_demo(settings, progress: bool = True):
    """Build the demo volumes if missing, register them as dataset ``demo`` and ingest its graph.

    The graph starts from the supervoxels with a few deliberate false merges
    (listed in ``ground_truth.json``), ready to be proofread; the neurons are tagged and joined
    by synapses at their contacts (each added once).
    """
    from .. import db
    from ..datasets import Datasets
    from ..graph import ingest_dataset
    from ..graph.ingest import has_graph
    from ..meshes import build_for_dataset
    from .build import build_demo, demo_is_built

    db.upgrade(settings.database_url)
    registry = Datasets(settings.database_url)
    path = settings.demo_dir
    if not demo_is_built(path):
        if progress:
            print(f"building the demo dataset in {path} ...", flush=True)
        build_demo(path, progress=progress)
    if not registry.exists(DEMO_NAME):
        registry.add(DEMO_NAME, **demo_layers(path), **DEMO_METADATA)
    truth = json.loads((path / "ground_truth.json").read_text())
    if not has_graph(settings.database_url, DEMO_NAME):
        ingest_dataset(settings.database_url, DEMO_NAME, agglomeration=truth["false_merges"], progress=progress)
    build_for_dataset(settings.database_url, settings.home, DEMO_NAME)  # 3D for the graphene source
    _tag_demo(settings, registry.get(DEMO_NAME), truth)
    _synapse_demo(settings, registry.get(DEMO_NAME), truth)
    return registry.get(DEMO_NAME)


def demo_layers(path) -> dict:
    """The layers of the demo volumes built under ``path``, as :meth:`Datasets.add` takes them."""
    return {
        "image": str(path / "image"),
        "segmentation": str(path / "segmentation"),
        "supervoxel_layers": {"segmentation_sharded": str(path / "segmentation_sharded")},
    }


def _tag_demo(settings, dataset, truth) -> None:
    """Give the demo its cell-type tags, once."""
    from ..celltypes.tags import CellTags
    from ..celltypes.vocabulary import Vocabulary
    from .tags import demo_tag_rows

    tags = CellTags(settings.database_url)
    if tags.of_dataset(DEMO_NAME, include_retracted=True):
        return
    tags.add_many(
        dataset,
        demo_tag_rows(truth, dataset),
        "demo",
        Vocabulary.for_dataset(settings.home, DEMO_NAME, base=dataset.vocabulary),
    )


def _synapse_demo(settings, dataset, truth) -> None:
    """Give the demo its synapses (:mod:`.synapses`), once: none are added to a synapse table that
    has ever had a row (even if all were removed since)."""
    from ..connectivity import Synapses
    from ..connectivity.synapses import FOLDER
    from ..graph.registry import Graphs
    from .synapses import demo_incoming

    synapses = Synapses(settings.database_url, Graphs(settings.database_url), settings.home / FOLDER)
    if synapses.has_table(DEMO_NAME):
        return
    layer = dataset.segmentation_layer("the demo has a segmentation")
    synapses.add(dataset, demo_incoming(layer.url, truth), "demo", origin="demo")


DEMO_PROOFREADER = "proofreader"
DEMO_TOKEN_FILE = "demo-token"  # under the home, readable by its owner only


def demo_proofreader_token(settings) -> str:
    """The demo proofreader's token: the one kept in ``<home>/demo-token`` while it is valid for at
    least another week, else a new 30-day one (kept there in its place). Minting a token on every
    start would leave a trail of live tokens behind."""
    import os
    from datetime import datetime, timedelta

    from ..access import Accounts, InvalidToken

    accounts, path = Accounts(settings.database_url), settings.home / DEMO_TOKEN_FILE
    now = datetime.now(UTC)
    try:
        kept = path.read_text().strip()
        principal = accounts.authenticate(kept)
        if (
            principal.name == DEMO_PROOFREADER
            and principal.grants.get(DEMO_NAME) == "proofreader"
            and (principal.token_expires_at is None or principal.token_expires_at > now + timedelta(days=7))
        ):
            return kept
    except (OSError, InvalidToken):
        pass
    token = accounts.role_token(
        DEMO_PROOFREADER,
        DEMO_NAME,
        "proofreader",
        expires_at=now + timedelta(days=30),
        label="axonlink demo",
        by="demo",
    )
    settings.home.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(token + "\n")
    os.chmod(path, 0o600)
    return token
