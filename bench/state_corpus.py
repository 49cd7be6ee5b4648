"""Synthetic Neuroglancer states: the corpus the share-link codec is trained and measured on.

We have no archive of real share links, so this module writes states the way Neuroglancer
does (``JSON.stringify``: compact, JavaScript number spelling, layers in viewer order) with
the parts that make real states big: segmentation layers with hundreds of selected uint64
ids (as strings, in hash-set order as current Neuroglancer writes them, sometimes sorted as
older clients and state builders do, ``!`` for hidden ones), annotation layers with dozens to
hundreds of points (float32 coordinates, 40-hex random ids), shaders, colours. Hosts,
dataset names, voxel sizes and id ranges are drawn per state so a dictionary trained on one
seed is measured on states it has not seen.

Everything is a function of a seeded :class:`random.Random`, so the training set, the
evaluation set and the shipped dictionary are reproducible:

    python -m bench.state_corpus --train      # rewrite state_links/dictionaries/states-v1.zdict
    python -m bench.state_corpus --sample 1   # print one state
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import struct
import sys
from decimal import Decimal
from pathlib import Path

#: Seeds are disjoint on purpose: the dictionary must not have seen the states it is judged on.
TRAIN_SEED = 20240501
EVAL_SEED = 7
TRAIN_STATES = 4000

DICTIONARY_DIR = Path(__file__).resolve().parent.parent / "state_links" / "dictionaries"

# ---------------------------------------------------------------------------------------------
# JSON.stringify


def js_number(value: int | float) -> str:
    """Spell a number as JavaScript's ``Number.prototype.toString`` does (``8e-9``, ``1``, ``0.5``)."""
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers here")
    if isinstance(value, int):
        return str(value)
    if value != value or value in (math.inf, -math.inf):
        return "null"  # what JSON.stringify writes for NaN/Infinity
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr() gives the shortest round-trip digits, as ECMAScript requires; only the layout differs.
    digits_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()[1:]
    digits = "".join(map(str, digits_tuple))
    k = len(digits)
    n = k + exponent  # value = 0.digits * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


_JS_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def _js_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _JS_ESCAPES:
            out.append(_JS_ESCAPES[ch])
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _is_array_index(key: str) -> bool:
    return key.isdigit() and key.isascii() and (key == "0" or key[0] != "0") and int(key) < 2**32 - 1


def stringify(value) -> str:
    """``JSON.stringify(value)``: no spaces, insertion-ordered keys, JavaScript numbers."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return js_number(value)
    if isinstance(value, str):
        return _js_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(stringify(v) for v in value) + "]"
    if isinstance(value, dict):
        # A JavaScript object lists array-index keys ("0" … "4294967294") first, ascending.
        index_keys = sorted((k for k in value if _is_array_index(k)), key=int)
        keys = index_keys + [k for k in value if not _is_array_index(k)]
        return "{" + ",".join(_js_string(k) + ":" + stringify(value[k]) for k in keys) + "}"
    raise TypeError(f"cannot stringify {type(value).__name__}")


def f32(value: float) -> float:
    """A float32 as JavaScript prints it after a Float32Array round trip (``0.28874981403350830``)."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


# ---------------------------------------------------------------------------------------------
# Datasets: drawn per state, from pools wide enough that names repeat but do not all repeat

