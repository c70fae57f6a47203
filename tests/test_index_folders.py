"""The two search protocols (``search.base``) and the one index-folder base (``search.folders``).

Protocols: every backend class implements the protocol it is typed against, with its own methods (not the
protocol's stubs) and the protocol's parameters; RM3 feedback works through a backend that has nothing but
the public text-retrieval methods. Folders: one ``corpus_hash`` (its digest derived here by hand from the
documented byte layout, so cached index folders keep their keys), staged saves that never leave half an
index, and one error per problem for every kind (no folder: SearchFailure; damaged: CorruptIndexError;
another kind, format, corpus or settings: StaleIndexError).
"""

from __future__ import annotations

import datetime
import hashlib
import inspect
import json
import shutil
from pathlib import Path

import pytest

from deepretrieval.errors import CorruptIndexError, DeepRetrievalError, SearchFailure, StaleIndexError
from deepretrieval.feedback import FeedbackProvider, FeedbackSettings, SelectionProvider, rm3_queries
from deepretrieval.search.base import BooleanRequest, BooleanSearcher, TextSearcher
from deepretrieval.search.bm25 import BM25Searcher
from deepretrieval.search.boolean import BooleanIndex
from deepretrieval.search.ctgov import CTGovSearcher
from deepretrieval.search.dense import DenseSearcher
from deepretrieval.search.folders import IndexFolder, corpus_hash
from deepretrieval.search.hybrid import HybridSearcher
from deepretrieval.search.lucene import LuceneSearcher
from deepretrieval.search.pubmed import PubMedSearcher
from deepretrieval.search.pubmed_syntax import QuerySyntaxError
from deepretrieval.types import Document, Example


def _members(protocol: type) -> list[str]:
    return sorted(n for n, v in vars(protocol).items() if not n.startswith("_") and callable(v))


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("backend", "protocol"),
    [
        (BM25Searcher, TextSearcher),
        (DenseSearcher, TextSearcher),
        (HybridSearcher, TextSearcher),
        (LuceneSearcher, TextSearcher),
        (BooleanIndex, BooleanSearcher),
        (PubMedSearcher, BooleanSearcher),
        (CTGovSearcher, BooleanSearcher),
    ],
)
def test_every_backend_implements_its_protocol_itself(backend, protocol):
    assert _members(TextSearcher) == [
        "analyze",
        "analyze_many",
        "describe",
        "doc_term_counts",
        "search",
        "search_weighted",
    ]
    assert _members(BooleanSearcher) == ["describe", "search"]
    for name in _members(protocol):
        implementation = getattr(backend, name)
        assert implementation is not getattr(protocol, name), f"{backend.__name__}.{name} is the protocol's stub"
        assert _parameters(implementation) == _parameters(getattr(protocol, name)), f"{backend.__name__}.{name}"


def test_built_indexes_are_instances_of_their_protocol(small_collection):
    bm25 = BM25Searcher.build(small_collection.documents)
    boolean = BooleanIndex.build(small_collection.documents)
    assert isinstance(bm25, TextSearcher) and isinstance(boolean, BooleanSearcher)
    [ranking] = boolean.search([BooleanRequest("kidney")], 5)
    assert ranking.ids == ["d4"]  # the one document with 'kidney' (its title)
    [verdict] = boolean.search([BooleanRequest('"unclosed phrase')], 5)
    assert isinstance(verdict, QuerySyntaxError)  # a verdict in its slot, not an exception


class PublicOnly:
    """A text backend with nothing but the protocol's public methods (a new backend is this one class)."""

    def __init__(self, inner: BM25Searcher) -> None:
        self._inner = inner

    def search(self, queries, k):
        return self._inner.search(queries, k)

    def search_weighted(self, weights, k):
        return self._inner.search_weighted(weights, k)

    def analyze(self, text):
        return self._inner.analyze(text)

    def analyze_many(self, texts):
        return self._inner.analyze_many(texts)

    def doc_term_counts(self, doc_id):
        return self._inner.doc_term_counts(doc_id)

    def describe(self):
        return {"backend": "public-only"}


