"""An offline PubMed-style Boolean search engine over a local fielded corpus, on tantivy.

Queries are PubMed syntax (see :mod:`.pubmed_syntax`; what transfers to PubMed: ``docs/PUBMED-SYNTAX.md``),
parsed into an AST and translated into tantivy query objects; tantivy evaluates all Boolean logic, phrases,
proximity, truncation and dates.

Fields: :class:`FieldSchema` says which parts of a :class:`Document` feed which tag. The title feeds
``[ti]``; the text (abstract, a trial's summary) ``[ab]``, **one value per line**: the loader writes an
abstract's sections one per line without their labels, so no phrase spans two sections, and a proximity
field keeps them more than :data:`~.pubmed_syntax.MAX_PROXIMITY` words apart (tantivy leaves a single
position between two values). ``[tiab]`` is title, abstract and author keywords. List-valued ``fields``
feed their own tags, each value separately: publications ``mesh`` -> ``[mh]`` (with ``mesh_headings``, in
MEDLINE form "Aspirin/*therapeutic use", also ``[sh]``, ``[majr]`` and ``heading/qualifier``),
``publication_types`` -> ``[pt]``, ``keywords`` -> ``[ot]``, ``authors`` -> ``[au]``, ``languages`` ->
``[la]`` (codes and, for :data:`LANGUAGES`, their English names), ``journal`` / ``journal_abbreviation`` /
``issn`` -> ``[ta]``; trials ``conditions`` -> ``[cond]``, ``interventions`` -> ``[intr]``. ``[all]`` and
untagged words search every text tag (not ``[au]``, ``[la]``, ``[ta]``).

Analysis: every text field is indexed twice, both with tantivy's simple tokenizer (split on anything not a
letter or digit), tokens of 40 bytes or more dropped, lower-cased. The *plain* copy stops there: tagged words
and phrases and truncation search it, as written (PubMed maps no tagged term). The *stemmed* copy adds a
Snowball stemmer (``FieldSchema.stemmer``, English by default): untagged words and phrases search it, the
local, reproducible stand-in for PubMed's automatic term mapping (``trials`` finds ``trial``). Whole-value
tags (``[au]``, ``[la]``, ``[ta]``, full MeSH headings and ``heading/qualifier`` pairs) are indexed as one
term each, in :func:`~.pubmed_syntax.key_form`. Query words go through analysers made by the same function
that configured the index's, so they are analysed exactly as the documents were. There are no stopwords.

MeSH explosion: ``mesh_tree`` (NLM's descriptor file) makes ``[mh]`` / ``[majr]`` include every heading under
the one named; without it they are not exploded, and :meth:`BooleanIndex.describe` and
:meth:`BooleanIndex.warnings` say so (:data:`MESH_TREE_MISSING`) for a caller to report.

Dates: ``Document.date`` (print) and ``fields["electronic_date"]`` are indexed as integer ``yyyymmdd``
fields. ``[dp]`` and a request's ``mindate`` / ``maxdate`` window (inclusive) match a record if **either**
date is in range, as PubMed's publication date; **a document without a date is excluded as soon as either
bound is given** (PubMed leaves undated records out of a ``pdat`` range) and included when there is no
window. A window with ``mindate > maxdate`` matches nothing.

Errors: a query the engine cannot run for what it says (its syntax, a tag this index lacks, truncations or
explosions past :data:`~.pubmed_syntax.MAX_EXPANSIONS` words of this index) is a :class:`QuerySyntaxError`
in its own slot of a batch; only a failure of the index itself is an exception, and fails the batch: a
missing index or an engine failure while searching is a :class:`SearchFailure`, a damaged folder (manifest,
file list, tantivy's files, ``doc_ids.json``) a :class:`CorruptIndexError`, one of another
:data:`FORMAT_VERSION` or tantivy a :class:`StaleIndexError`, as for every index kind.

Order: see :data:`ORDER`.
"""

from __future__ import annotations

