"""The PubMed query parser: precedence, tags, truncation, phrases, typed errors with positions, and a
property test that any text gives an AST or a QuerySyntaxError, nothing else, in bounded time."""

from __future__ import annotations

import pickle
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepretrieval.errors import DeepRetrievalError
from deepretrieval.search.pubmed_syntax import (
    MAX_DEPTH,
    MAX_QUERY_CHARS,
    And,
    Expansions,
    Not,
    Or,
    Phrase,
    QuerySyntaxError,
    Term,
    parse,
    render,
)

a, b, c, d = (Term(x) for x in "abcd")

# -- precedence: PubMed reads left to right --------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a OR b AND c", And((Or((a, b)), c))),
        ("a AND b OR c", Or((And((a, b)), c))),
        ("a NOT b OR c", Or((Not((a, b)), c))),
        ("a OR b NOT c", Not((Or((a, b)), c))),
        ("a OR (b AND c)", Or((a, And((b, c))))),
        ("a NOT (b OR c)", Not((a, Or((b, c))))),
        ("a NOT b NOT c", Not((a, b, c))),
        ("a NOT (b NOT c)", Not((a, Not((b, c))))),
        ("a AND b AND c AND d", And((a, b, c, d))),
        ("(a AND b) AND (c AND d)", And((a, b, c, d))),
        ("a OR b OR c", Or((a, b, c))),
        ("((a))", a),
        ("(a OR b) AND (c OR d)", And((Or((a, b)), Or((c, d))))),
    ],
)
def test_left_to_right_precedence(query, expected):
    assert parse(query) == expected


def test_implicit_and_between_adjacent_terms_phrases_and_groups():
    assert parse("a b") == And((a, b))
    assert parse('a "b c" (c OR d)') == And((a, Phrase(("b", "c")), Or((c, d))))
    assert parse("a OR b c") == And((Or((a, b)), c))  # implicit AND is an AND, read in turn
    assert parse("a(b)") == And((a, b))


def test_only_uppercase_operators_are_operators():
    assert parse("a and b") == And((a, Term("and"), b))
    assert parse("a or not b") == And((a, Term("or"), Term("not"), b))
    assert parse("a And b") == And((a, Term("And"), b))
    assert parse("ANDROGEN") == Term("ANDROGEN")
    assert parse('"a AND b"') == Phrase(("a", "AND", "b"))


# -- tags ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "tag"),
    [
        ("[tiab]", "tiab"),
        ("[TIAB]", "tiab"),
        ("[Title/Abstract]", "tiab"),
        ("[ti]", "ti"),
        ("[title]", "ti"),
        ("[ab]", "ab"),
        ("[mh]", "mh"),
        ("[mesh]", "mh"),
        ("[MeSH Terms]", "mh"),
        ("[mesh  terms]", "mh"),
        ("[mh:noexp]", "mh:noexp"),
        ("[MeSH Terms:noexp]", "mh:noexp"),
        ("[majr]", "majr"),
        ("[MeSH Major Topic]", "majr"),
        ("[majr:noexp]", "majr:noexp"),
        ("[sh]", "sh"),
        ("[Subheading]", "sh"),
        ("[ot]", "ot"),
        ("[Other Term]", "ot"),
        ("[au]", "au"),
        ("[Author]", "au"),
        ("[la]", "la"),
        ("[Language]", "la"),
        ("[ta]", "ta"),
        ("[Journal]", "ta"),
        ("[pt]", "pt"),
        ("[Publication Type]", "pt"),
        ("[all]", "all"),
        ("[All Fields]", "all"),
        ("[tw]", "all"),
        ("[cond]", "cond"),
        ("[intr]", "intr"),
        ("[ tiab ]", "tiab"),
    ],
)
def test_field_tags_are_case_insensitive_and_map_to_canonical_names(written, tag):
    assert parse(f"diabetes{written}") == Term("diabetes", tag)
    assert parse(f"diabetes {written}") == Term("diabetes", tag)
    assert parse(f'"heart attack"{written}') == Phrase(("heart", "attack"), tag)


