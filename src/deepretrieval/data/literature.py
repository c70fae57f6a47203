"""Literature search data: systematic reviews (PICO, included studies, date) and the corpus they search.

**Reviews** — JSONL, one systematic review a line, as in DeepRetrieval's data::

    {"id": "r7", "pico": {"P": "...", "I": "...", "C": "", "O": "..."},
     "publication_pmids": ["123", 456], "pub_date": "2015/03/01", "split": "train"}

``pico``: ``P``, ``I`` and ``O`` are required non-blank text, ``C`` may be empty or absent; no other key.
Included studies: ``publication_pmids`` (a PubMed search) or ``trial_nctids`` (ClinicalTrials.gov), one
kind per file. ``pub_date`` is ``YYYY/MM/DD``, ``YYYY/MM`` or ``YYYY`` (``-`` separators too); a partial
date stands for the end of its month or year, so the cut-off keeps everything published up to then. A
review with no ``pub_date`` is kept with ``pub_date`` None and counted in the warnings: it gets no
cut-off, never an invented one (DeepRetrieval silently used 2025). ``id`` defaults to the line number.
``split``: on every record or on none (then seeded train/dev/test splits, as for the other loaders).

Each review becomes an :class:`Example`: ``question`` is the PICO as four lines ``P: …``, ``I: …``,
``C: …``, ``O: …``; ``targets`` ``{study id: 1}`` for the included studies found in the corpus;
``meta`` ``{"pico": {"P", "I", "C", "O"}, "pub_date": datetime.date | None, "kind": "publications" |
"trials"}``. Included studies missing from the corpus are counted in ``Collection.warnings``; a review
with none in the corpus is dropped, counted too.

**Corpus** — beside the reviews (exactly one of the names in :data:`BESIDE`) or passed explicitly:

* publications: JSONL (``pmid``, ``title``, ``abstract``, ``mesh`` and ``publication_types`` lists,
  ``date`` ``YYYY-MM-DD`` / ``YYYY/MM/DD`` / ``YYYY-MM`` / ``YYYY``; optionally the lists of strings in
  :data:`OPTIONAL_LIST_FIELDS` and an ``electronic_date``, meaning what they mean for XML below), or PubMed
  XML (``.xml``, ``.xml.gz``, or a folder of them: NLM's annual baseline files and efetch replies). XML is
  streamed, so a baseline file never sits in memory whole; a record of over :data:`MAX_RECORD_BYTES` is
  refused as it streams. Dates are the journal issue's ``PubDate`` (Year, Month as ``Jan`` or ``1``, Day; or
  a ``MedlineDate`` such as ``1998 Dec-1999 Jan``, read as its first year and month; one with no year,
  ``Summer``, is undated, one with an impossible year, ``0000 Jan``, an error, as the same ``<Year>`` is).
* trials: JSONL (``nct_id``, ``title``, ``summary``, ``conditions``, ``interventions``, ``start_date``),
  or ClinicalTrials.gov API v2 study objects: a ``.json`` holding ``{"studies": [...]}`` or a list, or
  one study a line in a ``.jsonl``. A study object's ``eligibilityModule.eligibilityCriteria`` is kept,
  one criterion a line (blank lines and leading ``*`` / ``-`` bullets dropped), as the field
  ``eligibility`` and as further lines of the text after the brief summary, so ``[ab]`` and untagged words
  search it (who a trial enrols is often only there: "Inclusion Criteria: * Children aged 6 to 12 ...").

A partial document date stands for the start of its period (``1998`` is 1998-01-01), as PubMed files
it. Trials carry list fields ``conditions`` / ``interventions``.

A PubMed article becomes a :class:`Document` (every field a tuple of strings; a field a record lacks is
absent, never an empty tuple, except ``mesh`` and ``publication_types``, always there):

* ``title``: ArticleTitle; ``text``: the abstract's sections (AbstractText), one a line, **without** their
  labels, so ``BACKGROUND`` is not a word of the abstract and a search engine can keep a phrase inside one
  section; ``abstract_labels``: one label a line (``""`` for an unlabelled section), absent when none has one.
  Inline markup is read as its text (``CO<sub>2</sub>`` is ``CO2``), white space collapsed; a MathML formula
  (``<mml:math>``) is its characters run together (``<mi>T</mi><mn>2</mn>`` is ``T2``, not ``T 2``): the
  pretty-printing between its elements is dropped, a space inside an ``<mml:mtext>`` kept.
* ``mesh``: each MeshHeading's descriptor; ``mesh_headings``: each as MEDLINE shows it, qualifiers after
  ``/`` and ``*`` before a major topic (``Semen Preservation/adverse effects/*methods``, ``*Sperm Motility``).
* ``publication_types``; ``keywords`` (every KeywordList's Keyword, in order); ``languages`` (``eng``);
  ``authors`` (``Smith JA``: LastName and Initials, or a group's CollectiveName); ``journal`` (Journal/Title),
  ``journal_abbreviation`` (MedlineTA, else ISOAbbreviation), ``issn`` (Journal/ISSN).
* ``date``: the print date (PubDate, above); ``electronic_date``: ``("YYYY-MM-DD",)`` from
  ``ArticleDate DateType="Electronic"``, when the article has one (an impossible one is an error).

Refused (a :class:`DataError` naming file and line, or for XML the article's position and PMID, for a
``.json`` the study's): a malformed record or date, a duplicate review or document id, a file mixing the
two kinds of review, a JSONL ``abstract_labels`` whose length is not the abstract's number of lines, a PMID
or date not in ASCII digits (``١٢٣`` and ``²³`` pass ``str.isdigit``), a string holding a lone surrogate. A
``.json`` is decoded by the JSONL inputs' rules (no NaN, no key twice, no integer of over 4300 digits, no
nesting too deep).
"""

