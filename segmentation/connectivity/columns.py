"""Synapses of one dataset as numpy columns, and their snapshots on disk.

A query over millions of synapses ("who does this neuron talk to", "type by type") must not walk
rows: every process holds a dataset's synapses as columns. The columns of the rows up to some
change are written once per machine as ``.npy`` files (a *snapshot*, :func:`save`) and memory-
mapped by every server process (:func:`load`), so four workers share one copy in the page cache
instead of each reading ten million rows from SQL and holding them. SQL stays the truth: a
snapshot is a cache named by the dataset's id, its creation time, the graph it was bound to and
the change it reflects, rebuilt from SQL wherever it is missing.

Each snapshot also keeps the synapses' supervoxels as *graph positions* (dense indices of the
graph named in its name: positions never change while a graph lives; a re-ingested graph gets a
new snapshot) and both orders by supervoxel, so a neuron's synapses are found by binary search.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

MISSING_XYZ = np.iinfo(np.int32).min  # no centre point given
NOT_DELETED = np.inf
FORMAT = 2  # 2: the sorted positions kept too (each process mapped them, not sorted them again)
_ORDERS = ("by_pre", "by_post", "sorted_pre", "sorted_post")


@dataclass
class Columns:
    """One row per synapse, in id order within each write (not necessarily sorted across writes)."""

    ids: np.ndarray  # int64, the synapse's id in its dataset
    pre_sv: np.ndarray  # uint64 (0: the pre point is on background)
    post_sv: np.ndarray  # uint64
    pre_xyz: np.ndarray  # int32 (N, 3) voxels
    post_xyz: np.ndarray  # int32 (N, 3)
    ctr_xyz: np.ndarray  # int32 (N, 3), MISSING_XYZ where none was given
    size: np.ndarray  # float32, NaN where none was given
    created: np.ndarray  # float64 Unix seconds
    deleted: np.ndarray  # float64 Unix seconds, NOT_DELETED while in force
    pre_pos: np.ndarray  # int64 graph positions of pre_sv (-1: background)
    post_pos: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> Columns:
        return cls.from_arrays({})

    @classmethod
    def from_arrays(cls, arrays: dict) -> Columns:
        """Columns from arrays by name (missing ones empty), each cast to its dtype."""
        out = {}
        n = len(arrays.get("ids", ()))
        for field in fields(cls):
            dtype, shape = _SPEC[field.name]
            value = arrays.get(field.name)
            if value is None:
                value = (
                    np.full((n, *shape), _FILL[field.name], dtype=dtype)
                    if field.name in _FILL
                    else np.zeros((n, *shape), dtype=dtype)
                )
            out[field.name] = np.asarray(value, dtype=dtype).reshape((-1, *shape))
        return cls(**out)

    def take(self, positions) -> Columns:
        return Columns(**{f.name: getattr(self, f.name)[positions] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Columns]) -> Columns:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Columns.empty()
        if len(parts) == 1:
            return parts[0]
        return Columns(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Columns)})

    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self))


_SPEC = {
    "ids": (np.int64, ()),
    "pre_sv": (np.uint64, ()),
    "post_sv": (np.uint64, ()),
    "pre_xyz": (np.int32, (3,)),
    "post_xyz": (np.int32, (3,)),
    "ctr_xyz": (np.int32, (3,)),
    "size": (np.float32, ()),
    "created": (np.float64, ()),
    "deleted": (np.float64, ()),
    "pre_pos": (np.int64, ()),
    "post_pos": (np.int64, ()),
}
_FILL = {"ctr_xyz": MISSING_XYZ, "size": np.nan, "deleted": NOT_DELETED, "pre_pos": -1, "post_pos": -1}


@dataclass(frozen=True)
class SnapshotKey:
    """What a snapshot is of: a dataset (id and creation: a re-added name is another dataset), the
    graph its positions index (ingest time), and the last change it holds."""

    dataset_id: int
    dataset_created: float
    graph_created: float
    seq: int

    @property
    def family(self) -> str:
        return f"{self.dataset_id}-{int(self.dataset_created * 1e6)}-{int(self.graph_created * 1e6)}"

    @property
    def folder(self) -> str:
        return f"{self.family}-{self.seq:012d}"


def save(root: Path, key: SnapshotKey, columns: Columns) -> Path:
    """Write ``columns`` with both supervoxel orders as the snapshot ``key`` under ``root``, whole
    or not at all (a temporary folder renamed); older snapshots of the same family are removed."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / key.folder
    if final.exists():
        if _whole(final):
            return final
        shutil.rmtree(final, ignore_errors=True)  # an older format, or damaged: written again
    staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=root))
    try:
        for field in fields(Columns):
            np.save(staging / f"{field.name}.npy", getattr(columns, field.name))
        for side in ("pre", "post"):
            positions = getattr(columns, f"{side}_pos")
            order = np.argsort(positions, kind="stable").astype(np.int64)
            np.save(staging / f"by_{side}.npy", order)
            np.save(staging / f"sorted_{side}.npy", positions[order])
        (staging / "meta.json").write_text(json.dumps({"format": FORMAT, "rows": len(columns), "seq": key.seq}))
        os.replace(staging, final)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not final.exists():
            raise
    for older in root.glob(f"{key.family}-*"):
        if older.name < final.name:
            shutil.rmtree(older, ignore_errors=True)
    return final


def newest(root: Path, key: SnapshotKey) -> SnapshotKey | None:
    """The newest whole snapshot of ``key``'s family holding no change after ``key.seq``."""
    best = None
    for folder in root.glob(f"{key.family}-*"):
        try:
            seq = int(folder.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if seq <= key.seq and _whole(folder) and (best is None or seq > best):
            best = seq
    if best is None:
        return None
    return SnapshotKey(key.dataset_id, key.dataset_created, key.graph_created, best)


def _whole(folder: Path) -> bool:
    """Whether ``folder`` is a finished snapshot of this format (an older format is made again)."""
    try:
        return json.loads((folder / "meta.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def load(root: Path, key: SnapshotKey) -> tuple[Columns, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(columns, order by pre position, order by post position, pre and post positions in those
    orders), memory-mapped; None when the snapshot is missing or not whole (every file must hold
    the rows its meta names)."""
    folder = root / key.folder
    try:
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {f.name: np.load(folder / f"{f.name}.npy", mmap_mode="r") for f in fields(Columns)}
        orders = [np.load(folder / f"{name}.npy", mmap_mode="r") for name in _ORDERS]
    except (OSError, ValueError):
        return None
    rows = meta.get("rows")
    if meta.get("format") != FORMAT or any(len(a) != rows for a in (*arrays.values(), *orders)):
        return None
    for name, array in arrays.items():
        dtype, shape = _SPEC[name]
        if array.dtype != dtype or array.shape[1:] != shape:
            return None
    return (Columns(**arrays), *orders)
