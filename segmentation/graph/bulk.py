"""Move large numeric tables between SQL and numpy without a Python object per row.

A 10M-supervoxel graph is ~40M rows. Row-by-row ORM inserts and selects take
minutes there; this module uses each database's bulk path instead:
PostgreSQL's binary ``COPY`` in (rows built as a numpy structured array) and
binary aggregates out, and on SQLite ``executemany`` and C iterators over the raw cursor.
Columns are fixed-width numbers only (no NULLs: select them with COALESCE; on
PostgreSQL the SQL types must have the widths asked).
"""

from __future__ import annotations

import itertools
import struct

import numpy as np

_PG_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_PG_TRAILER = struct.pack(">h", -1)
# numpy dtype → PostgreSQL binary wire type of the same width (big-endian)
_PG_WIRE = {"i4": ">i4", "i8": ">i8", "f8": ">f8", "f4": ">f4", "?": "?", "b1": "?"}
_PG_SEND = {"i4": "int4send", "i8": "int8send", "f8": "float8send", "f4": "float4send", "b1": "boolsend"}
_SQLITE_BATCH = 200_000


def _raw(connection):
    """The driver connection under a SQLAlchemy connection (same transaction)."""
    return connection.connection.driver_connection


def write_rows(connection, table: str, columns: dict[str, np.ndarray]) -> None:
    """Append rows given as equal-length arrays, one per column (``{name: array}``)."""
    names = list(columns)
    arrays = [np.asarray(a) for a in columns.values()]
    if not arrays or not len(arrays[0]):
        return
    if connection.dialect.name == "postgresql":
        _pg_copy_in(connection, table, names, arrays)
        return
    placeholders = ", ".join("?" for _ in names)
    sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})"
    cursor = _raw(connection).cursor()
    for start in range(0, len(arrays[0]), _SQLITE_BATCH):
        cursor.executemany(sql, zip(*(a[start : start + _SQLITE_BATCH].tolist() for a in arrays)))


def _pg_copy_in(connection, table, names, arrays) -> None:
    fields = [("count", ">i2")]
    for name, array in zip(names, arrays):
        wire = np.dtype(_PG_WIRE[array.dtype.str.lstrip("<>|=")])
        fields += [(f"{name}_len", ">i4"), (name, wire)]
    rows = np.empty(len(arrays[0]), dtype=fields)
    rows["count"] = len(names)
    for name, array in zip(names, arrays):
        rows[f"{name}_len"] = rows.dtype[name].itemsize
        rows[name] = array
    with _raw(connection).cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT binary)") as copy:
            copy.write(_PG_HEADER)
            step = 1_000_000
            for start in range(0, len(rows), step):
                copy.write(rows[start : start + step].tobytes())
            copy.write(_PG_TRAILER)


def read_rows(
    connection, columns: dict[str, tuple[str, str]], source: str, params: dict, order_by: str
) -> dict[str, np.ndarray]:
    """``SELECT`` columns ``{name: (sql expression, dtype)}`` ``FROM source ORDER BY order_by`` as arrays.

    ``source`` is a table with its WHERE clause and named ``:params``.
    """
    if connection.dialect.name == "postgresql":
        return _pg_aggregated(connection, columns, source, params, order_by)
    # SQLite: one query per kind (integers, floats) flattened by C iterators straight into numpy
    found = {}
    for kind in ("int", "float"):
        names = [n for n, (_, dtype) in columns.items() if (np.dtype(dtype).kind == "f") == (kind == "float")]
        if not names:
            continue
        exprs = ", ".join(columns[n][0] for n in names)
        cursor = _raw(connection).cursor()
        cursor.execute(f"SELECT {exprs} FROM {source} ORDER BY {order_by}", params)
        flat = np.fromiter(itertools.chain.from_iterable(cursor), dtype=np.float64 if kind == "float" else np.int64)
        table = flat.reshape(-1, len(names))
        found.update({n: table[:, k].astype(columns[n][1]) for k, n in enumerate(names)})
    return {n: found[n] for n in columns}


def _pg_aggregated(connection, columns, source, params, order_by) -> dict[str, np.ndarray]:
    """Each column as one bytea of its binary values (``int8send`` …): one row comes back.

    Aggregates of one query see the same rows in the same order, so the columns stay aligned
    (``order_by`` is not needed for that, and sorting each column would cost more than the read).
    """
    aggregates = ", ".join(
        f"string_agg({_PG_SEND[np.dtype(dtype).str.lstrip('<>|=')]}({expr}), ''::bytea)"
        for expr, dtype in columns.values()
    )
    for key in params:  # the driver's own placeholder style
        source = source.replace(f":{key}", f"%({key})s")
    with _raw(connection).cursor() as cursor:
        cursor.execute(f"SELECT {aggregates} FROM {source}", params)
        row = cursor.fetchone()
    return {
        name: np.frombuffer(value or b"", dtype=_PG_WIRE[np.dtype(dtype).str.lstrip("<>|=")]).astype(dtype)
        for (name, (_, dtype)), value in zip(columns.items(), row)
    }