from __future__ import annotations

import calendar
import datetime
import gzip
import re
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import DataError
from ..types import Collection, Document, Example
from .beir import SURROGATE_ESCAPE, decode_json, field, identifier, read_jsonl, surrogate_field, surrogate_message
from .splits import split_ids

PUBLICATIONS, TRIALS = "publications", "trials"
# The field naming a review's included studies, per kind.
STUDY_FIELDS = {PUBLICATIONS: "publication_pmids", TRIALS: "trial_nctids"}
# Corpus files looked for beside a reviews file, per kind.
BESIDE = {
    PUBLICATIONS: ("publications.jsonl", "publications.xml", "publications.xml.gz"),
    TRIALS: ("trials.jsonl", "trials.json"),
}
ID_LABEL = {PUBLICATIONS: "PMID", TRIALS: "NCT id"}
# A publication's optional list fields (JSONL keys and Document.fields names); a PubMed XML record fills them
# from its elements. Kept only when non-empty: an absent field and an empty one are the same.
OPTIONAL_LIST_FIELDS = (
    "mesh_headings",
    "abstract_labels",
    "keywords",
    "languages",
    "authors",
    "journal",
    "journal_abbreviation",
    "issn",
)
PICO_KEYS = ("P", "I", "C", "O")

# ASCII digits only, here and below: \d, str.isdigit and int() also take '٢٠١٥' and '²'.
_DATE = re.compile(r"(\d{4})(?:([-/])(\d{1,2})(?:\2(\d{1,2}))?)?", re.ASCII)
_DIGITS = re.compile(r"[0-9]+")
_MEDLINE_DATE = re.compile(r"\b(\d{4})\b(?:\s+([A-Za-z]{3}))?", re.ASCII)
_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
_GZIP_MAGIC = b"\x1f\x8b"
# What a PubmedArticleSet holds: articles, book records, and (in update files) deletions.
_RECORDS = frozenset({"PubmedArticle", "PubmedBookArticle", "DeleteCitation"})
# The most bytes of (decompressed) XML one record may take, checked as the file streams: PubMed's largest,
# with thousands of authors, are a few MB; a gigabyte of white space in one abstract (a 5 MB .gz) would
# otherwise be built in memory whole, twice.
MAX_RECORD_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Review:
    id: str
    pico: tuple[tuple[str, str], ...]  # (key, text) in P, I, C, O order: hashable, unlike a dict
    kind: str
    studies: tuple[str, ...]  # as listed, repeats included (they are counted)
    pub_date: datetime.date | None
    split: str | None
    line: int


@dataclass(frozen=True)
class _Where:
    """Where a record is, for errors: a line, or (JSON, XML) a label such as ``study 3 (NCT01234567)``."""

    path: Path
    line: int | None = None
    label: str = ""

    def error(self, message: str) -> DataError:
        return DataError(self.path, f"{self.label}: {message}" if self.label else message, line=self.line)

    def named(self, label: str) -> _Where:
        return _Where(self.path, self.line, label)

    def __str__(self) -> str:
        return f"{self.path.name} {f'line {self.line}' if self.line is not None else self.label}"


# ---------------------------------------------------------------------------------------------------
# Reviews


def render_pico(pico: Mapping[str, str]) -> str:
    """The four lines DeepRetrieval's prompt shows: ``P: …``, ``I: …``, ``C: …``, ``O: …``."""
    return "\n".join(f"{key}: {pico.get(key, '')}" for key in PICO_KEYS)


def is_reviews_file(path: Path) -> bool:
    """Whether a ``.jsonl`` holds review records (its first record has a ``pico``): for dispatching."""
    for _, record in read_jsonl(path):
        return "pico" in record
    return False


