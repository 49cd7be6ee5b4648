"""Synapse tables from and to files: CSV and Parquet with the column names CAVE's synapse tables use.

What a lab has is a dump of a CAVE table (``query_table(..., split_positions=True).to_parquet``),
a detector's CSV, or a pandas frame written with positions as ``[x, y, z]`` strings. Each point
is read from ``<name>_position_x/_y/_z`` columns, or one ``<name>_position`` column of lists or
of strings like ``[1 2 3]`` / ``(1, 2, 3)``; ``pre_pt_``/``post_pt_``/``ctr_pt_`` prefixes as CAVE
names them (``pre_``/``post_``/``ctr_`` also accepted). Optional: ``id``, ``size``, and
``pre_pt_supervoxel_id``/``post_pt_supervoxel_id`` (used as given when present, after checking
the graph has them). Root id columns are ignored: roots are worked out from the graph, at any
moment. pyarrow reads and writes both formats (multi-threaded, without a row loop in Python).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import Invalid, TooLarge

POINTS = ("pre", "post", "ctr")
_PREFIXES = {"pre": ("pre_pt_", "pre_"), "post": ("post_pt_", "post_"), "ctr": ("ctr_pt_", "ctr_")}
MAX_REASONS = 1_000  # rejected rows reported one by one (the rest counted)


class SynapseFileError(Invalid):
    """A file that is not a synapse table (unreadable, or without pre and post points): a 400."""


class SynapseTableTooLarge(TooLarge):
    """More rows than one request may add (a 413)."""


@dataclass
class Incoming:
    """Rows read from a file, in file order; ``row`` numbers them from 1 (as a spreadsheet shows)."""

    row: np.ndarray  # int64 row numbers of the rows kept
    pre_xyz: np.ndarray  # int64 (N, 3), dataset voxels
    post_xyz: np.ndarray
    ctr_xyz: np.ndarray | None
    size: np.ndarray  # float32, NaN where absent
    ids: np.ndarray | None  # int64
    pre_sv: np.ndarray | None  # uint64
    post_sv: np.ndarray | None
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (row, reason), the first MAX_REASONS
    rejected_count: int = 0

    def __len__(self) -> int:
        return len(self.row)

    def reject(self, mask: np.ndarray, reason: str) -> None:
        """Drop the rows under ``mask`` (over the rows kept so far), recording why."""
        if not mask.any():
            return
        bad = self.row[mask]
        room = MAX_REASONS - len(self.rejected)
        self.rejected += [(int(r), reason) for r in bad[: max(room, 0)]]
        self.rejected_count += int(mask.sum())
        keep = ~mask
        for name in ("row", "pre_xyz", "post_xyz", "ctr_xyz", "size", "ids", "pre_sv", "post_sv"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[keep])


def read_table(source, fmt: str | None = None, scale=(1.0, 1.0, 1.0), max_rows: int | None = None) -> Incoming:
    """Synapses from ``source`` (a path, or bytes of a body); ``fmt`` "csv"/"parquet" (else by
    extension or by Parquet's magic bytes); positions are multiplied by ``scale`` (the file's
    units over the dataset's voxel size) and floored to voxels. ``max_rows``: refuse a table with
    more rows, read from a Parquet file's footer before any column is (a few compressed bytes can
    claim a billion rows)."""
    table = _arrow_table(source, fmt, max_rows)
    try:
        return _columns_of(table, scale, max_rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, UnicodeDecodeError) as error:
        raise SynapseFileError(f"a column cannot be read as a synapse table's: {str(error)[:300]}") from None


def _columns_of(table: pa.Table, scale, max_rows: int | None) -> Incoming:
    n = table.num_rows
    try:
        table.column_names  # noqa: B018 — decoded here: a header that is not UTF-8 is the file's fault
    except UnicodeDecodeError:
        raise SynapseFileError("the column names are not UTF-8 text") from None
    if max_rows is not None and n > max_rows:
        raise SynapseTableTooLarge(f"the table has {n:,} rows, more than {max_rows:,} per request")
    names = {name.lower(): name for name in table.column_names}
    points = {}
    bad = np.zeros(n, dtype=bool)
    for point in POINTS:
        xyz, missing = _point(table, names, point)
        if xyz is None:
            if point != "ctr":
                raise SynapseFileError(
                    f"no {point}-synaptic point: give {point}_pt_position_x, _y, _z columns or one "
                    f"{point}_pt_position column of [x, y, z]; the columns are {table.column_names[:20]}"
                )
            points[point] = None
            continue
        scaled = np.floor(xyz * np.asarray(scale, dtype=np.float64))
        finite = np.isfinite(scaled).all(axis=1)
        if point != "ctr":
            bad |= missing | ~finite
        inside = finite & (np.abs(np.where(finite[:, None], scaled, 0)) < 2**31).all(axis=1)
        scaled[~inside] = 0
        if point == "ctr":
            missing = missing | ~inside
            scaled[missing] = np.iinfo(np.int32).min
        else:
            bad |= ~inside
        points[point] = scaled.astype(np.int64)
    size = _numbers(table, names, ("size",), np.float64)
    ids = _numbers(table, names, ("id",), np.float64)
    pre_sv = _ids(table, names, ("pre_pt_supervoxel_id", "pre_supervoxel_id"))
    post_sv = _ids(table, names, ("post_pt_supervoxel_id", "post_supervoxel_id"))
    if (pre_sv is None) != (post_sv is None):
        raise SynapseFileError("give both pre_pt_supervoxel_id and post_pt_supervoxel_id, or neither")
    incoming = Incoming(
        row=np.arange(1, n + 1, dtype=np.int64),
        pre_xyz=points["pre"],
        post_xyz=points["post"],
        ctr_xyz=points["ctr"],
        size=np.full(n, np.nan, np.float32) if size is None else size.astype(np.float32),
        ids=ids,  # float64 until checked below
        pre_sv=None if pre_sv is None else pre_sv[0],
        post_sv=None if post_sv is None else post_sv[0],
    )
    incoming.reject(bad, "a pre or post point is missing, not a number, or out of range")
    if pre_sv is not None:
        incoming.reject((pre_sv[1] | post_sv[1])[~bad], "a supervoxel id is missing or not a non-negative integer")
    if incoming.ids is not None:
        raw = incoming.ids
        finite = np.isfinite(raw)
        wrong = ~finite | (np.where(finite, raw, 0) < 1) | (np.where(finite, raw, 0) >= 2**53)
        wrong |= np.where(finite, raw, 0) != np.floor(np.where(finite, raw, 0))
        incoming.ids = np.where(wrong, 0, raw).astype(np.int64)
        incoming.reject(wrong, "id must be a positive integer below 2**53")
        if len(incoming.ids):
            _, first = np.unique(incoming.ids, return_index=True)
            again = np.ones(len(incoming.ids), dtype=bool)
            again[first] = False
            incoming.reject(again, "id given twice in the file (its first row is kept)")
    if len(incoming.size):
        sized = ~np.isnan(incoming.size)
        incoming.reject(sized & ~np.isfinite(incoming.size), "size must be a finite number")
    return incoming


def _arrow_table(source, fmt: str | None, max_rows: int | None = None) -> pa.Table:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    data = source if isinstance(source, (bytes, bytearray, memoryview)) else None
    if fmt is None:
        if data is not None:
            fmt = "parquet" if bytes(data[:4]) == b"PAR1" else "csv"
        else:
            fmt = "parquet" if str(source).lower().endswith((".parquet", ".pq")) else "csv"
    stream = pa.BufferReader(bytes(data)) if data is not None else str(source)
    try:
        if fmt == "parquet":
            if max_rows is not None:
                rows = pq.ParquetFile(stream).metadata.num_rows
                if rows > max_rows:
                    raise SynapseTableTooLarge(
                        f"the table has {rows:,} rows, more than {max_rows:,} per request: `axonlink synapses import`"
                    )
                if data is not None:
                    stream.seek(0)
            return pq.read_table(stream)
        if fmt != "csv":
            raise SynapseFileError(f"unknown format {fmt!r}: csv or parquet")
        return pacsv.read_csv(stream if data is None else io.BytesIO(bytes(data)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as error:
        raise SynapseFileError(f"cannot read this {fmt} file: {str(error)[:300]}") from None


def _column(table: pa.Table, names: dict, candidates) -> pa.ChunkedArray | None:
    for candidate in candidates:
        if candidate in names:
            return table.column(names[candidate])
    return None


def _point(table: pa.Table, names: dict, point: str) -> tuple[np.ndarray | None, np.ndarray]:
    """(float64 (N, 3) positions, rows where it is missing) of a point, from split or joined columns."""
    n = table.num_rows
    for prefix in _PREFIXES[point]:
        axes = [_column(table, names, (f"{prefix}position_{a}", f"{prefix}{a}")) for a in "xyz"]
        if all(a is not None for a in axes):
            values = np.stack([_as_float(a) for a in axes], axis=1)
            return values, np.isnan(values).any(axis=1)
    joined = _column(table, names, [f"{prefix}position" for prefix in _PREFIXES[point]])
    if joined is None:
        return None, np.ones(n, dtype=bool)
    if pa.types.is_string(joined.type) or pa.types.is_large_string(joined.type):
        stripped = pc.utf8_trim(pc.replace_substring_regex(joined, r"[\[\]\(\)]", " "), " ")
        joined = pc.split_pattern_regex(stripped, r"[,\s]+")
    if not (
        pa.types.is_list(joined.type) or pa.types.is_large_list(joined.type) or pa.types.is_fixed_size_list(joined.type)
    ):
        raise SynapseFileError(f"{point} position column must hold [x, y, z] lists or strings, not {joined.type}")
    lengths = pc.fill_null(pc.list_value_length(joined), 0).to_numpy(zero_copy_only=False)
    good = lengths == 3
    values = np.full((n, 3), np.nan)
    if good.any():
        flat = pc.list_flatten(joined.filter(pa.array(good)))
        values[good] = _as_float(flat).reshape(-1, 3)
    return values, ~good | np.isnan(values).any(axis=1)


def _as_float(array) -> np.ndarray:
    """Numbers (or strings of numbers) as float64, NaN for nulls and for what is not a number."""
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        numeric = pc.match_substring_regex(array, r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
        array = pc.if_else(numeric, array, None)
        array = pc.cast(pc.utf8_trim_whitespace(array), pa.float64())
    elif not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)):
        raise SynapseFileError(f"a position or number column holds {array.type}, not numbers")
    return pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def _numbers(table, names, candidates, dtype) -> np.ndarray | None:
    column = _column(table, names, candidates)
    if column is None:
        return None
    return _as_float(column).astype(dtype)


def _ids(table, names, candidates) -> tuple[np.ndarray, np.ndarray] | None:
    """(uint64 ids, rows where missing or not an id) from an integer (or decimal string) column."""
    column = _column(table, names, candidates)
    if column is None:
        return None
    if pa.types.is_integer(column.type):
        values = pc.fill_null(column, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        return values.astype(np.uint64), values < 0
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        good = pc.fill_null(pc.match_substring_regex(column, r"^\s*\d{1,20}\s*$"), False).to_numpy(zero_copy_only=False)
        text = column.to_pylist()
        out = np.zeros(len(text), dtype=np.uint64)
        for i in np.flatnonzero(good).tolist():
            number = int(text[i])
            if number < 2**64:
                out[i] = number
            else:
                good[i] = False
        return out, ~good
    raise SynapseFileError(f"supervoxel ids must be integers, not {column.type}")


def write_table(columns: dict, path_or_buffer, fmt: str) -> None:
    """Write answer columns (names → arrays; (N, 3) positions split into _x/_y/_z) as CSV or Parquet."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    arrays = {}
    for name, data in columns.items():
        data = np.asarray(data)
        if data.ndim == 2:
            for axis, suffix in enumerate("xyz"):
                arrays[f"{name}_{suffix}"] = pa.array(data[:, axis])
        else:
            arrays[name] = pa.array(data)
    table = pa.table(arrays)
    if fmt == "parquet":
        pq.write_table(table, path_or_buffer)
    elif fmt == "csv":
        pacsv.write_csv(table, path_or_buffer)
    else:
        raise SynapseFileError(f"unknown format {fmt!r}: csv or parquet")
