"""SMART collections beyond Cranfield and MED: other file names and judgment layouts (Glasgow set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepretrieval.data import load_collection
from deepretrieval.data.classic import find_files, read_judgments
from deepretrieval.errors import DataError

# CACM's qrels.text, with the zero-padded query ids and double space of the original.
CACM_QRELS = "01 0002  0 0\n01 0003  0 0\n02 0001  0 0\n02 0004  0 0\n02 0005  0 0\n"
# CISI.REL: leading spaces, tabs, a float 4th column.
CISI_REL = "     1     2\t0\t0.000000\n     1     3\t0\t0.000000\n     2     5\t0\t0.000000\n"


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def write_smart(folder: Path, names: tuple[str, str, str], judgments: str, *, extra: tuple[str, ...] = ()) -> Path:
    """Five CACM-like documents (with .B/.A/.N/.X fields) and three queries, CRLF line endings."""
    folder.mkdir(parents=True)
    docs = "".join(
        f".I {i}\n.T\nTitle {i}\n.W\ntext of document {i}\n.B\nCACM December, 1958\n.A\nPerlis, A. J.\n"
        f".N\nCA581203 JB March 22, 1978\n.X\n{i}\t5\t{i}\n"
        for i in range(1, 6)
    )
    queries = "".join(f".I {i}\n.W\nquestion number {i}\n.A\nSalton, G.\n.N\n {i}. Salton\n" for i in range(1, 4))
    doc_name, query_name, rel_name = names
    (folder / doc_name).write_bytes(crlf(docs))
    (folder / query_name).write_bytes(crlf(queries))
    (folder / rel_name).write_bytes(crlf(judgments))
    for name in extra:  # the distributions' other files must not confuse recognition
        (folder / name).write_bytes(b"x\r\n")
    return folder


CACM_NAMES = ("cacm.all", "query.text", "qrels.text")
CISI_NAMES = ("CISI.ALL", "CISI.QRY", "CISI.REL")


@pytest.mark.parametrize("query_name", ["query.text", "cacm.qry"])
def test_cacm_folder_with_qrels_text_lists_relevant_pairs(tmp_path, query_name):
    folder = write_smart(
        tmp_path / "cacm",
        ("cacm.all", query_name, "qrels.text"),
        CACM_QRELS,
        extra=("cite.info", "common_words", "README"),
    )
    c = load_collection(folder)
    assert (c.name, len(c.documents), len(c.examples)) == ("cacm", 5, 3)
    assert [e.targets for e in c.examples] == [{"2": 1, "3": 1}, {"1": 1, "4": 1, "5": 1}, {}]
    assert [len(e.relevant) for e in c.examples] == [2, 3, 0]
    assert c.warnings == ["qrels.text: 1 queries have no relevant document (they score 0)"]
    assert c.examples[0].question == "question number 1"
    assert all("\r" not in d.text and "\r" not in d.title for d in c.documents)


def test_cisi_rel_with_unused_float_column(tmp_path):
    c = load_collection(write_smart(tmp_path / "cisi", CISI_NAMES, CISI_REL, extra=("CISI.BLN",)))
    assert [e.targets for e in c.examples] == [{"2": 1, "3": 1}, {"5": 1}, {}]


@pytest.mark.parametrize(
    ("judgments", "layout", "targets"),
    [
        ("1 2\n1 3\n2 5\n", "pairs", [{"2": 1, "3": 1}, {"5": 1}, {}]),
        ("1 2 2\n1 3 0\n2 5 1\n", "grades", [{"2": 2, "3": 0}, {"5": 1}, {}]),  # MED.REL style
        ("1 0 2 2\n1 0 3 0\n2 Q0 5 1\n", "trec", [{"2": 2, "3": 0}, {"5": 1}, {}]),
        (CACM_QRELS, "pairs", [{"2": 1, "3": 1}, {"1": 1, "4": 1, "5": 1}, {}]),
        (CISI_REL, "pairs", [{"2": 1, "3": 1}, {"5": 1}, {}]),
    ],
)
def test_layout_is_detected_per_file(tmp_path, judgments, layout, targets):
    folder = write_smart(tmp_path / "x", ("X.ALL", "X.QRY", "X.REL"), judgments)
    assert read_judgments(folder / "X.REL")[0] == layout
    assert [e.targets for e in load_collection(folder).examples] == targets


@pytest.mark.parametrize(
    ("names", "extra"),
    [
        (CACM_NAMES, ("cite.info", "common_words", "README")),
        (("adi.all", "query.text", "qrels.text"), ()),
        (CISI_NAMES, ("CISI.BLN",)),
        (("cran.all.1400", "cran.qry", "cranqrel"), ("cranqrel.readme",)),
        (("MED.ALL", "MED.QRY", "MED.REL"), ()),
    ],
)
def test_find_files_recognises_the_glasgow_names(tmp_path, names, extra):
    folder = write_smart(tmp_path / "c", names, "1 1 1\n", extra=extra)
    assert find_files(folder) == tuple(folder / n for n in names)


@pytest.mark.parametrize(
    ("judgments", "message"),
    [
        # Every pair judged not relevant: a table of zeros is not a result.
        ("1 2 0\n2 5 0\n", r"X\.REL: no relevant judgment among its 2 usable ones \(read as the 'grades' layout\)"),
        ("", r"X\.REL: no judgments"),
        ("1 0 2 0\n", r"X\.REL: no relevant judgment"),
        # One file, one layout: a short or long line is named, not read with another meaning.
        ("1 2 0 0\n1 3 0 0\n1 4\n", r"X\.REL:3: 2 columns where the rest of the file has 4"),
        ("1 2 1\n\n1 3 1 5\n1 4 1\n", r"X\.REL:3: 4 columns where the rest of the file has 3"),
        # A 4th column that is not always 0 leaves the grade column unknown: stop rather than guess.
        ("1 2 0 0\n1 3 1 0\n", r"X\.REL: 4 columns, but neither 'query doc 0 0'"),
        ("1 2 3 4 5\n", r"X\.REL: 5 columns: not a known judgment layout"),
        ("1\n2\n", r"X\.REL: 1 columns: not a known judgment layout"),
        ("1 2 yes\n", r"X\.REL:1: grade 'yes' is not an integer"),
    ],
)
def test_judgments_that_cannot_be_read_stop_with_one_line(tmp_path, judgments, message):
    folder = write_smart(tmp_path / "x", ("X.ALL", "X.QRY", "X.REL"), judgments)
    with pytest.raises(DataError, match=message) as info:
        load_collection(folder)
    assert "\n" not in str(info.value)


def test_cranqrel_must_have_three_columns(tmp_path):
    folder = write_smart(tmp_path / "cran", ("cran.all.1400", "cran.qry", "cranqrel"), "1 2 1 0\n")
    with pytest.raises(DataError, match=r"cranqrel: expected 'query doc code' \(3 columns\), got 4"):
        load_collection(folder)
