"""PyChunkedGraph's meshing service as Neuroglancer's graphene mesh source calls it.

A root's manifest names its supervoxels; each name is a Draco fragment under the
graphene ``data_dir`` (``graphene_meshes/dynamic/<supervoxel>``, see
:mod:`segmentation.meshes`). A root's supervoxels never change, so its
manifest never goes stale: the ETag is the root id, and a merge or a split shows
in 3D as soon as the viewer asks for the new root's manifest.
"""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request

from segmentation.graph import GraphError
from segmentation.graph.ids import is_supervoxel

from .. import endpoints
from ..errors import json_error
from . import graph_for

blueprint = Blueprint("meshing", __name__)

_NODE_SPEC = re.compile(r"^(\d{1,20}):0$")
IMMUTABLE = "public, max-age=31536000, immutable"


def mesh_manifest(table, node_spec):
    match = _NODE_SPEC.match(node_spec)
    if not match or int(match.group(1)) >= 2**64:
        return json_error(400, f"the manifest key is <root id>:0, not {node_spec!r}")
    node = int(match.group(1))
    graph = graph_for(table)
    etag = f"manifest-{node}"
    headers = {"ETag": f'"{etag}"', "Cache-Control": IMMUTABLE}
    if request.if_none_match.contains_weak(etag):
        return "", 304, headers
    try:
        supervoxels = [node] if is_supervoxel(node) else graph.leaves(node).tolist()
    except GraphError as error:
        return json_error(404, str(error))
    response = jsonify({"fragments": [str(sv) for sv in supervoxels]})
    response.headers.update(headers)
    return response


endpoints.register(blueprint, endpoints.MESHING, {"mesh_manifest": mesh_manifest})
