"""How a layer is written: its precomputed ``info`` and the tasks that fill it, mip by mip.

A task covers a box of ``chunk × (2**k, 2**k, 1)`` voxels at the mip it reads: it reads that box
once (from the source for mip 0, else from the mip the previous pass wrote) and writes it and the
``k`` mips below it (tinybrain: averaging for images, mode for labels), as igneous' downsample
tasks do. Boxes are aligned to the chunk grid of every mip they write, so no two tasks write one
chunk and any task can run again (or on another machine) without harm. Memory per task is the
box at its largest, at most :data:`MAX_TASK_VOXELS` voxels whatever the volume's size.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..errors import Invalid
from ..precomputed import new_layer_info

FACTOR = (2, 2, 1)  # downsampling: z is kept (EM sections are thicker than a pixel)
MAX_MIPS_PER_PASS = 3
MAX_TASK_VOXELS = 64 * 512 * 512
CHUNK = (64, 64, 64)
IMAGE_DTYPES = ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "float32")


class ImportProblem(Invalid):
    """The source cannot be imported as asked (a one-line reason and what to do)."""


@dataclass(frozen=True)
class Pass:
    """One sweep over a layer: tasks read mip ``read_mip`` and write ``write_mips``."""

    read_mip: int
    write_mips: tuple[int, ...]
    box: tuple[int, int, int]  # task box at read_mip, voxels
    size: tuple[int, int, int]  # the layer's size at read_mip

    @property
    def label(self) -> str:
        first, last = self.write_mips[0], self.write_mips[-1]
        return f"mip {first}" if first == last else f"mips {first}-{last}"

    def boxes(self):
        """(index, start, stop) of every task box, in read_mip voxels relative to the layer's origin."""
        counts = [math.ceil(s / b) for s, b in zip(self.size, self.box)]
        for index in itertools.product(*(range(c) for c in counts)):
            start = tuple(i * b for i, b in zip(index, self.box))
            stop = tuple(min(a + b, s) for a, b, s in zip(start, self.box, self.size))
            yield index, start, stop

    def task_count(self) -> int:
        return math.prod(math.ceil(s / b) for s, b in zip(self.size, self.box))


def mip_count(size, chunk) -> int:
    """Mips down to a thumbnail: the last one fits in one chunk across x and y."""
    levels = 0
    while max(math.ceil(size[0] / 2**levels), math.ceil(size[1] / 2**levels)) > max(chunk[0], chunk[1]):
        levels += 1
    return levels + 1


def size_at(size, mip: int) -> tuple[int, int, int]:
    return tuple(math.ceil(s / f**mip) for s, f in zip(size, FACTOR))


def passes(size, chunk, mips: int, max_task_voxels: int = MAX_TASK_VOXELS) -> list[Pass]:
    """The sweeps that write ``mips`` mips of a layer of ``size`` voxels with ``chunk`` chunks."""
    out, mip = [], 0
    while True:
        k = min(MAX_MIPS_PER_PASS, mips - 1 - mip)
        while k > 0 and math.prod(chunk) * 4**k > max_task_voxels:
            k -= 1
        write = tuple(range(0 if mip == 0 else mip + 1, mip + k + 1))  # later passes read what exists
        if not write:
            return out
        out.append(Pass(mip, write, (chunk[0] * 2**k, chunk[1] * 2**k, chunk[2]), size_at(size, mip)))
        if k == 0:
            return out
        mip += k


SHARDED_ABOVE_CHUNKS = 4096  # --sharded auto: a mip-0 grid of more chunks than this is sharded


def wants_shards(given: str, size, chunk) -> bool:
    if given in ("yes", "no"):
        return given == "yes"
    return math.prod(math.ceil(s / c) for s, c in zip(size, chunk)) > SHARDED_ABOVE_CHUNKS


def sharding_spec(size, chunk, bits: int) -> dict:
    """Identity-hashed sharding with ``2**bits`` chunks per shard (a Morton-ordered block of the grid)."""
    grid = [max(1, math.ceil(s / c)) for s, c in zip(size, chunk)]
    total = sum(max(0, math.ceil(math.log2(g))) for g in grid)
    bits = min(bits, total)
    minishard_bits = min(3, bits)
    return {
        "@type": "neuroglancer_uint64_sharded_v1",
        "hash": "identity",
        "preshift_bits": bits - minishard_bits,
        "minishard_bits": minishard_bits,
        "shard_bits": total - bits,
        "minishard_index_encoding": "gzip",
        "data_encoding": "gzip",
    }


def shard_shape(scale: dict) -> tuple[int, int, int]:
    from cloudvolume.datasource.precomputed.sharding import image_shard_shape_from_spec

    shape = image_shard_shape_from_spec(scale["sharding"], scale["size"], scale["chunk_sizes"][0])
    return tuple(int(v) for v in shape)


def add_sharding(info: dict, max_task_voxels: int = MAX_TASK_VOXELS) -> None:
    """Shard every scale, as many chunks per shard as keep a task's read within ``max_task_voxels``
    (a task writes whole shards: CloudFiles cannot append to one)."""
    for mip, scale in enumerate(info["scales"]):
        chunk, read_factor = scale["chunk_sizes"][0], (1 if mip == 0 else 4)
        for bits in range(9, -1, -1):
            scale["sharding"] = sharding_spec(scale["size"], chunk, bits)
            if math.prod(shard_shape(scale)) * read_factor <= max_task_voxels:
                break


def sharded_passes(info: dict) -> list[Pass]:
    """One sweep per mip, each task one shard: mip 0 from the source, mip m from mip m-1."""
    out = []
    for mip, scale in enumerate(info["scales"]):
        shape = shard_shape(scale)
        if mip == 0:
            out.append(Pass(0, (0,), shape, tuple(scale["size"])))
        else:
            box = tuple(s * f for s, f in zip(shape, FACTOR))
            out.append(Pass(mip - 1, (mip,), box, tuple(info["scales"][mip - 1]["size"])))
    return out


def label_dtype(dtype: np.dtype) -> np.dtype:
    """What labels of ``dtype`` are stored as (compressed_segmentation takes 32 and 64 bits)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        raise ImportProblem(
            f"the segmentation holds floating-point values ({dtype}): labels must be integers "
            "(if they are whole numbers, save them as an integer type first)"
        )
    if dtype.kind == "b":
        raise ImportProblem(
            "the segmentation is a boolean mask: label its objects first (e.g. cc3d.connected_components)"
        )
    if dtype.kind not in "iu":
        raise ImportProblem(f"the segmentation's values are {dtype}, not integer labels")
    return np.dtype(np.uint64 if dtype.itemsize > 4 else np.uint32)


def image_dtype(dtype: np.dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return np.dtype(np.float32)
    if dtype.kind == "b":
        return np.dtype(np.uint8)
    if dtype.name not in IMAGE_DTYPES:
        raise ImportProblem(f"image values of type {dtype} cannot be stored as precomputed ({', '.join(IMAGE_DTYPES)})")
    return dtype


def layer_info(kind: str, dtype, encoding: str, voxel_size, offset, size, chunk, mips: int) -> dict:
    voxel_size = [int(v) if float(v).is_integer() else float(v) for v in voxel_size]  # scale keys: 8_8_40
    info = new_layer_info(kind, dtype, encoding, voxel_size, size, chunk, mips, FACTOR)
    for mip, scale in enumerate(info["scales"]):
        scale["voxel_offset"] = [int(o // f**mip) for o, f in zip(offset, FACTOR)]
    return info