def read_reviews(path: Path) -> list[Review]:
    """Every review of a JSONL file; one kind of included study per file, no id twice."""
    reviews: list[Review] = []
    lines: dict[str, int] = {}
    for line, record in read_jsonl(path):
        review = _review(record, path, line)
        if review.id in lines:
            raise DataError(path, f"duplicate review id {review.id!r} (first at line {lines[review.id]})", line=line)
        if reviews and review.kind != reviews[0].kind:
            raise DataError(
                path,
                f"this review lists {STUDY_FIELDS[review.kind]}, those before it {STUDY_FIELDS[reviews[0].kind]}: "
                "put publication and trial reviews in separate files",
                line=line,
            )
        lines[review.id] = line
        reviews.append(review)
    if not reviews:
        raise DataError(path, "no reviews (the file is empty)")
    return reviews


def _review(record: dict, path: Path, line: int) -> Review:
    review_id = identifier(record["id"], "field 'id'", path, line) if record.get("id") is not None else str(line)
    kind, studies = _studies(record, path, line)
    pub_date = _dated(field(record, "pub_date", path, line, required=False), "pub_date", _Where(path, line), end=True)
    split = field(record, "split", path, line) if "split" in record else None
    return Review(review_id, _pico(record.get("pico"), path, line), kind, studies, pub_date, split, line)


def _pico(raw: object, path: Path, line: int) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict):
        raise DataError(path, "field 'pico' must be an object {P, I, C, O}", line=line)
    unknown = sorted(set(raw) - set(PICO_KEYS))
    if unknown:
        raise DataError(path, f"pico has unknown key {unknown[0]!r} (expected P, I, C, O)", line=line)
    pico = []
    for key in PICO_KEYS:
        text = field(raw, key, path, line, required=key != "C")
        if key != "C" and not text.strip():
            raise DataError(path, f"pico {key!r} is blank (only C may be empty)", line=line)
        pico.append((key, text))
    return tuple(pico)


def _studies(record: dict, path: Path, line: int) -> tuple[str, tuple[str, ...]]:
    present = [kind for kind, name in STUDY_FIELDS.items() if record.get(name) is not None]
    if len(present) != 1:
        problem = "both" if present else "neither"
        raise DataError(
            path, f"a review needs exactly one of 'publication_pmids' and 'trial_nctids', it has {problem}", line=line
        )
    kind = present[0]
    name = STUDY_FIELDS[kind]
    raw = record[name]
    if not isinstance(raw, list):
        raise DataError(path, f"field {name!r} must be a list of ids", line=line)
    ids = tuple(identifier(value, f"an id in {name!r}", path, line) for value in raw)
    if kind == PUBLICATIONS:
        for pmid in ids:
            _check_pmid(pmid, _Where(path, line), f"an id in {name!r}: ")
    return kind, ids


def find_corpus(reviews: Path, kind: str) -> Path:
    """The one corpus file of ``kind`` beside a reviews file (names in :data:`BESIDE`)."""
    found = [reviews.parent / name for name in BESIDE[kind] if (reviews.parent / name).exists()]
    names = " or ".join(BESIDE[kind])
    if not found:
        raise DataError(reviews, f"no {kind} corpus beside these reviews: put {names} beside them, or pass one")
    if len(found) > 1:
        raise DataError(
            reviews, f"two {kind} corpora beside these reviews ({found[0].name}, {found[1].name}): pass one"
        )
    return found[0]


def load_reviews(
    path: Path,
    corpus: Path | None = None,
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.1, 0.3),
) -> Collection:
    """Reviews (JSONL) and their corpus (``corpus``, else the one beside them) -> a Collection."""
    reviews = read_reviews(path)
    kind = reviews[0].kind
    corpus = corpus or find_corpus(path, kind)
    warnings: list[str] = []
    documents = read_publications(corpus, warnings) if kind == PUBLICATIONS else read_trials(corpus, warnings)
    examples = _examples(reviews, {d.id: d.date for d in documents}, path, warnings)
    if not examples:
        raise DataError(path, f"none of its {len(reviews)} reviews has an included study in {corpus}")
    return Collection(path.stem, documents, examples, _splits(reviews, examples, path, seed, fractions), warnings)


