"""One blueprint per area; routes come from :mod:`server.endpoints`.

This module is the blueprints' one shared room: services come from the app's
:class:`~server.workspace.Workspace`, and the helpers more than one blueprint needs live
here. Blueprints import from here, never from each other.
"""

from urllib.parse import urlencode

from flask import Response

from segmentation.access import Forbidden, NotVisible, SignInRequired, require_role
from segmentation.datasets import GRAPH_LAYER, Datasets

from ..workspace import workspace

VIEWER_TOKEN = "axonlink"  # the viewer's path token (/v/<token>/): the same bundle, any state


SUPERVOXELS = "supervoxels"


def parse_dataset_ref(ref: str):
    """``NAME`` (now), ``NAME@TIMESTAMP`` (a moment) or ``NAME@supervoxels`` → (name, moment, view)."""
    from segmentation.timestamps import parse_timestamp

    name, at, version = ref.partition("@")
    if version == SUPERVOXELS:
        return name, None, SUPERVOXELS
    return name, (parse_timestamp(version) if at else None), "roots"


def datasets_registry() -> Datasets:
    return workspace().datasets


def dataset_named(name: str):
    """The dataset (404 when unknown), read from SQL once per request."""
    return workspace().dataset(name)


def cell_tags():
    return workspace().tags


def synapses():
    """The synapse tables (:class:`segmentation.connectivity.Synapses`)."""
    return workspace().synapses


def partners_by_type(phrase) -> list:
    """A connectivity phrase (``inputs to L2/3 pyramidal``) answered over the datasets the caller
    may see that have synapses (those it names, if it names any), one answer per dataset."""
    from segmentation.connectivity.by_type import partners_by_type as grouped

    from .. import auth

    names = [d.name for d in auth.visible_datasets()]
    if phrase.datasets:
        names = [name for name in names if name in phrase.datasets]
    found = synapses()
    return [grouped(found, cell_tags(), vocabulary_of(name), name, phrase) for name in names if found.has_table(name)]


def vocabulary_of(dataset: str | None):
    return workspace().vocabulary(dataset)


def meshes_of(dataset: str):
    """The dataset's built-in meshes (see :meth:`server.workspace.Workspace.meshes`)."""
    layer = dataset_named(dataset).segmentation_layer("an image-only dataset has no meshes")
    return workspace().meshes(dataset, layer.url)


def graph_for(dataset: str):
    """The dataset's graph: 404 (DatasetNotFound / GraphNotIngested) when there is none, 409
    (NoSegmentation) for an image-only dataset."""
    return workspace().graph(dataset)


def segment_properties_of(dataset: str, moment) -> dict:
    """The tags of ``dataset`` at ``moment`` as Neuroglancer segment properties (for the segment list)."""
    from segmentation.celltypes.properties import segment_properties

    return segment_properties(cell_tags(), dataset, moment, vocabulary_of(dataset))


def dataset_json(dataset) -> dict:
    """A dataset as the caller may see it: layers by the URLs this server serves them at; where they
    are stored (file paths, buckets, credentials in URLs) only for the dataset's admins."""
    from segmentation.access.policy import at_least

    from .. import auth, hosts

    answer = dataset.to_json(served_at=hosts.base_url(), storage=at_least(auth.role(dataset.name), "admin"))
    if has_graph(dataset.name):
        answer["graph_layer"] = GRAPH_LAYER  # the layer the graph is built from; served as root ids
    return answer


def has_synapses(dataset: str) -> bool:
    """Whether ``dataset`` has a synapse table (then its default state shows a neuron's synapses)."""
    return workspace().synapses.has_table(dataset)


def has_graph(dataset: str) -> bool:
    """Whether ``dataset`` has a versioned graph (then the viewer proofreads it through graphene://)."""
    return workspace().find_graph(dataset) is not None


# ---- who may see what a state (or an alias of one) names -------------------------------------
PRIVATE_CACHE = "private, no-store"


def hidden_datasets(names) -> list[str]:
    """Those of ``names`` the caller may not view, sorted. A name that is no dataset is hidden too:
    unknown and private must answer alike, so both take this same path (one cached visibility map,
    no extra read for either)."""
    from .. import auth

    known = auth.accounts().visibility()
    principal, anonymous_role = auth.principal(), auth.anonymous_role()
    hidden = []
    for name in sorted(names):
        public = known.get(name)
        try:
            require_role(principal, name, bool(public), "viewer", anonymous_role)
            visible = public is not None
        except (NotVisible, SignInRequired, Forbidden):
            visible = False
        if not visible:
            hidden.append(name)
    return hidden


