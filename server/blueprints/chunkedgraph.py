"""PyChunkedGraph's v1 HTTP API over :class:`segmentation.graph.Graph`, as caveclient calls it.

Only HTTP lives here: parsing ids, points and timestamps, and shaping answers
(ids as JSON integers, or strings with ``int64_as_str=1``; uint64 bytes for
``roots_binary``). Bodies are read raw because Neuroglancer posts them without
a Content-Type.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

import numpy as np
from flask import Blueprint, Response, jsonify, request

from segmentation import meshes
from segmentation.datasets import read_info
from segmentation.errors import Invalid
from segmentation.graph import Graph, GraphError
from segmentation.graph.ids import is_supervoxel
from segmentation.graph.points import supervoxels_near

from .. import auth, endpoints, hosts, metrics, request_input
from ..request_input import BadInput, TooLarge, capped, json_body, json_object, parse_json
from . import dataset_named, graph_for, meshes_of, segment_properties_of, synapses

blueprint = Blueprint("chunkedgraph", __name__)

API_VERSION = "2.21.1"


class BadRequest(Invalid):
    pass


# ---- request helpers ---------------------------------------------------------
def body_json():
    return json_body()


def body_object() -> dict:
    return json_object('{"node_ids": [...]}')


MAX_LEAVES_ANSWERED = 2_000_000  # supervoxel ids in one leaves answer (tens of MB of JSON)


def id_list(value, what: str) -> list[int]:
    """A list of uint64 ids, at most as many as the route takes (its ``caps`` for ``what``)."""
    if not isinstance(value, list):
        raise BadRequest(f"{what} must be a list of ids")
    capped(value, what)
    try:
        ids = [int(v) for v in value]
    except (TypeError, ValueError, OverflowError):
        raise BadRequest(f"{what} must hold integer ids") from None
    if any(i < 0 or i >= 2**64 for i in ids):
        raise BadRequest(f"{what} must hold uint64 ids")
    return ids


def moment(name: str = "timestamp") -> datetime | None:
    """PyChunkedGraph names its moments ``timestamp`` (and ``…_past``, ``start_time`` …)."""
    return request_input.moment(name)


def ids_out(ids):
    as_str = request_input.flag("int64_as_str")
    return [str(int(i)) if as_str else int(i) for i in ids]


def resolve_point(graph: Graph, table: str, item, what: str) -> int:
    """``[id, x, y, z]`` (nm) → a supervoxel: the id if it is one, else the one under the point."""
    if not isinstance(item, (list, tuple)) or len(item) != 4:
        raise BadRequest(f"each {what} must be [id, x, y, z] with coordinates in nm")
    try:
        node, point = int(item[0]), [float(c) for c in item[1:]]
    except (TypeError, ValueError, OverflowError):
        raise BadRequest(f"bad {what}: {item!r}") from None
    if not all(math.isfinite(c) for c in point) or not 0 <= node < 2**64:
        raise BadRequest(f"bad {what}: {item!r} (the id must be a uint64 and the coordinates finite numbers)")
    if is_supervoxel(node):
        return node
    url = dataset_named(table).segmentation_layer().url
    at_point, nearby = supervoxels_near(url, point)
    candidates = [at_point] if at_point else []
    candidates += [int(s) for s in nearby if int(s) != at_point]
    for sv in candidates:
        try:
            if node == 0 or graph.root(sv) == node:
                return sv
        except GraphError:
            continue
    raise BadRequest(f"could not determine the supervoxel of {node} at {point} nm")


def voxel_coords(table: str, points) -> list[list[float]]:
    """The nm points of a request in voxels of the dataset, as CAVE's operation details report them."""
    resolution = np.asarray(dataset_named(table).voxel_resolution, dtype=float)
    return (np.asarray([p[1:] for p in points], dtype=float) / resolution).tolist()


def operation_answer(table: str, graph: Graph, kind: str, result):
    """An edit of ``kind`` the graph has committed: counted (``server.metrics``; edits refused are
    counted by their answer's status), and answered. After a cut (a split, or undoing a merge: several
    new roots) the fragments of the chunks it cut start being made at once; a merge needs none (its
    manifest joins stored ones)."""
    metrics.count_edit(kind)
    if len(result.new_root_ids) > 1:
        meshes_of(table).prepare(result.new_root_ids, graph.leaves)
    return jsonify(
        {
            "operation_id": result.operation_id,
            "new_root_ids": ids_out(result.new_root_ids),
            "old_root_ids": ids_out(result.old_root_ids),
        }
    )


# ---- versions and info -------------------------------------------------------
def cg_api_versions():
    return jsonify([0, 1])


def cg_version():
    return jsonify(API_VERSION)


