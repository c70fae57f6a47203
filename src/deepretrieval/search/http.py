"""What every HTTP search backend shares: the client, and the searcher base (batching, cache, refusals).

The rate limiter, retries and failure accounting are the resilience layer's (:mod:`.resilience`), the
persistent cache is :mod:`.cache`'s; this module wires them to HTTP. A backend (PubMed E-utilities in
:mod:`.pubmed`, ClinicalTrials.gov in :mod:`.ctgov`) subclasses :class:`HttpSearcher` and says only how one
search is asked and read. Everything else is here, once:

- **One search per distinct query.** A batch's requests are normalised (whitespace runs collapsed, which
  neither service distinguishes), de-duplicated, looked up in the cache, and the rest run on at most
  ``concurrency`` worker threads. Each result lands in its requests' slots, in order.
- **The model's text is one parameter.** The query is sent as a single form field or query parameter
  that httpx encodes: ``&retmax=0``, ``#frag``, ``%26``, quotes or newlines in it are characters of the
  query, never parameters. Whitespace (newlines included) is collapsed first, control characters are
  refused, and a query over ``max_query_bytes`` of UTF-8 is refused; all three are the model's fault
  (:class:`RefusedQuery`, scored as a format error) and are never sent.
- **A token bucket per service and process** (:class:`~.resilience.RateLimiter`), shared by every worker and every
  client of that service in the process. Requests are spaced ``1 / (rate x (1 - headroom))`` apart, so
  that no one-second window at the server holds more than ``rate`` requests even when a request is up to
  ``headroom / (1 - headroom)`` seconds late on its way (87 ms at the default 0.08; throughput ~92% of
  ``rate``). A server's ``Retry-After`` pauses the whole bucket.
- **Retries** with exponential back-off and jitter on 408, 429, 500, 502, 503, 504, timeouts, dropped
  connections and unusable replies (:class:`~.resilience.ServiceFault`), honouring ``Retry-After``, by the
  client's :class:`~.resilience.Retrier`: the one layer that retries a search. A search that
  still fails raises :class:`~deepretrieval.errors.SearchFailure`: an infrastructure failure, which the
  reward adapter turns into an unscorable sample, never a reward. Another status (400, 401, 403, 404,
  a redirect) is a configuration problem: SearchFailure at once, with what to fix.
- **A persistent cache** (:class:`~.cache.ResultCache`, SQLite in WAL mode: any number of concurrent readers,
  across processes too) keyed by the service, the endpoint, the normalised query and every parameter
  that shapes the result; it records when each entry was fetched, and keeps under a size cap by dropping
  the entries fetched longest ago. Refusals of malformed queries are cached too (they are deterministic);
  failures never are. Live engines change over time: with the cache, a run's rewards are reproducible.
- **Secrets** (:class:`Secret`) never reach a log line, a repr, the cache or ``describe()``: credentials
  are added to a request's parameters only as it is sent.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ..errors import DeepRetrievalError, SearchFailure
from ..types import Ranking
from .boolean import BooleanRequest
from .cache import ResultCache, cache_key
from .pubmed_syntax import QuerySyntaxError
from .resilience import (
    RETRY_STATUSES,
    Fault,
    RateLimiter,
    Retrier,
    RetryPolicy,
    ServiceFault,
    retry_after_seconds,
    service_fault,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_RESULTS = 10_000  # what esearch can page to; the most any HTTP backend here returns
USER_AGENT = "deepretrieval (python-httpx)"


class Secret:
    """A credential: its value is read with :meth:`reveal` and shown nowhere else."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


class RefusedQuery(QuerySyntaxError):
    """A query the service (or the client, before sending it) refuses as malformed: the model's fault.

    Returned in the query's slot, as the offline engine returns its syntax errors; ``position`` is -1 when
    the service does not say where.
    """

    def __init__(self, message: str, position: int = -1) -> None:
        super().__init__(message, position)

    def __str__(self) -> str:
        return self.message if self.position < 0 else super().__str__()


