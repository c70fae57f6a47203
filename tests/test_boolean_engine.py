"""The Boolean engine against independent set logic over a generated corpus, plus its index folder,
``k`` / ``total`` semantics and its documented order.

The oracle analyses text on its own (a regex tokenizer, lower-casing, PyStemmer's English Snowball) and
evaluates every query with plain Python predicates over the generated records; the engine is tantivy."""

from __future__ import annotations

import datetime
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import Stemmer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepretrieval.errors import CorruptIndexError, DeepRetrievalError, SearchFailure, StaleIndexError
from deepretrieval.search.boolean import (
    MAX_K,
    ORDER,
    PUBLICATIONS,
    TRIALS,
    BooleanIndex,
    BooleanRequest,
    FieldSchema,
    _through_tie,
)
from deepretrieval.search.folders import corpus_hash as _corpus_hash
from deepretrieval.search.pubmed_syntax import (
    MAX_EXPANSIONS,
    And,
    Expansions,
    Node,
    Not,
    Or,
    Phrase,
    QuerySyntaxError,
    Term,
    render,
)
from deepretrieval.types import Document, Ranking


def corpus_hash(documents):
    """The Boolean engine's corpus identity: dates and list fields count (``fielded``)."""
    return _corpus_hash(documents, fielded=True)


# -- the generated corpus ---------------------------------------------------------------------------------

# Frequent words first: a Zipf-like draw makes some words common and some rare, so queries select subsets.
WORDS = (  # noqa: SIM905 (a word list reads better as text)
    "patients effect study with in of the diabetes heart risk trial therapy insulin cancer children outcomes "
    "stroke studies trials cardiac failure random randomized diabetic attack mortality aspirin breast child "
    "and or not covid cardiology diabetology randomised attacks outcome therapies strokes cancers insulins"
).split()
PHRASES = ["heart attack", "breast cancer", "type 2 diabetes", "randomized controlled trial", "insulin therapy"]
MESH = [
    "Diabetes Mellitus, Type 2",
    "Diabetes Mellitus, Type 1",
    "Heart Failure",
    "Myocardial Infarction",
    "Breast Neoplasms",
    "Child",
    "Humans",
    "Insulin",
    "Randomized Controlled Trials as Topic",
    "Stroke",
    "COVID-19",
]
PUBLICATION_TYPES = ["Randomized Controlled Trial", "Review", "Meta-Analysis", "Case Reports", "Clinical Trial"]
N = 300


def generate(n: int = N, seed: int = 7) -> list[Document]:
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(WORDS))]
    documents = []
    for i in range(n):
        title = " ".join(rng.choices(WORDS, weights, k=rng.randint(3, 7))).title()
        words = rng.choices(WORDS, weights, k=rng.randint(10, 30))
        for _ in range(rng.randint(0, 2)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(PHRASES))
        fields = {
            "mesh": tuple(rng.sample(MESH, rng.randint(0, 3))),
            "publication_types": tuple(rng.sample(PUBLICATION_TYPES, rng.randint(1, 2))),
        }
        date = None if rng.random() < 0.1 else datetime.date(1960, 1, 1) + timedelta(days=rng.randrange(65 * 365))
        documents.append(Document(f"pmid{i:04d}", title, " ".join(words).capitalize() + ".", fields, date))
    return documents


# -- the oracle: its own analysis and plain set logic -------------------------------------------------------

STEMMER = Stemmer.Stemmer("english")
TAG_SOURCES = {
    "ti": ("ti",),
    "ab": ("ab",),
    "mh": ("mh",),
    "pt": ("pt",),
    "tiab": ("ti", "ab"),
    "all": ("ti", "ab", "mh", "pt"),
    None: ("ti", "ab", "mh", "pt"),
}


def plain(text: str) -> list[str]:
    return [t for t in re.findall(r"[^\W_]+", text.lower()) if len(t.encode()) < 40]


def stemmed(text: str) -> list[str]:
    return [STEMMER.stemWord(t) for t in plain(text)]