def test_feedback_needs_only_the_public_text_protocol(small_collection):
    bm25 = BM25Searcher.build(small_collection.documents)
    public = PublicOnly(bm25)
    assert isinstance(public, TextSearcher) and not hasattr(public, "_analyze_many")
    examples = [Example("q1", "heart attack aspirin", {}), Example("q2", "kidney stone treatment", {})]
    settings = FeedbackSettings(fb_docs=3, fb_terms=4, menu_terms=6)
    texts = [e.question for e in examples]
    assert rm3_queries(public, texts, settings) == rm3_queries(bm25, texts, settings)
    docs = small_collection.documents
    via_public = FeedbackProvider(public, docs, settings)(examples)
    direct = FeedbackProvider(bm25, docs, settings)(examples)
    assert [e.meta["feedback"] for e in via_public] == [e.meta["feedback"] for e in direct]
    assert via_public[0].meta["feedback"].menu  # a real menu: the first pass found documents
    chosen = SelectionProvider(public, docs, settings)(examples)
    expected = SelectionProvider(bm25, docs, settings)(examples)
    assert [e.meta["selection"] for e in chosen] == [e.meta["selection"] for e in expected]


# -- one corpus hash ------------------------------------------------------------------------------------


def test_corpus_hash_is_the_documented_digest():
    """id, title, text, each ended by 0x1f, each document by 0x1e (UTF-8); ``fielded`` adds the ISO date
    (or nothing) and, per field in name order, its name, its values and 0x1d, each ended by 0x1f."""
    docs = [
        Document("d1", "Title", "text", {"mesh": ("B", "A"), "ab": ("x",)}, datetime.date(2020, 1, 2)),
        Document("d2", "", "é"),
    ]
    plain = b"d1\x1fTitle\x1ftext\x1f\x1e" + b"d2\x1f\x1f\xc3\xa9\x1f\x1e"
    assert corpus_hash(docs) == hashlib.sha256(plain).hexdigest()
    fielded = (
        b"d1\x1fTitle\x1ftext\x1f2020-01-02\x1fab\x1fx\x1f\x1d\x1fmesh\x1fB\x1fA\x1f\x1d\x1f\x1e"
        + b"d2\x1f\x1f\xc3\xa9\x1f\x1f\x1e"
    )
    assert corpus_hash(docs, fielded=True) == hashlib.sha256(fielded).hexdigest()
    redated = [Document("d1", "Title", "text", docs[0].fields, datetime.date(1999, 1, 1)), docs[1]]
    assert corpus_hash(redated) == corpus_hash(docs)  # a text index does not read dates
    assert corpus_hash(redated, fielded=True) != corpus_hash(docs, fielded=True)


# -- the folder: save, manifest, stale check -------------------------------------------------------------

FOLDER = IndexFolder("toy", 3, keys=("corpus_sha256", "documents", "settings"))
MANIFEST = {"format": 3, "kind": "toy", "corpus_sha256": "abc", "documents": 2, "settings": {"a": 1, "b": 2}}


def _write(staging: Path) -> None:
    (staging / "part.txt").write_text("new")


def test_save_writes_parts_then_manifest_and_replaces_an_index_whole(tmp_path):
    folder = FOLDER.save(tmp_path / "ix", MANIFEST, _write)
    assert json.loads((folder / "manifest.json").read_text()) == MANIFEST
    assert FOLDER.manifest(folder) == MANIFEST

    def fail(staging: Path) -> None:
        (staging / "part.txt").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        FOLDER.save(folder, MANIFEST, fail)
    assert (folder / "part.txt").read_text() == "new"  # the old index, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix"]  # no staging folder left behind
    written = FOLDER.save(folder, lambda staging: {**MANIFEST, "parts": sorted(os_names(staging))}, _write)
    assert json.loads((written / "manifest.json").read_text())["parts"] == ["part.txt"]


def os_names(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir()]


def test_manifest_problems_each_have_their_error(tmp_path):
    folder = tmp_path / "ix"
    with pytest.raises(SearchFailure, match="no index at"):
        FOLDER.manifest(folder)
    FOLDER.save(folder, MANIFEST, _write)
    cases = [
        ("{", CorruptIndexError, "manifest.json cannot be read"),
        ("[]", CorruptIndexError, "manifest.json lacks one of format, corpus_sha256"),
        (json.dumps({k: v for k, v in MANIFEST.items() if k != "documents"}), CorruptIndexError, "lacks one of"),
        (json.dumps({**MANIFEST, "kind": "dense"}), StaleIndexError, r"not a toy index \(a dense index is there\)"),
        (json.dumps({**MANIFEST, "format": 2}), StaleIndexError, r"has format 2 \(this version reads 3\)"),
    ]
    for text, error, message in cases:
        (folder / "manifest.json").write_text(text)
        with pytest.raises(error, match=message):
            FOLDER.manifest(folder)


