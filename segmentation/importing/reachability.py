"""Why a volume could not be reached, in one line that says what to do.

Storage libraries fail in their own words (a urllib3 retry chain, a tensorstore status, a botocore
code, ``None`` after swallowing the error), and a user who typed a URL needs to know which of a few
things went wrong: nothing listens there, the host name does not resolve, the bucket does not exist,
the path does not, the credentials do not allow it, the URL's scheme is not one we read, or what is
there is no volume. :func:`classify` reads an exception chain for those; :func:`probe` asks an HTTP
host directly (a connection refused is otherwise retried by the libraries for many seconds);
:func:`message` says each in one line with its fix. Only :func:`bucket_exists` asks storage (S3, once,
without the retries that make CloudFiles take many seconds to report a missing bucket).
"""

from __future__ import annotations

import re
import socket
import time
from urllib.parse import urlsplit

from ..locations import is_remote, scheme_of  # noqa: F401 - named here by the import's modules

REFUSED = "connection refused"
UNKNOWN_HOST = "unknown host"
NO_BUCKET = "no such bucket"
NOT_FOUND = "not found"
PERMISSION = "permission denied"
UNKNOWN_SCHEME = "unknown URL scheme"
NOT_A_VOLUME = "not a volume"
TIMEOUT = "timed out"
OTHER = "other"

SCHEMES = ("file", "gs", "s3", "http", "https")


def check_scheme(spec: str, schemes: tuple[str, ...] = SCHEMES) -> str | None:
    """The one-line complaint about ``spec``'s scheme, or None when it is one we read."""
    scheme = scheme_of(spec)
    if scheme is None or scheme in schemes:
        return None
    return message(UNKNOWN_SCHEME, spec, scheme)


def endpoint(spec: str) -> tuple[str, int] | None:
    """(host, port) an HTTP(S) URL (or CloudFiles' ``s3://http://host:port/bucket`` spelling) is served from."""
    scheme = scheme_of(spec)
    if scheme == "s3" and scheme_of(spec[len("s3://") :]) in ("http", "https"):
        spec, scheme = spec[len("s3://") :], scheme_of(spec[len("s3://") :])
    if scheme not in ("http", "https"):
        return None
    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname, port or (443 if scheme == "https" else 80)


def bucket_of(spec: str) -> str | None:
    """The bucket a ``gs://`` or ``s3://`` URL names."""
    scheme = scheme_of(spec)
    if scheme not in ("gs", "s3"):
        return None
    rest = spec[len(scheme) + 3 :]
    if scheme == "s3" and scheme_of(rest) in ("http", "https"):  # s3://http://host:port/bucket/key
        rest = urlsplit(rest).path.lstrip("/")
    return rest.split("/", 1)[0] or None


_REMEMBER_SECONDS = 60.0  # a server or bucket found is not asked again for this long (read_info is called per request)
_reached: dict[tuple[str, int], float] = {}
_buckets: dict[tuple[str | None, str | None], float] = {}


def probe(spec: str, timeout: float = 5.0) -> str | None:
    """For a URL served over HTTP(S): the one-line problem when its host does not resolve, refuses the
    connection or does not answer in ``timeout`` s; None when it accepts a connection (or is no HTTP URL).
    Asked once, before a storage library retries the same failure for a long time."""
    found = endpoint(spec)
    if found is None or time.monotonic() - _reached.get(found, -_REMEMBER_SECONDS) < _REMEMBER_SECONDS:
        return None
    host, port = found
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return message(UNKNOWN_HOST, spec)
    except OSError as error:
        return explain(spec, error)
    last: OSError | None = None
    for family, kind, proto, _, address in addresses:
        try:
            with socket.socket(family, kind, proto) as connection:
                connection.settimeout(timeout)
                connection.connect(address)
                _reached[found] = time.monotonic()
                return None
        except OSError as error:
            last = error
    return explain(spec, last) if last is not None else None


