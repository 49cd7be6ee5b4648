"""Cell-type tags, the vocabulary and search over HTTP (logic in :mod:`segmentation.celltypes`)."""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify, request

from segmentation.access import NotVisible
from segmentation.celltypes.csvio import CsvError, read_tag_rows, write_tags
from segmentation.celltypes.query import QueryError, parse
from segmentation.celltypes.search import search
from segmentation.celltypes.tags import TagError, TagNotFound
from segmentation.celltypes.vocabulary import UnknownTerm, how_to_add
from segmentation.datasets import DatasetNotFound

from .. import auth, endpoints, hosts
from ..errors import json_error
from ..request_input import cap_of, flag, json_object, moment
from . import cell_tags, dataset_named, vocabulary_of

blueprint = Blueprint("celltypes", __name__)
MAX_IMPORT_BYTES = 50 * 1024 * 1024


@blueprint.errorhandler(UnknownTerm)
@blueprint.errorhandler(TagError)
def _refused_with_suggestions(error):
    response = json_error(error.status, error.message())
    body = response.get_json()
    if getattr(error, "suggestions", None):
        body["suggestions"] = list(error.suggestions)
    term = getattr(error, "unknown_term", None) or getattr(error, "term", None)
    if term:
        body["how_to_add"] = how_to_add(term, (request.view_args or {}).get("dataset") or request.args.get("dataset"))
    response.set_data(json.dumps(body))
    return response


def _json_body() -> dict:
    return json_object('{"position": [x, y, z], "term": "astrocyte"}')


def add_tag(dataset):
    found = dataset_named(dataset)
    body = _json_body()
    if "position" not in body or "term" not in body:
        raise TagError('a tag needs "position" [x, y, z] (voxels) and "term"')
    tag = cell_tags().add(
        found,
        body["position"],
        body["term"],
        auth.user_name(),
        vocabulary_of(dataset),
        note=body.get("note") or "",
        confidence=body.get("confidence"),
        origin=auth.origin(),
    )
    root = int(cell_tags().roots_of(dataset, [tag.sv_id], None)[0])
    response = jsonify(tag.to_json(root))
    response.status_code = 201
    return response


def list_tags(dataset):
    dataset_named(dataset)
    root = request.args.get("root_id")
    try:
        root_id = int(root) if root else None
        if root_id is not None and not 0 <= root_id < 2**64:
            raise ValueError
    except ValueError:
        raise TagError(f"root_id must be a uint64 id, not {root!r}") from None
    include_retracted = flag("include_retracted")
    at = moment()
    found = cell_tags().of_dataset(dataset, at=at, root_id=root_id, include_retracted=include_retracted)
    return jsonify(
        {"dataset": dataset, "at": at.isoformat() if at else None, "tags": [tag.to_json(root) for tag, root in found]}
    )


def retract_tag(tag_id):
    tag = cell_tags().get(tag_id)
    try:
        auth.require(tag.dataset, "proofreader")
    except NotVisible:
        raise TagNotFound(f"no tag {tag_id}") from None
    return jsonify(cell_tags().retract(tag_id, auth.user_name(), origin=auth.origin()).to_json())


def import_tags(dataset):
    found = dataset_named(dataset)
    if request.content_length and request.content_length > MAX_IMPORT_BYTES:
        return json_error(413, f"the CSV is larger than the limit of {MAX_IMPORT_BYTES} bytes")
    try:
        text = request.get_data(cache=False).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvError("the CSV is not UTF-8 text") from None
    rows, rejected = read_tag_rows(text)
    added, refused = cell_tags().add_many(
        found, [row for _, row in rows], auth.user_name(), vocabulary_of(dataset), origin=auth.origin()
    )
    rejected += [(rows[number - 1][0], reason) for number, reason in refused]
    return jsonify({"added": len(added), "rejected": [{"row": n, "reason": r} for n, r in sorted(rejected)]})


def export_tags(dataset):
    dataset_named(dataset)
    found = cell_tags().of_dataset(dataset, at=moment())
    return Response(
        write_tags(found),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{dataset}-cell-types.csv"'},
    )


def search_neurons():
    query = parse(request.args.get("q", ""))
    try:
        page = int(request.args.get("page", 1))
        per_page = int(request.args.get("per_page", 50))
    except ValueError:
        raise QueryError("page and per_page must be integers") from None
    if page < 1 or not 1 <= per_page <= cap_of("per_page"):
        raise QueryError(f"page must be >= 1 and per_page between 1 and {cap_of('per_page')}")
    names = [d.name for d in auth.visible_datasets()]
    found = search(cell_tags(), query, vocabulary_of, names, page=page, per_page=per_page)
    base = hosts.base_url()
    return jsonify(
        {
            "query": query.text,
            "at": query.at.isoformat() if query.at else None,
            "total": found.total,
            "counts": found.counts,
            "page": page,
            "per_page": per_page,
            "results": [{**hit.to_json(), "link": base + hit.link} for hit in found.hits],
        }
    )


def get_vocabulary():
    dataset = request.args.get("dataset")
    if dataset:
        try:
            auth.require(dataset)
        except NotVisible:
            raise DatasetNotFound(f"no dataset named {dataset!r}") from None
        dataset_named(dataset)
    return jsonify(vocabulary_of(dataset or None).to_dict())


_VIEWS = {name: globals()[name] for name in endpoints.CELLTYPES}
endpoints.register(blueprint, endpoints.CELLTYPES, _VIEWS)