def _examples(
    reviews: list[Review], dates: dict[str, datetime.date | None], path: Path, warnings: list[str]
) -> list[Example]:
    """One example per review with a study in the corpus (``dates``: document id -> date); the rest counted."""
    label = ID_LABEL[reviews[0].kind]
    missing: list[tuple[str, str]] = []  # (study, review)
    repeated: list[tuple[str, str]] = []
    late: list[tuple[str, str]] = []
    dropped: list[str] = []
    examples = []
    for review in reviews:
        targets = dict.fromkeys(s for s in review.studies if s in dates)
        missing += [(s, review.id) for s in dict.fromkeys(review.studies) if s not in dates]
        repeated += [(s, review.id) for s in _repeats(review.studies)]
        late += [(s, review.id) for s in targets if _after(dates[s], review.pub_date)]
        if not targets:
            dropped.append(review.id)
            continue
        examples.append(_example(review, dict.fromkeys(targets, 1)))
    if late:
        study, review = late[0]
        warnings.append(
            f"{path.name}: {len(late)} included studies of {len({r for _, r in late})} reviews are dated after their "
            f"review's pub_date (first: {label} {study} of review {review}); a date cut-off cannot find them"
        )
    if missing:
        reviews_hit = len({r for _, r in missing})
        study, review = missing[0]
        warnings.append(
            f"{path.name}: {len(missing)} included studies of {reviews_hit} reviews are not in the corpus "
            f"(first: {label} {study} of review {review}); recall is measured on the others"
        )
    if dropped:
        warnings.append(
            f"{path.name}: {len(dropped)} reviews are dropped: none of their included studies is in the corpus "
            f"(first: review {dropped[0]})"
        )
    if repeated:
        study, review = repeated[0]
        warnings.append(
            f"{path.name}: {len(repeated)} included studies are listed twice by one review "
            f"(first: {label} {study} of review {review}); each is counted once"
        )
    undated = [e.id for e in examples if e.meta["pub_date"] is None]
    if undated:
        warnings.append(
            f"{path.name}: {len(undated)} reviews have no pub_date (first: review {undated[0]}); they are kept "
            "with pub_date None, so no date cut-off applies to their searches"
        )
    return examples


def _after(date: datetime.date | None, cut_off: datetime.date | None) -> bool:
    return date is not None and cut_off is not None and date > cut_off


