"""How a state can name a dataset of a server: every spelling of a layer source the viewer accepts
(``SPELLINGS``) and every place in a state that can hold one (``PLACES``).

Shared by test_state_sources.py (without a server) and test_state_privacy.py (end to end).
"""

from __future__ import annotations

import json
from urllib.parse import quote


def percent_encoded(text: str) -> str:
    """Every character of ``text`` percent-encoded, letters too."""
    return "".join(f"%{ord(c):02X}" for c in text)


# name -> f(url, port, dataset) giving a layer source that shows the dataset
SPELLINGS = {
    "precomputed": lambda u, p, n: f"precomputed://{u}/data/{n}/image",
    "precomputed, trailing slash": lambda u, p, n: f"precomputed://{u}/data/{n}/segmentation/",
    "graphene": lambda u, p, n: f"graphene://{u}/segmentation/table/{n}",
    "graphene, middleauth+": lambda u, p, n: f"graphene://middleauth+{u}/segmentation/table/{n}",
    "pipe |neuroglancer-precomputed:": lambda u, p, n: f"{u}/data/{n}/image/|neuroglancer-precomputed:",
    "pipe |zarr2:": lambda u, p, n: f"{u}/data/{n}/image|zarr2:",
    "zarr2://": lambda u, p, n: f"zarr2://{u}/data/{n}/image",
    "zarr3://": lambda u, p, n: f"zarr3://{u}/data/{n}/image",
    "n5://": lambda u, p, n: f"n5://{u}/data/{n}/image",
    "chained prefixes": lambda u, p, n: f"precomputed://zarr://{u}/data/{n}/image",
    "@supervoxels": lambda u, p, n: f"precomputed://{u}/data/{n}@supervoxels/segmentation",
    "@moment": lambda u, p, n: f"precomputed://{u}/data/{n}@2026-01-01T00:00:00Z/segmentation",
    "query string": lambda u, p, n: f"precomputed://{u}/data/{n}/image?token=x&y=1",
    "localhost": lambda u, p, n: f"precomputed://http://localhost:{p}/data/{n}/image",
    "upper case, trailing dot": lambda u, p, n: f"precomputed://HTTP://LocalHost.:{p}/data/{n}/image",
    "127.1": lambda u, p, n: f"precomputed://http://127.1:{p}/data/{n}/image",
    "hex IPv4": lambda u, p, n: f"precomputed://http://0x7f.0.0.1:{p}/data/{n}/image",
    "[::1]": lambda u, p, n: f"precomputed://http://[::1]:{p}/data/{n}/image",
    "user info": lambda u, p, n: f"precomputed://http://someone@127.0.0.1:{p}/data/{n}/image",
    "no slashes after http:": lambda u, p, n: f"precomputed://http:127.0.0.1:{p}/data/{n}/image",
    "backslashes": lambda u, p, n: f"precomputed://http:\\\\127.0.0.1:{p}\\data\\{n}\\image",
    "percent-encoded name": lambda u, p, n: f"precomputed://{u}/data/{percent_encoded(n)}/image",
    "dot segments": lambda u, p, n: f"precomputed://{u}/data/cg/../{n}/./image",
    "encoded dot segments": lambda u, p, n: f"precomputed://{u}/v/%2e%2E/data/{n}/image",
    "empty segments": lambda u, p, n: f"precomputed://{u}//data///{n}/image",
    "newline inside": lambda u, p, n: f"precomputed://{u}/v/x\n/../../data/{n}/image",
    "encoded newline inside": lambda u, p, n: f"precomputed://{u}/v/x%0A/../../data/{n}/image",
    "percent-encoded URL": lambda u, p, n: quote(f"{u}/data/{n}/image", safe=""),
    "double percent-encoded URL": lambda u, p, n: quote(quote(f"{u}/data/{n}/image", safe=""), safe=""),
    "full-width scheme": lambda u, p, n: f"ｈｔｔｐ：／／127.0.0.1:{p}/data/{n}/image",
    "inside a viewer link": lambda u, p, n: (
        f"{u}/v/axonlink/#!" + quote(json.dumps({"layers": [{"source": f"precomputed://{u}/data/{n}/image"}]}), safe="")
    ),
    "chunkedgraph API": lambda u, p, n: f"{u}/segmentation/api/v1/table/{n}/node/1/root",
    "meshing API": lambda u, p, n: f"{u}/meshing/api/v1/table/{n}/manifest/1:0",
    "datasets API": lambda u, p, n: f"{u}/api/v1/datasets/{n}/state",
    "voxel link": lambda u, p, n: f"{u}/at/{n}/1,2,3",
    "materialize": lambda u, p, n: f"{u}/materialize/api/v3/datastack/{n}/versions",
    "info service": lambda u, p, n: f"{u}/info/api/v2/datastack/full/{n}",
}

# name -> f(source) giving a state whose layer (or some other field) holds the source
PLACES = {
    "image layer, string": lambda s: {"layers": [{"type": "image", "name": "em", "source": s}]},
    "segmentation layer, dict with subsources": lambda s: {
        "layers": [
            {
                "type": "segmentation",
                "name": "cells",
                "segments": ["1"],
                "source": {"url": s, "subsources": {"default": True, "mesh": False}, "enableDefaultSubsources": False},
            }
        ]
    },
    "annotation layer, list of sources": lambda s: {
        "layers": [
            {"type": "annotation", "name": "notes", "source": [{"url": "local://annotations"}, s], "annotations": []}
        ]
    },
    "legacy dict of layers": lambda s: {"layers": {"em": {"type": "image", "source": s}}},
    "a field the viewer adds one day": lambda s: {"layers": [], "future": {"deep": [[{"x": s}]]}},
    "a key": lambda s: {"layers": [], "notes": {s: 1}},
}