import datetime
import functools
import json
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import CorruptIndexError, DeepRetrievalError, SearchFailure, StaleIndexError
from ..types import Document, Ranking
from . import folders
from .base import BooleanRequest as BooleanRequest  # its home is the protocol's module; imported from here too
from .base import BooleanSearcher
from .folders import IndexFolder
from .pubmed_syntax import (
    MAX_PROXIMITY,
    MAX_PROXIMITY_WORDS,
    Expansions,
    Fields,
    MeshTree,
    Node,
    Phrase,
    QuerySyntaxError,
    TargetField,
    Term,
    Translator,
    key_form,
    parse,
)

FORMAT_VERSION = 2  # 2: unstemmed plain copies searched by tags, keywords, authors, languages, journals, MeSH
# qualifiers and major topics, electronic dates, abstract sections as separate values
KIND = "boolean"
FOLDER = IndexFolder(KIND, FORMAT_VERSION, keys=("corpus_sha256", "documents", "schema", "tantivy", "files"))
MAX_K = 10_000  # what esearch can page to
ORDER = (
    "tantivy BM25 score descending (k1 1.2, b 0.75, summed over the matching words and phrases and the fields "
    "they match in; a truncated word or an author adds 1 per field it matches in, a [dp] range 1; the date window "
    "adds nothing), ties by the document's position in the corpus"
)
# Why relevance and not PubMed's "most recent": rewards read the first k (recall@3000); when a query matches
# more than k records, keeping the k that match it best is what a searcher wants, while the newest k would be
# arbitrary with respect to the need. Ties by corpus position make the cut at k reproducible across rebuilds
# whatever tantivy's segment layout.
LIST_TAGS = frozenset({"mh", "pt", "ot", "au", "la", "ta", "cond", "intr"})
KEY_TAGS = frozenset({"au", "la", "ta"})  # matched as whole values (key forms), not as words
_ROW = "row"
_DATE = "date"
_EDATE = "edate"  # the electronic date: [dp] and date windows match either
_DATES = (_DATE, _EDATE)
_NEAR = "ab_near"  # the abstract's plain words with its sections kept apart, for proximity
# Between two abstract sections the proximity field holds as many filler words as any proximity may skip in all
# (N x (words - 1)), so a "a b"[tiab:~N] never matches across sections (tantivy leaves one position between two
# values of a field, and the two ends of the gap count one more).
_SECTION_BREAK = " ".join(["zzsectionbreakzz"] * (MAX_PROXIMITY * (MAX_PROXIMITY_WORDS - 1)))
_TANTIVY_DIR = "tantivy"
MESH_TREE_MISSING = "MeSH tree not loaded: [mh] and [majr] are not exploded to narrower headings"
# ISO 639-2 (bibliographic) codes of the languages MEDLINE records most, and their English names: [la] finds
# a record by either. A code not listed is still found by its code.
LANGUAGES = {
    "eng": "english",
    "fre": "french",
    "ger": "german",
    "spa": "spanish",
    "ita": "italian",
    "por": "portuguese",
    "dut": "dutch",
    "rus": "russian",
    "jpn": "japanese",
    "chi": "chinese",
    "kor": "korean",
    "pol": "polish",
    "cze": "czech",
    "hun": "hungarian",
    "swe": "swedish",
    "dan": "danish",
    "nor": "norwegian",
    "fin": "finnish",
    "tur": "turkish",
    "gre": "greek",
    "heb": "hebrew",
    "ara": "arabic",
    "per": "persian",
    "ukr": "ukrainian",
    "scr": "croatian",
    "srp": "serbian",
    "slv": "slovenian",
    "rum": "romanian",
    "bul": "bulgarian",
    "lit": "lithuanian",
}
# How tantivy words its refusal of a truncated phrase with too many expansions: a fault of the query's text.
_TOO_MANY_EXPANSIONS = "exceeded max expansions"


