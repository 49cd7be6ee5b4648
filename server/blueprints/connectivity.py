"""Synapses, partners and matrices over HTTP (logic in :mod:`segmentation.connectivity`).

Also a neuron's synapses as a Neuroglancer annotation source: ``/annotations/<dataset>/synapses``
answers the precomputed annotation format with a by-segment index worked out per request from the
graph of the moment asked, so the layer follows every merge and split.
"""

from __future__ import annotations

import io

import numpy as np
from flask import Blueprint, Response, jsonify, request

from segmentation import budget
from segmentation.connectivity import annotations, read_table, write_table
from segmentation.connectivity import cave as synapse_table
from segmentation.connectivity.celltyped import neurons_of_types, types_of
from segmentation.connectivity.columns import Columns
from segmentation.connectivity.queries import (
    ConnectivityError,
    check_roots,
    matrix,
    partners,
    roots_at_positions,
    synapses_of,
)
from segmentation.errors import NotFound

from .. import auth, endpoints
from ..request_input import TooLarge, cap_of, json_object, moment
from . import (
    SUPERVOXELS,
    cell_tags,
    dataset_named,
    graph_for,
    parse_dataset_ref,
    partners_by_type,
    private_if_needed,
    synapses,
    vocabulary_of,
)

blueprint = Blueprint("connectivity", __name__)
FORMATS = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
DEFAULT_PARTNERS = 100


def _root_parameter(value, what: str = "root_id") -> int:
    try:
        root = int(value)
        if not 0 < root < 2**64:
            raise ValueError
    except (TypeError, ValueError):
        raise ConnectivityError(f"{what} must be a neuron's uint64 root id, not {value!r}") from None
    return root


def _held(dataset: str):
    """(graph, the dataset's synapses), both caught up."""
    graph = graph_for(dataset)
    return graph, synapses().of(dataset, graph)


def _table_answer(columns: dict, fmt: str, filename: str) -> Response:
    if fmt not in FORMATS:
        raise ConnectivityError(f"format must be json, {' or '.join(FORMATS)}, not {fmt!r}")
    buffer = io.BytesIO()
    write_table(columns, buffer, fmt)
    return Response(
        buffer.getvalue(),
        mimetype=FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'},
    )


def _json_rows(columns: dict) -> list[dict]:
    """Rows with ids as strings (uint64 ids lose precision as JavaScript numbers), NaN as null."""
    out = {}
    for name, data in columns.items():
        if name.endswith("_id") and name != "id":
            out[name] = [str(int(v) & (2**64 - 1)) for v in data.tolist()]
        elif data.ndim == 2:
            out[name] = [[None if x != x else x for x in row] for row in data.tolist()]
        elif data.dtype.kind == "f":
            out[name] = [None if v != v else v for v in data.tolist()]
        else:
            out[name] = data.tolist()
    names = list(out)
    return [dict(zip(names, values)) for values in zip(*out.values())]


# ---- writes ---------------------------------------------------------------------------
def import_synapses(dataset):
    found = dataset_named(dataset)
    limit = cap_of("body bytes")
    if request.content_length is None or request.content_length > limit:
        raise TooLarge(
            f"send the table with a Content-Length of at most {limit:,} bytes; larger: `axonlink synapses import`"
        )
    fmt = request.args.get("format") or None
    if fmt is not None and fmt not in FORMATS:
        raise ConnectivityError(f"format must be {' or '.join(FORMATS)}, not {fmt!r}")
    scale = (1.0, 1.0, 1.0)
    if request.args.get("resolution"):
        scale = _resolution_scale(request.args["resolution"], found.voxel_resolution)
    incoming = read_table(request.get_data(cache=False), fmt, scale, max_rows=cap_of("rows"))
    report = synapses().add(found, incoming, auth.user_name(), origin=auth.origin(), budget=budget)
    return jsonify(report.to_json())


def _resolution_scale(text: str, voxel_resolution) -> tuple[float, float, float]:
    try:
        values = [float(v) for v in text.split(",")]
        if len(values) != 3 or not all(0 < v < 1e9 for v in values):
            raise ValueError
    except ValueError:
        raise ConnectivityError(f"resolution must be three positive numbers (nm per unit), not {text!r}") from None
    return tuple(v / float(r) for v, r in zip(values, voxel_resolution))


def remove_synapses(dataset):
    dataset_named(dataset)
    body = json_object('{"ids": [1, 2, 3]}')
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**63 for i in ids
    ):
        raise ConnectivityError('"ids" must be a list of synapse ids (positive integers)')
    if len(ids) > cap_of("ids"):
        raise TooLarge(f"at most {cap_of('ids'):,} ids per request")
    removed = synapses().remove(dataset, ids, auth.user_name(), origin=auth.origin())
    return jsonify({"removed": removed})


