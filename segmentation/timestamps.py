"""Parse the moments users name: ISO 8601 strings or Unix seconds."""
from __future__ import annotations

from datetime import datetime, timezone


class InvalidTimestamp(ValueError):
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
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidTimestamp(
            f"timestamp {text!r} is neither Unix seconds nor ISO 8601 (e.g. 2026-11-24T10:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
