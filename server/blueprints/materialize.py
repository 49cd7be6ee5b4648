"""CAVE's materialization API (v3) over cell-type tags, as caveclient calls it.

Only HTTP lives here: routes, flags, bodies and answer shapes (Arrow IPC with the
Content-Type ``data.arrow`` CAVE sends, or JSON records); the table, versions and
filters are :mod:`segmentation.celltypes.materialize`. A datastack is a dataset.
"""

from __future__ import annotations

import json

import numpy as np
from flask import Blueprint, Response, jsonify, request

from segmentation.celltypes import materialize as mat
from segmentation.connectivity import cave as synapse_table
from segmentation.timestamps import parse_timestamp

from .. import endpoints, hosts
from ..request_input import flag, json_body
from ..workspace import workspace
from . import cell_tags, dataset_named, synapses

blueprint = Blueprint("materialize", __name__)

SERVER_VERSION = "5.26.4"  # caveclient's query_table/live_query need >= 5.13.0
API_VERSIONS = [3]  # caveclient picks the newest it shares; the v2 routes it still uses are served


# ---- request helpers ---------------------------------------------------------
def _graph(datastack: str):
    dataset_named(datastack).segmentation_layer("no neurons, so no cell-type table")  # 404 unknown, 409 image-only
    return mat.open_graph(workspace().graphs, datastack)


def _body() -> dict:
    body = json_body(required=False)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise mat.QueryError(
            "the body must be a JSON object of filters, e.g. "
            '{"filter_equal_dict": {"cell_types": {"cell_type": "astrocyte"}}}'
        )
    return body


def _sample(query: mat.Query) -> mat.Query:
    value = request.args.get("random_sample")
    if value:
        try:
            query.random_sample = int(value)
        except ValueError:
            query.random_sample = 0
        if query.random_sample < 1:
            raise mat.QueryError("random_sample must be a positive integer")
    return query


def _specs(datastack: str) -> list[mat.TableSpec]:
    """The datastack's tables: cell types, and synapses once it has any."""
    specs = [mat.CELL_TYPES]
    if synapses().has_table(datastack):
        specs.append(synapse_table.SPEC)
    return specs


def _spec(datastack: str, table: str) -> mat.TableSpec:
    specs = _specs(datastack)
    for spec in specs:
        if spec.name == table:
            return spec
    raise mat.NotFound(f"no table {table!r}; this datastack has {[s.name for s in specs]}")


def _rows(datastack: str, spec: mat.TableSpec, query: mat.Query, rows_at, roots_at) -> dict | int:
    """The table's columns: rows in force at ``rows_at`` (None: now), roots of ``roots_at``; for the
    synapse table only the rows the query can answer, or with ``count`` how many match."""
    if spec is mat.CELL_TYPES:
        return mat.rows(cell_tags(), datastack, rows_at, roots_at)
    graph = _graph(datastack)
    held = synapses().of(datastack, graph)
    if flag("count"):
        return synapse_table.query_count(held, graph, query, rows_at, roots_at)
    columns = synapse_table.query_columns(held, graph, query, rows_at, roots_at)
    query.random_sample = None  # drawn already, from the rows in force
    return columns


def _answer(table: dict, query: mat.Query, voxel_resolution) -> Response:
    """Arrow IPC (``return_pyarrow``, the default) or JSON records; warnings and resolution in headers."""
    if isinstance(table, int):  # counted already
        result = mat.Result({"count": np.array([table], dtype=np.int64)}, [], query.resolution or [])
    else:
        result = mat.count(table, query) if flag("count") else mat.run(table, query, voxel_resolution)
    headers = {}
    if result.warnings:
        headers["Warning"] = "; ".join(result.warnings)
    if result.resolution:
        headers["dataframe_resolution"] = ", ".join(str(float(r)) for r in result.resolution)
    if not flag("return_pyarrow", True):
        return Response(json.dumps(mat.records(result)), mimetype="application/json", headers=headers)
    stream = mat.arrow_stream(result, request.headers.get("Accept-Encoding", ""))
    response = Response(stream, headers=headers)
    response.headers["Content-Type"] = "data.arrow"  # exactly what caveclient checks
    return response


