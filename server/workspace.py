"""The one object views and commands find axonlink's services through.

``Workspace`` is built once per app by :func:`server.create_app` (and once per command by the
CLI) from the settings, and handed to views by :func:`workspace` — as datasette hands its
``Datasette`` object to every view and PyChunkedGraph has one ``get_cg``. Nothing else in
``server/`` keeps services in ``app.extensions`` or threads database URLs to find them.

What it holds: the settings; the dataset registry; accounts (tokens, roles, visibility); the
state store; graphs (each loaded once, kept in step with the operation log); cell-type tags
(following the tag log); synapses (following the synapse log); the live views of segmentation layers; vocabularies (re-read every few
seconds, so a user's vocabulary file takes effect without a restart). Where a service keeps a
cache, its expiry is stated here. Two workspaces of one database in a process (tests make many
apps) each hold their own graphs; they agree through the operation log.
"""

from __future__ import annotations

import threading
import time
from functools import cached_property

from flask import current_app

from segmentation.config import Settings

VOCABULARY_SECONDS = 10.0  # a vocabulary file edited on disk is seen within this
EXTENSION = "axonlink"


class Workspace:
    def __init__(self, settings: Settings):
        from segmentation.datasets import Datasets

        self.settings = settings
        self.database_url = settings.database_url
        # Datasets keeps each layer's store and info for 10 s (chunk requests skip SQL)
        self.datasets = Datasets(settings.database_url)
        self._vocabularies: dict[str | None, tuple[float, object]] = {}
        self._lock = threading.Lock()

    @cached_property
    def accounts(self):
        """Tokens, grants and visibility (cached per process; changes made anywhere are seen)."""
        from segmentation.access import Accounts

        return Accounts(self.database_url)

    @cached_property
    def states(self):
        """Stored viewer states and share links (immutable states cached per process)."""
        from state_links.store import StateStore

        return StateStore(self.database_url, self.settings.max_state_bytes)

    @cached_property
    def graphs(self):
        """The datasets' graphs, each loaded once and kept in step with the operation log (that a
        dataset has none is remembered for 5 s; an ingest or removal in this process is seen at once)."""
        from segmentation.graph.registry import Graphs

        return Graphs(self.database_url)

    @cached_property
    def my_links(self):
        """Each signed-in user's own list of links, with their names for them (no cache: SQL each time)."""
        from state_links.my_links import MyLinks

        return MyLinks(self.database_url)

    @cached_property
    def aliases(self):
        """Named aliases (``/l/<name>``) and where each pointed (no cache: a re-pointing is seen at once)."""
        from state_links.aliases import Aliases

        return Aliases(self.database_url)

    @cached_property
    def tags(self):
        """Cell-type tags, kept in step with the tag log like graphs with the operation log."""
        from segmentation.celltypes.tags import CellTags

        return CellTags(self.database_url, self.graphs)

    @cached_property
    def synapses(self):
        """Synapse tables, kept in step with synapse writes by change number (asked of SQL at most
        every 0.5 s per dataset); each machine keeps memory-mapped snapshots under ``<home>/synapses``."""
        from segmentation.connectivity import Synapses
        from segmentation.connectivity.synapses import FOLDER

        return Synapses(self.database_url, self.graphs, self.settings.home / FOLDER)

    @cached_property
    def live_views(self):
        """One live view per supervoxel layer (its chunk cache: AXONLINK_LIVE_CACHE_CHUNKS chunks; "now"
        chunks shared with this machine's other server processes under ``<home>/live-chunks``, at most
        AXONLINK_LIVE_SHARED_MB); their hits and misses counted for Prometheus)."""
        from segmentation.live import LiveViews
        from segmentation.live_shared import FOLDER, SharedChunks, configured_bytes

        from . import metrics

        shared = SharedChunks(self.settings.home / FOLDER, configured_bytes())
        return LiveViews(self.graphs, shared, count=metrics.count_cache)

    def dataset(self, name: str):
        """The dataset named ``name`` (DatasetNotFound), as read in the last second: a merge needs it
        for the graph, its points and its coordinates, a mesh fragment for its layer, and each SQL
        read is a few milliseconds (:meth:`segmentation.datasets.Datasets.get_recent`)."""
        return self.datasets.get_recent(name)

    def find_graph(self, dataset: str):
        """The dataset's graph, or None when it has none."""
        return self.graphs.find(dataset)

    def graph(self, dataset: str):
        """The dataset's graph; DatasetNotFound for an unknown dataset, NoSegmentation (409) for an
        image-only one, GraphNotIngested without a graph."""
        from segmentation.graph import GraphNotIngested

        self.dataset(dataset).segmentation_layer("an image-only dataset has no graph")
        try:
            return self.graphs.open(dataset)
        except LookupError as error:
            raise GraphNotIngested(str(error)) from None

    def meshes(self, dataset: str, layer_url: str):
        """The dataset's built-in meshes (:class:`segmentation.meshing.DatasetMeshes`; its manifests
        answer None until ``axonlink mesh`` has run)."""
        from segmentation.meshing import DatasetMeshes

        return DatasetMeshes.of(self.settings.home, dataset, layer_url)

    def live_view(self, dataset: str, layer, store):
        """The live view of a supervoxel layer of a dataset with a graph (None: served as stored)."""
        return self.live_views.view(dataset, layer, store) if layer.supervoxels else None

    def live_view_in_memory(self, dataset: str, layer, store):
        """(known, :meth:`live_view`) without loading a graph or building a view (known False: a thread must)."""
        return self.live_views.view_in_memory(dataset, layer, store) if layer.supervoxels else (True, None)

    def vocabulary(self, dataset: str | None):
        """The dataset's vocabulary: its base (mouse cortex, fly …) and the user's files under the home."""
        from segmentation.celltypes.vocabulary import Vocabulary
        from segmentation.datasets import DatasetNotFound

        found = self._vocabularies.get(dataset)
        if found is None or time.monotonic() - found[0] > VOCABULARY_SECONDS:
            try:
                base = self.dataset(dataset).vocabulary if dataset else None
            except DatasetNotFound:
                base = None
            found = (time.monotonic(), Vocabulary.for_dataset(self.settings.home, dataset, base=base))
            with self._lock:
                self._vocabularies[dataset] = found
        return found[1]


def install(app, settings: Settings) -> Workspace:
    app.extensions[EXTENSION] = found = Workspace(settings)
    return found


def workspace() -> Workspace:
    """The workspace of the app serving this request."""
    return current_app.extensions[EXTENSION]