def cg_info(table):
    graph_for(table)  # 404 unless the dataset has a graph
    dataset = dataset_named(table)
    base = hosts.base_url()
    info = read_info(dataset.segmentation_layer().url)
    scale = info["scales"][0]
    size = scale["size"]
    info.update(
        {
            "data_type": "uint64",  # supervoxel and root ids have 64 bits, whatever the stored labels have
            # a plain URL (the client reads chunks and meshes under it, never its info)
            "data_dir": f"{base}/data/{table}@supervoxels/segmentation",
            "segment_properties": "segment_properties",  # relative to this info's URL
            "app": {"supported_api_versions": [0, 1]},
            "graph": {
                "chunk_size": scale["chunk_sizes"][0],
                "bounding_box": [scale.get("voxel_offset", [0, 0, 0]), size],
                "n_bits_for_layer_id": 8,
                "cv_mip": 0,
                "n_layers": 10,
                "spatial_bit_masks": {},
            },
            "verify_mesh": False,
        }
    )
    built_in = meshes_of(table).of_roots is not None
    if info.get("mesh") or built_in:  # built-in meshes, or legacy ones served to the graphene source as Draco
        info["mesh"] = meshes.MESH_DIR
    else:
        info.pop("mesh", None)
    for scale in info["scales"]:
        scale.pop("sharding", None)
    return jsonify(info)


def cg_segment_properties(table):
    graph_for(table)
    response = jsonify(segment_properties_of(table, None))
    response.headers["Cache-Control"] = "no-cache"
    return response


# ---- reads -------------------------------------------------------------------
def cg_root(table, node_id):
    graph = graph_for(table)
    return jsonify({"root_id": ids_out([graph.root(node_id, moment())])[0]})


def cg_roots(table):
    graph = graph_for(table)
    ids = id_list(body_object().get("node_ids"), "node_ids")
    return jsonify({"root_ids": ids_out(graph.roots(ids, moment()))})


def cg_roots_binary(table):
    graph = graph_for(table)
    raw = request.get_data()
    if len(raw) % 8:
        raise BadRequest("body must be little-endian uint64 supervoxel ids")
    ids = capped(np.frombuffer(raw, dtype="<u8"), "node_ids")
    return Response(graph.roots(ids, moment()).astype("<u8").tobytes(), mimetype="application/octet-stream")


def bounds_arg():
    """``bounds=x0-x1_y0-y1_z0-z1`` (voxels at the base resolution) → ((x0, x1), (y0, y1), (z0, z1))."""
    text = request.args.get("bounds")
    if not text:
        return None
    try:
        ranges = [tuple(int(v) for v in part.split("-")) for part in text.split("_")]
        if len(ranges) != 3 or any(len(r) != 2 or r[0] > r[1] for r in ranges):
            raise ValueError
    except ValueError:
        raise BadRequest("bounds must be x0-x1_y0-y1_z0-z1 in voxels") from None
    return tuple(ranges)


def _leaves(graph: Graph, node: int, bounds):
    return [node] if is_supervoxel(node) else graph.leaves(node, bounds)


def cg_leaves(table, node_id):
    graph = graph_for(table)
    return jsonify({"leaf_ids": ids_out(_leaves(graph, node_id, bounds_arg()))})


def cg_leaves_many(table):
    graph = graph_for(table)
    ids = id_list(body_object().get("node_ids"), "node_ids")
    found = graph.leaves_many(ids, bounds_arg())  # one catch-up with the log for all of them
    if sum(len(leaves) for leaves in found.values()) > MAX_LEAVES_ANSWERED:
        raise TooLarge(
            f"these roots hold more than {MAX_LEAVES_ANSWERED:,} supervoxels; ask for fewer roots "
            "at once, or pass ?bounds="
        )
    return jsonify({str(i): ids_out(found[i]) for i in ids})


def cg_operation_details(table):
    graph = graph_for(table)
    try:
        ids = id_list(parse_json(request.args.get("operation_ids", "[]"), "operation_ids"), "operation_ids")
    except BadInput:
        raise BadRequest("operation_ids must be a JSON list") from None
    answer = {}
    with graph.caught_up():
        for op_id in ids:
            answer[str(op_id)] = _operation_detail(graph.operation(op_id))
    return jsonify(answer)


def _operation_detail(op: dict) -> dict:
    """One operation as CAVE's operation_details reports it."""
    added = [[a, b] for a, b, on in op["edge_changes"] if on]
    removed = [[a, b] for a, b, on in op["edge_changes"] if not on]
    params = op["params"]
    detail = {
        "user": op["user_id"],
        "timestamp": op["created_at"].isoformat(),
        "roots": op["new_root_ids"],
        "old_roots": op["old_root_ids"],
        "operation_type": op["kind"],
        "operation_status": 0,
    }
    if added:
        detail["added_edges"] = added
    if removed:
        detail["removed_edges"] = removed
    for key in ("source_coords", "sink_coords", "source_ids", "sink_ids"):
        if key in params:
            detail[key] = params[key]
    if op["target_operation_id"] is not None:
        detail["target_operation_id"] = op["target_operation_id"]
    return detail