@dataclass
class Record:
    row: int
    doc: Document
    values: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, row: int, doc: Document) -> Record:
        values = {"ti": [doc.title], "ab": [doc.text], "mh": list(doc.fields["mesh"])}
        values["pt"] = list(doc.fields["publication_types"])
        return cls(row, doc, values)


def has(record: Record, text: str, tag: str | None = None, truncated: bool = False) -> bool:
    """Does a word / phrase (truncated: its last word is a prefix) occur in one value of the tag's sources?
    Untagged words are stemmed (the engine's stand-in for automatic term mapping); tagged and truncated ones
    are searched as written (PubMed Help, 'Searching for a phrase' and 'Automatic Term Mapping': a tagged
    term is not mapped). ``mh:noexp`` is a whole heading."""
    analyse = stemmed if tag is None and not truncated else plain
    words = analyse(text)
    if not words:
        return False
    if tag == "mh:noexp":
        return any(plain(value) == words for value in record.values["mh"])
    for source in TAG_SOURCES[tag]:
        for value in record.values[source]:
            tokens = analyse(value)
            if _contains(tokens, words, truncated):
                return True
    return False


def _contains(tokens: list[str], words: list[str], truncated: bool) -> bool:
    n = len(words)
    for i in range(len(tokens) - n + 1):
        head_ok = tokens[i : i + n - 1] == words[:-1]
        last = tokens[i + n - 1]
        if head_ok and (last.startswith(words[-1]) if truncated else last == words[-1]):
            return True
    return False


def dated(record: Record, low: datetime.date | None, high: datetime.date | None) -> bool:
    if low is None and high is None:
        return True
    day = record.doc.date
    return day is not None and (low is None or day >= low) and (high is None or day <= high)


def evaluate(node: Node, record: Record) -> bool:
    if isinstance(node, Term):
        return has(record, node.text, node.field, node.truncated)
    if isinstance(node, Phrase):
        return has(record, " ".join(node.words), node.field, node.truncated)
    if isinstance(node, And):
        return all(evaluate(n, record) for n in node.nodes)
    if isinstance(node, Or):
        return any(evaluate(n, record) for n in node.nodes)
    assert isinstance(node, Not)
    return evaluate(node.nodes[0], record) and not any(evaluate(n, record) for n in node.nodes[1:])


# -- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return generate()


@pytest.fixture(scope="module")
def records(documents) -> list[Record]:
    return [Record.of(row, doc) for row, doc in enumerate(documents)]


@pytest.fixture(scope="module")
def engine(documents) -> BooleanIndex:
    return BooleanIndex.build(documents)


def expected_ids(records: list[Record], predicate: Callable[[Record], bool]) -> set[str]:
    return {r.doc.id for r in records if predicate(r)}


def test_the_oracle_stems_as_the_engine_does(engine):
    # The premise of the oracle, not a use of the engine's results: both analysers agree on the vocabulary.
    vocabulary = set(WORDS) | {w for text in PHRASES + MESH + PUBLICATION_TYPES for w in plain(text)}
    assert [engine._translator.stemmed.analyze(w) for w in sorted(vocabulary)] == [
        stemmed(w) for w in sorted(vocabulary)
    ]


# -- the table: engine results equal set logic --------------------------------------------------------------

H = has
D = datetime.date


def case(query: str, predicate: Callable[[Record], bool], low: D | None = None, high: D | None = None):
    return query, low, high, predicate


