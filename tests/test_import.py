"""``axonlink import``: volumes from the files labs have, written as precomputed with mips on Dask,
registered, given a graph and read back through the server voxel for voxel."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tinybrain

from segmentation.demo.phantom import make_phantom
from segmentation.graph.ids import supervoxel_ids
from server.cli import main
from tests.helpers import free_port, image_mips, read_back

SHAPE = (150, 125, 33)  # x, y, z: not a multiple of any chunk


@pytest.fixture(scope="module")
def phantom():
    """A small phantom (x, y, z arrays) and its supervoxel → neuron table."""
    made = make_phantom(3, neuron_count=8, shape=(160, 128, 36))
    image = np.ascontiguousarray(made.image[: SHAPE[0], : SHAPE[1], : SHAPE[2]])
    labels = np.ascontiguousarray(made.labels[: SHAPE[0], : SHAPE[1], : SHAPE[2]])
    present = set(np.unique(labels).tolist()) - {0}
    bodies = {sv: neuron for sv, neuron in made.supervoxel_to_neuron.items() if sv in present}
    return image, labels, bodies


def save_npy(folder: Path, image, labels) -> tuple[str, str]:
    """As numpy tools save volumes: indexed [z, y, x]."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "image.npy", np.ascontiguousarray(image.transpose(2, 1, 0)))
    np.save(folder / "labels.npy", np.ascontiguousarray(labels.transpose(2, 1, 0)))
    return str(folder / "image.npy"), str(folder / "labels.npy")


def run_import(settings, name: str, image: str, labels: str, *extra: str) -> int:
    return main(
        [
            "import",
            name,
            "--home",
            str(settings.home),
            "--database-url",
            settings.database_url,
            "--image",
            image,
            "--segmentation",
            labels,
            "--workers",
            "2",
            *extra,
        ]
    )


