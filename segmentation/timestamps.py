"""Parse the moments users name: ISO 8601 strings or Unix seconds.

Only moments from 1970 to the year 3000 are accepted: earlier or later ones mean nothing for a
dataset, and at the ends of the calendar (year 1, year 9999 with a negative offset) converting
to UTC or to Unix seconds overflows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .errors import Invalid

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


class InvalidTimestamp(Invalid):
    pass


def parse_timestamp(text: str) -> datetime:
    """``1764000000``, ``1764000000.5``, ``2026-11-24T10:00:00Z`` or with an offset; naive means UTC."""
    text = (text or "").strip()
    if not text:
        raise InvalidTimestamp("empty timestamp")
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not (0 <= seconds < 32503680000):  # before year 3000
            raise InvalidTimestamp(f"timestamp {text!r} is out of range")
        return datetime.fromtimestamp(seconds, tz=UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidTimestamp(
            f"timestamp {text!r} is neither Unix seconds nor ISO 8601 (e.g. 2026-11-24T10:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment < LATEST:
        raise InvalidTimestamp(f"timestamp {text!r} is out of range (1970 to 2999)")
    return moment


def as_utc(moment: datetime) -> datetime:
    """A moment read from the database as an aware UTC datetime (SQLite hands back naive ones)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