QUERIES: list[tuple[str, D | None, D | None, Callable[[Record], bool]]] = [
    case("diabetes", lambda r: H(r, "diabetes")),
    case("diabetes AND insulin", lambda r: H(r, "diabetes") and H(r, "insulin")),
    case("diabetes OR aspirin", lambda r: H(r, "diabetes") or H(r, "aspirin")),
    case("diabetes NOT insulin", lambda r: H(r, "diabetes") and not H(r, "insulin")),
    case("diabetes insulin", lambda r: H(r, "diabetes") and H(r, "insulin")),
    # left to right: (a OR b) AND c, (a NOT b) OR c
    case("aspirin OR cardiac AND failure", lambda r: (H(r, "aspirin") or H(r, "cardiac")) and H(r, "failure")),
    case(
        "aspirin OR (cardiac AND failure)",
        lambda r: H(r, "aspirin") or (H(r, "cardiac") and H(r, "failure")),
    ),
    case("heart NOT attack OR stroke", lambda r: (H(r, "heart") and not H(r, "attack")) or H(r, "stroke")),
    case("heart NOT (attack OR stroke)", lambda r: H(r, "heart") and not (H(r, "attack") or H(r, "stroke"))),
    case(
        "diabetes[tiab] OR insulin[mh] AND heart[ti] NOT stroke[ab]",
        lambda r: (
            ((H(r, "diabetes", "tiab") or H(r, "insulin", "mh")) and H(r, "heart", "ti")) and not H(r, "stroke", "ab")
        ),
    ),
    case(
        "diabetes NOT insulin NOT heart",
        lambda r: H(r, "diabetes") and not (H(r, "insulin") or H(r, "heart")),
    ),
    # lower-case and / or / not are words
    case("diabetes and insulin", lambda r: H(r, "diabetes") and H(r, "and") and H(r, "insulin")),
    case("heart or stroke", lambda r: H(r, "heart") and H(r, "or") and H(r, "stroke")),
    case("not[ti]", lambda r: H(r, "not", "ti")),
    case("DIABETES", lambda r: H(r, "diabetes")),
    # phrases
    case('"heart attack"', lambda r: H(r, "heart attack")),
    case('"heart attack"[ti]', lambda r: H(r, "heart attack", "ti")),
    case(
        '"breast cancer"[tiab] AND therapy[ab]',
        lambda r: H(r, "breast cancer", "tiab") and H(r, "therapy", "ab"),
    ),
    case('"type 2 diabet*"', lambda r: H(r, "type 2 diabet", truncated=True)),
    case("covid-19", lambda r: H(r, "covid 19")),
    # every tag
    case("insulin[mh]", lambda r: H(r, "insulin", "mh")),
    case("insulin[ab]", lambda r: H(r, "insulin", "ab")),
    case('"diabetes mellitus, type 2"[mh]', lambda r: H(r, "diabetes mellitus type 2", "mh")),
    case(
        '"Type 2"[MeSH Terms] NOT child[mh:noexp]',
        lambda r: H(r, "type 2", "mh") and not H(r, "child", "mh:noexp"),
    ),
    case('"heart failure"[mh:noexp] OR "failure"[mh:noexp]', lambda r: H(r, "heart failure", "mh:noexp")),
    case("review[pt] OR meta-analysis[pt]", lambda r: H(r, "review", "pt") or H(r, "meta analysis", "pt")),
    case('"randomized controlled trial"[pt]', lambda r: H(r, "randomized controlled trial", "pt")),
    case("trial[pt] AND not[ti]", lambda r: H(r, "trial", "pt") and H(r, "not", "ti")),
    case("diabetes[all] AND stroke[All Fields]", lambda r: H(r, "diabetes", "all") and H(r, "stroke", "all")),
    case("strokes[all]", lambda r: H(r, "strokes", "all")),
    case("cancer[ti] AND cancer[ab]", lambda r: H(r, "cancer", "ti") and H(r, "cancer", "ab")),
    # stemming: untagged words and phrases only; a tagged word is searched as written
    case("studies[ti]", lambda r: H(r, "studies", "ti")),
    case("studies", lambda r: H(r, "study")),
    case("trials", lambda r: H(r, "trial")),
    case('"heart attacks"', lambda r: H(r, "heart attack")),
    # truncation, on the unstemmed words
    case("diabet*", lambda r: H(r, "diabet", truncated=True)),
    case("diabet*[ti]", lambda r: H(r, "diabet", "ti", truncated=True)),
    case("random*[tiab] AND trial[pt]", lambda r: H(r, "random", "tiab", True) and H(r, "trial", "pt")),
    case("randomiz*[tiab]", lambda r: H(r, "randomiz", "tiab", truncated=True)),  # stem 'random' is shorter
    # nesting
    case(
        "(diabetes OR insulin) AND (heart OR stroke) NOT review[pt]",
        lambda r: (
            (H(r, "diabetes") or H(r, "insulin")) and (H(r, "heart") or H(r, "stroke")) and not H(r, "review", "pt")
        ),
    ),
    case(
        '((diabetes OR diabetic) AND (child OR children)) OR "breast cancer"',
        lambda r: (
            ((H(r, "diabetes") or H(r, "diabetic")) and (H(r, "child") or H(r, "children"))) or H(r, "breast cancer")
        ),
    ),
    # date windows: inclusive, undated documents excluded once a bound is given
    (
        "diabetes",
        D(1990, 1, 1),
        D(2010, 12, 31),
        lambda r: H(r, "diabetes") and dated(r, D(1990, 1, 1), D(2010, 12, 31)),
    ),
    ("diabet*", None, D(1980, 1, 1), lambda r: H(r, "diabet", truncated=True) and dated(r, None, D(1980, 1, 1))),
    ("heart", D(2015, 1, 1), None, lambda r: H(r, "heart") and dated(r, D(2015, 1, 1), None)),
    ("heart", D(2015, 1, 1), D(2000, 1, 1), lambda r: False),
]
EMPTY_BY_DESIGN = {("heart", D(2015, 1, 1), D(2000, 1, 1))}


