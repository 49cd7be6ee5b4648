"""No access token in a stored state: states are shared, a token in one would be shared with it.

The check reads the parsed state — every key and string value, in every spelling a browser or
server could decode it to (JSON escapes are gone after parsing; percent-encoding is undone,
however many times it was applied) — not the raw bytes, where ``axl\\u005f…`` or ``axl%5F…``
would pass a byte scan.
"""

from __future__ import annotations

from segmentation.access import TOKEN_PATTERN

from .walk import has_newlines, spellings, strings


def holds_token(state) -> bool:
    """Whether any string or key of ``state``, decoded, contains an access token (``axl_…``)."""
    for text in set(strings(state)):
        if text.isascii() and "%" not in text and "axl_" not in text:
            continue  # no spelling of this text can hold one
        readings = spellings(text) + (spellings(text, drop_newlines=True) if has_newlines(text) else [])
        if any(TOKEN_PATTERN.search(reading) for reading in readings):
            return True
    return False