def _repeats(ids: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for i in ids:
        if i in seen:
            out.append(i)
        seen.add(i)
    return out


def _example(review: Review, targets: dict[str, int]) -> Example:
    pico = dict(review.pico)
    meta = {"pico": pico, "pub_date": review.pub_date, "kind": review.kind}
    return Example(review.id, render_pico(pico), targets, meta)


def _splits(
    reviews: list[Review], examples: list[Example], path: Path, seed: int, fractions: tuple[float, float, float]
) -> dict[str, list[str]]:
    declared = [r for r in reviews if r.split is not None]
    if not declared:
        return split_ids([e.id for e in examples], seed, fractions)
    if len(declared) != len(reviews):
        first = next(r for r in reviews if r.split is None)
        raise DataError(path, "either every review has a 'split' or none does", line=first.line)
    kept = {e.id for e in examples}
    splits: dict[str, list[str]] = {}
    for review in declared:
        if review.id in kept:
            splits.setdefault(str(review.split), []).append(review.id)
    return splits


# ---------------------------------------------------------------------------------------------------
# Dates


def parse_date(text: str, *, end: bool = False) -> datetime.date:
    """``YYYY/MM/DD``, ``YYYY/MM`` or ``YYYY`` (or with ``-``). A partial date is the first day of its
    period, or with ``end`` the last. ValueError with a readable message otherwise."""
    match = _DATE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a date (expected YYYY/MM/DD, YYYY/MM or YYYY)")
    year, month, day = int(match[1]), match[3], match[4]
    try:
        if month is None:
            return datetime.date(year, 12, 31) if end else datetime.date(year, 1, 1)
        if day is None:
            first = datetime.date(year, int(month), 1)
            return first.replace(day=calendar.monthrange(year, first.month)[1]) if end else first
        return datetime.date(year, int(month), int(day))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date ({exc})") from None


# ---------------------------------------------------------------------------------------------------
# Corpora


def read_publications(path: Path, warnings: list[str]) -> list[Document]:
    """A publication corpus: ``.jsonl``, PubMed XML (``.xml``, ``.xml.gz``), or a folder of XML files."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith((".xml", ".xml.gz")))
        if not files:
            raise DataError(path, "no .xml or .xml.gz files in this folder")
        found: Iterable[tuple[Document, _Where]] = (pair for f in files for pair in _pubmed_xml(f, warnings))
    elif path.name.endswith(".jsonl"):
        found = _publications_jsonl(path)
    elif path.name.endswith((".xml", ".xml.gz")):
        found = _pubmed_xml(path, warnings)
    elif not path.exists():
        raise DataError(path, "no such file or folder")
    else:
        raise DataError(path, "a publication corpus is .jsonl, PubMed .xml / .xml.gz, or a folder of XML files")
    return _corpus(found, path, PUBLICATIONS, warnings)


def read_trials(path: Path, warnings: list[str]) -> list[Document]:
    """A trial corpus: ``.jsonl`` (flat records or CT.gov v2 study objects) or a CT.gov v2 ``.json``."""
    if path.name.endswith(".jsonl"):
        found: Iterable[tuple[Document, _Where]] = _trials_jsonl(path)
    elif path.name.endswith(".json"):
        found = _studies_json(path)
    elif not path.exists():
        raise DataError(path, "no such file")
    else:
        raise DataError(path, "a trial corpus is .jsonl or a ClinicalTrials.gov v2 .json")
    return _corpus(found, path, TRIALS, warnings)


def _corpus(found: Iterable[tuple[Document, _Where]], path: Path, kind: str, warnings: list[str]) -> list[Document]:
    """Documents in order; a repeated id is an error (its two records may disagree; which is right?)."""
    first: dict[str, _Where] = {}
    documents = []
    for document, where in found:
        if document.id in first:
            raise where.error(f"duplicate {ID_LABEL[kind]} {document.id} (first: {first[document.id]})")
        first[document.id] = where
        documents.append(document)
    if not documents:
        raise DataError(path, f"no {kind} in this corpus")
    undated = [d.id for d in documents if d.date is None]
    if undated:
        warnings.append(
            f"{path.name}: {len(undated)} {kind} have no date (first: {ID_LABEL[kind]} {undated[0]}); "
            "a date cut-off cannot tell whether they predate a review"
        )
    return documents


def _check_pmid(pmid: str, where: _Where, what: str = "") -> str:
    """A PMID is a number in ASCII digits: ``١٢٣`` or ``²³`` would pass ``str.isdigit`` and match nothing."""
    if not _DIGITS.fullmatch(pmid):
        raise where.error(f"{what}PMID {_clip(pmid)!r} is not a number (ASCII digits 0-9)")
    return pmid


def _clip(text: str) -> str:
    """Text quoted in an error, cut to fit one line (a record may hold megabytes where a PMID should be)."""
    return text if len(text) <= 40 else text[:37] + "..."


def _strings(value: object, name: str, where: _Where) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise where.error(f"field {name!r} must be a list of strings")
    return tuple(value)


def _dated(text: str, name: str, where: _Where, *, end: bool = False) -> datetime.date | None:
    if not text.strip():
        return None
    try:
        return parse_date(text, end=end)
    except ValueError as exc:
        raise where.error(f"field {name!r}: {exc}") from None


def _publications_jsonl(path: Path) -> Iterator[tuple[Document, _Where]]:
    for line, record in read_jsonl(path):
        where = _Where(path, line)
        if record.get("pmid") is None:
            raise where.error("missing field 'pmid'")
        pmid = _check_pmid(identifier(record["pmid"], "field 'pmid'", path, line), where, "field 'pmid': ")
        abstract = field(record, "abstract", path, line, required=False)
        document = Document(
            pmid,
            field(record, "title", path, line, required=False),
            abstract,
            _publication_fields(record, abstract, where),
            _dated(field(record, "date", path, line, required=False), "date", where),
        )
        yield document, where


def _publication_fields(record: dict, abstract: str, where: _Where) -> dict[str, tuple[str, ...]]:
    """A JSONL publication's list fields: ``mesh``, ``publication_types`` and those of the optional ones it has."""
    assert where.line is not None
    fields = {name: _strings(record.get(name), name, where) for name in ("mesh", "publication_types")}
    optional = {name: _strings(record.get(name), name, where) for name in OPTIONAL_LIST_FIELDS}
    electronic = field(record, "electronic_date", where.path, where.line, required=False)
    day = _dated(electronic, "electronic_date", where)
    optional["electronic_date"] = (day.isoformat(),) if day else ()
    labels, sections = optional["abstract_labels"], len(abstract.split("\n"))
    if labels and len(labels) != sections:
        raise where.error(
            f"field 'abstract_labels' has {len(labels)} labels for {sections} lines of 'abstract' "
            '(one label a line, "" for an unlabelled section)'
        )
    optional["abstract_labels"] = labels if any(labels) else ()  # all "": no labels, as in XML
    return fields | {name: value for name, value in optional.items() if value}


def _trials_jsonl(path: Path) -> Iterator[tuple[Document, _Where]]:
    for line, record in read_jsonl(path):
        where = _Where(path, line)
        yield (_study(record, where) if "protocolSection" in record else _flat_trial(record, path, line)), where


def _flat_trial(record: dict, path: Path, line: int) -> Document:
    where = _Where(path, line)
    if record.get("nct_id") is None:
        raise where.error("missing field 'nct_id'")
    fields = {name: _strings(record.get(name), name, where) for name in ("conditions", "interventions")}
    return Document(
        identifier(record["nct_id"], "field 'nct_id'", path, line),
        field(record, "title", path, line, required=False),
        field(record, "summary", path, line, required=False),
        fields,
        _dated(field(record, "start_date", path, line, required=False), "start_date", where),
    )


# ClinicalTrials.gov API v2: where each field sits in a study object.
_NCT_ID = "protocolSection.identificationModule.nctId"
_BRIEF_TITLE = "protocolSection.identificationModule.briefTitle"
_OFFICIAL_TITLE = "protocolSection.identificationModule.officialTitle"
_SUMMARY = "protocolSection.descriptionModule.briefSummary"
_CONDITIONS = "protocolSection.conditionsModule.conditions"
_INTERVENTIONS = "protocolSection.armsInterventionsModule.interventions"
_START = "protocolSection.statusModule.startDateStruct.date"
_ELIGIBILITY = "protocolSection.eligibilityModule.eligibilityCriteria"
_BULLET = re.compile(r"^\s*(?:[*\u2022-]\s+|\d{1,2}[.)]\s+)?")


def _studies_json(path: Path) -> Iterator[tuple[Document, _Where]]:
    data, escaped = _load_json(path)
    studies = data.get("studies") if isinstance(data, dict) else data
    if not isinstance(studies, list):
        raise DataError(path, 'expected ClinicalTrials.gov v2 JSON: {"studies": [...]} or a list of study objects')
    for number, study in enumerate(studies, start=1):
        where = _Where(path, label=f"study {number}")
        if not isinstance(study, dict):
            raise where.error("a study must be a JSON object")
        if escaped and (at := surrogate_field(study)) is not None:  # it would fail only when indexed
            raise where.error(surrogate_message(at))
        document = _study(study, where)
        yield document, where.named(f"study {number} ({document.id})")


def _load_json(path: Path) -> tuple[Any, bool]:
    """The file's JSON value (read as the JSONL inputs are: no NaN, no key twice, no integer of over 4300
    digits, no nesting too deep), and whether its text has a surrogate escape (then strings are checked)."""
    if not path.is_file():
        raise DataError(path, "no such file")
    try:
        with path.open(encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise DataError(path, "not UTF-8 (save the file as UTF-8)") from None
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror})") from None
    return decode_json(text, path), SURROGATE_ESCAPE.search(text) is not None