_SPECIES = [
    "mouse",
    "fly",
    "zebrafish",
    "human",
    "worm",
    "rat",
    "macaque",
    "songbird",
    "octopus",
    "ferret",
    "lamprey",
    "platynereis",
    "drosophila-larva",
    "marmoset",
    "axolotl",
]
_REGIONS = [
    "v1",
    "visp",
    "ca1",
    "ca3",
    "cortex",
    "retina",
    "cerebellum",
    "thalamus",
    "hemibrain",
    "vnc",
    "optic-lobe",
    "l23",
    "l4",
    "olfactory-bulb",
    "striatum",
    "mb",
    "spinal-cord",
    "hippocampus",
    "s1",
    "a1",
    "lgn",
    "brainstem",
    "tectum",
    "whole-brain",
]
_LABS = [
    "lab",
    "connectome",
    "em",
    "brainlab",
    "neuro",
    "cellmap",
    "seunglab",
    "vision",
    "syn",
    "lichtman",
    "allen",
    "janelia",
    "fmi",
    "ist",
    "mpi",
    "hhmi",
    "kasthuri",
]
_TLDS = ["org", "io", "ai", "net", "de", "ch", "at", "ac.uk", "edu", "dev"]
_IMAGE_LAYER_NAMES = [
    "em",
    "img",
    "image",
    "EM",
    "raw",
    "em-aligned",
    "em_v2",
    "clahe",
    "imagery",
    "em (aligned)",
    "brightfield",
    "xray",
]
_SEG_LAYER_NAMES = [
    "seg",
    "segmentation",
    "cells",
    "roots",
    "neurons",
    "proofread",
    "supervoxels",
    "agglomeration",
    "v117",
    "flat_seg",
    "mito",
    "nuclei",
    "glia",
    "axons",
    "dendrites",
    "proofread-2024",
    "seg (live)",
    "ws",
]
_ANN_LAYER_NAMES = [
    "annotation",
    "annotations",
    "synapses",
    "points",
    "todo",
    "merge errors",
    "split points",
    "somata",
    "presyn",
    "postsyn",
    "checked",
    "soma centroids",
    "bookmarks",
    "spines",
    "boutons",
    "étiquettes",
    "シナプス",
    "erroneous merges",
]
_DESCRIPTIONS = [
    "merge",
    "split here",
    "soma",
    "check",
    "axon?",
    "spine",
    "bouton",
    "glia merge",
    "orphan",
    "false split",
    "unsure",
    "synapse",
    "ok",
    "Pyramidal cell",
    "basket?",
    "truncated",
    "needs review",
    "myelin",
    "mito",
    "done",
    "cilium",
    "dendrite stub",
]
_LAYOUTS = ["xy-3d", "xy-3d", "4panel", "4panel", "3d", "xy", "xz-3d", "yz", "4panel-alt"]
_SHADER_CONTRAST = "#uicontrol invlerp normalized\nvoid main() {\n  emitGrayscale(normalized());\n}\n"
_SHADER_GAMMA = (
    "#uicontrol invlerp normalized(range=[20, 230])\n"
    "#uicontrol float gamma slider(min=0.2, max=3, default=1.0)\n"
    "#uicontrol bool invert checkbox(default=false)\n"
    "void main() {\n  float v = pow(clamp(normalized(), 0.0, 1.0), gamma);\n"
    "  emitGrayscale(invert ? 1.0 - v : v);\n}\n"
)
_SHADER_COLOR = (
    '#uicontrol vec3 color color(default="{color}")\n'
    "#uicontrol invlerp normalized(range=[{lo}, {hi}])\n"
    "void main() {{\n  emitRGB(color * normalized());\n}}\n"
)

_VOXEL_SIZES = [
    (4, 4, 40),
    (4, 4, 45),
    (8, 8, 40),
    (8, 8, 8),
    (16, 16, 16),
    (4, 4, 30),
    (3, 3, 30),
    (8, 8, 33),
    (5, 5, 45),
    (32, 32, 40),
    (4, 4, 4),
    (6, 6, 40),
    (2, 2, 2),
    (18, 18, 45),
]