def test_an_npy_pair_imports_with_mips_and_reads_back_through_the_server_voxel_for_voxel(settings, phantom, tmp_path):
    import tensorstore as ts

    from segmentation.datasets import Datasets
    from server import create_app
    from server.runner import BackgroundServer

    image, labels, _ = phantom
    image_file, labels_file = save_npy(tmp_path / "src", image, labels)
    assert (
        run_import(
            settings,
            "imported",
            image_file,
            labels_file,
            "--voxel-size",
            "8,8,40",
            "--image-encoding",
            "raw",
            "--offset",
            "10,20,3",
            "--no-mesh",
        )
        == 0
    )
    dataset = Datasets(settings.database_url).get("imported")
    assert dataset.voxel_offset == [10, 20, 3] and dataset.volume_size == list(SHAPE)
    with BackgroundServer(create_app(settings)) as server:
        served_image = read_back(f"precomputed://{server.url}/data/imported/image")
        served_svs = read_back(f"precomputed://{server.url}/data/imported@supervoxels/segmentation")
        assert np.array_equal(served_image[0], image)
        assert np.array_equal(served_svs[0], supervoxel_ids(labels).reshape(labels.shape))
        # the mips are what tinybrain makes of the whole volume (tasks cut it in boxes: no seams)
        reference_image_mips = image_mips(image, len(served_image) - 1)
        label_mips = tinybrain.downsample_segmentation(labels, (2, 2, 1), num_mips=len(served_svs) - 1, sparse=False)
        assert len(served_image) == 3
        for mip in range(1, len(served_image)):
            assert np.array_equal(served_image[mip], reference_image_mips[mip - 1]), f"image mip {mip}"
            assert np.array_equal(
                served_svs[mip], supervoxel_ids(label_mips[mip - 1]).reshape(label_mips[mip - 1].shape)
            )
        # tensorstore reads the same through the server
        store = ts.open(
            {"driver": "neuroglancer_precomputed", "kvstore": f"{server.url}/data/imported/image/"}, read=True
        ).result()
        got = store[ts.d["channel"][0]].read().result()
        assert got.shape == SHAPE and np.array_equal(np.asarray(got), image)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_raveler_style_body_table_makes_the_roots_and_round_trips(settings, phantom, tmp_path, capsys):
    """--agglomeration with a supervoxel -> body table: the graph starts with those bodies as its
    neurons (every body one root), and the table read back from the graph is the one given."""
    from segmentation.graph import Graph

    image, labels, bodies = phantom
    image_file, labels_file = save_npy(tmp_path / "src", image, labels)
    capsys.readouterr()
    table = tmp_path / "bodies.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["supervoxel", "body"])
        for sv, body in sorted(bodies.items()):
            writer.writerow([sv, body])
    assert (
        run_import(
            settings,
            "bodies",
            image_file,
            labels_file,
            "--voxel-size",
            "8,8,40",
            "--agglomeration",
            str(table),
            "--no-mesh",
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["graph"]["roots"] == len(set(bodies.values()))
    assert summary["layers"]["segmentation"]["highest_label"] == int(labels.max())
    graph = Graph.open(settings.database_url, "bodies")
    svs = sorted(bodies)
    roots = [int(r) for r in graph.roots(supervoxel_ids(np.asarray(svs, dtype=np.uint64)))]
    by_body: dict[int, set] = {}
    for sv, root in zip(svs, roots):
        by_body.setdefault(bodies[sv], set()).add(root)
    assert all(len(r) == 1 for r in by_body.values()), "a body split over several roots"
    assert len({next(iter(r)) for r in by_body.values()}) == len(by_body), "two bodies share a root"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("dtype", [np.uint64, np.uint32])
def test_skeletons_are_one_tree_per_label_across_blocks_and_a_neuron_joins_its_supervoxels(
    settings, phantom, tmp_path, capsys, dtype
):
    """--skeletons: a precomputed skeleton per label (CloudVolume reads them from the layer), its
    vertices inside the label, one tree where the label is one piece even across the blocks it was
    skeletonized in; served per supervoxel, and per neuron as the union of its supervoxels'."""
    import cc3d
    import networkx as nx
    import requests
    from cloudvolume import CloudVolume

    from segmentation.graph import Graph
    from server import create_app
    from server.runner import BackgroundServer

    image, labels, bodies = phantom
    labels = labels.astype(dtype)  # as labs store them: uint32 as often as uint64
    image_file, labels_file = save_npy(tmp_path / "src", image, labels)
    table = tmp_path / "bodies.csv"
    table.write_text("supervoxel,body\n" + "".join(f"{sv},{body}\n" for sv, body in sorted(bodies.items())))
    capsys.readouterr()
    flags = ["--voxel-size", "8,8,40", "--agglomeration", str(table), "--no-mesh", "--skeletons"]
    assert run_import(settings, "skel", image_file, labels_file, *flags) == 0
    summary = json.loads(capsys.readouterr().out)
    present = sorted(set(np.unique(labels).tolist()) - {0})
    layer = settings.home / "volumes" / "skel" / "segmentation"
    volume = CloudVolume(f"file://{layer}", progress=False)
    assert volume.info["skeletons"] == "skeletons" and volume.dtype == np.dtype(dtype)
    stored = {int(p.name) for p in (layer / "skeletons").iterdir() if p.name.isdigit()}
    assert summary["skeletons"] == len(stored) and stored <= set(present)
    resolution = np.asarray(volume.resolution, dtype=np.float64)
    crossing = 0
    for label in present:
        voxels = labels == label
        pieces, count = cc3d.connected_components(voxels, connectivity=26, return_N=True)
        if count != 1 or voxels.sum() < 500:
            continue  # several pieces (or a sliver) may make several trees, or none
        skeleton = volume.skeleton.get(label)
        at = np.floor(skeleton.vertices / resolution).astype(int)
        assert (labels[at[:, 0], at[:, 1], at[:, 2]] == label).all(), f"label {label}: a vertex outside it"
        tree = nx.Graph()
        tree.add_nodes_from(range(len(skeleton.vertices)))
        tree.add_edges_from(skeleton.edges.tolist())
        assert nx.is_connected(tree), f"label {label}: its pieces from two blocks do not meet"
        xs = np.flatnonzero(voxels.any(axis=(1, 2)))
        crossing += int(xs.min() < 128 <= xs.max())  # the blocks meet at x = 128
    assert crossing >= 2
    graph = Graph.open(settings.database_url, "skel")
    body = max(set(bodies.values()), key=lambda b: sum(1 for v in bodies.values() if v == b))
    members = [sv for sv, b in bodies.items() if b == body and sv in stored]
    root = int(graph.roots(supervoxel_ids(np.asarray(members[:1], dtype=np.uint64)))[0])
    assert len(members) >= 2
    with BackgroundServer(create_app(settings)) as server:
        served = CloudVolume(f"precomputed://{server.url}/data/skel/segmentation", progress=False)
        joined = served.skeleton.get(root)
        expected = sum(len(volume.skeleton.get(sv).vertices) for sv in members)
        assert len(joined.vertices) == expected
        one = int(supervoxel_ids(np.asarray(members[:1], dtype=np.uint64))[0])
        by_sv = CloudVolume(f"precomputed://{server.url}/data/skel@supervoxels/segmentation", progress=False)
        assert np.array_equal(by_sv.skeleton.get(one).vertices, volume.skeleton.get(members[0]).vertices)
        for bad in ("nope", "99999999999999999999999", str(2**64 + 1)):
            answer = requests.get(f"{server.url}/data/skel/segmentation/skeletons/{bad}", timeout=10)
            assert answer.status_code == 404


def _all_mips(where: Path | str) -> dict:
    """Every mip of both layers of an import, in a folder or at a URL."""
    url = where if isinstance(where, str) else f"file://{where}"
    return {kind: read_back(f"{url}/{kind}") for kind in ("image", "segmentation")}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_import_killed_mid_way_continues_without_redoing_work_and_ends_identical(settings, phantom, tmp_path):
    """kill -9 of the whole import (its Dask workers too) part-way through the pyramid; the same
    command again finishes it; every mip equals an import that was never interrupted."""
    image, labels, _ = phantom
    big_image = np.concatenate([image, image[::-1]], axis=0)  # 300 x 125 x 33: more tasks
    big_labels = np.concatenate([labels, labels[::-1] + labels.max() * (labels[::-1] > 0)], axis=0)
    image_file, labels_file = save_npy(tmp_path / "src", big_image, big_labels)
    common = ["--voxel-size", "8,8,40", "--chunk", "16,16,8", "--no-mesh", "--image-encoding", "raw"]
    env = {**os.environ, "AXONLINK_HOME": str(settings.home), "AXONLINK_DATABASE_URL": settings.database_url}

    def command(name: str, destination: Path) -> list[str]:
        return [
            *(sys.executable, "-m", "server.cli", "import", name, "--image", image_file),
            *("--segmentation", labels_file, "--workers", "2", "--to", str(destination), *common),
        ]

    destination = tmp_path / "interrupted"
    process = subprocess.Popen(
        command("cut", destination),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    markers = destination / ".import" / "image" / "from-mip-0-to-3"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if markers.is_dir() and len(os.listdir(markers)) >= 3:
            break
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # the command and its Dask workers
    process.wait()
    done_before = len(os.listdir(markers))
    total = 3 * 1 * 5  # boxes of 128 x 128 x 8 over 300 x 125 x 33
    assert 3 <= done_before < total, f"{done_before} of {total} tasks done when killed"
    stamps = {name: (markers / name).stat().st_mtime_ns for name in os.listdir(markers)}
    finished = subprocess.run(command("cut", destination), env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert all((markers / name).stat().st_mtime_ns == stamp for name, stamp in stamps.items()), "finished tasks redone"
    clean = tmp_path / "clean"
    assert subprocess.run(command("clean", clean), env=env, capture_output=True).returncode == 0
    interrupted, reference = _all_mips(destination), _all_mips(clean)
    for kind in reference:
        assert len(interrupted[kind]) == len(reference[kind]) >= 3
        for mip, (a, b) in enumerate(zip(interrupted[kind], reference[kind])):
            assert np.array_equal(a, b), f"{kind} mip {mip} differs"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_import_runs_on_a_dask_scheduler_with_workers_in_other_processes(settings, phantom, tmp_path, capsys):
    """A real ``dask scheduler`` and two ``dask worker`` processes on loopback: the tasks run there."""
    image, labels, _ = phantom
    image_file, labels_file = save_npy(tmp_path / "src", image, labels)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port)]
    worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [subprocess.Popen([*scheduler, "--no-dashboard"], **quiet)]
    try:
        processes += [subprocess.Popen([*worker, "--no-dashboard"], **quiet) for _ in range(2)]
        from dask.distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            worker_pids = set(client.run(os.getpid).values())
        capsys.readouterr()
        code = main(
            [
                "import", "ondask", "--home", str(settings.home), "--database-url", settings.database_url,
                "--image", image_file, "--segmentation", labels_file, "--voxel-size", "8,8,40",
                "--chunk", "16,16,8", "--scheduler", address,
            ]
        )  # fmt: skip
        assert code == 0
        summary = json.loads(capsys.readouterr().out)
        assert set(summary["task_processes"]) == worker_pids and os.getpid() not in worker_pids
        meshes = summary["meshes"]  # meshed by the same workers, which were not told the home
        assert meshes["chunks_meshed"] == meshes["chunks"] > 1 and meshes["fragments"] > 0
        served = read_back(f"file://{settings.home / 'volumes' / 'ondask' / 'segmentation'}")
        assert np.array_equal(served[0], labels)
    finally:
        for process in processes[::-1]:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "change, message",
    [
        ("float labels", "floating-point"),
        ("negative labels", "negative labels"),
        ("other shape", "must cover the same voxels"),
        ("no voxel size", "--voxel-size"),
        ("labels beyond the id layout", "56 bits"),
        ("-1 for background", "--background -1"),
    ],
)
def test_bad_volumes_get_one_clear_line_and_nothing_registered(settings, phantom, tmp_path, capsys, change, message):
    from segmentation.datasets import Datasets

    image, labels, _ = phantom
    extra = ["--voxel-size", "8,8,40"]
    if change == "float labels":
        labels = labels.astype(np.float32)
    elif change == "negative labels":
        labels = labels.astype(np.int32)
        labels[100, 100, 30] = -3
    elif change == "other shape":
        labels = labels[:, :, :-1]
    elif change == "no voxel size":
        extra = []
    elif change == "-1 for background":
        labels = np.where(labels == 0, -1, labels).astype(np.int64)
    elif change == "labels beyond the id layout":
        labels = labels.astype(np.uint64)
        labels[5, 5, 5] = 2**60
    image_file, labels_file = save_npy(tmp_path / "src", image, labels)
    assert run_import(settings, "bad", image_file, labels_file, "--no-mesh", *extra) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err and message in err[-1], err
    assert err[-1].startswith("axonlink: error:") and "Traceback" not in "\n".join(err)
    assert not Datasets(settings.database_url).exists("bad")


# ---- every format, end to end ------------------------------------------------------------------
# Each writer saves the phantom's image and labels as a lab would, and returns the two sources and
# any extra flags the format needs (its voxel size where it carries none).


def _write_hdf5(folder: Path, image_zyx, labels_zyx):
    import h5py

    with h5py.File(folder / "volume.h5", "w") as f:
        f.create_dataset("volumes/raw", data=image_zyx, chunks=(8, 32, 32))
        f.create_dataset("volumes/labels", data=labels_zyx.astype(np.uint32), chunks=(8, 32, 32), compression="gzip")
    return f"{folder}/volume.h5:/volumes/raw", f"{folder}/volume.h5:/volumes/labels", ["--voxel-size", "8,8,40"]


def _write_tiff(folder: Path, image_zyx, labels_zyx):
    """A multi-page TIFF for the image, a folder of one TIFF per section for the labels."""
    import tifffile

    tifffile.imwrite(folder / "image.tif", image_zyx)
    (folder / "labels").mkdir()
    for z, plane in enumerate(labels_zyx.astype(np.uint32)):
        tifffile.imwrite(folder / "labels" / f"section_{z}.tif", plane)  # section_10 after section_9
    return str(folder / "image.tif"), str(folder / "labels"), ["--voxel-size", "8,8,40"]


def _write_png_slices(folder: Path, image_zyx, labels_zyx):
    from PIL import Image

    (folder / "png").mkdir()
    for z, plane in enumerate(image_zyx):
        Image.fromarray(plane).save(folder / "png" / f"{z:04d}.png")
    np.save(folder / "labels.npy", labels_zyx.astype(np.uint16))  # stored as uint32 (compressed_segmentation)
    return str(folder / "png"), str(folder / "labels.npy"), ["--voxel-size", "8,8,40"]


def _write_zarr(folder: Path, image_zyx, labels_zyx):
    import zarr

    zarr.create_array(str(folder / "image.zarr"), data=image_zyx, chunks=(8, 32, 32), zarr_format=2)
    zarr.create_array(str(folder / "labels.zarr"), data=labels_zyx, chunks=(8, 32, 32), zarr_format=3)
    return str(folder / "image.zarr"), str(folder / "labels.zarr"), ["--voxel-size", "8,8,40"]


def _write_ome_zarr(folder: Path, image_zyx, labels_zyx):
    """OME-Zarr 0.4 groups in micrometres: the voxel size comes from the metadata."""
    import zarr

    sources = []
    for name, data in (("image", image_zyx), ("labels", labels_zyx)):
        group = zarr.open_group(str(folder / f"{name}.ome.zarr"), mode="w", zarr_format=2)
        group.create_array("0", data=data, chunks=(8, 32, 32))
        group.attrs["multiscales"] = [
            {
                "version": "0.4",
                "axes": [{"name": axis, "type": "space", "unit": "micrometer"} for axis in "zyx"],
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0.04, 0.008, 0.008]}]}
                ],
            }
        ]
        sources.append(str(folder / f"{name}.ome.zarr"))
    return *sources, []


