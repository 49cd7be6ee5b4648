"""Cache headers that never let a shared cache keep what only some callers may see.

Public datasets' files keep the headers their views chose (``public``, ``immutable``
for moments that can no longer change). Everything else — any answer about a
dataset that is not public (unknown names included, so that the headers do not
tell the two apart), and every answer that depends on who asks (lists, the
signed-in user, the viewer's default state) — is ``private`` and varies with
the ``Authorization`` header and the session cookie. Routes whose view checks
access itself (``own``) may say so themselves: a stored state showing only
public data is the same for everyone; one that sets no header is private.
"""

from __future__ import annotations

from flask import request

from . import auth, endpoints

VARY_ON_CALLER = ("Authorization", "Cookie")


def _named_dataset(spec) -> str | None:
    value = (request.view_args or {}).get(spec.dataset_parameter) if spec.dataset_parameter else None
    return value.partition("@")[0] if isinstance(value, str) else None


def depends_on_caller(spec) -> bool:
    """Whether the answer of ``spec``'s route may differ between callers (or datasets' visibility)."""
    if spec is None:
        return False
    if spec.personal or spec.access == "own":
        return True
    dataset = _named_dataset(spec)
    return dataset is not None and auth.accounts().is_public(dataset) is not True


def make_private(response) -> None:
    response.headers["Cache-Control"] = private_cache_control(response.headers.get("Cache-Control") or "")
    response.headers["Vary"] = vary_on_caller(response.headers.get("Vary") or "")


def private_cache_control(given: str) -> str:
    """``given`` made private: ``public`` becomes ``private`` (other directives kept), and a bare
    ``private`` revalidates (who may see it can change)."""
    directives = [d.strip() for d in given.split(",") if d.strip()]
    directives = ["private" if d == "public" else d for d in directives]
    if "private" not in directives and "no-store" not in directives:
        directives.insert(0, "private")
    if len(directives) == 1 and directives[0] == "private":
        directives.append("no-cache")
    return ", ".join(directives)


def vary_on_caller(given: str) -> str:
    vary = [v.strip() for v in given.split(",") if v.strip()]
    return ", ".join(vary + [v for v in VARY_ON_CALLER if v not in vary])


def install(app) -> None:
    @app.after_request
    def keep_private_answers_private(response):
        spec = endpoints.BY_ENDPOINT.get((request.endpoint or "").rpartition(".")[2])
        if spec is not None and spec.access == "own" and "Cache-Control" in response.headers:
            return response  # the view knows whose answer this is
        if depends_on_caller(spec):
            make_private(response)
        return response