@dataclass(frozen=True)
class HttpSettings:
    """How an HTTP backend talks to its service. Defaults live in the backends' ``from_spec``."""

    base_url: str
    rate: float  # requests per second, at most, for the whole process
    burst: int = 1  # tokens the bucket holds; above 1 a one-second window may exceed ``rate``
    # Share of ``rate`` left unused: ``rate`` + 1 requests then span headroom / (1 - headroom) seconds more than
    # one second (87 ms at 0.08), so a request that many ms late on its way cannot put ``rate`` + 1 in a window.
    headroom: float = 0.08
    concurrency: int = 4  # worker threads (and connections) per batch
    timeout: float = 30.0  # seconds, for connecting, sending, waiting and reading
    retries: int = 5  # attempts after the first
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    max_backoff: float = 30.0
    max_wait: float = 120.0  # a longer Retry-After is not waited for: SearchFailure at once
    cache: Path | None = None  # SQLite file; None: no cache
    cache_max_bytes: int = 1 << 30
    cache_max_age: float | None = None  # seconds; None: entries never expire
    max_query_bytes: int = 4_000

    def __post_init__(self) -> None:
        if not self.rate > 0 or not math.isfinite(self.rate):
            raise ValueError(f"rate must be a positive number, got {self.rate}")
        if self.burst < 1 or self.concurrency < 1 or self.retries < 0:
            raise ValueError("burst and concurrency must be at least 1, retries at least 0")
        if not 0 <= self.headroom < 1:
            raise ValueError(f"headroom must be in [0, 1), got {self.headroom}")


@dataclass(frozen=True)
class HttpStats:
    """What a backend's requests have met so far (for logs, tests and benchmarks)."""

    searches: int  # distinct searches run (cache misses)
    cache_hits: int
    deduplicated: int  # requests answered by another identical request in their batch
    refused_locally: int  # model-fault queries never sent (empty, too long, control characters)
    requests: int  # HTTP attempts sent
    answered: int  # attempts that gave a usable reply (a result or a refusal)
    # Attempts that failed, by reason (each retried, or the last of a failed search): with ``answered``,
    # every request sent is accounted for.
    retried: Mapping[str, int] = field(default_factory=dict)
    failures: int = 0  # searches that raised SearchFailure


def normalise_query(text: str) -> str:
    """The query as sent and as keyed in the cache: whitespace runs (newlines included) as one space."""
    return " ".join(text.split())


def check_query(query: str, max_bytes: int) -> RefusedQuery | None:
    """Why a normalised query cannot be sent (the model's fault), or None."""
    if not query:
        return RefusedQuery("empty query: nothing to search")
    for position, char in enumerate(query):
        if unicodedata.category(char) in ("Cc", "Cs"):
            return RefusedQuery(f"control character U+{ord(char):04X} in the query", position)
    size = len(query.encode("utf-8"))
    if size > max_bytes:
        return RefusedQuery(f"query too long: {size:,} bytes of UTF-8 (the limit is {max_bytes:,})")
    return None


def encode_result(result: Ranking | RefusedQuery) -> dict[str, Any]:
    if isinstance(result, QuerySyntaxError):
        return {"error": result.message, "position": result.position}
    return {"ids": list(result.ids), "total": result.total}


def decode_result(value: Mapping[str, Any]) -> Ranking | RefusedQuery:
    if "error" in value:
        return RefusedQuery(str(value["error"]), int(value.get("position", -1)))
    return Ranking(list(value["ids"]), total=value.get("total"))