# ---- reads ----------------------------------------------------------------------------
def list_synapses(dataset):
    dataset_named(dataset)
    if not request.args.get("root_id"):
        raise ConnectivityError("give ?root_id= (a neuron); every synapse: /synapses/export")
    root = _root_parameter(request.args["root_id"])
    side = request.args.get("side", "both")
    if side not in ("pre", "post", "both"):
        raise ConnectivityError(f"side must be pre, post or both, not {side!r}")
    at = moment()
    graph, held = _held(dataset)
    check_roots(graph, [root], at)
    sides = ("pre", "post") if side == "both" else (side,)
    rows = Columns.concat([synapses_of(held, graph, [root], s, at) for s in sides])
    if len(rows):  # an autapse is found from both sides: once
        _, first = np.unique(rows.ids, return_index=True)
        rows = rows.take(np.sort(first))
    if len(rows) > cap_of("rows"):
        raise TooLarge(f"this neuron has {len(rows):,} synapses, more than {cap_of('rows'):,}: use the CLI")
    columns = synapse_table.table_columns(rows, graph, at)
    fmt = request.args.get("format", "json")
    if fmt == "json":
        return jsonify(
            {
                "dataset": dataset,
                "root_id": str(root),
                "at": at.isoformat() if at else None,
                "synapses": _json_rows(columns),
            }
        )
    return _table_answer(columns, fmt, f"{dataset}-{root}-synapses")


def export_synapses(dataset):
    dataset_named(dataset)
    at = moment()
    graph, held = _held(dataset)
    total = held.count(at)
    if total > cap_of("rows"):
        raise TooLarge(
            f"{total:,} synapses are more than {cap_of('rows'):,} per HTTP export: "
            f"`axonlink synapses export {dataset}` writes any number"
        )
    rows = synapse_table.rows_in_force(held, at)
    fmt = request.args.get("format", "csv")
    return _table_answer(synapse_table.table_columns(rows, graph, at), fmt, f"{dataset}-synapses")


def neuron_partners(dataset, root_id):
    dataset_named(dataset)
    at = moment()
    try:
        limit = int(request.args.get("limit", DEFAULT_PARTNERS))
    except ValueError:
        limit = 0
    if not 1 <= limit <= cap_of("partners"):
        raise ConnectivityError(f"limit must be from 1 to {cap_of('partners'):,}")
    graph, held = _held(dataset)
    found = partners(held, graph, root_id, at)
    listed = np.concatenate([side.roots[:limit] for side in found.values()])
    typed = types_of(cell_tags(), dataset, listed, at)
    answer = {"dataset": dataset, "root_id": str(root_id), "at": at.isoformat() if at else None}
    for name, side in found.items():
        means = side.mean_sizes
        answer[name] = {
            "synapses": int(side.counts.sum()),
            "partner_count": int((side.roots != 0).sum()),
            "partners": [
                {
                    "root_id": str(int(root)),
                    "synapses": int(count),
                    "mean_size": None if np.isnan(mean) else float(mean),
                    "cell_types": typed.get(int(root), []),
                }
                for root, count, mean in zip(side.roots[:limit], side.counts[:limit], means[:limit])
            ],
        }
    return jsonify(answer)


