"""The query language of the cell-type search.

A query says which cell-type tags to find, e.g. "every L2/3 pyramidal cell in these volumes"::

    L2/3 pyramidal dataset:mouse_v1 OR "L5 ET" ds:human_l23 -user:bot t:2026-11-24T10:00:00Z

Clauses
    ``L2/3 pyramidal``
        Bare words are a cell-type term. Consecutive bare words join into one phrase, so
        ``L2/3 pyramidal`` is the single term "L2/3 pyramidal" (runs of spaces between the words
        count as one). Anything that is not a bare word — a ``key:value``, a quoted phrase, an
        operator, a ``-`` prefixed word — ends the phrase.
    ``"L5 ET"``
        A double-quoted phrase is a cell-type term, taken literally (only the spaces at its ends
        are dropped). Quote a term that would otherwise be read as something else: ``"or"``,
        ``"-like"``, ``"L5:ET"`` (a bare word starting ``letters:`` is read as a key).
    ``type:X``, ``type:"X Y"``
        An explicit cell-type term.
    ``dataset:NAME`` (also ``ds:NAME``)
        Tags in that dataset.
    ``user:NAME``
        Tags made by that user.
    ``note:WORD``, ``note:"some words"``
        Tags whose note contains that text (case-insensitive substring).
    ``t:MOMENT``
        Search as of a moment: ISO 8601 (``2026-11-24T10:00:00Z``, with an offset, or naive
        meaning UTC) or Unix seconds (``1764000000``). It applies to the whole query: at most
        one ``t:``, anywhere in the query; it is not part of the AND/OR structure and cannot
        be negated.

    Keys are case-insensitive (``DATASET:demo``), values keep their case. A value is either
    everything up to the next space or a double-quoted string directly after the colon
    (``note:"two words"``); an empty value (``dataset:``, ``note:""``) is an error. There are
    no other keys — in particular the page size is an HTTP parameter, not part of the query.
    Double quotes cannot appear inside a value.

Combining
    Clauses next to each other are ANDed; ``AND`` may also be written out. ``OR`` has lower
    precedence than AND. ``NOT`` before a clause, or ``-`` directly in front of it
    (``-dataset:demo``, ``-"L5 ET"``, ``NOT astrocyte``), negates that one clause; before bare
    words it negates the whole phrase (``NOT L2/3 pyramidal``, ``-L2/3 pyramidal``). The
    operators are recognised in any case (``or``, ``Or``), but only as whole words on their
    own; quote a term literally named like an operator (``"or"``). There are no parentheses:
    ``a OR b c`` means ``a OR (b AND c)``, and ``NOT a OR b`` means ``(NOT a) OR b``.

Errors
    :class:`QueryError` (a ``ValueError``) with a message quoting the offending part and its
    column: an empty query, a query of only ``t:``, one longer than 1,000 characters, an
    unknown key (the message lists the known ones), an empty value, an unterminated quote,
    text glued to a closing quote, a stray ``"`` inside a word, a lone or doubled ``-``,
    AND/OR with nothing on one side, NOT with nothing after it, a negated operator
    (``-OR``), a double negation (``NOT -a``), ``t:`` negated, twice, or not a valid moment.

The result, :class:`Query`, holds the clauses in disjunctive normal form: an OR of
AND-groups, plus the moment of ``t:``. :func:`to_text` renders a query back into canonical
text that :func:`parse` turns into an equal query (equality ignores the original text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from segmentation.timestamps import InvalidTimestamp, parse_timestamp

from ..errors import Invalid

__all__ = ["Clause", "Query", "QueryError", "KINDS", "MAX_LENGTH", "parse", "to_text"]

MAX_LENGTH = 1000
KINDS = ("type", "dataset", "user", "note")
# every key users may write, to the clause kind it means ("t" is handled apart)
_KEYS = {"type": "type", "dataset": "dataset", "ds": "dataset", "user": "user", "note": "note", "t": "t"}
_KNOWN_KEYS = "type, dataset (or ds), user, note, t"
_OPERATORS = frozenset({"AND", "OR", "NOT"})

_KEY = re.compile(r"([A-Za-z][A-Za-z0-9_]*):")
_BARE_VALUE = re.compile(r'[^\s"]+')
_NON_SPACE = re.compile(r"\S*")


class QueryError(Invalid):
    """The query text is not valid; the message says why, quoting the offending part."""


@dataclass(frozen=True)
class Clause:
    kind: str  # "type" | "dataset" | "user" | "note"
    value: str
    negated: bool = False


@dataclass(frozen=True)
class Query:
    groups: tuple[tuple[Clause, ...], ...]  # OR of AND-groups (disjunctive normal form)
    at: datetime | None  # from t:, timezone-aware UTC
    text: str = field(default="", compare=False)  # the original query; not part of equality

    def terms(self) -> set[str]:
        """Every cell-type value used, negated or not (to check against the vocabulary)."""
        return {clause.value for group in self.groups for clause in group if clause.kind == "type"}

    def datasets(self) -> set[str]:
        """The datasets named by non-negated ``dataset:`` clauses."""
        return {
            clause.value for group in self.groups for clause in group if clause.kind == "dataset" and not clause.negated
        }


def _show(part: str, limit: int = 40) -> str:
    part = part if len(part) <= limit else part[: limit - 1] + "…"
    return f"'{part}'"


def _word_at(text: str, pos: int) -> str:
    """The run of non-space characters starting at ``pos`` (for error messages)."""
    return _NON_SPACE.match(text, pos).group()


# --- tokenizing -------------------------------------------------------------------------
# One regex reads a whole well-formed token (and the spaces after it); when it does not match,
# _syntax_error() looks at the spot again, slowly, to say what is wrong.
_TOKEN = re.compile(
    r"""
    (?:(?P<neg>-))?+                                   # '-' prefix (never given back)
    (?:
        (?P<key>[A-Za-z][A-Za-z0-9_]*):(?:"(?P<kq>[^"]*)"|(?P<kv>[^\s"]+))?
      | "(?P<q>[^"]*)"
      | (?P<word>[^\s"\-][^\s"]*)
    )
    (?=\s|\Z)\s*
    """,
    re.VERBOSE,
)


def _syntax_error(text: str, pos: int) -> QueryError:
    """Why no token can be read at ``pos``."""
    start = pos
    n = len(text)
    if text[pos] == "-":
        pos += 1
        if pos >= n or text[pos].isspace():
            return QueryError(
                f"'-' at column {start + 1} must be directly followed by a clause"
                " (write -dataset:demo or -astrocyte; quote a term that starts with '-')"
            )
        if text[pos] == "-":
            return QueryError(
                f"{_show(_word_at(text, start))} at column {start + 1} starts with more than one '-'"
                " (one '-' negates; quote a term that starts with '-')"
            )
    key = _KEY.match(text, pos)
    if key:
        pos = key.end()
    if pos < n and text[pos] == '"':
        end = text.find('"', pos + 1)
        if end < 0:
            return QueryError(f"unterminated quote at column {pos + 1}: {_show(text[start:])}")
        glued = text[start : _NON_SPACE.match(text, end + 1).end()]
        return QueryError(
            f"text directly after a closing quote at column {end + 2}: {_show(glued)} (put a space after the quote)"
        )
    quote = text.find('"', pos)
    word = _word_at(text, start)
    if 0 <= quote < start + len(word):
        hint = f'quote the whole value: {key.group(1)}:"…"' if key else 'quote whole terms: "L5 ET"'
        return QueryError(f"stray quote at column {quote + 1} in {_show(word)} ({hint})")
    return QueryError(f"cannot read {_show(word)} at column {start + 1}")  # pragma: no cover - safety net


def _tokens(text: str):
    """Yield ``(kind, start, end, payload)``; consecutive bare words come joined into one type clause.

    kinds: "op" (payload "AND"/"OR"/"NOT"), "clause" (a Clause), "time" (the t: value).
    """
    n = len(text)
    pos = len(text) - len(text.lstrip())
    phrase: list[str] = []
    phrase_start = phrase_end = 0
    phrase_negated = False
    match_token = _TOKEN.match
    while pos < n:
        match = match_token(text, pos)
        if match is None:
            raise _syntax_error(text, pos)
        start, pos = pos, match.end()
        negated, key, quoted_value, bare_value, quoted, word = match.groups()
        if word is not None:
            word_end = start + len(word) + (1 if negated else 0)
            if word.upper() in _OPERATORS:
                if negated:
                    raise QueryError(
                        f"{_show(text[start:word_end])} at column {start + 1}: '-' must be followed"
                        f" by a clause, not the operator {word.upper()}"
                        f' (quote a term literally named {word}: "{word}")'
                    )
                if phrase:
                    yield "clause", phrase_start, phrase_end, Clause("type", " ".join(phrase), phrase_negated)
                    phrase = []
                yield "op", start, word_end, word.upper()
                continue
            if negated or not phrase:
                if phrase:
                    yield "clause", phrase_start, phrase_end, Clause("type", " ".join(phrase), phrase_negated)
                    phrase = []
                phrase_start, phrase_negated = start, bool(negated)
            phrase.append(word)
            phrase_end = word_end
            continue
        if phrase:
            yield "clause", phrase_start, phrase_end, Clause("type", " ".join(phrase), phrase_negated)
            phrase = []
        if quoted is not None:
            end = match.end("q") + 1
            value = quoted.strip()
            if not value:
                raise QueryError(f"empty quoted term {_show(text[start:end])} at column {start + 1}")
            yield "clause", start, end, Clause("type", value, bool(negated))
            continue
        if bare_value is not None:
            end = match.end("kv")
        elif quoted_value is not None:
            end = match.end("kq") + 1
        else:
            end = match.end("key") + 1
        source = text[start:end]
        kind = _KEYS.get(key.lower())
        if kind is None:
            if key.lower() == "limit":
                hint = "the page size is an HTTP parameter, not part of the query"
            else:
                hint = "quote a term that contains ':'"
            raise QueryError(
                f"unknown key {_show(key)} in {_show(source)} at column {start + 1}; known keys: {_KNOWN_KEYS} ({hint})"
            )
        value = bare_value if bare_value is not None else (quoted_value or "").strip()
        if not value:
            raise QueryError(
                f"{_show(source)} at column {start + 1} has no value"
                f' (write {key}:WORD or {key}:"some words", with no space after the colon)'
            )
        if kind == "t":
            if negated:
                raise QueryError(f"t: cannot be negated: {_show(source)} at column {start + 1}")
            yield "time", start, end, value
        else:
            yield "clause", start, end, Clause(kind, value, bool(negated))
    if phrase:
        yield "clause", phrase_start, phrase_end, Clause("type", " ".join(phrase), phrase_negated)


# --- parsing ----------------------------------------------------------------------------


def parse(text: str) -> Query:
    """Parse a cell-type search query; raises :class:`QueryError` with a clear message."""
    if not isinstance(text, str):
        raise QueryError(f"the query must be text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise QueryError(f"query too long ({len(text)} characters; at most {MAX_LENGTH})")
    if not text.strip():
        raise QueryError("empty query: name a cell type, e.g. 'L2/3 pyramidal dataset:demo'")

    groups: list[tuple[Clause, ...]] = []
    group: list[Clause] = []
    at: datetime | None = None
    time_source: str | None = None
    pending_not: int | None = None  # start of a NOT waiting for its clause
    pending_op: tuple[int, str] | None = None  # (start, source) of an AND/OR waiting for its right side

    for kind, start, end, payload in _tokens(text):
        if kind == "clause":
            if pending_not is not None:
                if payload.negated:
                    raise QueryError(
                        f"'NOT {text[start:end]}' at column {pending_not + 1} negates twice; drop the NOT or the '-'"
                    )
                payload = Clause(payload.kind, payload.value, True)
                pending_not = None
            group.append(payload)
            pending_op = None
        elif kind == "time":
            source = text[start:end]
            if pending_not is not None:
                raise QueryError(f"t: cannot be negated: 'NOT {source}' at column {pending_not + 1}")
            if time_source is not None:
                raise QueryError(
                    f"more than one t: ({_show(time_source)} and {_show(source)}); a query has at most one moment"
                )
            try:
                at = parse_timestamp(payload)
            except InvalidTimestamp as error:
                raise QueryError(str(error)) from None
            time_source = source
        elif payload == "NOT":
            if pending_not is not None:
                raise QueryError(
                    f"'NOT NOT' at column {pending_not + 1}: NOT must be followed by a clause, not another NOT"
                )
            pending_not = start
        else:  # AND / OR
            source = text[start:end]
            if pending_not is not None:
                raise QueryError(
                    f"{_show(text[pending_not : pending_not + 3])} at column {pending_not + 1} must be followed"
                    f" by a clause, not {_show(source)}"
                )
            if pending_op is not None:
                raise QueryError(
                    f"{_show(source)} at column {start + 1} directly follows {_show(pending_op[1])}"
                    " with no clause between them"
                )
            if not group:
                raise QueryError(f"{_show(source)} at column {start + 1} has no clause before it")
            if payload == "OR":
                groups.append(tuple(group))
                group = []
            pending_op = (start, source)

    if pending_not is not None:
        raise QueryError(
            f"{_show(text[pending_not : pending_not + 3])} at column {pending_not + 1} has no clause after it"
        )
    if pending_op is not None:
        raise QueryError(f"{_show(pending_op[1])} at column {pending_op[0] + 1} has no clause after it")
    if group:
        groups.append(tuple(group))
    if not groups:
        raise QueryError(
            f"the query has no clauses besides {_show(time_source or text.strip())};"
            " name a cell type, dataset, user or note"
        )
    return Query(groups=tuple(groups), at=at, text=text)


# --- rendering --------------------------------------------------------------------------


def _check_value(clause: Clause) -> str:
    value = clause.value
    if not isinstance(value, str) or not value or value != value.strip() or '"' in value:
        raise QueryError(
            f"cannot render {clause.kind} value {value!r}: values must be non-empty, without"
            " double quotes and without spaces at their ends"
        )
    return value


def _render_clause(clause: Clause) -> str:
    if clause.kind not in KINDS:
        raise QueryError(f"cannot render clause kind {clause.kind!r}; known kinds: {', '.join(KINDS)}")
    value = _check_value(clause)
    sign = "-" if clause.negated else ""
    if clause.kind == "type":
        return f'{sign}"{value}"'
    if _BARE_VALUE.fullmatch(value):
        return f"{sign}{clause.kind}:{value}"
    return f'{sign}{clause.kind}:"{value}"'


def _render_moment(at: datetime) -> str:
    if at.tzinfo is None or at.utcoffset() is None:
        raise QueryError(f"cannot render t: {at!r} is not timezone-aware")
    text = at.astimezone(UTC).isoformat()
    return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text


def to_text(query: Query) -> str:
    """Canonical text for ``query``: ``parse(to_text(q)) == q`` (groups and at; text may differ).

    Type terms are always quoted, other values are quoted when they contain spaces, clauses
    of a group are separated by spaces, groups by `` OR ``, and ``t:`` comes last in UTC.
    """
    if not query.groups or not all(query.groups):
        raise QueryError("cannot render a query with no clauses or an empty AND-group")
    text = " OR ".join(" ".join(_render_clause(clause) for clause in group) for group in query.groups)
    if query.at is not None:
        text = f"{text} t:{_render_moment(query.at)}"
    return text