def _write_n5(folder: Path, image_zyx, labels_zyx):
    """N5 datasets written by tensorstore, with the resolution attribute BigDataViewer tools write."""
    import tensorstore as ts

    for name, data in (("raw", image_zyx), ("labels", labels_zyx)):
        xyz = data.transpose(2, 1, 0)
        kvstore = f"file://{folder / 'volume.n5' / name}"
        metadata = {"dimensions": list(xyz.shape), "blockSize": [32, 32, 8], "dataType": xyz.dtype.name}
        ts.open({"driver": "n5", "kvstore": kvstore, "metadata": metadata}, create=True).result()[...] = xyz
        attributes = folder / "volume.n5" / name / "attributes.json"
        attributes.write_text(json.dumps({**json.loads(attributes.read_text()), "resolution": [8, 8, 40]}))
    return str(folder / "volume.n5" / "raw"), str(folder / "volume.n5" / "labels"), []


def _write_precomputed(folder: Path, image_zyx, labels_zyx):
    """Precomputed layers with odd chunks, taken and re-chunked (voxel size and offset from the info)."""
    from cloudvolume import CloudVolume

    sources = []
    for name, data, layer_type, encoding in (
        ("image", image_zyx, "image", "raw"),
        ("labels", labels_zyx, "segmentation", "compressed_segmentation"),
    ):
        xyz = np.ascontiguousarray(data.transpose(2, 1, 0))
        info = CloudVolume.create_new_info(
            1, layer_type, xyz.dtype.name, encoding, [8, 8, 40], [5, 6, 7], list(xyz.shape), chunk_size=[40, 24, 9]
        )
        volume = CloudVolume(f"file://{folder / name}", info=info, progress=False)
        volume.commit_info()
        volume[5 : 5 + xyz.shape[0], 6 : 6 + xyz.shape[1], 7 : 7 + xyz.shape[2]] = xyz
        sources.append(f"precomputed://file://{folder / name}")
    return *sources, []


