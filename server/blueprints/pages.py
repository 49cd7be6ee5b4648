"""Pages for people: server-rendered HTML over the same services the API answers from.

Each page gathers what it shows from the workspace's services (the search, the graph, the tags)
and hands plain values to a Jinja template (``server/templates``) that extends ``layout.html``:
the shared header, readable without JavaScript. Scripts only add to a page (the search updates as
one types); everything they fetch is a page or an API route of the route table.
"""

from __future__ import annotations

import json
import re
from collections import deque
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

import numpy as np
from flask import Blueprint, render_template, request

from frontend_config import default_state, layer_templates
from segmentation.access.policy import at_least
from segmentation.celltypes.query import QueryError, parse
from segmentation.celltypes.search import search, tagged_per_type
from segmentation.connectivity.by_type import parse_phrase
from segmentation.errors import Invalid, NotFound
from state_links.aliases import NAME_RULE
from state_links.links import pinned_source
from state_links.my_links import PER_PAGE as MY_LINKS_PER_PAGE

from .. import auth, endpoints, hosts
from ..request_input import BadInput, moment
from ..workspace import workspace
from . import (
    audit_entries,
    cell_tags,
    dataset_named,
    graph_for,
    has_graph,
    may_view_datasets,
    partners_by_type,
    state_visible,
    synapses,
    visible_targets,
    vocabulary_of,
)

blueprint = Blueprint("pages", __name__)

PER_PAGE = 50
EXAMPLES = ("L2/3 pyramidal", "astrocyte OR microglia", "pyramidal NOT L5 dataset:demo", "user:alice t:2026-12-01")


class NotANeuron(NotFound):
    """A number that is no root of the dataset's graph (now or before)."""


@blueprint.app_context_processor
def _signed_in():
    """Every page's header says who is signed in (``layout.html``)."""
    return {"current_user": auth.principal}


def my_links():
    return workspace().my_links


# ---- the audit log -------------------------------------------------------------------------------
AUDIT_PER_PAGE = 100


def audit_page():
    """The audit log for admins, filtered and paged (``before_id`` of the last entry shown: older)."""
    if not auth.principal().authenticated:
        return render_template("audit.html", signed_in=False), 401
    entries = audit_entries(limit=AUDIT_PER_PAGE)
    filters = {key: request.args.get(key, "") for key in ("dataset", "user", "action", "since")}
    older = None
    if len(entries) == int(request.args.get("limit", AUDIT_PER_PAGE)) and entries:
        kept = {**{k: v for k, v in filters.items() if v}, "limit": request.args.get("limit", "")}
        older = urlencode({**{k: v for k, v in kept.items() if v}, "before_id": entries[-1]["id"]})
    datasets = sorted(
        d.name for d in auth.visible_datasets() if auth.principal().site_admin or at_least(auth.role(d.name), "admin")
    )
    return render_template(
        "audit.html", signed_in=True, entries=entries, filters=filters, older=older, datasets=datasets
    )


# ---- a dataset's page --------------------------------------------------------------------------
WEEKS_CHARTED = 52
_SUMMARIES: dict = {}  # (dataset, graph ingest time, operation) -> (neurons now, edits per week); a few kept


def dataset_page(dataset: str):
    found = dataset_named(dataset)
    base = hosts.base_url()
    graph = graph_for(dataset) if has_graph(dataset) else None
    role = auth.role(dataset)
    context = {
        "dataset": found,
        "base": base,
        "bibtex": _bibtex(found, base),
        "plain_citation": _plain_citation(found, base),
        "viewer_link": _viewer_link(found, []),
        "graph": graph is not None,
        "is_admin": at_least(role, "admin"),
        "can_edit": at_least(role, "proofreader"),
        "layer_urls": {layer.name: f"{base}/data/{found.name}/{layer.name}" for layer in found.layers},
    }
    if graph is not None:
        with graph.caught_up():
            graph.sync()
            context["supervoxels"] = len(graph.supervoxel_ids)
            context["neurons"], weeks = _graph_summary(graph)
            context["operations"] = graph.seq
        context["bars_weeks"] = _bars(weeks, by_size=False)
        tagged, per_type = tagged_per_type(cell_tags(), dataset)
        context["tagged"] = tagged
        context["bars_types"] = _bars(per_type)
    if context["is_admin"]:
        context["grants"] = auth.accounts().grants(dataset)
    return render_template("dataset.html", **context)