def may_view_datasets(datasets) -> bool:
    return not hidden_datasets(datasets)


def _all_public(datasets) -> bool:
    from .. import auth

    known = auth.accounts().visibility()
    return all(known.get(name) is True for name in datasets)


def private_if_needed(response: Response, datasets, always: bool = False) -> Response:
    """A state showing non-public data must not sit in a shared cache, nor be served to another caller."""
    if always or not _all_public(datasets):
        response.headers["Cache-Control"] = PRIVATE_CACHE
        response.vary.update(("Authorization", "Cookie"))
    else:
        response.headers.setdefault("Cache-Control", "no-cache")  # the same for every caller; "now" changes
    return response


def viewer_url(ref: str, mode: str) -> str:
    """The bundled viewer loading a stored state by URL (``#!<url>``), told which mode it shows."""
    from .. import hosts

    base = hosts.base_url()
    query = urlencode({"link": ref, "as": mode})
    return f"{base}/v/{VIEWER_TOKEN}/?{query}#!{base}/api/v1/states/{ref}/{mode}.json"


def state_visible(ref) -> bool:
    """Whether the caller may view the stored state ``ref`` (a missing one is not visible either)."""
    from state_links.store import StateNotFound

    try:
        workspace().states.get(ref, may_view=may_view_datasets)
    except StateNotFound:
        return False
    return True


# ---- the audit log, as the API and the page read it ----------------------------------------------


def audit_entries(limit: int | None = None) -> list[dict]:
    """The audit entries the caller may read, newest first, filtered as the request's arguments ask
    (``dataset``, ``user``, ``action`` with ``*``, ``since``, ``before_id``, ``limit``): every dataset
    for site admins, the ones they administer for dataset admins; anyone else is refused."""
    from flask import request

    from segmentation.access import AccessError, AuditLog
    from segmentation.access.policy import at_least
    from segmentation.models import MAX_ROW_ID  # audit ids are 32-bit: a larger id names nothing

    from .. import auth
    from ..request_input import cap_of, moment

    me = auth.principal()
    if not me.authenticated:
        raise SignInRequired("the audit log is for admins: send an admin's token (Authorization: Bearer <token>)")
    names = [d.name for d in auth.visible_datasets()]
    administered = None if me.site_admin else [n for n in names if at_least(auth.role(n), "admin")]
    if administered is not None and not administered:
        raise Forbidden(f"user {me.name!r} administers no dataset; the audit log is for admins")
    dataset = request.args.get("dataset") or None
    if dataset is not None:
        if administered is not None and dataset not in administered:
            raise Forbidden(f"user {me.name!r} does not administer {dataset!r}")
        administered = [dataset]
    try:
        limit = int(request.args.get("limit", limit or 100))
        before_id = int(request.args["before_id"]) if request.args.get("before_id") else None
    except ValueError:
        raise AccessError("limit and before_id must be integers") from None
    if not 1 <= limit <= cap_of("limit"):
        raise AccessError(f"limit must be from 1 to {cap_of('limit')}")
    if before_id is not None and not 1 <= before_id <= MAX_ROW_ID:
        raise AccessError(f"before_id must be from 1 to {MAX_ROW_ID}")
    return AuditLog(auth.accounts().database_url).entries(
        datasets=administered,
        user=request.args.get("user") or None,
        action=request.args.get("action") or None,
        since=moment("since"),
        before_id=before_id,
        limit=limit,
    )


def visible_targets(aliases) -> list[tuple]:
    """(alias, the targets the caller may view, how many are hidden) for each alias whose current
    target the caller may view: one read of every target's datasets, not one per target."""
    ids = {target.state_id for alias in aliases for target in alias.targets}
    datasets = workspace().states.datasets_of(ids)
    known: dict[frozenset, bool] = {}

    def may_view(state_id: int) -> bool:
        names = datasets.get(state_id)
        if names is None:
            return False  # removed meanwhile
        if names not in known:
            known[names] = may_view_datasets(names)
        return known[names]

    shown = []
    for alias in aliases:
        if not may_view(alias.current.state_id):
            continue
        targets = [t for t in alias.targets if may_view(t.state_id)]
        shown.append((alias, targets, len(alias.targets) - len(targets)))
    return shown
