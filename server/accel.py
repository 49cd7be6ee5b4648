"""Handing a local file to the front server after axonlink has decided who may read it.

Behind nginx, a stored chunk or mesh fragment of a private dataset cannot be kept in nginx's cache
(it is not the same for everyone), so every one went through axonlink's Python to be read and
written out. With ``--accel-redirect PREFIX`` axonlink still answers every such request — the
access check, the ETag and ``304``, CORS, the request id and log line, gzip or not — but with an
empty body and ``X-Accel-Redirect: PREFIX/<absolute file path>``; nginx then sends the file itself
from an ``internal`` location (``alias /``), which no client can ask for directly (docs/deploy.md
gives the configuration, and ``tests/test_front_server.py`` runs it with Debian's nginx).

Only for requests that came through a trusted proxy (``--trusted-proxy``): a client that reaches
axonlink directly gets the bytes, never an empty answer. Only whole files (no ``Range``: nginx
would cut the stored, possibly gzipped, bytes where axonlink cuts the inflated ones), and only
paths of plain characters.
"""

from __future__ import annotations

import re

from flask import request

from .workspace import workspace

_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._/~-]*")


def target(path: str) -> str | None:
    """The ``X-Accel-Redirect`` value for the file at ``path`` (absolute, symlinks resolved), or None
    when this request's answer must carry the bytes itself."""
    prefix = workspace().settings.accel_redirect
    if not prefix or "werkzeug.proxy_fix.orig" not in request.environ:  # set only for trusted proxies
        return None
    if "Range" in request.headers or not _PLAIN_PATH.fullmatch(path) or "/../" in path:
        return None
    return prefix + path
