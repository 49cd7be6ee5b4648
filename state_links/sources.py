"""Which of this server's datasets (and stored states) a Neuroglancer state names.

A stored state is tied to every dataset it names, so that reading it needs view rights on
each: otherwise anyone could learn a private dataset's roots or annotations by reading a
state that shows it. The viewer accepts many spellings for one source — scheme prefixes
(``precomputed://``, ``graphene://``, ``zarr2://`` …, chained), the pipe syntax
(``URL|neuroglancer-precomputed:``), query strings, percent-encoding, dot segments, any host
spelling of this server — and new fields appear over time. So rather than matching known
fields and forms, this module looks at *every* string of the state (keys too), in every
spelling a browser or server could read it as (:func:`state_links.walk.spellings`), finds
every absolute http(s) URL in it (whitespace ends one; read again with tabs and newlines dropped, as
a URL parser does, for more datasets to tie), keeps those pointing at this server (a predicate:
:func:`server.hosts.is_this_server` when serving, "any host" in the migration) and
classifies each URL's path against our routes.

A URL of ours is one of:

* a **dataset** route — ``/data/<name>[@moment|@supervoxels]/…``, ``/segmentation/table/<name>…``,
  ``/segmentation/api/v1/table/<name>/…``, ``/meshing/api/v1/table/<name>/…``,
  ``/api/v1/datasets/<name>/…``, ``/at/<name>/…``, ``/materialize/…/datastack/<name>/…``,
  ``/info/…/datastack/[full/]<name>``: the state is tied to ``<name>``;
* a **state** route — ``/api/v1/states/<ref>…``, ``/s/<ref>``, ``/nglstate/api/v1/[raw/]<id>``: the
  caller decides (the server ties the new state to that state's datasets);
* **harmless** — routes that show no dataset's data: the viewer (``/``, ``/v/…``,
  ``/static/neuroglancer/…``, ``/viewer-config.js`` and its event/report routes), the sign-in page and
  session, ``/api/v1/me``, lists filtered to what the caller may see (``/datasets``,
  ``/api/v1/datasets``, ``/info/api/v2/datastacks``), version and OpenAPI documents, and the bare
  POST endpoints that store states (``/api/v1/states``, ``/nglstate/api/v1/post``, ``/api/v1/links/at``);
* anything else — **unclassified**: the server refuses such a state rather than store it untied.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .walk import has_newlines, spellings, strings

IsOurs = Callable[[str], bool]

DATASET, STATE, HARMLESS = "dataset", "state", "harmless"

# A URL written inside a longer string: "http:" (a browser also takes "http:/x" and "http:\\x").
_URL_START = re.compile(r"https?:", re.IGNORECASE)
# Where such a URL stops: whitespace, the pipe of Neuroglancer's URL pipelines, quotes and brackets
# that cannot appear unencoded in a URL.
_URL_END = re.compile(r"[\s|\"'<>`]")
_TRAILING = ".,;:!?)]}"  # prose around a URL ("see http://…/s/abc.")

_HARMLESS_PATHS = {
    (),
    ("viewer-config.js",),
    ("login",),
    ("datasets",),
    ("api", "v1", "datasets"),
    ("api", "v1", "openapi.json"),
    ("api", "v1", "me"),
    ("api", "v1", "session"),
    ("api", "v1", "states"),
    ("api", "v1", "links", "at"),
    ("info", "version"),
    ("info", "api", "v2", "datastacks"),
    ("segmentation", "api", "version"),
    ("segmentation", "api", "versions"),
    ("materialize", "version"),
    ("materialize", "api", "versions"),
    ("nglstate", "api", "v1", "version"),
    ("nglstate", "api", "v1", "post"),
}
# The viewer's page, files and the routes its client talks to (nothing there depends on a dataset).
_HARMLESS_PREFIXES = (("v",), ("static", "neuroglancer"), ("events",), ("state",), ("action",), ("credentials",))
# Routes whose path names a dataset at a fixed position: prefix -> route name.
_DATASET_PREFIXES = {
    ("segmentation", "table"): "graphene",
    ("segmentation", "api", "v1", "table"): "chunkedgraph",
    ("meshing", "api", "v1", "table"): "meshing",
    ("api", "v1", "datasets"): "datasets",
    ("at",): "at",
}
_STATE_PREFIXES = (("api", "v1", "states"), ("s",), ("nglstate", "api", "v1", "raw"), ("nglstate", "api", "v1"))


class UnclassifiedSource(ValueError):
    """A URL at this server that names nothing this module can check: the state is refused (400)."""


@dataclass(frozen=True)
class Target:
    """What one URL at this server names."""

    kind: str  # DATASET, STATE or HARMLESS
    name: str = ""  # the dataset's name, or the state's reference
    route: str = ""  # "data", "graphene", "chunkedgraph", "meshing", "datasets", "at", "materialize", "info", …
    view: str | None = None  # /data/<name>@<view>/: a moment, or "supervoxels"
    layer: str | None = None  # /data/<name>/<layer>/


@dataclass(frozen=True)
class References:
    """Everything a state names at this server."""

    datasets: tuple[str, ...] = ()  # in the order first named
    states: tuple[str, ...] = ()
    unclassified: tuple[str, ...] = ()  # URLs of ours naming nothing we can check


def path_segments(path: str) -> list[str]:
    """A URL path as the server routes it: percent-decoded once (as PATH_INFO is), backslashes as
    slashes, empty and ``.`` segments dropped (the server merges slashes), ``..`` resolved."""
    out: list[str] = []
    for segment in unquote(path).replace("\\", "/").split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    return out


def classify_path(path: str) -> Target | None:
    """The target of a path at this server; None when it names nothing we know (refuse it)."""
    segments = path_segments(path)
    whole = tuple(segments)
    if whole in _HARMLESS_PATHS or any(whole[: len(p)] == p for p in _HARMLESS_PREFIXES):
        return Target(HARMLESS)
    if len(segments) >= 2 and segments[0] in ("data", "annotations"):
        name, at, view = segments[1].partition("@")
        if not name:
            return None
        return Target(DATASET, name, segments[0], view if at else None, segments[2] if len(segments) > 2 else None)
    for prefix, route in _DATASET_PREFIXES.items():
        if whole[: len(prefix)] == prefix and len(whole) > len(prefix):
            return Target(DATASET, segments[len(prefix)], route)
    for prefix in _STATE_PREFIXES:
        if whole[: len(prefix)] == prefix and len(whole) > len(prefix):
            return Target(STATE, segments[len(prefix)], "state")
    if segments and segments[0] in ("materialize", "info") and "datastack" in segments:
        rest = segments[segments.index("datastack") + 1 :]
        if rest and rest[0] == "full" and len(rest) > 1:
            rest = rest[1:]
        if rest:
            return Target(DATASET, rest[0], segments[0])
    return None


def urls_in(text: str, drop_newlines: bool = False) -> Iterator[str]:
    """Every absolute http(s) URL written in ``text``, in any of its spellings, as a browser reads it
    (``scheme://`` restored, backslashes as slashes); duplicates possible."""
    for spelling in spellings(text, drop_newlines):
        for match in _URL_START.finditer(spelling):
            rest = spelling[match.end() :].lstrip("/\\")
            end = _URL_END.search(rest)
            rest = (rest[: end.start()] if end else rest).rstrip(_TRAILING)
            if rest and rest[0] not in "?#":
                yield f"{match.group(0)[:-1].lower()}://{rest.replace(chr(92), '/')}"


def _worth_looking(text: str) -> bool:
    return ":" in text or "%" in text or not text.isascii()


def targets_in(text: str, is_ours: IsOurs, drop_newlines: bool = False) -> Iterator[tuple[str, Target | None]]:
    """(URL, its target or None) for each URL of ours in ``text``."""
    if not _worth_looking(text):
        return
    for url in urls_in(text, drop_newlines):
        try:
            ours = is_ours(url)
            path = urlsplit(url).path
        except ValueError:  # no browser reads it either (a broken IPv6 literal …)
            continue
        if ours:
            yield url, classify_path(path)


def references(document, is_ours: IsOurs) -> References:
    """The datasets, states and unclassified URLs of ours that ``document`` (a state, a layer …) names."""
    datasets: dict[str, None] = {}
    states: dict[str, None] = {}
    unclassified: dict[str, None] = {}
    for text in dict.fromkeys(strings(document)):  # each distinct string once, in order
        if not _worth_looking(text):
            continue
        for url, target in targets_in(text, is_ours):
            if target is None:
                unclassified[url] = None
            elif target.kind == DATASET:
                datasets[target.name] = None
            elif target.kind == STATE:
                states[target.name] = None
        if has_newlines(text):
            # Read as one URL, tabs and newlines dropped (what the viewer's fetch does with a source), the
            # text may name more datasets: tie those too. Not more refusals: in prose a newline ends a URL.
            for _, target in targets_in(text, is_ours, drop_newlines=True):
                if target is not None and target.kind == DATASET:
                    datasets[target.name] = None
    return References(tuple(datasets), tuple(states), tuple(unclassified))


# ---- layers and their sources (for anchors and "as it was / as it is now") --------------------
def layers(state: dict) -> list[tuple[int, str, dict]]:
    """(index, name, layer) of each layer: ``layers`` is a list, or (old states) a dict name → layer."""
    found = state.get("layers") if isinstance(state, dict) else None
    if isinstance(found, list):
        return [(i, str(layer.get("name", "")), layer) for i, layer in enumerate(found) if isinstance(layer, dict)]
    if isinstance(found, dict):
        return [(i, str(name), layer) for i, (name, layer) in enumerate(found.items()) if isinstance(layer, dict)]
    return []


def source_urls(layer: dict) -> list[tuple[int, str]]:
    """(position, URL string) of each of a layer's sources: a string, ``{"url": …}``, or a list of those."""
    source = layer.get("source")
    items = source if isinstance(source, list) else [source]
    out = []
    for i, item in enumerate(items):
        url = item.get("url") if isinstance(item, dict) else item
        if isinstance(url, str):
            out.append((i, url))
    return out


def first_target(url: str, is_ours: IsOurs) -> Target | None:
    """What a source string names at this server: its first URL of ours (the source itself; later ones
    sit in its query or fragment)."""
    for _, target in targets_in(url, is_ours):
        return target
    return None


def any_host(url: str) -> bool:
    """A predicate that takes every http(s) URL for ours (used where no request says who we are)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