def _dataset(rng: random.Random) -> dict:
    species, region = rng.choice(_SPECIES), rng.choice(_REGIONS)
    name = rng.choice(
        [
            f"{species}_{region}",
            f"{species}-{region}",
            f"{region}{rng.randint(1, 99)}",
            f"{species}{rng.randint(1, 9)}{rng.choice('abcdefgh')}",
            f"{species}_{region}_v{rng.randint(1, 12)}",
        ]
    )
    lab = rng.choice(_LABS)
    host_kind = rng.choices(["gs", "s3", "https", "axonlink", "graphene", "zarr"], weights=[4, 2, 3, 3, 3, 1])[0]
    bucket = rng.choice([f"{lab}-{species}", f"{lab}_public", f"{species}-{region}-data", f"{lab}"])
    host = rng.choice(
        [
            f"{lab}.{rng.choice(_TLDS)}",
            f"data.{lab}.{rng.choice(_TLDS)}",
            f"{species}.{lab}.{rng.choice(_TLDS)}",
            f"localhost:{rng.choice([8080, 8000, 9000])}",
            f"{lab}-storage.{rng.choice(_TLDS)}",
        ]
    )
    version = rng.choice(
        ["", f"/v{rng.randint(1, 9)}", f"/{2018 + rng.randint(0, 7)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"]
    )

    def url(layer: str) -> str:
        if host_kind == "gs":
            return f"precomputed://gs://{bucket}/{name}{version}/{layer}"
        if host_kind == "s3":
            return f"precomputed://s3://{bucket}/{name}{version}/{layer}"
        if host_kind == "axonlink":
            return f"precomputed://{rng.choice(['http', 'https'])}://{host}/data/{name}/{layer}"
        if host_kind == "zarr":
            return f"zarr://https://{host}/{name}{version}/{layer}.zarr"
        return f"precomputed://https://{host}/{name}{version}/{layer}"

    vx = rng.choice(_VOXEL_SIZES)
    extent = [rng.randint(20_000, 400_000) // max(1, vx[0] // 4), 0, rng.randint(500, 30_000)]
    extent[1] = int(extent[0] * rng.uniform(0.4, 1.2))
    # Graph-backed ids carry the layer in the top 8 bits (PyChunkedGraph / axonlink): supervoxels
    # 1<<56 (72057594037927936 + n), roots in a higher layer (9<<56 = 648518346349539328 + n ...).
    id_style = (
        "graphene" if host_kind in ("graphene", "axonlink") else rng.choice(["plain", "plain", "graphene", "big"])
    )
    root_layer = rng.choice([8, 9, 10, 11, 12])
    counter_span = 10 ** rng.uniform(3.5, 8.5)
    seg_source = (
        f"graphene://https://{host}/segmentation/table/{name}"
        if host_kind == "graphene"
        else url(rng.choice(["seg", "segmentation", "roots", "v1/seg"]))
    )
    return {
        "name": name,
        "url": url,
        "voxel": vx,
        "extent": extent,
        "id_style": id_style,
        "root_layer": root_layer,
        "counter_span": counter_span,
        "seg_source": seg_source,
    }


def _segment_ids(rng: random.Random, ds: dict, count: int) -> list[int]:
    style = ds["id_style"]
    span = ds["counter_span"]
    ids: set[int] = set()
    while len(ids) < count:
        if style == "graphene":
            if rng.random() < 0.15:  # a few supervoxels pinned alongside roots
                ids.add((1 << 56) + rng.randint(1, int(span) * 50))
            else:
                ids.add((ds["root_layer"] << 56) + rng.randint(1, int(span)))
        elif style == "big":  # hashed / 63-bit ids from agglomeration pipelines
            ids.add(rng.randint(1 << 40, (1 << 63) - 1))
        else:  # plain precomputed labels
            ids.add(rng.randint(1, max(10, int(span * rng.choice([1, 10, 100])))))
    return list(ids)


def _count(rng: random.Random, lo: int, hi: int) -> int:
    """Log-uniform: many small states, a long tail of large ones, as share links are."""
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _hex_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(160):040x}"


def _color(rng: random.Random) -> str:
    return f"#{rng.getrandbits(24):06x}"


def _dimensions(vx) -> dict:
    """Voxel size in nanometres → Neuroglancer's ``{"x": [4e-9, "m"], ...}``."""
    return {axis: [float(f"{v}e-9"), "m"] for axis, v in zip("xyz", vx)}


def _point(rng: random.Random, centre, spread, integer: bool) -> list:
    if integer:
        return [int(c + rng.gauss(0, s)) for c, s in zip(centre, spread)]
    x = f32(centre[0] + rng.gauss(0, spread[0]))
    y = f32(centre[1] + rng.gauss(0, spread[1]))
    z = int(centre[2] + rng.gauss(0, spread[2])) + 0.5
    return [x, y, z]


def _image_layer(rng: random.Random, ds: dict, name: str) -> dict:
    layer = {"type": "image", "source": ds["url"](rng.choice(["em", "image", "img", "raw", "em/aligned"]))}
    if rng.random() < 0.4:
        layer["tab"] = rng.choice(["source", "rendering"])
    r = rng.random()
    if r < 0.25:
        layer["shader"] = _SHADER_GAMMA
    elif r < 0.35:
        layer["shader"] = _SHADER_COLOR.format(color=_color(rng), lo=rng.randint(0, 80), hi=rng.randint(150, 255))
    if rng.random() < 0.45:
        layer["shaderControls"] = {"normalized": {"range": [rng.randint(0, 90), rng.randint(140, 255)]}}
    if rng.random() < 0.2:
        layer["opacity"] = round(rng.uniform(0.2, 1), 2)
    if rng.random() < 0.1:
        layer["blend"] = "additive"
    layer["name"] = name
    return layer


