"""Aliases: a short name one person owns (``/l/<name>``), re-pointable to a newer stored state.

Stored states never change, so a link to one is exact forever; a lab's "current figure 3 view"
or "the neurons we are proofreading this week" needs a name that moves. An alias is that layer on
top: its owner points it at a state, and later at another; every state it pointed at stays
stored, in order, with who pointed and when — the history the alias page shows. Names are
global, first come first served, lower case (``l23-pyramidal-review``), and never reused while
the alias exists.

An alias is only a name: what it shows is what its target shows, to whoever may see that. The
server resolves it for a caller only when they may view every dataset of its current target, and
lists only the earlier targets they may view.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from segmentation.db import engine_for
from segmentation.errors import Conflict, Invalid, NotFound, Refused
from segmentation.models import AliasRow, AliasTargetRow, StateRow
from segmentation.timestamps import as_utc

NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
NAME_RULE = "1-64 characters: lower-case letters, digits and hyphens, starting and ending with a letter or digit"
MAX_ALIASES_PER_USER = 1000
MAX_TARGETS = 10_000  # re-pointings of one alias (each is a row kept forever)
HISTORY_SHOWN = 100


class AliasNotFound(NotFound):
    pass


class BadAliasName(Invalid):
    pass


class AliasTaken(Conflict):
    pass


class NotAliasOwner(Refused):
    pass


@dataclass(frozen=True)
class Target:
    seq: int
    state_id: int
    short_id: str
    pointed_at: datetime
    by: str


@dataclass(frozen=True)
class Alias:
    name: str
    owner: str
    created_at: datetime
    targets: tuple[Target, ...]  # newest first, at most HISTORY_SHOWN
    pointings: int  # how many times it was pointed (the first included)

    @property
    def current(self) -> Target:
        return self.targets[0]


def checked_name(name) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise BadAliasName(f"an alias name is {NAME_RULE}; not {str(name)[:80]!r}")
    return name


class Aliases:
    def __init__(self, database_url: str):
        self.engine = engine_for(database_url)

    def create(self, name: str, owner: str, state_id: int) -> Alias:
        """A new alias ``name`` of ``owner`` pointing at the state; AliasTaken when the name is in use."""
        name = checked_name(name)
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as connection:
                owned = connection.execute(
                    sa.select(sa.func.count()).select_from(AliasRow).where(AliasRow.owner == owner)
                ).scalar_one()
                if owned >= MAX_ALIASES_PER_USER:
                    raise AliasTaken(f"you own {owned} aliases, the most one person may; re-point one of them")
                alias_id = connection.execute(
                    sa.insert(AliasRow).values(name=name, owner=owner, created_at=now).returning(AliasRow.id)
                ).scalar_one()
                connection.execute(
                    sa.insert(AliasTargetRow).values(
                        alias_id=alias_id, seq=1, state_id=state_id, pointed_at=now, by=owner
                    )
                )
        except IntegrityError:
            raise AliasTaken(f"the alias {name!r} is taken; choose another name") from None
        return self.get(name)

    def repoint(self, name: str, state_id: int, by: str, *, site_admin: bool = False) -> Alias:
        """Point ``name`` at another state (its owner, or a site admin); the earlier targets stay listed."""
        alias = self.get(name)
        if by != alias.owner and not site_admin:
            raise NotAliasOwner(f"only {alias.owner}, who owns the alias {name!r}, may re-point it")
        if alias.current.state_id == state_id:
            return alias  # pointing where it points: nothing to record
        if alias.pointings >= MAX_TARGETS:
            raise AliasTaken(f"the alias {name!r} was re-pointed {MAX_TARGETS} times, the most kept; make a new one")
        for attempt in range(3):  # two re-pointings at once: one takes the next number, the other the one after
            try:
                with self.engine.begin() as connection:
                    alias_id, last = connection.execute(
                        sa.select(AliasRow.id, sa.func.max(AliasTargetRow.seq))
                        .join(AliasTargetRow, AliasTargetRow.alias_id == AliasRow.id)
                        .where(AliasRow.name == name)
                        .group_by(AliasRow.id)
                    ).one()
                    connection.execute(
                        sa.insert(AliasTargetRow).values(
                            alias_id=alias_id, seq=last + 1, state_id=state_id, pointed_at=datetime.now(UTC), by=by
                        )
                    )
                break
            except IntegrityError:
                if attempt == 2:
                    raise AliasTaken(f"the alias {name!r} is being re-pointed by others at once; try again") from None
        return self.get(name)

    def get(self, name: str) -> Alias:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise AliasNotFound(f"no alias named {str(name)[:80]!r}")
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(AliasRow).where(AliasRow.name == name)).first()
            if row is None:
                raise AliasNotFound(f"no alias named {name!r}")
            pointings = connection.execute(
                sa.select(sa.func.count()).select_from(AliasTargetRow).where(AliasTargetRow.alias_id == row.id)
            ).scalar_one()
            targets = connection.execute(
                sa.select(AliasTargetRow, StateRow.short_id)
                .join(StateRow, StateRow.id == AliasTargetRow.state_id)
                .where(AliasTargetRow.alias_id == row.id)
                .order_by(AliasTargetRow.seq.desc())
                .limit(HISTORY_SHOWN)
            ).all()
        if not targets:  # its current target's state is gone (removed with its rows): as if no alias
            raise AliasNotFound(f"no alias named {name!r}")
        return Alias(
            row.name,
            row.owner,
            as_utc(row.created_at),
            tuple(Target(t.seq, t.state_id, t.short_id, as_utc(t.pointed_at), t.by) for t in targets),
            pointings,
        )

    def of_owner(self, owner: str) -> list[Alias]:
        """The aliases ``owner`` owns, by name: three queries however many there are (their rows, how
        often each was pointed, and each one's newest HISTORY_SHOWN targets)."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(AliasRow).where(AliasRow.owner == owner).order_by(AliasRow.name)).all()
            if not rows:
                return []
            ids = [row.id for row in rows]
            pointings = dict(
                connection.execute(
                    sa.select(AliasTargetRow.alias_id, sa.func.count())
                    .where(AliasTargetRow.alias_id.in_(ids))
                    .group_by(AliasTargetRow.alias_id)
                ).all()
            )
            rank = (
                sa.func.row_number()
                .over(partition_by=AliasTargetRow.alias_id, order_by=AliasTargetRow.seq.desc())
                .label("rank")
            )
            ranked = (
                sa.select(AliasTargetRow, StateRow.short_id, rank)
                .join(StateRow, StateRow.id == AliasTargetRow.state_id)
                .where(AliasTargetRow.alias_id.in_(ids))
                .subquery()
            )
            targets: dict[int, list[Target]] = {}
            for t in connection.execute(
                sa.select(ranked).where(ranked.c.rank <= HISTORY_SHOWN).order_by(ranked.c.alias_id, ranked.c.seq.desc())
            ):
                targets.setdefault(t.alias_id, []).append(
                    Target(t.seq, t.state_id, t.short_id, as_utc(t.pointed_at), t.by)
                )
        return [
            Alias(row.name, row.owner, as_utc(row.created_at), tuple(targets[row.id]), pointings.get(row.id, 0))
            for row in rows
            if targets.get(row.id)  # a target's state gone (removed with its rows): as if no alias
        ]