def cg_lineage(table):
    graph = graph_for(table)
    roots = id_list(body_object().get("root_ids"), "root_ids")
    return jsonify(graph.lineage(roots, past=moment("timestamp_past"), future=moment("timestamp_future")))


def cg_past_id_mapping(table):
    graph = graph_for(table)
    roots = id_list(body_object().get("root_ids"), "root_ids")
    past_at, future_at = moment("timestamp_past"), moment("timestamp_future")
    past_map, future_map = {}, {}
    with graph.caught_up():
        for root in roots:
            lineage = graph.lineage([root], past=past_at, future=future_at)
            nodes = {n["id"] for n in lineage["nodes"]}
            parents = {l["target"]: l["source"] for l in lineage["links"]}
            ancestors = {
                n
                for n in nodes
                if n not in parents
                and n != root
                and graph.root_created_seq(n) <= (graph.seq_at(past_at) if past_at else 0)
            }
            past_map[str(root)] = sorted(ancestors) or [root]
            future_map[str(root)] = graph.latest_roots(root, at=future_at)
    return jsonify({"past_id_map": past_map, "future_id_map": future_map})


def latest_roots(dataset, root_id):
    graph = graph_for(dataset)
    if not graph.is_root(root_id):
        raise BadRequest(f"{root_id} is not a root of {dataset}")
    return jsonify({"root_id": str(root_id), "latest_roots": [str(r) for r in graph.latest_roots(root_id)]})


def cg_is_latest_roots(table):
    graph = graph_for(table)
    ids = id_list(body_object().get("node_ids"), "node_ids")
    return jsonify({"is_latest": graph.is_latest(ids, moment())})


def cg_root_timestamps(table):
    graph = graph_for(table)
    ids = id_list(body_object().get("node_ids"), "node_ids")
    return jsonify({"timestamp": [t.timestamp() for t in graph.root_timestamps(ids)]})


def cg_change_log(table, root_id):
    graph = graph_for(table)
    log = graph.change_log(root_id)
    log.pop("kinds", None)
    return jsonify(log)


def cg_tabular_change_log(table):
    graph = graph_for(table)
    roots = id_list(body_object().get("root_ids"), "root_ids")
    with graph.caught_up():
        return jsonify({str(root): _dataframe_json(graph.tabular_change_log(root)) for root in roots})


def _dataframe_json(rows: list[dict]) -> str:
    """Rows as ``pandas.DataFrame.to_json()`` writes them (column → {row number → value}), without pandas."""
    columns = (
        "operation_id",
        "timestamp",
        "user_id",
        "before_root_ids",
        "after_root_ids",
        "is_merge",
        "user_name",
        "user_affiliation",
    )
    return json.dumps({c: {str(i): row[c] for i, row in enumerate(rows)} for c in columns})


def cg_merge_log(table, root_id):
    graph = graph_for(table)
    edges, coords = [], []
    with graph.caught_up():
        for row in graph.tabular_change_log(root_id):
            op = graph.operation(row["operation_id"])
            if op["kind"] != "merge":
                continue
            edges.append([[a, b] for a, b, on in op["edge_changes"] if on])
            params = op["params"]
            coords.append([params.get("source_coords"), params.get("sink_coords")])
    return jsonify({"merge_edges": edges, "merge_edge_coords": coords})


def cg_user_operations(table):
    graph = graph_for(table)
    include_undo = request_input.flag("include_undo", default=True)
    ops = graph.user_operations(
        request.args.get("user_id") or None, moment("start_time"), moment("end_time"), include_undo=include_undo
    )
    return jsonify(
        [
            {
                "operation_id": op["id"],
                "timestamp": int(op["created_at"].timestamp() * 1000),
                "user_id": op["user_id"],
                "operation_type": op["kind"],
                "old_root_ids": op["old_root_ids"],
                "new_root_ids": op["new_root_ids"],
            }
            for op in ops
        ]
    )


def cg_valid_nodes(table):
    graph = graph_for(table)
    nodes = id_list(body_object().get("node_ids"), "node_ids")
    valid = graph.valid_nodes(nodes, moment("start_timestamp"), moment("end_timestamp"))
    return jsonify({"valid_roots": ids_out(valid)})


def cg_lvl2_graph(table, root_id):
    graph = graph_for(table)
    if is_supervoxel(root_id):
        raise BadRequest(f"{root_id} is a supervoxel, not a root")
    bounds = bounds_arg()
    edges = graph.supervoxel_edges(root_id, bounds)
    response = jsonify({"edge_graph": [ids_out(edge) for edge in edges.tolist()]})
    response.headers["Used-Bounds"] = "true" if bounds is not None else "false"
    return response