def _side(body: dict, name: str, dataset: str, at) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(labels, roots, label per root) of one side of a matrix request."""
    side = body.get(name)
    limit = cap_of("labels per side")
    if not isinstance(side, dict) or len(side) != 1 or not set(side) <= {"cell_types", "root_ids"}:
        raise ConnectivityError(f'"{name}" must be {{"cell_types": [...]}} or {{"root_ids": [...]}}')
    ((kind, values),) = side.items()
    if not isinstance(values, list) or not values:
        raise ConnectivityError(f'"{name}".{kind} must be a non-empty list')
    if len(values) > limit:
        raise TooLarge(f"at most {limit:,} {kind} per side")
    if kind == "cell_types":
        if not all(isinstance(v, str) and 0 < len(v) <= 256 for v in values):
            raise ConnectivityError("cell_types are names (strings)")
        roots, labels = neurons_of_types(cell_tags(), dataset, values, vocabulary_of(dataset), at)
        return list(values), roots, labels
    roots = [_root_parameter(v, "root_ids") for v in values]
    return [str(r) for r in roots], np.array(roots, dtype=np.uint64), np.arange(len(roots), dtype=np.int64)


def connectivity_matrix(dataset):
    dataset_named(dataset)
    body = json_object('{"pre": {"cell_types": ["L2/3 pyramidal"]}, "post": {"root_ids": ["…"]}}')
    at = None
    if body.get("t") not in (None, "", "now"):
        from segmentation.timestamps import parse_timestamp

        at = parse_timestamp(str(body["t"]))
    graph, held = _held(dataset)
    pre_labels, pre_roots, pre_codes = _side(body, "pre", dataset, at)
    post_labels, post_roots, post_codes = _side(body, "post", dataset, at)
    for kind, roots in (("pre", pre_roots), ("post", post_roots)):
        if "root_ids" in body[kind]:
            check_roots(graph, roots.tolist(), at)
    found = matrix(held, graph, (pre_roots, pre_codes), (post_roots, post_codes), len(pre_labels), len(post_labels), at)
    if request.args.get("format") == "arrow":
        return _matrix_arrow(found, pre_labels, post_labels)
    if request.args.get("format", "json") != "json":
        raise ConnectivityError("format must be json or arrow")
    means = np.round(found.mean_sizes, 2)
    means = (np.where(np.isnan(means), None, means) if np.isnan(means).any() else means).tolist()  # NaN: null
    return jsonify(
        {
            "dataset": dataset,
            "at": at.isoformat() if at else None,
            "pre": pre_labels,
            "post": post_labels,
            "neurons": {
                "pre": np.bincount(pre_codes, minlength=len(pre_labels)).tolist(),
                "post": np.bincount(post_codes, minlength=len(post_labels)).tolist(),
            },
            "counts": found.counts.tolist(),
            "mean_size": means,
        }
    )


def _matrix_arrow(found, pre_labels: list[str], post_labels: list[str]) -> Response:
    """The matrix's non-zero cells as an Arrow IPC stream (pre, post, synapses, mean_size): a
    thousand types by a thousand is a million cells, which JSON spends most of a second writing."""
    import pyarrow as pa

    pre, post = np.nonzero(found.counts)
    table = pa.table(
        {
            "pre": pa.DictionaryArray.from_arrays(pa.array(pre.astype(np.int32)), pa.array(pre_labels)),
            "post": pa.DictionaryArray.from_arrays(pa.array(post.astype(np.int32)), pa.array(post_labels)),
            "synapses": pa.array(found.counts[pre, post]),
            "mean_size": pa.array(found.mean_sizes[pre, post], from_pandas=True),  # NaN (no size): null
        }
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return Response(sink.getvalue().to_pybytes(), mimetype="application/vnd.apache.arrow.stream")


def connectivity_search():
    from segmentation.connectivity.by_type import parse_phrase

    text = request.args.get("q", "")
    phrase = parse_phrase(text)
    if phrase is None:
        raise ConnectivityError("q must start with 'inputs to' or 'outputs of', e.g. ?q=inputs to L2/3 pyramidal")
    answers = partners_by_type(phrase)
    response = jsonify(
        {
            "query": text,
            "direction": phrase.direction,
            "cell_type": phrase.term,
            "at": phrase.at.isoformat() if phrase.at else None,
            "datasets": [answer.to_json() for answer in answers],
        }
    )
    return private_if_needed(response, [answer.dataset for answer in answers])


# ---- the annotation layer -------------------------------------------------------------
def synapse_annotations(dataset_ref, key):
    name, at, view = parse_dataset_ref(dataset_ref)
    found = dataset_named(name)
    if view == SUPERVOXELS:
        raise NotFound("synapse annotations name neurons: ask NAME or NAME@moment, not @supervoxels")
    if key == "info":
        lower = np.asarray(found.voxel_offset)
        info = annotations.info(lower, lower + np.asarray(found.volume_size), found.voxel_resolution)
        return _binary(jsonify(info))
    if key == f"{annotations.SPATIAL_KEY}/{annotations.SPATIAL_CHUNK_NAME}":
        return _binary(Response(annotations.EMPTY_CHUNK, mimetype="application/octet-stream"))
    kind, _, ident = key.partition("/")
    if not ident.isdigit() or len(ident) > 20 or int(ident) >= 2**64:
        raise NotFound(f"no annotation file {key!r}")
    graph, held = _held(name)
    number = int(ident)
    if kind in annotations.RELATIONSHIP_KEYS:
        side = "pre" if kind == annotations.RELATIONSHIP_KEYS[0] else "post"
        rows = synapses_of(held, graph, [number], side, at) if number and graph.is_root(number) else Columns.empty()
        body = annotations.encode_multiple(rows.ids, rows.pre_xyz + 0.5, rows.post_xyz + 0.5, rows.size)
        return _binary(Response(body, mimetype="application/octet-stream"))
    if kind == annotations.BY_ID_KEY:
        one = held.by_id(number)
        if one is None or not (one[1][0] == np.inf or at is not None and one[1][0] > at.timestamp()):
            raise NotFound(f"no synapse {number} in force")
        row = one[0]
        pre_root = int(roots_at_positions(graph, row.pre_pos, at)[0])
        post_root = int(roots_at_positions(graph, row.post_pos, at)[0])
        body = annotations.encode_by_id(
            number, row.pre_xyz[0] + 0.5, row.post_xyz[0] + 0.5, float(row.size[0]), pre_root, post_root
        )
        return _binary(Response(body, mimetype="application/octet-stream"))
    raise NotFound(f"no annotation file {key!r}")


def _binary(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-cache")  # a neuron's synapses change with edits
    return response


_VIEWS = {name: globals()[name] for name in endpoints.CONNECTIVITY}
endpoints.register(blueprint, endpoints.CONNECTIVITY, _VIEWS)
