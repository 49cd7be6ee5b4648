"""Cell-type tags as CAVE's materialization engine serves an annotation table.

CAVE copies annotation tables into numbered *versions* (frozen root ids); caveclient's
``live_query`` takes the newest version not after the moment asked and moves its root
ids forward with the chunkedgraph. Here nothing is copied: version ``v`` is the graph
after its first ``v - 1`` edits (version 1 = as ingested), so every version exists the
moment its edit does, never changes and never expires, and ``pt_root_id`` in it are the
roots of that moment. The rows are the tags in force when asked (tags are live, not
frozen). A query with a timestamp (CAVE's ``/query``, caveclient's ``live_live_query``)
uses the tags and roots of that moment exactly.

The table follows CAVE's ``cell_type_local`` schema. Pure logic (no Flask); pyarrow is
imported only to write an answer, so the rest works without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from .. import errors
from ..errors import AxonlinkError, Invalid
from ..graph import Graph
from ..timestamps import InvalidTimestamp, parse_timestamp
from .tags import CellTags

TABLE = "cell_types"
SCHEMA = "cell_type_local"
CLASSIFICATION_SYSTEM = "axonlink"
MAX_ROWS = 200_000  # CAVE's default QUERY_LIMIT_SIZE
MAX_FILTER_VALUES = 10_000  # values in one filter_in_dict / filter_notin_dict list
MAX_REGEX_LENGTH = 1000  # characters of a filter_regex_dict pattern (run by RE2: linear time, bounded memory)
_REGEX_MEMORY = 8 << 20
CAVE_TIME = "%Y-%m-%dT%H:%M:%S.%f"  # caveclient parses exactly this (naive = UTC)

INT_COLUMNS = ("id", "pt_supervoxel_id", "pt_root_id")
STR_COLUMNS = ("classification_system", "cell_type")
COLUMNS = (
    "id",
    "created",
    "valid",
    "classification_system",
    "cell_type",
    "pt_position",
    "pt_supervoxel_id",
    "pt_root_id",
)


@dataclass(frozen=True)
class TableSpec:
    """A table's columns by kind, as CAVE's schema defines them: what filters accept."""

    name: str
    schema: str
    columns: tuple[str, ...]
    int_columns: tuple[str, ...]
    str_columns: tuple[str, ...] = ()
    float_columns: tuple[str, ...] = ()
    positions: tuple[str, ...] = ("pt_position",)  # (N, 3) voxels, answered split as _x, _y, _z

    @property
    def root_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.int_columns if c.endswith("root_id"))


CELL_TYPES = TableSpec(TABLE, SCHEMA, COLUMNS, INT_COLUMNS, STR_COLUMNS)
_FILTERS = {  # body key -> operation (CAVE accepts filter_out_dict for filter_notin_dict)
    "filter_equal_dict": "equal",
    "filter_in_dict": "in",
    "filter_notin_dict": "notin",
    "filter_out_dict": "notin",
    "filter_greater_dict": "greater",
    "filter_less_dict": "less",
    "filter_greater_equal_dict": "greater_equal",
    "filter_less_equal_dict": "less_equal",
    "filter_spatial_dict": "spatial",
    "filter_regex_dict": "regex",
}
_COMPARE = {"greater": np.greater, "less": np.less, "greater_equal": np.greater_equal, "less_equal": np.less_equal}


class QueryError(Invalid):
    """A query this table cannot answer as asked (a 400)."""


class NotFound(errors.NotFound):
    """No such table, version or graph (a 404)."""


class ArrowMissing(AxonlinkError):
    """pyarrow is not installed on the server (a 501)."""

    status = 501  # the server lacks pyarrow


# ---- versions ----------------------------------------------------------------
@dataclass(frozen=True)
class Version:
    number: int
    time_stamp: datetime

    def to_json(self, datastack: str) -> dict:
        """CAVE's AnalysisVersion; "expires_on" far ahead (never), a date pandas can still hold."""
        stamp = self.time_stamp.astimezone(UTC).strftime(CAVE_TIME)
        return {
            "id": self.number,
            "version": self.number,
            "datastack": datastack,
            "time_stamp": stamp,
            "expires_on": "2200-01-01T00:00:00.000000",
            "valid": True,
            "status": "AVAILABLE",
            "is_merged": True,
            "parent_version": None,
        }


