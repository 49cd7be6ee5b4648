"""Every string of a parsed state, and the spellings a URL or a secret may hide behind.

Checks that must not miss anything (which datasets a state names, whether it holds a
token) look at every key and string value, whatever the state's shape: Neuroglancer adds
fields over time and accepts several shapes for old ones. The walk is iterative, so a deep
document cannot exhaust the stack (the codec limits depth too; this does not rely on it).
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote

MAX_DECODE_ROUNDS = 8  # percent-encoding applied this many times over is not worth following further


def strings(document) -> list[str]:
    """Every dict key and string value in ``document``, in document order (a dict's keys before its
    values), without recursion. A list, not a generator: states hold thousands of strings, and the
    loop is the cost."""
    found: list[str] = []
    stack = [document]
    pop, push_all, add, add_all = stack.pop, stack.extend, found.append, found.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str:
            add(item)
        elif kind is dict:
            add_all(map(str, item))
            push_all(reversed(item.values()))
        elif kind is list or kind is tuple:
            push_all(reversed(item))
    return found


def spellings(text: str, drop_newlines: bool = False) -> list[str]:
    """``text`` and what a browser or server could read it as.

    * percent-decoded, again and again until nothing changes (double encoding);
    * NFKC-normalised when not ASCII (full-width letters and colons become ASCII, as host names do);
    * with ``drop_newlines``, ASCII tab, CR and LF removed at each step: a URL parser drops them
      anywhere in a URL (in prose they end one — callers decide which reading to trust for what).

    JSON escapes (``\\u005f``) are gone already: the state was parsed.
    """
    found = [text]
    current = text
    for _ in range(MAX_DECODE_ROUNDS + 1):
        if drop_newlines:
            current = current.replace("\t", "").replace("\r", "").replace("\n", "")
        if not current.isascii():
            current = unicodedata.normalize("NFKC", current)
        if current not in found:
            found.append(current)
        decoded = unquote(current) if "%" in current else current
        if decoded == current:
            break
        current = decoded
    return found


def has_newlines(text: str) -> bool:
    """Whether ``text`` (or a percent-decoding of it) may hold a tab, CR or LF a URL parser would drop."""
    return "\t" in text or "\r" in text or "\n" in text or "%0" in text