def _graph_summary(graph) -> tuple[int, dict[str, int]]:
    """(neurons now: its supervoxels' distinct roots, edits per week): worked out once per edit per
    worker, not on every request (the first walks every supervoxel, the second every operation)."""
    key = (graph.dataset, graph.created_at, graph.seq)
    found = _SUMMARIES.get(key)
    if found is None:
        found = (len(np.unique(graph.roots(graph.supervoxel_ids))), _edits_per_week(graph))
        if len(_SUMMARIES) >= 64:
            _SUMMARIES.clear()
        _SUMMARIES[key] = found
    return found


def _edits_per_week(graph) -> dict[str, int]:
    """Operations per week (by the Monday it starts on), the last WEEKS_CHARTED weeks with any."""
    weeks: dict[str, int] = {}
    for op in graph.operations_between(None, None):
        day = op["created_at"].astimezone(UTC).date()
        monday = (day - timedelta(days=day.weekday())).isoformat()
        weeks[monday] = weeks.get(monday, 0) + 1
    return dict(sorted(weeks.items())[-WEEKS_CHARTED:])


def _plain_citation(dataset, base: str) -> str:
    where = f"{base}/datasets/{dataset.name}"
    if dataset.citation:
        return f"{dataset.citation} Served by axonlink: {where}"
    return f"{dataset.name}. Served by axonlink: {where} (accessed {datetime.now(UTC).date().isoformat()})."


def _bibtex(dataset, base: str) -> str:
    """A BibTeX entry for the dataset: its citation as the note, a DOI when the citation names one."""
    key = re.sub(r"[^A-Za-z0-9]+", "_", dataset.name).strip("_") or "dataset"
    year = str(dataset.created_at)[:4]
    fields = [
        ("title", dataset.description or dataset.name),
        ("howpublished", f"\\url{{{base}/datasets/{dataset.name}}}"),
        ("year", year),
    ]
    doi = re.search(r"10\.\d{4,9}/[^\s\"<>{}\\]+", dataset.citation or "")
    if doi:
        fields.append(("doi", doi.group(0).rstrip(".,;")))
    if dataset.citation:
        fields.append(("note", dataset.citation))
    if dataset.license:
        fields.append(("license", dataset.license))
    verbatim = ("howpublished", "doi")  # a URL and a DOI are read as they are (biblatex, hyperref)
    body = ",\n".join(f"  {name} = {{{value if name in verbatim else _bibtex_text(value)}}}" for name, value in fields)
    return f"@misc{{{key},\n{body}\n}}"


def _bibtex_text(value: str) -> str:
    """A field's text with BibTeX's special characters escaped, a backslash too (braces stay balanced)."""
    return re.sub(r"[\\{}%&$#_]", lambda m: r"\textbackslash{}" if m.group(0) == "\\" else "\\" + m.group(0), value)