def _segmentation_layer(rng: random.Random, ds: dict, name: str) -> dict:
    source = ds["seg_source"]
    if rng.random() < 0.25:
        extra = rng.choice(["skeletons", "properties"])
        source = {
            "url": source,
            "subsources": {"default": True, "mesh": True, extra: True},
            "enableDefaultSubsources": False,
        }
    layer = {"type": "segmentation", "source": source}
    if rng.random() < 0.6:
        layer["tab"] = rng.choice(["segments", "source", "rendering", "graph"])
    if rng.random() < 0.15:
        layer["annotationColor"] = _color(rng)
    for key, lo, hi, p in (
        ("selectedAlpha", 0.1, 0.9, 0.3),
        ("notSelectedAlpha", 0, 0.3, 0.15),
        ("objectAlpha", 0.3, 1, 0.3),
    ):
        if rng.random() < p:
            layer[key] = round(rng.uniform(lo, hi), 2)
    if rng.random() < 0.2:
        layer["meshSilhouetteRendering"] = rng.choice([1, 2, 3, 4])
    count = _count(rng, 1, 900) if rng.random() < 0.9 else 0
    ids = _segment_ids(rng, ds, count)
    shown = [str(i) for i in ids]
    if rng.random() < 0.3:
        shown.sort()  # older clients and state builders: JavaScript's default (string) sort
    hidden_fraction = rng.choice([0, 0, 0, 0.05, 0.3])
    layer["segments"] = [s if rng.random() >= hidden_fraction else "!" + s for s in shown]
    if ids and rng.random() < 0.5:
        query = rng.choice(
            [
                ", ".join(str(i) for i in rng.sample(ids, min(len(ids), rng.randint(1, 6)))),
                str(rng.choice(ids)),
                "/" + rng.choice(["axon", "soma", "^L2", "glia", "pyr"]),
                rng.choice(["#cell_type=pyramidal", "basket", ">1000 #proofread"]),
            ]
        )
        layer["segmentQuery"] = query
    if rng.random() < 0.4:
        layer["colorSeed"] = rng.getrandbits(32)
    if ids and rng.random() < 0.25:
        layer["segmentColors"] = {str(i): _color(rng) for i in rng.sample(ids, min(len(ids), _count(rng, 1, 60)))}
    if rng.random() < 0.1:
        layer["segmentDefaultColor"] = _color(rng)
    if rng.random() < 0.1:
        layer["visible"] = False
    layer["name"] = name
    return layer


def _annotation_layer(rng: random.Random, ds: dict, name: str, centre, seg_ids: list[int]) -> dict:
    vx = ds["voxel"]
    layer = {
        "type": "annotation",
        "source": {"url": "local://annotations", "transform": {"outputDimensions": _dimensions(vx)}},
    }
    layer["tool"] = rng.choice(["annotatePoint", "annotatePoint", "annotateLine", "annotateBoundingBox"])
    if rng.random() < 0.5:
        layer["tab"] = rng.choice(["annotations", "rendering", "source"])
    if rng.random() < 0.5:
        layer["annotationColor"] = _color(rng)
    integer = rng.random() < 0.35  # imported from a table (integer voxels) vs clicked (float32)
    spread = [rng.uniform(200, 8000), rng.uniform(200, 8000), rng.uniform(20, 800)]
    described = rng.random() < 0.3
    linked = seg_ids and rng.random() < 0.3
    n = _count(rng, 12, 450)
    annotations = []
    for _ in range(n):
        kind = "point" if rng.random() < 0.85 else rng.choice(["line", "axis_aligned_bounding_box"])
        if kind == "point":
            ann = {"point": _point(rng, centre, spread, integer)}
        else:  # line, or box given by two corners
            ann = {"pointA": _point(rng, centre, spread, integer), "pointB": _point(rng, centre, spread, integer)}
        ann["type"] = kind
        ann["id"] = _hex_id(rng)
        if described and rng.random() < 0.6:
            ann["description"] = rng.choice(_DESCRIPTIONS)
        if linked and rng.random() < 0.8:
            ann["segments"] = [[str(rng.choice(seg_ids))]]
        annotations.append(ann)
    layer["annotations"] = annotations
    if linked and rng.random() < 0.5:
        layer["linkedSegmentationLayer"] = {"segments": "seg"}
    layer["name"] = name
    return layer


