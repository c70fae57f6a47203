"""Local HTTP services: emulators of PubMed E-utilities (``esearch``, ``efetch``, ``esummary``) and
ClinicalTrials.gov v2 ``/studies`` that answer from the offline Boolean engine, for offline runs and for
testing the HTTP backends and tools written for the real services (Biopython's ``Bio.Entrez``, EDirect).

``deepretrieval serve emulator pubmed --data literature-demo --port 8765`` serves
``http://127.0.0.1:8765/entrez/eutils/{esearch,efetch,esummary}.fcgi`` (set ``backend.base_url`` to
``http://127.0.0.1:8765/entrez/eutils``); ``... serve emulator ctgov --data TRIALS`` serves
``/api/v2/studies`` (``backend.base_url: http://127.0.0.1:8765/api/v2``; ``--data trials-demo`` for the
generated trials). Both bind 127.0.0.1 unless told.
Every E-utility takes GET or a POST form, as NCBI's (E-utilities Help, NCBI Bookshelf NBK25499);
``tool``, ``email`` and ``api_key`` are accepted and change nothing.

**esearch**: ``db=pubmed``, ``term``, ``retmode`` (``xml``, the default, or ``json``), ``retstart``,
``retmax`` (default 20, at most 10,000), and:

- ``field``: the term searched as if every word and phrase without a tag carried ``[field]`` (einfo's
  short names ``TITL``, ``MESH``, ``MAJR``, ``PTYP``, ``AUTH``, ``JOUR``, ``LANG``, ``OTRM``, ``SUBH``,
  ``PDAT``, ``WORD`` are read as their tags; any other value is used as a tag as written). A run of words
  that a tag already binds (``randomized controlled trial[pt]``) keeps its tag.
- ``datetype=pdat`` with ``mindate`` / ``maxdate`` (``YYYY/MM/DD``, ``YYYY/MM`` or ``YYYY``; inclusive), and
  ``reldate=N``: the last N days up to today (the emulator's ``clock``, injectable), narrowing a
  ``mindate`` / ``maxdate`` window when both are given. Which dates of a record fall in the window is the
  engine's business (:mod:`.search.boolean`). Another ``datetype`` is an ``ERROR``.
- ``rettype=count``: ``Count`` alone.
- ``sort``: ``relevance`` (the default here: the engine's order), ``pub_date`` (also written ``pub+date``:
  newest print date first, records without a date last), ``Author`` (also ``first_author``: first author, A
  to Z), ``last_author``, ``JournalName`` (also ``journal``: journal abbreviation, else title, A to Z) and
  ``title``, records without one last; ties keep their relevance order. The sorts read the corpus's records;
  when more than 10,000 records match, they order the 10,000 that match best. Any other value is an
  ``ERROR`` (``Invalid sort: …``).
- ``usehistory=y``: the whole result (up to 10,000 ids, in its sort order) is kept on the history server;
  the reply carries ``WebEnv`` and ``QueryKey`` (JSON ``webenv``, ``querykey``). With a ``WebEnv`` it keeps,
  the result joins that environment under the next ``query_key`` (an unknown one starts a new one). A later
  esearch with ``WebEnv`` + ``query_key`` searches that set: alone, it is the stored result; with a
  ``term``, the term AND the set (the term's matches among its first 10,000). The server keeps the last
  :data:`HISTORY_SIZE` results (least recently used dropped first); a missing or dropped one is an ``ERROR``
  ``Unable to obtain query #N``.

Replies in NCBI's shapes: JSON ``{"header": …, "esearchresult": {"count", "retmax", "retstart",
["querykey", "webenv",] "idlist", "translationset", "querytranslation"[, "errorlist", "warninglist"]}}``;
XML ``<eSearchResult>`` with NCBI's DOCTYPE, so that Biopython's ``Entrez.read`` validates it against the
DTD it ships. **A search without hits** carries PubMed's notes: ``ErrorList/PhraseNotFound`` for each
unquoted word (or run of words a tag binds) that finds nothing on its own, ``WarningList`` with
``QuotedPhraseNotFound`` for each such quoted phrase and ``OutputMessage`` "No items found." (JSON
``errorlist`` ``{"phrasesnotfound", "fieldsnotfound"}``, ``warninglist`` ``{"phrasesignored",
"quotedphrasesnotfound", "outputmessages"}``). **A search the engine runs otherwise than PubMed would**
carries the engine's note as an ``OutputMessage`` too, hits or none: ``[mh]`` / ``[majr]`` without a MeSH
tree (``backend.mesh_tree``; ``serve emulator --mesh-tree``) are not exploded to narrower headings.
**A field tag the engine does not know** (``aspirin[zz]``, or ``field=zz``) is ``ErrorList/FieldNotFound``
(``zz``) with count 0 and "No items found." — PubMed
would search the term without the tag and find records; the engine refuses the tag, so our client reads
this reply as the model's fault (see :mod:`.search.pubmed`). Any other query the engine cannot parse is
answered as PubMed answers errors, **200 with an** ``ERROR`` field: ``Query syntax error: …``; so are an
empty term (``Empty term and query_key - nothing todo``, NCBI's words) and values the emulator does not
serve (another db or datetype, a date it cannot read, ``retstart`` past 9,999). A malformed number
(``retstart``, ``retmax``, ``reldate``, ``query_key``) is a 400 (below).

**efetch**: ``db=pubmed``, ``id`` (comma-separated, repeatable) or ``WebEnv`` + ``query_key``, then
``retstart`` / ``retmax`` of that set (default: all of it, at most 10,000); ``retmode=xml`` (the default)
with ``rettype`` ``abstract``, ``xml`` or none. The reply is PubMed XML (``PubmedArticleSet``, NCBI's
DOCTYPE) of the records in the order asked, written by :func:`.data.pubmed_xml.write_pubmed_xml`; an
unknown id is skipped. Anything else (``rettype=medline``, ``retmode=text``, no id) is an
``<eFetchResult><ERROR>`` (200).

**esummary**: the same ids or history, ``version`` 1.0 (the default; 2.0 is an ``ERROR``). XML: an
``eSummaryResult`` (NCBI's ``esummary-v1.dtd``) with a ``DocSum`` per record: ``Id`` and the ``Item`` elements
``PubDate``, ``EPubDate`` (``2020 Feb 15``), ``Source`` (journal abbreviation), ``AuthorList``,
``LastAuthor``, ``Title``, ``LangList`` (language names), ``ISSN``, ``PubTypeList``, ``ArticleIds``,
``HasAbstract``, ``FullJournalName``; an unknown id is an ``ERROR`` element in its place (Biopython raises
on it). ``retmode=json``: ``{"header": …, "result": {"uids": [...], "<id>": {"uid", "pubdate", "epubdate",
"source", "authors", "lastauthor", "title", "lang", "issn", "pubtype", "articleids", "attributes",
"fulljournalname", "sortpubdate", "sortfirstauthor"}}}``, an unknown id ``{"uid", "error"}``.

**/studies**: ``query.term``, ``pageSize`` (default 10, at most 1,000), ``pageToken`` (opaque, from
``nextPageToken``), ``countTotal``, ``format=json``, ``fields`` (``NCTId`` alone, as our client sends it: each
study as ``protocolSection.identificationModule.nctId`` only; otherwise accepted, not applied: a study is its
whole v2 object when the emulator has one — ``--data trials-demo`` gives it the generated objects — else
only its ``nctId``), ``filter.advanced`` only as
``AREA[StartDate]RANGE[from,to]`` (``YYYY-MM-DD``, ``MIN``, ``MAX``): the start-date window.
``query.term`` is ClinicalTrials.gov's search syntax as far as the engine runs it: ``AND``, ``OR``,
``NOT`` (upper case), parentheses, ``"quoted phrases"``, and ``AREA[Area]`` before a word, a quoted phrase
or a parenthesised group, every term of which is then searched in that area: ``Condition`` -> the
conditions (``[cond]``), ``InterventionName`` -> the interventions (``[intr]``), ``BriefTitle`` /
``OfficialTitle`` -> the title (``[ti]``: a corpus keeps one title), ``BriefSummary`` /
``DetailedDescription`` -> the summary (``[ab]``), ``BasicSearch`` -> every field. The engine evaluates
operators left to right (PubMed's rule); ClinicalTrials.gov gives them precedence, so write parentheses
in a query meant for both. Refused, each a 400 whose text names ``query.term`` (the model's fault for
our client): another area (``query.term: AREA[Phase] is not searchable in the emulator (searchable: …)``),
``RANGE[...]`` in the query (``query.term: RANGE[...] is not supported in query.term (the emulator reads
AREA[StartDate]RANGE[from,to] from filter.advanced)``), an area with no term after it, and any query the
engine cannot parse (``Invalid query.term: …``), including Essie's other operators (``EXPANSION[…]``,
``COVERAGE[…]``). Another ``filter.advanced`` is a 400 that does not name ``query.term``.

**Malformed requests** are a 400 whose text names the parameter, on both services: a number (``retstart``,
``retmax``, ``reldate``, ``query_key``, ``pageSize``) that is not 1 to :data:`MAX_DIGITS` ASCII digits
(``²`` and ``٣`` are digits to Python, and 5,000 digits are more than ``int`` reads), a ``pageToken`` longer
than :data:`MAX_PAGE_TOKEN` characters or not one this server gave. **A request body that does not arrive**
in full within ``body_timeout`` seconds (:data:`BODY_TIMEOUT` by default; a client that sends less than its
``Content-Length`` would otherwise hold its request open for as long as it keeps the connection) is answered
408 and the connection closed; such a request was never received, so it is not logged.

**Faults** (:class:`Faults`), on every API path (esearch, efetch, esummary, /studies), drawn per request
with a seeded generator: a share ``rate`` of requests get one of ``429`` (NCBI's rate-limit body,
``Retry-After``), ``500``, ``503`` (``Retry-After``), ``slow`` (the right answer, ``slow_seconds`` late) or
``drop`` (a reply started and cut: the connection closes mid-body). ``rate_limit``: answer 429 as NCBI does
when more than that many requests arrive in one second. **Request log**: every request to the API (time of
arrival, method, path, every parameter with all its values, ``api_key`` redacted, the fault, the status) in
:class:`RequestLog`, at ``GET /_emulator/log`` and, with ``--log FILE``, as JSON lines.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import collections
import datetime
import functools
import json
import logging
import random
import re
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from .data.pubmed_xml import MONTHS, write_pubmed_xml, xml_safe
from .errors import DeepRetrievalError
from .search.boolean import MAX_K, BooleanIndex, BooleanRequest
from .search.pubmed_syntax import MAX_QUERY_CHARS, QuerySyntaxError
from .types import Document, Ranking

SERVICES = ("pubmed", "ctgov")
FAULT_KINDS = ("429", "500", "503", "slow", "drop")
ESEARCH_PATH = "/entrez/eutils/esearch.fcgi"
EFETCH_PATH = "/entrez/eutils/efetch.fcgi"
ESUMMARY_PATH = "/entrez/eutils/esummary.fcgi"
STUDIES_PATH = "/api/v2/studies"
LOG_PATH = "/_emulator/log"
BASE_PATHS = {"pubmed": "/entrez/eutils", "ctgov": "/api/v2"}
DOCTYPE = (
    '<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">'
)
ESUMMARY_DOCTYPE = (
    '<!DOCTYPE eSummaryResult PUBLIC "-//NLM//DTD esummary v1 20041029//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20041029/esummary-v1.dtd">'
)
SECRET_PARAMS = frozenset({"api_key"})
HISTORY_SIZE = 300  # stored search results (WebEnv + query_key), least recently used dropped first
NO_ITEMS = "No items found."
# esearch sort values (lower case, "+" and " " read as "_") -> what orders the result; see Emulator._ordered.
SORTS = {"relevance": "relevance", "": "relevance", "pub_date": "date", "pubdate": "date", "author": "author"}
SORTS |= {"first_author": "author", "last_author": "last_author", "journalname": "journal", "journal": "journal"}
SORTS |= {"title": "title"}
# E-utilities field names (einfo's short names, lower case) -> the query syntax's tag; any other value of
# ``field`` is used as written, as a tag.
EINFO_FIELDS = {"titl": "ti", "mesh": "mh", "majr": "majr", "ptyp": "pt", "auth": "au", "jour": "ta", "lang": "la"}
EINFO_FIELDS |= {"otrm": "ot", "subh": "sh", "pdat": "dp", "word": "tw"}
# ClinicalTrials.gov search areas -> the trials index's tags (BasicSearch: untagged, every field).
CTGOV_AREAS = {"condition": "cond", "conditions": "cond", "interventionname": "intr", "intervention": "intr"}
CTGOV_AREAS |= {"brieftitle": "ti", "officialtitle": "ti", "briefsummary": "ab", "detaileddescription": "ab"}
CTGOV_AREAS |= {"basicsearch": ""}
_RANGE = re.compile(r"^AREA\[StartDate\]RANGE\[\s*([^,\]]+?)\s*,\s*([^,\]]+?)\s*\]$")
_FIELD_ERROR = re.compile(r"field tag \[([^\]]*)\]")
_DROP_MESSAGE = "ASGI callable returned without completing response."
MAX_DIGITS = 9  # a number parameter: up to 999,999,999 (a retmax above 10,000 is then capped at 10,000)
MAX_PAGE_TOKEN = 256  # characters; this server's tokens are about 20
BODY_TIMEOUT = 10.0  # seconds for a request's whole body to arrive
MAX_BODY_BYTES = 1 << 20  # a request body past this is a 413: an esearch form is a few kB (term <= 4,000 bytes)
_ASCII_NUMBER = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")


@dataclass(frozen=True)
class Faults:
    """Injected faults: a share ``rate`` of API requests fail, each with a kind drawn from ``kinds``."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    retry_after: float = 1.0  # seconds, in 429 and 503 replies
    slow_seconds: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise DeepRetrievalError(f"--fail-rate must be between 0 and 1, got {self.rate}")
        unknown = sorted(set(self.kinds) - set(FAULT_KINDS))
        if unknown or not self.kinds:
            known = ", ".join(FAULT_KINDS)
            raise DeepRetrievalError(f"unknown fault kind(s) {unknown or '(none given)'} (known: {known})")
        if self.retry_after < 0 or self.slow_seconds < 0:
            raise DeepRetrievalError("--retry-after and --slow-seconds must not be negative")


