"""Local HTTP services: emulators of PubMed E-utilities ``esearch`` and ClinicalTrials.gov v2 ``/studies``
that answer from the offline Boolean engine, for offline runs and for testing the HTTP backends.

``deepretrieval serve emulator pubmed --data literature-demo --port 8765`` serves
``http://127.0.0.1:8765/entrez/eutils/esearch.fcgi`` (set ``backend.base_url`` to
``http://127.0.0.1:8765/entrez/eutils``); ``... serve emulator ctgov --data TRIALS`` serves
``/api/v2/studies`` (``backend.base_url: http://127.0.0.1:8765/api/v2``). Both bind 127.0.0.1 unless told.

**esearch** (GET or POST form, as NCBI): ``db=pubmed``, ``term``, ``retmode`` (``xml``, the default, or
``json``), ``retstart``, ``retmax`` (default 20, at most 10,000), ``datetype=pdat`` with ``mindate`` /
``maxdate`` (``YYYY/MM/DD``, ``YYYY/MM`` or ``YYYY``; inclusive); ``sort``, ``tool``, ``email`` and
``api_key`` are accepted and do not change the answer (the order is always the engine's, by relevance).
Replies in NCBI's shapes: JSON ``{"header": …, "esearchresult": {"count", "retmax", "retstart", "idlist",
"translationset", "querytranslation"}}``; XML ``<eSearchResult>`` with NCBI's DOCTYPE, so that Biopython's
``Entrez.read`` validates it against the DTD it ships. A query the engine cannot parse is answered as
PubMed answers errors, **200 with an** ``ERROR`` field: ``Query syntax error: …`` (the model's fault for
our client); so are an empty term (``Empty term and query_key - nothing todo``, NCBI's words) and
values the emulator does not serve (another db or datetype, a date it cannot read, ``retstart`` past
9,999: not the model's). A malformed number is a 400 (below).

**/studies**: ``query.term``, ``pageSize`` (default 10, at most 1,000), ``pageToken`` (opaque, from
``nextPageToken``), ``countTotal``, ``format=json``, ``fields`` (accepted; studies carry only
``protocolSection.identificationModule.nctId``), ``filter.advanced`` only as
``AREA[StartDate]RANGE[from,to]`` (``YYYY-MM-DD``, ``MIN``, ``MAX``). A query the engine cannot parse is a
400 whose text names ``query.term``.

**Malformed requests** are a 400 whose text names the parameter, on both services: a number
(``retstart``, ``retmax``, ``pageSize``) that is not 1 to :data:`MAX_DIGITS` ASCII digits (``²`` and
``٣`` are digits to Python, and 5,000 digits are more than ``int`` reads), a ``pageToken`` longer than
:data:`MAX_PAGE_TOKEN` characters or not one this server gave. **A request body that does not arrive**
in full within ``body_timeout`` seconds (:data:`BODY_TIMEOUT` by default; a client that sends less than
its ``Content-Length`` would otherwise hold its request open for as long as it keeps the connection) is
answered 408 and the connection closed; such a request was never received, so it is not logged.

**Faults** (:class:`Faults`), drawn per request with a seeded generator: a share ``rate`` of requests
get one of ``429`` (NCBI's rate-limit body, ``Retry-After``), ``500``, ``503`` (``Retry-After``),
``slow`` (the right answer, ``slow_seconds`` late) or ``drop`` (a reply started and cut: the connection
closes mid-body). ``rate_limit``: answer 429 as NCBI does when more than that many requests arrive in one
second. **Request log**: every request to the API (time of arrival, method, path, every parameter with all
its values, ``api_key`` redacted, the fault, the status) in :class:`RequestLog`, at ``GET /_emulator/log``
and, with ``--log FILE``, as JSON lines.
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
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from .errors import DeepRetrievalError
from .search.boolean import MAX_K, BooleanIndex, BooleanRequest
from .search.pubmed_syntax import QuerySyntaxError

SERVICES = ("pubmed", "ctgov")
FAULT_KINDS = ("429", "500", "503", "slow", "drop")
ESEARCH_PATH = "/entrez/eutils/esearch.fcgi"
STUDIES_PATH = "/api/v2/studies"
LOG_PATH = "/_emulator/log"
BASE_PATHS = {"pubmed": "/entrez/eutils", "ctgov": "/api/v2"}
DOCTYPE = (
    '<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">'
)
SECRET_PARAMS = frozenset({"api_key"})
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_RANGE = re.compile(r"^AREA\[StartDate\]RANGE\[\s*([^,\]]+?)\s*,\s*([^,\]]+?)\s*\]$")
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


class Emulator:
    """The state behind an emulator app: the engine, the fault generator, the rate window, the log."""

    def __init__(
        self,
        service: str,
        index: BooleanIndex,
        *,
        faults: Faults | None = None,
        log: RequestLog | None = None,
        rate_limit: float | None = None,
    ) -> None:
        if service not in SERVICES:
            raise DeepRetrievalError(f"no emulator for {service!r} (known: {', '.join(SERVICES)})")
        self.service, self.index = service, index
        self.faults = faults or Faults()
        self.log = log or RequestLog()
        self.rate_limit = rate_limit
        self._rng = random.Random(self.faults.seed)
        self._arrivals: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self._engine_lock = threading.Lock()  # one search at a time: tantivy objects are not shared across threads

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

    def search(self, request: BooleanRequest, k: int):
        with self._engine_lock:
            return self.index.search([request], k)[0]

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
        if not term:
            raise ServiceError("Empty term and query_key - nothing todo")
        retstart, retmax = _number(params, "retstart", 0), min(_number(params, "retmax", 20), MAX_K)
        if retstart >= MAX_K:
            raise ServiceError(f"Search Backend failed: retstart cannot be larger than {MAX_K - 1}")
        mindate, maxdate = _pdat_window(params)
        result = self.search(BooleanRequest(term, mindate, maxdate), min(retstart + retmax, MAX_K))
        if isinstance(result, QuerySyntaxError):
            raise ServiceError(f"Query syntax error: {result}")
        ids = result.ids[retstart : retstart + retmax]
        return {
            "count": str(result.total),
            "retmax": str(len(ids)),
            "retstart": str(retstart),
            "idlist": ids,
            "translationset": [],
            "querytranslation": term,
        }

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
        result = self.search(BooleanRequest(term, mindate, maxdate), min(offset + size, MAX_K))
        if isinstance(result, QuerySyntaxError):
            raise ServiceError(f"Invalid query.term: {result}")
        ids = result.ids[offset : offset + size]
        body: dict[str, Any] = {"studies": [{"protocolSection": {"identificationModule": {"nctId": i}}} for i in ids]}
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
    head = f'<?xml version="1.0" encoding="UTF-8" ?>\n{DOCTYPE}\n'
    if "ERROR" in result:
        return f"{head}<eSearchResult><ERROR>{_xml_text(result['ERROR'])}</ERROR></eSearchResult>\n"
    ids = "".join(f"<Id>{_xml_text(i)}</Id>" for i in result["idlist"])
    return (
        f"{head}<eSearchResult><Count>{result['count']}</Count><RetMax>{result['retmax']}</RetMax>"
        f"<RetStart>{result['retstart']}</RetStart><IdList>{ids}</IdList><TranslationSet/>"
        f"<QueryTranslation>{_xml_text(result['querytranslation'])}</QueryTranslation></eSearchResult>\n"
    )


def _xml_text(value: object) -> str:
    return escape(_NOT_XML.sub("\ufffd", str(value)))


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
    datetype = _last(params, "datetype", "pdat")
    if datetype != "pdat":
        raise ServiceError(f"Invalid datetype: {datetype!r} (the emulator filters on pdat)")
    return (_ncbi_date(low, end=False) if low else None), (_ncbi_date(high, end=True) if high else None)


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

    async def studies(request: Request) -> Response:
        return await handle(request, emulator.studies)

    if emulator.service == "pubmed":
        app.add_route(ESEARCH_PATH, esearch, methods=["GET", "POST"])
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
    ``MAX_BODY_BYTES`` is answered 413 before more of it is held in memory.

    uvicorn's own timeouts do not cover this: ``timeout_keep_alive`` runs only between requests, and h11
    waits for the rest of a body for as long as the connection stays open.
    """

    def __init__(self, app: Any, seconds: float = BODY_TIMEOUT) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            await _send_refusal(send, 413, f"Payload Too Large: the body is limited to {MAX_BODY_BYTES} bytes")
            return
        try:
            messages = await asyncio.wait_for(_body_messages(receive), self.seconds)
        except asyncio.TimeoutError:
            await _send_refusal(
                send, 408, f"Request Timeout: the request body did not arrive within {self.seconds:g} s"
            )
            return
        except _BodyTooLarge:
            await _send_refusal(send, 413, f"Payload Too Large: the body is limited to {MAX_BODY_BYTES} bytes")
            return
        pending = collections.deque(messages)

        async def replay() -> Any:
            # The body as it came; after it, the real channel (a disconnect the app may wait for).
            return pending.popleft() if pending else await receive()

        await self.app(scope, replay, send)


