"""Where axonlink keeps its data and which database it talks to.

Settings come from flags first, then the environment (``AXONLINK_HOME``,
``AXONLINK_DATABASE_URL``, ``AXONLINK_MAX_STATE_BYTES``, ``AXONLINK_ANONYMOUS_ROLE``,
``AXONLINK_ALLOWED_HOSTS``, ``AXONLINK_PUBLIC_URL``, ``AXONLINK_METRICS_TOKEN`` …), then defaults
that need nothing installed: a data directory ``./axonlink-data`` and a SQLite file inside it,
answering only to loopback host names.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOME = "axonlink-data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
ANONYMOUS_ROLES = ("none", "viewer", "proofreader")


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    max_state_bytes: int = 10 * 1024 * 1024  # AXONLINK_MAX_STATE_BYTES: largest view state accepted
    # AXONLINK_ANONYMOUS_ROLE: what anyone without a token may do on public datasets:
    # "viewer" (read), "proofreader" (a single-user laptop: edit too) or "none" (sign in for everything)
    anonymous_role: str = "viewer"
    # AXONLINK_ALLOWED_HOSTS (comma-separated) / --allowed-host: Host header names answered besides the
    # loopback names and the public URL's host; "*" answers any (refused when anonymous users may edit)
    allowed_hosts: tuple[str, ...] = ()
    # AXONLINK_PUBLIC_URL / --public-url: how clients reach this server (e.g. https://em.example.org);
    # links and redirects are built from it, never from a request's Host header
    public_url: str | None = None
    # AXONLINK_RATE_LIMITS: per-client limits by cost, e.g. "edit=60/minute;create=none" (over the defaults)
    rate_limits: str = ""
    # AXONLINK_RATE_LIMIT_STORAGE: where counts live: memory:// (per worker, the default) or redis://host:port
    rate_limit_storage: str | None = None
    # AXONLINK_REQUEST_BUDGET_SECONDS: the most work an edit or expensive read may take (then a 503)
    request_budget_seconds: float = 10.0
    # AXONLINK_TRUSTED_PROXIES (comma-separated) / --trusted-proxy: front servers whose X-Forwarded-For
    # names the client (for rate limits and the audit log); nobody else's is believed
    trusted_proxies: tuple[str, ...] = ()
    # AXONLINK_ACCEL_REDIRECT / --accel-redirect: the internal location of a front server (nginx) that
    # serves local files itself; stored chunks and fragments asked through a trusted proxy are answered
    # with "X-Accel-Redirect: <prefix><file path>" after the access check (docs/deploy.md)
    accel_redirect: str = ""
    # AXONLINK_METRICS_TOKEN: the token Prometheus sends (Authorization: Bearer) to scrape /metrics; it
    # opens nothing else. Unset, /metrics answers site admins and requests made on this machine itself
    metrics_token: str = field(default="", repr=False)

    @classmethod
    def load(
        cls,
        home: str | os.PathLike | None = None,
        database_url: str | None = None,
        anonymous_role: str | None = None,
        allowed_hosts=None,
        public_url: str | None = None,
        trusted_proxies=None,
        accel_redirect: str | None = None,
    ) -> Settings:
        home_path = Path(home or os.environ.get("AXONLINK_HOME") or DEFAULT_HOME).expanduser().resolve()
        url = database_url or os.environ.get("AXONLINK_DATABASE_URL") or sqlite_url(home_path / "axonlink.sqlite")
        max_state = int(os.environ.get("AXONLINK_MAX_STATE_BYTES") or cls.max_state_bytes)
        anonymous = anonymous_role or os.environ.get("AXONLINK_ANONYMOUS_ROLE") or cls.anonymous_role
        if anonymous not in ANONYMOUS_ROLES:
            raise ValueError(f"AXONLINK_ANONYMOUS_ROLE must be one of {', '.join(ANONYMOUS_ROLES)}, not {anonymous!r}")
        if allowed_hosts is None:
            allowed_hosts = [h for h in (os.environ.get("AXONLINK_ALLOWED_HOSTS") or "").split(",") if h.strip()]
        hosts = tuple(h.strip().lower().rstrip(".") for h in allowed_hosts)
        if "*" in hosts and anonymous == "proofreader":
            raise ValueError(
                "allowed hosts '*' cannot be combined with AXONLINK_ANONYMOUS_ROLE=proofreader: "
                "name the host names this server answers to (--allowed-host)"
            )
        public = public_url or os.environ.get("AXONLINK_PUBLIC_URL") or None
        if public is not None:
            public = _checked_public_url(public)
        budget = float(os.environ.get("AXONLINK_REQUEST_BUDGET_SECONDS") or cls.request_budget_seconds)
        if not 0 < budget < 3600:
            raise ValueError("AXONLINK_REQUEST_BUDGET_SECONDS must be a number of seconds between 0 and 3600")
        return cls(
            home=home_path,
            database_url=url,
            max_state_bytes=max_state,
            anonymous_role=anonymous,
            allowed_hosts=hosts,
            public_url=public,
            rate_limits=os.environ.get("AXONLINK_RATE_LIMITS", ""),
            rate_limit_storage=os.environ.get("AXONLINK_RATE_LIMIT_STORAGE") or None,
            request_budget_seconds=budget,
            trusted_proxies=_proxies(trusted_proxies),
            accel_redirect=_accel_prefix(accel_redirect),
            metrics_token=_metrics_token(),
        )

    @property
    def demo_dir(self) -> Path:
        return self.home / "demo"


def _accel_prefix(given: str | None) -> str:
    prefix = given if given is not None else os.environ.get("AXONLINK_ACCEL_REDIRECT", "")
    prefix = prefix.strip().rstrip("/")
    if prefix and (not prefix.startswith("/") or not re.fullmatch(r"[A-Za-z0-9._/-]+", prefix)):
        raise ValueError(f"the accel-redirect prefix must be a plain path like /_axonlink_files, not {prefix!r}")
    return prefix


MIN_METRICS_TOKEN = 16


def _metrics_token() -> str:
    token = (os.environ.get("AXONLINK_METRICS_TOKEN") or "").strip()
    if token and (len(token) < MIN_METRICS_TOKEN or not re.fullmatch(r"[!-~]+", token)):
        raise ValueError(
            f"AXONLINK_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN} visible ASCII characters "
            "without spaces (e.g. the output of `openssl rand -hex 24`)"
        )
    return token


def _proxies(given) -> tuple[str, ...]:
    import ipaddress

    if given is None:
        given = [p for p in (os.environ.get("AXONLINK_TRUSTED_PROXIES") or "").split(",") if p.strip()]
    try:
        return tuple(str(ipaddress.ip_address(p.strip())) for p in given)
    except ValueError as error:
        raise ValueError(f"trusted proxies are IP addresses (e.g. 127.0.0.1): {error}") from None


def _checked_public_url(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"the public URL must look like https://host[:port][/prefix], not {url!r}")
    return url.strip().rstrip("/")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"