@dataclass(frozen=True)
class LoggedRequest:
    time: float  # arrival, seconds since the epoch
    method: str
    path: str
    params: dict[str, list[str]]
    fault: str | None  # an injected fault or "rate_limit"; None: answered normally
    status: int | None  # None: the connection was dropped


class RequestLog:
    """Every API request an emulator received, in memory and optionally appended to a JSON-lines file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._records: list[LoggedRequest] = []
        self._lock = threading.Lock()

    def add(self, record: LoggedRequest) -> None:
        with self._lock:
            self._records.append(record)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(asdict(record)) + "\n")

    def records(self) -> list[LoggedRequest]:
        with self._lock:
            return sorted(self._records, key=lambda r: r.time)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


@dataclass(frozen=True)
class Reply:
    status: int
    body: str
    media_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


class ServiceError(Exception):
    """What a service answers with an error message rather than results."""


class MalformedRequest(ServiceError):
    """A parameter no request could mean (not a number, not a token of ours): a 400 on both services."""


@dataclass(frozen=True)
class Stored:
    """A search result kept on the history server: its ids in order (up to MAX_K) and its count."""

    ids: list[str]
    total: int


class Emulator:
    """The state behind an emulator app: the engine, the corpus's records (efetch, esummary, sorting), the
    history server (WebEnv), the fault generator, the rate window, the log."""

    def __init__(
        self,
        service: str,
        index: BooleanIndex,
        *,
        documents: Sequence[Document] = (),
        studies: Sequence[Mapping[str, Any]] = (),
        faults: Faults | None = None,
        log: RequestLog | None = None,
        rate_limit: float | None = None,
        clock: Callable[[], datetime.date] = datetime.date.today,
        history_size: int = HISTORY_SIZE,
    ) -> None:
        if service not in SERVICES:
            raise DeepRetrievalError(f"no emulator for {service!r} (known: {', '.join(SERVICES)})")
        self.service, self.index = service, index
        self.documents = {d.id: d for d in documents}
        # CT.gov v2 study objects by NCT id (/studies answers with them; without one, a stub naming its id).
        self.study_objects = {str(s["protocolSection"]["identificationModule"]["nctId"]): s for s in studies}
        self.clock, self.history_size = clock, history_size
        self.faults = faults or Faults()
        self.log = log or RequestLog()
        self.rate_limit = rate_limit
        self._rng = random.Random(self.faults.seed)
        self._arrivals: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self._engine_lock = threading.Lock()  # one search at a time: tantivy objects are not shared across threads
        self._history: collections.OrderedDict[tuple[str, int], Stored] = collections.OrderedDict()
        self._webenvs: collections.OrderedDict[str, int] = collections.OrderedDict()  # WebEnv -> its last key

    def admit(self, now: float) -> str | None:
        """The fault this request meets, if any: NCBI's rate limit first, then an injected fault."""
        with self._lock:
            if self.rate_limit is not None:
                while self._arrivals and self._arrivals[0] <= now - 1.0:
                    self._arrivals.popleft()
                if len(self._arrivals) >= self.rate_limit:
                    return "rate_limit"
                self._arrivals.append(now)
            if self.faults.rate and self._rng.random() < self.faults.rate:
                return self._rng.choice(self.faults.kinds)
        return None

    def search(self, request: BooleanRequest, k: int) -> Ranking | QuerySyntaxError:
        with self._engine_lock:
            return self.index.search([request], k)[0]

    def count(self, request: BooleanRequest) -> int | QuerySyntaxError:
        with self._engine_lock:
            return self.index.count([request])[0]

    # -- esearch -----------------------------------------------------------------------------------
    def esearch(self, params: Mapping[str, Sequence[str]]) -> Reply:
        try:
            result: dict[str, Any] = self._esearch(params)
        except MalformedRequest as e:
            return Reply(400, str(e), "text/plain; charset=utf-8")
        except ServiceError as e:
            result = {"ERROR": str(e)}
        if _last(params, "retmode", "xml").lower() == "json":
            body = {"header": {"type": "esearch", "version": "0.3"}, "esearchresult": result}
            return Reply(200, json.dumps(body), "application/json; charset=UTF-8")
        return Reply(200, esearch_xml(result), "text/xml; charset=UTF-8")

    def _esearch(self, params: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        db = _last(params, "db", "")
        if db != "pubmed":
            raise ServiceError(f"Invalid db name specified: {db}")
        term = _last(params, "term", "").strip()
        key = _number(params, "query_key", 0) if _last(params, "query_key", "").strip() else None
        if not term and key is None:
            raise ServiceError("Empty term and query_key - nothing todo")
        retstart, retmax = _number(params, "retstart", 0), min(_number(params, "retmax", 20), MAX_K)
        if retstart >= MAX_K:
            raise ServiceError(f"Search Backend failed: retstart cannot be larger than {MAX_K - 1}")
        mindate, maxdate = self._window(params)
        order = self._sort(params)
        field = _last(params, "field", "").strip()
        if term and field:
            term = tag_every_term(term, EINFO_FIELDS.get(field.lower(), field))
        history = _last(params, "usehistory", "n").lower() == "y"
        count_only = _last(params, "rettype", "").lower() == "count"
        request = BooleanRequest(term, mindate, maxdate)
        if count_only and key is None:  # the engine counts without ranking
            counted = self.count(request)
            if isinstance(counted, QuerySyntaxError):
                return {"count": "0", **_field_not_found(counted)}
            return self._engine_notes({"count": str(counted), **(self._not_found(term) if counted == 0 else {})}, term)
        whole = history or key is not None or order != "relevance"  # the whole result, to store, cut or sort
        ids: list[str] = []
        total = 0
        if term:
            found = self.search(request, MAX_K if whole else min(retstart + retmax, MAX_K))
            if isinstance(found, QuerySyntaxError):
                refusal = _field_not_found(found)
                return {"count": "0", **({} if count_only else _page([], retstart, term)), **refusal}
            ids, total = found.ids, found.total or 0
        if key is not None:
            stored = self._recall(_webenv(params), key)
            if term:  # E-utilities: the term AND the stored set
                kept = set(stored.ids)
                ids = [i for i in ids if i in kept]
                total = len(ids)
            else:
                ids, total = stored.ids, stored.total
        ids = self._ordered(ids, order)
        result: dict[str, Any] = {"count": str(total)}
        if not count_only:
            result |= _page(ids[retstart : retstart + retmax], retstart, term)
        if history:
            webenv, stored_key = self._store(_webenv(params), Stored(ids, total))
            result = {**result, "querykey": str(stored_key), "webenv": webenv}
        if total == 0:
            result |= self._not_found(term)
        return self._engine_notes(result, term)

    def _engine_notes(self, result: dict[str, Any], term: str) -> dict[str, Any]:
        """The engine's own notes on a search it ran otherwise than PubMed would (``[mh]`` not exploded: no
        MeSH tree) as OutputMessages of the WarningList, never silent."""
        notes = self.index.warnings(term) if term else []
        if not notes:
            return result
        warnings = result.get("warninglist", _warning_list(messages=()))
        return {**result, "warninglist": {**warnings, "outputmessages": [*notes, *warnings["outputmessages"]]}}

    def _window(self, params: Mapping[str, Sequence[str]]) -> tuple[datetime.date | None, datetime.date | None]:
        """The request's date window: ``mindate`` / ``maxdate``, narrowed to the last ``reldate`` days."""
        low, high = _pdat_window(params)
        if not _last(params, "reldate", "").strip():
            return low, high
        _datetype(params)
        today = self.clock()
        days = min(_number(params, "reldate", 0), today.toordinal() - 1)  # at most back to 0001-01-01
        recent = today - datetime.timedelta(days=days)
        return (max(low, recent) if low else recent), (min(high, today) if high else today)

    def _sort(self, params: Mapping[str, Sequence[str]]) -> str:
        written = _last(params, "sort", "")
        order = SORTS.get(written.strip().lower().replace("+", "_").replace(" ", "_"))
        if order is None:
            raise ServiceError(
                f"Invalid sort: {written!r} "
                "(the emulator sorts by relevance, pub_date, Author, last_author, JournalName, title)"
            )
        if order != "relevance" and not self.documents:
            raise ServiceError(f"sort={written}: the emulator was started without the corpus's records")
        return order

    def _ordered(self, ids: list[str], order: str) -> list[str]:
        """``ids`` (best match first) in the asked order; ties keep their relevance order (a stable sort)."""
        if order == "relevance":
            return ids
        records = [self.documents.get(i) for i in ids]
        if order == "date":  # newest print date first; records without a date last
            keys = [(d is None or d.date is None, -(d.date.toordinal() if d and d.date else 0)) for d in records]
        else:
            keys = [_sort_name(d, order) for d in records]
            keys = [(not k, k.casefold()) for k in keys]  # type: ignore[union-attr]
        return [i for _, i in sorted(zip(keys, ids, strict=True), key=lambda pair: pair[0])]

    def _not_found(self, term: str) -> dict[str, Any]:
        """PubMed's notes on a search without hits: each word, run of words or phrase of ``term`` that finds
        nothing on its own (in any date), then "No items found."."""
        phrases, quoted = [], []
        for leaf, is_quoted in query_leaves(term)[:MAX_LEAVES] if term else []:
            counted = self.count(BooleanRequest(leaf))
            if counted == 0:
                (quoted if is_quoted else phrases).append(leaf)
        errors = {"errorlist": {"phrasesnotfound": phrases, "fieldsnotfound": []}} if phrases else {}
        return {**errors, "warninglist": _warning_list(quoted)}

    # -- the history server ------------------------------------------------------------------------
    def _store(self, webenv: str, stored: Stored) -> tuple[str, int]:
        """Keep a result under ``webenv`` (a new one if it is empty or unknown); its WebEnv and query_key."""
        with self._lock:
            if webenv not in self._webenvs:
                webenv = f"MCID_{secrets.token_hex(12)}"
            key = self._webenvs.get(webenv, 0) + 1
            self._webenvs[webenv] = key
            self._webenvs.move_to_end(webenv)
            self._history[(webenv, key)] = stored
            for kept in (self._webenvs, self._history):
                while len(kept) > self.history_size:
                    kept.popitem(last=False)
            return webenv, key

    def _recall(self, webenv: str, key: int) -> Stored:
        with self._lock:
            stored = self._history.get((webenv, key))
            if stored is None:
                raise ServiceError(f"Unable to obtain query #{key}")
            self._history.move_to_end((webenv, key))
            return stored

    # -- efetch and esummary -----------------------------------------------------------------------
    def efetch(self, params: Mapping[str, Sequence[str]]) -> Reply:
        try:
            ids = self._records(params)
            retmode, rettype = _last(params, "retmode", "xml").lower(), _last(params, "rettype", "").lower()
            if retmode != "xml" or rettype not in ("", "xml", "full", "abstract"):
                raise ServiceError(
                    f"the emulator serves PubMed XML only (retmode=xml, rettype=abstract or none), "
                    f"not retmode={retmode!r} rettype={rettype!r}"
                )
        except MalformedRequest as e:
            return Reply(400, str(e), "text/plain; charset=utf-8")
        except ServiceError as e:
            return Reply(200, efetch_error_xml(str(e)), "text/xml; charset=UTF-8")
        records = [self.documents[i] for i in ids if i in self.documents]  # unknown ids are skipped
        return Reply(200, write_pubmed_xml(records).decode(), "text/xml; charset=UTF-8")

    def esummary(self, params: Mapping[str, Sequence[str]]) -> Reply:
        as_json = _last(params, "retmode", "xml").lower() == "json"
        try:
            version = _last(params, "version", "1.0")
            if version not in ("1.0", ""):
                raise ServiceError(f"Invalid version: {version!r} (the emulator serves esummary version 1.0)")
            ids = self._records(params)
        except MalformedRequest as e:
            return Reply(400, str(e), "text/plain; charset=utf-8")
        except ServiceError as e:
            if as_json:
                body = {"header": {"type": "esummary", "version": "0.3"}, "esummaryresult": [str(e)]}
                return Reply(200, json.dumps(body), "application/json; charset=UTF-8")
            return Reply(200, esummary_xml([], error=str(e)), "text/xml; charset=UTF-8")
        records = [(i, self.documents.get(i)) for i in ids]
        if as_json:
            return Reply(200, json.dumps(esummary_json(records)), "application/json; charset=UTF-8")
        return Reply(200, esummary_xml(records), "text/xml; charset=UTF-8")

    def _records(self, params: Mapping[str, Sequence[str]]) -> list[str]:
        """The ids an efetch or esummary asks for: ``id`` (comma-separated, repeatable) or ``WebEnv`` +
        ``query_key``, then ``retstart`` / ``retmax`` of that set."""
        db = _last(params, "db", "")
        if db != "pubmed":
            raise ServiceError(f"Invalid db name specified: {db}")
        listed = [i.strip() for value in params.get("id", ()) for i in value.split(",") if i.strip()]
        if listed:
            ids = list(dict.fromkeys(listed))
        elif _last(params, "query_key", "").strip():
            ids = self._recall(_webenv(params), _number(params, "query_key", 0)).ids
        else:
            raise ServiceError("Empty id list - nothing todo")
        retstart, retmax = _number(params, "retstart", 0), min(_number(params, "retmax", MAX_K), MAX_K)
        return ids[retstart : retstart + retmax]

    # -- /studies ----------------------------------------------------------------------------------
    def studies(self, params: Mapping[str, Sequence[str]]) -> Reply:
        try:
            return Reply(200, json.dumps(self._studies(params)), "application/json")
        except ServiceError as e:
            return Reply(400, str(e), "text/plain; charset=utf-8")

    def _studies(self, params: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        term = _last(params, "query.term", "").strip()
        if not term:
            raise ServiceError("query.term: the emulator needs a query")
        if _last(params, "format", "json").lower() != "json":
            raise ServiceError("format: the emulator answers json only")
        size = _number(params, "pageSize", 10)
        if not 1 <= size <= 1000:
            raise ServiceError(f"pageSize: must be between 1 and 1000, got {size}")
        offset = _page_offset(_last(params, "pageToken", ""))
        mindate, maxdate = _start_date_window(_last(params, "filter.advanced", ""))
        result = self.search(BooleanRequest(ctgov_term(term), mindate, maxdate), min(offset + size, MAX_K))
        if isinstance(result, QuerySyntaxError):
            raise ServiceError(f"Invalid query.term: {result}")
        ids = result.ids[offset : offset + size]
        ids_only = _ids_only(params)
        found = [
            (None if ids_only else self.study_objects.get(i))
            or {"protocolSection": {"identificationModule": {"nctId": i}}}
            for i in ids
        ]
        body: dict[str, Any] = {"studies": found}
        if offset + len(ids) < min(result.total or 0, MAX_K):
            body["nextPageToken"] = _page_token(offset + len(ids))
        if _last(params, "countTotal", "false").lower() == "true":
            body["totalCount"] = result.total
        return body

    # -- injected faults ---------------------------------------------------------------------------
    def fault_reply(self, fault: str) -> Reply:
        wait = {"Retry-After": f"{self.faults.retry_after:g}"}
        if fault in ("429", "rate_limit"):
            limit = self.rate_limit or 3
            body = json.dumps({"error": "API rate limit exceeded", "count": str(int(limit) + 1), "limit": str(limit)})
            return Reply(429, body, "application/json", {"Retry-After": "1"} if fault == "rate_limit" else wait)
        if fault == "503":
            return Reply(503, "<html><body>Service Temporarily Unavailable</body></html>", "text/html", wait)
        return Reply(500, "<html><body>Internal Server Error</body></html>", "text/html")


def esearch_xml(result: Mapping[str, Any]) -> str:
    """An esearch reply as NCBI writes it (its DOCTYPE, the DTD's element order)."""
    root = ET.Element("eSearchResult")
    if "ERROR" in result:
        _element(root, "ERROR", result["ERROR"])
    else:
        _element(root, "Count", result["count"])
        if "idlist" in result:  # rettype=count: the count alone
            _element(root, "RetMax", result["retmax"])
            _element(root, "RetStart", result["retstart"])
            if "querykey" in result:
                _element(root, "QueryKey", result["querykey"])
                _element(root, "WebEnv", result["webenv"])
            ids = _element(root, "IdList")
            for i in result["idlist"]:
                _element(ids, "Id", i)
            _element(root, "TranslationSet")
            _element(root, "QueryTranslation", result["querytranslation"])
    notes = (("errorlist", "ErrorList", _ERROR_LIST), ("warninglist", "WarningList", _WARNING_LIST))
    for key, tag, members in notes:
        if key in result:
            listed = _element(root, tag)
            for member, child in members:
                for value in result[key].get(member, ()):
                    _element(listed, child, value)
    return _xml_document(root, DOCTYPE)


# The JSON members of esearch's ErrorList and WarningList and their XML elements, in the DTD's order.
_ERROR_LIST = (("phrasesnotfound", "PhraseNotFound"), ("fieldsnotfound", "FieldNotFound"))
_WARNING_LIST = (
    ("phrasesignored", "PhraseIgnored"),
    ("quotedphrasesnotfound", "QuotedPhraseNotFound"),
    ("outputmessages", "OutputMessage"),
)
MAX_LEAVES = 20  # words or phrases of a query without hits checked one by one for PhraseNotFound


def efetch_error_xml(message: str) -> str:
    root = ET.Element("eFetchResult")
    _element(root, "ERROR", message)
    return _xml_document(root, None)


def esummary_xml(records: Sequence[tuple[str, Document | None]], *, error: str | None = None) -> str:
    """An esummary version 1.0 reply: a DocSum per known id, an ERROR per unknown one (NCBI's DOCTYPE)."""
    root = ET.Element("eSummaryResult")
    if error is not None:
        _element(root, "ERROR", error)
    for uid, document in records:
        if document is None:
            _element(root, "ERROR", f"UID={uid}: cannot get document summary")
            continue
        docsum = _element(root, "DocSum")
        _element(docsum, "Id", uid)
        for name, kind, value in summary_items(document):
            item = _element(docsum, "Item", None if kind == "List" else value, Name=name, Type=kind)
            if kind == "List":
                member, values = value
                for v in values:
                    _element(item, "Item", v, Name=member, Type="String")
    return _xml_document(root, ESUMMARY_DOCTYPE)


def summary_items(document: Document) -> list[tuple[str, str, Any]]:
    """A PubMed DocSum's items (name, type, value; a List's value is (member name, values)), in NCBI's order."""
    values = document.fields
    authors = list(values.get("authors", ()))
    return [
        ("PubDate", "Date", _summary_date(document.date)),
        ("EPubDate", "Date", _summary_date(_iso_date(values.get("electronic_date", ("",))[0]))),
        ("Source", "String", _first_value(document, ("journal_abbreviation", "journal"))),
        ("AuthorList", "List", ("Author", authors)),
        ("LastAuthor", "String", authors[-1] if authors else ""),
        ("Title", "String", document.title),
        ("LangList", "List", ("Lang", [_LANGUAGES.get(x, x) for x in values.get("languages", ())])),
        ("ISSN", "String", _first_value(document, ("issn",))),
        ("PubTypeList", "List", ("PubType", list(values.get("publication_types", ())))),
        ("ArticleIds", "List", ("pubmed", [document.id])),
        ("HasAbstract", "Integer", "1" if document.text.strip() else "0"),
        ("FullJournalName", "String", _first_value(document, ("journal",))),
    ]


# esummary names a language in English where efetch gives its ISO 639-2 code.
_LANGUAGES = {"eng": "English", "fre": "French", "ger": "German", "spa": "Spanish", "ita": "Italian"}
_LANGUAGES |= {"jpn": "Japanese", "chi": "Chinese", "rus": "Russian", "por": "Portuguese", "dut": "Dutch"}


def esummary_json(records: Sequence[tuple[str, Document | None]]) -> dict[str, Any]:
    """An esummary reply in E-utilities' JSON: ``result`` with ``uids`` and one object per id."""
    result: dict[str, Any] = {"uids": [uid for uid, _ in records]}
    for uid, document in records:
        if document is None:
            result[uid] = {"uid": uid, "error": "cannot get document summary"}
            continue
        items = {name: value for name, _, value in summary_items(document)}
        authors = items["AuthorList"][1]
        result[uid] = {
            "uid": uid,
            "pubdate": items["PubDate"],
            "epubdate": items["EPubDate"],
            "source": items["Source"],
            "authors": [{"name": a, "authtype": "Author", "clusterid": ""} for a in authors],
            "lastauthor": items["LastAuthor"],
            "title": items["Title"],
            "lang": list(document.fields.get("languages", ())),
            "issn": items["ISSN"],
            "pubtype": items["PubTypeList"][1],
            "articleids": [{"idtype": "pubmed", "idtypen": 1, "value": uid}],
            "attributes": ["Has Abstract"] if items["HasAbstract"] == "1" else [],
            "fulljournalname": items["FullJournalName"],
            "sortpubdate": f"{document.date:%Y/%m/%d} 00:00" if document.date else "",
            "sortfirstauthor": authors[0] if authors else "",
        }
    return {"header": {"type": "esummary", "version": "0.3"}, "result": result}


def _summary_date(day: datetime.date | None) -> str:
    return "" if day is None else f"{day.year} {MONTHS[day.month - 1]} {day.day}"


def _iso_date(text: str) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _sort_name(document: Document | None, order: str) -> str:
    """What an A-to-Z sort reads of a record ("" when it has none: such records go last)."""
    if document is None:
        return ""
    if order == "title":
        return document.title
    if order == "last_author":
        return (document.fields.get("authors") or ("",))[-1]
    return _first_value(document, ("authors",) if order == "author" else ("journal_abbreviation", "journal"))


def _first_value(document: Document | None, names: Sequence[str]) -> str:
    for name in names:
        found = document.fields.get(name, ()) if document is not None else ()
        if found:
            return found[0]
    return ""


def _element(parent: ET.Element, tag: str, text: object = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None and str(text) != "":
        element.text = xml_safe(text)
    return element


def _xml_document(root: ET.Element, doctype: str | None) -> str:
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8" ?>\n{doctype + chr(10) if doctype else ""}{body}\n'


def _page(ids: list[str], retstart: int, term: str) -> dict[str, Any]:
    return {
        "retmax": str(len(ids)),
        "retstart": str(retstart),
        "idlist": ids,
        "translationset": [],
        "querytranslation": term,
    }


def _field_not_found(error: QuerySyntaxError) -> dict[str, Any]:
    """A query whose tag the engine does not know: E-utilities' FieldNotFound (PubMed would then search the
    term without the tag; the engine cannot, so nothing is found). Any other syntax error: an ERROR."""
    unknown = _FIELD_ERROR.search(error.message)
    if unknown is None or not ("unknown" in error.message or "not indexed" in error.message):
        raise ServiceError(f"Query syntax error: {error}")
    errors = {"phrasesnotfound": [], "fieldsnotfound": [unknown.group(1)]}
    return {"errorlist": errors, "warninglist": _warning_list()}


def _warning_list(quoted: Sequence[str] = (), messages: Sequence[str] = (NO_ITEMS,)) -> dict[str, list[str]]:
    """esearch's WarningList (JSON members): quoted phrases not found, then output messages."""
    return {"phrasesignored": [], "quotedphrasesnotfound": list(quoted), "outputmessages": list(messages)}


def _webenv(params: Mapping[str, Sequence[str]]) -> str:
    """``WebEnv`` however it is written (Biopython sends ``webenv``)."""
    for name, values in params.items():
        if name.lower() == "webenv" and values:
            return values[-1].strip()
    return ""


# -- query text: tagging every term (esearch ``field``, ClinicalTrials.gov AREA[...]) --------------------

_QUOTES = {'"': '"', "\u201c": "\u201d", "\u201d": "\u201d", "\u201e": "\u201d"}
_OPERATORS = frozenset({"AND", "OR", "NOT"})


@dataclass(frozen=True)
class _Token:
    kind: str  # "space", "(", ")", "phrase", "tag", "word", "op"
    text: str


def _lex(text: str) -> list[_Token]:
    """Query text as tokens, enough to find its words, phrases and tags (the engine parses it for real)."""
    tokens, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            j = i
            while j < len(text) and text[j].isspace():
                j += 1
            kind = "space"
        elif ch in "()":
            j, kind = i + 1, ch
        elif ch in _QUOTES:
            close = text.find(_QUOTES[ch], i + 1)
            j, kind = (len(text) if close == -1 else close + 1), "phrase"
        elif ch == "[":
            close = text.find("]", i + 1)
            j, kind = (len(text) if close == -1 else close + 1), "tag"
        else:
            j = i
            while j < len(text) and not (text[j].isspace() or text[j] in "()[]" or text[j] in _QUOTES):
                j += 1
            kind = "op" if text[i:j] in _OPERATORS else "word"
        tokens.append(_Token(kind, text[i:j]))
        i = j
    return tokens


def _bound(tokens: Sequence[_Token]) -> list[bool]:
    """For each token: is it a word or phrase that a tag already applies to? A tag binds the word or phrase
    before it, and a run of unquoted words before it (PubMed: ``randomized controlled trial[pt]`` is one
    phrase in [pt])."""
    bound, binding = [False] * len(tokens), False
    for i in range(len(tokens) - 1, -1, -1):
        kind = tokens[i].kind
        if kind == "tag":
            binding = True
        elif kind == "word":
            bound[i] = binding
        elif kind == "phrase":
            bound[i], binding = binding, False
        elif kind != "space":
            binding = False
    return bound


def tag_every_term(text: str, tag: str) -> str:
    """``text`` with ``[tag]`` after each word and phrase that has no tag (esearch's ``field``: the term
    searched as if every term were tagged); an empty tag leaves it as it is."""
    if not tag:
        return text
    tokens = _lex(text)
    bound = _bound(tokens)
    return "".join(
        t.text + (f"[{tag}]" if t.kind in ("word", "phrase") and not bound[i] else "") for i, t in enumerate(tokens)
    )


def query_leaves(text: str) -> list[tuple[str, bool]]:
    """The searchable pieces of a query as written (a word, a run of words a tag binds, a phrase, each with
    its tag) and whether each is quoted: what PubMed reports as not found."""
    tokens = _lex(text)
    bound = _bound(tokens)
    leaves: list[tuple[str, bool]] = []
    current: list[str] = []
    quoted = False

    def close() -> None:
        nonlocal current
        if current:
            leaves.append(("".join(current).strip(), quoted))
        current = []

    for i, token in enumerate(tokens):
        if token.kind == "word":
            if not (bound[i] and current and not quoted):
                close()
            current.append(token.text)
            quoted = False
        elif token.kind == "phrase":
            close()
            current, quoted = [token.text], True
        elif token.kind == "tag" and current:
            current.append(token.text)
            close()
        elif token.kind == "space":
            if current:
                current.append(token.text)
        else:
            close()
    close()
    return leaves


_AREA = re.compile(r"AREA\[([^\]]*)\]\s*")


def _ids_only(params: Mapping[str, Sequence[str]]) -> bool:
    """Whether ``fields`` asks for the NCT id alone (``NCTId``, by its piece name or its path)."""
    asked = {f.strip().lower() for f in _last(params, "fields", "").split(",") if f.strip()}
    return bool(asked) and asked <= {"nctid", "protocolsection.identificationmodule.nctid"}


def ctgov_term(text: str) -> str:
    """A ClinicalTrials.gov ``query.term`` in the engine's syntax: ``AREA[Condition]x`` -> ``x[cond]`` (a
    word, a quoted phrase or a parenthesised group, every term of which is tagged); a refusal names
    ``query.term``. A term longer than the engine reads is left for the engine to refuse."""
    if len(text) > MAX_QUERY_CHARS:
        return text
    out, at = [], 0
    for match in _AREA.finditer(text):
        if match.start() < at:  # inside a group already rewritten
            continue
        name = match.group(1).strip()
        tag = CTGOV_AREAS.get(name.lower())
        if name.lower() == "startdate" or text.startswith("RANGE[", match.end()):
            raise ServiceError(
                "query.term: RANGE[...] is not supported in query.term "
                "(the emulator reads AREA[StartDate]RANGE[from,to] from filter.advanced)"
            )
        if tag is None:
            known = ", ".join(sorted({"Condition", "InterventionName", "BriefTitle", "OfficialTitle"} | _MORE_AREAS))
            raise ServiceError(f"query.term: AREA[{name}] is not searchable in the emulator (searchable: {known})")
        end = _operand_end(text, match.end())
        if end == match.end():
            raise ServiceError(f"query.term: AREA[{name}] needs a term after it")
        operand = text[match.end() : end]
        if operand.startswith("("):
            operand = "(" + tag_every_term(ctgov_term(operand[1:-1]), tag) + ")"
        else:
            operand = tag_every_term(operand, tag)
        out.append(text[at : match.start()] + operand)
        at = end
    return "".join(out) + text[at:]


_MORE_AREAS = {"BriefSummary", "DetailedDescription", "BasicSearch"}


def _operand_end(text: str, start: int) -> int:
    """Where the term after ``AREA[...]`` ends: a parenthesised group, a quoted phrase or a word."""
    if start >= len(text):
        return start
    if text[start] == "(":
        depth, i = 0, start
        while i < len(text):
            ch = text[i]
            if ch in _QUOTES:
                close = text.find(_QUOTES[ch], i + 1)
                i = len(text) if close == -1 else close + 1
                continue
            depth += {"(": 1, ")": -1}.get(ch, 0)
            i += 1
            if depth == 0:
                return i
        return len(text)
    if text[start] in _QUOTES:
        close = text.find(_QUOTES[text[start]], start + 1)
        return len(text) if close == -1 else close + 1
    i = start
    while i < len(text) and not (text[i].isspace() or text[i] in "()"):
        i += 1
    return i


def _last(params: Mapping[str, Sequence[str]], name: str, default: str) -> str:
    values = params.get(name)
    return values[-1] if values else default


def _number(params: Mapping[str, Sequence[str]], name: str, default: int) -> int:
    value = _last(params, name, str(default)).strip()
    # ASCII only: str.isdigit() accepts '²' and '٣', which int() then refuses (or reads as another number).
    if not _ASCII_NUMBER.fullmatch(value):
        shown = repr(value) if len(value) <= 20 else f"{value[:20]!r}… ({len(value):,} characters)"
        raise MalformedRequest(f"Invalid {name}: {shown} (a number of 1 to {MAX_DIGITS} digits 0-9)")
    return int(value)


def _ncbi_date(text: str, *, end: bool) -> datetime.date:
    """``YYYY/MM/DD``, ``YYYY/MM`` or ``YYYY``; a partial date is its period's first day, or last with ``end``."""
    parts = text.strip().replace("-", "/").split("/")
    try:
        numbers = [int(p) for p in parts]
        year, month = numbers[0], numbers[1] if len(numbers) > 1 else (12 if end else 1)
        day = numbers[2] if len(numbers) > 2 else (calendar.monthrange(year, month)[1] if end else 1)
        if len(numbers) > 3:
            raise ValueError
        return datetime.date(year, month, day)
    except (ValueError, IndexError, calendar.IllegalMonthError):
        raise ServiceError(f"Invalid {'maxdate' if end else 'mindate'}: {text!r}") from None


def _pdat_window(params: Mapping[str, Sequence[str]]) -> tuple[datetime.date | None, datetime.date | None]:
    low, high = _last(params, "mindate", ""), _last(params, "maxdate", "")
    if not low and not high:
        return None, None
    _datetype(params)
    return (_ncbi_date(low, end=False) if low else None), (_ncbi_date(high, end=True) if high else None)


def _datetype(params: Mapping[str, Sequence[str]]) -> None:
    datetype = _last(params, "datetype", "pdat")
    if datetype != "pdat":
        raise ServiceError(f"Invalid datetype: {datetype!r} (the emulator filters on pdat)")


def _start_date_window(expression: str) -> tuple[datetime.date | None, datetime.date | None]:
    if not expression:
        return None, None
    match = _RANGE.match(expression.strip())
    if match is None:
        raise ServiceError("filter.advanced: the emulator supports only AREA[StartDate]RANGE[from,to]")

    def side(text: str, open_end: str) -> datetime.date | None:
        if text.upper() == open_end:
            return None
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            raise ServiceError(f"filter.advanced: {text!r} is not a date (YYYY-MM-DD), MIN or MAX") from None

    return side(match.group(1), "MIN"), side(match.group(2), "MAX")


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _page_offset(token: str) -> int:
    if not token:
        return 0
    refused = MalformedRequest("pageToken: not a token this server gave")
    if len(token) > MAX_PAGE_TOKEN:  # before decoding: a long token could nest JSON past the recursion limit
        raise refused
    try:
        offset = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["offset"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise refused from None
    if type(offset) is not int or offset < 0:  # bool is an int to isinstance
        raise refused
    return offset


# -- the app -------------------------------------------------------------------------------------------


def create_app(emulator: Emulator, *, body_timeout: float = BODY_TIMEOUT) -> Any:
    """The FastAPI app of an emulator; a request body that takes longer than ``body_timeout`` seconds to
    arrive is answered 408."""
    from fastapi import FastAPI, Request, Response

    if not body_timeout > 0:
        raise DeepRetrievalError(f"body_timeout must be a positive number of seconds, got {body_timeout}")
    app = FastAPI(title=f"deepretrieval {emulator.service} emulator", docs_url=None, redoc_url=None)
    app.state.emulator = emulator
    app.add_middleware(BodyDeadline, seconds=body_timeout)

    async def handle(request: Request, answer: Callable[[Mapping[str, Sequence[str]]], Reply]) -> Response:
        from starlette.concurrency import run_in_threadpool

        arrived = time.time()
        params = await _read_params(request)
        fault = emulator.admit(arrived)
        status: int | None
        if fault == "drop":
            response: Response = _dropped_reply()
            status = None
        elif fault in ("429", "500", "503", "rate_limit"):
            reply = emulator.fault_reply(fault)
            response, status = _response(reply), reply.status
        else:
            reply = await run_in_threadpool(answer, params)
            response, status = _response(reply), reply.status
        logged = {k: (["<redacted>"] * len(v) if k in SECRET_PARAMS else list(v)) for k, v in params.items()}
        emulator.log.add(LoggedRequest(arrived, request.method, request.url.path, logged, fault, status))
        if fault == "slow":  # logged first: the log is complete once every request has been received
            await asyncio.sleep(emulator.faults.slow_seconds)
        return response

    # Starlette routes (a plain ``request`` argument): the parameters are read by hand, all their values,
    # from the query string and the form body alike, as NCBI reads them.
    async def esearch(request: Request) -> Response:
        return await handle(request, emulator.esearch)

    async def efetch(request: Request) -> Response:
        return await handle(request, emulator.efetch)

    async def esummary(request: Request) -> Response:
        return await handle(request, emulator.esummary)

    async def studies(request: Request) -> Response:
        return await handle(request, emulator.studies)

    if emulator.service == "pubmed":
        app.add_route(ESEARCH_PATH, esearch, methods=["GET", "POST"])
        app.add_route(EFETCH_PATH, efetch, methods=["GET", "POST"])
        app.add_route(ESUMMARY_PATH, esummary, methods=["GET", "POST"])
    else:
        app.add_route(STUDIES_PATH, studies, methods=["GET"])

    @app.get(LOG_PATH)
    async def request_log() -> dict[str, Any]:
        return {"requests": [asdict(r) for r in emulator.log.records()]}

    @app.delete(LOG_PATH)
    async def clear_log() -> dict[str, Any]:
        emulator.log.clear()
        return {"cleared": True}

    return app


class BodyDeadline:
    """ASGI middleware: read a request's whole body within ``seconds``, then hand it to the app; if it has
    not arrived by then, answer 408 and close the connection; a body (declared or sent) over
    ``max_bytes`` (``MAX_BODY_BYTES`` by default) is answered 413 before more of it is held in memory.

    uvicorn's own timeouts do not cover this: ``timeout_keep_alive`` runs only between requests, and h11
    waits for the rest of a body for as long as the connection stays open.
    """

    def __init__(self, app: Any, seconds: float = BODY_TIMEOUT, max_bytes: int | None = None) -> None:
        self.app, self.seconds = app, seconds
        self.max_bytes = MAX_BODY_BYTES if max_bytes is None else max_bytes  # read now: tests lower the cap

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"Payload Too Large: the body is limited to {self.max_bytes} bytes"
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _send_refusal(send, 413, too_large)
            return
        try:
            messages = await asyncio.wait_for(_body_messages(receive, self.max_bytes), self.seconds)
        except asyncio.TimeoutError:
            await _send_refusal(
                send, 408, f"Request Timeout: the request body did not arrive within {self.seconds:g} s"
            )
            return
        except _BodyTooLarge:
            await _send_refusal(send, 413, too_large)
            return
        pending = collections.deque(messages)

        async def replay() -> Any:
            # The body as it came; after it, the real channel (a disconnect the app may wait for).
            return pending.popleft() if pending else await receive()

        await self.app(scope, replay, send)


class _BodyTooLarge(Exception):
    pass


async def _body_messages(receive: Any, max_bytes: int) -> list[Any]:
    """The ASGI messages of a whole request body (or up to the client's disconnect)."""
    messages, size = [], 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if size > max_bytes:  # a chunked body declares no length: count what arrives
            raise _BodyTooLarge
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


async def _send_refusal(send: Any, status: int, text: str) -> None:
    body = text.encode()
    # "connection: close": h11 then ends the connection after the reply instead of waiting for the rest.
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_params(request: Any) -> dict[str, list[str]]:
    """Every parameter with all its values: the query string, then a form body (as NCBI reads both)."""
    params: dict[str, list[str]] = {}
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        body = (await request.body()).decode("utf-8", "replace")
        pairs += parse_qsl(body, keep_blank_values=True)
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    return params


def _response(reply: Reply) -> Any:
    from fastapi import Response

    return Response(reply.body, status_code=reply.status, media_type=reply.media_type, headers=dict(reply.headers))


@functools.cache
def _dropped_reply_class() -> type:
    from starlette.responses import Response

    class DroppedReply(Response):
        """A reply that starts, sends part of its body and stops: the server closes the connection mid-reply."""

        def __init__(self) -> None:
            super().__init__(b"", status_code=200)

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"header": {"type": "esearch"', "more_body": True})

    return DroppedReply


def _dropped_reply() -> Any:
    return _dropped_reply_class()()


class _QuietDrops(logging.Filter):
    """uvicorn reports every reply cut short as an error; the emulator cuts them on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROP_MESSAGE


def _quiet_deliberate_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


# -- running it ----------------------------------------------------------------------------------------


class RunningServer:
    """A uvicorn server on a background thread (tests, benchmarks): ``url``, ``stop()``, a context manager."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 20.0) -> None:
        import uvicorn

        _quiet_deliberate_drops()
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, http="h11", ws="none", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="deepretrieval-emulator", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + start_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise DeepRetrievalError(f"the emulator did not start on {host}:{port}")
            time.sleep(0.01)
        self.host = host
        self.port = int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start ``app`` on ``host``:``port`` (0: a free port) in a background thread."""
    return RunningServer(app, host, port)


def build_emulator(
    service: str,
    data: str,
    *,
    corpus: Path | None = None,
    seed: int = 0,
    schema: str | None = None,
    index: Path | None = None,
    faults: Faults | None = None,
    log_path: Path | None = None,
    rate_limit: float | None = None,
    mesh_tree: Path | None = None,
) -> Emulator:
    """An emulator of ``service`` answering from the Boolean index of a collection (``literature-demo``,
    ``trials-demo`` — whose /studies replies are its generated v2 study objects —, a reviews .jsonl with its
    corpus …): built once and cached, like the literature task's offline backend.
    ``mesh_tree``: NLM's MeSH descriptor file, so that ``[mh]`` explodes (``backend.mesh_tree``)."""
    from .data import generated_spec, load_collection
    from .tasks import get_task

    if service not in SERVICES:
        raise DeepRetrievalError(f"no emulator for {service!r} (known: {', '.join(SERVICES)})")
    studies: Sequence[Mapping[str, Any]] = ()
    generated = generated_spec(data)
    if generated and generated[0] == "trials-demo":  # its trials were written as CT.gov v2 objects: /studies
        from .data.trialsdemo import generate_trials_demo  # answers with them

        demo = generate_trials_demo(seed, **generated[1])
        collection, studies = demo.collection, demo.studies
    else:
        collection = load_collection(data, corpus=corpus, seed=seed)
    spec = {
        "kind": "boolean",
        **({"schema": schema} if schema else {}),
        **({"mesh_tree": str(mesh_tree)} if mesh_tree else {}),
    }
    engine = get_task("literature").backend(collection, spec, index=index)
    log = RequestLog(log_path)
    return Emulator(
        service,
        engine,
        documents=collection.documents,
        studies=studies,
        faults=faults,
        log=log,
        rate_limit=rate_limit,
    )


def run(emulator: Emulator, host: str = "127.0.0.1", port: int = 8765, *, body_timeout: float = BODY_TIMEOUT) -> None:
    """Serve until interrupted (the CLI)."""
    import uvicorn

    _quiet_deliberate_drops()
    # No access log: it would print query strings, and with them a GET request's api_key; see --log.
    config = {"log_level": "info", "access_log": False, "http": "h11", "ws": "none", "lifespan": "off"}
    uvicorn.run(create_app(emulator, body_timeout=body_timeout), host=host, port=port, **config)