def search_page():
    text = request.args.get("q", "")
    context = {"q": text, "examples": EXAMPLES, "found": None, "problem": None, "pages": None, "connectivity": None}
    names = [d.name for d in auth.visible_datasets()]
    context["tagged"] = _any_tagged(names)
    status = 200
    try:
        context["heatmap"], context["heatmap_form"] = _heatmap(names)
    except Invalid as error:  # a type the vocabulary does not know, said beside the form
        context["heatmap"], context["heatmap_problem"], status = None, error.message(), 400
        context["heatmap_form"] = {**_heatmap_form(names), "problem": error.message()}
    phrase = None
    if text.strip():
        try:
            phrase = parse_phrase(text)
            if phrase is not None:  # "inputs to L2/3 pyramidal": partners grouped by their types
                context["connectivity"] = [
                    {"answer": answer, "bars": _bars({g.label: g.synapses for g in answer.groups})}
                    for answer in partners_by_type(phrase)
                ]
                context["phrase"] = phrase
        except Invalid as error:
            context["problem"], status = error.message(), 400
    if phrase is None and text.strip() and not context["problem"]:
        try:
            page = _page_number(request.args.get("page", "1"))
            found = search(cell_tags(), parse(text), vocabulary_of, names, page=page, per_page=PER_PAGE)
            context["pages"] = _paging(text, page, found.total)
        except Invalid as error:  # the query's words (an unknown type, a bad moment), said on the page
            context["problem"] = error.message()
            status = 400
        else:
            context["found"] = found
            context["bars_types"] = _bars(found.type_counts)
            context["bars_datasets"] = _bars(found.counts)
    return render_template("search.html", **context), status


MAX_HEATMAP_TYPES = 30  # per side on the page (the API takes 1,000)


def _heatmap_form(names: list[str]) -> dict:
    wired = [name for name in names if synapses().has_table(name)]
    return {
        "datasets": wired,
        "dataset": request.args.get("dataset") or (wired[0] if wired else ""),
        "pre": request.args.get("pre", ""),
        "post": request.args.get("post", ""),
    }


