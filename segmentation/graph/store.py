"""Where graph bases live: a directory (the graph store) that the database points into.

The database's ``graph_state.base_url`` names the base a graph reads; the files are written
once (ingest, compaction) and then only read. The store is ``AXONLINK_GRAPH_STORE`` when set,
else beside a SQLite database file (``<its folder>/graphs``), else ``graphs`` in the server's
home (``--home``, ``AXONLINK_HOME``).
Several server processes on one machine share a base by mapping the same files; several
machines need the store on storage they all see.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import make_url

from .base import BaseError, GraphBase, remove

DEFAULT_HOME = "axonlink-data"


def graph_store(database_url: str, home: str | os.PathLike | None = None) -> Path:
    """The directory new bases of ``database_url``'s graphs are written to (``home``: the server's)."""
    configured = os.environ.get("AXONLINK_GRAPH_STORE")
    if configured:
        return Path(configured).expanduser().resolve()
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).expanduser().resolve().parent / "graphs"
    home = home or os.environ.get("AXONLINK_HOME") or DEFAULT_HOME
    return Path(home).expanduser().resolve() / "graphs"


def write_base(base: GraphBase, database_url: str, name: str, home=None) -> str:
    """Write ``base`` into the store; returns the URL to record in the database."""
    return (base.write(graph_store(database_url, home), name)).as_uri()


def open_base(url: str) -> GraphBase:
    """Memory-map the base at ``url`` (a ``file://`` URL)."""
    return GraphBase.open(_local_path(url))


def discard_base(url: str | None) -> None:
    """Delete a base nothing refers to any more (after a replacement or a removal)."""
    if url:
        remove(_local_path(url))


def _local_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise BaseError(f"graph bases are read from file:// URLs here, not {url!r}")
    return Path(unquote(parts.path))
