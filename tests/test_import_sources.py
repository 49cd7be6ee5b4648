"""The import's source readers: each format opened, measured and read box by box against the numpy
array it was written from; the ways a source fails, each told in one line; sources that pickle."""

from __future__ import annotations

import functools
import http.server
import json
import os
import pathlib
import pickle
import socket
import struct
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest

from segmentation.importing import SourceError, VolumeSource, open_source, reachability
from tests.helpers import free_port

Z, Y, X = 13, 70, 45  # odd and non-cubic: any axis mix-up changes a shape or a voxel

# boxes (x, y, z): all, a small one, one across chunk borders, the far corner voxel, a box at the far corner
BOXES = [
    ((0, 0, 0), (X, Y, Z)),
    ((5, 7, 2), (9, 30, 6)),
    ((10, 14, 3), (40, 50, 11)),
    ((X - 1, Y - 1, Z - 1), (X, Y, Z)),
    ((30, 60, 9), (X, Y, Z)),
]


def image_zyx() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (Z, Y, X), dtype=np.uint8)


def labels_zyx(dtype=np.uint32) -> np.ndarray:
    """Distinct labels per region, different along each axis (and above 2**32 for uint64)."""
    z, y, x = np.meshgrid(np.arange(Z), np.arange(Y), np.arange(X), indexing="ij")
    labels = 1 + (z // 4) * 10_000 + (y // 16) * 100 + x // 8 + (x % 3) * 7
    labels = labels.astype(dtype)
    if np.dtype(dtype).itemsize == 8:
        labels += np.uint64(1 << 40)
    return labels


def check_reads(source: VolumeSource, zyx: np.ndarray, voxel_size=None, voxel_offset=None) -> None:
    """Shape, dtype and voxel size as expected, and every box equal to the array's voxels."""
    xyz = zyx.transpose(2, 1, 0)
    assert source.shape == (X, Y, Z)
    assert source.dtype == zyx.dtype
    if voxel_size is None:
        assert source.voxel_size is None
    else:
        assert source.voxel_size == pytest.approx(voxel_size)
    assert source.voxel_offset == (None if voxel_offset is None else tuple(voxel_offset))
    assert isinstance(source.description, str) and source.description
    for start, stop in BOXES:
        got = source.read(start, stop)
        want = xyz[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]]
        assert got.shape == want.shape and got.dtype == zyx.dtype
        np.testing.assert_array_equal(got, want, err_msg=f"{source.description} box {start}..{stop}")
    copy = pickle.loads(pickle.dumps(source))  # what a Dask worker gets
    np.testing.assert_array_equal(copy.read((7, 8, 9), (30, 41, 12)), xyz[7:30, 8:41, 9:12])


# -- writers: each puts a (z, y, x) array in one format and says how to open it ----------------------


def write_npy(tmp_path, zyx):
    np.save(tmp_path / "v.npy", zyx)
    return str(tmp_path / "v.npy"), {}, None, None


def write_npy_xyz(tmp_path, zyx):
    np.save(tmp_path / "v.npy", zyx.transpose(2, 1, 0))  # as CloudVolume hands arrays out
    return str(tmp_path / "v.npy"), {"axes": "xyz"}, None, None


def write_hdf5(tmp_path, zyx):
    import h5py

    with h5py.File(tmp_path / "v.h5", "w") as f:
        dataset = f.create_dataset("volumes/raw", data=zyx, chunks=(5, 16, 16), compression="gzip")
        dataset.attrs["resolution"] = [40.0, 8.0, 4.0]  # CREMI's: nm, in the stored z, y, x order
    return str(tmp_path / "v.h5"), {}, (4, 8, 40), None


def write_hdf5_two(tmp_path, zyx):
    import h5py

    with h5py.File(tmp_path / "two.hdf5", "w") as f:
        f.create_dataset("raw", data=np.zeros_like(zyx))
        f.create_dataset("labels/main", data=zyx, chunks=(4, 32, 32))
        f["labels/main"].attrs["element_size_um"] = [0.04, 0.008, 0.008]
    return str(tmp_path / "two.hdf5"), {"dataset_path": "labels/main"}, (8, 8, 40), None