WRITERS = {
    "hdf5": _write_hdf5,
    "tiff": _write_tiff,
    "png slices": _write_png_slices,
    "zarr": _write_zarr,
    "ome-zarr": _write_ome_zarr,
    "n5": _write_n5,
    "precomputed": _write_precomputed,
}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", list(WRITERS))
def test_each_format_imports_and_reads_back_through_the_server_voxel_for_voxel(settings, phantom, tmp_path, kind):
    import tensorstore as ts

    from segmentation.datasets import Datasets
    from server import create_app
    from server.runner import BackgroundServer

    image, labels, _ = phantom
    folder = tmp_path / "src"
    folder.mkdir()
    image_source, labels_source, extra = WRITERS[kind](folder, image.transpose(2, 1, 0), labels.transpose(2, 1, 0))
    assert run_import(settings, "fmt", image_source, labels_source, "--image-encoding", "raw", "--no-mesh", *extra) == 0
    dataset = Datasets(settings.database_url).get("fmt")
    assert dataset.voxel_resolution == [8.0, 8.0, 40.0]
    assert dataset.voxel_offset == ([5, 6, 7] if kind == "precomputed" else [0, 0, 0])
    with BackgroundServer(create_app(settings)) as server:
        assert np.array_equal(read_back(f"precomputed://{server.url}/data/fmt/image")[0], image)
        store = ts.open(
            {"driver": "neuroglancer_precomputed", "kvstore": f"{server.url}/data/fmt@supervoxels/segmentation/"}
        ).result()
        served = np.asarray(store[ts.d["channel"][0]].translate_to[0, 0, 0].read().result())
        assert np.array_equal(served, supervoxel_ids(labels).reshape(labels.shape))
    stored_type = json.loads((settings.home / "volumes" / "fmt" / "segmentation" / "info").read_text())["data_type"]
    assert stored_type == {"hdf5": "uint32", "tiff": "uint32", "png slices": "uint32"}.get(kind, "uint64")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_unreachable_and_ambiguous_sources_say_which_and_what_to_do(settings, phantom, tmp_path, capsys):
    import h5py

    image, labels, _ = phantom
    image_file, labels_file = save_npy(tmp_path / "src", image, labels)
    closed = f"http://127.0.0.1:{free_port()}/volume"
    assert run_import(settings, "gone", closed, labels_file, "--voxel-size", "8,8,40") == 1
    assert "refused" in capsys.readouterr().err.lower()
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["raw"] = image.transpose(2, 1, 0)
        f["also_raw"] = image.transpose(2, 1, 0)
    assert run_import(settings, "two", str(tmp_path / "two.h5"), labels_file, "--voxel-size", "8,8,40") == 1
    err = capsys.readouterr().err
    assert "--dataset-path" in err and "raw" in err and "also_raw" in err
    (tmp_path / "notes.txt").write_text("not a volume\n")
    assert run_import(settings, "text", str(tmp_path / "notes.txt"), labels_file, "--voxel-size", "8,8,40") == 1
    assert "not a volume" in capsys.readouterr().err


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sharded_import_writes_whole_shards_every_mip_readable_and_served(settings, phantom, tmp_path):
    """--sharded yes: each task writes whole shard files of one mip (from the mip above); CloudVolume
    reads every mip as the chained downsampling of mip 0, and the server serves the sharded layers."""
    from server import create_app
    from server.runner import BackgroundServer

    image, labels, _ = phantom
    image_file, labels_file = save_npy(tmp_path / "src", image, labels)
    flags = ["--voxel-size", "8,8,40", "--chunk", "16,16,8", "--sharded", "yes", "--image-encoding", "raw", "--no-mesh"]
    assert run_import(settings, "sharded", image_file, labels_file, *flags) == 0
    folder = settings.home / "volumes" / "sharded"
    for kind, reference in (("image", image), ("segmentation", labels)):
        info = json.loads((folder / kind / "info").read_text())
        assert all("sharding" in scale for scale in info["scales"])
        assert not any(
            path.suffix == ".gz" or "-" in path.name
            for path in (folder / kind).rglob("*")
            if path.is_file() and path.name != "info"
        )
        levels = read_back(f"file://{folder / kind}")
        assert len(levels) == 5
        expected = reference
        for mip, level in enumerate(levels):
            if mip:
                expected = (
                    image_mips(expected, 1)[0]
                    if kind == "image"
                    else tinybrain.downsample_segmentation(expected, (2, 2, 1), num_mips=1, sparse=False)[0]
                )
            assert np.array_equal(level, expected), f"{kind} mip {mip}"
    with BackgroundServer(create_app(settings)) as server:
        assert np.array_equal(read_back(f"precomputed://{server.url}/data/sharded/image")[0], image)
        served = read_back(f"precomputed://{server.url}/data/sharded@supervoxels/segmentation")
        assert np.array_equal(served[2], supervoxel_ids(levels[2]).reshape(levels[2].shape))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("marker", [-1, 2**64 - 1])
