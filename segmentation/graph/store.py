"""Where graph bases live: a store (a folder, or a prefix in object storage) the database points into.

The database's ``graph_state.base_url`` names the base a graph reads; the files are written
once (ingest, compaction) and then only read. The store is ``AXONLINK_GRAPH_STORE`` when set
(a path, ``file://``, ``s3://``, ``gs://`` …), else beside a SQLite database file
(``<its folder>/graphs``), else ``graphs`` in the server's home (``--home``, ``AXONLINK_HOME``).
Several server processes on one machine share a base by mapping the same files; several
machines share one in object storage, each mapping its own verified copy
(:mod:`segmentation.graph.remote`).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import make_url

from ..config import DEFAULT_HOME
from .base import BaseError, GraphBase, remove
from .remote import cache_root, delete, fetch_in_background, forget_copy, has_copy, keep_as_copy, local_copy, upload


def graph_store(database_url: str, home: str | os.PathLike | None = None) -> str:
    """The URL of the store new bases of ``database_url``'s graphs are written to (``home``: the
    server's): ``file://…`` for a folder, or an object-storage URL (``s3://``, ``gs://``, …)."""
    configured = os.environ.get("AXONLINK_GRAPH_STORE")
    if configured:
        if "://" in configured and not configured.startswith("file://"):
            return configured.rstrip("/")
        return Path(configured.removeprefix("file://")).expanduser().resolve().as_uri()
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return (Path(url.database).expanduser().resolve().parent / "graphs").as_uri()
    home = home or os.environ.get("AXONLINK_HOME") or DEFAULT_HOME
    return (Path(home).expanduser().resolve() / "graphs").as_uri()


def write_base(base: GraphBase, database_url: str, name: str, home=None) -> str:
    """Write ``base`` into the store; returns the URL to record in the database."""
    return _write_into(base, graph_store(database_url, home), name)


def write_beside(base: GraphBase, old_url: str, name: str, reuse: GraphBase | None = None) -> str:
    """Write ``base`` into the store ``old_url``'s base is in (a compaction); arrays that are
    ``reuse``'s own are hard-linked locally (object storage gets a full copy)."""
    return _write_into(base, old_url.rstrip("/").rsplit("/", 1)[0], name, reuse)


def _write_into(base: GraphBase, store_url: str, name: str, reuse: GraphBase | None = None) -> str:
    if _is_local(store_url):
        return base.write(_local_path(store_url), name, reuse=reuse).as_uri()
    local = base.write(cache_root() / ".uploads", name, reuse=reuse)  # beside the copies: renamed into one
    try:
        url = upload(local, store_url)
        keep_as_copy(local, url)  # this machine needs no download of what it just wrote
    finally:
        remove(local)
    return url


def open_base(url: str) -> GraphBase:
    """Memory-map the base at ``url`` (a remote one through a verified local copy)."""
    return GraphBase.open(_local_path(url) if _is_local(url) else local_copy(url))


def base_ready(url: str) -> bool:
    """Whether the base at ``url`` can be mapped now; for a remote base without a copy here, this
    starts copying it in the background and answers False (ask again later)."""
    if _is_local(url) or has_copy(url):
        return True
    fetch_in_background(url)
    return False


def release_base(url: str | None) -> None:
    """This process switched away from the base at ``url``: a remote base's local copy can go (its
    files stay in object storage until the base is discarded)."""
    if url and not _is_local(url):
        forget_copy(url)


def discard_base(url: str | None) -> None:
    """Delete a base nothing refers to any more (after a replacement or a removal)."""
    if not url:
        return
    if _is_local(url):
        remove(_local_path(url))
    else:
        delete(url)


def _is_local(url: str) -> bool:
    return urlsplit(url).scheme == "file"


def _local_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise BaseError(f"not a local graph base: {url!r}")
    return Path(unquote(parts.path))