@pytest.mark.parametrize(("query", "low", "high", "predicate"), QUERIES, ids=[q for q, *_ in QUERIES])
def test_engine_equals_set_logic(engine, records, query, low, high, predicate):
    expected = expected_ids(records, predicate)
    if (query, low, high) not in EMPTY_BY_DESIGN:
        assert 0 < len(expected) < N, "the corpus must make this query discriminate"
    [ranking] = engine.search([BooleanRequest(query, low, high)], N)
    assert isinstance(ranking, Ranking), ranking
    assert ranking.total == len(expected)
    assert set(ranking.ids) == expected
    assert len(ranking.ids) == len(expected)


def test_the_table_is_broad(records):
    assert len(QUERIES) >= 30
    # The left-to-right cases would give other sets under operator precedence.
    first = expected_ids(records, lambda r: (H(r, "aspirin") or H(r, "cardiac")) and H(r, "failure"))
    assert first != expected_ids(records, lambda r: H(r, "aspirin") or (H(r, "cardiac") and H(r, "failure")))
    second = expected_ids(records, lambda r: (H(r, "heart") and not H(r, "attack")) or H(r, "stroke"))
    assert second != expected_ids(records, lambda r: H(r, "heart") and not (H(r, "attack") or H(r, "stroke")))
    # Undated records exist, so the windowed cases test that they are left out.
    assert any(r.doc.date is None for r in records)


WORD_CHOICES = ["diabetes", "insulin", "heart", "stroke", "aspirin", "and", "trials", "cancer", "child", "humans"]
PREFIXES = ["diabet", "random", "stroke", "cardio", "insulin"]
TAGS = [None, None, "ti", "ab", "tiab", "mh", "pt", "all"]
leaves = st.one_of(
    st.builds(Term, st.sampled_from(WORD_CHOICES), st.sampled_from(TAGS)),
    st.builds(lambda p, t: Term(p, t, True), st.sampled_from(PREFIXES), st.sampled_from(TAGS)),
    st.builds(lambda p, t: Phrase(tuple(p.split()), t), st.sampled_from(PHRASES + MESH[:3]), st.sampled_from(TAGS)),
)
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda ns: And(tuple(ns))),
        st.lists(inner, min_size=2, max_size=3).map(lambda ns: Or(tuple(ns))),
        st.lists(inner, min_size=2, max_size=3).map(lambda ns: Not(tuple(ns))),
    ),
    max_leaves=8,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees)
def test_random_queries_equal_set_logic(engine, records, tree):
    expected = expected_ids(records, lambda r: evaluate(tree, r))
    [ranking] = engine.search([BooleanRequest(render(tree))], N)
    assert isinstance(ranking, Ranking), (render(tree), ranking)
    assert (ranking.total, set(ranking.ids)) == (len(expected), expected), render(tree)


