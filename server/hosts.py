"""Which host names this server answers to, the URL it gives out, and who counts as "this server".

A request's Host header is checked against the allowed names before anything
else runs (DNS rebinding: a hostile page whose name resolves to 127.0.0.1 must
not reach a laptop's server that lets anonymous users edit). Links, redirects
and layer sources are built from the configured public URL, or from the
request's Host only once it has been checked. The same host matching decides
whether a URL inside a stored state points at this server, in any spelling a
browser would accept (case, trailing dot, default port, user info, ``127.1``,
``[::1]``, ``0x7f.0.0.1`` ...).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from flask import current_app, request

from segmentation.errors import Invalid

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class HostNotAllowed(Invalid):
    """The request's Host header names a host this server was not told to answer to."""


def _settings():
    return current_app.config["AXONLINK_SETTINGS"]


def canonical_host(name: str) -> str:
    """A host name as a browser resolves it: lower case, no trailing dot, IPv4 in dotted-quad form."""
    name = (name or "").strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
        if name and all(part.isalnum() for part in name.split(".")) and not name.replace(".", "").isalpha():
            try:  # legacy IPv4 spellings browsers accept: 127.1, 2130706433, 0x7f.0.0.1
                address = ipaddress.ip_address(socket.inet_aton(name))
            except OSError:
                address = None
    if address is None:
        return name
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def is_loopback(name: str) -> bool:
    name = canonical_host(name)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _split_netloc(netloc: str, scheme: str = "http") -> tuple[str, int | None]:
    """(canonical host, port) of ``[user@]host[:port]``; the scheme's default port when none is given."""
    parts = urlsplit(f"//{netloc}")
    try:
        port = parts.port
    except ValueError:
        port = -1  # a port no server listens on: never "ours"
    return canonical_host(parts.hostname or ""), port if port is not None else DEFAULT_PORTS.get(scheme)


def allowed_names() -> set[str]:
    settings = _settings()
    names = {canonical_host(h) for h in settings.allowed_hosts}
    if settings.public_url:
        names.add(canonical_host(urlsplit(settings.public_url).hostname or ""))
    return names


def check_request_host() -> None:
    """Raise :class:`HostNotAllowed` unless the request's Host is a loopback name or an allowed one."""
    host, _ = _split_netloc(request.host, request.scheme)
    allowed = allowed_names()
    if "*" in allowed or is_loopback(host) or host in allowed:
        return
    raise HostNotAllowed(
        f"this server does not answer to host {host!r}; its operator can add it with "
        f"`axonlink serve --allowed-host {host}` (or AXONLINK_ALLOWED_HOSTS)"
    )


def base_url() -> str:
    """The URL this server is reached at: the configured public URL, else the (checked) request host."""
    return _settings().public_url or request.host_url.rstrip("/")


def _our_addresses() -> set[tuple[str, int | None]]:
    """(host, port) pairs that name this server: the public URL's and the request's."""
    ours = {_split_netloc(request.host, request.scheme)}
    public = _settings().public_url
    if public:
        parts = urlsplit(public)
        ours.add(_split_netloc(parts.netloc, parts.scheme))
    return ours


def is_this_server(url: str) -> bool:
    """Whether an absolute http(s) URL points at this server (any host spelling of it)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        return False
    host, port = _split_netloc(parts.netloc, scheme)
    for our_host, our_port in _our_addresses():
        if port != our_port:
            continue
        if host == our_host or (is_loopback(host) and is_loopback(our_host)) or host in allowed_names():
            return True
    return False


def same_origin(origin: str) -> bool:
    """Whether an ``Origin`` header value is this server's own origin (scheme, host and port)."""
    if not origin or origin == "null":
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or parts.path not in ("", "/"):
        return False
    return is_this_server(origin)