class _BodyTooLarge(Exception):
    pass


async def _body_messages(receive: Any) -> list[Any]:
    """The ASGI messages of a whole request body (or up to the client's disconnect)."""
    messages, size = [], 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if size > MAX_BODY_BYTES:  # a chunked body declares no length: count what arrives
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
) -> Emulator:
    """An emulator of ``service`` answering from the Boolean index of a collection (``literature-demo``, a
    reviews .jsonl with its corpus …): built once and cached, like the literature task's offline backend."""
    from .data import load_collection
    from .tasks import get_task

    if service not in SERVICES:
        raise DeepRetrievalError(f"no emulator for {service!r} (known: {', '.join(SERVICES)})")
    collection = load_collection(data, corpus=corpus, seed=seed)
    spec = {"kind": "boolean", **({"schema": schema} if schema else {})}
    engine = get_task("literature").backend(collection, spec, index=index)
    return Emulator(service, engine, faults=faults, log=RequestLog(log_path), rate_limit=rate_limit)


def run(emulator: Emulator, host: str = "127.0.0.1", port: int = 8765, *, body_timeout: float = BODY_TIMEOUT) -> None:
    """Serve until interrupted (the CLI)."""
    import uvicorn

    _quiet_deliberate_drops()
    # No access log: it would print query strings, and with them a GET request's api_key; see --log.
    config = {"log_level": "info", "access_log": False, "http": "h11", "ws": "none", "lifespan": "off"}
    uvicorn.run(create_app(emulator, body_timeout=body_timeout), host=host, port=port, **config)
