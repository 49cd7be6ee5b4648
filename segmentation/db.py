"""Database engine and schema migrations.

The schema is defined by the SQLAlchemy models in :mod:`segmentation.models`
and evolved only through the Alembic migrations shipped in
``segmentation/migrations``; :func:`upgrade` brings any database (SQLite or
PostgreSQL) to the newest revision.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


_engines: dict[str, sa.Engine] = {}


def engine_for(url: str) -> sa.Engine:
    """One engine per URL per process (engines own connection pools)."""
    engine = _engines.get(url)
    if engine is None:
        engine = _engines.setdefault(url, _create_engine(url))
    return engine


def next_number(connection, state) -> int:
    """The next change number of a one-row ``state`` table (``id`` 1, ``last_seq``): its row lock
    (the SQLite writer) is held until the caller commits, so writers of that log take turns."""
    updated = connection.execute(sa.update(state).where(state.c.id == 1).values(last_seq=state.c.last_seq + 1)).rowcount
    if not updated:
        connection.execute(sa.insert(state).values(id=1, last_seq=1))
        return 1
    return int(connection.scalar(sa.select(state.c.last_seq).where(state.c.id == 1)))


def dispose_engines_after_fork() -> None:
    """A forked worker must not reuse its parent's connections: start with empty pools."""
    for engine in _engines.values():
        engine.dispose(close=False)


def _create_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: no fsync per commit, still never corrupt
    cursor.close()


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


MIGRATION_LOCK = 0x61786F6E6C696E6B  # "axonlink": the advisory lock migrations hold on PostgreSQL


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` (idempotent). A database already at the newest
    revision is recognised with one query, without loading Alembic and its migration scripts
    (every ``axonlink`` command calls this; a command should start in well under a second)."""
    engine = engine_for(url)
    if revision == "head" and _recorded_revision(engine) == _newest_shipped_revision():
        return
    from alembic import command

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several nodes started at once on an older schema would each run the migrations (Alembic
            # takes no lock): the first to get this lock migrates, the others then find it done.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _newest_shipped_revision() -> str:
    """The newest migration shipped, by file name (``0009_….py`` → ``0009``): revisions are numbered."""
    names = [p.name.partition("_")[0] for p in (MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")]
    return max(names, default="")


def _recorded_revision(engine) -> str | None:
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError:  # no such table yet: a fresh database
        return None


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine_for(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


@contextmanager
def private_schema(url: str):
    """A fresh PostgreSQL schema inside ``url``'s database, dropped afterwards; yields its URL.

    For tests and benchmarks that share one server database without seeing each other's rows.
    """
    name = f"axl_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    scoped = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{name}"
    try:
        yield scoped
    finally:
        engine = _engines.pop(scoped, None)
        if engine is not None:
            engine.dispose()
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()
