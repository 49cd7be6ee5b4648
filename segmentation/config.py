"""Where axonlink keeps its data and which database it talks to.

Settings come from flags first, then the environment (``AXONLINK_HOME``,
``AXONLINK_DATABASE_URL``, ``AXONLINK_MAX_STATE_BYTES``), then defaults that need nothing installed: a data
directory ``./axonlink-data`` and a SQLite file inside it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
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

    @classmethod
    def load(cls, home: str | os.PathLike | None = None, database_url: str | None = None,
             anonymous_role: str | None = None) -> "Settings":
        home_path = Path(home or os.environ.get("AXONLINK_HOME") or DEFAULT_HOME).expanduser().resolve()
        url = database_url or os.environ.get("AXONLINK_DATABASE_URL") or sqlite_url(home_path / "axonlink.sqlite")
        max_state = int(os.environ.get("AXONLINK_MAX_STATE_BYTES") or cls.max_state_bytes)
        anonymous = anonymous_role or os.environ.get("AXONLINK_ANONYMOUS_ROLE") or cls.anonymous_role
        if anonymous not in ANONYMOUS_ROLES:
            raise ValueError(f"AXONLINK_ANONYMOUS_ROLE must be one of {', '.join(ANONYMOUS_ROLES)}, not {anonymous!r}")
        return cls(home=home_path, database_url=url, max_state_bytes=max_state, anonymous_role=anonymous)

    @property
    def demo_dir(self) -> Path:
        return self.home / "demo"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"