class HttpClient:
    """One service's HTTP client: httpx with timeouts and a connection pool, under the service's
    :class:`~.resilience.Retrier` (the shared rate limiter, retries, failure accounting).
    ``transport``: an httpx transport to use instead of the network (tests); ``sleep``: the waits (tests)."""

    def __init__(
        self,
        settings: HttpSettings,
        *,
        service: str,
        transport: Any = None,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        import httpx

        self.settings, self.service = settings, service
        self.base_url = settings.base_url.rstrip("/")
        host = httpx.URL(self.base_url).host or self.base_url
        effective = settings.rate * (1.0 - settings.headroom)
        self.limiter = RateLimiter.shared(f"{service}@{host}", effective, settings.burst)
        policy = RetryPolicy(
            attempts=settings.retries + 1,
            backoff=settings.backoff,
            max_backoff=settings.max_backoff,
            max_wait=settings.max_wait,
            max_wait_field="backend.max_wait",
        )
        self.retrier = Retrier(
            policy,
            name=service,
            failure=SearchFailure,
            classify=http_fault,
            limiter=self.limiter,
            sleep=sleep,
            seed=seed,
        )
        self._client = httpx.Client(
            timeout=httpx.Timeout(settings.timeout),
            limits=httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency),
            headers={"User-Agent": USER_AGENT},
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"HttpClient({self.service!r}, {self.base_url!r}, rate={self.settings.rate})"

    def send(
        self,
        method: str,
        path: str,
        read: Callable[[Any], T],
        *,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> T:
        """Send one request until ``read`` accepts a reply (it raises ServiceFault to retry it)."""
        url = f"{self.base_url}{path}"

        def attempt() -> T:
            response = self._client.request(method, url, params=params, data=form)
            if response.status_code in RETRY_STATUSES:
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                raise ServiceFault(f"HTTP {response.status_code}", retry_after)
            return read(response)

        return self.retrier.call(attempt, where=url)

    def counts(self) -> tuple[Counter[str], Counter[str]]:
        """(``requests`` sent and ``answered``; failed attempts by reason)."""
        counts, retried = self.retrier.counts()
        return Counter(requests=counts["attempts"], answered=counts["answered"]), retried

    def close(self) -> None:
        self._client.close()


def http_fault(exc: BaseException) -> Fault | None:
    """What HTTP searches retry: a :class:`ServiceFault` (an error status, an unusable reply), a timeout or a
    dropped connection (any ``httpx.RequestError``, named by its type)."""
    import httpx

    if isinstance(exc, httpx.RequestError):
        return Fault(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    return service_fault(exc)


def unexpected_status(service: str, response: Any) -> SearchFailure:
    """A status that retrying will not change: a configuration problem, said so."""
    code, url = response.status_code, str(response.request.url.copy_with(query=None))
    if 300 <= code < 400:
        hint = f"redirected to {response.headers.get('Location', '?')}: set backend.base_url to it"
    elif code in (401, 403):
        hint = "refused: check the API key (backend.api_key_file) and that this client may use the service"
    elif code == 404:
        hint = "not found: check backend.base_url"
    else:
        hint = "check backend.base_url and the backend's settings"
    return SearchFailure(f"{service}: HTTP {code} from {url}; {hint}")


def json_body(response: Any) -> Any:
    """A reply's JSON; a body that is not JSON (an HTML error page, a cut reply) is the service's fault."""
    try:
        return response.json()
    except ValueError:
        raise ServiceFault(f"HTTP {response.status_code} with a body that is not JSON") from None


class HttpSearcher:
    """Batched search on an HTTP service: ``search(requests, k) -> list[Ranking | QuerySyntaxError]``,
    as the offline Boolean engine. Subclasses set ``service`` and implement ``params`` and ``fetch``."""

    service: ClassVar[str] = ""
    endpoint: ClassVar[str] = ""
    settings_type: ClassVar[type]  # the service's settings: ``from_spec(spec, default_cache=…)`` and ``.http``

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, default_cache: Path | None = None, transport: Any = None):
        """A searcher from a recipe's ``backend:`` section (errors name ``backend.<field>``)."""
        return cls(cls.settings_type.from_spec(spec, default_cache=default_cache), transport=transport)

    def __init__(self, settings: HttpSettings, *, transport: Any = None) -> None:
        self.settings = settings
        self.http = HttpClient(settings, service=self.service, transport=transport)
        self.retrier = self.http.retrier  # it retries its own searches: callers call it once (retries_itself)
        self.cache = (
            ResultCache(settings.cache, max_bytes=settings.cache_max_bytes, max_age=settings.cache_max_age)
            if settings.cache is not None
            else None
        )
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    # -- subclasses ---------------------------------------------------------------------------------
    def params(self, query: str, request: BooleanRequest) -> dict[str, str]:
        """The parameters that shape one search's result (the query among them; no credentials)."""
        raise NotImplementedError

    def fetch(self, params: Mapping[str, str], k: int) -> Ranking | RefusedQuery:
        """Run one search (its pages) with ``self.http``; the first ``k`` ids and the total."""
        raise NotImplementedError

    # -- the batch ----------------------------------------------------------------------------------
    def search(self, requests: Sequence[BooleanRequest], k: int) -> list[Ranking | QuerySyntaxError]:
        """One result per request, in order; a failed search raises SearchFailure (after its retries)."""
        if not 0 <= k <= MAX_RESULTS:
            raise DeepRetrievalError(f"k must be between 0 and {MAX_RESULTS:,}, got {k}")
        slots: list[str | RefusedQuery] = []
        jobs: dict[str, dict[str, str]] = {}
        for request in requests:
            query = normalise_query(request.query)
            refused = check_query(query, self.settings.max_query_bytes)
            if refused is not None:
                self._count("refused_locally")
                slots.append(refused)
                continue
            params = self.params(query, request)
            key = self.key(params, k)
            if key in jobs:
                self._count("deduplicated")
            jobs[key] = params
            slots.append(key)
        results = self._run(jobs, k)
        return [slot if isinstance(slot, RefusedQuery) else results[slot] for slot in slots]

    def key(self, params: Mapping[str, str], k: int) -> str:
        """The cache key of a search: the server (``base_url``) is part of it, so that an emulator's results
        and the real service's never mix in one file."""
        return cache_key(self.service, f"{self.settings.base_url}{self.endpoint}", params, k)

    def _run(self, jobs: Mapping[str, Mapping[str, str]], k: int) -> dict[str, Ranking | RefusedQuery]:
        results: dict[str, Ranking | RefusedQuery] = {}
        todo = []
        for key in jobs:
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is None:
                todo.append(key)
            else:
                self._count("cache_hits")
                results[key] = decode_result(cached)
        if not todo:
            return results
        workers = min(self.settings.concurrency, len(todo))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{self.service}-search") as pool:
            futures = {pool.submit(self._one, key, jobs[key], k): key for key in todo}
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
        errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
        if errors:
            self._count("failures", len(errors))
            raise errors[0]
        results.update({futures_key: f.result() for f, futures_key in futures.items()})
        return results

    def _one(self, key: str, params: Mapping[str, str], k: int) -> Ranking | RefusedQuery:
        self._count("searches")
        try:
            result = self.fetch(params, k)
        except ServiceFault as e:  # pages that do not fit together: the service's fault, found too late to retry
            raise SearchFailure(f"{self.service}: {e}") from None
        if self.cache is not None:
            request = {"url": f"{self.settings.base_url}{self.endpoint}", "k": k, **params}
            self.cache.put(key, self.service, request, encode_result(result))
        return result

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    # -- reporting ----------------------------------------------------------------------------------
    def stats(self) -> HttpStats:
        with self._lock:
            mine = Counter(self._counts)
        sent, retried = self.http.counts()
        return HttpStats(
            searches=mine["searches"],
            cache_hits=mine["cache_hits"],
            deduplicated=mine["deduplicated"],
            refused_locally=mine["refused_locally"],
            requests=sent["requests"],
            answered=sent["answered"],
            retried=dict(retried),
            failures=mine["failures"],
        )

    def close(self) -> None:
        self.http.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> HttpSearcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings.base_url!r})"


