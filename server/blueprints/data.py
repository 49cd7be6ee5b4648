"""Precomputed volumes over HTTP, as Neuroglancer, CloudVolume and tensorstore read them.

One data path per request: validate the key → read stored bytes (or a byte
range) from the layer's store → pick encoding and headers → respond.
"""

from __future__ import annotations

import gzip
import json
import os
import re

import numpy as np
from flask import Blueprint, Response, current_app, request
from werkzeug.http import parse_range_header

from segmentation import meshes, skeletons
from segmentation.datasets import DatasetNotFound
from segmentation.graph import GraphError, GraphNotIngested
from segmentation.graph.ids import LAYER_SHIFT, ROOT_LAYER, counter_of, is_root, is_supervoxel
from segmentation.meshing import LEGACY_DIR, FragmentFile, multilod
from segmentation.storage import FileLayerStore, InvalidKey, validate_key
from segmentation.timestamps import InvalidTimestamp

from .. import accel, endpoints
from ..errors import json_error
from ..workspace import workspace
from . import SUPERVOXELS, datasets_registry, meshes_of, parse_dataset_ref, segment_properties_of

blueprint = Blueprint("data", __name__)

_MESH_MANIFEST = re.compile(r"^\d+:\d+$")
_ROOT_MANIFEST = re.compile(r"^(\d{1,20}):0$")
_SEGMENT_ID = re.compile(r"^\d{1,20}$")
_GZIP_ON_THE_FLY_MIN_BYTES = 512


def content_type_for(key: str) -> str:
    last = key.rsplit("/", 1)[-1]
    if last in ("info", "provenance") or _MESH_MANIFEST.match(last):
        return "application/json"
    return "application/octet-stream"


def cache_control_for(key: str) -> str:
    if content_type_for(key) == "application/json":
        return "no-cache"  # revalidated with the ETag every time
    return "public, max-age=3600"


def layer_file(dataset_ref: str, layer: str, key: str):
    try:
        name, moment, view = parse_dataset_ref(dataset_ref)
        validate_key(key)
    except (InvalidTimestamp, InvalidKey) as error:
        return json_error(400, str(error))
    try:
        found, store, keys = datasets_registry().layer_store(name, layer)
    except DatasetNotFound as error:
        return json_error(404, str(error))
    live = workspace().live_view(name, found, store)
    if live is not None:
        try:
            answer = _live_file(live, key, moment, view)
        except GraphNotIngested as error:  # removed or replaced a moment ago (by another process)
            return json_error(503, str(error), **{"Retry-After": "1"})
        if answer is not None:
            return answer
        if keys.under_scale(key):  # chunk files of a live layer exist only through the live view
            return _missing(key)
    elif layer == "segmentation" and (key == "info" or key.startswith(f"{multilod.MESH_DIR}/")):
        answer = _multilod_file(name, found, store, key)
        if answer is not None:
            return answer
    if not keys.allows(key):  # off the grid of its scale, or a chunk name in a sharded scale
        return _missing(key)
    headers = {
        "Content-Type": content_type_for(key),
        "Cache-Control": cache_control_for(key),
        "Accept-Ranges": "bytes",
        "Vary": "Accept-Encoding",
    }
    try:
        if "Range" in request.headers:
            return _ranged(store, key, headers)
        if request.method == "HEAD":
            size = store.size(key)
            if size is None:
                return _missing(key)
            return Response(status=200, headers={**headers, "Content-Length": str(size)})
        return _whole(store, key, headers)
    except InvalidKey as error:
        return json_error(400, str(error))


IMMUTABLE = "public, max-age=31536000, immutable"
SEGMENT_PROPERTIES = "segment_properties"  # the cell-type tags of the moment, for the segment list


