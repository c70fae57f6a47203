from __future__ import annotations

import json

import pytest

from deepretrieval.data import load_collection, split_ids
from deepretrieval.errors import DataError, DeepRetrievalError

from .conftest import shared_collection, write_beir


def test_cranfield_quirks():
    c = load_collection(shared_collection("cranfield"))
    assert (c.name, len(c.documents), len(c.examples)) == ("cranfield", 1400, 225)
    assert sum(len(e.targets) for e in c.examples) == 1837
    assert c.warnings == []
    # cran.qry skips .I 003: the third query in file order is `.I 004`, judged as query 3 in cranqrel.
    third = c.examples[2]
    assert third.id == "3" and third.meta["source_id"] == "4"
    assert third.question.startswith("what problems of heat conduction in composite slabs")
    # Cleverdon codes: 1 (complete answer) -> 4, 4 -> 1, -1 (no interest) -> 0.
    grades = {g for e in c.examples for g in e.targets.values()}
    assert grades == {0, 1, 2, 3, 4}
    assert c.examples[0].targets["184"] == 3  # `1 184 2` in cranqrel
    assert all("\r" not in d.text and "\r" not in d.title for d in c.documents)
    assert all(e.relevant for e in c.examples)


def test_med_binary_judgments():
    c = load_collection(shared_collection("med"))
    assert (c.name, len(c.documents), len(c.examples)) == ("med", 1033, 30)
    assert sum(len(e.targets) for e in c.examples) == 696
    assert {g for e in c.examples for g in e.targets.values()} == {1}
    assert c.warnings == []


def test_seeded_splits_are_deterministic_disjoint_and_complete():
    ids = [str(i) for i in range(225)]
    a, b = split_ids(ids, seed=0), split_ids(list(reversed(ids)), seed=0)
    assert a == b
    assert split_ids(ids, seed=1) != a
    assert sorted(sum(a.values(), [])) == sorted(ids)
    assert [len(a[s]) for s in ("train", "dev", "test")] == [135, 22, 68]
    tiny = split_ids(["x", "y", "z"], seed=0)
    assert all(len(v) == 1 for v in tiny.values())


def test_collection_split_all_and_unknown():
    c = load_collection(shared_collection("med"))
    assert len(c.split("all")) == 30
    assert sum(len(c.split(s)) for s in ("train", "dev", "test")) == 30
    with pytest.raises(DeepRetrievalError, match="no split 'valid'"):
        c.split("valid")


def test_beir_folder(small_collection, tmp_path):
    folder = write_beir(tmp_path / "mini", small_collection)
    c = load_collection(folder)
    assert c.splits == {"test": ["q1", "q2", "q3", "q4"]}
    assert c.examples[0].targets == {"d1": 2, "d2": 1, "d5": 0}


def test_unknown_references_are_counted_not_dropped_silently(small_collection, tmp_path):
    folder = write_beir(tmp_path / "mini", small_collection)
    with (folder / "qrels" / "test.tsv").open("a") as f:
        f.write("q1\tnope\t1\nq9\td1\t1\nq2\tgone\t1\n")
    c = load_collection(folder)
    assert any("2 judgments name unknown documents (first: 'nope' at line" in w for w in c.warnings)
    assert any("1 judgments name unknown queries (first: 'q9'" in w for w in c.warnings)


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n{broken\n', "corpus.jsonl:2: invalid JSON"),
        ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"text": "b"}\n', "corpus.jsonl:2: missing field '_id'"),
        ("queries.jsonl", '{"_id": "q1"}\n', "queries.jsonl:1: missing field 'text'"),
        ("qrels/test.tsv", "q1\td1\tvery\n", "test.tsv:1: score 'very' is not a number"),
        ("qrels/test.tsv", "q7\td7\t1\n", "none of its 1 judgments"),
    ],
)
def test_malformed_input_names_file_and_line(small_collection, tmp_path, file, content, message):
    folder = write_beir(tmp_path / "mini", small_collection)
    (folder / file).write_text(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(")) as info:
        load_collection(folder)
    assert "\n" not in str(info.value)


def test_user_jsonl_with_list_and_graded_targets(small_collection, tmp_path):
    write_beir(tmp_path, small_collection)
    rows = [
        {"id": "a", "question": "heart attack", "targets": ["d1", "d2"]},
        {"id": "b", "question": "kidney", "targets": {"d4": 2}, "meta": {"domain": "medical"}},
        {"id": "c", "question": "pressure", "targets": {"d3": 1}},
    ]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    c = load_collection(tmp_path / "mine.jsonl")
    assert [e.targets for e in c.examples] == [{"d1": 1, "d2": 1}, {"d4": 2}, {"d3": 1}]
    assert c.examples[1].meta == {"domain": "medical"}
    assert sorted(sum(c.splits.values(), [])) == ["a", "b", "c"]
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "question": "q", "targets": "d1"}\n')
    with pytest.raises(DataError, match="bad.jsonl:1: field 'targets'"):
        load_collection(tmp_path / "bad.jsonl")


def test_unrecognised_paths(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_collection(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a BEIR folder"):
        load_collection(tmp_path / "empty")


def test_classic_bad_grade(tmp_path):
    folder = tmp_path / "cranlike"
    folder.mkdir()
    (folder / "cran.all.1400").write_text(".I 1\r\n.T\r\ntitle\r\n.W\r\nsome text\r\n")
    (folder / "cran.qry").write_text(".I 001\r\n.W\r\nsome question\r\n")
    (folder / "cranqrel").write_text("1 1 2\n1 1 7\n")
    with pytest.raises(DataError, match="cranqrel:2: Cleverdon code 7"):
        load_collection(folder)


@pytest.mark.parametrize(
    ("name", "rel", "relevant_codes"), [("cranfield", "cranqrel", {1, 2, 3, 4}), ("med", "MED.REL", {1})]
)
def test_classic_relevant_counts_per_query_match_a_plain_reading(name, rel, relevant_codes):
    """Guards layout detection: each query's relevant documents, counted straight from the judgment file."""
    folder = shared_collection(name)
    expected: dict[str, int] = {}
    for line in (folder / rel).read_text().splitlines():
        if line.split():
            query, _, code = line.split()
            expected[query] = expected.get(query, 0) + (int(code) in relevant_codes)
    c = load_collection(folder)
    assert {e.id: len(e.relevant) for e in c.examples} == expected
    assert sum(expected.values()) == {"cranfield": 1612, "med": 696}[name]