def write_hdf5_inner_path(tmp_path, zyx):
    path, _, size, offset = write_hdf5_two(tmp_path, zyx)
    return path + ":/labels/main", {}, size, offset


def write_tiff(tmp_path, zyx):
    import tifffile

    tifffile.imwrite(tmp_path / "v.tif", zyx)
    return str(tmp_path / "v.tif"), {}, None, None


def write_tiff_tiled(tmp_path, zyx):
    import tifffile

    tifffile.imwrite(tmp_path / "v.tiff", zyx, compression="zlib", tile=(16, 32), metadata=None)
    return str(tmp_path / "v.tiff"), {}, None, None


def write_png_folder(tmp_path, zyx):
    from PIL import Image

    folder = tmp_path / "pngs"
    folder.mkdir()
    for z, plane in enumerate(zyx):
        Image.fromarray(plane).save(folder / f"slice_{z}.png")  # slice_10 sorts after slice_9
    (folder / "notes.txt").write_text("not a slice")
    return str(folder), {}, None, None


def write_tiff_folder(tmp_path, zyx):
    import tifffile

    folder = tmp_path / "tiffs"
    folder.mkdir()
    for z, plane in enumerate(zyx):
        tifffile.imwrite(folder / f"z{z:d}.tif", plane, compression="zlib")
    return str(folder), {}, None, None


def write_zarr2(tmp_path, zyx):
    import zarr

    zarr.create_array(str(tmp_path / "v.zarr"), data=zyx, chunks=(5, 16, 16), zarr_format=2)
    return str(tmp_path / "v.zarr"), {}, None, None


def write_zarr3(tmp_path, zyx):
    import zarr

    zarr.create_array(
        str(tmp_path / "v.zarr"), data=zyx, chunks=(5, 16, 16), zarr_format=3, dimension_names=["z", "y", "x"]
    )
    return str(tmp_path / "v.zarr"), {}, None, None


def write_zarr3_xyz_sharded(tmp_path, zyx):
    import zarr

    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=3)
    group.create_array(
        "labels", data=np.asfortranarray(zyx.transpose(2, 1, 0)), chunks=(8, 8, 4), shards=(16, 32, 8),
        dimension_names=["x", "y", "z"],
    )  # fmt: skip
    return f"file://{tmp_path / 'g.zarr'}", {"dataset_path": "labels"}, None, None


def write_ome_zarr(tmp_path, zyx):
    """OME-Zarr 0.4 (Zarr v2): two scales in micrometres, and a translation of whole voxels."""
    import zarr

    group = zarr.open_group(str(tmp_path / "v.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("s0", data=zyx, chunks=(5, 16, 16))
    group.create_array("s1", data=zyx[:, ::2, ::2], chunks=(5, 16, 16))
    axes = [{"name": name, "type": "space", "unit": "micrometer"} for name in "zyx"]
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": axes,
            "datasets": [
                {
                    "path": "s0",
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [0.04, 0.008, 0.004]},
                        {"type": "translation", "translation": [0.4, 0.08, 0.012]},
                    ],
                },
                {"path": "s1", "coordinateTransformations": [{"type": "scale", "scale": [0.04, 0.016, 0.008]}]},
            ],
        }
    ]
    return str(tmp_path / "v.ome.zarr"), {}, (4, 8, 40), (3, 10, 10)


def write_ome_zarr_v05(tmp_path, zyx):
    """OME-Zarr 0.5 (Zarr v3): t, c, z, y, x with single time point and channel, nanometres, a group scale."""
    import zarr

    group = zarr.open_group(str(tmp_path / "v.zarr"), mode="w", zarr_format=3)
    group.create_array("0", data=zyx[None, None], chunks=(1, 1, 5, 32, 32))
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    axes += [{"name": name, "type": "space", "unit": "nanometer"} for name in "zyx"]
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": axes,
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 20, 4, 2]}]}
                ],
                "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 2, 2, 2]}],
            }
        ],
    }
    return f"zarr://file://{tmp_path / 'v.zarr'}", {}, (4, 8, 40), None


