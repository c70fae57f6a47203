"""The search service: any task's configured backend served over HTTP (FastAPI on uvicorn), so that many
trainers, evaluations and other tools share one index, and Search-R1-style agents can use it as their retriever.

Usage::

    deepretrieval serve search --data D [--index DIR] [--backend-spec YAML-or-file] [--task T]
        [--host 127.0.0.1] [--port 8000] [--workers N] [--token-file F]
        [--max-batch 256] [--max-k 10000] [--max-body-bytes 1048576] [--retrieve-topk 3]

``--backend-spec`` is a recipe's ``backend:`` section (``'{kind: bm25, k1: 1.2}'``, or a YAML file holding
it), built by the task's own factory (``--task``: retrieval by default; ``literature`` for the Boolean
engine). It binds 127.0.0.1 unless told otherwise. ``--token-file`` (else ``$DEEPRETRIEVAL_SERVICE_TOKEN``)
makes every endpoint but the OpenAPI docs (``/docs``, ``/openapi.json``) ask for ``Authorization: Bearer
<token>`` (401 without it or with a wrong one; compared in constant time; never logged). ``--workers N``
serves from N processes, each holding the backend (each reads the settings from the environment).

Endpoints (request -> reply; every limit refused with a message saying which):

- ``POST /search`` ``{"queries": [...], "k": 10}`` -> ``{"protocol", "backend": describe(), "queries": n,
  "errors": m, "results": [{"ids": [...], "scores": [...], "total"?}, ...]}``, one result per query, in order,
  ids best first (``total``: all matches, where the backend counts them). For a Boolean backend a query may be
  ``{"query": "...", "mindate": "YYYY-MM-DD" | null, "maxdate": ...}``, and a query the engine cannot run
  is ``{"error": "...", "position": p}`` in its slot (its writer's fault, counted in ``errors``).
- Text backends also: ``POST /search_weighted`` ``{"weights": [{term: weight}], "k"}`` -> ``{"results"}``;
  ``POST /analyze`` ``{"texts": [...], "in_vocabulary": false}`` -> ``{"terms": [[...]]}``; ``POST
  /doc_term_counts`` ``{"ids": [...]}`` -> ``{"counts": [{term: n}]}``: what RM3 needs. A backend without term
  statistics (dense, Lucene) answers 400 with its message; an unknown document id is a 404.
- ``POST /retrieve``: Search-R1's retriever contract. ``{"queries": [...], "topk": 3 | null, "return_scores":
  false}`` -> ``{"result": [[{"id", "contents"}, ...], ...]}``, or with ``return_scores``
  ``{"result": [[{"document": {"id", "contents"}, "score"}, ...], ...]}``; ``contents`` is ``"Title"\\ntext``.
  ``topk`` null (or 0, as Search-R1 reads it) is ``--retrieve-topk`` (Search-R1's default, 3). A Boolean query
  the engine refuses retrieves nothing.
- ``GET /health`` -> ``{"status": "ok", "protocol": "text" | "boolean", "task", "backend": describe(),
  "documents", "limits": {"max_batch", "max_k", "max_body_bytes"}, "retrieve_topk"}``.

Failures: an infrastructure failure of the backend (``SearchFailure``) is a 503 with its message, never an
empty ranking; a body over ``--max-body-bytes`` a 413, more queries than ``--max-batch`` or a ``k`` / ``topk``
over ``--max-k`` a 422, a malformed request a 422 (FastAPI's validation), a body that does not arrive in full
within 10 s a 408. One search runs at a time per worker (a backend is not assumed thread-safe; ``--workers``
is how the service scales).

The client is the ``remote`` backend kind (``deepretrieval.search.remote``)::

    backend: {kind: remote, url: http://127.0.0.1:8000, token_file: F, token_env: DEEPRETRIEVAL_SERVICE_TOKEN,
              timeout: 30, concurrency: 4, retries: 5, backoff: 1, batch_size: 64, cache: false, rate: 1000}
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from .errors import DeepRetrievalError, SearchFailure
from .search.base import BooleanRequest, TextSearcher
from .search.http import Secret, read_secret
from .search.pubmed_syntax import QuerySyntaxError
from .search.specs import SERVICE_TOKEN_ENV
from .serve import BODY_TIMEOUT, MAX_BODY_BYTES, BodyDeadline
from .types import Collection, Document, Ranking

CONFIG_ENV = "DEEPRETRIEVAL_SERVICE_CONFIG"  # the settings, as JSON, for each worker process (no secret in it)
MAX_BATCH = 256
MAX_K = 10_000
RETRIEVE_TOPK = 3  # Search-R1's retrieval_server.py: --topk 3


@dataclass(frozen=True)
class ServiceConfig:
    """What a service serves and its limits (the CLI's flags; a worker reads them from ``CONFIG_ENV``)."""

    data: str
    task: str = "retrieval"
    backend: Mapping[str, Any] = field(default_factory=dict)
    index: str | None = None
    corpus: str | None = None
    seed: int = 0
    token_file: str | None = None  # None: $DEEPRETRIEVAL_SERVICE_TOKEN, else no token
    max_batch: int = MAX_BATCH
    max_k: int = MAX_K
    max_body_bytes: int = MAX_BODY_BYTES
    retrieve_topk: int = RETRIEVE_TOPK
    body_timeout: float = BODY_TIMEOUT

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_k", "max_body_bytes", "retrieve_topk"):
            if getattr(self, name) < 1:
                raise DeepRetrievalError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "backend": dict(self.backend)})

    @classmethod
    def from_json(cls, text: str) -> ServiceConfig:
        return cls(**json.loads(text))