def open_graph(graphs, dataset: str) -> Graph:
    """The dataset's graph from ``graphs`` (a :class:`~segmentation.graph.registry.Graphs`), caught up."""
    try:
        graph = graphs.open(dataset)
    except LookupError:
        raise NotFound(
            f"dataset {dataset!r} has no graph, so no cell-type table: run `axonlink ingest-graph {dataset}` first"
        ) from None
    graph.sync()
    return graph


def _latest(graph: Graph) -> int:
    """The newest version: edits whose time is known here (read from the log's times, so never ahead of them)."""
    return graph.seq_at(datetime.now(UTC)) + 1


def versions(graph: Graph, expired: bool = False) -> list[Version]:
    """The first and the newest version; every one in between with ``expired`` (kept short for edit-heavy graphs)."""
    latest = _latest(graph)
    numbers = range(1, latest + 1) if expired else sorted({1, latest})
    return [Version(n, graph.operation_time(n - 1)) for n in numbers]


def find_version(graph: Graph, number: int) -> Version:
    latest = _latest(graph)
    if not 1 <= number <= latest:
        raise NotFound(f"no version {number}: versions run from 1 (the graph as ingested) to {latest} (now)")
    return Version(number, graph.operation_time(number - 1))


# ---- rows --------------------------------------------------------------------
def rows(tags: CellTags, dataset: str, tags_at: datetime | None, roots_at: datetime | None) -> dict:
    """Columns of the tags in force at ``tags_at`` with their roots at ``roots_at`` (None = now), by id."""
    found = tags.of_dataset(dataset, at=tags_at)
    svs = np.array([tag.sv_id for tag, _ in found], dtype=np.uint64)
    roots = (
        np.array([root for _, root in found], dtype=np.uint64)
        if roots_at == tags_at
        else tags.roots_of(dataset, svs, roots_at)
    )
    created = np.array([tag.created_at.timestamp() for tag, _ in found], dtype=np.float64)
    return {
        "id": np.array([tag.id for tag, _ in found], dtype=np.int64),
        "created": created,
        "valid": np.ones(len(found), dtype=bool),
        "classification_system": np.array([CLASSIFICATION_SYSTEM] * len(found), dtype=object),
        "cell_type": np.array([tag.term for tag, _ in found], dtype=object),
        "pt_position": np.array([tag.voxel for tag, _ in found], dtype=np.int64).reshape(-1, 3),
        "pt_supervoxel_id": svs.astype(np.int64),
        "pt_root_id": np.asarray(roots, dtype=np.uint64).astype(np.int64),
    }


# ---- queries -----------------------------------------------------------------
@dataclass
class Query:
    filters: list = field(default_factory=list)  # (operation, column, value)
    columns: list = field(default_factory=lambda: list(COLUMNS))
    spec: TableSpec = CELL_TYPES
    offset: int = 0
    limit: int = MAX_ROWS
    resolution: list | None = None  # desired_resolution (nm per unit of pt_position)
    random_sample: int | None = None

    def root_ids(self) -> list[int]:
        """Root ids the filters name (a live query checks they exist at its moment)."""
        found = []
        for op, column, value in self.filters:
            if column in self.spec.root_columns and op in ("equal", "in", "notin"):
                found += list(value) if op != "equal" else [value]
        return found


def parse_query(body: dict, table: str = TABLE, spec: TableSpec = CELL_TYPES) -> Query:
    """A query body as caveclient posts it: filters are ``{table: {column: value}}``."""
    query = Query(columns=list(spec.columns), spec=spec)
    if body.get("join_tables") or body.get("tables"):
        raise QueryError("joins are not supported: this datastack has one table")
    for key, op in _FILTERS.items():
        for column, value in _of_table(body.get(key), key, table).items():
            query.filters.append((op, column, _checked(op, column, value, spec)))
    selected = body.get("select_columns") or body.get("select_column_map")
    if isinstance(selected, dict):  # {table: [columns]}: the live query's and join queries' form
        others = set(selected) - {table}
        if others:
            raise QueryError(f"select_columns names table(s) {sorted(others)}; this query is on {table!r}")
        selected = selected.get(table)
    if selected:
        if not isinstance(selected, list) or not all(isinstance(c, str) for c in selected):
            raise QueryError("select_columns must be a list of column names")
        _known(selected, spec)
        query.columns = list(dict.fromkeys(selected))  # in the order asked
    query.offset = _integer(body.get("offset"), "offset", 0, minimum=0)
    query.limit = min(_integer(body.get("limit"), "limit", MAX_ROWS, minimum=1), MAX_ROWS)
    resolution = body.get("desired_resolution")
    if resolution is not None:
        if (
            not isinstance(resolution, list)
            or len(resolution) != 3
            or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0 for r in resolution)
        ):
            raise QueryError("desired_resolution must be three positive numbers (nm)")
        query.resolution = [float(r) for r in resolution]
    return query


