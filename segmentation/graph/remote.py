"""Graph bases in object storage (``s3://``, ``gs://``, …): uploaded once, copied to a local cache,
verified, then memory-mapped like local ones.

Several server machines share one graph by naming the same base URL in the shared database;
each keeps a local copy, because memory-mapping (what makes a worker ready in a second and
shares pages between workers) needs a file. A copy is made once per machine and base: files
stream to a hidden folder (never whole in memory: a 10^8-supervoxel base has arrays of
gigabytes), each file's size and SHA-256 are checked against the manifest, and the folder is
renamed into place, so a reader never maps half a copy or a damaged one. Bases are immutable,
so a copy never goes stale; it is deleted with its base (``discard``) or by hand.

Uploads put the arrays first and ``manifest.json`` last: a base without its manifest is
incomplete and nothing opens it. Object storage is reached through CloudFiles, as volumes are
(:func:`segmentation.storage.cloud_files`), with the credentials CloudFiles and boto3 find
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``~/.aws/credentials``, CloudFiles' secrets,
Google's application default credentials). An S3 server other than Amazon's is named in the URL
the CloudFiles way: ``s3://http://host:port/bucket/path``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from pathlib import Path

from .. import folder_copies
from ..config import DEFAULT_HOME
from ..folder_copies import MANIFEST, CopyError
from ..storage import cloud_files
from .base import FORMAT, VERSION, BaseError


def cache_root() -> Path:
    """Where local copies of remote bases go: ``AXONLINK_GRAPH_CACHE``, else ``graph-cache`` in the
    server's home (``AXONLINK_HOME``; the CLI sets it from ``--home``)."""
    configured = os.environ.get("AXONLINK_GRAPH_CACHE")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(os.environ.get("AXONLINK_HOME") or DEFAULT_HOME).expanduser().resolve() / "graph-cache"


def copy_path(url: str) -> Path:
    """Where this machine keeps its copy of the base at ``url`` (a hash of the URL keeps two stores'
    bases of the same name apart)."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return cache_root() / f"{hashlib.sha256(url.rstrip('/').encode()).hexdigest()[:16]}-{name}"


def upload(local: Path, store_url: str) -> str:
    """Copy the base folder ``local`` to ``store_url``/<its name>; returns the base's URL."""
    url = f"{store_url.rstrip('/')}/{local.name}"
    try:
        folder_copies.upload(local, url)
    except CopyError as error:
        raise BaseError(f"graph base {error}") from None
    return url


def local_copy(url: str) -> Path:
    """A verified local copy of the base at ``url`` (made now if this machine has none)."""
    try:
        return folder_copies.verified_copy(url, copy_path(url), "graph base", FORMAT, VERSION)
    except CopyError as error:
        raise BaseError(str(error)) from None


def delete(url: str) -> None:
    """Delete a remote base (manifest first, so nobody starts copying a half-deleted one) and this
    machine's copy of it. Best effort: what cannot be deleted now stays as garbage, never as damage."""
    try:
        remote = cloud_files(url)
        remote.delete([MANIFEST])
        remote.delete(list(remote.list()))
    except Exception:
        pass
    forget_copy(url)


def keep_as_copy(local: Path, url: str) -> None:
    """Make ``local`` (a base folder just uploaded to ``url``, in the cache's folder) this machine's
    copy of it: renamed into place, so it is not downloaded again."""
    try:
        os.replace(local, copy_path(url))
    except OSError:  # a copy is there already
        pass


_fetching: dict[str, threading.Thread] = {}
_fetching_lock = threading.Lock()


def has_copy(url: str) -> bool:
    """Whether this machine has a verified copy of the base at ``url`` (no download needed to map it)."""
    return (copy_path(url) / MANIFEST).exists()


def fetch_in_background(url: str) -> None:
    """Start copying the base at ``url`` here, in a thread of its own (once per base at a time): a
    process that learns of a new base goes on answering from the old one meanwhile, instead of
    making a request wait for gigabytes to arrive."""

    def run():
        try:
            local_copy(url)
        except Exception:  # deleted meanwhile (compacted again), or unreachable: a later sync retries
            logging.getLogger("axonlink.graph").warning("copying graph base %s failed", url, exc_info=True)
        finally:
            with _fetching_lock:
                _fetching.pop(url, None)

    with _fetching_lock:
        if url in _fetching:
            return
        thread = threading.Thread(target=run, name="graph-base-copy", daemon=True)
        _fetching[url] = thread
    thread.start()


def forget_copy(url: str) -> None:
    """Delete this machine's copy of a base the graph no longer reads (processes that still map it
    keep its pages until they let go)."""
    shutil.rmtree(copy_path(url), ignore_errors=True)