@dataclass(frozen=True)
class FieldSchema:
    """Which parts of a Document feed which field tag, and how words are analysed.

    ``title`` always feeds ``[ti]`` and ``text`` ``[ab]`` (one value per line: an abstract's sections).
    ``lists`` pairs a ``Document.fields`` key with the tag it feeds (one of :data:`LIST_TAGS`; several keys
    may feed one tag, as journal title, abbreviation and ISSN feed ``[ta]``). ``mesh`` -> ``mh`` also reads
    ``mesh_headings`` (qualifiers and major-topic stars) when a document has it. ``stemmer``: a Snowball
    language for untagged words and phrases (tantivy's names: ``english``, ``french`` ...), or None.
    """

    name: str = "publications"
    lists: tuple[tuple[str, str], ...] = (
        ("mesh", "mh"),
        ("publication_types", "pt"),
        ("keywords", "ot"),
        ("authors", "au"),
        ("languages", "la"),
        ("journal", "ta"),
        ("journal_abbreviation", "ta"),
        ("issn", "ta"),
    )
    stemmer: str | None = "english"

    def __post_init__(self) -> None:
        tags = [tag for _, tag in self.lists]
        unknown = sorted(set(tags) - LIST_TAGS)
        if unknown:
            raise DeepRetrievalError(f"unknown list tag(s) {unknown} (known: {sorted(LIST_TAGS)})")
        repeated = len(set(tags) - KEY_TAGS) != len([t for t in tags if t not in KEY_TAGS])
        if repeated or len({key for key, _ in self.lists}) != len(self.lists):
            raise DeepRetrievalError(f"field schema {self.name!r} feeds a tag or reads a field twice")

    @property
    def sources(self) -> tuple[str, ...]:
        """The indexed text sources, each named by its tag (``mh`` brings ``sh`` and ``majr``)."""
        listed = [tag for _, tag in self.lists if tag not in KEY_TAGS]
        mesh = ("sh", "majr") if "mh" in listed else ()
        return ("ti", "ab", *listed, *mesh)

    @property
    def keys(self) -> tuple[str, ...]:
        """The tags matched as whole values, each with a key field (``mh`` and ``majr`` for full headings)."""
        keys = dict.fromkeys(tag for _, tag in self.lists if tag in KEY_TAGS)
        return (*keys, *(("mh", "majr") if "mh" in self.sources else ()))

    def tag_sources(self) -> dict[str, tuple[str, ...]]:
        """Every text tag a query may use -> the sources it searches (untagged words: ``all``)."""
        tags = {source: (source,) for source in self.sources}
        tiab = ("ti", "ab", *(("ot",) if "ot" in self.sources else ()))
        return {**tags, "tiab": tiab, "all": tuple(s for s in self.sources if s != "majr")}

    def values(self, document: Document) -> Iterator[tuple[str, str]]:
        """(source, text) pairs of one document's text sources; a list field gives one pair per value, the
        abstract one per line (section)."""
        if document.title:
            yield "ti", document.title
        for line in document.text.split("\n"):
            if line.strip():
                yield "ab", line
        for key, tag in self.lists:
            if tag in KEY_TAGS or (tag == "mh" and document.fields.get("mesh_headings")):
                continue
            for value in document.fields.get(key, ()):
                if value:
                    yield tag, value
        if "mh" in self.sources:
            for heading in document.fields.get("mesh_headings", ()):
                descriptor, qualifiers, major = _heading(heading)
                yield "mh", descriptor
                yield from (("sh", q) for q, _ in qualifiers)
                if major or any(star for _, star in qualifiers):
                    yield "majr", descriptor

    def key_values(self, document: Document) -> Iterator[tuple[str, str]]:
        """(tag, value) pairs of one document's whole-value tags, as written (the index keys them)."""
        for key, tag in self.lists:
            if tag not in KEY_TAGS:
                continue
            for value in document.fields.get(key, ()):
                if value:
                    yield tag, value
                    if tag == "la" and value.lower() in LANGUAGES:
                        yield tag, LANGUAGES[value.lower()]
        if "mh" not in self.sources:
            return
        headings = document.fields.get("mesh_headings") or document.fields.get(self._mesh_key(), ())
        for heading in headings:
            descriptor, qualifiers, major = _heading(heading)
            yield "mh", descriptor
            yield from (("mh", f"{descriptor}/{q}") for q, _ in qualifiers)
            if major or any(star for _, star in qualifiers):
                yield "majr", descriptor
            yield from (("majr", f"{descriptor}/{q}") for q, star in qualifiers if star or major)

    def _mesh_key(self) -> str:
        return next(key for key, tag in self.lists if tag == "mh")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "lists": [list(pair) for pair in self.lists], "stemmer": self.stemmer}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FieldSchema:
        return cls(data["name"], tuple((key, tag) for key, tag in data["lists"]), data["stemmer"])


