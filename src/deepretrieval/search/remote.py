"""``kind: remote``: a backend served over HTTP by ``deepretrieval serve search`` (``deepretrieval.service``).

The service says at ``GET /health`` which protocol its backend speaks, and :func:`open_remote` returns the
matching client: :class:`RemoteTextSearcher` (the whole :class:`~.base.TextSearcher` protocol, so RM3 and
the feedback modes run remotely) or :class:`RemoteBooleanSearcher` (:class:`~.base.BooleanSearcher`: date
windows, syntax verdicts in their slots). Any recipe of a family the service serves uses it, for training
and evaluation alike::

    backend: {kind: remote, url: http://127.0.0.1:8000, token_file: ~/.service-token, timeout: 30,
              concurrency: 4, retries: 5, batch_size: 64}

(fields and defaults: :class:`~.specs.RemoteSpec`; the token file's first word, else ``$DEEPRETRIEVAL_SERVICE_TOKEN``
or the variable ``token_env`` names). Built on the HTTP machinery every HTTP backend shares (:mod:`.http`,
:mod:`.resilience`):

- **A batch is a few requests, not one per query**: its distinct queries (or weighted queries, texts, ids)
  are looked up in the cache, and the rest sent as chunks of ``batch_size`` (at most the service's own
  ``max_batch``), at most ``concurrency`` chunks at a time; each result lands in its slots, in order.
- **Retries** (the client's :class:`~.resilience.Retrier`: back-off with jitter, ``Retry-After``) on 5xx
  (the service answers an infrastructure failure 503 with its message), timeouts and refused connections;
  a search that still fails raises :class:`~deepretrieval.errors.SearchFailure`: the reward adapter turns
  it into unscorable samples, never a reward. A 4xx is a configuration problem (wrong token, a request over
  the service's limits, a backend without term statistics): SearchFailure at once, with the service's words.
- **The token** (:class:`~.http.Secret`) is added to each request's ``Authorization`` header as it is sent,
  and appears in no log line, repr, cache entry or ``describe()``.
- **Cache** (``cache: true`` or a file): rankings keyed by the service's URL, the served index's corpus hash
  (from ``/health``), the endpoint, the query and k.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DeepRetrievalError, SearchFailure
from ..types import Collection, Ranking
from .base import BooleanRequest
from .cache import cache_key
from .http import HttpBackend, HttpSettings, Secret, http_settings, json_body, read_secret, unexpected_status
from .pubmed_syntax import QuerySyntaxError
from .resilience import ServiceFault
from .specs import RemoteSpec, validate

SERVICE = "remote"
TEXT, BOOLEAN = "text", "boolean"  # the protocols a service speaks (its /health's "protocol")


@dataclass(frozen=True)
class RemoteSettings:
    """How the client talks to the service, from a :class:`~.specs.RemoteSpec`."""

    http: HttpSettings
    token: Secret | None = field(default=None, repr=False)
    batch_size: int = RemoteSpec.default("batch_size")
    token_env: str = RemoteSpec.default("token_env")

    @property
    def token_source(self) -> str:
        """Where a token is set, for an error that asks for one."""
        return f"backend.token_file or ${self.token_env}"

    @classmethod
    def from_spec(
        cls,
        spec: Mapping[str, Any] | RemoteSpec,
        *,
        default_cache: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> RemoteSettings:
        environ = os.environ if environ is None else environ
        if not isinstance(spec, RemoteSpec):
            spec = validate(RemoteSpec, spec)
        token = read_secret(spec.token_file, environ, variable=spec.token_env, field="token_file")
        http = http_settings(spec, default_url=spec.base_url, default_cache=default_cache)
        return cls(http=http, token=token, batch_size=spec.batch_size, token_env=spec.token_env)


class RemoteBackend(HttpBackend):
    """What both clients share: the service's ``/health``, authenticated JSON requests, and batches sent as
    chunks (de-duplicated, cached, concurrent). ``health``: the service's health reply when already read."""

    def __init__(
        self, settings: RemoteSettings, *, transport: Any = None, health: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(settings.http, service=SERVICE, transport=transport)
        self.settings = settings
        self._health = dict(health) if health is not None else None

    # -- the service ----------------------------------------------------------------------------------
    @property
    def health(self) -> dict[str, Any]:
        """The service's ``GET /health`` (read once): protocol, backend description, documents, limits."""
        if self._health is None:
            self._health = self.http.send("GET", "/health", self._read, headers=self._auth)
        return self._health

    def describe(self) -> dict[str, object]:
        health = self.health
        return {"backend": SERVICE, "url": self.settings.http.base_url, "served": health.get("backend")}

    def _auth(self) -> dict[str, str]:
        token = self.settings.token
        return {} if token is None else {"Authorization": f"Bearer {token.reveal()}"}

    def _read(self, response: Any) -> Any:
        if response.status_code == 200:
            return json_body(response)
        if response.status_code >= 500:  # another 5xx than the retried ones: the service's fault all the same
            raise ServiceFault(f"HTTP {response.status_code}")
        raise unexpected_status(SERVICE, response, key_field=self.settings.token_source)

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        """One request to the service (retried by the client's retrier); its JSON reply."""
        return self.http.send("POST", path, self._read, json=dict(body), headers=self._auth)

    # -- batches --------------------------------------------------------------------------------------
    def batch(
        self,
        path: str,
        items: Sequence[Hashable],
        send: Callable[[list[Any]], Mapping[str, Any]],
        read: Callable[[Any], list[Any]],
        *,
        encode: Callable[[Any], Any] = lambda item: item,
        cached: tuple[Callable[[Any], Any], Callable[[Any], Any]] | None = None,
        k: int = 0,
    ) -> list[Any]:
        """One result per item, in order: the distinct items not in the cache are sent as chunks (``send``
        makes a chunk's request body from their encodings, ``read`` its reply's results, in order), at most
        ``concurrency`` chunks at a time. ``cached``: (to JSON, from JSON) of a result the cache may keep."""
        unique = list(dict.fromkeys(items))
        self._count("deduplicated", len(items) - len(unique))
        results: dict[Hashable, Any] = {}
        keys = {item: self._key(path, encode(item), k) for item in unique} if self._caching(cached) else {}
        for item in unique if keys else ():
            hit = self.cache.get(keys[item])  # type: ignore[union-attr]
            if hit is not None:
                results[item] = cached[1](hit["result"])  # type: ignore[index]
        self._count("cache_hits", len(results))
        todo = [item for item in unique if item not in results]
        size = max(1, min(self.settings.batch_size, int(self.health.get("limits", {}).get("max_batch") or 1 << 30)))
        chunks = [todo[i : i + size] for i in range(0, len(todo), size)]

        def run(chunk: list[Any]) -> list[Any]:
            found = read(self.post(path, send([encode(item) for item in chunk])))
            if len(found) != len(chunk):
                raise SearchFailure(f"{SERVICE}: {path} answered {len(found)} results for {len(chunk)} items")
            return found

        self._count("requests", len(chunks))
        answered = self.run_jobs([functools.partial(run, chunk) for chunk in chunks])
        for chunk, found in zip(chunks, answered, strict=True):
            for item, result in zip(chunk, found, strict=True):
                results[item] = result
                if keys and not isinstance(result, QuerySyntaxError | Exception):
                    request = {"url": f"{self.settings.http.base_url}{path}", "k": k, "item": encode(item)}
                    self.cache.put(keys[item], SERVICE, request, {"result": cached[0](result)})  # type: ignore[union-attr,index]
        return [results[item] for item in items]

    def rankings(
        self,
        path: str,
        name: str,
        items: Sequence[Hashable],
        k: int,
        *,
        read: Callable[[Any], Any] | None = None,
        encode: Callable[[Any], Any] = lambda item: item,
    ) -> list[Any]:
        """A batch of searches at ``path``: ``{name: [...], "k": k}`` -> ``{"results": [...]}``, each result a
        ranking (or what ``read`` makes of it), cached as rankings."""
        return self.batch(
            path,
            items,
            lambda chunk: {name: chunk, "k": k},
            lambda reply: [(read or ranking)(r) for r in reply["results"]],
            encode=encode,
            cached=(ranking_json, ranking),
            k=k,
        )

    def _caching(self, cached: Any) -> bool:
        return self.cache is not None and cached is not None

    def _key(self, path: str, item: Any, k: int) -> str:
        served = self.health.get("backend") or {}
        corpus = str(served.get("corpus_sha256", "")) if isinstance(served, Mapping) else ""
        endpoint = f"{self.settings.http.base_url}{path}#{corpus}"
        return cache_key(SERVICE, endpoint, {"item": json.dumps(item, sort_keys=True, ensure_ascii=False)}, k)

    def stats(self) -> dict[str, int]:
        """Requests and their outcomes so far: chunks sent, cache hits, duplicates, HTTP attempts, failures."""
        with self._lock:
            mine = dict(self._counts)
        sent, retried = self.http.counts()
        return {**mine, "attempts": sent["requests"], "answered": sent["answered"], "retried": sum(retried.values())}


def ranking(value: Mapping[str, Any]) -> Ranking:
    """A ranking as the service sends it: ``{"ids", "scores", "total"}``."""
    return Ranking(list(value["ids"]), [float(s) for s in value["scores"]], total=value.get("total"))


def ranking_json(result: Ranking) -> dict[str, Any]:
    return {"ids": list(result.ids), "scores": [float(s) for s in result.scores], "total": result.total}


class RemoteTextSearcher(RemoteBackend):
    """A served text backend (BM25, dense, hybrid, Lucene): the :class:`~.base.TextSearcher` protocol.

    ``analyze`` and ``doc_term_counts`` are asked one text or document at a time (RM3 reads each feedback
    document, the reward adapter checks each answer): their answers are kept in memory (a document's counts
    and a text's analysis never change while the service runs), up to ``MEMO`` of each."""

    MEMO = 100_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._memo: dict[tuple[str, str], Any] = {}

    def search(self, queries: Sequence[str], k: int) -> list[Ranking]:
        if any(not isinstance(q, str) for q in queries):
            raise DeepRetrievalError(
                f"the service at {self.settings.http.base_url} serves a text backend: it searches query strings, "
                "not Boolean requests (a literature task needs a service of a Boolean backend)"
            )
        return self.rankings("/search", "queries", list(queries), k)

    def search_weighted(self, weights: Sequence[Mapping[str, float]], k: int) -> list[Ranking]:
        items = [tuple(sorted(w.items())) for w in weights]
        return self.rankings("/search_weighted", "weights", items, k, encode=dict)

    def analyze(self, text: str) -> list[str]:
        return list(self._remembered("analyze", text, lambda: self._analyze([text], in_vocabulary=True)[0]))

    def prefetch_analysis(self, texts: Sequence[str]) -> None:
        """Analyse ``texts`` in one request (chunked) and remember them: the reward adapter's checks of a
        batch's answers (``analyze``, one text each) then ask the service nothing more."""
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if ("analyze", t) not in self._memo))
        if todo:
            for text, terms in zip(todo, self._analyze(todo, in_vocabulary=True), strict=True):
                self._remember("analyze", text, terms)

    def analyze_many(self, texts: Sequence[str]) -> list[list[str]]:
        return self._analyze(texts, in_vocabulary=False)

    def _analyze(self, texts: Sequence[str], *, in_vocabulary: bool) -> list[list[str]]:
        return self.batch(
            "/analyze",
            list(texts),
            lambda chunk: {"texts": chunk, "in_vocabulary": in_vocabulary},
            lambda reply: [list(terms) for terms in reply["terms"]],
        )

    def doc_term_counts(self, doc_id: str) -> dict[str, int]:
        return dict(self._remembered("counts", doc_id, lambda: self.doc_term_counts_many([doc_id])[0]))

    def _remembered(self, kind: str, key: str, fetch: Callable[[], Any]) -> Any:
        with self._lock:
            found = self._memo.get((kind, key))
        if found is None:
            found = fetch()
            self._remember(kind, key, found)
        return found

    def _remember(self, kind: str, key: str, value: Any) -> None:
        with self._lock:
            if len(self._memo) >= 2 * self.MEMO:
                self._memo.clear()
            self._memo[(kind, key)] = value

    def doc_term_counts_many(self, doc_ids: Sequence[str]) -> list[dict[str, int]]:
        """Several documents' term counts in one request (``doc_term_counts`` asks for one)."""
        return self.batch(
            "/doc_term_counts",
            list(doc_ids),
            lambda chunk: {"ids": chunk},
            lambda reply: [dict(counts) for counts in reply["counts"]],
        )