def state(rng: random.Random) -> dict:
    """One Neuroglancer viewer state, keys in the order Neuroglancer writes them."""
    ds = _dataset(rng)
    vx, extent = ds["voxel"], ds["extent"]
    centre = [rng.uniform(0.1, 0.9) * e for e in extent]
    snapped = rng.random() < 0.6
    position = [math.floor(c) + 0.5 for c in centre] if snapped else [f32(c) for c in centre]
    out = {
        "dimensions": _dimensions(vx),
        "position": position,
        "crossSectionScale": rng.choice([1, 2, 0.5, f32(math.exp(rng.uniform(-2, 4)))]),
    }
    if rng.random() < 0.8:
        q = [rng.gauss(0, 1) for _ in range(4)]
        norm = math.sqrt(sum(v * v for v in q))
        out["projectionOrientation"] = [f32(v / norm) for v in q]
    out["projectionScale"] = rng.choice([1024, 4096, 2 ** rng.randint(8, 16), math.exp(rng.uniform(6, 13))])

    layers = []
    used = set()

    def unique(pool):
        name = rng.choice(pool)
        while name in used:
            name = f"{name}{rng.randint(2, 9)}"
        used.add(name)
        return name

    for _ in range(rng.choice([1, 1, 1, 2])):
        layers.append(_image_layer(rng, ds, unique(_IMAGE_LAYER_NAMES)))
    seg_ids: list[int] = []
    for _ in range(rng.choices([0, 1, 2, 3], weights=[1, 10, 3, 1])[0]):
        seg = _segmentation_layer(rng, ds, unique(_SEG_LAYER_NAMES))
        seg_ids += [int(s.lstrip("!")) for s in seg["segments"]]
        layers.append(seg)
    for _ in range(rng.choices([0, 1, 2], weights=[5, 4, 1])[0]):
        layers.append(_annotation_layer(rng, ds, unique(_ANN_LAYER_NAMES), centre, seg_ids))
    out["layers"] = layers
    if rng.random() < 0.3:
        out["showSlices"] = False
    if rng.random() < 0.8:
        out["selectedLayer"] = {"visible": rng.random() < 0.7, "layer": rng.choice(layers)["name"]}
        if rng.random() < 0.3:
            out["selectedLayer"]["size"] = rng.randint(250, 700)
    out["layout"] = rng.choice(_LAYOUTS)
    return out


def generate(n: int, seed: int = EVAL_SEED) -> list[bytes]:
    """``n`` states as UTF-8 JSON exactly as Neuroglancer would post them."""
    rng = random.Random(seed)
    return [stringify(state(rng)).encode("utf-8") for _ in range(n)]


def training_set(n: int = TRAIN_STATES) -> list[bytes]:
    """The dictionary's training samples: seed :data:`TRAIN_SEED`, never the evaluation seed."""
    return generate(n, TRAIN_SEED)


def evaluation_set(n: int = 500) -> list[bytes]:
    """States the dictionary has not seen (seed :data:`EVAL_SEED`)."""
    return generate(n, EVAL_SEED)


# ---------------------------------------------------------------------------------------------
# Dictionary training


def train_dictionary(size: int, samples: list[bytes] | None = None) -> bytes:
    """A zstd dictionary of ``size`` bytes, deterministic for the same samples.

    Fixed COVER parameters (no parameter search, one thread), so the bytes do not depend on
    the machine; ``level`` matches the codec so the entropy tables suit how it compresses.
    """
    import zstandard

    from state_links.codec import ZSTD_LEVEL

    samples = training_set() if samples is None else samples
    trained = zstandard.train_dictionary(
        size, samples, k=1024, d=8, level=ZSTD_LEVEL, threads=0, dict_id=0x41584C31
    )  # "AXL1"
    return trained.as_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--train", action="store_true", help="(re)build dictionaries/states-v1.zdict; refuses to change a shipped file"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --train: overwrite even if the bytes differ (only before v1 stores anything)",
    )
    parser.add_argument("--size", type=int, default=None, help="dictionary size in bytes")
    parser.add_argument("--sample", type=int, metavar="N", help="print N evaluation states")
    args = parser.parse_args(argv)
    if args.sample:
        for raw in evaluation_set(args.sample):
            sys.stdout.write(raw.decode("utf-8") + "\n")
    if args.train:
        from state_links.codec import DICTIONARY_V1_FILE, DICTIONARY_V1_SIZE

        data = train_dictionary(args.size or DICTIONARY_V1_SIZE)
        digest = hashlib.sha256(data).hexdigest()
        if DICTIONARY_V1_FILE.exists() and DICTIONARY_V1_FILE.read_bytes() == data:
            print(f"{DICTIONARY_V1_FILE} reproduced exactly ({len(data)} bytes, sha256 {digest})")
            return 0
        if DICTIONARY_V1_FILE.exists() and not args.force:
            # Links stored with codec 1 need the old bytes: a different dictionary is a new codec id.
            print(
                f"trained dictionary differs from the shipped {DICTIONARY_V1_FILE} (sha256 {digest}); "
                "not overwriting. A new dictionary needs a new file and codec id (see codec.py).",
                file=sys.stderr,
            )
            return 1
        DICTIONARY_DIR.mkdir(exist_ok=True)
        DICTIONARY_V1_FILE.write_bytes(data)
        print(
            f"wrote {DICTIONARY_V1_FILE} ({len(data)} bytes, sha256 {digest}); "
            "put the sha256 in codec.DICTIONARY_V1_SHA256"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