def read_token(config: ServiceConfig, environ: Mapping[str, str] | None = None) -> Secret | None:
    """The service's bearer token: ``--token-file``'s first word, else ``$DEEPRETRIEVAL_SERVICE_TOKEN``."""
    return read_secret(
        config.token_file,
        os.environ if environ is None else environ,
        variable=SERVICE_TOKEN_ENV,
        field="token-file",
        error=lambda name, problem: DeepRetrievalError(f"--{name}: {problem}"),
    )


# -- requests and replies (the OpenAPI schema is the contract) -------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BooleanQuery(_Model):
    """A Boolean backend's query with its inclusive publication-date window."""

    query: str
    mindate: datetime.date | None = None
    maxdate: datetime.date | None = None


class SearchRequest(_Model):
    queries: list[str | BooleanQuery]
    k: int = Field(10, ge=0)


class RankingReply(_Model):
    ids: list[str]
    scores: list[float]
    total: int | None = None


class RefusalReply(_Model):
    error: str
    position: int = -1


class SearchReply(_Model):
    protocol: str
    backend: dict[str, Any]
    queries: int
    errors: int
    results: list[RankingReply | RefusalReply]


class WeightedRequest(_Model):
    weights: list[dict[str, float]]
    k: int = Field(10, ge=0)


class RankingsReply(_Model):
    results: list[RankingReply]


class AnalyzeRequest(_Model):
    texts: list[str]
    in_vocabulary: bool = False  # True: only terms the index holds (``analyze``); False: all (``analyze_many``)


class AnalyzeReply(_Model):
    terms: list[list[str]]


class CountsRequest(_Model):
    ids: list[str]


class CountsReply(_Model):
    counts: list[dict[str, int]]


class RetrieveRequest(BaseModel):
    """Search-R1's ``QueryRequest``."""

    queries: list[str]
    topk: int | None = Field(None, ge=0)
    return_scores: bool = False


class RetrievedDocument(BaseModel):
    id: str
    contents: str


class ScoredDocument(BaseModel):
    document: RetrievedDocument
    score: float


class RetrieveReply(BaseModel):
    result: list[list[ScoredDocument]] | list[list[RetrievedDocument]]


class Limited(DeepRetrievalError):
    """A request over one of the service's limits (a 422)."""


class UnknownDocument(DeepRetrievalError):
    """A document id the served collection does not hold (a 404)."""


# -- the service -------------------------------------------------------------------------------------------