def test_a_segmentation_that_marks_background_otherwise_is_imported_with_background_flag(
    settings, phantom, tmp_path, marker
):
    image, labels, _ = phantom
    dtype = np.int64 if marker < 0 else np.uint64
    marked = np.where(labels == 0, np.asarray(marker).astype(dtype), labels.astype(dtype))
    image_file, labels_file = save_npy(tmp_path / "src", image, marked)
    assert (
        run_import(
            settings, "bg", image_file, labels_file, "--voxel-size", "8,8,40", "--no-mesh", "--background", str(marker)
        )
        == 0
    )
    stored = read_back(f"file://{settings.home / 'volumes' / 'bg' / 'segmentation'}")[0]
    assert np.array_equal(stored, labels)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_killed_mid_import_to_s3_is_replaced_and_the_output_is_identical_and_served(
    settings, phantom, tmp_path, s3, monkeypatch
):
    """``--to s3://`` on a real scheduler with two worker processes: kill -9 of a worker (its nanny
    starts another) while the pyramid is written to a real S3 server (SeaweedFS). The scheduler runs
    the lost tasks again, the import ends as an uninterrupted local one (every mip), the graph is
    ingested and the meshes made by the cluster reading the layers from the bucket and writing to the
    mesh store in it (``AXONLINK_MESH_STORE``), and the server serves the dataset and its meshes from
    there."""
    import psutil

    from segmentation.importing import place as stored
    from segmentation.meshing.surfaces import decode
    from server import create_app
    from server.runner import BackgroundServer

    image, labels, _ = phantom
    big_image = np.concatenate([image, image[::-1]], axis=0)
    big_labels = np.concatenate([labels, labels[::-1] + labels.max() * (labels[::-1] > 0)], axis=0)
    image_file, labels_file = save_npy(tmp_path / "src", big_image, big_labels)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port)]
    worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard"]
    processes = [subprocess.Popen([*scheduler, "--no-dashboard"], **quiet)]
    monkeypatch.setenv("AXONLINK_MESH_STORE", s3.plain_url())  # for the import and the server after it
    env = {**os.environ, "AXONLINK_HOME": str(settings.home), "AXONLINK_DATABASE_URL": settings.database_url}
    common = ["--voxel-size", "8,8,40", "--chunk", "16,16,8", "--image-encoding", "raw"]
    try:
        processes += [subprocess.Popen(worker, **quiet) for _ in range(2)]  # with the AWS keys only
        from dask.distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            worker_pids = list(client.run(os.getpid).values())
        destination = s3.plain_url("imports")  # AWS_ENDPOINT_URL names the server, as for any S3 store
        command = [
            *(sys.executable, "-m", "server.cli", "import", "lost", "--image", image_file, "--segmentation"),
            *(labels_file, "--scheduler", address, "--to", destination, *common),
        ]
        importing = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        markers = f"{destination}/.import/image/from-mip-0-to-3"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and importing.poll() is None and len(stored.names_in(markers)) < 2:
            time.sleep(0.02)
        assert importing.poll() is None, f"the import ended before a worker could be killed: {importing.stderr.read()}"
        psutil.Process(worker_pids[0]).kill()
        out, err = importing.communicate(timeout=180)
        assert importing.returncode == 0, err[-3000:]
        summary = json.loads(out)
        assert summary["meshes"]["chunks_meshed"] == summary["meshes"]["chunks"] > 1  # by the cluster, from S3
        assert {"image/info", "segmentation/info", ".import/complete"} <= set(s3.keys(destination))
        meshes = set(s3.keys(os.environ["AXONLINK_MESH_STORE"]))
        assert {"lost/current", "lost/g1/index/manifest.json", "lost/g1/initial/0_0_0.frags"} <= meshes
        assert not (settings.home / "meshes").exists()
        clean = tmp_path / "clean"
        local = [*command[:4], "clean", *command[5:9], "--workers", "2", "--to", str(clean), "--no-mesh", *common]
        assert subprocess.run(local, env=env, **quiet).returncode == 0
        reference, interrupted = _all_mips(f"file://{clean}"), _all_mips(destination)
        for kind in reference:
            assert len(interrupted[kind]) == len(reference[kind]) >= 3
            for mip, (a, b) in enumerate(zip(interrupted[kind], reference[kind])):
                assert np.array_equal(a, b), f"{kind} mip {mip} differs"
        with BackgroundServer(create_app(settings)) as server:  # served from the bucket
            roots = read_back(f"precomputed://{server.url}/data/lost/segmentation")[0]
            pairs = np.unique(np.stack([big_labels.ravel(), roots.ravel()]), axis=1)  # one root per label
            assert len(set(pairs[0].tolist())) == len(set(pairs[1].tolist())) == pairs.shape[1]
            root = int(pairs[1][np.argmax(pairs[0] > 0)])
            with urllib.request.urlopen(f"{server.url}/meshing/api/v1/table/lost/manifest/{root}:0") as answer:
                fragments = json.loads(answer.read())["fragments"]
            path, offset, size = fragments[0].split(":~", 1)[1].split(":")  # read by range from the bucket
            ask = urllib.request.Request(
                f"{server.url}/data/lost@supervoxels/segmentation/graphene_meshes/initial/{path}",
                headers={"Range": f"bytes={offset}-{int(offset) + int(size) - 1}"},
            )
            with urllib.request.urlopen(ask) as answer:
                assert answer.status == 206 and len(decode(answer.read())[1]) > 0
    finally:
        for process in processes[::-1]:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