def bucket_exists(spec: str) -> bool | None:
    """Whether the S3 bucket ``spec`` names exists (one request, no retries); None when that cannot be
    told (not S3, no credentials, no answer): then the storage library's own error says it."""
    if scheme_of(spec) != "s3":
        return None
    bucket = bucket_of(spec)
    rest = spec[len("s3://") :]
    endpoint_url = None
    if scheme_of(rest) in ("http", "https"):
        parts = urlsplit(rest)
        endpoint_url = f"{parts.scheme}://{parts.netloc}"
    key = (endpoint_url, bucket)
    if time.monotonic() - _buckets.get(key, -_REMEMBER_SECONDS) < _REMEMBER_SECONDS:
        return True
    try:
        import boto3
        from botocore.config import Config

        config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=10)
        boto3.client("s3", endpoint_url=endpoint_url, config=config).head_bucket(Bucket=bucket)
        _buckets[key] = time.monotonic()
        return True
    except Exception as error:  # noqa: BLE001 - only a clear "no such bucket" counts
        response = getattr(error, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
        return False if code in ("404", "NoSuchBucket") else None


_HOST = re.compile(
    r"name or service not known|nodename nor servname|could not resolve host|temporary failure in name resolution"
    r"|name resolution|getaddrinfo failed|no address associated|failed to resolve|unknown host|resolve host"
)
_REFUSED = re.compile(
    r"connection refused|couldn't connect to server|failed to connect to|errno 111\b|actively refused"
)
_BUCKET = re.compile(r"nosuchbucket|bucket does not exist|no such bucket|bucket_not_found|bucketnotfound")
_PERMISSION = re.compile(
    r"permission denied|permission_denied|access ?denied|forbidden|unauthori[sz]ed|unauthenticated"
    r"|\b40[13]\b|invalidaccesskeyid|signaturedoesnotmatch|does not have storage\.\w+\.\w+ access"
)
_NOT_FOUND = re.compile(r"not_found|no such file|does not exist|\b404\b|nosuchkey|no info file|not found|filenotfound")
_SCHEME = re.compile(r"unsupported url scheme|unknown url scheme|unsupported protocol|invalid url scheme")
_TIMEOUT = re.compile(r"timed out|timeout|deadline_exceeded|deadline exceeded")
_NOT_A_VOLUME = re.compile(
    r"file signature not found|not a tiff|not a directory|failed to interpret file|cannot reshape|is not a file"
    r"|expecting value|unicodedecodeerror|invalid header|not a valid|unexpected end of|bad magic|truncated"
)


def _chain(error: BaseException) -> list[BaseException]:
    """The error and what caused it, as far as the chain goes (urllib3 nests its cause in ``reason``)."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [error]
    while pending and len(seen) < 20:
        current = pending.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        for follow in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(follow, BaseException):
                pending.append(follow)
        pending.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
    return seen


def _status(error: BaseException) -> int | None:
    """An HTTP status an error carries (requests, google-cloud, botocore), if any."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if status is None and isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status is None:
        status = getattr(error, "code", None)
    return status if isinstance(status, int) and 100 <= status < 600 else None


def classify(error: BaseException) -> str:
    """Which of the kinds above ``error`` (or its causes) is."""
    chain = _chain(error)
    text = " | ".join(f"{type(e).__name__}: {e}" for e in chain).lower()
    codes = [getattr(getattr(e, "response", None), "get", lambda *_: {})("Error", {}).get("Code") for e in chain]
    if "NoSuchBucket" in codes or _BUCKET.search(text):
        return NO_BUCKET
    if any(isinstance(e, socket.gaierror) for e in chain) or _HOST.search(text):
        return UNKNOWN_HOST
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or _REFUSED.search(text):
        return REFUSED
    if _SCHEME.search(text):
        return UNKNOWN_SCHEME
    statuses = {_status(e) for e in chain} - {None}
    if any(isinstance(e, PermissionError) for e in chain) or statuses & {401, 403} or _PERMISSION.search(text):
        return PERMISSION
    if any(isinstance(e, (NotADirectoryError, IsADirectoryError)) for e in chain) or _NOT_A_VOLUME.search(text):
        return NOT_A_VOLUME
    if any(isinstance(e, FileNotFoundError) for e in chain) or 404 in statuses or _NOT_FOUND.search(text):
        return NOT_FOUND
    if any(isinstance(e, (TimeoutError, socket.timeout)) for e in chain) or _TIMEOUT.search(text):
        return TIMEOUT
    return OTHER


def message(kind: str, spec: str, detail: str | None = None) -> str:
    """One line: what is wrong with reaching ``spec`` and what to do about it."""
    where = endpoint(spec)
    at = f"{where[0]}:{where[1]}" if where else "the server"
    if kind == REFUSED:
        return f"cannot reach {spec}: connection refused by {at} (nothing listens there); start the server or correct the host and port"
    if kind == UNKNOWN_HOST:
        host = where[0] if where else (detail or "its host")
        return f"cannot reach {spec}: unknown host {host} (the name does not resolve); check the host name and this machine's DNS"
    if kind == NO_BUCKET:
        bucket = bucket_of(spec) or "its bucket"
        return f"cannot read {spec}: no such bucket {bucket}; check the bucket name (and the account or endpoint it lives in)"
    if kind == NOT_FOUND:
        return f"nothing at {spec}: not found{f' ({detail})' if detail else ''}; check the path or URL"
    if kind == PERMISSION:
        fix = (
            "give this machine read access (gs:// and s3:// read the usual Google and AWS credentials)"
            if is_remote(spec)
            else "make it readable by this user"
        )
        return f"cannot read {spec}: permission denied; {fix}"
    if kind == UNKNOWN_SCHEME:
        scheme = detail or scheme_of(spec) or "?"
        return (
            f"cannot read {spec}: unknown URL scheme {scheme}://; use a local path, file://, gs://, s3:// or http(s)://"
        )
    if kind == NOT_A_VOLUME:
        return (
            f"{spec} is not a volume{f' ({detail})' if detail else ''}; give a .npy, HDF5, TIFF, Zarr, N5 or "
            f"precomputed volume, or a folder of TIFF or PNG slices"
        )
    if kind == TIMEOUT:
        return f"cannot reach {spec}: timed out{f' ({detail})' if detail else ''}; check the network and that the server answers"
    return f"cannot read {spec}: {detail or 'unknown error'}"


def explain(spec: str, error: BaseException | None) -> str:
    """:func:`message` for ``error``, with the library's own words when they say more than the kind."""
    if error is None:
        return message(OTHER, spec)
    kind = classify(error)
    detail = first_line(error)
    if kind in (REFUSED, UNKNOWN_HOST, NO_BUCKET, PERMISSION):
        return message(kind, spec)
    if kind == UNKNOWN_SCHEME:
        return message(kind, spec)
    return message(kind, spec, detail)


def first_line(error: BaseException, limit: int = 240) -> str:
    """The error's text on one line, ANSI colours and tensorstore's spec dump removed, cut to ``limit``."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    text = re.sub(r"\s*\[tensorstore_spec=.*$", "", text, flags=re.S)
    text = " ".join(text.split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
