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

import functools
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
from .specs import HttpSpec, PubMedSpec, SpecError

log = logging.getLogger(__name__)

T = TypeVar("T")
B = TypeVar("B", bound="HttpBackend")
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


def read_secret(
    path: Any,
    environ: Mapping[str, str],
    *,
    variable: str,
    field: str,
    error: Callable[[str, str], Exception] | None = None,
) -> Secret | None:
    """A credential: the first word of the file at ``path``, else the environment ``variable``, else None.
    A bad ``path`` is ``error(field, problem)`` (by default the recipe's field ``backend.<field>``)."""
    error = error or spec_error
    if path is None:
        value = environ.get(variable, "").strip()
        return Secret(value) if value else None
    if not isinstance(path, str | Path) or not str(path).strip():
        raise error(field, f"must be a file path, got {path!r}")
    file = Path(path).expanduser()
    try:
        words = file.read_text(encoding="utf-8").split()
    except OSError as e:
        raise error(field, f"cannot read {file}: {e.strerror or e}") from None
    if not words:
        raise error(field, f"{file} is empty")
    return Secret(words[0])


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
    """How an HTTP backend talks to its service, built from an ``HttpSpec`` (its fields, meanings and
    defaults: ``search.specs``; ``http_settings`` below)."""

    base_url: str
    rate: float  # requests per second, at most, for the whole process
    burst: int = HttpSpec.default("burst")
    headroom: float = HttpSpec.default("headroom")
    concurrency: int = PubMedSpec.default("concurrency")
    timeout: float = HttpSpec.default("timeout")
    retries: int = HttpSpec.default("retries")
    backoff: float = HttpSpec.default("backoff")
    max_backoff: float = HttpSpec.default("max_backoff")
    max_wait: float = HttpSpec.default("max_wait")
    cache: Path | None = None  # SQLite file; None: no cache
    cache_max_bytes: int = int(HttpSpec.default("cache_max_mb") * 1024 * 1024)
    cache_max_age: float | None = None  # seconds; None: entries never expire
    max_query_bytes: int = HttpSpec.default("max_query_bytes")

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
        json: Any = None,
        headers: Callable[[], Mapping[str, str]] | None = None,
    ) -> T:
        """Send one request until ``read`` accepts a reply (it raises ServiceFault to retry it). ``json``: a
        body sent as JSON; ``headers``: called as each attempt is sent (credentials are read only then)."""
        url = f"{self.base_url}{path}"

        def attempt() -> T:
            sent = headers() if headers is not None else None
            response = self._client.request(method, url, params=params, data=form, json=json, headers=sent)
            if response.status_code in RETRY_STATUSES:
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                raise ServiceFault(f"HTTP {response.status_code}{reply_detail(response)}", retry_after)
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


def reply_detail(response: Any) -> str:
    """`` (what the service says)`` of a JSON error reply ``{"detail": "..."}`` (FastAPI's), else ''."""
    if "json" not in response.headers.get("Content-Type", ""):
        return ""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return ""
    return f" ({detail[:500]})" if isinstance(detail, str) and detail else ""


def unexpected_status(service: str, response: Any, *, key_field: str = "backend.api_key_file") -> SearchFailure:
    """A status that retrying will not change: a configuration problem, said so (with the service's own
    words, when it gives them); ``key_field``: where the credential is set."""
    code, url = response.status_code, str(response.request.url.copy_with(query=None))
    if 300 <= code < 400:
        hint = f"redirected to {response.headers.get('Location', '?')}: set backend.base_url to it"
    elif code in (401, 403):
        hint = f"refused: check the credential ({key_field}) and that this client may use the service"
    elif code == 404:
        hint = "not found: check backend.base_url"
    else:
        hint = "check backend.base_url and the backend's settings"
    return SearchFailure(f"{service}: HTTP {code}{reply_detail(response)} from {url}; {hint}")


def json_body(response: Any) -> Any:
    """A reply's JSON; a body that is not JSON (an HTML error page, a cut reply) is the service's fault."""
    try:
        return response.json()
    except ValueError:
        raise ServiceFault(f"HTTP {response.status_code} with a body that is not JSON") from None


class HttpBackend:
    """What every HTTP backend holds and closes: its client (``http``, whose retrier is ``retrier``: it retries
    its own calls, so callers call it once) and its optional persistent cache."""

    def __init__(self, settings: HttpSettings, *, service: str, transport: Any = None) -> None:
        self.http = HttpClient(settings, service=service, transport=transport)
        self.retrier = self.http.retrier  # see resilience.retries_itself
        self.cache = (
            ResultCache(settings.cache, max_bytes=settings.cache_max_bytes, max_age=settings.cache_max_age)
            if settings.cache is not None
            else None
        )
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def run_jobs(self, jobs: Sequence[Callable[[], T]]) -> list[T]:
        """Each job's result, in order, the jobs run on at most ``concurrency`` threads. The first job that
        raises cancels those not yet started; its error is raised once the running ones end, and every job
        that failed counts as a ``failures``."""
        if len(jobs) <= 1:
            try:
                return [job() for job in jobs]
            except BaseException:
                self._count("failures")
                raise
        workers = min(self.http.settings.concurrency, len(jobs))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{self.http.service}-search") as pool:
            futures = [pool.submit(job) for job in jobs]
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
        errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
        if errors:
            self._count("failures", len(errors))
            raise errors[0]  # type: ignore[misc]
        return [future.result() for future in futures]

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def close(self) -> None:
        self.http.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self: B) -> B:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.http.base_url!r})"


class HttpSearcher(HttpBackend):
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
        super().__init__(settings, service=self.service, transport=transport)
        self.settings = settings

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
        found = self.run_jobs([functools.partial(self._one, key, jobs[key], k) for key in todo])
        results.update(zip(todo, found, strict=True))
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


# -- settings from a recipe's backend: section (its typed spec, ``search.specs``) ----------------------------


def spec_error(name: str, message: str) -> Exception:
    return SpecError(name, message)


def http_settings(
    spec: HttpSpec, *, rate: float | None = None, default_url: str, default_cache: Path | None
) -> HttpSettings:
    """The HTTP settings of a typed ``backend:`` spec (``rate`` the kind's when the spec leaves it out)."""
    cache = default_cache if spec.cache is True else None if spec.cache is False else Path(spec.cache).expanduser()
    return HttpSettings(
        base_url=spec.base_url or default_url,
        rate=float(spec.rate if spec.rate is not None else rate),
        burst=spec.burst,
        headroom=float(spec.headroom),
        concurrency=spec.concurrency,
        timeout=float(spec.timeout),
        retries=spec.retries,
        backoff=float(spec.backoff),
        max_backoff=float(spec.max_backoff),
        max_wait=float(spec.max_wait),
        cache=cache,
        cache_max_bytes=int(spec.cache_max_mb * 1024 * 1024),
        cache_max_age=None if spec.cache_max_age_days is None else float(spec.cache_max_age_days) * 86_400,
        max_query_bytes=spec.max_query_bytes,
    )