def _study(study: dict, where: _Where) -> Document:
    nct_id = _get(study, _NCT_ID, str, where)
    if not nct_id or not nct_id.strip():
        raise where.error(f"missing {_NCT_ID}")
    where = where.named(f"{where.label} ({nct_id})" if where.label else nct_id)
    interventions = _get(study, _INTERVENTIONS, list, where) or []
    if not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in interventions):
        raise where.error(f"every entry of {_INTERVENTIONS} must be an object with a string 'name'")
    eligibility = eligibility_lines(_get(study, _ELIGIBILITY, str, where) or "")
    summary = _get(study, _SUMMARY, str, where) or ""
    fields = {
        "conditions": _strings(_get(study, _CONDITIONS, list, where), _CONDITIONS, where),
        "interventions": tuple(i["name"] for i in interventions),
    }
    return Document(
        nct_id,
        _get(study, _BRIEF_TITLE, str, where) or _get(study, _OFFICIAL_TITLE, str, where) or "",
        "\n".join(filter(None, (summary, *eligibility))),
        fields | ({"eligibility": eligibility} if eligibility else {}),
        _dated(_get(study, _START, str, where) or "", _START, where),
    )


def eligibility_lines(criteria: str) -> tuple[str, ...]:
    """ClinicalTrials.gov eligibility criteria as one criterion a line: blank lines and bullets dropped."""
    lines = (_BULLET.sub("", line, count=1).strip() for line in criteria.split("\n"))
    return tuple(line for line in lines if line)


def _get(obj: dict, dotted: str, kind: type, where: _Where) -> Any:
    """The value at a dotted path of nested objects, or None where any part is absent."""
    value: Any = obj
    for depth, key in enumerate(dotted.split(".")):
        if not isinstance(value, dict):
            raise where.error(f"{'.'.join(dotted.split('.')[:depth])} must be an object")
        value = value.get(key)
        if value is None:
            return None
    if not isinstance(value, kind):
        raise where.error(f"{dotted} must be a {'string' if kind is str else kind.__name__}")
    return value


# ---------------------------------------------------------------------------------------------------
# PubMed XML


def _open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it is gzip (by content: a renamed file still reads)."""
    if not path.is_file():
        raise DataError(path, "no such file")
    with path.open("rb") as f:
        gzipped = f.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else path.open("rb")


def _pubmed_xml(path: Path, warnings: list[str]) -> Iterator[tuple[Document, _Where]]:
    """Stream ``PubmedArticle`` records; each is cleared once read (a baseline file has ~30,000)."""
    other: dict[str, int] = {}
    position = 0
    try:
        with _open_binary(path) as stream:
            for element in _top_level(path, stream):
                if element.tag != "PubmedArticle":
                    other[element.tag] = other.get(element.tag, 0) + 1
                    continue
                position += 1
                where = _Where(path, label=f"PubmedArticle {position}")
                document = _article(element, where)
                yield document, where.named(f"PubmedArticle {position} (PMID {document.id})")
    except ET.ParseError as exc:
        message = re.sub(r": line \d+, column \d+$", "", str(exc))
        raise DataError(path, f"invalid XML ({message})", line=exc.position[0]) from None
    except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt .gz
        raise DataError(path, f"cannot read ({exc})") from None
    for tag, count in sorted(other.items()):
        warnings.append(f"{path.name}: {count} <{tag}> records skipped (only PubmedArticle is read)")


class _RecordTooLong(Exception):
    """More than :data:`MAX_RECORD_BYTES` read since the last record ended."""


class _Metered:
    """A byte stream counting what iterparse reads from it since the last record ended (``since``).

    iterparse reads a block, then hands out that block's events before it reads the next: so ``since`` is
    what the record being parsed holds (give or take one block), known before its element is complete.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.since = stream, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.since += len(data)
        if self.since > MAX_RECORD_BYTES:
            raise _RecordTooLong
        return data