def _heading(heading: str) -> tuple[str, list[tuple[str, bool]], bool]:
    """A MEDLINE display heading ("Aspirin/*therapeutic use/adverse effects", "*Humans") as its descriptor,
    its (qualifier, starred) pairs and whether the descriptor is starred."""
    descriptor, *qualifiers = heading.split("/")
    pairs = [(q.strip().lstrip("*").strip(), q.strip().startswith("*")) for q in qualifiers]
    name = descriptor.strip()
    return name.lstrip("*").strip(), [(q, star) for q, star in pairs if q], name.startswith("*")


PUBLICATIONS = FieldSchema()
TRIALS = FieldSchema("trials", (("conditions", "cond"), ("interventions", "intr")))


class BooleanIndex(BooleanSearcher):
    """A :class:`~.base.BooleanSearcher`: a tantivy index of a fielded corpus, searched with PubMed-syntax
    queries in batches."""

    def __init__(
        self,
        index: Any,
        doc_ids: Sequence[str],
        schema: FieldSchema,
        corpus_sha: str,
        folder: Path,
        mesh_tree: str | Path | MeshTree | None = None,
    ):
        self._index = index
        self.doc_ids = list(doc_ids)
        self.schema = schema
        self.corpus_sha = corpus_sha
        self._folder = folder  # tantivy's files
        stemmed, plain = _register_analyzers(index, schema)
        fields = Fields(
            text={
                tag: [TargetField(*_field_names(source, schema)) for source in sources]
                for tag, sources in schema.tag_sources().items()
            },
            keys={tag: _key_field(tag) for tag in schema.keys},
            near={"ti": [_field_names("ti", schema)[1]], "ab": [_NEAR], "tiab": [_field_names("ti", schema)[1], _NEAR]},
            dates=_DATES,
        )
        self._translator = Translator(index.schema, fields, stemmed, plain)
        self.mesh_tree: MeshTree | None = None
        self.use_mesh_tree(mesh_tree)

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        documents: Sequence[Document],
        schema: FieldSchema = PUBLICATIONS,
        *,
        progress: Callable[[int, int], None] | None = None,
        heap_bytes: int = 256_000_000,
        mesh_tree: str | Path | MeshTree | None = None,
    ) -> BooleanIndex:
        """Index ``documents`` in a private temporary folder (removed with the object); ``save`` to keep it.

        ``progress(done, total)`` is called about every 1% and at the end. ``mesh_tree``: NLM's MeSH
        descriptor file (or a read :class:`MeshTree`), for exploding ``[mh]``; a search setting, not part of
        the index.
        """
        if not documents:
            raise SearchFailure("cannot index an empty corpus")
        folder = Path(tempfile.mkdtemp(prefix="deepretrieval-boolean-"))
        try:
            index = _write_index(documents, schema, folder, progress, heap_bytes)
            sha = folders.corpus_hash(documents, fielded=True)
            built = cls(index, [d.id for d in documents], schema, sha, folder, mesh_tree)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        weakref.finalize(built, shutil.rmtree, folder, True)
        return built

    def save(self, directory: str | Path) -> Path:
        """Write the index to ``directory`` atomically (see :class:`~.folders.IndexFolder`: staged beside it,
        then renamed into place; never over a folder that is not an index)."""

        def write_parts(staging: Path) -> None:
            shutil.copytree(self._folder, staging / _TANTIVY_DIR, ignore=shutil.ignore_patterns("*.lock"))
            (staging / "doc_ids.json").write_text(json.dumps(self.doc_ids))

        return FOLDER.save(directory, lambda staging: self._manifest(_file_sizes(staging / _TANTIVY_DIR)), write_parts)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        expected_corpus_hash: str | None = None,
        schema: FieldSchema | None = None,
        mesh_tree: str | Path | MeshTree | None = None,
    ) -> BooleanIndex:
        """Open a saved index; refuse one built from another corpus, with another field schema, format or
        tantivy (:class:`StaleIndexError`), a missing one (:class:`SearchFailure`) and a damaged one
        (:class:`CorruptIndexError`). ``mesh_tree`` as for :meth:`build`."""
        import tantivy

        directory = Path(directory)
        manifest = FOLDER.manifest(directory)
        try:
            saved = FieldSchema.from_json(manifest["schema"])
            documents, sha, files = int(manifest["documents"]), str(manifest["corpus_sha256"]), manifest["files"]
        except (KeyError, TypeError, ValueError, DeepRetrievalError) as e:
            raise CorruptIndexError(directory, f"its manifest.json has an unusable schema or count ({e})") from None
        if manifest["tantivy"] != _tantivy_version():
            # Analysis (tokenizer, stemmer) is part of an index's identity: another tantivy may analyse otherwise.
            raise StaleIndexError(
                f"index at {directory} was built with tantivy {manifest['tantivy']}, "
                f"this is {_tantivy_version()}; rebuild it"
            )
        wanted = None if schema is None else asdict(schema)
        FOLDER.check_fresh(directory, manifest, expected_corpus_hash, asdict(saved), wanted, "another field schema")
        _check_files(directory, files)
        with _opening(directory):
            doc_ids = json.loads((directory / "doc_ids.json").read_text(encoding="utf-8"))
            if not isinstance(doc_ids, list) or not all(isinstance(d, str) for d in doc_ids):
                raise ValueError("doc_ids.json is not a list of document ids")
            index = tantivy.Index.open(str(directory / _TANTIVY_DIR))
            loaded = cls(index, doc_ids, saved, sha, directory / _TANTIVY_DIR)
            found = index.searcher().num_docs
        if not (len(doc_ids) == documents == found):
            raise CorruptIndexError(
                directory, f"{found} documents indexed, {len(doc_ids)} ids, {documents} in its manifest.json"
            )
        loaded.use_mesh_tree(mesh_tree)
        return loaded

    def _manifest(self, files: dict[str, int]) -> dict[str, Any]:
        return {
            "kind": KIND,
            "format": FORMAT_VERSION,
            "corpus_sha256": self.corpus_sha,
            "documents": len(self.doc_ids),
            "schema": self.schema.to_json(),
            "tantivy": _tantivy_version(),
            "order": ORDER,
            "files": files,
        }

    def use_mesh_tree(self, mesh_tree: str | Path | MeshTree | None) -> None:
        """Explode ``[mh]`` / ``[majr]`` through ``mesh_tree`` (NLM's descriptor file or a :class:`MeshTree`);
        None: no explosion (and :meth:`warnings` says so)."""
        if mesh_tree is not None and not isinstance(mesh_tree, MeshTree):
            mesh_tree = MeshTree.read(mesh_tree, self._translator.key)
        self.mesh_tree = self._translator.tree = mesh_tree

    def describe(self) -> dict[str, object]:
        described: dict[str, object] = {
            "backend": "tantivy-boolean",
            "format": FORMAT_VERSION,
            "corpus_sha256": self.corpus_sha,
            "schema": self.schema.to_json(),
            "tags": self._translator.tags,
            "order": ORDER,
            "mesh_tree": self.mesh_tree.source if self.mesh_tree is not None else None,
        }
        if self.mesh_tree is None and "mh" in self.schema.sources:
            described["warnings"] = [MESH_TREE_MISSING]
        return described

    def warnings(self, request: BooleanRequest | str) -> list[str]:
        """What a search of ``request`` does otherwise than PubMed would, for a reply's warning list: today
        only an unexploded ``[mh]`` / ``[majr]`` (no MeSH tree). A query that does not parse has none (its
        error says what is wrong)."""
        query = request.query if isinstance(request, BooleanRequest) else request
        if self.mesh_tree is not None:
            return []
        try:
            tree = parse(query)
        except QuerySyntaxError:
            return []
        return [MESH_TREE_MISSING] if any(_explodes(leaf) for leaf in _leaves(tree)) else []

    # -- search ------------------------------------------------------------------------------------
    def search(self, requests: Sequence[BooleanRequest], k: int) -> list[Ranking | QuerySyntaxError]:
        """One result per request: a Ranking of the first ``k`` matches in :data:`ORDER` with ``total`` =
        the number of matching documents, or the request's :class:`QuerySyntaxError` (returned, not raised:
        a bad query is the writer's fault). ``k`` is 0 (count only) to :data:`MAX_K`.
        Infrastructure problems raise :class:`SearchFailure`."""
        if not 0 <= k <= MAX_K:
            raise DeepRetrievalError(f"k must be between 0 and {MAX_K:,}, got {k}")
        with _engine_errors("while searching"):
            searcher = self._index.searcher()  # one per batch: every request sees the same snapshot
            compiled = [self._compile_or_error(r, searcher) for r in requests]
            return [q if isinstance(q, QuerySyntaxError) else self._ranking_or_error(searcher, q, k) for q in compiled]

    def count(self, requests: Sequence[BooleanRequest]) -> list[int | QuerySyntaxError]:
        """The number of matching documents per request (or its error), without collecting a ranking."""
        return [r if isinstance(r, QuerySyntaxError) else r.total or 0 for r in self.search(requests, 0)]

    def compile(self, request: BooleanRequest, searcher: Any = None) -> Any:
        """The tantivy query for a request; raises :class:`QuerySyntaxError`, also for truncations that expand
        past :data:`~.pubmed_syntax.MAX_EXPANSIONS` words in ``searcher``'s snapshot (default: a new one)."""
        import tantivy

        searcher = searcher if searcher is not None else self._index.searcher()
        expansions = Expansions(lambda field, prefix, most: len(searcher.terms_with_prefix(field, prefix, limit=most)))
        query = self._translator.translate(parse(request.query), expansions)
        window = self._date_window(request)
        if window is None:
            return query
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, window)])

    def _compile_or_error(self, request: BooleanRequest, searcher: Any) -> Any:
        try:
            return self.compile(request, searcher)
        except QuerySyntaxError as e:
            return e

    def _ranking_or_error(self, searcher: Any, query: Any, k: int) -> Ranking | QuerySyntaxError:
        """The query's ranking, or its error when tantivy refuses the query for what it asks (the expansion cap
        should prevent that; should a tantivy version expand otherwise, the query still fails alone, and any
        other engine error still fails the batch)."""
        try:
            return self._ranking(searcher, query, k)
        except ValueError as e:
            if _TOO_MANY_EXPANSIONS not in str(e):
                raise
            return QuerySyntaxError(f"truncation expands too far for the engine: {e}", 0)

    def _date_window(self, request: BooleanRequest) -> Any | None:
        from tantivy import FieldType, Occur, Query

        if request.mindate is None and request.maxdate is None:
            return None
        low = _yyyymmdd(request.mindate) if request.mindate is not None else None
        high = _yyyymmdd(request.maxdate) if request.maxdate is not None else None
        if low is not None and high is not None and low > high:
            return Query.empty_query()
        # PubMed: the publication date is the print or the electronic date; either in the window will do.
        schema = self._index.schema
        windows = [(Occur.Should, Query.range_query(schema, f, FieldType.Integer, low, high)) for f in _DATES]
        return Query.const_score_query(Query.boolean_query(windows), 0.0)  # a filter: it must not change the scores

    def _ranking(self, searcher: Any, query: Any, k: int) -> Ranking:
        if k == 0:
            return Ranking([], [], total=searcher.search(query, 1, count=True).count)
        # One hit more than asked shows whether a run of equal scores straddles the cut at k.
        result = searcher.search(query, k + 1, count=True)
        hits, total = result.hits, result.count
        if len(hits) > k and hits[k][0] == hits[k - 1][0] and searcher.num_segments > 1:
            hits = _through_tie(searcher, query, hits[k - 1][0], k)
        rows = searcher.fast_field_values(_ROW, [address for _, address in hits])
        # Within a segment tantivy breaks ties by document order, which index sorting made corpus order; a
        # sort makes that hold across segments too.
        scores = [score for score, _ in hits]
        ranked = sorted(zip(rows, scores, strict=True), key=lambda pair: (-pair[1], pair[0]))[:k]
        return Ranking([self.doc_ids[row] for row, _ in ranked], [score for _, score in ranked], total=total)


