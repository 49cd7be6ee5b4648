"""The append-only audit log: who changed what, when, and from where.

Writers call :func:`record` inside the transaction that makes the change, so a
change and its audit entry are committed together or not at all. The table's
triggers refuse UPDATE and DELETE.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy as sa

from ..db import engine_for
from ..models import AuditRow

_TABLE = AuditRow.__table__


def record(
    connection,
    *,
    user: str,
    action: str,
    dataset: str | None = None,
    target: str = "",
    detail: dict | None = None,
    origin: str = "",
) -> None:
    """Write one audit entry in ``connection``'s transaction, and the same as a log line
    (logger ``axonlink.audit``) for operators who watch logs rather than the table. The line
    is written with the entry, before the commit: the table, not the log, is the record."""
    _log.info(
        "%s",
        action,
        extra={
            "fields": {
                "user": str(user),
                "dataset": dataset,
                "target": str(target) or None,
                "client": origin or None,
                **_short(detail),
            }
        },
    )
    connection.execute(
        sa.insert(_TABLE).values(
            at=datetime.now(UTC),
            user_id=str(user)[:128],
            action=action,
            dataset=dataset,
            target=str(target),
            detail=detail or {},
            origin=(origin or "")[:128],
        )
    )


_log = logging.getLogger("axonlink.audit")


def _short(detail: dict | None) -> dict:
    """The detail's scalar fields and short lists (a log line is not the place for thousands of ids)."""
    short = {}
    for key, value in (detail or {}).items():
        if isinstance(value, (str, int, float, bool)) or (isinstance(value, list) and len(value) <= 8):
            short[str(key)] = value
    return short


class AuditLog:
    """Reading the log (newest first), optionally limited to some datasets, a user or an action."""

    def __init__(self, database_url: str):
        self.engine = engine_for(database_url)

    def entries(
        self,
        *,
        datasets: list[str] | None = None,
        user: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[dict]:
        query = sa.select(_TABLE).order_by(_TABLE.c.id.desc()).limit(max(1, min(int(limit), 10000)))
        if datasets is not None:
            query = query.where(_TABLE.c.dataset.in_(datasets))
        if user is not None:
            query = query.where(_TABLE.c.user_id == user)
        if action is not None:
            query = query.where(_TABLE.c.action.like(action.replace("*", "%")))
        if since is not None:
            query = query.where(_TABLE.c.at >= since)
        if before_id is not None:
            query = query.where(_TABLE.c.id < before_id)
        with self.engine.connect() as connection:
            return [_entry(row) for row in connection.execute(query).mappings()]


def _entry(row) -> dict:
    at = row["at"]
    if at.tzinfo is None:  # SQLite keeps no time zone; we store UTC
        at = at.replace(tzinfo=UTC)
    return {
        "id": row["id"],
        "at": at.isoformat(),
        "user": row["user_id"],
        "action": row["action"],
        "dataset": row["dataset"],
        "target": row["target"],
        "detail": row["detail"],
        "origin": row["origin"],
    }