def cg_delta_roots(table):
    graph = graph_for(table)
    past = moment("timestamp_past")
    if past is None:
        raise BadRequest("timestamp_past is required")
    old, new = graph.delta_roots(past, moment("timestamp_future"))
    return jsonify({"old_roots": old, "new_roots": new})


def cg_oldest_timestamp(table):
    graph = graph_for(table)
    return jsonify({"iso": graph.created_at.isoformat()})


# ---- edits -------------------------------------------------------------------
def cg_merge(table):
    graph = graph_for(table)
    body = body_json()
    if not isinstance(body, list) or len(body) != 2:
        raise BadRequest("merge takes exactly two points: [[id, x, y, z], [id, x, y, z]] (nm)")
    a, b = (resolve_point(graph, table, item, "merge point") for item in body)
    source, sink = ([point] for point in voxel_coords(table, body))
    return operation_answer(
        table, graph, "merge", graph.merge(a, b, auth.user_name(), coords=(source, sink), origin=auth.origin())
    )


def _split_points(graph, table):
    body = body_json()
    if not isinstance(body, dict) or not body.get("sources") or not body.get("sinks"):
        raise BadRequest('split takes {"sources": [[id, x, y, z], ...], "sinks": [...]} (nm)')
    if not isinstance(body["sources"], list) or not isinstance(body["sinks"], list):
        raise BadRequest('split takes {"sources": [[id, x, y, z], ...], "sinks": [...]} (nm)')
    capped(body["sources"], "sources")
    capped(body["sinks"], "sinks")
    sources = [resolve_point(graph, table, p, "source") for p in body["sources"]]
    sinks = [resolve_point(graph, table, p, "sink") for p in body["sinks"]]
    coords = (voxel_coords(table, body["sources"]), voxel_coords(table, body["sinks"]))
    return sources, sinks, coords


def cg_split(table):
    graph = graph_for(table)
    sources, sinks, coords = _split_points(graph, table)
    return operation_answer(
        table, graph, "split", graph.split(sources, sinks, auth.user_name(), coords=coords, origin=auth.origin())
    )


def cg_split_preview(table):
    graph = graph_for(table)
    sources, sinks, _ = _split_points(graph, table)
    try:
        groups = graph.preview_split(sources, sinks)
        illegal = False
    except GraphError as error:
        if "connected" not in str(error):
            raise
        groups, illegal = [], True
    return jsonify({"supervoxel_connected_components": [ids_out(g) for g in groups], "illegal_split": illegal})


def cg_undo(table):
    return _undo_redo(table, "undo")


def cg_redo(table):
    return _undo_redo(table, "redo")


def _undo_redo(table, kind):
    graph = graph_for(table)
    body = body_json()
    if not isinstance(body, dict) or "operation_id" not in body:
        raise BadRequest('expected {"operation_id": N}')
    try:
        op_id = int(body["operation_id"])
    except (TypeError, ValueError, OverflowError):
        raise BadRequest("operation_id must be an integer") from None
    return operation_answer(table, graph, kind, getattr(graph, kind)(op_id, auth.user_name(), origin=auth.origin()))


# ---- info service ------------------------------------------------------------
def info_version():
    return jsonify("4.3.1")


def info_datastacks():
    return jsonify([d.name for d in auth.visible_datasets()])


def info_datastack(name):
    """A datastack; an image-only dataset's has no segmentation source (None, as caveclient allows)."""
    dataset = dataset_named(name)
    base = hosts.base_url()
    rx, ry, rz = dataset.voxel_resolution
    image = dataset.first_layer("image")
    return jsonify(
        {
            "datastack": dataset.name,
            "description": dataset.description,
            "aligned_volume": {
                "name": dataset.name,
                "id": 1,
                "description": dataset.description,
                "image_source": f"precomputed://{base}/data/{dataset.name}/{image.name}" if image else None,
            },
            "segmentation_source": (
                f"graphene://{base}/segmentation/table/{dataset.name}" if dataset.has_segmentation else None
            ),
            "local_server": base,
            "viewer_site": base,
            # caveclient's synapse_query reads its table name here (None until synapses are added)
            "synapse_table": "synapses" if synapses().has_table(dataset.name) else None,
            "soma_table": None,
            "analysis_database": None,
            "viewer_resolution_x": rx,
            "viewer_resolution_y": ry,
            "viewer_resolution_z": rz,
        }
    )


_VIEWS = {name: globals()[name] for name in endpoints.CHUNKEDGRAPH}
_VIEWS.update({name: globals()[name] for name in endpoints.INFO})
endpoints.register(blueprint, {**endpoints.CHUNKEDGRAPH, **endpoints.INFO}, _VIEWS)