def test_a_tag_binds_the_unquoted_words_before_it_as_a_phrase():
    """PubMed Help, 'Search Field Descriptions and Tags': "randomized controlled trial[pt]" is the phrase in
    that field (as ``"randomized controlled trial"[pt]``), not ``randomized AND controlled AND trial[pt]``.
    The run of words goes back to the previous operator, parenthesis, quoted phrase, tagged or truncated word."""
    rct = Phrase(("randomized", "controlled", "trial"), "pt")
    assert parse("randomized controlled trial[pt]") == rct
    assert parse('"randomized controlled trial"[pt]') == rct
    assert parse("a b[ti]") == Phrase(("a", "b"), "ti")
    assert parse("a AND b c[ti] d") == And((a, Phrase(("b", "c"), "ti"), d))
    assert parse("(a) b c[ti]") == And((a, Phrase(("b", "c"), "ti")))
    assert parse('"a b" c d[ti]') == And((Phrase(("a", "b")), Phrase(("c", "d"), "ti")))
    assert parse("a[ab] b c[ti]") == And((Term("a", "ab"), Phrase(("b", "c"), "ti")))
    assert parse("diabet* heart attack*[tiab]") == And(
        (Term("diabet", None, True), Phrase(("heart", "attack"), "tiab", True))
    )
    assert parse("a[ti] OR b") == Or((Term("a", "ti"), b))
    assert parse('"a b"[mh] c') == And((Phrase(("a", "b"), "mh"), c))


# -- truncation and phrases -------------------------------------------------------------------------------


def test_truncation_marks_a_prefix_on_a_word_or_a_phrases_last_word():
    assert parse("diabet*") == Term("diabet", None, True)
    assert parse("diabet*[tiab]") == Term("diabet", "tiab", True)
    assert parse('"heart attack*"') == Phrase(("heart", "attack"), None, True)
    assert parse("covid-2019*") == Term("covid-2019", None, True)


def test_phrases_keep_their_written_words():
    assert parse('"  Type 2   diabetes "') == Phrase(("Type", "2", "diabetes"))
    assert parse('"heart - attack"') == Phrase(("heart", "-", "attack"))
    assert parse('"(a OR b)"') == Phrase(("(a", "OR", "b)"))


# -- errors, with positions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        ("", 0, "empty query"),
        ("   ", 0, "empty query"),
        ("()", 0, "empty parentheses"),
        ("a AND ()", 6, "empty parentheses"),
        ("(a", 0, "never closed"),
        ("a OR (b AND (c)", 5, "never closed"),
        ("a)", 1, "without '('"),
        ("a AND", 2, "needs a term after"),
        ("(a OR) b", 3, "needs a term after"),
        ("AND a", 0, "needs a term before"),
        ("a (NOT b)", 3, "needs a term before"),
        ("a AND OR b", 6, "no term between"),
        ('""', 0, "empty phrase"),
        ('a "  "', 2, "empty phrase"),
        ('a "b', 2, "unclosed quote"),
        ("*", 0, "at least 4"),
        ("dia*", 3, "at least 4"),
        ("covid-19*", 8, "at least 4"),
        ('"heart att*"', 10, "at least 4"),
        ("dia*betes", 3, "only once, at the end"),
        ("diabetes**", 8, "only once, at the end"),
        ('"heart* attack"', 6, "last word"),
        ("-", 0, "no letter or digit"),
        ("a & b", 2, "no letter or digit"),
        ('"- -"', 0, "no letter or digit"),
        ("a[xx]", 1, "unknown field tag [xx]"),
        ("a[1au]", 1, "unknown field tag [1au]"),
        ("a[tiab:~x]", 1, "unknown field tag [tiab:~x]"),
        ("a[mh:~2]", 1, "unknown field tag [mh:~2]"),
        ("a[tiab:~31]", 1, "at most ~30 words apart"),
        ("a[tiab:~2]", 1, "two or more words"),
        ('"heart attack*"[tiab:~2]', 15, "no truncation"),
        ('"a b c d e"[tiab:~2]', 11, "at most 4 words"),
        ("2015*[dp]", 5, "no truncation"),
        ("2015/13[dp]", 0, "no such month"),
        ("2015/02/30[dp]", 0, "no such day"),
        ("15[dp]", 0, "write YYYY"),
        ("2010:2015:2020[dp]", 0, "write YYYY"),
        ("spring 2015[dp]", 0, "write YYYY"),
        ("aspirin/tu[mh]", 0, "qualifier abbreviations are not supported"),
        ("a/b/c d[mh]", 0, "one qualifier per heading"),
        ("[ti]", 0, "must follow a word"),
        ("(a)[ti]", 3, "must follow a word"),
        ("a AND [ti]", 6, "must follow a word"),
        ("a[ti][ab]", 5, "one field tag"),
        ("a[ti", 1, "unclosed field tag"),
        ("a]", 1, "']' without '['"),
        ("a\x00b", 1, "control character U+0000"),
        ("a \x1b[31m", 2, "control character U+001B"),
        ("ok \ud800", 3, "lone surrogate"),
    ],
)
def test_errors_say_what_and_where(query, position, message):
    with pytest.raises(QuerySyntaxError) as caught:
        parse(query)
    assert caught.value.position == position
    assert message in caught.value.message
    assert f"at character {position}" in str(caught.value)


