"""Command-line values a user can get wrong: each is refused with a clean message, never a traceback,
never a silent zero, and never at the cost of the user's files."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from deepretrieval.cli import app

from .conftest import write_beir

runner = CliRunner()


@pytest.fixture
def beir(small_collection, tmp_path):
    return write_beir(tmp_path / "beir", small_collection)


def _eval(beir, tmp_path, *extra):
    return runner.invoke(
        app, ["eval", "--data", str(beir), "--policy", "original", "--out", str(tmp_path / "o"), *extra]
    )


BAD = {
    "batch size 0": ("--batch-size", "0"),
    "k negative": ("--k", "-5"),
    "k zero": ("--k", "0"),
    "unknown method": ("--method", "bm99"),
    "unknown stemmer": ("--stemmer", "klingon"),
    "unknown stopwords": ("--stopwords", "xx"),
    "k1 negative": ("--k1", "-1"),
    "b above 1": ("--b", "7"),
    "prf weight above 1": ("--prf-weight", "2"),
    "prf docs 0": ("--prf-docs", "0"),
}


@pytest.mark.parametrize("flags", list(BAD.values()), ids=list(BAD))
def test_bad_values_are_refused_cleanly(beir, tmp_path, flags):
    result = _eval(beir, tmp_path, *flags)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert flags[0].lstrip("-").split("-")[0] in result.output.lower() or "bm25" in result.output.lower()
    assert not (tmp_path / "o" / "policies").exists()  # nothing half-written


def test_an_unknown_policy_is_refused_before_anything_is_written(beir, tmp_path):
    result = runner.invoke(app, ["eval", "--data", str(beir), "--policy", "nonesuch", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "unknown policy 'nonesuch'" in result.output and "original, prf, oracle" in result.output
    assert not (tmp_path / "o" / "policies").exists()


@pytest.mark.parametrize("command", ["index", "eval"])
def test_a_folder_that_is_not_an_index_is_never_replaced(beir, tmp_path, command):
    """`eval --data m2 --index m2` deleted the collection's own files; `index --out keep` deleted keep/notes.txt."""
    before = {p.name: p.read_bytes() for p in beir.rglob("*") if p.is_file()}
    if command == "index":
        args = ["index", "--data", str(beir), "--out", str(beir)]
    else:
        args = ["eval", "--data", str(beir), "--index", str(beir), "--policy", "original", "--out", str(tmp_path / "o")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "is not an index" in result.output
    assert {p.name: p.read_bytes() for p in beir.rglob("*") if p.is_file()} == before


def test_an_index_of_ours_is_rebuilt_in_place(beir, tmp_path):
    index = tmp_path / "index"
    for _ in range(2):
        assert runner.invoke(app, ["index", "--data", str(beir), "--out", str(index)]).exit_code == 0
    assert (index / "manifest.json").exists()


def test_search_checks_that_the_index_belongs_to_the_data(beir, small_collection, tmp_path):
    index = tmp_path / "index"
    assert runner.invoke(app, ["index", "--data", str(beir), "--out", str(index)]).exit_code == 0
    other = write_beir(tmp_path / "other", small_collection)
    corpus = other / "corpus.jsonl"
    corpus.write_text(corpus.read_text().replace("lithotripsy", "shock waves"))
    result = runner.invoke(app, ["search", "kidney", "--index", str(index), "--data", str(other)])
    assert result.exit_code == 2
    assert "stale" in result.output
