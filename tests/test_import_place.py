"""``axonlink import --to``: a folder, or a prefix in an S3 bucket (a real S3 server, SeaweedFS).

The import's bookkeeping (plan, task markers, ``complete``) lives beside the layers wherever they
are (:mod:`segmentation.importing.place`), so a Dask worker on another machine leaves its marker
where the next run looks; the layers are written by CloudVolume, and the server serves the
dataset straight from the bucket.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from segmentation.importing import place as stored
from segmentation.importing.pyramid import ImportProblem
from server.cli import main
from tests.helpers import read_back


def test_bookkeeping_files_in_a_folder_are_written_whole_and_listed_by_name(tmp_path):
    where = stored.Place(str(tmp_path / "out"))
    assert not where.remote and where.url == f"file://{tmp_path / 'out'}" and where.is_empty()
    marker = where.child(".import", "image", "from-mip-0-to-3", "0_0_0")
    assert stored.get(marker) is None and not stored.exists(marker)
    stored.put(marker, b"done\n")
    assert stored.get(marker) == b"done\n" and stored.exists(marker)
    assert stored.names_in(where.child(".import", "image", "from-mip-0-to-3")) == {"0_0_0"}
    assert not list((tmp_path / "out" / ".import" / "image" / "from-mip-0-to-3").glob("*.tmp"))
    assert not where.is_empty()


def test_bookkeeping_files_in_a_bucket_and_destinations_refused_with_their_fix(s3):
    where = stored.Place(s3.plain_url() + "/")
    assert where.remote and not where.url.endswith("/") and where.layer_url("image") == f"{where.url}/image"
    where.check_reachable()
    assert where.is_empty() and where.stored_bytes("image") is None
    folder = where.child(".import", "segmentation", "from-mip-0-to-2")
    for name in ("0_0_0", "1_0_0", "10_2_1"):
        stored.put(f"{folder}/{name}", b"done\n")
    assert stored.names_in(folder) == {"0_0_0", "1_0_0", "10_2_1"}
    assert stored.get(f"{folder}/1_0_0") == b"done\n" and stored.get(f"{folder}/2_0_0") is None
    assert stored.exists(f"{folder}/10_2_1") and not where.is_empty()

    with pytest.raises(ImportProblem, match="its bucket does not exist"):
        stored.Place("s3://no-such-bucket-here/volumes").check_reachable()
    with pytest.raises(ImportProblem, match=rf"AWS_ENDPOINT_URL={s3.endpoint}, and give --to s3://axonlink/"):
        stored.Place(s3.url())  # CloudFiles' spelling of an endpoint, which CloudVolume cannot write to
    with pytest.raises(ImportProblem, match="cannot write to https:// URLs"):
        stored.Place("https://example.org/volumes")
    with pytest.raises(ImportProblem, match="unknown URL scheme"):
        stored.Place("ftp://example.org/volumes")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_import_to_s3_is_served_from_the_bucket_and_a_second_run_finds_it_done(settings, s3, tmp_path, capsys):
    from server import create_app
    from server.runner import BackgroundServer

    rng = np.random.default_rng(7)
    image = rng.integers(0, 255, (40, 36, 10), dtype=np.uint8)
    labels = np.repeat(np.arange(1, 7, dtype=np.uint32), 6 * 36 * 10)[: 36 * 36 * 10].reshape(36, 36, 10)
    labels = np.concatenate([labels, np.zeros((4, 36, 10), dtype=np.uint32)])  # 40 × 36 × 10
    np.save(tmp_path / "image.npy", np.ascontiguousarray(image.transpose(2, 1, 0)))
    np.save(tmp_path / "labels.npy", np.ascontiguousarray(labels.transpose(2, 1, 0)))
    destination = s3.plain_url("imported")
    command = [
        *("import", "bucketed", "--home", str(settings.home), "--database-url", settings.database_url),
        *("--image", str(tmp_path / "image.npy"), "--segmentation", str(tmp_path / "labels.npy")),
        *(
            "--voxel-size",
            "8,8,40",
            "--chunk",
            "16,16,8",
            "--no-mesh",
            "--workers",
            "1",
            "--image-encoding",
            "raw",
            "--to",
            destination,
        ),
    ]
    capsys.readouterr()
    assert main(command) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["destination"] == destination
    assert summary["layers"]["image"]["url"] == f"{destination}/image"
    assert summary["layers"]["image"]["bytes_on_disk"] is None
    keys = s3.keys(destination)
    assert {"image/info", "segmentation/info", ".import/plan.json", ".import/complete"} <= set(keys)
    assert any(key.startswith(".import/image/from-mip-0-to-") for key in keys)
    assert any(key.startswith("image/8_8_40/") for key in keys)

    with BackgroundServer(create_app(settings)) as server:
        served = read_back(f"precomputed://{server.url}/data/bucketed/image")
        assert np.array_equal(served[0], image) and len(served) >= 2
        roots = read_back(f"precomputed://{server.url}/data/bucketed/segmentation")[0]
        pairs = np.unique(np.stack([labels.ravel(), roots.ravel()]), axis=1)  # one root per label
        assert len(set(pairs[0].tolist())) == len(set(pairs[1].tolist())) == pairs.shape[1] == 7

    assert main(command) == 1  # the same import again: found done (the marker is in the bucket), said in one line
    assert (
        capsys.readouterr().err
        == f"axonlink: error: dataset 'bucketed' is already imported (its files are in {destination})\n"
    )
