"""The dataset registry: which volumes axonlink serves, with their metadata.

``Datasets`` is the facade the CLI, the server and the tests use; it hides the
SQL tables and the reading of each layer's precomputed ``info``.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from .access.accounts import clear_with_access, forget_cached_access
from .chunk_grid import LayerKeys
from .db import engine_for
from .errors import Conflict, Invalid, NotFound
from .models import DatasetRow, LayerRow
from .storage import CorruptStoredData, LayerStore, normalize_layer_url, open_layer_store, same_place

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
LAYER_KINDS = ("image", "segmentation")


class DatasetError(Invalid):
    """A dataset request that cannot be satisfied (bad name, unreadable layer...)."""


class DatasetNotFound(NotFound):
    pass


class NoSegmentation(Conflict):
    """The dataset is image-only: what was asked needs its segmentation (a graph, neurons, meshes, tags)."""

    def __init__(self, dataset: str, why: str = ""):
        super().__init__(f"dataset {dataset!r} has no segmentation layer" + (f": {why}" if why else ""))


GRAPH_LAYER = "segmentation"  # the layer whose labels a dataset's graph is built from


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str
    url: str
    supervoxels: bool = False  # its labels are the graph's supervoxels: served through the graph


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    license: str
    citation: str
    voxel_resolution: list[float]
    volume_size: list[int]
    voxel_offset: list[int]
    created_at: str
    layers: tuple[Layer, ...] = field(default_factory=tuple)
    public: bool = True
    vocabulary: str | None = None  # the vocabulary its cell types start from (None: the default)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise DatasetNotFound(f"dataset {self.name!r} has no layer {name!r}")

    def first_layer(self, kind: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.kind == kind), None)

    @property
    def has_segmentation(self) -> bool:
        """Whether it has the segmentation a graph is built from (an image-only dataset has not)."""
        return any(layer.name == GRAPH_LAYER for layer in self.layers)

    def segmentation_layer(self, why: str = "") -> Layer:
        """The layer its graph is built from; :class:`NoSegmentation` (409, ``why`` added) for an
        image-only dataset."""
        for layer in self.layers:
            if layer.name == GRAPH_LAYER:
                return layer
        raise NoSegmentation(self.name, why)

    @property
    def center_voxel(self) -> list[float]:
        return [o + s / 2 for o, s in zip(self.voxel_offset, self.volume_size)]

    def to_json(self, served_at: str | None = None, storage: bool = True) -> dict:
        """The dataset as JSON. ``served_at`` (a server's base URL): each layer's ``source`` is the URL
        it is served at there; ``storage`` adds where it is stored (paths, buckets: for admins only)."""
        layers = []
        for layer in self.layers:
            entry = {"name": layer.name, "type": layer.kind, "supervoxels": layer.supervoxels}
            if served_at is not None:
                entry["source"] = f"precomputed://{served_at}/data/{self.name}/{layer.name}"
            if storage:
                entry["storage" if served_at is not None else "source"] = layer.url
            layers.append(entry)
        return {
            "name": self.name,
            "description": self.description,
            "license": self.license,
            "citation": self.citation,
            "voxel_resolution": self.voxel_resolution,
            "volume_size": self.volume_size,
            "voxel_offset": self.voxel_offset,
            "created": self.created_at,
            "public": self.public,
            "vocabulary": self.vocabulary or "default",
            "layers": layers,
        }


def read_info(url: str) -> dict:
    """Read and sanity-check a layer's precomputed ``info``; when there is none, say why in one line: an
    unknown URL scheme, a server that refuses or a host that does not resolve, no such bucket or path,
    no permission, or a volume of another format (which ``axonlink import`` converts)."""
    problem = _unreachable(url)
    if problem:
        raise DatasetError(problem)
    try:
        obj = open_layer_store(url).get("info")
    except Exception as error:  # any storage backend failure
        from .importing.reachability import explain

        raise DatasetError(f"cannot read {url}/info: {explain(url, error)}") from error
    if obj is None:
        raise DatasetError(_why_no_info(url))
    try:
        info = json.loads(obj.decoded())
        scale = info["scales"][0]
        _ = scale["resolution"], scale["size"], info["data_type"]
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise DatasetError(f"{url}/info is not a precomputed volume info: {error}") from error
    return info


_OTHER_FORMATS = {
    "npy": "a .npy file",
    "hdf5": "an HDF5 file",
    "tiff": "a TIFF file",
    "zarr": "a Zarr volume",
    "n5": "an N5 volume",
}


def _unreachable(url: str) -> str | None:
    """What is wrong before any storage is asked: the URL's scheme, a local file (no layer is one file), or
    an HTTP(S) server that refuses or does not resolve (CloudFiles retries those for many seconds)."""
    from .importing import reachability, sources

    scheme = reachability.scheme_of(url)
    if scheme is not None and scheme not in reachability.SCHEMES:
        from cloudfiles.paths import ALLOWED_PROTOCOLS  # CloudFiles reads a few more (mem://, matrix://)

        if scheme not in ALLOWED_PROTOCOLS:
            return reachability.message(reachability.UNKNOWN_SCHEME, url, scheme)
    path = sources.local_path(url)
    if path is not None:
        if path.is_file():
            try:
                found = sources.detect_format(str(path))
            except sources.SourceError:
                found = None
            if found in _OTHER_FORMATS:
                return _import_instead(url, _OTHER_FORMATS[found], str(path))
            return (
                f"{url} is a file, not a precomputed volume folder ({sources.file_kind(path)}); give the folder "
                f"that holds the layer's info file"
            )
        return None
    if reachability.bucket_exists(url) is False:  # said now: CloudFiles retries it for many seconds
        return reachability.message(reachability.NO_BUCKET, url)
    return reachability.probe(url)


def _why_no_info(url: str) -> str:
    """Why ``url`` has no info file: it holds another format, it is missing, or storage refused."""
    from .importing import reachability, sources

    missing = f"no precomputed volume at {url} (missing info file)"
    path = sources.local_path(url)
    if path is not None:
        if not path.exists():
            return f"{missing}: {path} does not exist; check the path"
        try:
            found = sources.detect_format(str(path))
        except sources.SourceError:
            found = None
        if found == "tiff":
            return _import_instead(url, "a folder of TIFF or PNG slices", str(path))
        if found in _OTHER_FORMATS:
            return _import_instead(url, _OTHER_FORMATS[found], str(path))
        return f"{missing}: give the folder that holds the layer's info file"
    found = sources.detect_format(url)  # by the name's suffix: x.zarr, y.n5, z.h5
    if found in _OTHER_FORMATS:
        return _import_instead(url, _OTHER_FORMATS[found], url)
    error = _storage_error(url)
    if error is not None and reachability.classify(error) != reachability.NOT_FOUND:
        return reachability.explain(f"{url}/info", error)
    return f"{missing}: check the URL"


def _import_instead(url: str, kind: str, source: str) -> str:
    return (
        f"{url} is {kind}, not a precomputed volume: import it with axonlink import NAME --image "
        f"{shlex.quote(source)} … (add-dataset registers precomputed layers as they are)"
    )


def _storage_error(url: str) -> BaseException | None:
    """The error CloudFiles met reading ``url``'s info (the layer store keeps only that it found nothing)."""
    from .storage import cloud_files

    try:
        return cloud_files(url).get(["info"], raw=True, raise_errors=False)[0]["error"]
    except Exception as error:  # its own failure tells as much
        return error


class _RecentDatasets(dict):
    """Datasets read in the last :data:`RECENT_SECONDS`, by (database, name): hot routes (mesh
    manifests and fragments, edits) need a dataset's layers on every request, and each SQL read
    is about 2 ms. Cleared whenever a dataset or access changes in this process; other processes
    see a change within the TTL, as they see visibility changes."""

    __hash__ = object.__hash__  # (kept in a weak set of caches to clear)


RECENT_SECONDS = 1.0
_RECENT_MAX = 4096
_recent = _RecentDatasets()
clear_with_access(_recent)


class Datasets:
    """Register, list and look up datasets; caches open layer stores for serving."""

    _STORE_TTL_SECONDS = 10.0

    def __init__(self, database_url: str):
        self.database_url = database_url
        self.engine = engine_for(database_url)
        self._stores: dict[tuple[str, str], tuple[float, Layer, LayerStore, LayerKeys]] = {}
        self._lock = threading.Lock()

    def add(
        self,
        name: str,
        *,
        segmentation: str | None = None,
        image: str | None = None,
        description: str = "",
        license: str = "",
        citation: str = "",
        extra_layers: dict[str, str] | None = None,
        supervoxel_layers: dict[str, str] | None = None,
        public: bool = True,
        vocabulary: str | None = None,
    ) -> Dataset:
        """Register a dataset. ``segmentation`` holds the supervoxels a graph is built from;
        ``supervoxel_layers`` are other layouts of the same labels (e.g. a sharded copy), served
        through the graph like it; ``extra_layers`` (a ground truth, a second channel …) are
        served as stored. Without ``segmentation`` the dataset is image-only: its ``image`` (and
        extra layers) are served and viewed; it has no graph, neurons, meshes or tags."""
        if not NAME_PATTERN.match(name or ""):
            raise DatasetError("dataset names are 1-64 letters, digits, '_' or '-', starting with a letter or digit")
        if vocabulary is not None:
            from .celltypes.vocabulary import Vocabulary

            Vocabulary.base(vocabulary)  # a vocabulary that exists, or a clear error
        if segmentation is None and image is None:
            raise DatasetError("a dataset needs an image or a segmentation layer (or both)")
        if segmentation is None and supervoxel_layers:
            raise DatasetError(
                "supervoxel layers are other layouts of the segmentation's labels: register the segmentation too"
            )
        layers = {GRAPH_LAYER: ("segmentation", segmentation, True)} if segmentation is not None else {}
        if image is not None:
            layers["image"] = ("image", image, False)
        for supervoxels, given in ((True, supervoxel_layers), (False, extra_layers)):
            for layer_name, url in (given or {}).items():
                if not NAME_PATTERN.match(layer_name) or layer_name in layers or layer_name == GRAPH_LAYER:
                    raise DatasetError(f"bad or repeated layer name {layer_name!r}")
                layers[layer_name] = ("segmentation" if supervoxels else None, url, supervoxels)
        rows, infos = [], {}
        for layer_name, (kind, url, supervoxels) in layers.items():
            url = normalize_layer_url(url)
            info = read_info(url)
            if kind is None:
                kind = "segmentation" if info.get("type") == "segmentation" else "image"
            elif kind == "segmentation" and info.get("type") not in (None, "segmentation"):
                raise DatasetError(f"layer {layer_name!r} at {url} is an {info.get('type')} layer, not a segmentation")
            infos[layer_name] = info
            rows.append(LayerRow(name=layer_name, kind=kind, url=url, supervoxels=supervoxels))
        rows.sort(key=lambda row: (row.name != "image", row.name != GRAPH_LAYER))  # image, segmentation, rest
        # the dataset's voxels are the segmentation's; an image-only dataset's are its image's
        scale = infos[GRAPH_LAYER if segmentation is not None else "image"]["scales"][0]
        row = DatasetRow(
            name=name,
            description=description,
            license=license,
            citation=citation,
            voxel_resolution=[float(r) for r in scale["resolution"]],
            volume_size=[int(s) for s in scale["size"]],
            voxel_offset=[int(o) for o in scale.get("voxel_offset", [0, 0, 0])],
            layers=rows,
            public=public,
            vocabulary=vocabulary,
        )
        with Session(self.engine) as session:
            if session.scalar(sa.select(DatasetRow.id).where(DatasetRow.name == name)) is not None:
                raise DatasetError(f"dataset {name!r} already exists")
            session.add(row)
            session.commit()
            forget_cached_access()
            return _to_dataset(row)

    def list(self) -> list[Dataset]:
        with Session(self.engine) as session:
            rows = session.scalars(
                sa.select(DatasetRow).options(selectinload(DatasetRow.layers)).order_by(DatasetRow.id)
            )
            return [_to_dataset(row) for row in rows]

    def get(self, name: str) -> Dataset:
        with Session(self.engine) as session:
            row = session.scalar(
                sa.select(DatasetRow).options(selectinload(DatasetRow.layers)).where(DatasetRow.name == name)
            )
            if row is None:
                raise DatasetNotFound(f"no dataset named {name!r}")
            return _to_dataset(row)

    def get_recent(self, name: str) -> Dataset:
        """:meth:`get`, answered from the last second's reads (see :class:`_RecentDatasets`)."""
        key, now = (self.database_url, name), time.monotonic()
        found = _recent.get(key)
        if found is not None and now - found[0] < RECENT_SECONDS:
            return found[1]
        dataset = self.get(name)  # an unknown name is asked again each time (and raises)
        if len(_recent) >= _RECENT_MAX:
            _recent.clear()
        _recent[key] = (now, dataset)
        return dataset

    EDITABLE = ("description", "license", "citation")

    def update(self, name: str, changes: dict, *, by: str, origin: str = "") -> Dataset:
        """Change a dataset's description, licence or citation (audited); other fields are refused."""
        from .access.audit import record

        unknown = set(changes) - set(self.EDITABLE)
        if unknown:
            raise DatasetError(f"only {', '.join(self.EDITABLE)} can be changed here, not {', '.join(sorted(unknown))}")
        for key, value in changes.items():
            if not isinstance(value, str) or len(value) > 10_000:
                raise DatasetError(f"{key} must be text of at most 10,000 characters")
        with Session(self.engine) as session, session.begin():
            row = session.scalar(sa.select(DatasetRow).where(DatasetRow.name == name))
            if row is None:
                raise DatasetNotFound(f"no dataset named {name!r}")
            for key, value in changes.items():
                setattr(row, key, value)
            record(
                session.connection(),
                user=by,
                action="dataset.update",
                dataset=name,
                detail={"changed": sorted(changes)},
                origin=origin,
            )
        forget_cached_access()  # (and this process's recent dataset reads)
        return self.get(name)

    def remove(self, name: str, *, by: str, origin: str = "") -> dict:
        """Remove a dataset and everything bound to it, in one transaction (audited): its graph
        (its base files, operations), cell-type tags (purged in every process's index), synapses, state
        anchors, grants and layers. Its files are not touched. Stored states that name it are tied
        to :data:`REMOVED` instead, a name no dataset can have: they read as missing, and never as
        a later dataset of the same name."""
        from .access.audit import record
        from .celltypes.tags import purge_dataset
        from .connectivity.sql import purge as purge_synapses
        from .graph.registry import forget_everywhere
        from .graph.store import discard_base, open_base
        from .models import GrantRow, GraphEdgeRow, GraphOperationRow, GraphStateRow, GraphSupervoxelRow, StateAnchorRow

        with self.engine.begin() as connection:
            dataset_id = connection.scalar(sa.select(DatasetRow.id).where(DatasetRow.name == name))
            if dataset_id is None:
                raise DatasetNotFound(f"no dataset named {name!r}")
            base_url = connection.scalar(
                sa.select(GraphStateRow.base_url).where(GraphStateRow.dataset_id == dataset_id)
            )
            removed = {"tags": purge_dataset(connection, dataset_id, name)}
            removed["synapses"] = purge_synapses(connection, dataset_id)
            for label, table in (
                ("operations", GraphOperationRow),
                ("edges", GraphEdgeRow),
                ("supervoxels", GraphSupervoxelRow),
                ("graph", GraphStateRow),
                ("grants", GrantRow),
                ("layers", LayerRow),
            ):
                removed[label] = connection.execute(sa.delete(table).where(table.dataset_id == dataset_id)).rowcount
            if base_url is not None:  # the graph's base: its files go once this commits
                base = open_base(base_url)
                removed["supervoxels"] += base.supervoxel_count
                removed["edges"] += base.edge_count
            removed["anchors"] = connection.execute(
                sa.delete(StateAnchorRow).where(StateAnchorRow.dataset == name)
            ).rowcount
            removed["states"] = _retie_to_removed(connection, name)
            connection.execute(sa.delete(DatasetRow).where(DatasetRow.id == dataset_id))
            record(connection, user=by, action="dataset.remove", dataset=name, detail=removed, origin=origin)
        forget_cached_access()
        forget_everywhere(self.database_url, name)
        discard_base(base_url)  # the graph's files (the dataset's own files are not touched)
        with self._lock:
            self._stores = {key: value for key, value in self._stores.items() if key[0] != name}
        return removed

    def exists(self, name: str) -> bool:
        with Session(self.engine) as session:
            return session.scalar(sa.select(DatasetRow.id).where(DatasetRow.name == name)) is not None

    def layer_store_in_memory(self, dataset: str, layer: str) -> tuple[Layer, LayerStore, LayerKeys] | None:
        """:meth:`layer_store` when its cache holds it fresh; None when it would read the database."""
        cached = self._stores.get((dataset, layer))
        if cached is None or time.monotonic() - cached[0] >= self._STORE_TTL_SECONDS:
            return None
        return cached[1], cached[2], cached[3]

    def layer_store(self, dataset: str, layer: str) -> tuple[Layer, LayerStore, LayerKeys]:
        """The store serving ``dataset/layer`` and the files its scales may hold; cached briefly so
        chunk requests skip SQL and the info file."""
        key = (dataset, layer)
        now = time.monotonic()
        cached = self._stores.get(key)
        if cached is not None and now - cached[0] < self._STORE_TTL_SECONDS:
            return cached[1], cached[2], cached[3]
        found = self.get(dataset).layer(layer)
        # the same store object while the layer's URL stays the same: what is built on it (a live
        # view and its chunk cache) lives on past this cache's few seconds
        reuse = cached is not None and cached[1].url == found.url and same_place(cached[2], found.url)
        store = cached[2] if reuse else open_layer_store(found.url)
        info = store.get("info")
        try:
            keys = LayerKeys(json.loads(info.decoded()) if info is not None else {})
        except ValueError as error:
            raise CorruptStoredData("info", f"not JSON: {error}") from None
        with self._lock:
            self._stores[key] = (now, found, store, keys)
        return found, store, keys


REMOVED = "(removed dataset)"  # what states naming a removed dataset are tied to: no dataset has this name


def _retie_to_removed(connection, name: str) -> int:
    from .models import StateDatasetRow

    ties = StateDatasetRow.__table__
    states = connection.scalars(sa.select(ties.c.state_id).where(ties.c.dataset == name)).all()
    connection.execute(sa.delete(ties).where(ties.c.dataset == name))
    already = set(connection.scalars(sa.select(ties.c.state_id).where(ties.c.dataset == REMOVED)).all())
    fresh = [{"state_id": state_id, "dataset": REMOVED} for state_id in states if state_id not in already]
    if fresh:
        connection.execute(sa.insert(ties), fresh)
    return len(states)


def _to_dataset(row: DatasetRow) -> Dataset:
    created = row.created_at
    if created is not None and created.tzinfo is None:  # SQLite keeps no time zone; we store UTC
        created = created.replace(tzinfo=UTC)
    return Dataset(
        name=row.name,
        description=row.description,
        license=row.license,
        citation=row.citation,
        voxel_resolution=list(row.voxel_resolution),
        volume_size=list(row.volume_size),
        voxel_offset=list(row.voxel_offset),
        created_at=created.isoformat() if created else "",
        layers=tuple(Layer(l.name, l.kind, l.url, bool(l.supervoxels)) for l in row.layers),
        public=bool(row.public),
        vocabulary=row.vocabulary,
    )