def _top_level(path: Path, stream: IO[bytes]) -> Iterator[ET.Element]:
    """Each record (a child of ``PubmedArticleSet``, or a lone article) as it ends; cleared once used.

    Only end events: start events would double the parser's per-element work. A cleared record leaves an
    empty shell in the root, a few MB for a whole baseline file, freed with the file. A record of over
    :data:`MAX_RECORD_BYTES` is an error, raised as it is read.
    """
    metered = _Metered(stream)
    events = ET.iterparse(metered, events=("end",))
    records, pmid = 0, ""  # records read; the PMID of the one being read (its first PMID: MedlineCitation's)
    try:
        for _, element in events:
            if element.tag == "PMID" and not pmid:
                pmid = (element.text or "").strip()[:20]
            if element.tag in _RECORDS:
                yield element
                element.clear()
                records, pmid, metered.since = records + 1, "", 0
    except _RecordTooLong:
        label = f"record {records + 1}" + (f" (PMID {pmid})" if pmid else "")
        raise DataError(
            path,
            f"{label}: over {MAX_RECORD_BYTES:,} bytes of XML in one record (MAX_RECORD_BYTES; PubMed's largest "
            "are a few MB): a damaged or hostile file, not read further",
        ) from None
    root = events.root  # type: ignore[attr-defined]  # set by iterparse once the document is read
    if root.tag not in ("PubmedArticleSet", "PubmedArticle"):
        raise DataError(path, f"not PubMed XML: the root element is <{root.tag}>, not <PubmedArticleSet>")


# A MathML formula: as PubMed writes it (the mml: namespace), or bare.
_MATHML = frozenset({"{http://www.w3.org/1998/Math/MathML}math", "math"})


def _text(element: ET.Element | None) -> str:
    """All text inside, inline markup (<i>, <sub>) included, with whitespace runs collapsed; MathML whole."""
    if element is None:
        return ""
    return " ".join(((element.text or "") if len(element) == 0 else "".join(_pieces(element))).split())


def _pieces(element: ET.Element) -> Iterator[str]:
    """The element's text in document order, each ``<mml:math>`` inside it as one word (:func:`_math`).

    Walked with a stack, not recursion: a hostile record may nest thousands of <i> deep."""
    yield element.text or ""
    stack: list[tuple[Iterator[ET.Element], str]] = [(iter(element), "")]  # (children left, tail after them)
    while stack:
        children, tail = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            yield tail
        elif child.tag in _MATHML:
            yield _math(child) + (child.tail or "")
        else:
            yield child.text or ""
            stack.append((iter(child), child.tail or ""))


def _math(math: ET.Element) -> str:
    """A formula's characters run together: <mi>V</mi><mo>.</mo><mi>O</mi><mn>2</mn> is ``V.O2``.

    Only the leaves (mi, mn, mo, mtext) hold a formula's characters; the rest of its text is pretty-printing
    between elements, dropped. A space an ``<mml:mtext>`` holds is kept (``129Xe MRI``)."""
    return "".join(re.sub(r"\s+", " ", e.text or "") for e in math.iter() if len(e) == 0)


def _article(element: ET.Element, where: _Where) -> Document:
    citation = element.find("MedlineCitation")
    pmid = _text(citation.find("PMID")) if citation is not None else ""
    if not pmid:
        raise where.error("no MedlineCitation/PMID")
    _check_pmid(pmid, where)
    assert citation is not None
    where = where.named(f"{where.label} (PMID {pmid})")
    article = citation.find("Article")
    if article is None:
        raise where.error("no MedlineCitation/Article")
    text, labels = _abstract(article)
    journal, info = article.find("Journal"), citation.find("MedlineJournalInfo")
    headings = [h for h in _at(citation, "MeshHeadingList", "MeshHeading") if h.find("DescriptorName") is not None]
    fields = {
        "mesh": tuple(_text(h.find("DescriptorName")) for h in headings),
        "publication_types": _texts(article, "PublicationTypeList", "PublicationType"),
    }
    optional = {
        "mesh_headings": tuple(_heading(h) for h in headings),
        "abstract_labels": labels if any(labels) else (),
        "keywords": _texts(citation, "KeywordList", "Keyword"),
        "languages": _texts(article, "Language"),
        "authors": tuple(filter(None, map(_author, _at(article, "AuthorList", "Author")))),
        "journal": _texts(journal, "Title"),
        "journal_abbreviation": _texts(info, "MedlineTA") or _texts(journal, "ISOAbbreviation"),
        "issn": _texts(journal, "ISSN"),
        "electronic_date": _electronic_date(article, where),
    }
    return Document(
        pmid,
        _text(article.find("ArticleTitle")),
        text,
        fields | {name: value for name, value in optional.items() if value},
        _pub_date(next(iter(_at(journal, "JournalIssue", "PubDate")), None), where),
    )