PIECES = ["(", ")", '"', "AND", "OR", "NOT", "and", "[tiab]", "[mh]", "[cond]", "[xx]", "*", "diabet*", "heart"]
PIECES += ["diabetes", "covid-19", "-", "é", "\x00", "x" * 45, "insulin*", '"heart attack"']
# Issue 22's syntax: tags bind runs of words, MeSH pairs, dates, proximity, curly quotes, whole-value tags.
PIECES += ["[majr]", "[mh:noexp]", "[sh]", "[au]", "[la]", "[ta]", "[ot]", "[dp]", "[tiab:~2]", "[ab:~30]", "[ti:~99]"]
PIECES += ["2010:2020", "2015/02/30", "1999/12", "/", "heart failure/therapy", "smith j", "\u201c", "\u201d", ":"]
syntax = st.lists(st.tuples(st.sampled_from(PIECES), st.sampled_from(["", " "])), max_size=25).map(
    lambda parts: "".join(piece + gap for piece, gap in parts)
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.one_of(syntax, st.text(max_size=200)))
def test_any_query_gives_a_ranking_or_a_syntax_error(engine, query):
    [result] = engine.search([BooleanRequest(query)], 50)
    assert isinstance(result, (Ranking, QuerySyntaxError))
    if isinstance(result, Ranking):
        assert result.total is not None and len(result.ids) == min(50, result.total)


# -- batches, k and total ---------------------------------------------------------------------------------


def test_a_bad_query_is_returned_in_its_slot(engine):
    results = engine.search([BooleanRequest("diabetes"), BooleanRequest("diabetes AND"), BooleanRequest("x[1au]")], 5)
    assert isinstance(results[0], Ranking) and len(results[0]) == 5
    assert isinstance(results[1], QuerySyntaxError) and results[1].position == 9
    assert isinstance(results[2], QuerySyntaxError) and "unknown field tag" in results[2].message
    assert engine.search([], 5) == []


def test_k_and_total(engine):
    request = BooleanRequest("diabet* OR heart")
    full = engine.search([request], N)[0]
    assert 50 < full.total < N
    for k in (0, 1, 7, full.total, N, MAX_K):
        ranking = engine.search([request], k)[0]
        assert ranking.total == full.total
        assert ranking.ids == full.ids[:k]
    assert engine.count([request, BooleanRequest("(")])[0] == full.total
    assert isinstance(engine.count([BooleanRequest("(")])[0], QuerySyntaxError)
    for bad in (-1, MAX_K + 1):
        with pytest.raises(DeepRetrievalError, match="k must be"):
            engine.search([request], bad)


def test_a_tag_the_corpus_lacks_is_a_syntax_error(engine):
    [result] = engine.search([BooleanRequest("asthma[cond]")], 5)
    assert isinstance(result, QuerySyntaxError) and "not indexed in this corpus" in result.message


# -- how far truncation may expand ------------------------------------------------------------------------


def _expanding(words: int) -> BooleanIndex:
    """An index where ``inte*`` expands to ``words`` abstract words, beside two ordinary records."""
    documents = [
        Document("wide", "heart intern", " ".join(f"inte{i:05d}" for i in range(words))),
        Document("attack", "Heart attack", "aspirin after a heart attack"),
        Document("stroke", "Stroke", "aspirin after a stroke"),
    ]
    return BooleanIndex.build(documents)


@pytest.fixture(scope="module")
def past_tantivy() -> BooleanIndex:
    return _expanding(MAX_EXPANSIONS + 600)  # past tantivy's own 16,384 for a truncated phrase


def test_a_truncation_past_the_engines_limit_fails_its_own_query_only(past_tantivy):
    queries = ["aspirin", '"heart inte*"', '"heart attack"', "inte*[ab]"]
    results = past_tantivy.search([BooleanRequest(q) for q in queries], 10)
    alone = past_tantivy.search([BooleanRequest(queries[0]), BooleanRequest(queries[2])], 10)
    assert [(r.ids, r.total) for r in (results[0], results[2])] == [(r.ids, r.total) for r in alone]
    assert sorted(results[0].ids) == ["attack", "stroke"] and results[2].ids == ["attack"]
    for bad, position in ((results[1], 0), (results[3], 0)):
        assert isinstance(bad, QuerySyntaxError) and bad.position == position
        assert f"more than {MAX_EXPANSIONS:,} index words" in bad.message
    assert past_tantivy.search([BooleanRequest("inte*[ti]")], 10)[0].ids == ["wide"]  # one title word: fine