# -- settings from a recipe's backend: section ----------------------------------------------------------

COMMON_FIELDS = (
    "kind",
    "base_url",
    "rate",
    "burst",
    "headroom",
    "concurrency",
    "timeout",
    "retries",
    "backoff",
    "max_backoff",
    "max_wait",
    "cache",
    "cache_max_mb",
    "cache_max_age_days",
    "max_query_bytes",
)


def spec_error(name: str, message: str) -> Exception:
    return DeepRetrievalError(f"recipe field backend.{name}: {message}")


def spec_number(
    spec: Mapping[str, Any], name: str, default: float, *, minimum: float, integer: bool = False, strict: bool = False
) -> float:
    """A numeric field (``default`` when absent), at least ``minimum`` (above it when ``strict``)."""
    value = spec.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise spec_error(name, f"must be a number, got {value!r}")
    if integer and value != int(value):
        raise spec_error(name, f"must be a whole number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise spec_error(name, f"must be {'above' if strict else 'at least'} {minimum:g}, got {value!r}")
    return int(value) if integer else float(value)


def spec_text(spec: Mapping[str, Any], name: str, default: str | None) -> str | None:
    value = spec.get(name, default)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise spec_error(name, f"must be non-blank text, got {value!r}")
    return value.strip() if isinstance(value, str) else None


def spec_base_url(spec: Mapping[str, Any], default: str) -> str:
    url = spec_text(spec, "base_url", default) or default
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest.split("/")[0]:
        raise spec_error("base_url", f"must be an http:// or https:// URL, got {url!r}")
    if "?" in url or "#" in url:
        raise spec_error("base_url", f"must have no query or fragment, got {url!r}")
    return url.rstrip("/")


def spec_cache(spec: Mapping[str, Any], default: Path | None) -> Path | None:
    """``cache``: true (the default file), false (no cache) or a file path."""
    value = spec.get("cache", True)
    if value is True:
        return default
    if value is False or value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
        return None
    if isinstance(value, str):
        return Path(value).expanduser()
    raise spec_error("cache", f"must be true, false or a file path, got {value!r}")


def check_fields(spec: Mapping[str, Any], known: Sequence[str]) -> None:
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise spec_error(unknown[0], f"unknown (known: {', '.join(sorted(known))})")


def http_settings(
    spec: Mapping[str, Any], *, base_url: str, rate: float, concurrency: int, default_cache: Path | None
) -> HttpSettings:
    """The HTTP settings of a ``backend:`` section; every error names its ``backend.<field>``."""
    max_age = spec.get("cache_max_age_days")
    headroom = spec_number(spec, "headroom", 0.08, minimum=0)
    if headroom >= 1:
        raise spec_error("headroom", f"must be below 1 (a share of the rate left unused), got {headroom!r}")
    return HttpSettings(
        base_url=spec_base_url(spec, base_url),
        rate=spec_number(spec, "rate", rate, minimum=0, strict=True),
        burst=int(spec_number(spec, "burst", 1, minimum=1, integer=True)),
        headroom=headroom,
        concurrency=int(spec_number(spec, "concurrency", concurrency, minimum=1, integer=True)),
        timeout=spec_number(spec, "timeout", 30.0, minimum=0, strict=True),
        retries=int(spec_number(spec, "retries", 5, minimum=0, integer=True)),
        backoff=spec_number(spec, "backoff", 1.0, minimum=0),
        max_backoff=spec_number(spec, "max_backoff", 30.0, minimum=0),
        max_wait=spec_number(spec, "max_wait", 120.0, minimum=0),
        cache=spec_cache(spec, default_cache),
        cache_max_bytes=int(spec_number(spec, "cache_max_mb", 1024, minimum=1) * 1024 * 1024),
        cache_max_age=None if max_age is None else spec_number(spec, "cache_max_age_days", 0, minimum=0) * 86_400,
        max_query_bytes=int(spec_number(spec, "max_query_bytes", 4_000, minimum=1, integer=True)),
    )