def _leaves(node: Node) -> Iterator[Term | Phrase]:
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (Term, Phrase)):
            yield current
        else:
            stack.extend(current.nodes)


def _explodes(leaf: Term | Phrase) -> bool:
    """Whether PubMed would explode this leaf through the MeSH tree."""
    return leaf.field in ("mh", "majr") and not leaf.truncated


def _through_tie(searcher: Any, query: Any, boundary: float, k: int) -> list[Any]:
    """Hits down to the first score below ``boundary``: every document tied at the cut, so that corpus
    order (not segment layout) decides which of them make the first k."""
    limit = 2 * (k + 1)
    while True:
        hits = searcher.search(query, limit, count=False).hits
        if len(hits) < limit or hits[-1][0] < boundary:
            return hits
        limit *= 2


# -- writing -----------------------------------------------------------------------------------------


def _write_index(
    documents: Sequence[Document],
    schema: FieldSchema,
    folder: Path,
    progress: Callable[[int, int], None] | None,
    heap_bytes: int,
) -> Any:
    import tantivy

    index = tantivy.Index(
        _tantivy_schema(schema), path=str(folder), reuse=False, sort_by_field=_ROW, sort_order=tantivy.Order.Asc
    )
    _, plain = _register_analyzers(index, schema)
    key = functools.partial(key_form, plain)
    # One indexing thread: tantivy's own thread runs beside Python's document building, and segments hold
    # documents in corpus order, so a small corpus is one segment whose ties need no re-fetch.
    writer = index.writer(heap_size=heap_bytes, num_threads=1)
    total, step = len(documents), max(1, len(documents) // 100)
    for row, document in enumerate(documents):
        try:
            writer.add_document(_tantivy_document(document, row, schema, key))
        except (ValueError, UnicodeEncodeError) as e:
            raise DeepRetrievalError(f"document {document.id!r} cannot be indexed: {e}") from None
        if progress is not None and (row + 1) % step == 0 and row + 1 < total:
            progress(row + 1, total)
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    if progress is not None:
        progress(total, total)
    return index


def _tantivy_schema(schema: FieldSchema) -> Any:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field(_ROW, fast=True)  # corpus position: ids live in doc_ids.json, ties sort on it
    for name in _DATES:
        builder.add_integer_field(name, indexed=True, fast=True)
    stemmed_tokenizer, plain_tokenizer = _tokenizer_names(schema)
    for source in schema.sources:
        stemmed, plain = _field_names(source, schema)
        builder.add_text_field(stemmed, tokenizer_name=stemmed_tokenizer)
        if plain != stemmed:
            builder.add_text_field(plain, tokenizer_name=plain_tokenizer)
    builder.add_text_field(_NEAR, tokenizer_name=plain_tokenizer)
    for tag in schema.keys:
        builder.add_text_field(_key_field(tag), tokenizer_name="raw")  # one term per value: its key form
    return builder.build()


def _tantivy_document(document: Document, row: int, schema: FieldSchema, key: Callable[[str], str]) -> Any:
    import tantivy

    doc = tantivy.Document()
    doc.add_unsigned(_ROW, row)
    if document.date is not None:
        doc.add_integer(_DATE, _yyyymmdd(document.date))
    for text in document.fields.get("electronic_date", ()):
        try:
            doc.add_integer(_EDATE, _yyyymmdd(datetime.date.fromisoformat(text)))
        except (TypeError, ValueError):
            raise ValueError(f"its electronic_date {text!r} is not a YYYY-MM-DD date") from None  # named by the caller
    sections = 0
    for source, text in schema.values(document):
        stemmed, plain = _field_names(source, schema)
        doc.add_text(stemmed, text)
        if plain != stemmed:
            doc.add_text(plain, text)
        if source == "ab":
            if sections:
                doc.add_text(_NEAR, _SECTION_BREAK)
            doc.add_text(_NEAR, text)
            sections += 1
    for tag, value in schema.key_values(document):
        doc.add_text(_key_field(tag), key(value))
    return doc


def _field_names(source: str, schema: FieldSchema) -> tuple[str, str]:
    """(stemmed, plain) tantivy fields of a source; one field serves both when nothing is stemmed."""
    return (source, f"{source}_plain") if schema.stemmer else (source, source)


def _key_field(tag: str) -> str:
    return f"{tag}_key"


def _tokenizer_names(schema: FieldSchema) -> tuple[str, str]:
    return (f"dr_{schema.stemmer}" if schema.stemmer else "dr_plain"), "dr_plain"


def _register_analyzers(index: Any, schema: FieldSchema) -> tuple[Any, Any]:
    """Register the index's analysers and return them: one definition serves documents and query words."""
    import tantivy

    def analyzer(stemmer: str | None) -> Any:
        builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        builder = builder.filter(tantivy.Filter.remove_long(40)).filter(tantivy.Filter.lowercase())
        if stemmer:
            builder = builder.filter(tantivy.Filter.stemmer(stemmer))
        try:
            return builder.build()
        except ValueError as e:
            raise DeepRetrievalError(f"field schema {schema.name!r}: {e}") from None

    exact, prefix = analyzer(schema.stemmer), analyzer(None)
    exact_name, prefix_name = _tokenizer_names(schema)
    index.register_tokenizer(exact_name, exact)
    index.register_tokenizer(prefix_name, prefix)
    return exact, prefix


def _yyyymmdd(day: datetime.date) -> int:
    return day.year * 10_000 + day.month * 100 + day.day


def _tantivy_version() -> str:
    from importlib.metadata import version

    return version("tantivy")


# -- the folder --------------------------------------------------------------------------------------


def _file_sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}