def _at(element: ET.Element | None, *tags: str) -> list[ET.Element]:
    """The elements at a path of child tags below ``element``, in order. One plain tag a step: ElementTree walks
    those in C, an ``a/b`` path in Python (a third of a baseline file's load time)."""
    found = [element] if element is not None else []
    for tag in tags:
        found = [child for parent in found for child in parent.findall(tag)]
    return found


def _texts(element: ET.Element | None, *tags: str) -> tuple[str, ...]:
    """The text of each element at a path of child tags below ``element``, in order, empty ones left out."""
    return tuple(filter(None, map(_text, _at(element, *tags))))


def _abstract(article: ET.Element) -> tuple[str, tuple[str, ...]]:
    """The abstract's sections, one a line, and their labels (``""`` for an unlabelled one): a structured
    abstract's ``BACKGROUND``, ``METHODS`` are not words of its text. Empty sections are left out."""
    sections = [(_text(part), part.get("Label") or "") for part in _at(article, "Abstract", "AbstractText")]
    sections = [(text, " ".join(label.split())) for text, label in sections if text]
    return "\n".join(text for text, _ in sections), tuple(label for _, label in sections)


def _heading(heading: ET.Element) -> str:
    """A MeshHeading as MEDLINE shows it: ``Aspirin/*therapeutic use/adverse effects``, ``*`` on a major topic."""
    parts = [heading.find("DescriptorName"), *heading.findall("QualifierName")]
    return "/".join(("*" if p.get("MajorTopicYN") == "Y" else "") + _text(p) for p in parts if p is not None)


def _author(author: ET.Element) -> str:
    """``Smith JA`` (LastName, Initials), or a group author's CollectiveName."""
    collective = _text(author.find("CollectiveName"))
    return collective or " ".join(filter(None, (_text(author.find("LastName")), _text(author.find("Initials")))))


def _electronic_date(article: ET.Element, where: _Where) -> tuple[str, ...]:
    """``("YYYY-MM-DD",)`` from the article's electronic publication date, or ``()`` when it has none."""
    for date in article.findall("ArticleDate"):
        if date.get("DateType", "Electronic") == "Electronic" and date.findtext("Year"):
            day = _calendar_date(
                date.findtext("Year", ""), date.findtext("Month"), date.findtext("Day"), where, "ArticleDate"
            )
            return (day.isoformat(),)
    return ()


def _pub_date(pub_date: ET.Element | None, where: _Where) -> datetime.date | None:
    if pub_date is None:
        return None
    year = pub_date.findtext("Year")
    if year is not None:
        return _calendar_date(year, pub_date.findtext("Month"), pub_date.findtext("Day"), where, "PubDate")
    # "1998 Dec-1999 Jan", "2000 Spring", "1975-1976": the first year, and its month where one follows.
    # No year at all ("Summer") is undated; a year no calendar has ("0000 Jan") is an error, as in <Year>.
    text = pub_date.findtext("MedlineDate") or ""
    match = _MEDLINE_DATE.search(text)
    if match is None:
        return None
    try:
        return datetime.date(int(match[1]), _MONTHS.get((match[2] or "").lower(), 1), 1)
    except ValueError as exc:
        raise where.error(f"MedlineDate {_clip(text)!r} is not a date ({exc})") from None


def _calendar_date(year: str, month: str | None, day: str | None, where: _Where, name: str) -> datetime.date:
    shown = "/".join(p for p in (year, month, day) if p)
    try:
        month_number = _month(month) if month else 1
        return datetime.date(_number(year, "year"), month_number, _number(day, "day") if day else 1)
    except ValueError as exc:
        raise where.error(f"{name} {shown!r} is not a date ({exc})") from None


def _number(text: str, name: str) -> int:
    """ASCII digits (around white space): int() would also read '٣', '²' and '2_001'."""
    if not _DIGITS.fullmatch(text.strip()):
        raise ValueError(f"{name} {text!r} is not a number in ASCII digits")
    return int(text)


def _month(text: str) -> int:
    text = text.strip()
    if _DIGITS.fullmatch(text):
        return int(text)
    if text[:3].lower() not in _MONTHS:
        raise ValueError(f"month {text!r}")
    return _MONTHS[text[:3].lower()]
