"""Pages for people: server-rendered HTML over the same services the API answers from.

Each page gathers what it shows from the workspace's services (the search, the graph, the tags)
and hands plain values to a Jinja template (``server/templates``) that extends ``layout.html``:
the shared header, readable without JavaScript. Scripts only add to a page (the search updates as
one types); everything they fetch is a page or an API route of the route table.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from flask import Blueprint, render_template, request

from frontend_config import default_state
from segmentation.celltypes.query import QueryError, parse
from segmentation.celltypes.search import search
from segmentation.errors import NotFound

from .. import auth, endpoints, hosts
from . import cell_tags, dataset_named, graph_for, has_graph, vocabulary_of

blueprint = Blueprint("pages", __name__)

PER_PAGE = 50
EXAMPLES = ("L2/3 pyramidal", "astrocyte OR microglia", "pyramidal NOT L5 dataset:demo", "user:alice t:2026-12-01")


class NotANeuron(NotFound):
    """A number that is no root of the dataset's graph (now or before)."""


@blueprint.app_context_processor
def _signed_in():
    """Every page's header says who is signed in (``layout.html``)."""
    return {"current_user": auth.principal}


def search_page():
    text = request.args.get("q", "")
    context = {"q": text, "examples": EXAMPLES, "found": None, "problem": None, "pages": None}
    names = [d.name for d in auth.visible_datasets()]
    context["tagged"] = _any_tagged(names)
    status = 200
    if text.strip():
        try:
            page = _page_number(request.args.get("page", "1"))
            found = search(cell_tags(), parse(text), vocabulary_of, names, page=page, per_page=PER_PAGE)
        except QueryError as error:
            context["problem"] = error.message()
            status = 400
        else:
            context["found"] = found
            context["pages"] = _paging(text, page, found.total)
            context["bars_types"] = _bars(found.type_counts)
            context["bars_datasets"] = _bars(found.counts)
    return render_template("search.html", **context), status


def _any_tagged(datasets: list[str]) -> bool:
    """Whether any of ``datasets`` (those the caller may see) has a tag: for an honest empty page."""
    index = cell_tags().sync()
    codes = [index.datasets.codes.get(name) for name in datasets]
    return any(code is not None and index.positions_of(code).size for code in codes)


def _page_number(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 10**6:
        raise QueryError("page must be a whole number from 1")
    return int(value)


def _paging(text: str, page: int, total: int) -> dict:
    last = max(1, -(-total // PER_PAGE))
    link = lambda n: "/search?" + urlencode({"q": text, "page": n})  # noqa: E731
    return {
        "page": page,
        "last": last,
        "first_shown": (page - 1) * PER_PAGE + 1 if total else 0,
        "last_shown": min(total, page * PER_PAGE),
        "previous": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if page < last else None,
    }


def _bars(counts: dict[str, int], most: int = 20) -> list[dict]:
    """The largest counts as bars (width in percent of the largest) for the page's SVG chart."""
    shown = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:most]
    top = max((n for _, n in shown), default=0) or 1
    return [{"label": label, "count": n, "width": round(100 * n / top, 1)} for label, n in shown]


def neuron_page(dataset: str, root_id: int):
    found = dataset_named(dataset)
    graph = graph_for(dataset)
    if not graph.is_root(root_id):
        raise NotANeuron(f"{root_id} is not a neuron of {dataset} (neither now nor before)")
    current = graph.is_latest([root_id])[0]
    became = [] if current else graph.latest_roots(root_id)
    shown_roots = [root_id] if current else became
    tags = cell_tags().of_dataset(dataset, root_id=root_id, include_retracted=True) if current else []
    edits = graph.tabular_change_log(root_id)
    for row in edits:
        row["when"] = _iso_from_ms(row["timestamp"])
        row["kind"] = "merge" if row["is_merge"] else "split"
    context = {
        "dataset": found,
        "root_id": root_id,
        "current": current,
        "became": became,
        "created": graph.root_timestamps([root_id])[0],
        "supervoxels": len(graph.leaves(root_id)),
        "tags_in_force": [tag for tag, _ in tags if tag.retracted_at is None],
        "tag_history": sorted((tag for tag, _ in tags), key=lambda tag: tag.created_at, reverse=True),
        "edits": list(reversed(edits)),  # newest first
        "viewer_link": _viewer_link(found, shown_roots),
    }
    return render_template("neuron.html", **context)


def _iso_from_ms(milliseconds: int) -> str:
    return datetime.fromtimestamp(milliseconds / 1000, UTC).isoformat(timespec="seconds")


def _viewer_link(dataset, roots: list[int]) -> str:
    """The viewer with the dataset's default state and ``roots`` selected in its proofread layer."""
    state = default_state(dataset, hosts.base_url(), graphene=has_graph(dataset.name))
    if state["layers"]:
        state["layers"][-1]["segments"] = [str(root) for root in roots]
        state["selectedLayer"] = {"layer": state["layers"][-1]["name"], "visible": True}
    return "/#!" + quote(json.dumps(state, separators=(",", ":")), safe="")


endpoints.register(blueprint, endpoints.PAGES, {"search_page": search_page, "neuron_page": neuron_page})