def test_stale_check_names_the_corpus_or_the_settings_that_differ(tmp_path):
    folder = tmp_path / "ix"
    FOLDER.check_fresh(folder, MANIFEST, "abc", MANIFEST["settings"], {"a": 1, "b": 2})
    FOLDER.check_fresh(folder, MANIFEST, None)
    with pytest.raises(StaleIndexError, match="built from another corpus"):
        FOLDER.check_fresh(folder, MANIFEST, "xyz")
    with pytest.raises(StaleIndexError, match=r"other settings \(b differ\)"):
        FOLDER.check_fresh(folder, MANIFEST, "abc", MANIFEST["settings"], {"a": 1, "b": 3})
    with pytest.raises(CorruptIndexError, match="'settings' must name exactly a, b, c"):
        FOLDER.settings(folder, MANIFEST, dict, {"a", "b", "c"})
    assert FOLDER.settings(folder, MANIFEST, dict, {"a", "b"}) == {"a": 1, "b": 2}


# -- every kind: damaged is CorruptIndexError, another kind is StaleIndexError ----------------------------


@pytest.fixture
def saved(small_collection, tmp_path) -> dict[str, Path]:
    root = tmp_path / "saved"
    return {
        "bm25": BM25Searcher.build(small_collection.documents).save(root / "bm25"),
        "boolean": BooleanIndex.build(small_collection.documents).save(root / "boolean"),
    }


LOADERS = {"bm25": BM25Searcher.load, "boolean": BooleanIndex.load}


@pytest.mark.parametrize("kind", sorted(LOADERS))
@pytest.mark.parametrize("damage", ["manifest cut short", "doc_ids.json deleted", "doc_ids.json garbled"])
def test_a_damaged_folder_of_every_kind_is_a_corrupt_index(saved, tmp_path, kind, damage):
    folder = tmp_path / kind
    shutil.copytree(saved[kind], folder)
    if damage == "manifest cut short":
        text = (folder / "manifest.json").read_text()
        (folder / "manifest.json").write_text(text[: len(text) // 2])
    elif damage == "doc_ids.json deleted":
        (folder / "doc_ids.json").unlink()
    else:
        (folder / "doc_ids.json").write_text('["d1", ')
    with pytest.raises(CorruptIndexError) as info:
        LOADERS[kind](folder)
    message = str(info.value)
    assert message.startswith(f"index at {folder} is damaged: ") and "\n" not in message
    assert not isinstance(info.value, SearchFailure)  # a rebuild, not an outage to retry


@pytest.mark.parametrize(("kind", "other"), [("bm25", "boolean"), ("boolean", "bm25")])
def test_a_folder_of_another_kind_is_refused_by_name(saved, kind, other):
    with pytest.raises(StaleIndexError, match=rf"not a {kind} index \(a {other} index is there\)"):
        LOADERS[kind](saved[other])


def test_written_manifests_keep_their_format(saved):
    """Cached folders (benchmarks keep them) must still load: the manifests are written as before."""
    bm25 = json.loads((saved["bm25"] / "manifest.json").read_text())
    assert set(bm25) == {"format", "corpus_sha256", "documents", "settings", "bm25s"} and bm25["format"] == 1
    boolean = json.loads((saved["boolean"] / "manifest.json").read_text())
    assert set(boolean) == {"kind", "format", "corpus_sha256", "documents", "schema", "tantivy", "order", "files"}
    # Issue 22 changed the Boolean schema (format 2): a cached format-1 folder is stale and rebuilt.
    assert boolean["kind"] == "boolean" and boolean["format"] == 2
    assert BM25Searcher.load(saved["bm25"]).search(["kidney stones"], 1)[0].ids == ["d4"]


def test_backends_without_term_statistics_say_so():
    with pytest.raises(DeepRetrievalError, match="no term statistics"):
        DenseSearcher.search_weighted(object.__new__(DenseSearcher), [{"a": 1.0}], 5)
    with pytest.raises(DeepRetrievalError, match="no pseudo-relevance feedback"):
        LuceneSearcher.search_weighted(object.__new__(LuceneSearcher), [{"a": 1.0}], 5)
