"""Debian's nginx in front of a real ``axonlink serve``, both on loopback, for the front-server tests.

The internal file location is read from docs/deploy.md itself (its ``location /_axonlink_files/``
block), so the configuration the documentation gives is the one tested; around it, the proxy
settings of the same page, with test ports and a scratch prefix.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
ACCEL_PREFIX = "/_axonlink_files"

NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream axonlink {{
{servers}
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://axonlink;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
{accel_location}
    }}
}}
"""


def accel_location() -> str:
    """The ``location /_axonlink_files/ { … }`` block of docs/deploy.md, as written there."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    start = text.index(f"    location {ACCEL_PREFIX}/ {{")
    end = text.index("\n    }\n", start) + len("\n    }")
    return text[start:end]


def nginx_available() -> bool:
    return shutil.which("nginx") is not None or os.path.exists("/usr/sbin/nginx")


def _wait(url: str, process: subprocess.Popen, what: str, log) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{what} did not start:\n{log()}") from None
            time.sleep(0.1)


@contextmanager
def axonlink_serve(settings, log_dir: Path, *flags: str):
    """``axonlink serve`` (1 worker) with ``flags``; yields its URL."""
    with axonlink_node(settings.home, settings.database_url, log_dir, *flags) as node:
        yield node.url


class Node:
    """A running ``axonlink serve``: its URL and its process (a test may kill it)."""

    def __init__(self, url: str, process: subprocess.Popen):
        self.url, self.process = url, process

    def kill(self) -> None:
        """SIGKILL to the whole process group: the node stops at once, mid-request."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextmanager
def axonlink_node(home: Path, database_url: str, log_dir: Path, *flags: str, env: dict | None = None):
    """``axonlink serve`` (1 worker unless ``flags`` say) with its own home; yields a :class:`Node`."""
    port = free_port()
    log = log_dir / f"serve-{port}.log"
    env = {**os.environ, "AXONLINK_HOME": str(home), "AXONLINK_DATABASE_URL": database_url, **(env or {})}
    workers = () if "--workers" in flags else ("--workers", "1")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port), *workers, *flags],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url + "/api/v1/datasets", process, "axonlink serve", lambda: log.read_text()[-3000:])
        yield Node(url, process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def nginx_in_front(upstream: str | list[str], prefix: Path):
    """Debian's nginx proxying to ``upstream`` (one server, or several: nginx balances them round
    robin, as docs/deploy.md sets up a lab's nodes) with the accel-redirect location; yields its URL."""
    upstreams = [upstream] if isinstance(upstream, str) else list(upstream)
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "",  # its worker reads files the tests wrote
            prefix=prefix,
            port=port,
            servers="\n".join(f"        server {u.removeprefix('http://')};" for u in upstreams),
            accel_location=accel_location(),
        )
    )
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    process = subprocess.Popen([binary, "-c", str(conf), "-p", str(prefix)], stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url + "/api/v1/datasets", process, "nginx", lambda: (prefix / "error.log").read_text())
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