def test_the_error_is_a_deepretrieval_error_and_pickles():
    error = QuerySyntaxError("empty query", 3)
    assert isinstance(error, DeepRetrievalError)
    again = pickle.loads(pickle.dumps(error))
    assert (again.message, again.position, str(again)) == (error.message, error.position, str(error))


def test_tabs_and_newlines_are_blanks():
    assert parse("a\tAND\nb\r\n") == And((a, b))


def test_length_is_capped():
    parse("a " * (MAX_QUERY_CHARS // 2))
    with pytest.raises(QuerySyntaxError, match="too long") as caught:
        parse("a" * (MAX_QUERY_CHARS + 1))
    assert caught.value.position == MAX_QUERY_CHARS
    with pytest.raises(QuerySyntaxError, match="too long"):
        parse("x" * 10_000)


def test_nesting_is_capped_but_redundant_parentheses_are_free():
    assert parse("(" * 1_900 + "a" + ")" * 1_900) == a
    assert parse("(" * 1_000 + "a AND b" + ")" * 1_000) == And((a, b))
    alternating = " ".join(f"w{i} {'OR' if i % 2 else 'AND'}" for i in range(MAX_DEPTH + 5)) + " end"
    with pytest.raises(QuerySyntaxError, match="nested too deeply"):
        parse(alternating)
    nested = "a " + "".join(f"OR (b{i} AND (c{i} " for i in range(MAX_DEPTH)) + "))" * MAX_DEPTH
    with pytest.raises(QuerySyntaxError, match="nested too deeply"):
        parse(nested)


def test_expansions_count_every_field_and_occurrence_and_refuse_past_the_cap():
    lookups: list[tuple[str, str, int]] = []
    vocabulary = {("ti", "cardi"): 3, ("ab", "cardi"): 5, ("ab", "hepat"): 2}

    def terms(field: str, prefix: str, limit: int) -> int:
        lookups.append((field, prefix, limit))
        return min(vocabulary.get((field, prefix), 0), limit)

    budget = Expansions(terms, cap=20)
    for field in ("ti", "ab"):
        budget.spend(field, "cardi", 0, 0)  # cardi* on [tiab]: 3 + 5
    budget.spend("ab", "cardi", 0, 10)  # again: tantivy expands it again
    budget.spend("ab", "hepat", 2, 20)  # "liver cell hepat*": its two other words count as tantivy counts them
    assert budget.used == 3 + 5 + 5 + (2 + 2)
    assert lookups == [("ti", "cardi", 21), ("ab", "cardi", 21), ("ab", "hepat", 21)]  # each looked up once
    with pytest.raises(QuerySyntaxError, match="more than 20 index words") as caught:
        budget.spend("ab", "cardi", 0, 33)
    assert caught.value.position == 33


def test_not_text_is_a_syntax_error():
    with pytest.raises(QuerySyntaxError):
        parse(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "query",
    [
        "(" * MAX_QUERY_CHARS,
        ")" * MAX_QUERY_CHARS,
        '"' * MAX_QUERY_CHARS,
        "[" * MAX_QUERY_CHARS,
        "a OR " * (MAX_QUERY_CHARS // 5 - 1) + "b",
        "a " * (MAX_QUERY_CHARS // 2),
        "diabetes* " * (MAX_QUERY_CHARS // 10),
        '"a b" ' * (MAX_QUERY_CHARS // 6),
        "a[tiab] " * (MAX_QUERY_CHARS // 8),
        "(a OR b) " * (MAX_QUERY_CHARS // 9),
        "a " * (MAX_QUERY_CHARS // 2 - 4) + "[ti]",  # one tag binding the longest run
        '"a b c d"[tiab:~30] ' * (MAX_QUERY_CHARS // 20),
        "2010/01/01:2020/12/31[dp] " * (MAX_QUERY_CHARS // 26),
        "heart failure/therapy[mh] " * (MAX_QUERY_CHARS // 26),
        "\u201ca b\u201d " * (MAX_QUERY_CHARS // 6),
    ],
)
def test_worst_case_inputs_are_fast(query):
    _parse_or_error(query)


# -- render -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "a OR b AND c",
        "a NOT (b OR c) NOT d",
        'diabet*[tiab] AND "heart attack*"[ti] OR x[mh]',
        "(a OR b) AND (c OR (d AND e))",
        "a and or not",
    ],
)
def test_render_round_trips(query):
    tree = parse(query)
    assert parse(render(tree)) == tree


# -- properties --------------------------------------------------------------------------------------------

PIECES = [
    "(",
    ")",
    '"',
    "AND",
    "OR",
    "NOT",
    "and",
    "or",
    "not",
    "[tiab]",
    "[MeSH Terms]",
    "[mh:noexp]",
    "[majr]",
    "[sh]",
    "[au]",
    "[dp]",
    "[tiab:~2]",
    "[ti:~40]",
    "2010:2020",
    "2015/03",
    "aspirin/therapeutic use",
    "/",
    "\u201c",
    "\u201d",
    "[xx]",
    "[",
    "]",
    "*",
    "diabet*",
    "dia*",
    "diabetes",
    "heart",
    "covid-19",
    "-",
    "&",
    "é",
    "\x00",
    "\u200b",
    "\ud800",
]
syntax = st.lists(st.tuples(st.sampled_from(PIECES), st.sampled_from(["", " ", "  ", "\t"])), max_size=40).map(
    lambda parts: "".join(piece + gap for piece, gap in parts)
)


def _parse_or_error(query: str):
    try:
        tree = parse(query)
    except QuerySyntaxError as e:
        assert 0 <= e.position <= max(len(query), MAX_QUERY_CHARS)
        tree = None
    return tree


@settings(max_examples=300, deadline=timedelta(seconds=2))
@given(st.text(max_size=300))
def test_any_text_gives_an_ast_or_a_syntax_error(query):
    _parse_or_error(query)


@settings(max_examples=500, deadline=timedelta(seconds=2))
@given(syntax)
def test_any_arrangement_of_syntax_pieces_gives_an_ast_or_a_syntax_error(query):
    tree = _parse_or_error(query)
    if tree is not None:
        assert parse(render(tree)) == tree


@settings(max_examples=50, deadline=timedelta(seconds=5))
@given(st.text(min_size=MAX_QUERY_CHARS - 100, max_size=MAX_QUERY_CHARS + 100))
def test_long_text_is_bounded(query):
    _parse_or_error(query)