def _heatmap(names: list[str]) -> tuple[dict | None, dict]:
    """The synapse counts between the cell types asked (``?pre=a,b&post=c,d&dataset=NAME``) as an
    SVG heatmap's cells, and the form's values (datasets with synapses the caller may see)."""
    from segmentation.connectivity.celltyped import neurons_of_types
    from segmentation.connectivity.queries import matrix

    table = synapses()
    form = _heatmap_form(names)
    wired = form["datasets"]
    pre = [t.strip() for t in form["pre"].split(",") if t.strip()][:MAX_HEATMAP_TYPES]
    post = [t.strip() for t in form["post"].split(",") if t.strip()][:MAX_HEATMAP_TYPES]
    if not (pre and post and form["dataset"] in wired):
        return None, form
    name = form["dataset"]
    graph = graph_for(name)
    vocabulary = vocabulary_of(name)
    a = neurons_of_types(cell_tags(), name, pre, vocabulary, None)
    b = neurons_of_types(cell_tags(), name, post, vocabulary, None)
    found = matrix(table.of(name, graph), graph, a, b, len(pre), len(post), None)
    top = max(int(found.counts.max()), 1)
    cell, left, head = 34, 9 * max(len(t) for t in pre) + 12, 9 * max(len(t) for t in post) + 12
    cells = [
        {
            "x": left + j * cell,
            "y": head + i * cell,
            "count": int(n),
            "shade": round(0.08 + 0.92 * (np.log1p(n) / np.log1p(top)), 3) if n else 0,
            "title": f"{pre[i]} → {post[j]}: {int(n)} synapse(s)",
        }
        for i, row in enumerate(found.counts)
        for j, n in enumerate(row)
    ]
    return {
        "pre": [{"label": t, "y": head + i * cell + cell // 2 + 4} for i, t in enumerate(pre)],
        "post": [{"label": t, "x": left + j * cell + cell // 2} for j, t in enumerate(post)],
        "cells": cells,
        "cell": cell,
        "left": left,
        "head": head,
        "width": left + len(post) * cell + 10,
        "height": head + len(pre) * cell + 10,
        "dataset": name,
        "total": int(found.counts.sum()),
    }, form


def _any_tagged(datasets: list[str]) -> bool:
    """Whether any of ``datasets`` (those the caller may see) has a tag: for an honest empty page."""
    index = cell_tags().sync()
    codes = [index.datasets.codes.get(name) for name in datasets]
    return any(code is not None and index.positions_of(code).size for code in codes)


def _page_number(value: str) -> int:
    if not (value.isascii() and value.isdigit() and len(value) <= 7) or not 1 <= int(value) <= 10**6:
        raise QueryError("page must be a whole number from 1")
    return int(value)


def _paging(text: str, page: int, total: int) -> dict:
    last = max(1, -(-total // PER_PAGE))
    if page > last:
        raise QueryError(f"page {page} is past the last page of these results ({last})")
    link = lambda n: "/search?" + urlencode({"q": text, "page": n})  # noqa: E731
    return {
        "page": page,
        "last": last,
        "first_shown": (page - 1) * PER_PAGE + 1 if total else 0,
        "last_shown": min(total, page * PER_PAGE),
        "previous": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if page < last else None,
    }


def _bars(counts: dict[str, int], most: int | None = 20, by_size: bool = True) -> list[dict]:
    """Counts as bars (width in percent of the largest) for a page's SVG chart: the ``most`` largest,
    or (``by_size`` False) all of them in label order, as days are."""
    if by_size:
        shown = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:most]
    else:
        shown = sorted(counts.items())
    top = max((n for _, n in shown), default=0) or 1
    return [{"label": label, "count": n, "width": round(100 * n / top, 1)} for label, n in shown]


def neuron_page(dataset: str, root_id: int):
    found = dataset_named(dataset)
    graph = graph_for(dataset)
    with graph.caught_up():  # one catch-up with the log: a neuron made a moment ago elsewhere is found
        graph.sync()
        return _neuron_page(found, graph, root_id)


def _neuron_page(found, graph, root_id: int):
    dataset = found.name
    if not graph.is_root(root_id):
        raise NotANeuron(f"{root_id} is not a neuron of {dataset} (neither now nor before)")
    current = graph.is_latest([root_id])[0]
    became = [] if current else graph.latest_roots(root_id)
    shown_roots = [root_id] if current else became
    tags = cell_tags().of_dataset(dataset, root_id=root_id, include_retracted=True) if current else []
    edits = graph.tabular_change_log(root_id)
    for row in edits:
        row["when"] = _iso_from_ms(row["timestamp"])
        row["kind"] = _operation_kind(graph, row["operation_id"], row["is_merge"])
    retired = None if current else graph.retired_by(root_id)
    nodes, edges = graph.family(root_id)
    kinds = {node["made"]: _operation_kind(graph, node["made"]) for node in nodes if node["made"]}
    at = moment("at")  # "as it was at": the root its supervoxels had then, in a viewer pinned there
    then = None
    if at is not None:
        supervoxel, _ = graph.representative(root_id)
        then = {"when": at.astimezone(UTC).isoformat(timespec="seconds"), "root": graph.root(supervoxel, at)}
        then["link"] = _viewer_link(found, [then["root"]], at)
    context = {
        "my_links": _my_links_showing(graph, dataset, root_id),
        "lineage": _lineage_drawing(dataset, root_id, nodes, edges, kinds),
        "family_size": len(nodes),
        "then": then,
        "can_edit": at_least(auth.role(dataset), "proofreader"),  # undo and redo buttons
        "retired": retired
        and {
            "id": retired["id"],
            "kind": retired["kind"],
            "user": retired["user_id"],
            "when": retired["created_at"].astimezone(UTC).isoformat(timespec="seconds"),
            "target": retired.get("target_operation_id"),
        },
        "dataset": found,
        "root_id": root_id,
        "current": current,
        "became": became,
        "created": graph.root_timestamps([root_id])[0],
        "supervoxels": len(graph.leaves(root_id)),
        "box": graph.bounding_box(root_id),
        "tags_in_force": [tag for tag, _ in tags if tag.retracted_at is None],
        "tag_history": sorted((tag for tag, _ in tags), key=lambda tag: tag.created_at, reverse=True),
        "edits": list(reversed(edits)),  # newest first
        "viewer_link": _viewer_link(found, shown_roots),
        "connectivity": _partner_tables(found, graph, root_id) if current else None,
    }
    return render_template("neuron.html", **context)


PARTNERS_SHOWN = 20


def _partner_tables(found, graph, root_id: int) -> dict | None:
    """The neuron's input and output partners now (the most synapses first), with their cell types,
    or None when its dataset has no synapses."""
    from segmentation.connectivity.celltyped import types_of
    from segmentation.connectivity.queries import partners

    table = synapses()
    if not table.has_table(found.name):
        return None
    sides = partners(table.of(found.name, graph), graph, root_id, None)
    shown = np.concatenate([side.roots[:PARTNERS_SHOWN] for side in sides.values()])
    typed = types_of(cell_tags(), found.name, shown, None)
    answer = {}
    for name, side in sides.items():
        means = side.mean_sizes
        answer[name] = {
            "synapses": int(side.counts.sum()),
            "partners": int((side.roots != 0).sum()),
            "rows": [
                {
                    "root": int(root),
                    "synapses": int(count),
                    "mean_size": None if np.isnan(mean) else round(float(mean), 1),
                    "types": typed.get(int(root), []),
                }
                for root, count, mean in zip(
                    side.roots[:PARTNERS_SHOWN], side.counts[:PARTNERS_SHOWN], means[:PARTNERS_SHOWN]
                )
            ],
        }
    top = [row["root"] for name in ("inputs", "outputs") for row in answer[name]["rows"][:5] if row["root"]]
    answer["viewer_link"] = _viewer_link(found, [root_id, *dict.fromkeys(r for r in top if r != root_id)])
    answer["api"] = f"/api/v1/datasets/{found.name}/neurons/{root_id}/partners?limit=1000"
    return answer


def _iso_from_ms(milliseconds: int) -> str:
    return datetime.fromtimestamp(milliseconds / 1000, UTC).isoformat(timespec="seconds")


def _viewer_link(dataset, roots: list[int], at: datetime | None = None) -> str:
    """The viewer with the dataset's default state and ``roots`` selected in its proofread layer;
    ``at``: that layer pinned to the moment (root ids as they were then)."""
    state = default_state(dataset, hosts.base_url(), graphene=has_graph(dataset.name) and at is None)
    if state["layers"]:
        layer = state["layers"][-1]
        layer["segments"] = [str(root) for root in roots]
        if at is not None:
            layer["source"] = pinned_source(hosts.base_url(), dataset.name, f"{at.timestamp():.6f}")
            layer["name"] = f"{layer['name']} at {at.astimezone(UTC).isoformat(timespec='seconds')}"
        state["selectedLayer"] = {"layer": layer["name"], "visible": True}
    return "/#!" + quote(json.dumps(state, separators=(",", ":")), safe="")


LINEAGE_COLUMN, LINEAGE_ROW = 170, 34


MY_LINKS_SHOWN = 20


def _my_links_showing(graph, dataset: str, root_id: int) -> list[dict] | None:
    """The signed-in caller's own links that show this neuron: selecting it as it was then, or a
    supervoxel of it now (links stay private: only one's own are listed); None when signed out."""
    me = auth.principal()
    if not me.authenticated:
        return None
    rows = [row for row in my_links().anchored_in(me.name, dataset) if graph.has_supervoxel(row["sv_id"])]
    if not rows:
        return []
    now = graph.roots(np.array([row["sv_id"] for row in rows], dtype=np.uint64))
    shown, seen = [], set()
    for row, root in zip(rows, now.tolist()):
        if row["short_id"] in seen or root_id not in (row["segment_id"], int(root)):
            continue
        seen.add(row["short_id"])
        if state_visible(row["short_id"]):
            shown.append({**row, "now": int(root) == root_id})
        if len(shown) >= MY_LINKS_SHOWN:
            break
    return shown


def _operation_kind(graph, operation_id: int, is_merge: bool | None = None) -> str:
    """ "merge" or "split"; a replay says what it replayed ("undo of 12") and, when ``is_merge`` is
    given, what it did: "split (undo of 12)"."""
    op = graph.operation(operation_id)
    if op["kind"] not in ("undo", "redo"):
        return op["kind"]
    replay = f"{op['kind']} of {op.get('target_operation_id')}"
    if is_merge is None:
        return replay
    return f"{'merge' if is_merge else 'split'} ({replay})"


def _lineage_drawing(dataset: str, root_id: int, nodes: list[dict], edges, kinds: dict) -> dict | None:
    """The neuron's family as an SVG layout: one column per operation (oldest left), its roots in it."""
    if len(nodes) < 2:
        return None
    columns = sorted({node["made"] for node in nodes})
    rows: dict[int, int] = {}
    placed = {}
    for node in sorted(nodes, key=lambda n: (n["made"], n["id"])):
        column = columns.index(node["made"])
        row = rows.get(column, 0)
        rows[column] = row + 1
        placed[node["id"]] = {
            **node,
            "x": 20 + column * LINEAGE_COLUMN,
            "y": 40 + row * LINEAGE_ROW,
            "href": f"/datasets/{dataset}/neurons/{node['id']}",
            "is_self": node["id"] == root_id,
        }
    lines = [
        {"x1": placed[a]["x"] + 8, "y1": placed[a]["y"], "x2": placed[b]["x"] - 8, "y2": placed[b]["y"]}
        for a, b in edges
        if a in placed and b in placed
    ]
    return {
        "nodes": list(placed.values()),
        "lines": lines,
        "columns": [
            {"x": 20 + i * LINEAGE_COLUMN, "label": f"{made}: {kinds.get(made, '')}" if made else "ingest"}
            for i, made in enumerate(columns)
        ],
        "width": 40 + len(columns) * LINEAGE_COLUMN,
        "height": 50 + max(rows.values()) * LINEAGE_ROW,
    }


# ---- the review of proofreading between two moments -----------------------------------------
DEFAULT_WINDOW = timedelta(days=7)
MAX_LISTED = 500  # operations listed on one page (all are counted)
MAX_USER_LENGTH = 256


def changes_index():
    """The header's "Changes": every visible dataset with a graph, its edits this week, a link each."""
    since = datetime.now(UTC) - DEFAULT_WINDOW
    rows = []
    for found in auth.visible_datasets():
        if not has_graph(found.name):
            continue
        graph = graph_for(found.name)
        people: set[str] = set()
        count = 0
        for op in graph.operations_between(since, None):
            count += 1
            people.add(op["user_id"])
        rows.append({"name": found.name, "edits": count, "people": len(people), "all": graph.seq})
    return render_template("changes_index.html", rows=rows, since=since.isoformat(timespec="seconds"))


def changes_page(dataset: str):
    found = dataset_named(dataset)
    graph = graph_for(dataset)
    until = moment("until") or datetime.now(UTC)
    since = moment("since") or until - DEFAULT_WINDOW
    user = request.args.get("user", "").strip() or None
    if user is not None and len(user) > MAX_USER_LENGTH:
        raise BadInput(f"user must be at most {MAX_USER_LENGTH} characters")
    if since > until:
        raise BadInput("since must not be after until")
    per_user: dict[str, dict[str, int]] = {}
    per_day: dict[str, int] = {}
    newest: deque = deque(maxlen=MAX_LISTED)  # the operations listed; all are counted
    total = 0
    for op in graph.operations_between(since, until, user):
        total += 1
        newest.append(op)
        kind = _kind_of(op)
        counts = per_user.setdefault(op["user_id"], {"merge": 0, "split": 0, "undo/redo": 0, "total": 0})
        counts[kind] += 1
        counts["total"] += 1
        day = op["created_at"].astimezone(UTC).date().isoformat()
        per_day[day] = per_day.get(day, 0) + 1
    listed = list(reversed(newest))  # newest first
    now_of: dict[int, list[int]] = {}
    edited: dict[int, int] = {}
    rows = []
    for op in listed:
        made_now: set[int] = set()  # the neurons of now this operation made a part of (each counted once)
        for root in op["new_root_ids"]:
            if root not in now_of:
                now_of[root] = graph.latest_roots(root)
            made_now.update(now_of[root])
        for current in made_now:
            edited[current] = edited.get(current, 0) + 1
        rows.append(
            {
                "id": op["id"],
                "kind": _kind_of(op),
                "detail": op["kind"],
                "user": op["user_id"],
                "when": op["created_at"].astimezone(UTC).isoformat(timespec="seconds"),
                "before": op["old_root_ids"],
                "after": op["new_root_ids"],
                "compare": _before_after_link(found, op),
            }
        )
    context = {
        "dataset": found,
        "since": since.astimezone(UTC).isoformat(timespec="seconds"),
        "until": until.astimezone(UTC).isoformat(timespec="seconds"),
        "user": user or "",
        "total": total,
        "kinds": {kind: sum(c[kind] for c in per_user.values()) for kind in ("merge", "split", "undo/redo")},
        "per_user": sorted(per_user.items(), key=lambda item: (-item[1]["total"], item[0])),
        "bars_users": _bars({name: c["total"] for name, c in per_user.items()}),
        "bars_days": _bars(per_day, by_size=False),
        "most_edited": sorted(edited.items(), key=lambda item: (-item[1], item[0]))[:10],
        "rows": rows,
        "listed_all": total <= MAX_LISTED,
    }
    return render_template("changes.html", **context)


def _kind_of(op: dict) -> str:
    if op["kind"] in ("undo", "redo"):
        return "undo/redo"
    return "merge" if op["kind"] == "merge" else "split"


def _before_after_link(dataset, op: dict) -> str:
    """The viewer with two panels side by side: the edited neurons just before the operation and
    just after it, each a segmentation layer pinned to its moment (with the dataset's image)."""
    base = hosts.base_url()
    made = op["created_at"].timestamp()
    state = default_state(dataset, base)
    images = [layer for layer in state["layers"] if layer["type"] == "image"][:1]
    template = {key: value for key, value in layer_templates()["segmentation"].items() if key != "shaderPreset"}
    before = {
        **template,
        "type": "segmentation",
        "name": f"before {op['id']}",
        "source": pinned_source(base, dataset.name, f"{made - 1e-6:.6f}"),
        "segments": [str(root) for root in op["old_root_ids"]],
    }
    after = {
        **template,
        "type": "segmentation",
        "name": f"after {op['id']}",
        "source": pinned_source(base, dataset.name, f"{made:.6f}"),
        "segments": [str(root) for root in op["new_root_ids"]],
    }
    state["layers"] = images + [before, after]
    image_names = [layer["name"] for layer in images]
    state["layout"] = {
        "type": "row",
        "children": [
            {"type": "viewer", "layers": image_names + [before["name"]], "layout": "3d"},
            {"type": "viewer", "layers": image_names + [after["name"]], "layout": "3d"},
        ],
    }
    state["selectedLayer"] = {"layer": after["name"], "visible": True}
    return "/#!" + quote(json.dumps(state, separators=(",", ":")), safe="")


def my_links_page():
    """One's links (rename, forget) and aliases (make, re-point, history); the page's script calls
    the routes of ``endpoints.LINKS`` and reloads."""
    me = auth.principal()
    if not me.authenticated:
        return render_template("my_links.html", signed_in=False), 401
    page = _page_number(request.args.get("page", "1"))
    links, total = my_links().page(me.name, page, may_view=may_view_datasets)
    last = max(1, -(-total // MY_LINKS_PER_PAGE))
    aliases = [  # as the API: only the targets the caller may view
        {"alias": alias, "history": shown, "hidden": hidden}
        for alias, shown, hidden in visible_targets(workspace().aliases.of_owner(me.name))
    ]
    return render_template(
        "my_links.html",
        signed_in=True,
        links=links,
        total=total,
        page=page,
        last=last,
        aliases=aliases,
        titles={link.short_id: link.title for link in links},
        base=hosts.base_url(),
        name_rule=NAME_RULE,
    )


endpoints.register(
    blueprint,
    endpoints.PAGES,
    {
        "search_page": search_page,
        "neuron_page": neuron_page,
        "my_links_page": my_links_page,
        "dataset_page": dataset_page,
        "audit_page": audit_page,
        "changes_index": changes_index,
        "changes_page": changes_page,
    },
)
