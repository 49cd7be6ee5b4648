"""``axonlink check``: what will and will not work with a segmentation, from its info and a few chunks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segmentation.check import check_layer, has_problem
from server.cli import main
from tests.helpers import write_volume


def run(capsys, *args):
    """(exit status, stdout, stderr) of ``axonlink check ...`` run in this process."""
    status = main(["check", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def slabs(dtype=np.uint64, n=4, shape=(32, 32, 8)):
    labels = np.zeros(shape, dtype=dtype)
    width = shape[0] // n
    for label in range(1, n + 1):
        labels[(label - 1) * width : label * width] = label
    return labels


def finding(findings, topic):
    return [f for f in findings if f.topic == topic]


def test_a_good_volume_passes(tmp_path, capsys):
    url = write_volume(tmp_path / "seg", slabs(), layer_type="segmentation", encoding="compressed_segmentation")
    status, out, _ = run(capsys, url, "--home", str(tmp_path / "home"))
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == f"checked {url}"
    assert "ok       data type: uint64 labels" in lines
    assert any(line.startswith("ok       labels: 4 label(s) in the sample, plain ids, largest 4") for line in lines)
    assert any(line.startswith("ok       chunks: read 4 of 4 mip-0 chunks") for line in lines)
    assert any(line.startswith("warning  meshes: no 'mesh'") for line in lines)
    assert not any(line.startswith("problem") for line in lines)


@pytest.mark.parametrize(
    "dtype, encoding",
    [(np.uint8, "raw"), (np.uint16, "raw"), (np.uint32, "compressed_segmentation"), (np.uint64, "raw")],
)
def test_every_unsigned_label_type_works(tmp_path, dtype, encoding):
    url = write_volume(tmp_path / "seg", slabs(dtype), layer_type="segmentation", encoding=encoding, mips=1)
    findings = check_layer(url)
    assert not has_problem(findings), [f.line() for f in findings]
    assert finding(findings, "data type")[0].reason == f"{np.dtype(dtype).name} labels"
    assert "4 label(s)" in finding(findings, "labels")[0].reason


def test_jpeg_segmentation_cannot_be_served_live(tmp_path, capsys):
    url = write_volume(tmp_path / "seg", slabs(np.uint8), layer_type="segmentation", encoding="jpeg", mips=1)
    status, out, _ = run(capsys, url)
    assert status == 1
    assert "problem  encoding: 8_8_40 (jpeg) cannot be served live through the graph" in out


def test_float_labels_are_a_problem(tmp_path, capsys):
    url = write_volume(tmp_path / "seg", slabs(np.float32), layer_type="segmentation", encoding="raw", mips=1)
    status, out, _ = run(capsys, url, "--json")
    assert status == 1
    answer = json.loads(out)
    assert answer["ok"] is False and answer["problems"] >= 1 and answer["target"] == url
    assert {
        "level": "problem",
        "topic": "data type",
        "reason": "float32 is not a label type (uint8, uint16, uint32 or uint64)",
    } in answer["findings"]


def test_labels_beyond_the_id_layout_are_named(tmp_path, capsys):
    labels = slabs()
    big = (7 << 56) + 9
    labels[30, 30, 7] = big  # in the last chunk
    url = write_volume(tmp_path / "seg", labels, layer_type="segmentation", encoding="compressed_segmentation")
    status, out, _ = run(capsys, url)
    assert status == 1
    assert (
        f"problem  labels: label(s) of 2**56 or more that are not layer-1 ids, which the id layout cannot hold: "
        f"{big} (in 16-32_16-32_0-8)" in out
    )


def test_mixed_layered_and_plain_ids(small_volumes, capsys):
    status, out, _ = run(capsys, small_volumes["segmentation"])
    assert status == 1
    assert f"problem  labels: plain ids (11, 42) and layered layer-1 ids ({(1 << 56) + 5}) are mixed" in out


def test_layered_ids_alone_are_fine(tmp_path):
    labels = slabs()
    labels[labels != 0] |= np.uint64(1 << 56)
    url = write_volume(tmp_path / "seg", labels, layer_type="segmentation", encoding="compressed_segmentation")
    findings = check_layer(url)
    assert not has_problem(findings)
    assert "layer-1 supervoxel ids, largest 4" in finding(findings, "labels")[0].reason


def test_the_sample_is_bounded(tmp_path, capsys):
    url = write_volume(
        tmp_path / "seg",
        slabs(shape=(64, 64, 32)),
        layer_type="segmentation",
        encoding="compressed_segmentation",
        mips=1,
        chunk=(8, 8, 8),
    )
    status, out, _ = run(capsys, url, "--chunks", "3")
    assert status == 0 and "ok       chunks: read 3 of 256 mip-0 chunks" in out
    findings = check_layer(url, time_limit=0)
    assert finding(findings, "chunks")[0].reason.startswith("stopped sampling after 0 s (0 of 16 chunks read)")


def test_absurd_voxel_size_and_bad_info(tmp_path, capsys):
    url = write_volume(
        tmp_path / "seg", slabs(), layer_type="segmentation", encoding="raw", mips=1, resolution=(0.01, 0.01, 0.01)
    )
    findings = check_layer(url)
    assert finding(findings, "voxel size")[0].level == "warning" and not has_problem(findings)
    status, out, _ = run(capsys, str(tmp_path / "nothing-here") + "/")
    assert status == 1 and "problem  info: no precomputed volume" in out


def test_meshes_are_looked_for(tmp_path):
    from cloudvolume import CloudVolume

    url = write_volume(tmp_path / "seg", slabs(), layer_type="segmentation", encoding="raw", mips=1)
    volume = CloudVolume(url)
    volume.info["mesh"] = "mesh"
    volume.commit_info()
    (tmp_path / "seg" / "mesh").mkdir()
    (tmp_path / "seg" / "mesh" / "info").write_text('{"@type": "neuroglancer_legacy_mesh"}')
    assert finding(check_layer(url), "meshes")[0].level == "warning"  # no manifest for any sampled label
    (tmp_path / "seg" / "mesh" / "2:0").write_text('{"fragments": ["2:0:0-32_0-32_0-8"]}')
    meshes = finding(check_layer(url), "meshes")[0]
    assert meshes.level == "ok" and "1 of 4 sampled label(s)" in meshes.reason


def test_a_dataset_whose_layers_disagree(tmp_path, capsys, small_volumes):
    home = tmp_path / "home"
    seg = write_volume(tmp_path / "seg", slabs(), layer_type="segmentation", encoding="compressed_segmentation")
    other = write_volume(
        tmp_path / "other", slabs(shape=(32, 32, 16)), layer_type="segmentation", encoding="compressed_segmentation"
    )
    assert (
        main(
            [
                "add-dataset",
                "d",
                "--segmentation",
                seg,
                "--image",
                small_volumes["image"],
                "--supervoxel-layer",
                f"copy={other}",
                "--home",
                str(home),
            ]
        )
        == 0
    )
    capsys.readouterr()
    status, out, _ = run(capsys, "d", "--home", str(home))
    assert status == 1  # a supervoxel layer must be the same labels: a problem; the image only warns
    assert (
        "warning  layers: layer 'image' differs from the segmentation: bounds [0.0, 0.0, 0.0]..[512.0, 384.0, "
        "800.0] nm vs [0.0, 0.0, 0.0]..[256.0, 256.0, 320.0] nm" in out
    )
    assert "problem  layers: layer 'copy' differs from the segmentation: bounds" in out
    assert "ok       graph: dataset 'd' has no graph yet (run ingest-graph)" in out
    status, out, err = run(capsys, "nope", "--home", str(home))
    assert status == 1 and "no dataset named 'nope'" in err and "./nope" in err


def test_a_sharded_layer_with_an_offset(tmp_path):
    from tests.layers import sharding, write_layer

    labels = slabs(shape=(40, 26, 14))
    url = write_layer(tmp_path / "sharded", [labels], encoding="compressed_segmentation", shard=sharding())
    findings = check_layer(url)
    assert not has_problem(findings), [f.line() for f in findings]
    assert finding(findings, "sharding")[0].reason == "sharded: 8_8_40"
    assert finding(findings, "chunks")[0].reason.startswith("read 12 of 12 mip-0 chunks")
    assert finding(findings, "labels")[0].reason.startswith("4 label(s) in the sample")
    info_path = tmp_path / "sharded" / "info"
    info = json.loads(info_path.read_text())
    info["scales"][0]["sharding"]["@type"] = "something_else"
    info_path.write_text(json.dumps(info))
    odd = check_layer(url)
    assert finding(odd, "sharding")[0].level == "problem" and "'something_else'" in finding(odd, "sharding")[0].reason