def _of_table(value, key: str, table: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or any(not isinstance(v, dict) for v in value.values()):
        raise QueryError(f'{key} must be {{"{table}": {{column: value}}}}')
    others = set(value) - {table}
    if others:
        raise QueryError(f"{key} names table(s) {sorted(others)}; this query is on {table!r}")
    return value.get(table, {})


def _known(columns, spec: TableSpec = CELL_TYPES) -> None:
    unknown = [c for c in columns if c not in spec.columns]
    if unknown:
        raise QueryError(f"unknown column(s) {unknown}; {spec.name} has {list(spec.columns)}")


def _integer(value, what: str, default: int, minimum: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise QueryError(f"{what} must be an integer >= {minimum}")
    return value


def _checked(op: str, column: str, value, spec: TableSpec = CELL_TYPES):
    """The filter value in the column's own terms (ints, strings, epoch seconds, a voxel box)."""
    _known([column], spec)
    if op == "spatial":
        if column not in spec.positions:
            raise QueryError(f"filter_spatial_dict applies to {', '.join(spec.positions)} only")
        try:
            box = np.array(value, dtype=np.float64)
        except (TypeError, ValueError):
            box = None
        if box is None or box.shape != (2, 3) or not (box[0] < box[1]).all():
            raise QueryError("a spatial filter is [[min_x, min_y, min_z], [max_x, max_y, max_z]] (voxels), min < max")
        return box
    if column in spec.positions:
        raise QueryError(f"filter {column} with filter_spatial_dict")
    if op == "regex":
        if column not in spec.str_columns or not isinstance(value, str):
            raise QueryError(f"regex filters take a string and apply to {list(spec.str_columns)}")
        return _linear_regex(value)
    if op in ("in", "notin"):
        if not isinstance(value, list):
            raise QueryError(f"filter_{op}_dict values are lists, not {value!r}")
        if len(value) > MAX_FILTER_VALUES:
            raise QueryError(f"filter_{op}_dict lists take at most {MAX_FILTER_VALUES:,} values")
        return [_scalar(column, v, spec) for v in value]
    if op in _COMPARE and column == "valid":
        raise QueryError("valid can only be filtered for equality")
    return _scalar(column, value, spec)


def _linear_regex(pattern: str):
    """A client's pattern compiled by RE2, which matches in linear time: a backtracking engine
    (Python's ``re``) can be made to run for hours by one short pattern such as ``(a+)+$``."""
    import re2

    if len(pattern) > MAX_REGEX_LENGTH:
        raise QueryError(f"regular expressions are limited to {MAX_REGEX_LENGTH} characters")
    options = re2.Options()
    options.max_mem = _REGEX_MEMORY
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        message = error.args[0].decode(errors="replace") if error.args and isinstance(error.args[0], bytes) else error
        raise QueryError(
            f"bad regular expression {pattern!r} (RE2 syntax, no backreferences or lookaround): {message}"
        ) from None


def _scalar(column: str, value, spec: TableSpec = CELL_TYPES):
    if column in spec.int_columns:
        try:
            number = int(value) if not isinstance(value, (bool, float)) else None
        except (TypeError, ValueError):
            number = None
        if number is None or not -(2**63) <= number < 2**63:
            raise QueryError(f"{column} takes integer ids, not {value!r}")
        return number
    if column in spec.float_columns:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise QueryError(f"{column} takes numbers, not {value!r}")
        return float(value)
    if column in spec.str_columns:
        if not isinstance(value, str):
            raise QueryError(f"{column} takes strings, not {value!r}")
        return value
    if column == "valid":
        if not isinstance(value, bool):
            raise QueryError("valid takes true or false")
        return value
    try:  # created
        return parse_timestamp(str(value)).timestamp()
    except InvalidTimestamp as error:
        raise QueryError(f"created: {error}") from None


def _mask(columns: dict, op: str, column: str, value) -> np.ndarray:
    data = columns[column]
    if op == "spatial":
        return ((data >= value[0]) & (data <= value[1])).all(axis=1)
    if op == "regex":
        return np.array([bool(value.search(v)) for v in data], dtype=bool)
    if op in ("in", "notin"):
        found = np.isin(data, np.array(value, dtype=data.dtype)) if value else np.zeros(len(data), dtype=bool)
        return found if op == "in" else ~found
    if op == "equal":
        return data == value
    return _COMPARE[op](data, value)


@dataclass
class Result:
    columns: dict  # name -> array, in answer order (positions split)
    warnings: list
    resolution: list  # nm per unit of the positions answered


def matching(table: dict, query: Query) -> np.ndarray:
    """Mask of the rows of ``table`` that every filter of ``query`` keeps."""
    mask = np.ones(len(table["id"]), dtype=bool)
    for op, column, value in query.filters:
        mask &= _mask(table, op, column, value)
    return mask


def run(table: dict, query: Query, voxel_resolution, rng=None) -> Result:
    """Sample, filter, page and select, as CAVE does in SQL (sampling first, like TABLESAMPLE)."""
    keep = np.arange(len(table["id"]))
    if query.random_sample is not None and query.random_sample < len(keep):
        rng = rng or np.random.default_rng()
        keep = np.sort(rng.choice(keep, size=query.random_sample, replace=False))
    sampled = {name: data[keep] for name, data in table.items()}
    mask = matching(sampled, query)
    chosen = np.flatnonzero(mask)[query.offset : query.offset + query.limit]
    warnings = [f'201 - "Limited query to {query.limit} rows'] if len(chosen) == query.limit else []
    resolution = query.resolution or [float(r) for r in voxel_resolution]
    scale = np.asarray(voxel_resolution, dtype=np.float64) / np.asarray(resolution)
    answer = {}
    for name in query.columns:
        data = sampled[name][chosen]
        if name in query.spec.positions:
            if not (scale == 1).all():
                data = data * scale
            for axis, suffix in enumerate("xyz"):
                answer[f"{name}_{suffix}"] = data[:, axis]
        else:
            answer[name] = data
    return Result(answer, warnings, resolution)


def count(table: dict, query: Query) -> Result:
    """CAVE's ``count=true``: one row, one column ``count``, of the filtered rows (no limit)."""
    query.offset, query.limit, query.columns = 0, len(table["id"]) + 1, ["id"]
    matched = len(run(table, query, [1, 1, 1]).columns["id"])
    return Result({"count": np.array([matched], dtype=np.int64)}, [], query.resolution or [])


# ---- answers -----------------------------------------------------------------
def _arrow():
    try:
        import pyarrow
    except ImportError:
        raise ArrowMissing(
            "this server cannot write Arrow: install pyarrow (pip install 'pyarrow>=14') "
            "or ask with return_pyarrow=False for JSON"
        ) from None
    return pyarrow


def arrow_stream(result: Result, accept_encoding: str = "") -> bytes:
    """An Arrow IPC stream (compressed inside as the client accepts, as CAVE does)."""
    pa = _arrow()
    arrays = {}
    for name, data in result.columns.items():
        if name == "created":
            arrays[name] = pa.array(
                np.round(data * 1e6).astype(np.int64).astype("datetime64[us]"), type=pa.timestamp("us")
            )  # naive UTC, like CAVE
        elif data.dtype == object:
            arrays[name] = pa.array(data.tolist(), type=pa.string())
        else:
            arrays[name] = pa.array(data)
    table = pa.table(arrays)
    codec = next((c for c in ("lz4", "zstd") if c in accept_encoding.lower() and pa.Codec.is_available(c)), None)
    options = pa.ipc.IpcWriteOptions(compression={"lz4": "lz4", "zstd": "zstd"}.get(codec))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def records(result: Result) -> list[dict]:
    """The rows as JSON records, as pandas' ``to_json(orient="records")`` writes them (times in ms)."""
    out = {}
    for name, data in result.columns.items():
        if name == "created":
            out[name] = [int(round(t * 1000)) for t in data]
        elif data.dtype.kind == "f":  # NaN (a size or centre not given) is null in JSON
            out[name] = [None if v != v else v for v in data.tolist()]
        else:
            out[name] = data.tolist()
    names = list(out)
    return [dict(zip(names, values)) for values in zip(*out.values())]
