"""The rules: a principal's role on a dataset, and what each role may do.

viewer < proofreader < admin. A site admin is admin everywhere. On a public
dataset everyone has at least the server's anonymous role (``viewer`` unless
configured otherwise); on a private one only granted users have a role, and
for everybody else the dataset does not exist (404, never 403).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import NotFound, Refused, Unauthenticated

ROLES = ("viewer", "proofreader", "admin")
_RANK = {None: 0, "viewer": 1, "proofreader": 2, "admin": 3}
ANONYMOUS = "anonymous"
ANONYMOUS_ROLES = ("none",) + ROLES[:2]  # what a server may give anonymous users on public datasets


class NotVisible(NotFound):
    """The dataset is private and the principal has no role on it: answer as if it did not exist."""

    refusal = True  # logged as refused: unknown and private look alike to the caller


class SignInRequired(Unauthenticated, PermissionError):
    """Anonymous, and the action needs a role anonymous users do not have."""


class Forbidden(Refused):
    """Signed in, but the role on this dataset is too low."""


@dataclass(frozen=True)
class Principal:
    name: str = ANONYMOUS
    authenticated: bool = False
    site_admin: bool = False
    grants: Mapping[str, str] = field(default_factory=dict)
    token_id: int | None = None
    token_expires_at: datetime | None = None


def anonymous() -> Principal:
    return Principal()


def role_on(principal: Principal, dataset: str, public: bool, anonymous_role: str = "viewer") -> str | None:
    """The principal's role on ``dataset`` (None: no access at all)."""
    if principal.site_admin:
        return "admin"
    granted = principal.grants.get(dataset)
    floor = anonymous_role if public and anonymous_role in ROLES else None
    return granted if _RANK[granted] >= _RANK[floor] else floor


def at_least(role: str | None, needed: str) -> bool:
    return _RANK[role] >= _RANK[needed]


def require_role(
    principal: Principal, dataset: str, public: bool | None, needed: str, anonymous_role: str = "viewer"
) -> str | None:
    """The principal's role if it is at least ``needed``, else the right refusal.

    ``public`` None means the dataset is unknown: None is returned and the route answers 404 itself.
    """
    if public is None:
        return None
    role = role_on(principal, dataset, public, anonymous_role)
    if role is None:
        raise NotVisible(f"no dataset named {dataset!r}")
    if at_least(role, needed):
        return role
    if not principal.authenticated:
        raise SignInRequired(
            f"this needs the {needed} role on {dataset!r}: send a token (Authorization: Bearer <token>); "
            "`axonlink tokens create NAME` makes one"
        )
    raise Forbidden(f"user {principal.name!r} is {role} on {dataset!r}; this needs {needed}")
