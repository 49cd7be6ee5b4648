"""Users, API tokens and grants in SQL; the token → principal lookup the server does per request.

A token is ``axl_`` + 43 random URL-safe characters (256 bits). Only its
SHA-256 is stored: a stolen database or log holds no usable secret, and a
fast hash is enough because the secret is random, not a password. Lookups are
cached per process for :data:`CACHE_SECONDS`; a change made in this process
clears the cache at once, other processes see it within that time.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import weakref
from datetime import UTC, datetime

import sqlalchemy as sa

from ..db import engine_for
from ..errors import Invalid, Unauthenticated
from ..models import DatasetRow, GrantRow, TokenRow, UserRow
from .audit import record
from .policy import ROLES, Principal

TOKEN_PREFIX = "axl_"
TOKEN_PATTERN = re.compile(r"axl_[A-Za-z0-9_-]{43}")
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
CACHE_SECONDS = 1.5  # a revocation reaches every process and node within 2 s (with a request's own time)

_users, _tokens, _grants = UserRow.__table__, TokenRow.__table__, GrantRow.__table__
_datasets = DatasetRow.__table__


class AccessError(Invalid):
    """A request about users, tokens or grants that cannot be done (unknown user, bad role...)."""


class InvalidToken(Unauthenticated):
    """A token that is malformed, unknown, expired or revoked (the message says which)."""

    def message(self) -> str:
        return f"invalid token: {self}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _utc(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:  # SQLite keeps no time zone; we store UTC
        return moment.replace(tzinfo=UTC)
    return moment


class _Cache:
    """Per-process answers that expire after CACHE_SECONDS; cleared by any change made here."""

    def __init__(self):
        self._items: dict = {}
        self._lock = threading.Lock()

    def get(self, key, compute):
        now = time.monotonic()
        hit = self._items.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        value = compute()
        with self._lock:
            self._items[key] = (now, value)
        return value

    def peek(self, key):
        """(True, the answer) while it is fresh, else (False, None): never computes."""
        hit = self._items.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return True, hit[1]
        return False, None

    def forget(self, key):
        with self._lock:
            self._items.pop(key, None)

    def clear(self):
        with self._lock:
            self._items.clear()


_caches: weakref.WeakSet[_Cache] = weakref.WeakSet()  # only to clear them all when access changes here


class Accounts:
    """The facade over users, tokens, grants and dataset visibility; every change is audited.

    Each instance keeps its own answers for CACHE_SECONDS (the server's lives in its workspace);
    a change made through any instance in this process clears them all, other processes see it
    when their answers expire."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self.engine = engine_for(database_url)
        self._cache = _Cache()
        _caches.add(self._cache)

    # ---- users -------------------------------------------------------------------------
    def add_user(self, name: str, *, site_admin: bool = False, by: str = "cli", origin: str = "cli") -> dict:
        if not USER_NAME.match(name or ""):
            raise AccessError(
                "user names are 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit"
            )
        with self._change() as connection:
            if connection.execute(sa.select(_users.c.id).where(_users.c.name == name)).first():
                raise AccessError(f"user {name!r} already exists")
            connection.execute(sa.insert(_users).values(name=name, site_admin=site_admin, created_at=datetime.now(UTC)))
            record(
                connection, user=by, action="user.add", target=name, detail={"site_admin": site_admin}, origin=origin
            )
        return {"name": name, "site_admin": site_admin}

    def users(self) -> list[dict]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(_users).order_by(_users.c.id)).mappings().all()
        return [
            {"name": r["name"], "site_admin": r["site_admin"], "created": _utc(r["created_at"]).isoformat()}
            for r in rows
        ]

    def _user_id(self, connection, name: str) -> int:
        found = connection.execute(sa.select(_users.c.id).where(_users.c.name == name)).scalar()
        if found is None:
            raise AccessError(f"no user named {name!r} (`axonlink users add {name}` creates one)")
        return found

    # ---- tokens ------------------------------------------------------------------------
    def create_token(
        self, user: str, *, expires_at: datetime | None = None, label: str = "", by: str = "cli", origin: str = "cli"
    ) -> tuple[int, str]:
        """A new token for ``user``: (its id, the token). The token is shown this once, never stored."""
        if expires_at is not None and _utc(expires_at) <= datetime.now(UTC):
            raise AccessError("a token's expiry must be in the future")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._change() as connection:
            user_id = self._user_id(connection, user)
            token_id = connection.execute(
                sa.insert(_tokens)
                .values(
                    user_id=user_id,
                    token_hash=hash_token(token),
                    label=label[:128],
                    created_at=datetime.now(UTC),
                    expires_at=expires_at,
                )
                .returning(_tokens.c.id)
            ).scalar_one()
            record(
                connection,
                user=by,
                action="token.create",
                target=f"token {token_id} of {user}",
                detail={"label": label, "expires_at": expires_at.isoformat() if expires_at else None},
                origin=origin,
            )
        return token_id, token

    def role_token(
        self,
        user: str,
        dataset: str,
        role: str,
        *,
        expires_at: datetime | None = None,
        label: str = "",
        by: str = "cli",
        origin: str = "cli",
    ) -> str:
        """A new token of ``user`` — made if missing — holding ``role`` on ``dataset`` (demo, tests, benchmarks)."""
        if user not in {u["name"] for u in self.users()}:
            self.add_user(user, by=by, origin=origin)
        self.grant(user, dataset, role, by=by, origin=origin)
        return self.create_token(user, expires_at=expires_at, label=label, by=by, origin=origin)[1]

    def revoke_token(self, token_or_id: str | int, *, by: str = "cli", origin: str = "cli") -> dict:
        with self._change() as connection:
            if isinstance(token_or_id, str) and token_or_id.startswith(TOKEN_PREFIX):
                where = _tokens.c.token_hash == hash_token(token_or_id)
            else:
                try:
                    where = _tokens.c.id == int(token_or_id)
                except ValueError:
                    raise AccessError(f"{token_or_id!r} is neither a token nor a token id") from None
            row = (
                connection.execute(
                    sa.select(_tokens.c.id, _tokens.c.revoked_at, _users.c.name)
                    .join(_users, _users.c.id == _tokens.c.user_id)
                    .where(where)
                )
                .mappings()
                .first()
            )
            if row is None:
                raise AccessError("no such token")
            if row["revoked_at"] is None:
                connection.execute(
                    sa.update(_tokens).where(_tokens.c.id == row["id"]).values(revoked_at=datetime.now(UTC))
                )
                record(
                    connection,
                    user=by,
                    action="token.revoke",
                    target=f"token {row['id']} of {row['name']}",
                    origin=origin,
                )
        return {"id": row["id"], "user": row["name"]}

    def tokens(self, user: str | None = None) -> list[dict]:
        query = (
            sa.select(_tokens, _users.c.name.label("user"))
            .join(_users, _users.c.id == _tokens.c.user_id)
            .order_by(_tokens.c.id)
        )
        if user is not None:
            query = query.where(_users.c.name == user)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            {
                "id": r["id"],
                "user": r["user"],
                "label": r["label"],
                "created": _utc(r["created_at"]).isoformat(),
                "expires": _utc(r["expires_at"]).isoformat() if r["expires_at"] else None,
                "revoked": _utc(r["revoked_at"]).isoformat() if r["revoked_at"] else None,
            }
            for r in rows
        ]

    def authenticate(self, token: str) -> Principal:
        """The principal a token stands for; :class:`InvalidToken` says why it does not."""
        if not TOKEN_PATTERN.fullmatch(token or ""):
            raise InvalidToken("malformed token (axonlink tokens look like axl_ followed by 43 characters)")
        digest = hash_token(token)
        found = self._cache.get(("token", digest), lambda: self._load_token(digest))
        if found is None:
            raise InvalidToken("unknown token")
        if found["revoked_at"] is not None:
            raise InvalidToken("this token was revoked")
        if found["expires_at"] is not None and found["expires_at"] <= datetime.now(UTC):
            raise InvalidToken("this token has expired")
        return Principal(
            name=found["name"],
            authenticated=True,
            site_admin=found["site_admin"],
            grants=self._grants_of(found["user_id"]),
            token_id=found["id"],
            token_expires_at=found["expires_at"],
        )

    def _load_token(self, digest: str) -> dict | None:
        with self.engine.connect() as connection:
            row = (
                connection.execute(
                    sa.select(
                        _tokens.c.id,
                        _tokens.c.user_id,
                        _tokens.c.expires_at,
                        _tokens.c.revoked_at,
                        _users.c.name,
                        _users.c.site_admin,
                    )
                    .join(_users, _users.c.id == _tokens.c.user_id)
                    .where(_tokens.c.token_hash == digest)
                )
                .mappings()
                .first()
            )
        if row is None:
            return None
        found = dict(row)
        found["expires_at"], found["revoked_at"] = _utc(found["expires_at"]), _utc(found["revoked_at"])
        return found

    # ---- grants and visibility -----------------------------------------------------------
    def grant(self, user: str, dataset: str, role: str | None, *, by: str = "cli", origin: str = "cli") -> None:
        """Give ``user`` ``role`` on ``dataset``; None (or "none") takes the grant away."""
        role = None if role in (None, "none") else role
        if role is not None and role not in ROLES:
            raise AccessError(f"role must be one of {', '.join(ROLES)} or none, not {role!r}")
        with self._change() as connection:
            user_id = self._user_id(connection, user)
            dataset_id = self._dataset_id(connection, dataset)
            where = sa.and_(_grants.c.user_id == user_id, _grants.c.dataset_id == dataset_id)
            connection.execute(sa.delete(_grants).where(where))
            if role is not None:
                connection.execute(sa.insert(_grants).values(user_id=user_id, dataset_id=dataset_id, role=role))
            record(
                connection, user=by, action="grant", dataset=dataset, target=user, detail={"role": role}, origin=origin
            )

    def grants(self, dataset: str | None = None) -> list[dict]:
        query = (
            sa.select(_users.c.name.label("user"), _datasets.c.name.label("dataset"), _grants.c.role)
            .join(_users, _users.c.id == _grants.c.user_id)
            .join(_datasets, _datasets.c.id == _grants.c.dataset_id)
            .order_by(_datasets.c.name, _users.c.name)
        )
        if dataset is not None:
            query = query.where(_datasets.c.name == dataset)
        with self.engine.connect() as connection:
            return [dict(r) for r in connection.execute(query).mappings()]

    def _grants_of(self, user_id: int) -> dict[str, str]:
        def load():
            with self.engine.connect() as connection:
                rows = connection.execute(
                    sa.select(_datasets.c.name, _grants.c.role)
                    .join(_datasets, _datasets.c.id == _grants.c.dataset_id)
                    .where(_grants.c.user_id == user_id)
                )
                return {name: role for name, role in rows}

        return self._cache.get(("grants", user_id), load)

    def set_public(self, dataset: str, public: bool, *, by: str = "cli", origin: str = "cli") -> None:
        with self._change() as connection:
            self._dataset_id(connection, dataset)
            connection.execute(sa.update(_datasets).where(_datasets.c.name == dataset).values(public=public))
            record(
                connection,
                user=by,
                action="dataset.visibility",
                dataset=dataset,
                detail={"public": public},
                origin=origin,
            )

    def visibility(self) -> dict[str, bool]:
        """Every dataset name → whether it is public (cached briefly: asked on every request)."""

        def load():
            with self.engine.connect() as connection:
                return {
                    name: bool(public)
                    for name, public in connection.execute(sa.select(_datasets.c.name, _datasets.c.public))
                }

        return self._cache.get("visibility", load)

    def is_public(self, dataset: str) -> bool | None:
        """Whether ``dataset`` is public; None if there is no such dataset.

        Unknown names are answered from the same cached map as private ones (a dataset added in
        another process shows within CACHE_SECONDS): looking them up afresh would cost a query per
        request naming one, and the extra time would tell an unknown name from a private one.
        """
        return self.visibility().get(dataset)

    def is_public_in_memory(self, dataset: str) -> tuple[bool, bool | None]:
        """(known, :meth:`is_public`) from this process's cache alone (known False: it would need SQL)."""
        known, visibility = self._cache.peek("visibility")
        return (True, visibility.get(dataset)) if known else (False, None)

    @staticmethod
    def _dataset_id(connection, dataset: str) -> int:
        found = connection.execute(sa.select(_datasets.c.id).where(_datasets.c.name == dataset)).scalar()
        if found is None:
            raise AccessError(f"no dataset named {dataset!r}")
        return found

    def _change(self):
        """A transaction for a change; this process's cached answers are dropped once it ends."""
        return _Change(self.engine)


class _Change:
    def __init__(self, engine):
        self._begin = engine.begin()

    def __enter__(self):
        return self._begin.__enter__()

    def __exit__(self, *exc):
        try:
            return self._begin.__exit__(*exc)
        finally:
            forget_cached_access()


def clear_with_access(cache) -> None:
    """Clear ``cache`` (anything with ``clear()`` that can be weakly referenced) whenever access or a
    dataset changes in this process, as this module's own caches are."""
    _caches.add(cache)


def forget_cached_access() -> None:
    """Drop every cached token, grant and visibility answer in this process (access changed here)."""
    for cache in list(_caches):
        cache.clear()