class RemoteBooleanSearcher(RemoteBackend):
    """A served Boolean backend (the tantivy engine, or PubMed / ClinicalTrials.gov behind the service): the
    :class:`~.base.BooleanSearcher` protocol; a query the engine refuses comes back in its slot."""

    def search(self, requests: Sequence[BooleanRequest | str], k: int) -> list[Ranking | QuerySyntaxError]:
        items = [r if isinstance(r, BooleanRequest) else BooleanRequest(str(r)) for r in requests]
        return self.rankings("/search", "queries", items, k, read=verdict, encode=request_json)


def request_json(request: BooleanRequest) -> dict[str, Any]:
    day = lambda d: None if d is None else d.isoformat()  # noqa: E731
    return {"query": request.query, "mindate": day(request.mindate), "maxdate": day(request.maxdate)}


def verdict(value: Mapping[str, Any]) -> Ranking | QuerySyntaxError:
    """A slot of a Boolean reply: its ranking, or the engine's refusal of the query."""
    if value.get("error") is not None:
        return QuerySyntaxError(str(value["error"]), int(value.get("position", -1)))
    return ranking(value)


def open_remote(
    spec: Mapping[str, Any] | RemoteSpec, *, transport: Any = None, default_cache: Path | None = None
) -> RemoteTextSearcher | RemoteBooleanSearcher:
    """The client of the service a ``backend: {kind: remote, ...}`` section names, for the protocol its
    ``/health`` says (read now: an unreachable service or a wrong token is said at once)."""
    settings = RemoteSettings.from_spec(spec, default_cache=default_cache)
    probe = RemoteBackend(settings, transport=transport)
    try:
        health = probe.health
    finally:
        probe.close()
    protocol = health.get("protocol")
    kinds = {TEXT: RemoteTextSearcher, BOOLEAN: RemoteBooleanSearcher}
    if protocol not in kinds:
        raise SearchFailure(
            f"{SERVICE}: {settings.http.base_url}/health names no protocol this client speaks: {protocol!r}"
        )
    return kinds[protocol](settings, transport=transport, health=health)


def remote_backend(collection: Collection | None, spec: RemoteSpec, index: Path | None):
    """The registry's factory: the served backend (``collection`` and ``index`` are the service's business)."""
    from .folders import index_cache_dir

    return open_remote(spec, default_cache=index_cache_dir() / "http-cache.sqlite")
