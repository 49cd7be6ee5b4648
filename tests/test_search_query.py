"""The cell-type search query language: segmentation.celltypes.query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmentation.celltypes.query import KINDS, Clause, Query, QueryError, parse, to_text


def T(value, negated=False):
    return Clause("type", value, negated)


def D(value, negated=False):
    return Clause("dataset", value, negated)


def U(value, negated=False):
    return Clause("user", value, negated)


def N(value, negated=False):
    return Clause("note", value, negated)


def groups(text):
    return parse(text).groups


# --- clauses ----------------------------------------------------------------------------


def test_phrase_joining():
    assert groups("L2/3 pyramidal dataset:demo") == ((T("L2/3 pyramidal"), D("demo")),)
    assert groups("dataset:demo L2/3 pyramidal") == ((D("demo"), T("L2/3 pyramidal")),)
    # runs of spaces (any whitespace) between bare words count as one
    assert groups("  L2/3\t  pyramidal  ") == ((T("L2/3 pyramidal"),),)
    # anything that is not a bare word ends the phrase
    assert groups('basket "L5 ET" chandelier cell') == ((T("basket"), T("L5 ET"), T("chandelier cell")),)
    assert groups("basket user:ann chandelier") == ((T("basket"), U("ann"), T("chandelier")),)
    assert groups("basket AND chandelier") == ((T("basket"), T("chandelier")),)
    # a '-' prefixed word starts a new, negated phrase
    assert groups("astrocyte -microglia like") == ((T("astrocyte"), T("microglia like", True)),)
    # a hyphen inside a word is just a character
    assert groups("L5 ET-like") == ((T("L5 ET-like"),),)


def test_quoted_and_explicit_type():
    assert groups('"L5 ET"') == ((T("L5 ET"),),)
    assert groups('type:"L5 ET"') == ((T("L5 ET"),),)
    assert groups("type:astrocyte") == ((T("astrocyte"),),)
    # quoted text is literal: inner spaces kept, ends stripped, operators and keys are just text
    assert groups('"  L5   ET "') == ((T("L5   ET"),),)
    assert groups('"or"') == ((T("or"),),)
    assert groups('"NOT" OR "and"') == ((T("NOT"),), (T("and"),))
    assert groups('"a:b" "-like"') == ((T("a:b"), T("-like")),)
    # quoted phrases and bare phrases are separate terms
    assert groups('L2/3 "pyramidal"') == ((T("L2/3"), T("pyramidal")),)


def test_keys_and_values():
    query = parse('dataset:mouse_v1 ds:human user:Ann note:"needs Review" note:soma')
    assert query.groups == ((D("mouse_v1"), D("human"), U("Ann"), N("needs Review"), N("soma")),)
    # values run to the next space and may contain ':' '-' '/' and unicode
    assert groups("dataset:-x:y/z user:Jürgen") == ((D("-x:y/z"), U("Jürgen")),)
    assert groups('user:"Ann Lee"') == ((U("Ann Lee"),),)


def test_keys_are_case_insensitive_values_keep_case():
    assert groups("DATASET:Demo Ds:Mouse USER:Ann Note:Soma TYPE:Astro") == (
        (D("Demo"), D("Mouse"), U("Ann"), N("Soma"), T("Astro")),
    )
    assert parse("x T:2026-11-24T10:00:00Z").at == datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_query_methods_and_text():
    query = parse('L2/3 pyramidal dataset:a -dataset:b OR NOT astrocyte ds:c -"L5 ET"')
    assert query.terms() == {"L2/3 pyramidal", "astrocyte", "L5 ET"}  # negated terms too
    assert query.datasets() == {"a", "c"}  # negated datasets not
    assert query.text == 'L2/3 pyramidal dataset:a -dataset:b OR NOT astrocyte ds:c -"L5 ET"'
    assert query.at is None


# --- combination ------------------------------------------------------------------------


def test_and_by_juxtaposition_or_keyword():
    expected = ((T("basket"), D("demo")),)
    assert groups("basket dataset:demo") == expected
    assert groups("basket AND dataset:demo") == expected
    assert groups("basket and dataset:demo") == expected


def test_or_has_lower_precedence_than_and():
    assert groups("a OR b c") == ((T("a"),), (T("b c"),))
    assert groups("a OR b dataset:x") == ((T("a"),), (T("b"), D("x")))
    assert groups("dataset:x a OR dataset:y b") == ((D("x"), T("a")), (D("y"), T("b")))
    assert groups("a AND b OR c") == ((T("a"), T("b")), (T("c"),))
    assert groups("a or b Or c") == ((T("a"),), (T("b"),), (T("c"),))
    assert groups('"a" OR "b" "c"') == ((T("a"),), (T("b"), T("c")))


def test_negation_both_forms():
    assert groups("-dataset:demo") == ((D("demo", True),),)
    assert groups("NOT dataset:demo") == ((D("demo", True),),)
    assert groups("NOT astrocyte") == ((T("astrocyte", True),),)
    assert groups("-astrocyte") == ((T("astrocyte", True),),)
    assert groups('-"L5 ET"') == ((T("L5 ET", True),),)
    assert groups('not type:"L5 ET"') == ((T("L5 ET", True),),)
    assert groups("-user:bot -note:draft") == ((U("bot", True), N("draft", True)),)
    # NOT / '-' before bare words negate the whole phrase
    assert groups("NOT L2/3 pyramidal") == ((T("L2/3 pyramidal", True),),)
    assert groups("-L2/3 pyramidal") == ((T("L2/3 pyramidal", True),),)
    # NOT negates one clause only
    assert groups("NOT a dataset:x OR b") == ((T("a", True), D("x")), (T("b"),))
    assert groups("a NOT b") == ((T("a"), T("b", True)),)
    assert groups("a AND NOT b OR NOT c") == ((T("a"), T("b", True)), (T("c", True),))


def test_t_anywhere():
    moment = datetime(2026, 11, 24, 10, tzinfo=UTC)
    for text in (
        "t:2026-11-24T10:00:00Z basket dataset:x",
        "basket t:2026-11-24T10:00:00Z dataset:x",
        "basket dataset:x t:2026-11-24T10:00:00Z",
        "basket AND t:2026-11-24T10:00:00Z dataset:x",
        "basket dataset:x t:2026-11-24T11:00:00+01:00",
        'basket dataset:x t:"2026-11-24T10:00:00"',  # naive means UTC
        "basket dataset:x t:1795514400",
    ):
        query = parse(text)
        assert query.groups == ((T("basket"), D("x")),), text
        assert query.at == moment, text
        assert query.at.tzinfo is not None and query.at.utcoffset() == timedelta(0), text
    # t: is outside the boolean structure but, like any non-word, it ends a phrase
    query = parse("a OR t:1795514400 b c")
    assert query.groups == ((T("a"),), (T("b c"),))
    assert parse("L2/3 t:1795514400 pyramidal").groups == ((T("L2/3"), T("pyramidal")),)


def test_operator_words_only_as_whole_words():
    assert groups("ORacle ANDrogen notch") == ((T("ORacle ANDrogen notch"),),)


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty query"),
        ("   \t ", "empty query"),
        ("x" * 1001, "query too long (1001 characters; at most 1000)"),
        (
            "basket foo:bar",
            "unknown key 'foo' in 'foo:bar' at column 8; known keys: type, dataset (or ds), user, note, t",
        ),
        ("FOO:bar", "unknown key 'FOO'"),
        ("L5:ET", "unknown key 'L5'"),
        ("basket limit:10", "the page size is an HTTP parameter"),
        ("dataset:", "'dataset:' at column 1 has no value"),
        ("a ds: b", "'ds:' at column 3 has no value"),
        ('note:""', "'note:\"\"' at column 1 has no value"),
        ('note:"  "', "has no value"),
        ("a t:", "'t:' at column 3 has no value"),
        ('""', "empty quoted term '\"\"' at column 1"),
        ('a "abc', "unterminated quote at column 3: '\"abc'"),
        ('note:"abc def', "unterminated quote at column 6: 'note:\"abc def'"),
        ('-"abc', "unterminated quote at column 2"),
        ('"a b"c', "text directly after a closing quote at column 6: '\"a b\"c'"),
        ('note:"a b"c', "text directly after a closing quote at column 11: 'note:\"a b\"c'"),
        ('a"b', "stray quote at column 2 in 'a\"b'"),
        ('dataset:a"b', "stray quote at column 10 in 'dataset:a\"b'"),
        ("a OR", "'OR' at column 3 has no clause after it"),
        ("a or", "'or' at column 3 has no clause after it"),
        ("a AND", "'AND' at column 3 has no clause after it"),
        ("OR a", "'OR' at column 1 has no clause before it"),
        ("AND a", "'AND' at column 1 has no clause before it"),
        ("a OR AND b", "'AND' at column 6 directly follows 'OR' with no clause between them"),
        ("a OR OR b", "'OR' at column 6 directly follows 'OR'"),
        ("a AND OR b", "'OR' at column 7 directly follows 'AND'"),
        ("NOT", "'NOT' at column 1 has no clause after it"),
        ("a not", "'not' at column 3 has no clause after it"),
        ("a NOT t:1795514400", "t: cannot be negated: 'NOT t:1795514400' at column 3"),
        ("NOT OR a", "'NOT' at column 1 must be followed by a clause, not 'OR'"),
        ("NOT NOT a", "'NOT NOT' at column 1"),
        ("NOT -a", "'NOT -a' at column 1 negates twice"),
        ("- a", "'-' at column 1 must be directly followed by a clause"),
        ("a -", "'-' at column 3 must be directly followed by a clause"),
        ("--a", "'--a' at column 1 starts with more than one '-'"),
        ("a -OR b", "'-OR' at column 3: '-' must be followed by a clause, not the operator OR"),
        ("-t:1795514400 a", "t: cannot be negated: '-t:1795514400' at column 1"),
        ("t:1795514400 a t:1795514401", "more than one t: ('t:1795514400' and 't:1795514401')"),
        ("t:1795514400", "the query has no clauses besides 't:1795514400'"),
        ("a t:yesterday", "timestamp 'yesterday' is neither Unix seconds nor ISO 8601"),
        ("a t:99999999999999", "timestamp '99999999999999' is out of range"),
    ],
)
def test_errors(text, message):
    with pytest.raises(QueryError) as error:
        parse(text)
    assert message in str(error.value)
    assert isinstance(error.value, ValueError)


def test_long_messages_are_shortened_and_quote_the_start():
    with pytest.raises(QueryError, match=r"unterminated quote at column 1: '\"aaaa") as error:
        parse('"' + "a" * 200)
    assert len(str(error.value)) < 120


def test_exactly_1000_characters_is_allowed():
    text = ("ab " * 400)[:1000]
    assert len(text) == 1000
    assert parse(text).groups == ((T(text),),)


def test_parses_in_linear_work():
    """Parsing the longest queries allowed takes work in proportion to their length. Counted in Python
    steps, not seconds, so that a busy machine cannot fail it (timings belong in bench/): today about
    3–11 steps per character; anything quadratic would take hundreds per character at 1,000."""
    import sys

    texts = [
        " ".join(['L2/3 pyramidal dataset:demo OR -user:bob note:"x y" NOT "L5 ET"'] * 20)[:1000],
        ("a OR " * 200)[:999] + "b",
        "-a " * 333,
    ]
    for text in texts:
        steps = 0

        def count(frame, event, arg):
            nonlocal steps
            steps += 1
            return count

        sys.settrace(count)
        try:
            parse(text)
        finally:
            sys.settrace(None)
        assert steps < 30 * len(text), (text[:40], steps)


# --- rendering --------------------------------------------------------------------------


def test_to_text_examples():
    query = parse('L2/3 pyramidal ds:demo -user:bot note:"needs review" OR NOT astrocyte t:1795514400')
    assert to_text(query) == (
        '"L2/3 pyramidal" dataset:demo -user:bot note:"needs review" OR -"astrocyte" t:2026-11-24T10:00:00Z'
    )
    assert parse(to_text(query)) == query
    at = datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    rendered = to_text(Query(groups=((T("or"),),), at=at))
    assert rendered == '"or" t:2026-11-24T08:00:00.123456Z'
    assert parse(rendered).at == at


@pytest.mark.parametrize(
    "query",
    [
        Query(groups=(), at=None),
        Query(groups=((),), at=None),
        Query(groups=((T('a"b'),),), at=None),
        Query(groups=((T(" a"),),), at=None),
        Query(groups=((D(""),),), at=None),
        Query(groups=((Clause("size", "3"),),), at=None),
        Query(groups=((T("a"),),), at=datetime(2026, 1, 1)),
    ],
)
def test_to_text_refuses_what_it_cannot_render(query):
    with pytest.raises(QueryError):
        to_text(query)


def test_query_equality_ignores_text():
    assert parse("a  b") == parse('"a b"')
    assert parse("a b").text != parse('"a b"').text


_SAFE_CHARS = st.one_of(
    st.characters(categories=("L", "Nd")),  # unicode letters and digits
    st.sampled_from(" /-_.:'+()"),
)
_VALUES = st.text(_SAFE_CHARS, min_size=1, max_size=20).map(lambda value: value.strip()).filter(bool)
_CLAUSES = st.builds(Clause, kind=st.sampled_from(KINDS), value=_VALUES, negated=st.booleans())
_QUERIES = st.builds(
    Query,
    groups=st.lists(st.lists(_CLAUSES, min_size=1, max_size=4).map(tuple), min_size=1, max_size=4).map(tuple),
    at=st.none()
    | st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)),
)


@settings(max_examples=300, deadline=None)
@given(_QUERIES)
def test_to_text_round_trips(query):
    text = to_text(query)
    parsed = parse(text)
    assert parsed.groups == query.groups
    assert parsed.at == query.at
    assert parsed == query
    assert to_text(parsed) == text


_PIECES = st.sampled_from(list(' "-:aAbT/éx1\t') + [" OR ", " and ", " NOT ", " t:1795514400 ", " ds:", " note:"])


@settings(max_examples=500, deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join))
def test_any_text_parses_or_raises_query_error(text):
    try:
        query = parse(text)
    except QueryError as error:
        assert str(error)
        return
    assert query.groups and all(query.groups)
    assert parse(to_text(query)) == query