def _table_metadata(datastack: str, version: int, spec: mat.TableSpec) -> dict:
    dataset = dataset_named(datastack)
    rx, ry, rz = (float(r) for r in dataset.voxel_resolution)
    description = (
        synapse_table.DESCRIPTION.format(dataset=datastack)
        if spec is synapse_table.SPEC
        else (
            f"Cell-type tags of {datastack}: one row per tag in force, on the supervoxel under its "
            "point, so pt_root_id follows merges and splits. pt_position in voxels."
        )
    )
    return {
        "table_name": spec.name,
        "schema": spec.schema,
        "schema_type": spec.schema,
        "aligned_volume": datastack,
        "analysisversion_id": version,
        "valid": True,
        "created": dataset.created_at,
        "description": description,
        "notice_text": None,
        "reference_table": None,
        "flat_segmentation_source": None,
        "user_id": "axonlink",
        "read_permission": "PUBLIC",
        "write_permission": "PRIVATE",
        "segmentation_source": f"graphene://{hosts.base_url()}/segmentation/table/{datastack}",
        "pcg_table_name": datastack,
        "voxel_resolution_x": rx,
        "voxel_resolution_y": ry,
        "voxel_resolution_z": rz,
    }


# ---- versions and tables -----------------------------------------------------
def mat_api_versions():
    return jsonify(API_VERSIONS)


def mat_version():
    return jsonify(SERVER_VERSION)


def mat_versions(datastack):
    return jsonify([v.number for v in mat.versions(_graph(datastack), flag("expired"))])


def mat_version_metadata(datastack, version):
    return jsonify(mat.find_version(_graph(datastack), version).to_json(datastack))


def mat_versions_metadata(datastack):
    return jsonify([v.to_json(datastack) for v in mat.versions(_graph(datastack), flag("expired"))])


def mat_tables(datastack, version):
    mat.find_version(_graph(datastack), version)
    return jsonify([spec.name for spec in _specs(datastack)])


def mat_table_metadata(datastack, version, table):
    mat.find_version(_graph(datastack), version)
    return jsonify(_table_metadata(datastack, version, _spec(datastack, table)))


def mat_tables_metadata(datastack, version):
    mat.find_version(_graph(datastack), version)
    return jsonify([_table_metadata(datastack, version, spec) for spec in _specs(datastack)])


def mat_table_count(datastack, version, table):
    mat.find_version(_graph(datastack), version)
    if _spec(datastack, table) is synapse_table.SPEC:
        return jsonify(synapses().count(datastack))
    return jsonify(len(cell_tags().of_dataset(datastack)))


# ---- queries -----------------------------------------------------------------
def mat_query(datastack, version, table):
    """caveclient's query_table, and the first half of its live_query: roots of the version's moment."""
    found = mat.find_version(_graph(datastack), version)
    spec = _spec(datastack, table)
    query = _sample(mat.parse_query(_body(), table, spec))
    rows = _rows(datastack, spec, query, None, found.time_stamp)
    return _answer(rows, query, dataset_named(datastack).voxel_resolution)


def mat_live_query(datastack):
    """caveclient's live_live_query: tags and roots of ``timestamp``, root-id filters checked at it."""
    graph = _graph(datastack)
    body = _body()
    table = body.get("table")
    if not isinstance(table, str):
        raise mat.QueryError('a live query names its "table" in the body')
    spec = _spec(datastack, table)
    if not body.get("timestamp"):
        raise mat.QueryError('a live query needs "timestamp" (ISO 8601, UTC)')
    at = parse_timestamp(str(body["timestamp"]))
    if at < graph.created_at:
        raise mat.QueryError(
            f"timestamp {at.isoformat()} is before the graph was ingested ({graph.created_at.isoformat()})"
        )
    query = _sample(mat.parse_query(body, table, spec))
    named = query.root_ids()
    if named and not flag("allow_invalid_root_ids"):
        invalid = [r for r, ok in zip(named, graph.is_latest(named, at)) if not ok]
        if invalid:
            raise mat.QueryError(
                f"root id(s) {invalid} are not roots at {at.isoformat()} "
                "(pass allow_invalid_root_ids=True to query anyway)"
            )
    rows = _rows(datastack, spec, query, at, at)
    return _answer(rows, query, dataset_named(datastack).voxel_resolution)


_VIEWS = {name: globals()[name] for name in endpoints.MATERIALIZE}
endpoints.register(blueprint, endpoints.MATERIALIZE, _VIEWS)
