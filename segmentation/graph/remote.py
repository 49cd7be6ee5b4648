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
import json
import logging
import os
import shutil
import threading
import uuid
from pathlib import Path

from ..config import DEFAULT_HOME
from ..storage import cloud_files
from .base import FORMAT, VERSION, BaseError, file_sha256, sweep_partial

MANIFEST = "manifest.json"


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
    manifest = json.loads((local / MANIFEST).read_text())
    arrays = [f"{name}.npy" for name in manifest["files"]]
    source = cloud_files(local.as_uri())
    try:
        source.transfer_to(cloud_files(url), paths=arrays)  # streamed from open files, not read into memory
        cloud_files(url).put(MANIFEST, (local / MANIFEST).read_bytes(), compress=None, raw=True)
    except Exception as error:
        raise BaseError(f"graph base could not be written to {url}: {error}") from error
    return url


def local_copy(url: str) -> Path:
    """A verified local copy of the base at ``url`` (made now if this machine has none)."""
    target = copy_path(url)
    root = target.parent
    if (target / MANIFEST).exists():
        return target
    remote = cloud_files(url)
    try:
        manifest_bytes = remote.get(MANIFEST, raw=True)
    except Exception as error:
        raise BaseError(f"graph base {url} cannot be read ({error})") from None
    if manifest_bytes is None:
        raise BaseError(f"graph base {url}: no manifest.json (missing, deleted or not fully written)")
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError:
        raise BaseError(f"graph base {url}: manifest.json is not JSON") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise BaseError(f"graph base {url}: not a {FORMAT} version {VERSION}")
    root.mkdir(parents=True, exist_ok=True)
    sweep_partial(root)  # copies a killed process left half made
    partial = root / f".{target.name}.{uuid.uuid4().hex[:8]}.partial"
    partial.mkdir()
    try:
        arrays = [f"{name}.npy" for name in manifest["files"]]
        try:
            remote.transfer_to(cloud_files(partial.as_uri()), paths=arrays)
        except Exception as error:
            raise BaseError(f"graph base {url} cannot be copied here ({error})") from None
        for name, entry in manifest["files"].items():
            file = partial / f"{name}.npy"
            if not file.exists() or file.stat().st_size != entry["bytes"] or file_sha256(file) != entry["sha256"]:
                raise BaseError(f"graph base {url}: {name}.npy is missing or damaged (size or checksum differs)")
        (partial / MANIFEST).write_bytes(manifest_bytes)
        try:
            os.replace(partial, target)
        except OSError:  # another process made the same copy meanwhile: keep theirs
            if not (target / MANIFEST).exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


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
