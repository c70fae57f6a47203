"""The generated literature collection, and the demo collection whose tables moved into package data."""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from importlib import resources
from pathlib import Path

import bm25s
import pytest
import Stemmer

from deepretrieval.data import load_collection
from deepretrieval.data.litdemo import build_literature_demo
from deepretrieval.data.literature import load_reviews, render_pico
from deepretrieval.data.retrievaldemo import _vocabulary, build_demo_collection, load_table, oracle_query
from deepretrieval.errors import DataError, DeepRetrievalError
from deepretrieval.types import Collection, Document

ROOT = Path(__file__).resolve().parents[1]
_STEMMER = Stemmer.Stemmer("english")
_STOPWORDS = frozenset(bm25s.stopwords.STOPWORDS_EN)


@pytest.fixture(scope="module")
def lit() -> Collection:
    return build_literature_demo()


@pytest.fixture(scope="module")
def docs(lit: Collection) -> dict[str, Document]:
    return {d.id: d for d in lit.documents}


def _digest(c: Collection) -> str:
    """sha256 of a canonical JSON dump of everything a collection holds."""
    payload = {
        "name": c.name,
        "documents": [
            [d.id, d.title, d.text, {k: list(v) for k, v in d.fields.items()}, d.date.isoformat() if d.date else None]
            for d in c.documents
        ],
        "examples": [[e.id, e.question, e.targets, e.meta] for e in c.examples],
        "splits": c.splits,
        "warnings": c.warnings,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _stems(text: str) -> set[str]:
    words = [w for w in re.findall(r"(?u)\b\w\w+\b", text.lower()) if w not in _STOPWORDS]
    return set(_STEMMER.stemWords(words))


def _matcher(query: str) -> list[re.Pattern[str]]:
    """The oracle queries' subset of PubMed syntax, (t[tiab] OR "t t"[tiab] ...) AND (...): one pattern per
    AND-ed group, matching any of its terms as whole words of the lower-cased title and abstract."""
    groups = []
    for group in query.split(" AND "):
        terms = [a or b for a, b in re.findall(r'"([^"]+)"\[tiab\]|([^\s()"]+)\[tiab\]', group)]
        groups.append(re.compile(r"\b(?:" + "|".join(re.escape(t.lower()) for t in terms) + r")\b"))
    return groups


def _matches(groups: list[re.Pattern[str]], text: str) -> bool:
    return all(group.search(text) for group in groups)


# ---------------------------------------------------------------------------------------------------
# The demo collection after its tables moved to package data

# sha256 of _digest(build_demo_collection(...)), computed from data/demo.py (now data/retrievaldemo.py) BEFORE
# its tables moved out.
DEMO_DIGESTS = {
    "seed 0": "36bb26bd8daad237bb17d820367a6b327257890221626aadf828ea998187e6fc",
    "seed 1": "0918b19f08215d3f8f20b748417f77bff7025161eeff08898feaaf13c6bc03cb",
    "small": "881d72c15b590a9b63fa982ba9186dc1167f05a614470d10b92958f17ca7fb6e",
}


def test_demo_collection_is_unchanged_by_moving_its_tables() -> None:
    small = build_demo_collection(
        seed=3, n_topics=20, docs_per_topic=3, distractors=1, partial_per_topic=0, filler_docs=5
    )
    built = {"seed 0": build_demo_collection(seed=0), "seed 1": build_demo_collection(seed=1), "small": small}
    assert {name: _digest(c) for name, c in built.items()} == DEMO_DIGESTS


def test_tables_are_package_data() -> None:
    tables = resources.files("deepretrieval.data") / "tables"
    for name in ("concepts.yaml", "demo_templates.yaml", "literature.yaml"):
        assert (tables / name).is_file(), name
        assert isinstance(load_table(name), dict)
    pyproject = (ROOT / "pyproject.toml").read_text()
    package_data = re.search(r"(?m)^deepretrieval = \[(.*)\]$", pyproject.split("[tool.setuptools.package-data]")[1])
    assert package_data and '"data/tables/*.yaml"' in package_data[1]  # so that wheels ship them
    # The vocabulary is data now, not Python literals.
    source = (ROOT / "src" / "deepretrieval" / "data" / "retrievaldemo.py").read_text()
    assert "acetylsalicylic" not in source and "nephrolithiasis" not in source
    assert len(source.splitlines()) < 500
    with pytest.raises(DeepRetrievalError, match="packaged table nonexistent.yaml is missing"):
        load_table("nonexistent.yaml")


def test_every_concept_has_a_mesh_heading() -> None:
    mesh = load_table("literature.yaml")["mesh"]
    vocabulary = _vocabulary()
    for kind in ("conditions", "interventions", "populations"):
        assert set(mesh[kind]) == {c.key for c in getattr(vocabulary, kind)}, kind


def test_nothing_is_loaded_at_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys, deepretrieval.data.retrievaldemo, deepretrieval.data.litdemo, deepretrieval.data.literature\n"
        "from deepretrieval.data import retrievaldemo\n"
        "assert retrievaldemo._vocabulary.cache_info().currsize == 0 and 'yaml' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------------
# The literature demo


def test_same_seed_same_collection_and_other_seed_differs(lit: Collection) -> None:
    assert _digest(build_literature_demo(seed=0)) == _digest(lit)
    other = build_literature_demo(seed=1)
    assert [e.question for e in other.examples] != [e.question for e in lit.examples]
    assert [d.date for d in other.documents] != [d.date for d in lit.documents]


def test_same_seed_same_collection_in_another_process(lit: Collection) -> None:
    # Nothing may depend on str hashing (set order): another PYTHONHASHSEED must give the same collection.
    import os
    import subprocess
    import sys

    code = "from tests.test_litdemo import _digest, build_literature_demo; print(_digest(build_literature_demo()))"
    env = os.environ | {"PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == _digest(lit)


def test_sizes_ids_and_splits(lit: Collection) -> None:
    assert lit.name == "litdemo"
    assert len(lit.examples) == 300
    assert 3000 <= len(lit.documents) <= 6000
    ids = [d.id for d in lit.documents]
    assert ids == sorted(ids, key=int) and len(set(ids)) == len(ids)  # PMIDs, rising
    dates = [d.date for d in lit.documents]
    assert all(isinstance(d, datetime.date) for d in dates) and dates == sorted(dates)  # rising with the date
    assert {k: len(v) for k, v in lit.splits.items()} == {"train": 180, "dev": 60, "test": 60}
    assert sorted(q for split in lit.splits.values() for q in split) == sorted(e.id for e in lit.examples)
    assert lit.warnings == []


def test_publications_look_like_pubmed_records(lit: Collection) -> None:
    years = {d.date.year for d in lit.documents if d.date}
    assert min(years) == 1970 and max(years) == 2024
    assert {decade * 10 for decade in range(197, 203)} <= {y // 10 * 10 for y in years}
    for d in lit.documents:
        assert d.title and d.text
        assert "Humans" in d.fields["mesh"]
        assert d.fields["publication_types"][0] == "Journal Article"
    types = {t for d in lit.documents for t in d.fields["publication_types"]}
    assert {"Randomized Controlled Trial", "Systematic Review", "Meta-Analysis"} <= types


def test_examples_carry_pico_date_kind_and_oracle(lit: Collection) -> None:
    for e in lit.examples:
        pico = e.meta["pico"]
        assert list(pico) == ["P", "I", "C", "O"] and all(pico[k] for k in "PIO")
        assert e.question == render_pico(pico)
        assert isinstance(e.meta["pub_date"], datetime.date)
        assert e.meta["kind"] == "publications"
        assert e.meta["oracle_query"].count("[tiab]") >= 4
        assert set(e.targets.values()) == {1}
    assert any(not e.meta["pico"]["C"] for e in lit.examples)  # C may be empty, as in real reviews
    e = next(e for e in lit.examples if e.meta["condition"] == "heart_attack")
    assert '"myocardial infarction"[tiab]' in e.meta["oracle_query"]
    assert '"heart attack"[tiab]' in e.meta["oracle_query"]  # the lay name, without its article


def test_included_studies_predate_their_review_and_later_ones_follow_it(
    lit: Collection, docs: dict[str, Document]
) -> None:
    for e in lit.examples:
        cut = e.meta["pub_date"]
        assert len(e.targets) >= 3
        assert all(docs[d].date < cut for d in e.targets), e.id
        assert e.meta["later_studies"], e.id
        assert all(docs[d].date > cut for d in e.meta["later_studies"]), e.id
    later = sum(len(e.meta["later_studies"]) for e in lit.examples)
    included = sum(len(e.targets) for e in lit.examples)
    assert 0.2 < later / included < 0.8


def test_the_oracle_finds_every_study_and_only_the_date_cut_off_drops_later_ones(lit: Collection) -> None:
    texts = {d.id: d.contents.lower() for d in lit.documents}
    precision = []
    for e in lit.split("test"):
        query, cut = _matcher(e.meta["oracle_query"]), e.meta["pub_date"]
        assert all(_matches(query, texts[d]) for d in e.targets), e.id
        assert all(_matches(query, texts[d]) for d in e.meta["later_studies"]), e.id
        hits = {d.id for d in lit.documents if d.date and d.date <= cut and _matches(query, texts[d.id])}
        assert set(e.targets) <= hits and not hits & set(e.meta["later_studies"])
        precision.append(len(e.targets) / len(hits))
    assert sum(precision) / len(precision) > 0.75  # the misses: the review itself, a few near misses


def test_the_pico_is_lay_and_the_studies_technical(lit: Collection, docs: dict[str, Document]) -> None:
    for e in lit.examples:
        technical = set().union(*(_stems(t) for t in e.meta["technical_terms"]))
        assert not _stems(e.question) & technical, e.question
        for d in e.targets:
            text = docs[d].contents.lower()
            assert any(t.lower() in text for t in e.meta["technical_terms"])


def test_round_trip_through_review_and_publication_files(lit: Collection, tmp_path: Path) -> None:
    with (tmp_path / "publications.jsonl").open("w") as f:
        for d in lit.documents:
            record = {"pmid": d.id, "title": d.title, "abstract": d.text, **d.fields, "date": str(d.date)}
            f.write(json.dumps(record) + "\n")
    with (tmp_path / "reviews.jsonl").open("w") as f:
        for e in lit.examples:
            split = next(name for name, ids in lit.splits.items() if e.id in ids)
            record = {"id": e.id, "pico": e.meta["pico"], "publication_pmids": list(e.targets), "split": split}
            f.write(json.dumps(record | {"pub_date": e.meta["pub_date"].strftime("%Y/%m/%d")}) + "\n")
    loaded = load_reviews(tmp_path / "reviews.jsonl")
    assert loaded.documents == lit.documents
    assert loaded.splits == lit.splits
    for got, want in zip(loaded.examples, lit.examples, strict=True):
        assert (got.id, got.question, got.targets) == (want.id, want.question, want.targets)
        assert got.meta == {k: want.meta[k] for k in ("pico", "pub_date", "kind")}
    assert loaded.warnings == []


def test_oracle_query_helper_reads_literature_examples(lit: Collection) -> None:
    assert oracle_query(lit.examples[0]) == lit.examples[0].meta["oracle_query"]


def test_parameters_are_checked_and_scale_the_collection() -> None:
    small = build_literature_demo(n_reviews=10, included=(1, 1), later=(0, 0), partial=0, distractors=0, filler_docs=2)
    assert len(small.examples) == 10
    assert len(small.documents) == 10 * (1 + 1) + 2  # one study and the review itself per topic
    for bad in ({"n_reviews": 2}, {"included": (0, 3)}, {"later": (2, 1)}, {"filler_docs": -1}, {"lay_rate": 2.0}):
        with pytest.raises(DeepRetrievalError, match="literature demo"):
            build_literature_demo(**bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# A concept-held-out split: ``literature-demo?held_out_conditions=N``


def _conditions(c: Collection, split: str) -> set[str]:
    return {e.meta["condition"] for e in c.split(split)}


@pytest.mark.parametrize("count", [3, 6])
def test_held_out_conditions_never_reach_train_or_dev(lit: Collection, count: int) -> None:
    held = load_collection(f"literature-demo?held_out_conditions={count}")
    # The same documents and reviews: only the split moves.
    assert [d.id for d in held.documents] == [d.id for d in lit.documents]
    assert [(e.id, e.question, e.targets) for e in held.examples] == [
        (e.id, e.question, e.targets) for e in lit.examples
    ]
    assert {k: len(v) for k, v in held.splits.items()} == {"train": 180, "dev": 60, "test": 60}
    unseen = _conditions(held, "test") - _conditions(held, "train") - _conditions(held, "dev")
    assert len(unseen) == count
    # every review of a held-out condition is a test review
    of_unseen = {e.id for e in held.examples if e.meta["condition"] in unseen}
    assert of_unseen <= set(held.splits["test"]) and len(of_unseen) > count
    # the rest of the split keeps its rule: every concept of a dev review occurs in train
    train_concepts = {(k, e.meta[k]) for e in held.split("train") for k in ("condition", "intervention", "population")}
    dev_concepts = {(k, e.meta[k]) for e in held.split("dev") for k in ("condition", "intervention", "population")}
    assert dev_concepts <= train_concepts


def test_the_default_split_has_no_unseen_condition(lit: Collection) -> None:
    assert _conditions(lit, "test") <= _conditions(lit, "train")
    assert load_collection("literature-demo?held_out_conditions=0").splits == lit.splits


def test_the_held_out_conditions_do_not_depend_on_other_options() -> None:
    a = load_collection("literature-demo?held_out_conditions=4")
    b = load_collection("literature-demo?held_out_conditions=4&filler_docs=100")
    unseen = [_conditions(c, "test") - _conditions(c, "train") for c in (a, b)]
    assert unseen[0] == unseen[1] and len(unseen[0]) == 4


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("literature-demo?held_out_conditions=20", "more than the 60 the test split holds"),
        ("literature-demo?held_out_conditions=-1", "held_out_conditions must be between 0 and"),
        ("literature-demo?bogus=1", "unknown option 'bogus' for literature-demo .*held_out_conditions"),
        ("literature-demo?n_reviews=many", "option 'n_reviews' must be an integer, got 'many'"),
        ("literature-demo?held_out_conditions", "key=value pairs"),
        ("sql-demo?folder=/tmp", "unknown option 'folder' for sql-demo"),
    ],
)
def test_bad_generator_options_are_one_line_errors_naming_the_spec(spec: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as caught:
        load_collection(spec)
    assert str(caught.value).startswith(f"{spec}: ") and "\n" not in str(caught.value)


def test_numeric_options_reach_the_generator() -> None:
    small = load_collection("literature-demo?n_reviews=20&filler_docs=5&lay_rate=0.5")
    assert len(small.examples) == 20
    assert small.documents == build_literature_demo(n_reviews=20, filler_docs=5, lay_rate=0.5).documents
