"""PyChunkedGraph's meshing service as Neuroglancer's graphene mesh source calls it.

With built-in meshes (``axonlink mesh``, :mod:`segmentation.meshing`) a root's manifest lists one
fragment per chunk it spans, read by byte range from the chunk's fragment file, plus fragments
made after edits; it changes only when a new meshing run is published (the ETag names the run).
Without them it names the root's supervoxels, each a Draco fragment made from the layer's legacy
meshes (``graphene_meshes/dynamic/<supervoxel>``, :mod:`segmentation.meshes`). Either way a root's
supervoxels never change, so a merge or a split shows in 3D as soon as the viewer asks for the
new root's manifest.
"""

from __future__ import annotations

import re

import numpy as np
from flask import Blueprint, jsonify, request

from segmentation.graph import GraphError
from segmentation.graph.ids import is_supervoxel

from .. import endpoints, metrics
from ..errors import json_error
from . import graph_for, meshes_of

blueprint = Blueprint("meshing", __name__)

_NODE_SPEC = re.compile(r"^(\d{1,20}):0$")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"  # kept, but asked again (answered 304 while the same run is in use)


def mesh_manifest(table, node_spec):
    match = _NODE_SPEC.match(node_spec)
    if not match or int(match.group(1)) >= 2**64:
        return json_error(400, f"the manifest key is <root id>:0, not {node_spec!r}")
    node = int(match.group(1))
    graph = graph_for(table)
    built_in = meshes_of(table)
    generation = built_in.of_roots
    settled = True
    if generation is None:  # legacy fragments: the manifest of a root never changes
        etag, cache = f"manifest-{node}", IMMUTABLE
        fragments = None
    else:  # until a new meshing run is published, or its quick twins are replaced
        # (the graphene source never asks for a supervoxel's meshes)
        fragments = [] if is_supervoxel(node) else built_in.cached_manifest(node)
        if not is_supervoxel(node):
            metrics.count_cache("mesh_manifests", fragments is not None)
        if fragments is None:
            try:
                fragments, settled = built_in.manifest_state(node, graph.leaves(node))
            except GraphError as error:
                return json_error(404, str(error))
        etag, cache = f"manifest-{node}-g{generation.number}{'' if settled else '-quick'}", REVALIDATE
    headers = {"ETag": f'"{etag}"', "Cache-Control": cache}
    if request.if_none_match.contains_weak(etag):
        return "", 304, headers
    if fragments is None:
        try:
            supervoxels = np.array([node], dtype=np.uint64) if is_supervoxel(node) else graph.leaves(node)
        except GraphError as error:
            return json_error(404, str(error))
        fragments = [str(sv) for sv in supervoxels.tolist()]
    response = jsonify({"fragments": fragments})
    response.headers.update(headers)
    return response


endpoints.register(blueprint, endpoints.MESHING, {"mesh_manifest": mesh_manifest})
