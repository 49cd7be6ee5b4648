"""MyLinks: the links a person made, in their own list, under the names they give them.

A stored state is immutable and shared: the same state posted by two people is one row, owned by
whoever stored it first, with the title it was posted with. What a person makes of a link is
theirs: that it is in their list (every state they post goes there, stored before or not), and
what it is called there (renaming changes their list, never the state). Forgetting a link takes it
out of the list; the state and every link to it keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from segmentation.db import engine_for
from segmentation.errors import Invalid, NotFound
from segmentation.models import StateAnchorRow, StateDatasetRow, StateRow, UserLinkRow
from segmentation.timestamps import as_utc

MAX_TITLE = 300  # characters of a title in one's list
PER_PAGE = 50
MAX_ANCHORS_READ = 10_000  # of one person's links in one dataset, for a neuron's page


class LinkNotInList(NotFound):
    pass


class BadTitle(Invalid):
    pass


@dataclass(frozen=True)
class MyLink:
    state_id: int
    short_id: str
    title: str
    added: datetime  # when it came into the list (first posted, or posted again, by this user)
    stored: datetime  # when the state was first stored (by anyone)
    views: int
    datasets: tuple[str, ...]

    def to_json(self, base_url: str) -> dict:
        return {
            "id": self.state_id,
            "short_id": self.short_id,
            "title": self.title,
            "added": self.added.isoformat(),
            "stored": self.stored.isoformat(),
            "views": self.views,
            "datasets": list(self.datasets),
            "short_url": f"{base_url}/s/{self.short_id}",
        }


def checked_title(title) -> str:
    """A title as kept: a string of at most MAX_TITLE characters, without control characters."""
    if not isinstance(title, str):
        raise BadTitle("title must be a string")
    title = title.strip()
    if len(title) > MAX_TITLE:
        raise BadTitle(f"a title has at most {MAX_TITLE} characters (got {len(title)})")
    if any(ord(c) < 32 or ord(c) == 127 for c in title):
        raise BadTitle("a title is one line of text (no control characters)")
    return title


class MyLinks:
    def __init__(self, database_url: str):
        self.engine = engine_for(database_url)

    def record(self, user: str, state_id: int, title: str) -> None:
        """Put a state a signed-in user just posted into their list (kept as it is when already there)."""
        row = {"user": user, "state_id": state_id, "title": title[:MAX_TITLE], "created_at": datetime.now(UTC)}
        try:
            with self.engine.begin() as connection:
                exists = connection.execute(
                    sa.select(UserLinkRow.state_id).where(UserLinkRow.user == user, UserLinkRow.state_id == state_id)
                ).first()
                if exists is None:
                    connection.execute(sa.insert(UserLinkRow).values(**row))
        except IntegrityError:
            pass  # put there by a concurrent request of the same user

    def page(self, user: str, page: int = 1, may_view: Callable[[frozenset], bool] | None = None):
        """(the user's links on ``page``, newest first, those naming data the user may no longer view
        left out; the number of links in the list)."""
        with self.engine.connect() as connection:
            total = connection.execute(
                sa.select(sa.func.count()).select_from(UserLinkRow).where(UserLinkRow.user == user)
            ).scalar_one()
            rows = connection.execute(
                sa.select(
                    UserLinkRow.state_id,
                    UserLinkRow.title,
                    UserLinkRow.created_at,
                    StateRow.short_id,
                    StateRow.created_at.label("stored"),
                    StateRow.views,
                    StateRow.dataset,
                )
                .join(StateRow, StateRow.id == UserLinkRow.state_id)
                .where(UserLinkRow.user == user)
                .order_by(UserLinkRow.created_at.desc(), UserLinkRow.state_id.desc())
                .limit(PER_PAGE)
                .offset((page - 1) * PER_PAGE)
            ).all()
            ties: dict[int, set] = {row.state_id: {row.dataset} - {None} for row in rows}
            if ties:
                for state_id, name in connection.execute(
                    sa.select(StateDatasetRow.state_id, StateDatasetRow.dataset).where(
                        StateDatasetRow.state_id.in_(list(ties))
                    )
                ):
                    ties[state_id].add(name)
        links = [
            MyLink(
                row.state_id,
                row.short_id,
                row.title,
                as_utc(row.created_at),
                as_utc(row.stored),
                row.views,
                tuple(sorted(ties[row.state_id])),
            )
            for row in rows
        ]
        if may_view is not None:
            links = [link for link in links if may_view(frozenset(link.datasets))]
        return links, total

    def anchored_in(self, user: str, dataset: str, most: int = MAX_ANCHORS_READ) -> list[dict]:
        """The neurons the user's links select in ``dataset``: one row per anchor (``short_id``,
        ``title``, ``segment_id`` as stored, ``sv_id`` it follows), newest links first, at most ``most``
        (a neuron's page finds the links of one's own that show it)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    StateRow.short_id,
                    UserLinkRow.title,
                    UserLinkRow.created_at,
                    StateAnchorRow.segment_id,
                    StateAnchorRow.sv_id,
                )
                .join(StateRow, StateRow.id == UserLinkRow.state_id)
                .join(StateAnchorRow, StateAnchorRow.state_id == UserLinkRow.state_id)
                .where(UserLinkRow.user == user, StateAnchorRow.dataset == dataset)
                .order_by(UserLinkRow.created_at.desc())
                .limit(most)
            ).all()
        return [
            {
                "short_id": row.short_id,
                "title": row.title,
                "added": as_utc(row.created_at),
                "segment_id": int(row.segment_id),
                "sv_id": int(row.sv_id),
            }
            for row in rows
        ]

    def rename(self, user: str, state_id: int, title) -> None:
        title = checked_title(title)
        with self.engine.begin() as connection:
            changed = connection.execute(
                sa.update(UserLinkRow)
                .where(UserLinkRow.user == user, UserLinkRow.state_id == state_id)
                .values(title=title)
            ).rowcount
        if not changed:
            raise LinkNotInList(f"state {state_id} is not in your links")

    def forget(self, user: str, state_id: int) -> None:
        with self.engine.begin() as connection:
            removed = connection.execute(
                sa.delete(UserLinkRow).where(UserLinkRow.user == user, UserLinkRow.state_id == state_id)
            ).rowcount
        if not removed:
            raise LinkNotInList(f"state {state_id} is not in your links")