def _live_file(live, key: str, moment, view: str):
    """info, chunks and mesh manifests of a segmentation seen through its graph; None = as stored.

    ``view`` is "roots" (root ids of now or of ``moment``) or "supervoxels" (PyChunkedGraph
    supervoxel ids, layer 1, as a graphene source's ``data_dir`` must hold).
    """
    built_in = None
    if view != SUPERVOXELS and not live.mesh_dir and (key == "info" or key.startswith(f"{LEGACY_DIR}/")):
        built_in = meshes_of(live.graph.dataset)  # shown in the roots view when the layer has no meshes
        if built_in.of_roots is None:
            built_in = None
    if key == "info":
        info = live.info()
        if view != SUPERVOXELS:
            info["segment_properties"] = SEGMENT_PROPERTIES
        if built_in is not None:
            info["mesh"] = LEGACY_DIR
        return _json_answer(info, etag=None, cache="no-cache")
    skeleton_dir = live.stored_info.get("skeletons")
    if skeleton_dir and key.startswith(f"{skeleton_dir}/") and key != f"{skeleton_dir}/info":
        return _skeleton_file(live, skeleton_dir, key.removeprefix(f"{skeleton_dir}/"), view)
    if key == f"{SEGMENT_PROPERTIES}/info" and view != SUPERVOXELS:
        return _json_answer(segment_properties_of(live.graph.dataset, moment), etag=None, cache="no-cache")
    if view == SUPERVOXELS and key.startswith(f"{meshes.MESH_DIR}/"):
        return _graphene_mesh_file(live, key.removeprefix(f"{meshes.MESH_DIR}/"))
    if built_in is not None and key.startswith(f"{LEGACY_DIR}/"):
        return _built_in_legacy_file(live, built_in, key.removeprefix(f"{LEGACY_DIR}/"))
    node = live.manifest_id(key)
    if node is not None:
        try:
            manifest = live.manifest(node)
        except GraphError as error:
            return json_error(404, str(error))
        return None if manifest is None else _json_answer(manifest, etag=f"mesh-{node}", cache=IMMUTABLE)
    if not live.is_chunk(key):
        return None
    if view == SUPERVOXELS:
        body = live.supervoxel_chunk(key)
        if body is None:
            return _missing(key)
        return Response(
            body,
            status=200,
            headers={"Content-Type": "application/octet-stream", "Cache-Control": IMMUTABLE, "ETag": '"supervoxels"'},
        )
    # a past moment is final only once no edit stamped at or before it can still be committed;
    # asked before reading the graph, so that the answer is computed with every such edit in it
    final = moment is not None and live.graph.is_settled(moment)
    gzipped = "gzip" in request.accept_encodings  # like stored chunks: compressed once, kept in the cache
    try:
        answer = live.chunk(key, live.version(moment), gzipped=gzipped)
    except GraphError as error:
        return json_error(409, f"the volume and its graph disagree: {error}")
    if answer is None:
        return _missing(key)
    version, body = answer
    etag = live.etag(version)
    headers = {
        "Content-Type": "application/octet-stream",
        "Cache-Control": IMMUTABLE if final else "no-cache",
        "ETag": f'"{etag}"',
        "Vary": "Accept-Encoding",
    }
    if request.if_none_match.contains_weak(etag):
        return Response(status=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return Response(body, status=200, headers=headers)


def _skeleton_file(live, directory: str, name: str, view: str):
    """A segment's precomputed skeleton. Stored per label; in the supervoxel view a supervoxel's is
    its label's file, in the roots view a root's joins its supervoxels' (so it follows edits; a
    root's supervoxels never change, so neither does its skeleton)."""
    if not _SEGMENT_ID.match(name) or int(name) >= 2**64:
        return _missing(f"{directory}/{name}")
    node = int(name)
    if view == SUPERVOXELS or is_supervoxel(node):
        body = _stored_skeleton(live, directory, node)
        return _missing(f"{directory}/{name}") if body is None else _immutable_bytes(body, f"skeleton-{node}")
    if not is_root(node):
        return _missing(f"{directory}/{name}")
    try:
        supervoxels = live.graph.leaves(node)
    except GraphError as error:
        return json_error(404, str(error))
    if len(supervoxels) > skeletons.MAX_UNION_PARTS:
        return json_error(
            413,
            f"segment {node} has {len(supervoxels)} supervoxels; its skeleton joins at most "
            f"{skeletons.MAX_UNION_PARTS} (read its supervoxels' skeletons from the @supervoxels view)",
        )
    blobs = [_stored_skeleton(live, directory, int(sv)) for sv in np.asarray(supervoxels).tolist()]
    body = skeletons.union([blob for blob in blobs if blob], node)
    return _missing(f"{directory}/{name}") if not body else _immutable_bytes(body, f"skeleton-{node}")


def _stored_skeleton(live, directory: str, supervoxel: int) -> bytes | None:
    """The stored skeleton of a supervoxel: its file is named by the stored label (plain, or the
    layer-1 id itself when the volume stores those)."""
    for label in dict.fromkeys((counter_of(supervoxel), supervoxel)):
        found = live.store.get(f"{directory}/{label}")
        if found is not None:
            return found.decoded()
    return None


def _built_in_legacy_file(live, built_in, name: str):
    """The roots view's mesh directory for built-in meshes: ``info``, ``<root>:0`` manifests (the
    fragments of :mod:`segmentation.meshing.cover`, legacy names) and those fragments."""
    if name == "info":
        return _json_answer(
            {"@type": "neuroglancer_legacy_mesh"}, etag="legacy-mesh-info", cache="public, max-age=3600"
        )
    match = _ROOT_MANIFEST.match(name)
    if match:
        node = int(match.group(1))
        if node >= 2**64 or node >> LAYER_SHIFT != ROOT_LAYER:
            return _json_answer({"fragments": []}, etag=None, cache="no-cache")
        try:
            supervoxels = live.graph.leaves(node)
        except GraphError as error:
            return json_error(404, str(error))
        names = built_in.legacy_manifest(node, supervoxels) or []
        etag = f"legacy-manifest-{node}-g{built_in.generation.number}"
        return _json_answer({"fragments": names}, etag=etag, cache="no-cache")
    body = built_in.legacy_fragment(name)
    return _missing(f"{LEGACY_DIR}/{name}") if body is None else _immutable_bytes(body, name)


def _graphene_mesh_file(live, name: str):
    """``info``, ``initial/<chunk>.frags`` (a chunk's fragments, read by byte range) and
    ``dynamic/<chunk>_<hash>`` (made after an edit) of built-in meshes, and ``dynamic/<supervoxel>``
    (a Draco fragment from legacy meshes) of the graphene mesh directory."""
    if name == "info":
        return _json_answer(meshes.MESH_INFO, etag="graphene-mesh-info", cache="public, max-age=3600")
    folder, _, fragment = name.partition("/")
    if folder == "initial":
        found = meshes_of(live.graph.dataset).fragment_file(fragment)
        if found is None:
            return _missing(f"{meshes.MESH_DIR}/{name}")
        return _file_answer(found, etag=fragment_etag(fragment))
    if folder == "dynamic" and not fragment.isdigit():
        body = meshes_of(live.graph.dataset).dynamic_fragment(fragment)
        return _missing(f"{meshes.MESH_DIR}/{name}") if body is None else _immutable_bytes(body, fragment)
    if folder != "dynamic" or not 0 < int(fragment) < 2**64:
        return _missing(f"{meshes.MESH_DIR}/{name}")
    supervoxel = int(fragment)
    etag = f"sv-{supervoxel}"
    if request.if_none_match.contains_weak(etag):
        return Response(status=304, headers={"ETag": f'"{etag}"', "Cache-Control": IMMUTABLE})
    home = current_app.config["AXONLINK_SETTINGS"].home
    body = meshes.fragments_of(live, home).fragment(supervoxel) if live.graph.has_supervoxel(supervoxel) else None
    return _missing(f"{meshes.MESH_DIR}/{name}") if body is None else _immutable_bytes(body, etag)


def _immutable_bytes(body: bytes, etag: str):
    """Bytes that never change under their name (a fragment), with their ETag."""
    headers = {"Content-Type": "application/octet-stream", "Cache-Control": IMMUTABLE, "ETag": f'"{etag}"'}
    return Response(body, status=200, headers=headers)


MAX_READ_BYTES = 64 << 20  # bytes from object storage read into memory for one answer (fragments are far smaller)


def fragment_etag(fragment: str) -> str:
    """A fragment file's ETag: its name says its run (``g<run>-…``), and a run's files never change."""
    return f"{fragment.split('-', 1)[0]}-{fragment}"


def _file_answer(file, etag: str, cache: str = IMMUTABLE):
    """A file (a local path, or a run's :class:`~segmentation.meshing.FragmentFile`, perhaps in object
    storage), whole or one byte range (206; never gzipped); ``cache``: immutable unless the name can
    show other bytes later."""
    if not isinstance(file, FragmentFile):
        file = FragmentFile(str(file), file.stat().st_size)
    size = file.size
    headers = {
        "Content-Type": "application/octet-stream",
        "Cache-Control": cache,
        "ETag": f'"{etag}"',
        "Accept-Ranges": "bytes",
    }
    parsed = parse_range_header(request.headers.get("Range")) if "Range" in request.headers else None
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        if request.if_none_match.contains_weak(etag):
            return Response(status=304, headers=headers)
        target = None if file.path is None else accel.target(os.path.realpath(file.path))
        if target is not None:
            return Response(status=200, headers={**headers, "X-Accel-Redirect": target})
        if file.path is None and size > MAX_READ_BYTES:  # from object storage: through this process's memory
            return json_error(413, f"this file is {size} bytes: ask for at most {MAX_READ_BYTES} with a Range header")
        return Response(file.read(), status=200, headers=headers)
    bounds = parsed.range_for_length(size)
    if bounds is None:
        return json_error(416, f"range not satisfiable for {size} bytes", **{"Content-Range": f"bytes */{size}"})
    start, stop = bounds
    if file.path is None and stop - start > MAX_READ_BYTES:
        return json_error(413, f"ask for at most {MAX_READ_BYTES} bytes per range, not {stop - start}")
    body = file.read(start, stop)
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return Response(body, status=206, headers=headers)


def _multilod_file(dataset: str, layer, store, key: str):
    """A segmentation without a graph, meshed by ``axonlink mesh``: its info names the multi-resolution
    mesh directory (unless it has meshes of its own), whose files are made per label on first request.
    None: served as stored."""
    meshes = meshes_of(dataset)
    generation = meshes.generation
    if generation is None or generation.shows_roots:
        return None
    if key == "info":
        stored = store.get("info")
        if stored is None:
            return None
        info = json.loads(stored.decoded())
        if info.get("mesh"):
            return None
        info["mesh"] = multilod.MESH_DIR
        return _json_answer(info, etag=None, cache="no-cache")
    name = key.removeprefix(f"{multilod.MESH_DIR}/")
    if name == "info":
        return _json_answer(multilod.info(generation), etag=f"multilod-g{generation.number}", cache="no-cache")
    label, dot, suffix = name.partition(".")
    if not label.isdigit() or len(label) > 20 or int(label) >= 2**64 or (dot and suffix != "index"):
        return _missing(key)
    files = multilod.label_files(generation, int(label))
    if files is None:
        return _missing(key)
    # a label's files keep their names across meshing runs: revalidated (the ETag names the run)
    return _file_answer(
        files[0] if suffix == "index" else files[1], etag=f"g{generation.number}-{name}", cache="no-cache"
    )


def _json_answer(document, etag: str | None, cache: str):
    body = json.dumps(document).encode()
    headers = {"Content-Type": "application/json", "Cache-Control": cache}
    if etag:
        headers["ETag"] = f'"{etag}"'
        if request.if_none_match.contains_weak(etag):
            return Response(status=304, headers=headers)
    return Response(body, status=200, headers=headers)


def _missing(key: str):
    return json_error(404, f"no such file in this layer: {key}")


def _ranged(store, key, headers):
    size = store.size(key)
    if size is None:
        return _missing(key)
    parsed = parse_range_header(request.headers["Range"])
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        return _whole(store, key, headers)  # RFC 9110: an unusable Range is ignored
    bounds = parsed.range_for_length(size)
    if bounds is None:
        return json_error(416, f"range not satisfiable for {size} bytes", **{"Content-Range": f"bytes */{size}"})
    start, stop = bounds
    body = store.get_range(key, start, stop)
    if body is None:
        return _missing(key)
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return Response(body, status=206, headers=headers)


def _handed_to_front_server(store, key, headers):
    """The answer without its bytes, which the front server sends (``server.accel``); None: send them."""
    if request.method != "GET" or headers["Content-Type"] != "application/octet-stream":
        return None
    if not isinstance(store, FileLayerStore):
        return None
    found = store.file_of(key)
    target = None if found is None else accel.target(found[0])
    if target is None:
        return None
    _, encoding, etag = found
    if encoding == "gzip" and "gzip" not in request.accept_encodings:
        return None  # inflated here
    headers["ETag"] = f'"{etag}"'
    if request.if_none_match.contains_weak(etag):
        return Response(status=304, headers=headers)
    if encoding == "gzip":
        headers["Content-Encoding"] = "gzip"
    headers["X-Accel-Redirect"] = target
    return Response(status=200, headers=headers)


def _whole(store, key, headers):
    handed = _handed_to_front_server(store, key, headers)
    if handed is not None:
        return handed
    obj = store.get(key)
    if obj is None:
        return _missing(key)
    headers["ETag"] = f'"{obj.etag}"'
    if request.if_none_match.contains_weak(obj.etag):
        return Response(status=304, headers=headers)
    accepts_gzip = "gzip" in request.accept_encodings
    if obj.encoding == "gzip" and accepts_gzip:
        body = obj.content
        headers["Content-Encoding"] = "gzip"
    else:
        body = obj.decoded()
        if accepts_gzip and headers["Content-Type"] == "application/json" and len(body) >= _GZIP_ON_THE_FLY_MIN_BYTES:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
    if request.method == "HEAD":
        return Response(status=200, headers={**headers, "Content-Length": str(len(body))})
    return Response(body, status=200, headers=headers)


endpoints.register(blueprint, endpoints.DATA, {"layer_file": layer_file})