def _check_files(directory: Path, files: Any) -> None:
    if not isinstance(files, dict) or not files:
        raise CorruptIndexError(directory, f"its manifest.json lists no files for {_TANTIVY_DIR}/")
    folder = directory / _TANTIVY_DIR
    found = _file_sizes(folder) if folder.is_dir() else {}
    wrong = sorted(name for name, size in files.items() if found.get(name) != size)
    if wrong:
        raise CorruptIndexError(directory, f"files in {_TANTIVY_DIR}/ are missing or damaged ({', '.join(wrong[:3])})")


@contextmanager
def _opening(directory: Path) -> Iterator[None]:
    """What fails while opening a saved index (``doc_ids.json``, tantivy's files) is a damaged folder."""
    try:
        yield
    except (OSError, ValueError) as e:
        raise CorruptIndexError(directory, f"it cannot be opened ({_first_line(e)})") from None
    except BaseException as e:
        if type(e).__name__ == "PanicException":  # a Rust panic (see _engine_errors)
            raise CorruptIndexError(directory, f"tantivy cannot open it ({_first_line(e)})") from None
        raise


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextmanager
def _engine_errors(doing: str) -> Iterator[None]:
    """Turn tantivy's failures (I/O, damaged files, Rust panics) into SearchFailure."""
    try:
        yield
    except (OSError, ValueError) as e:
        raise SearchFailure(f"the Boolean index failed {doing}: {e}") from e
    except BaseException as e:
        # pyo3 raises a Rust panic as PanicException, a BaseException subclass with no importable home.
        if type(e).__name__ == "PanicException":
            raise SearchFailure(f"the Boolean index failed {doing}: {e}") from e
        raise