class Service:
    """A backend behind the endpoints: limits, the protocol's requests, Search-R1's documents. Thread-safe:
    one backend call at a time."""

    def __init__(self, task: Any, backend: Any, documents: Sequence[Document], config: ServiceConfig) -> None:
        self.task, self.backend, self.config = task, backend, config
        self.documents = {d.id: d for d in documents}
        self.protocol = "text" if isinstance(backend, TextSearcher) else "boolean"
        self.description = dict(task.describe_backend(backend))
        self._lock = threading.Lock()

    def health(self) -> dict[str, Any]:
        c = self.config
        return {
            "status": "ok",
            "protocol": self.protocol,
            "task": self.task.name,
            "backend": self.description,
            "documents": len(self.documents),
            "limits": {"max_batch": c.max_batch, "max_k": c.max_k, "max_body_bytes": c.max_body_bytes},
            "retrieve_topk": c.retrieve_topk,
        }

    def check(self, items: int, k: int, *, what: str = "queries", depth: str = "k") -> None:
        if items > self.config.max_batch:
            raise Limited(
                f"{items} {what} in one request: this service takes at most {self.config.max_batch} (send several)"
            )
        if k > self.config.max_k:
            raise Limited(f"{depth} {k} is over this service's limit of {self.config.max_k}")

    def search(self, queries: Sequence[str | BooleanQuery], k: int) -> list[Ranking | QuerySyntaxError]:
        self.check(len(queries), k)
        if self.protocol == "text":
            if any(not isinstance(q, str) for q in queries):
                raise Limited("this service's backend is a text backend: its queries are strings, without dates")
            with self._lock:
                return list(self.backend.search(list(queries), k))
        requests = [
            BooleanRequest(q) if isinstance(q, str) else BooleanRequest(q.query, q.mindate, q.maxdate) for q in queries
        ]
        with self._lock:
            return list(self.backend.search(requests, k))

    def search_weighted(self, weights: Sequence[Mapping[str, float]], k: int) -> list[Ranking]:
        self.check(len(weights), k, what="weighted queries")
        with self._lock:
            return list(self._text("search_weighted")(list(weights), k))

    def analyze(self, texts: Sequence[str], in_vocabulary: bool) -> list[list[str]]:
        self.check(len(texts), 0, what="texts")
        with self._lock:
            if in_vocabulary:
                return [list(self._text("analyze")(t)) for t in texts]
            return [list(terms) for terms in self._text("analyze_many")(list(texts))]

    def doc_term_counts(self, ids: Sequence[str]) -> list[dict[str, int]]:
        self.check(len(ids), 0, what="document ids")
        unknown = [i for i in ids if i not in self.documents]
        if unknown:
            raise UnknownDocument(f"no document {unknown[0]!r} in the served collection")
        with self._lock:
            return [dict(self._text("doc_term_counts")(i)) for i in ids]

    def retrieve(self, queries: Sequence[str], topk: int | None, return_scores: bool) -> list[list[dict[str, Any]]]:
        """Search-R1's reply: per query, its documents (with their scores when asked)."""
        k = topk or self.config.retrieve_topk  # Search-R1: `if not request.topk` -> the configured default
        self.check(len(queries), k, depth="topk")
        found = self.search(list(queries), k)
        result = []
        for ranking in found:
            hits = [] if isinstance(ranking, QuerySyntaxError) else ranking
            docs = [(self.contents(h.doc_id), float(h.score)) for h in hits]
            result.append([{"document": d, "score": s} if return_scores else d for d, s in docs])
        return result

    def contents(self, doc_id: str) -> dict[str, str]:
        """A document as Search-R1's corpus holds it: ``{"id", "contents": '"Title"\\ntext'}``."""
        document = self.documents.get(doc_id)
        title, text = (document.title, document.text) if document is not None else ("", "")
        return {"id": doc_id, "contents": f'"{title}"\n{text}'}

    def _text(self, method: str) -> Any:
        if self.protocol != "text":
            raise DeepRetrievalError(f"this service's backend is a Boolean backend: it has no {method}")
        return getattr(self.backend, method)