def write_n5_by_hand(folder, xyz: np.ndarray, block=(16, 32, 5), attrs: dict | None = None):
    """An N5 dataset of raw blocks, written from the N5 spec (not with tensorstore): ``dimensions`` fastest
    first (x, y, z), each block a big-endian header then its voxels big-endian, x varying fastest."""
    folder.mkdir(parents=True)
    meta = {"dimensions": list(xyz.shape), "blockSize": list(block), "dataType": xyz.dtype.name}
    meta |= {"compression": {"type": "raw"}} | (attrs or {})
    (folder / "attributes.json").write_text(json.dumps(meta))
    grid = [range(0, size, b) for size, b in zip(xyz.shape, block)]
    for x0 in grid[0]:
        for y0 in grid[1]:
            for z0 in grid[2]:
                piece = xyz[x0 : x0 + block[0], y0 : y0 + block[1], z0 : z0 + block[2]]
                header = struct.pack(">HH", 0, 3) + struct.pack(">3I", *piece.shape)
                path = folder / str(x0 // block[0]) / str(y0 // block[1]) / str(z0 // block[2])
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(header + piece.astype(piece.dtype.newbyteorder(">")).tobytes(order="F"))


def write_n5(tmp_path, zyx):
    write_n5_by_hand(tmp_path / "v.n5" / "raw", zyx.transpose(2, 1, 0), attrs={"resolution": [4, 8, 40]})
    return str(tmp_path / "v.n5"), {"dataset_path": "raw"}, (4, 8, 40), None


def write_n5_multiscale(tmp_path, zyx):
    """A multiscale N5 group (``s0``, ``s1``) with the voxel size on the group, in µm."""
    root = tmp_path / "ms.n5"
    write_n5_by_hand(root / "s0", zyx.transpose(2, 1, 0), attrs={"downsamplingFactors": [1, 1, 1]})
    write_n5_by_hand(root / "s1", zyx.transpose(2, 1, 0)[::2, ::2], attrs={"downsamplingFactors": [2, 2, 1]})
    (root / "attributes.json").write_text(
        json.dumps({"n5": "2.0.0", "pixelResolution": {"dimensions": [0.004, 0.008, 0.04], "unit": "um"}})
    )
    return f"n5://{root}", {}, (4, 8, 40), None


def write_n5_tensorstore(tmp_path, zyx):
    """N5 written by tensorstore: what tensorstore puts first in ``dimensions`` reads back as x."""
    import tensorstore as ts

    xyz = zyx.transpose(2, 1, 0)
    spec = {
        "driver": "n5",
        "kvstore": f"file://{tmp_path / 'ts.n5'}",
        "metadata": {"dimensions": list(xyz.shape), "blockSize": [16, 16, 8], "dataType": xyz.dtype.name},
    }
    store = ts.open(spec, create=True).result()
    store[...] = xyz
    meta = json.loads((tmp_path / "ts.n5" / "attributes.json").read_text())
    assert meta["dimensions"] == [X, Y, Z]  # tensorstore keeps N5's order: nothing reversed
    return str(tmp_path / "ts.n5"), {}, None, None


def write_precomputed(tmp_path, zyx, compress=True, encoding="raw"):
    from cloudvolume import CloudVolume

    xyz = zyx.transpose(2, 1, 0)
    layer_type = "image" if zyx.dtype == np.uint8 else "segmentation"
    info = CloudVolume.create_new_info(
        1, layer_type, zyx.dtype.name, encoding, [4, 8, 40], [3, 7, 11], [X, Y, Z], chunk_size=[16, 16, 8]
    )
    volume = CloudVolume(f"file://{tmp_path / 'pc'}", info=info, compress=compress, progress=False)
    volume.commit_info()
    volume[3 : 3 + X, 7 : 7 + Y, 11 : 11 + Z] = xyz
    return str(tmp_path / "pc"), {}, (4, 8, 40), (3, 7, 11)


def write_precomputed_cseg(tmp_path, zyx):
    path, kwargs, size, offset = write_precomputed(tmp_path, zyx, encoding="compressed_segmentation")
    return "precomputed://file://" + path, kwargs, size, offset


IMAGE_WRITERS = [
    write_npy,
    write_npy_xyz,
    write_hdf5,
    write_tiff,
    write_tiff_tiled,
    write_png_folder,
    write_tiff_folder,
    write_zarr2,
    write_zarr3,
    write_ome_zarr,
    write_ome_zarr_v05,
    write_n5,
    write_n5_multiscale,
    write_n5_tensorstore,
    write_precomputed,
]
LABEL_WRITERS = [
    write_npy,
    write_hdf5_two,
    write_hdf5_inner_path,
    write_tiff,
    write_tiff_folder,
    write_zarr2,
    write_zarr3_xyz_sharded,
    write_ome_zarr,
    write_n5,
    write_precomputed_cseg,
]


@pytest.mark.parametrize("writer", IMAGE_WRITERS, ids=lambda w: w.__name__[len("write_") :])
def test_images_read_voxel_for_voxel(tmp_path, writer):
    zyx = image_zyx()
    spec, kwargs, voxel_size, voxel_offset = writer(tmp_path, zyx)
    check_reads(open_source(spec, **kwargs), zyx, voxel_size, voxel_offset)


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
@pytest.mark.parametrize("writer", LABEL_WRITERS, ids=lambda w: w.__name__[len("write_") :])
def test_labels_read_voxel_for_voxel(tmp_path, writer, dtype):
    zyx = labels_zyx(dtype)
    spec, kwargs, voxel_size, voxel_offset = writer(tmp_path, zyx)
    check_reads(open_source(spec, **kwargs), zyx, voxel_size, voxel_offset)


def test_16_bit_png_slices(tmp_path):
    zyx = (labels_zyx() % 60_000).astype(np.uint16)
    spec, *_ = write_png_folder(tmp_path, zyx)
    check_reads(open_source(spec), zyx)


def test_formats_and_chunks(tmp_path):
    zyx = image_zyx()
    cases = {
        "npy": (write_npy, None),
        "hdf5": (write_hdf5, (16, 16, 5)),
        "tiff": (write_tiff_tiled, (32, 16, 1)),
        "zarr": (write_zarr2, (16, 16, 5)),
        "n5": (write_n5, (16, 32, 5)),
        "precomputed": (write_precomputed, (16, 16, 8)),
    }
    for name, (writer, chunks) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        spec, kwargs, *_ = writer(folder, zyx)
        source = open_source(spec, **kwargs)
        assert source.format == name and source.chunk_shape == chunks, source
    assert open_source(spec, format="precomputed").voxel_offset == (3, 7, 11)


def test_format_override_and_prefixes(tmp_path):
    zyx = image_zyx()
    spec, *_ = write_zarr2(tmp_path, zyx)
    renamed = tmp_path / "volume-without-suffix"
    os.rename(spec, renamed)
    assert open_source(str(renamed)).format == "zarr"  # by its .zarray
    assert open_source(f"file://{renamed}", format="zarr").shape == (X, Y, Z)
    with open(tmp_path / "data.bin", "wb") as handle:
        np.save(handle, zyx)
    assert open_source(str(tmp_path / "data.bin")).format == "npy"  # by its magic bytes
    with pytest.raises(SourceError, match="unknown format 'jpeg2000'"):
        open_source(str(renamed), format="jpeg2000")


def test_sources_pickle_small_and_read_in_another_process(tmp_path):
    zyx = labels_zyx()
    sources = []
    for writer in (write_hdf5_two, write_tiff, write_zarr3, write_precomputed):
        folder = tmp_path / writer.__name__
        folder.mkdir()
        spec, kwargs, *_ = writer(folder, zyx)
        source = open_source(spec, **kwargs)
        source.read((0, 0, 0), (4, 4, 4))  # its handle is open in this process: not pickled with it
        assert len(pickle.dumps(source)) < 2000
        sources.append(source)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        boxes = list(pool.map(_read_box, sources))
    for got in boxes:
        np.testing.assert_array_equal(got, zyx.transpose(2, 1, 0)[10:40, 14:50, 3:11])


def _read_box(source: VolumeSource) -> np.ndarray:
    return source.read((10, 14, 3), (40, 50, 11))


def test_n5_axes_follow_the_spec_and_can_be_named(tmp_path):
    """N5 stores ``dimensions`` x first: a hand-written dataset of shape (45, 70, 13) is x=45, y=70, z=13;
    an ``axes`` attribute (as Neuroglancer writes) is followed when it says otherwise."""
    xyz = labels_zyx().transpose(2, 1, 0)
    write_n5_by_hand(tmp_path / "a.n5", xyz)
    source = open_source(str(tmp_path / "a.n5"))
    assert source.axes == "xyz" and source.shape == (X, Y, Z)
    np.testing.assert_array_equal(source.read((40, 60, 10), (45, 70, 13)), xyz[40:, 60:, 10:])
    zyx = labels_zyx()
    write_n5_by_hand(tmp_path / "b.n5", zyx, block=(5, 16, 16), attrs={"axes": ["z", "y", "x"]})
    check_reads(open_source(str(tmp_path / "b.n5")), zyx)


def test_tiff_folder_checks_slice_sizes_when_it_reads_them(tmp_path):
    from PIL import Image

    zyx = image_zyx()
    spec, *_ = write_png_folder(tmp_path, zyx)
    Image.fromarray(np.zeros((Y, X + 1), np.uint8)).save(tmp_path / "pngs" / "slice_11.png")
    source = open_source(spec)  # only the first slice is looked at
    assert source.shape == (X, Y, Z)
    np.testing.assert_array_equal(source.read((0, 0, 0), (X, Y, 5)), zyx[:5].transpose(2, 1, 0))
    with pytest.raises(SourceError, match=r"slice_11\.png is 70×46 uint8, the first is 70×45 uint8"):
        source.read((0, 0, 8), (X, Y, Z))


def test_channel_axes(tmp_path):
    zyx = labels_zyx()
    np.save(tmp_path / "czyx.npy", zyx[None])
    np.save(tmp_path / "zyxc.npy", zyx[..., None])
    check_reads(open_source(str(tmp_path / "czyx.npy")), zyx)
    check_reads(open_source(str(tmp_path / "zyxc.npy")), zyx)
    np.save(tmp_path / "rgb.npy", np.stack([zyx] * 3, axis=-1))
    with pytest.raises(SourceError, match="has 3 channels.*only single-channel volumes are imported"):
        open_source(str(tmp_path / "rgb.npy"))
    np.save(tmp_path / "three.npy", np.stack([zyx] * 3))
    with pytest.raises(SourceError, match="has 3 channels"):
        open_source(str(tmp_path / "three.npy"))
    with pytest.raises(SourceError, match="names 3 axes but .* has 4"):
        open_source(str(tmp_path / "three.npy"), axes="zyx")
    with pytest.raises(SourceError, match="is not an axis order"):
        open_source(str(tmp_path / "czyx.npy"), axes="czzx")
    check_reads(open_source(str(tmp_path / "zyxc.npy"), axes="zyxc"), zyx)


def test_shapes_and_dtypes_left_to_the_pipeline(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((70, 45), np.uint8))
    with pytest.raises(SourceError, match=r"is 2-D \(shape \(70, 45\)\): a volume needs 3 axes"):
        open_source(str(tmp_path / "flat.npy"))
    floats = np.random.default_rng(1).random((Z, Y, X)).astype(np.float32)
    np.save(tmp_path / "float.npy", floats)
    check_reads(open_source(str(tmp_path / "float.npy")), floats)  # the pipeline decides what it accepts
    np.save(tmp_path / "five.npy", np.zeros((2, 1, Z, Y, X), np.uint8))
    with pytest.raises(SourceError, match="5-D.*--axes"):
        open_source(str(tmp_path / "five.npy"))
    source = open_source(str(tmp_path / "float.npy"))
    with pytest.raises(SourceError, match="not inside"):
        source.read((0, 0, 0), (X + 1, Y, Z))
    assert source.read((3, 3, 3), (3, 9, 9)).shape == (0, 6, 6)


def test_hdf5_with_two_volumes_asks_which(tmp_path):
    spec, *_ = write_hdf5_two(tmp_path, labels_zyx())
    with pytest.raises(SourceError) as raised:
        open_source(spec)
    message = str(raised.value)
    assert "/raw" in message and "/labels/main" in message and "--dataset-path" in message and "\n" not in message
    with pytest.raises(SourceError, match="/labels is a group, not a dataset.*--dataset-path"):
        open_source(spec, dataset_path="labels")
    with pytest.raises(SourceError, match="/nothing is not in the file"):
        open_source(spec, dataset_path="/nothing")


def test_groups_without_a_volume_name_what_they_hold(tmp_path):
    import zarr

    group = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w", zarr_format=2)
    group.create_array("raw", data=image_zyx())
    with pytest.raises(SourceError, match=r"without OME-Zarr multiscales \(it holds raw\).*--dataset-path"):
        open_source(str(tmp_path / "plain.zarr"))
    assert open_source(str(tmp_path / "plain.zarr"), dataset_path="raw").shape == (X, Y, Z)
    write_n5_by_hand(tmp_path / "c.n5" / "volumes" / "raw", image_zyx().transpose(2, 1, 0))
    (tmp_path / "c.n5" / "attributes.json").write_text('{"n5": "2.0.0"}')
    (tmp_path / "c.n5" / "volumes" / "attributes.json").write_text("{}")
    with pytest.raises(SourceError, match=r"is an N5 group \(it holds volumes\).*--dataset-path"):
        open_source(str(tmp_path / "c.n5"))


def test_one_line_failures(tmp_path):
    (tmp_path / "notes.txt").write_text("a lab notebook, not a volume\n")
    cases = [
        (str(tmp_path / "notes.txt"), r"notes\.txt is not a volume \(a text file\); give a \.npy, HDF5"),
        (str(tmp_path / "missing.h5"), r"nothing at .*missing\.h5: not found; check the path"),
        (f"http://127.0.0.1:{free_port()}/x", r"connection refused by 127\.0\.0\.1:\d+ \(nothing listens there\)"),
        ("foo://x", r"unknown URL scheme foo://; use a local path, file://, gs://, s3:// or http\(s\)://"),
        (str(tmp_path), r"is not a volume \(a folder with no precomputed info, Zarr or N5 metadata"),
        (str(tmp_path / "notes.txt/inner"), "not found"),
    ]
    for spec, pattern in cases:
        with pytest.raises(SourceError, match=pattern) as raised:
            open_source(spec)
        assert "\n" not in str(raised.value)
    (tmp_path / "fake.h5").write_text("not hdf5")
    with pytest.raises(SourceError, match=r"fake\.h5 is not a volume \(a text file\)"):
        open_source(str(tmp_path / "fake.h5"))
    with pytest.raises(SourceError, match="h5py cannot open it as HDF5"):
        open_source(str(tmp_path / "fake.h5"), format="hdf5")
    with pytest.raises(SourceError, match="copy it here first"):
        open_source("https://example.org/volume.h5")
    with pytest.raises(SourceError, match="no Zarr array or group there"):
        open_source(str(tmp_path), format="zarr")


@pytest.fixture
def http_folder(tmp_path):
    """``tmp_path`` served over HTTP on loopback (a static file server, as a bucket's website is)."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_remote_sources_over_http(tmp_path, http_folder):
    zyx = labels_zyx()
    write_precomputed(tmp_path, zyx, compress=False)  # a static server sends no Content-Encoding for .gz
    check_reads(open_source(f"precomputed://{http_folder}/pc"), zyx, (4, 8, 40), (3, 7, 11))
    write_zarr3(tmp_path, zyx)
    check_reads(open_source(f"{http_folder}/v.zarr"), zyx)
    write_n5(tmp_path, zyx)
    check_reads(open_source(f"{http_folder}/v.n5", dataset_path="raw"), zyx, (4, 8, 40))
    with pytest.raises(SourceError, match="not found"):
        open_source(f"{http_folder}/nothing-here")
    with pytest.raises(SourceError, match="no Zarr array or group there"):
        open_source(f"{http_folder}/nothing.zarr")


def test_precomputed_on_s3_and_a_missing_bucket(tmp_path, s3):
    from segmentation.datasets import DatasetError, read_info
    from segmentation.storage import cloud_files

    zyx = labels_zyx()
    path, *_ = write_precomputed(tmp_path, zyx, compress=False)
    url = s3.url()
    files = [(str(f.relative_to(path)), f.read_bytes()) for f in sorted(pathlib.Path(path).rglob("*")) if f.is_file()]
    cloud_files(url).puts(files, compress=None)
    check_reads(open_source(url), zyx, (4, 8, 40), (3, 7, 11))
    missing = url.replace("/axonlink/", "/no-such-bucket-here/")
    with pytest.raises(SourceError, match="no such bucket no-such-bucket-here"):
        open_source(missing)
    with pytest.raises(DatasetError, match="no such bucket no-such-bucket-here; check the bucket name"):
        read_info(missing)
    with pytest.raises(DatasetError, match="missing info file"):
        read_info(url + "-elsewhere")


def test_reachability_tells_failures_apart(monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    assert "unknown host data.example.invalid" in reachability.probe("https://data.example.invalid/v")
    monkeypatch.undo()
    cases = {
        reachability.REFUSED: ConnectionRefusedError(111, "Connection refused"),
        reachability.UNKNOWN_HOST: OSError("Could not resolve host: data.example.invalid"),
        reachability.NO_BUCKET: RuntimeError("An error occurred (NoSuchBucket): The specified bucket does not exist"),
        reachability.NOT_FOUND: FileNotFoundError(2, "No such file or directory"),
        reachability.PERMISSION: PermissionError(13, "Permission denied"),
        reachability.UNKNOWN_SCHEME: ValueError('unsupported URL scheme "foo" in "foo://x"'),
        reachability.NOT_A_VOLUME: OSError("Unable to open file (file signature not found)"),
        reachability.TIMEOUT: TimeoutError("timed out"),
    }
    for kind, error in cases.items():
        assert reachability.classify(error) == kind, error
    wrapped = RuntimeError("retries exhausted")
    wrapped.__cause__ = ConnectionError("HTTPConnectionPool: Max retries", ConnectionRefusedError(111, "refused"))
    assert reachability.classify(wrapped) == reachability.REFUSED
    forbidden = RuntimeError("GET failed")
    forbidden.response = type("Response", (), {"status_code": 403})()
    assert reachability.classify(forbidden) == reachability.PERMISSION
    line = reachability.explain("gs://lab-bucket/em", PermissionError(13, "Permission denied"))
    assert line.startswith("cannot read gs://lab-bucket/em: permission denied; give this machine read access")
    line = reachability.explain("s3://lab/em", RuntimeError("NoSuchBucket"))
    assert (
        line
        == "cannot read s3://lab/em: no such bucket lab; check the bucket name (and the account or endpoint it lives in)"
    )
    assert reachability.bucket_of("s3://http://127.0.0.1:9000/lab/em") == "lab"


# -- add-dataset: read_info tells the same failures apart ---------------------------------------------


def test_read_info_says_what_is_wrong(tmp_path, http_folder):
    import tifffile

    from segmentation.datasets import DatasetError, read_info

    (tmp_path / "stack").mkdir()
    for z in range(3):
        tifffile.imwrite(tmp_path / "stack" / f"{z}.tif", np.zeros((8, 8), np.uint8))
    np.save(tmp_path / "v.npy", np.zeros((4, 4, 4), np.uint8))
    (tmp_path / "notes.txt").write_text("text")
    (tmp_path / "v.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    port = free_port()
    cases = [
        (f"http://127.0.0.1:{port}/layer", f"connection refused by 127.0.0.1:{port}"),
        ("foo://bucket/layer", "unknown URL scheme foo://"),
        (
            f"file://{tmp_path / 'stack'}",
            "folder of TIFF or PNG slices, not a precomputed volume: import it with axonlink import NAME --image",
        ),
        (
            str(tmp_path / "v.npy"),
            "is a .npy file, not a precomputed volume: import it with axonlink import NAME --image",
        ),
        (
            str(tmp_path / "v.h5"),
            "is an HDF5 file, not a precomputed volume: import it with axonlink import NAME --image",
        ),
        (f"{http_folder}/labels.zarr", "labels.zarr is a Zarr volume, not a precomputed volume: import it with"),
        (f"{http_folder}/layer", f"no precomputed volume at {http_folder}/layer (missing info file): check the URL"),
        (str(tmp_path / "notes.txt"), "is a file, not a precomputed volume folder (a text file)"),
        ("file:///nonexistent/layer", "missing info file"),
    ]
    for url, expected in cases:
        with pytest.raises(DatasetError) as raised:
            read_info(url)
        assert expected in str(raised.value) and "\n" not in str(raised.value), str(raised.value)


def test_a_tiff_stack_states_its_voxel_size_in_imagej_or_ome_metadata_else_none(tmp_path):
    """ImageJ (resolution tags and slice spacing in its unit, µm escaped as ImageJ writes it) and
    OME-TIFF (PhysicalSize in µm unless a unit is given) give nm per voxel; a plain TIFF, or ImageJ
    in pixels, gives none (then --voxel-size is asked for)."""
    import tifffile

    volume = np.arange(4 * 8 * 6, dtype=np.uint8).reshape(4, 8, 6)  # z, y, x
    tifffile.imwrite(
        tmp_path / "imagej.tif",
        volume,
        imagej=True,
        resolution=(250, 125),
        metadata={"spacing": 0.04, "unit": "\\u00B5m"},
    )
    tifffile.imwrite(
        tmp_path / "ome.tif",
        volume,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.004,
            "PhysicalSizeY": 0.008,
            "PhysicalSizeZ": 45,
            "PhysicalSizeZUnit": "nm",
        },
    )
    tifffile.imwrite(tmp_path / "plain.tif", volume, photometric="minisblack")  # a z-stack, not RGB planes
    tifffile.imwrite(
        tmp_path / "pixels.tif", volume, imagej=True, metadata={"spacing": 1, "unit": "pixel", "axes": "ZYX"}
    )
    assert open_source(str(tmp_path / "imagej.tif")).voxel_size == pytest.approx((4, 8, 40))
    ome = open_source(str(tmp_path / "ome.tif"))
    assert ome.voxel_size == pytest.approx((4, 8, 45)) and ome.shape == (6, 8, 4)
    assert np.array_equal(ome.read((0, 0, 0), (6, 8, 4)), volume.transpose(2, 1, 0))
    assert open_source(str(tmp_path / "plain.tif")).voxel_size is None
    assert open_source(str(tmp_path / "pixels.tif")).voxel_size is None