def test_the_expansion_cap_sums_every_truncation_of_a_query():
    engine = _expanding(MAX_EXPANSIONS // 2 + 1)
    [once, twice, phrase] = engine.search(
        [BooleanRequest("inte*"), BooleanRequest("aspirin OR inte* OR inte*"), BooleanRequest('inte* OR "a inte*"')], 3
    )
    assert once.ids == ["wide"] and once.total == 1
    for refused in (twice, phrase):
        assert isinstance(refused, QuerySyntaxError) and "expands too far" in refused.message
    assert twice.position == len("aspirin OR inte* OR ")  # the truncation that passed the cap


def test_tantivys_own_expansion_refusal_fails_its_query_only(past_tantivy, monkeypatch):
    # Were the cap ever above what tantivy accepts, its refusal is still the query's fault alone.
    monkeypatch.setattr(Expansions, "spend", lambda self, *args: None)
    good, bad = past_tantivy.search([BooleanRequest("aspirin"), BooleanRequest('"heart inte*"')], 10)
    assert sorted(good.ids) == ["attack", "stroke"]
    assert isinstance(bad, QuerySyntaxError) and "max expansions" in bad.message


@pytest.mark.parametrize("error", [ValueError("An IO error occurred: 'segment gone'"), OSError(5, "I/O error")])
def test_other_engine_errors_while_searching_fail_the_batch(engine, monkeypatch, error):
    def broken(*args):
        raise error

    monkeypatch.setattr(engine, "_ranking", broken)
    with pytest.raises(SearchFailure, match="failed while searching"):
        engine.search([BooleanRequest("diabetes"), BooleanRequest("x[1au]")], 5)


# -- the documented order ---------------------------------------------------------------------------------


def _check_order(engine, documents, ranking: Ranking) -> None:
    row = {d.id: i for i, d in enumerate(documents)}
    for (a, sa), (b, sb) in zip(ranking, list(ranking)[1:], strict=False):
        assert sa > sb or (sa == sb and row[a] < row[b])


@pytest.mark.parametrize(
    "query", ["diabetes", "heart OR stroke", "diabet*", "diabet*[ti] OR insulin*[ti]", '"heart attack" OR cancer[ti]']
)
def test_order_is_score_descending_then_corpus_order(engine, documents, query):
    assert "descending" in ORDER and "position in the corpus" in ORDER
    ranking = engine.search([BooleanRequest(query)], N)[0]
    _check_order(engine, documents, ranking)
    assert ranking.scores[0] > 0


def test_ties_at_the_cut_go_by_corpus_order(engine, documents, records):
    # A truncated word scores a constant per field: every title match ties, so the first k are the first in
    # the corpus.
    matching = [r.doc.id for r in records if has(r, "diabet", "ti", truncated=True)]
    ranking = engine.search([BooleanRequest("diabet*[ti]")], 10)[0]
    assert len(set(engine.search([BooleanRequest("diabet*[ti]")], N)[0].scores)) == 1
    assert ranking.ids == matching[:10]


class _ScrambledSearcher:
    """Hits by score with ties in an arbitrary (segment-like) order: what tantivy may do over segments."""

    num_segments = 3

    def __init__(self, scores: list[float], seed: int) -> None:
        order = list(range(len(scores)))
        random.Random(seed).shuffle(order)
        self.ranked = sorted(order, key=lambda row: -scores[row])  # stable on the shuffled order
        self.scores = scores

    def search(self, query, limit, count=True):
        hits = [(self.scores[row], row) for row in self.ranked[:limit]]
        return type("Result", (), {"hits": hits, "count": len(self.ranked) if count else None})()

    def fast_field_values(self, name, addresses):
        return list(addresses)


@pytest.mark.parametrize("seed", range(5))
def test_ties_across_segments_are_cut_in_corpus_order(engine, seed):
    scores = [2.0] * 5 + [1.0] * 40 + [0.5] * 5
    fake = _ScrambledSearcher(scores, seed)
    ranking = engine._ranking(fake, None, 12)
    engine_ids = engine.doc_ids
    assert ranking.ids == [engine_ids[r] for r in range(12)]
    assert ranking.total == 50
    assert [row for _, row in _through_tie(fake, None, 1.0, 12)][-5:] == fake.ranked[45:50]


# -- dates ------------------------------------------------------------------------------------------------


def test_date_window_bounds_are_inclusive(engine, documents):
    target = next(d for d in documents if d.date is not None and "diabetes" in d.text.lower())
    ids = set(engine.search([BooleanRequest("diabetes", target.date, target.date)], N)[0].ids)
    assert target.id in ids
    assert all(d.date == target.date for d in documents if d.id in ids)


def test_undated_documents_only_without_a_window(engine, documents):
    undated = {d.id for d in documents if d.date is None}
    everything = engine.search([BooleanRequest("the OR patients OR diabetes OR heart")], N)[0]
    windowed = engine.search([BooleanRequest("the OR patients OR diabetes OR heart", D(1000, 1, 1))], N)[0]
    assert undated & set(everything.ids)
    assert not undated & set(windowed.ids)


def test_the_date_window_does_not_change_scores(engine):
    plain_run = engine.search([BooleanRequest("diabetes")], N)[0]
    windowed = engine.search([BooleanRequest("diabetes", D(1000, 1, 1), D(3000, 1, 1))], N)[0]
    score = dict(zip(plain_run.ids, plain_run.scores, strict=True))
    assert all(score[i] == s for i, s in zip(windowed.ids, windowed.scores, strict=True))


# -- trials ---------------------------------------------------------------------------------------------


def test_trials_schema_tags_conditions_and_interventions():
    trials = [
        Document("NCT1", "Asthma in adults", "A trial", {"conditions": ("Asthma",), "interventions": ("Budesonide",)}),
        Document("NCT2", "Budesonide study", "Open label", {"conditions": ("COPD",), "interventions": ("Placebo",)}),
        Document("NCT3", "COPD care", "Asthma and COPD", {"conditions": ("Asthma", "COPD")}, D(2020, 1, 1)),
    ]
    index = BooleanIndex.build(trials, TRIALS)
    queries = ["asthma[cond]", "budesonide[intr]", "budesonide[intervention] OR copd[condition]", "asthma", "x[mh]"]
    results = index.search([BooleanRequest(q) for q in queries], 10)
    assert [set(r.ids) if isinstance(r, Ranking) else None for r in results[:4]] == [
        {"NCT1", "NCT3"},
        {"NCT1"},
        {"NCT1", "NCT2", "NCT3"},
        {"NCT1", "NCT3"},
    ]
    assert isinstance(results[4], QuerySyntaxError)


def test_an_unstemmed_schema_matches_words_as_written():
    docs = [Document("a", "trials", ""), Document("b", "trial", "")]
    index = BooleanIndex.build(docs, FieldSchema("plain", (), stemmer=None))
    assert index.search([BooleanRequest("trial")], 5)[0].ids == ["b"]
    assert set(index.search([BooleanRequest("tria*")], 5)[0].ids) == {"a", "b"}


# -- the index folder ---------------------------------------------------------------------------------------


def test_build_reports_progress_and_refuses_an_empty_corpus(documents):
    seen: list[tuple[int, int]] = []
    BooleanIndex.build(documents[:50], progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (50, 50) and all(a <= b for (a, _), (b, _) in zip(seen, seen[1:], strict=False))
    with pytest.raises(SearchFailure, match="empty corpus"):
        BooleanIndex.build([])


def test_save_load_round_trip(engine, documents, tmp_path):
    folder = engine.save(tmp_path / "index")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["corpus_sha256"] == corpus_hash(documents) and manifest["tantivy"] == "0.27.0"
    assert manifest["schema"] == PUBLICATIONS.to_json() and manifest["format"] == 2
    loaded = BooleanIndex.load(folder, expected_corpus_hash=corpus_hash(documents), schema=PUBLICATIONS)
    requests = [BooleanRequest(q, lo, hi) for q, lo, hi, _ in QUERIES]
    before, after = engine.search(requests, N), loaded.search(requests, N)
    assert [(r.ids, r.scores, r.total) for r in before] == [(r.ids, r.scores, r.total) for r in after]
    engine.save(folder)  # replacing an index of ours is fine
    assert BooleanIndex.load(folder).search(requests[:1], 5)[0].ids == before[0].ids[:5]


def test_corpus_hash_covers_fields_and_dates(documents):
    base = corpus_hash(documents)
    first = documents[0]
    moved = Document(first.id, first.title, first.text, first.fields, D(1900, 1, 1))
    retagged = Document(first.id, first.title, first.text, {**first.fields, "mesh": ("Other",)}, first.date)
    split = Document(first.id, first.title, first.text, {"mesh": ("a", "b")}, first.date)
    joined = Document(first.id, first.title, first.text, {"mesh": ("a b",)}, first.date)
    hashes = {base} | {corpus_hash([d, *documents[1:]]) for d in (moved, retagged, split, joined)}
    assert len(hashes) == 5


def test_stale_index_is_refused(engine, documents, tmp_path):
    folder = engine.save(tmp_path / "index")
    first = documents[0]
    changed = [Document(first.id, first.title, first.text, first.fields, D(1900, 1, 1)), *documents[1:]]
    with pytest.raises(StaleIndexError, match="another corpus"):
        BooleanIndex.load(folder, expected_corpus_hash=corpus_hash(changed))
    with pytest.raises(StaleIndexError, match="another field schema"):
        BooleanIndex.load(folder, schema=TRIALS)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(StaleIndexError, match="format 99"):
        BooleanIndex.load(folder)
    (folder / "manifest.json").write_text(json.dumps({**manifest, "tantivy": "0.1.0"}))
    with pytest.raises(StaleIndexError, match="tantivy 0.1.0"):
        BooleanIndex.load(folder)


def test_refuses_to_replace_a_folder_that_is_not_an_index(engine, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(DeepRetrievalError, match="not an index"):
        engine.save(mine)
    assert (mine / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging left behind
    empty = tmp_path / "empty"
    empty.mkdir()
    engine.save(empty)
    assert (empty / "manifest.json").is_file()


def test_a_missing_index_is_a_search_failure_a_damaged_one_a_corrupt_index(engine, tmp_path):
    """As for every index kind: no folder is a SearchFailure; a damaged one a CorruptIndexError (a kind of
    StaleIndexError: rebuild it), never a SearchFailure that training would retry."""
    with pytest.raises(SearchFailure, match="no index"):
        BooleanIndex.load(tmp_path / "nowhere")
    folder = engine.save(tmp_path / "index")
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptIndexError, match="manifest.json cannot be read"):
        BooleanIndex.load(folder)
    (folder / "manifest.json").write_text(json.dumps({"kind": "bm25"}))
    with pytest.raises(StaleIndexError, match="not a boolean index"):
        BooleanIndex.load(folder)
    folder = engine.save(tmp_path / "index")
    segment = max((folder / "tantivy").glob("*.idx"), key=lambda p: p.stat().st_size)
    segment.write_bytes(segment.read_bytes()[:-10])
    with pytest.raises(CorruptIndexError, match="missing or damaged"):
        BooleanIndex.load(folder)
    folder = engine.save(tmp_path / "index")
    (folder / "doc_ids.json").write_text("[")
    with pytest.raises(CorruptIndexError, match="cannot be opened"):
        BooleanIndex.load(folder)
    folder = engine.save(tmp_path / "index")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "documents": manifest["documents"] + 1}))
    with pytest.raises(CorruptIndexError, match="documents indexed"):
        BooleanIndex.load(folder)
    (folder / "manifest.json").write_text(json.dumps({k: v for k, v in manifest.items() if k != "files"}))
    with pytest.raises(CorruptIndexError, match="lacks one of"):
        BooleanIndex.load(folder)
