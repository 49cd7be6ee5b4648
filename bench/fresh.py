"""A throwaway axonlink home for a benchmark: a temporary directory and database, gone afterwards."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path

from segmentation import db
from segmentation.config import Settings, sqlite_url


@contextmanager
def fresh_settings(database_url: str | None = None):
    """Settings on a new SQLite file, or on a private schema of ``database_url`` (PostgreSQL), migrated."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        url = database_url or sqlite_url(home / "a.sqlite")
        if url.startswith("postgresql"):
            with db.private_schema(url) as scoped:
                yield _migrated(home, scoped)
        else:
            yield _migrated(home, url)


def proofreader_token(settings: Settings, dataset: str, user: str = "bench") -> str:
    """A token of ``user`` (made if missing) with the proofreader role on ``dataset``: edits need one."""
    from segmentation.access import Accounts

    return Accounts(settings.database_url).role_token(user, dataset, "proofreader", by="bench")


def _migrated(home: Path, url: str) -> Settings:
    settings = Settings.load(home=home, database_url=url)
    db.upgrade(settings.database_url)
    return settings