def build_service(config: ServiceConfig, collection: Collection | None = None) -> Service:
    """Open (or build) the backend of ``config.data`` (loaded unless given) with the task's own factory."""
    from .data import load_collection
    from .tasks import get_task

    task = get_task(config.task)
    if collection is None:
        corpus = Path(config.corpus) if config.corpus else None
        collection = load_collection(config.data, corpus=corpus, seed=config.seed)
    backend = task.backend(collection, dict(config.backend), index=Path(config.index) if config.index else None)
    return Service(task, backend, collection.documents, config)


# -- the app -------------------------------------------------------------------------------------------


def create_app(service: Service, token: Secret | None = None) -> FastAPI:
    """The FastAPI app of a service; ``token``: the bearer token every endpoint asks for (None: none)."""

    def authorized(request: Request) -> None:
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.reveal().encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    app = FastAPI(
        title="deepretrieval search service",
        description=f"The {service.task.name} task's {service.protocol} backend: {service.description}",
        dependencies=[Depends(authorized)],
    )
    app.add_middleware(BodyDeadline, seconds=service.config.body_timeout, max_bytes=service.config.max_body_bytes)
    app.state.service = service
    status = {SearchFailure: 503, Limited: 422, UnknownDocument: 404, DeepRetrievalError: 400}

    @app.exception_handler(DeepRetrievalError)
    async def refused(request: Request, exc: DeepRetrievalError) -> JSONResponse:
        code = next(code for kind, code in status.items() if isinstance(exc, kind))
        return JSONResponse({"detail": str(exc)}, status_code=code)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return service.health()

    @app.post("/search", response_model=SearchReply, response_model_exclude_none=True)
    def search(body: SearchRequest) -> dict[str, Any]:
        results = [_result(r) for r in service.search(body.queries, body.k)]
        return {
            "protocol": service.protocol,
            "backend": service.description,
            "queries": len(results),
            "errors": sum("error" in r for r in results),
            "results": results,
        }

    @app.post("/search_weighted", response_model=RankingsReply, response_model_exclude_none=True)
    def search_weighted(body: WeightedRequest) -> dict[str, Any]:
        return {"results": [_result(r) for r in service.search_weighted(body.weights, body.k)]}

    @app.post("/analyze", response_model=AnalyzeReply)
    def analyze(body: AnalyzeRequest) -> dict[str, Any]:
        return {"terms": service.analyze(body.texts, body.in_vocabulary)}

    @app.post("/doc_term_counts", response_model=CountsReply)
    def doc_term_counts(body: CountsRequest) -> dict[str, Any]:
        return {"counts": service.doc_term_counts(body.ids)}

    @app.post("/retrieve", response_model=RetrieveReply)
    def retrieve(body: RetrieveRequest) -> dict[str, Any]:
        return {"result": service.retrieve(body.queries, body.topk, body.return_scores)}

    return app


def _result(result: Ranking | QuerySyntaxError) -> dict[str, Any]:
    if isinstance(result, QuerySyntaxError):
        return {"error": result.message, "position": result.position}
    return {"ids": list(result.ids), "scores": [float(s) for s in result.scores], "total": result.total}


def app_from_env() -> FastAPI:
    """The app of a worker process (``uvicorn --factory``): its settings from ``$DEEPRETRIEVAL_SERVICE_CONFIG``,
    its token from the file they name or ``$DEEPRETRIEVAL_SERVICE_TOKEN``."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise DeepRetrievalError(f"${CONFIG_ENV} is not set: start the service with `deepretrieval serve search`")
    config = ServiceConfig.from_json(text)
    return create_app(build_service(config), read_token(config))


def run(service: Service, host: str = "127.0.0.1", port: int = 8000, *, workers: int = 1) -> None:
    """Serve until interrupted (the CLI). With ``workers`` > 1 each worker process builds its own service from
    the settings put in its environment (the index is built already: they open it)."""
    import uvicorn

    # No access log: request lines are no secret, but one line per request is noise at thousands a second.
    options = {"log_level": "info", "access_log": False, "http": "h11", "ws": "none", "lifespan": "off"}
    token = read_token(service.config)
    if workers <= 1:
        uvicorn.run(create_app(service, token), host=host, port=port, **options)
        return
    os.environ[CONFIG_ENV] = service.config.to_json()
    uvicorn.run(f"{__name__}:app_from_env", factory=True, host=host, port=port, workers=workers, **options)
