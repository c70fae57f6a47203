"""Generated malformed inputs: one defect per case, each loaded through ``load_collection``.

Every case writes a small valid collection (a BEIR folder, an examples ``.jsonl`` with its
``corpus.jsonl``, or a SMART folder) into ``tmp_path``, applies one defect, and declares its outcome:

- ``error``: a :class:`DataError` whose single line names the file and line (or field / id);
  the CLI prints it as one ``error:`` line and exits 2, with no traceback.
- ``tolerated``: loads, and ``Collection.warnings`` states the count (and the first occurrence).
- ``accepted``: not a defect; loads exactly as the file without it, with no warning.

Decisions per class (the parametrize ids start with the class name):

=====================  ==========  ===============================================================
class                  decision    why
=====================  ==========  ===============================================================
non_utf8               error       any input; a replacement character would be indexed silently
bom                    accepted    every text input is read as UTF-8 with an optional BOM
lone_surrogate         error       ``"\\ud800"`` is not text: the stemmer and the corpus hash fail (a pair is fine)
lone_cr                error       SMART lines end in LF or CRLF; a CR alone made the file one line (wrong file blamed)
nonfinite_grade        error       NaN / Infinity (JSON literals, ``1e999``, qrels ``nan`` / ``inf``)
nonfinite_literal      error       a NaN / Infinity literal anywhere in a record (not JSON)
huge_number            error       an integer of over 4300 digits (Python's limit) is invalid JSON
deep_nesting           error       ``[`` x 100000 is one line of invalid JSON, not a RecursionError
no_indexable_text      error       names the corpus file; bm25s would fail inside indexing
duplicate_document     tolerated   same id and same content: the first is kept, the repeats counted
duplicate_document     error       same id, other content: which one is meant is not ours to guess
duplicate_query        tolerated   (BEIR queries, examples) same id and content; other content: error
duplicate_query        error       SMART query files always: queries are numbered by position
duplicate_key          error       ``{"d1": 1, "d1": 2}``: json would keep the last value silently
repeated_judgment      tolerated   the same pair with the same grade, counted once
conflicting_judgment   error       the same pair with two grades (also across split files)
bad_id                 error       an id that is a list, an object, ``""`` or blank
integer_id             accepted    ``7`` and ``"7"`` name one id
non_string_text        error       a query / question / title / text that is a list or an object
blank_query            error       empty or whitespace-only: it would retrieve nothing
fractional_grade       error       0.5 is not a grade (trec_eval grades are integers); no rounding
integral_float_grade   accepted    ``1.0`` is the grade 1
text_before_record     error       SMART text before the first ``.I`` (or before a field marker)
inline_field           tolerated   ``.T Title``: read as the field's first line, markers counted
empty_judgments        error       a judgment file with nothing or only a header: an empty split
empty_queries          error       a queries file with no record: named, not the qrels that name no known query
corrupt_index          error       ``BM25Searcher.load``: CorruptIndexError, "rebuild it with ..."
=====================  ==========  ===============================================================
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from typer.testing import CliRunner

from deepretrieval.cli import app
from deepretrieval.data import load_collection
from deepretrieval.errors import CorruptIndexError, DataError, DeepRetrievalError, StaleIndexError
from deepretrieval.search.bm25 import BM25Searcher
from deepretrieval.types import Collection, Document

Layout = Literal["beir", "jsonl", "smart"]
Outcome = Literal["error", "tolerated", "accepted"]
Files = dict[str, bytes]  # relative path -> content
Check = Callable[[Collection], bool]

DOCS = [
    ("d1", "heart attack", "aspirin after myocardial infarction"),
    ("d2", "blood pressure", "hypertension drugs lower blood pressure"),
    ("d3", "kidney stones", "lithotripsy breaks kidney stones"),
    ("d4", "diet", "vegetables and fibre"),
]
QUERIES = [("q1", "heart attack treatment"), ("q2", "high blood pressure"), ("q3", "kidney stones")]
JUDGED = [("q1", "d1", 1), ("q2", "d2", 2), ("q3", "d3", 1)]


def jsonl(*records: object) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def corpus() -> bytes:
    return jsonl(*({"_id": i, "title": t, "text": x} for i, t, x in DOCS))


def base(layout: Layout) -> Files:
    """A valid collection. Line numbers the cases rely on: corpus d1..d4 on lines 1-4, queries and
    examples q1..q3 on lines 1-3, qrels header on line 1 and judgments on lines 2-4; SMART documents
    take 5 lines each (``.I 2`` on line 6), queries 3 (``.I 2`` on line 4), judgments 1."""
    if layout == "beir":
        qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in JUDGED)
        return {
            "corpus.jsonl": corpus(),
            "queries.jsonl": jsonl(*({"_id": q, "text": t} for q, t in QUERIES)),
            "qrels/test.tsv": qrels.encode(),
        }
    if layout == "jsonl":
        targets = {q: {d: g} for q, d, g in JUDGED}
        examples = ({"id": q, "question": t, "targets": targets[q]} for q, t in QUERIES)
        return {"corpus.jsonl": corpus(), "examples.jsonl": jsonl(*examples)}
    docs = "".join(f".I {i[1:]}\n.T\n{t}\n.W\n{x}\n" for i, t, x in DOCS)
    queries = "".join(f".I {q[1:]}\n.W\n{t}\n" for q, t in QUERIES)
    rels = "".join(f"{q[1:]} {d[1:]} {g}\n" for q, d, g in JUDGED)
    crlf = {"X.ALL": docs, "X.QRY": queries, "X.REL": rels}  # the Glasgow files' line endings
    return {name: text.replace("\n", "\r\n").encode() for name, text in crlf.items()}


def write(folder: Path, layout: Layout, files: Files) -> Path:
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder / "examples.jsonl" if layout == "jsonl" else folder


# -- defects: each returns a function that edits a copy of the base files ------------------------------
Defect = Callable[[Files], None]


def replace(name: str, content: bytes | str) -> Defect:
    def apply(files: Files) -> None:
        files[name] = content.encode() if isinstance(content, str) else content

    return apply


def append(name: str, content: bytes | str) -> Defect:
    def apply(files: Files) -> None:
        files[name] += content.encode() if isinstance(content, str) else content

    return apply


def edit(name: str, old: bytes | str, new: bytes | str) -> Defect:
    def apply(files: Files) -> None:
        old_b = old.encode() if isinstance(old, str) else old
        assert old_b in files[name], f"{old_b!r} not in {name}"
        files[name] = files[name].replace(old_b, new.encode() if isinstance(new, str) else new, 1)

    return apply


def prepend_bom(*names: str) -> Defect:
    def apply(files: Files) -> None:
        for name in names:
            files[name] = b"\xef\xbb\xbf" + files[name]

    return apply


@dataclass(frozen=True)
class Case:
    id: str  # "<class>/<where>": the class first, so `pytest -k` and the ids group by class
    layout: Layout
    defect: Defect
    outcome: Outcome
    expect: str = ""  # error: a part of the message (file:line ...); tolerated: a part of one warning
    check: Check | None = None  # anything else that must hold after loading

    def files(self) -> Files:
        files = base(self.layout)
        self.defect(files)
        return files


def doc(i: str, title: str, text: str) -> dict[str, str]:
    return {"_id": i, "title": title, "text": text}


def example(i: str, question: object, targets: object) -> dict[str, object]:
    return {"id": i, "question": question, "targets": targets}


def error(case_id: str, layout: Layout, defect: Defect, expect: str) -> Case:
    return Case(case_id, layout, defect, "error", expect)


def tolerated(case_id: str, layout: Layout, defect: Defect, expect: str, check: Check | None = None) -> Case:
    return Case(case_id, layout, defect, "tolerated", expect, check)


def accepted(case_id: str, layout: Layout, defect: Defect, check: Check | None = None) -> Case:
    return Case(case_id, layout, defect, "accepted", check=check)


def bom_and_no_header(files: Files) -> None:
    prepend_bom("qrels/test.tsv")(files)
    edit("qrels/test.tsv", "query-id\tcorpus-id\tscore\n", "")(files)


BAD_BYTE = b"caf\xe9 au lait"  # Latin-1, as old files are
SURROGATE_TITLE = '{"_id": "d5", "title": "\\ud800 broken", "text": "some text"}\n'
SURROGATE_TEXT = '{"_id": "d5", "title": "t", "text": "broken \\udfff"}\n'
DEEP = "[" * 100_000 + "\n"
# Deep enough that a recursive search for the surrogate overflowed the stack; shallow enough to decode.
DEEP_SURROGATE = '{"_id": "d5", "text": "t", "x": ' + "[" * 500 + '"\\ud800"' + "]" * 500 + "}\n"
NOT_FINITE = "is not a finite number"

# fmt: off
CASES = [
    # -- tracebacks before ---------------------------------------------------------------------------------------
    error("non_utf8/beir-corpus", "beir", append("corpus.jsonl", b'{"_id": "d5", "text": "' + BAD_BYTE + b'"}\n'),
          "corpus.jsonl:5: not UTF-8: byte 0xe9 at column 27"),
    error("non_utf8/beir-queries", "beir", edit("queries.jsonl", "high blood", b"high \xff blood"),
          "queries.jsonl:2: not UTF-8: byte 0xff"),
    error("non_utf8/beir-qrels", "beir", append("qrels/test.tsv", b"q1\td\xe92\t1\n"), "test.tsv:5: not UTF-8"),
    error("non_utf8/jsonl-examples", "jsonl", edit("examples.jsonl", "kidney", b"kidn\xe9y"),
          "examples.jsonl:3: not UTF-8"),
    error("non_utf8/jsonl-corpus", "jsonl", edit("corpus.jsonl", "fibre", b"fibr\xe9"), "corpus.jsonl:4: not UTF-8"),
    error("non_utf8/smart-docs", "smart", edit("X.ALL", "fibre", b"fibr\xe9"), "X.ALL:20: not UTF-8"),
    error("non_utf8/smart-queries", "smart", edit("X.QRY", "high", b"h\xefgh"), "X.QRY:6: not UTF-8"),
    error("non_utf8/smart-judgments", "smart", edit("X.REL", "2 2 2", b"2 2\xa0 2"), "X.REL:2: not UTF-8"),
    error("lone_surrogate/beir-title", "beir", append("corpus.jsonl", SURROGATE_TITLE),
          "corpus.jsonl:5: field 'title' holds a lone surrogate"),
    error("lone_surrogate/beir-text", "beir", append("corpus.jsonl", SURROGATE_TEXT),
          "corpus.jsonl:5: field 'text' holds a lone surrogate"),
    error("lone_surrogate/beir-query", "beir", edit("queries.jsonl", "kidney stones", "kidney \\udc00 stones"),
          "queries.jsonl:3: field 'text' holds a lone surrogate"),
    accepted("lone_surrogate/valid-pair", "beir", edit("queries.jsonl", "kidney stones", "kidney \\ud83e\\udea8"),
             lambda c: c.examples[2].question == "kidney \U0001faa8"),
    error("lone_surrogate/jsonl-question", "jsonl", edit("examples.jsonl", "high blood", "high \\uD83D blood"),
          "examples.jsonl:2: field 'question' holds a lone surrogate"),
    error("lone_surrogate/beir-nested-deep", "beir", append("corpus.jsonl", DEEP_SURROGATE),
          "corpus.jsonl:5: field 'x[0][0][0]"),
    error("lone_surrogate/jsonl-meta", "jsonl", edit("examples.jsonl", '"question": "kidney stones"',
                                                      '"question": "kidney stones", "meta": {"n": ["a", "\\udc00"]}'),
          "examples.jsonl:3: field 'meta.n[1]' holds a lone surrogate"),
    error("lone_cr/smart-docs", "smart", edit("X.ALL", "\r\n", "\r"), "X.ALL:1: a carriage return (CR) inside a line"),
    error("lone_cr/smart-queries", "smart", replace("X.QRY", base("smart")["X.QRY"].replace(b"\r\n", b"\r")),
          "X.QRY:1: a carriage return (CR) inside a line: line endings must be LF or CRLF"),
    error("lone_cr/smart-judgments", "smart", replace("X.REL", base("smart")["X.REL"].replace(b"\r\n", b"\r")),
          "X.REL:1: a carriage return (CR) inside a line"),
    error("lone_cr/smart-docs-all", "smart", replace("X.ALL", base("smart")["X.ALL"].replace(b"\r\n", b"\r")),
          "X.ALL:1: a carriage return (CR) inside a line"),
    error("nonfinite_grade/jsonl-NaN", "jsonl", edit("examples.jsonl", '{"d2": 2}', '{"d2": NaN}'),
          "examples.jsonl:2: invalid JSON (NaN is not a JSON number"),
    error("nonfinite_grade/jsonl-Infinity", "jsonl", edit("examples.jsonl", '{"d2": 2}', '{"d2": -Infinity}'),
          "examples.jsonl:2: invalid JSON (-Infinity is not a JSON number"),
    error("nonfinite_grade/jsonl-1e999", "jsonl", edit("examples.jsonl", '{"d2": 2}', '{"d2": 1e999}'),
          f"examples.jsonl:2: grade inf {NOT_FINITE}"),
    error("nonfinite_grade/beir-nan", "beir", edit("qrels/test.tsv", "q2\td2\t2", "q2\td2\tnan"),
          f"test.tsv:3: score nan {NOT_FINITE}"),
    error("nonfinite_grade/beir-inf", "beir", edit("qrels/test.tsv", "q2\td2\t2", "q2\td2\tinf"),
          f"test.tsv:3: score inf {NOT_FINITE}"),
    error("nonfinite_grade/smart-nan", "smart", edit("X.REL", "2 2 2", "2 2 NaN"), f"X.REL:2: grade nan {NOT_FINITE}"),
    error("nonfinite_literal/beir-corpus", "beir", append("corpus.jsonl", '{"_id": "d5", "text": "x", "year": NaN}\n'),
          "corpus.jsonl:5: invalid JSON (NaN is not a JSON number"),
    error("huge_number/jsonl-grade", "jsonl", edit("examples.jsonl", '{"d2": 2}', '{"d2": ' + "9" * 5000 + "}"),
          "examples.jsonl:2: invalid JSON ("),  # the wording is Python's ("Exceeds the limit (4300 digits) ...")
    error("deep_nesting/beir-corpus", "beir", append("corpus.jsonl", DEEP),
          "corpus.jsonl:5: invalid JSON (nested too deeply)"),
    error("deep_nesting/beir-queries", "beir", replace("queries.jsonl", DEEP), "queries.jsonl:1: invalid JSON (nested"),
    error("deep_nesting/jsonl-examples", "jsonl", append("examples.jsonl", '{"id": "q4", "meta": ' + DEEP),
          "examples.jsonl:4: invalid JSON (nested too deeply)"),
    error("no_indexable_text/beir-empty", "beir", replace("corpus.jsonl", jsonl(doc("d1", "", ""), {"_id": "d2"})),
          "corpus.jsonl: none of its 2 documents has indexable text"),
    error("no_indexable_text/beir-stopwords", "beir",
          replace("corpus.jsonl", jsonl(doc("d1", "The", "of the and"), doc("d2", "...", "a , ; I ! 7"))),
          "corpus.jsonl: none of its 2 documents has indexable text"),
    error("no_indexable_text/jsonl-corpus", "jsonl", replace("corpus.jsonl", jsonl(doc("d1", " ", "\t"))),
          "corpus.jsonl: none of its 1 documents has indexable text"),
    error("no_indexable_text/smart-docs", "smart", replace("X.ALL", ".I 1\r\n.T\r\n\r\n.W\r\nit is\r\n.I 2\r\n.W\r\n"),
          "X.ALL: none of its 2 documents has indexable text"),
    # -- silently wrong before -----------------------------------------------------------------------------------
    tolerated("duplicate_document/beir-same", "beir", append("corpus.jsonl", jsonl(doc(*DOCS[1]), doc(*DOCS[1]))),
              "corpus.jsonl: 2 duplicate document ids (first: 'd2' at line 5); identical to the first occurrence",
              lambda c: [d.id for d in c.documents] == ["d1", "d2", "d3", "d4"]),
    error("duplicate_document/beir-other", "beir", append("corpus.jsonl", jsonl(doc("d2", "blood", "other text"))),
          "corpus.jsonl:5: duplicate document id 'd2' with other content than at line 2"),
    tolerated("duplicate_document/smart-same", "smart",
              append("X.ALL", ".I 4\r\n.T\r\ndiet\r\n.W\r\nvegetables and fibre\r\n"),
              "X.ALL: 1 duplicate document ids (first: '4' at line 21)", lambda c: len(c.documents) == 4),
    error("duplicate_document/smart-other", "smart", append("X.ALL", ".I 004\r\n.W\r\nsomething else\r\n"),
          "X.ALL:21: duplicate document id '4' with other content than at line 16"),
    tolerated("duplicate_query/beir-same", "beir", append("queries.jsonl", jsonl({"_id": "q1", "text": QUERIES[0][1]})),
              "queries.jsonl: 1 duplicate query ids (first: 'q1' at line 4)"),
    error("duplicate_query/beir-other", "beir", append("queries.jsonl", jsonl({"_id": "q1", "text": "heart failure"})),
          "queries.jsonl:4: duplicate query id 'q1' with other content than at line 1"),
    tolerated("duplicate_query/jsonl-same", "jsonl",
              append("examples.jsonl", jsonl(example("q3", "kidney stones", {"d3": 1}))),
              "examples.jsonl: 1 duplicate example ids (first: 'q3' at line 4)",
              lambda c: [e.id for e in c.examples] == ["q1", "q2", "q3"]),
    error("duplicate_query/jsonl-other-targets", "jsonl",
          append("examples.jsonl", jsonl(example("q3", "kidney stones", {"d4": 1}))),
          "examples.jsonl:4: duplicate example id 'q3' with other content than at line 3"),
    error("duplicate_query/smart", "smart", append("X.QRY", ".I 2\r\n.W\r\nhigh blood pressure\r\n"),
          "X.QRY:10: query .I 2 repeats the one at line 4"),
    error("duplicate_key/jsonl-targets", "jsonl", edit("examples.jsonl", '{"d2": 2}', '{"d2": 2, "d2": 0}'),
          "examples.jsonl:2: invalid JSON (key 'd2' appears twice in one object)"),
    error("duplicate_key/beir-record", "beir", edit("corpus.jsonl", '"_id": "d4"', '"_id": "d4", "_id": "d5"'),
          "corpus.jsonl:4: invalid JSON (key '_id' appears twice"),
    tolerated("repeated_judgment/beir", "beir", append("qrels/test.tsv", "q2\td2\t2\n"),
              "qrels/test.tsv: 1 judgments repeat an earlier one with the same grade (first: ('q2', 'd2') at line 5)"),
    tolerated("repeated_judgment/beir-two-splits", "beir", replace("qrels/train.tsv", "q2\td2\t2\n"),
              "qrels/train.tsv: 1 judgments repeat",
              lambda c: c.splits == {"test": ["q1", "q2", "q3"], "train": ["q2"]}),
    tolerated("repeated_judgment/jsonl-list", "jsonl", edit("examples.jsonl", '{"d1": 1}', '["d1", "d1"]'),
              "examples.jsonl: 1 judgments repeat an earlier one with the same grade (first: ('q1', 'd1') at line 1)"),
    error("conflicting_judgment/beir", "beir", append("qrels/test.tsv", "q2\td2\t0\n"),
          "qrels/test.tsv:5: query 'q2' grades document 'd2' 0, but 2 at qrels/test.tsv:3"),
    error("conflicting_judgment/beir-two-splits", "beir", replace("qrels/train.tsv", "q2\td2\t1\n"),
          "qrels/train.tsv:1: query 'q2' grades document 'd2' 1, but 2 at qrels/test.tsv:3"),
    error("conflicting_judgment/smart", "smart", append("X.REL", "3 3 0\r\n"),
          "X.REL:4: query '3' grades document '3' 0, but 1 at X.REL:3"),
    error("bad_id/beir-list", "beir", append("corpus.jsonl", jsonl({"_id": ["d5"], "text": "x"})),
          "corpus.jsonl:5: field '_id' must be a non-empty string or an integer, got [\"d5\"]"),
    error("bad_id/beir-object", "beir", append("queries.jsonl", jsonl({"_id": {"q": 4}, "text": "t"})),
          "queries.jsonl:4: field '_id' must be a non-empty string or an integer, got {\"q\": 4}"),
    error("bad_id/beir-empty", "beir", append("corpus.jsonl", jsonl(doc("", "t", "x"))),
          "corpus.jsonl:5: field '_id' must be a non-empty"),
    error("bad_id/beir-blank-alt", "beir", append("corpus.jsonl", jsonl({"id": "  ", "text": "x"})),
          "corpus.jsonl:5: field 'id' must be a non-empty"),
    error("bad_id/jsonl-example", "jsonl", append("examples.jsonl", jsonl(example(["q4"], "t", {}))),
          "examples.jsonl:4: field 'id' must be a non-empty string or an integer"),
    error("bad_id/jsonl-target-key", "jsonl", edit("examples.jsonl", '{"d2": 2}', '{"": 2}'),
          "examples.jsonl:2: a target document id must be a non-empty string or an integer, got \"\""),
    error("bad_id/jsonl-target-list", "jsonl", edit("examples.jsonl", '{"d1": 1}', '[{"d1": 1}]'),
          "examples.jsonl:1: a target document id must be a non-empty string or an integer"),
    accepted("integer_id/beir", "beir", append("corpus.jsonl", jsonl({"_id": 5, "text": "a fifth document"})),
             lambda c: c.documents[-1].id == "5"),
    error("non_string_text/beir-query-list", "beir", append("queries.jsonl", jsonl({"_id": "q4", "text": ["a", "b"]})),
          "queries.jsonl:4: field 'text' must be a string, got [\"a\", \"b\"]"),
    error("non_string_text/beir-corpus-object", "beir", append("corpus.jsonl", jsonl({"_id": "d5", "text": {"e": 1}})),
          "corpus.jsonl:5: field 'text' must be a string"),
    error("non_string_text/beir-title-number", "beir", append("corpus.jsonl", jsonl({"_id": "d5", "title": 1984})),
          "corpus.jsonl:5: field 'title' must be a string, got 1984"),
    error("non_string_text/jsonl-question-object", "jsonl", append("examples.jsonl", jsonl(example("q4", {}, {}))),
          "examples.jsonl:4: field 'question' must be a string"),
    error("blank_query/beir-empty", "beir", append("queries.jsonl", jsonl({"_id": "q4", "text": ""})),
          "queries.jsonl:4: field 'text' is blank"),
    error("blank_query/beir-whitespace", "beir", edit("queries.jsonl", '"heart attack treatment"', '" \\t "'),
          "queries.jsonl:1: field 'text' is blank"),
    error("blank_query/jsonl", "jsonl", edit("examples.jsonl", '"kidney stones"', '"   "'),
          "examples.jsonl:3: field 'question' is blank"),
    error("blank_query/smart", "smart", edit("X.QRY", "kidney stones", "  "), "X.QRY:7: query 3 has no .W text"),
    error("fractional_grade/beir", "beir", edit("qrels/test.tsv", "q2\td2\t2", "q2\td2\t0.5"),
          "test.tsv:3: score 0.5 is not an integer (trec_eval grades are integers)"),
    error("fractional_grade/jsonl", "jsonl", edit("examples.jsonl", '{"d2": 2}', '{"d2": 0.7}'),
          "examples.jsonl:2: grade 0.7 is not an integer"),
    error("fractional_grade/smart", "smart", edit("X.REL", "2 2 2", "2 2 1.5"), "X.REL:2: grade 1.5 is not an integer"),
    accepted("integral_float_grade/beir", "beir", edit("qrels/test.tsv", "q2\td2\t2", "q2\td2\t2.0")),
    accepted("integral_float_grade/jsonl", "jsonl", edit("examples.jsonl", '{"d2": 2}', '{"d2": 2.0}')),
    accepted("integral_float_grade/smart", "smart", edit("X.REL", "2 2 2", "2 2 2.000")),
    error("text_before_record/smart-docs", "smart", edit("X.ALL", ".I 1", "Cranfield collection\r\n\r\n.I 1"),
          "X.ALL:1: text before the first .I record"),
    error("text_before_record/smart-queries", "smart", edit("X.QRY", ".I 1", "\r\n  queries  \r\n.I 1"),
          "X.QRY:2: text before the first .I record"),
    error("text_before_record/smart-before-field", "smart", edit("X.ALL", ".I 2\r\n", ".I 2\r\nstray text\r\n"),
          "X.ALL:7: text in record .I 2 before any field marker"),
    tolerated("inline_field/smart-docs", "smart", edit("X.ALL", ".T\r\nblood pressure", ".T blood pressure"),
              "X.ALL: 1 field markers have text on the same line (first: '.T' at line 7)",
              lambda c: (c.documents[1].title, c.documents[1].text) == ("blood pressure", DOCS[1][2])),
    tolerated("inline_field/smart-queries", "smart", edit("X.QRY", ".W\r\nkidney", ".W  kidney"),
              "X.QRY: 1 field markers have text on the same line (first: '.W' at line 8)",
              lambda c: c.examples[2].question == "kidney stones"),
    error("empty_judgments/beir-header-only", "beir", replace("qrels/test.tsv", "query-id\tcorpus-id\tscore\n"),
          "test.tsv: no judgments (the file is empty or only a header)"),
    error("empty_judgments/beir-empty-split", "beir", replace("qrels/dev.tsv", ""), "dev.tsv: no judgments"),
    error("empty_judgments/smart", "smart", replace("X.REL", "\r\n"), "X.REL: no judgments"),
    error("empty_queries/beir-empty", "beir", replace("queries.jsonl", ""),
          "queries.jsonl: no queries (the file is empty)"),
    error("empty_queries/beir-blank-lines", "beir", replace("queries.jsonl", "\n \n"), "queries.jsonl: no queries"),
    # -- byte-order marks: accepted on every input ---------------------------------------------------------------
    accepted("bom/beir-all-files", "beir", prepend_bom("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")),
    accepted("bom/beir-qrels-without-header", "beir", bom_and_no_header),
    accepted("bom/jsonl-all-files", "jsonl", prepend_bom("corpus.jsonl", "examples.jsonl")),
    accepted("bom/smart-all-files", "smart", prepend_bom("X.ALL", "X.QRY", "X.REL")),
]
# fmt: on


def load(tmp_path: Path, case: Case) -> Collection:
    return load_collection(write(tmp_path, case.layout, case.files()))


def summary(c: Collection) -> tuple:
    return (
        [(d.id, d.title, d.text) for d in c.documents],
        [(e.id, e.question, e.targets, e.meta) for e in c.examples],
        c.splits,
    )


def test_every_class_is_in_the_docstring_table():
    assert len({c.id for c in CASES}) == len(CASES)
    classes = {c.id.split("/")[0] for c in CASES} | {"corrupt_index"}
    assert {name for name in classes if f"\n{name} " not in __doc__} == set()


@pytest.mark.parametrize("layout", ["beir", "jsonl", "smart"])
def test_the_base_collections_load_cleanly(tmp_path, layout):
    c = load_collection(write(tmp_path, layout, base(layout)))
    assert (len(c.documents), len(c.examples), c.warnings) == (4, 3, [])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input(tmp_path, case):
    if case.outcome == "error":
        with pytest.raises(DataError) as info:
            load(tmp_path, case)
        message = str(info.value)
        assert "\n" not in message
        assert case.expect in message
        assert info.value.__cause__ is None  # `from None`: nothing chained onto the one line
        return
    c = load(tmp_path, case)
    if case.outcome == "tolerated":
        assert any(case.expect in w for w in c.warnings), c.warnings
        assert len(c.warnings) == 1, c.warnings
    else:
        clean = load_collection(write(tmp_path / "clean", case.layout, base(case.layout)))
        assert c.warnings == []
        if case.check is None:
            assert summary(c) == summary(clean)
    if case.check is not None:
        assert case.check(c)


ERRORS = [c for c in CASES if c.outcome == "error"]


@pytest.mark.parametrize("case", ERRORS, ids=[c.id for c in ERRORS])
def test_cli_prints_one_line_and_exits_2(tmp_path, case):
    spec = write(tmp_path, case.layout, case.files())
    result = CliRunner().invoke(app, ["info", "--data", str(spec)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert case.expect in lines[0]
    assert "Traceback" not in result.output


# -- corrupt index folders: BM25Searcher.load ----------------------------------------------------------------
def _edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(index: Path) -> None:
        data = json.loads((index / name).read_text())
        (index / name).write_text(json.dumps(change(data)))

    return apply


def _without(key: str) -> Callable[[dict], dict]:
    return lambda d: {k: v for k, v in d.items() if k != key}


INDEX_DAMAGE: dict[str, tuple[Callable[[Path], object], str]] = {
    "missing-doc_tokens": (lambda i: (i / "doc_tokens.npy").unlink(), "doc_tokens.npy is missing"),
    "missing-doc_offsets": (lambda i: (i / "doc_offsets.npy").unlink(), "doc_offsets.npy is missing"),
    "missing-doc_ids": (lambda i: (i / "doc_ids.json").unlink(), "doc_ids.json is missing"),
    "missing-bm25s-array": (lambda i: (i / "data.csc.index.npy").unlink(), "data.csc.index.npy is missing"),
    "missing-bm25s-vocab": (lambda i: (i / "vocab.index.json").unlink(), "vocab.index.json is missing"),
    "truncated-doc_tokens": (
        lambda i: (i / "doc_tokens.npy").write_bytes(b"\x93NUMPY"),
        "doc_tokens.npy cannot be read",
    ),
    "garbage-bm25s-array": (
        lambda i: (i / "indptr.csc.index.npy").write_bytes(b"junk"),
        "bm25s's files cannot be read",
    ),
    "manifest-broken-json": (
        lambda i: (i / "manifest.json").write_text("{"),
        "manifest.json cannot be read (Expecting",
    ),
    "manifest-not-object": (lambda i: (i / "manifest.json").write_text("[]"), "manifest.json lacks one of"),
    "manifest-missing-key": (_edit_json("manifest.json", _without("corpus_sha256")), "manifest.json lacks one of"),
    "manifest-missing-setting": (
        _edit_json("manifest.json", lambda m: {**m, "settings": _without("k1")(m["settings"])}),
        "'settings' must name exactly",
    ),
    "manifest-bad-setting": (
        _edit_json("manifest.json", lambda m: {**m, "settings": {**m["settings"], "method": "bm99"}}),
        "manifest.json has unusable settings",
    ),
    "doc_ids-broken-json": (lambda i: (i / "doc_ids.json").write_text('["d1"'), "doc_ids.json cannot be read"),
    "doc_ids-other-build": (lambda i: (i / "doc_ids.json").write_text('["d1"]'), "its parts disagree"),
    "doc_ids-not-strings": (lambda i: (i / "doc_ids.json").write_text("[1, 2, 3, 4]"), "not a list of document ids"),
}


@pytest.fixture(scope="module")
def built_index(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("index") / "idx"
    BM25Searcher.build([Document(i, t, x) for i, t, x in DOCS]).save(folder)
    return folder


@pytest.mark.parametrize("damage", INDEX_DAMAGE, ids=[f"corrupt_index/{name}" for name in INDEX_DAMAGE])
def test_corrupt_index_is_one_line_asking_for_a_rebuild(tmp_path, built_index, damage):
    index = tmp_path / "idx"
    shutil.copytree(built_index, index)
    apply, expect = INDEX_DAMAGE[damage]
    apply(index)
    for mmap in (True, False):
        with pytest.raises(CorruptIndexError) as info:
            BM25Searcher.load(index, mmap=mmap)
        message = str(info.value)
        assert "\n" not in message and expect in message
        assert message.startswith(f"index at {index} is damaged: ")
        assert message.endswith("rebuild it with `deepretrieval index`")
    assert isinstance(info.value, StaleIndexError) and isinstance(info.value, DeepRetrievalError)
    result = CliRunner().invoke(app, ["search", "heart", "--index", str(index)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith("error: index at") and result.output.count("\n") <= 1, result.output


def test_an_undamaged_copy_still_loads(tmp_path, built_index):
    shutil.copytree(built_index, tmp_path / "idx")
    assert BM25Searcher.load(tmp_path / "idx").search(["kidney stones"], 2)[0].ids[0] == "d3"
