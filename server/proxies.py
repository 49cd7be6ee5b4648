"""The client's address behind a front server (nginx), for rate limits and the audit log.

Behind nginx every request comes from nginx's address. Requests whose peer is one of the
configured trusted proxies (``--trusted-proxy``, ``AXONLINK_TRUSTED_PROXIES``) take the
client's address and scheme from the ``X-Forwarded-For`` / ``X-Forwarded-Proto`` headers that
proxy set; from anyone else those headers are ignored, so a client cannot claim another
address by sending them itself.
"""

from __future__ import annotations

from werkzeug.middleware.proxy_fix import ProxyFix


class TrustedProxies:
    """WSGI middleware: werkzeug's ProxyFix, for requests from trusted proxies only."""

    def __init__(self, app, trusted: tuple[str, ...]):
        self.app = app
        self.trusted = frozenset(trusted)
        self.fixed = ProxyFix(app, x_for=1, x_proto=1)

    def __call__(self, environ, start_response):
        if environ.get("REMOTE_ADDR") in self.trusted:
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)
