"""Typed backend specs: a recipe's ``backend:`` section as one pydantic model per ``kind``.

Each spec class holds its backend's fields and their defaults (the one place they are written: the settings
dataclasses of ``search.bm25`` & co. take theirs from here), refuses an unknown field (``extra="forbid"``)
and a value of the wrong type. The **registry** ties a kind to its spec class, to the factory that builds the
backend from a collection, and to the task families that use it; a new backend is one module holding a spec
class and a factory, plus one :func:`register` line::

    class SQLSpec(BackendSpec):
        kind: Literal["sql"] = "sql"
        dsn: str

    register(SQLSpec, sql_backend, family="sql")

:func:`parse_backend` reads a ``backend:`` mapping (the family's default kind when ``kind`` is absent) into
the registered kinds' discriminated union; every error is one line naming ``recipe field backend.<field>``.
``spec.dump()`` is the mapping back, as written (only the fields given): what ``policy.json`` records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import DeepRetrievalError


class SpecError(DeepRetrievalError):
    """A ``backend:`` field refused; ``field`` names it (``kind``, ``k1`` …), for the recipe's line."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"recipe field backend.{field}: {message}")
        self.field = field


def _number(value: Any) -> Any:
    """A number (not a bool: YAML's ``yes``), finite."""
    if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"must be a number, got {value!r}")
    return value


def _whole(value: Any) -> Any:
    """A whole number (2.0 is 2; 1.5 and true are not)."""
    _number(value)
    if isinstance(value, float) and value == int(value):
        return int(value)
    return value


def _none_word(value: Any) -> Any:
    """'none' (or empty text) in a recipe means None: switched off, or the model's own."""
    return None if isinstance(value, str) and value.strip().lower() in ("none", "") else value


Number = Annotated[int | float, BeforeValidator(_number)]  # as written: 1 stays 1 (a cache key hashes it)
Whole = Annotated[int, BeforeValidator(_whole)]
Off = BeforeValidator(_none_word)


class BackendSpec(BaseModel):
    """Base of every backend spec: a ``kind`` and the backend's own fields, nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str

    def given(self) -> dict[str, Any]:
        """The fields the recipe wrote (``kind`` aside): an empty backend opens an index as it was built."""
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if k != "kind"}

    def fields(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """Every field's value (defaults filled in), ``kind`` aside; only ``names`` when given."""
        values = {k: v for k, v in self.model_dump().items() if k != "kind"}
        return values if names is None else {k: v for k, v in values.items() if k in set(names)}

    def dump(self) -> dict[str, Any]:
        """The spec as a plain JSON mapping of the fields given (``kind`` when given): a recipe's section."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of field ``name`` (what the settings dataclasses take)."""
        return cls.model_fields[name].default


S = TypeVar("S", bound=BackendSpec)


# -- the built-in kinds ---------------------------------------------------------------------------------

BM25_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


class BM25Spec(BackendSpec):
    """``kind: bm25``: a bm25s index (``search.bm25``); ``bm25_method`` is the flat recipes' ``method``."""

    kind: Literal["bm25"] = "bm25"
    k1: Number = Field(0.9, ge=0)
    b: Number = Field(0.4, ge=0, le=1)
    method: Literal[BM25_METHODS] = Field("lucene", validation_alias=AliasChoices("method", "bm25_method"))
    stemmer: Annotated[str | None, Off] = "english"  # a Snowball language, or none
    stopwords: Annotated[str | None, Off] = "en"  # a bm25s stopword list, or none


class DenseSpec(BackendSpec):
    """``kind: dense``: a sentence-transformers encoder and a FAISS index (``search.dense``).

    Build settings decide the index: ``model``, ``query_prompt``, ``document_prompt``, ``max_seq_length``,
    ``index_type``, ``nlist``, ``hnsw_m``, ``ef_construction``. Search settings may change on a built index:
    ``nprobe`` (IVF lists visited), ``ef_search`` (HNSW candidate list), ``batch_size`` (encoder batch).
    ``shard_size`` only sets how often a corpus build saves its progress.
    """

    kind: Literal["dense"] = "dense"
    model: str = "all-minilm-l6-v2"  # the embedded MiniLM, a local sentence-transformers folder, or a cached hub id
    index_type: Literal["flat", "ivf", "hnsw"] = "flat"  # flat (exact), ivf (inverted lists), hnsw (graph)
    nlist: Whole = Field(0, ge=0)  # IVF lists; 0: about 4 x sqrt(documents), at least 39 training points per list
    nprobe: Whole = Field(8, ge=1)  # IVF lists searched per query
    hnsw_m: Whole = Field(32, ge=1)  # HNSW neighbours per node
    ef_construction: Whole = Field(80, ge=1)  # HNSW candidate list while building
    ef_search: Whole = Field(64, ge=1)  # HNSW candidate list while searching (at least k is used)
    query_prompt: Annotated[str | None, Off] = None  # text put before each query; None: the model's own
    document_prompt: Annotated[str | None, Off] = None  # before each document; None: the model's own
    max_seq_length: Annotated[Annotated[Whole, Field(ge=1)] | None, Off] = None  # tokens a text; None: the model's
    batch_size: Whole = Field(16, ge=1)  # length-sorted batches of 16 pad least: fastest on 2 cores (BENCHMARKS §11)
    shard_size: Whole = Field(2048, ge=1)  # documents per saved shard of a corpus build


class FusionSpec(BaseModel):
    """RRF's fields (``search.hybrid.HybridSettings``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rrf_k: Whole = Field(60, ge=1)  # RRF's constant: larger flattens the gap between ranks
    depth: Whole = Field(100, ge=1)  # each part's documents that are fused (deeper ones only fill places below)


class HybridSpec(BM25Spec, DenseSpec, FusionSpec):
    """``kind: hybrid``: RRF of a BM25 and a dense backend, their fields in one flat namespace."""

    kind: Literal["hybrid"] = "hybrid"  # type: ignore[assignment]

    def parts(self) -> tuple[BM25Spec, DenseSpec, dict[str, Any]]:
        """The BM25 part, the dense part (each with the fields given to it) and the fusion fields."""
        given = self.given()
        lexical = BM25Spec.model_validate({k: v for k, v in given.items() if k in BM25Spec.model_fields})
        dense = DenseSpec.model_validate({k: v for k, v in given.items() if k in DenseSpec.model_fields})
        return lexical, dense, self.fields(FusionSpec.model_fields)


class LuceneSpec(BackendSpec):
    """``kind: lucene``: Anserini's Lucene BM25 through Pyserini (the optional extra); k1 and b at search time."""

    kind: Literal["lucene"] = "lucene"
    k1: Number = Field(0.9, ge=0)
    b: Number = Field(0.4, ge=0, le=1)


class BooleanSpec(BackendSpec):
    """``kind: boolean``: the offline tantivy engine; ``schema`` None: trials if the corpus has conditions.

    ``mesh_tree``: NLM's MeSH descriptor file (``descYYYY.xml``), read at start-up so that ``[mh]`` and
    ``[majr]`` explode to narrower headings as PubMed's do; None: no explosion, and the backend's
    ``describe()`` and ``warnings()`` say so. A search setting: the index is the same either way."""

    kind: Literal["boolean"] = "boolean"
    schema_: Literal["publications", "trials"] | None = Field(None, alias="schema")
    mesh_tree: Annotated[str | None, Off] = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True)


class HttpSpec(BackendSpec):
    """The fields of every HTTP backend (``search.http.HttpSettings``): rate limit, retries, cache."""

    base_url: str | None = None  # None: the service's own
    rate: Number | None = Field(None, gt=0)  # requests per second for the whole process; None: the kind's
    burst: Whole = Field(1, ge=1)  # tokens the bucket holds; above 1 a one-second window may exceed ``rate``
    # Share of ``rate`` left unused: ``rate`` + 1 requests then span headroom / (1 - headroom) seconds more than
    # one second (87 ms at 0.08), so a request that many ms late on its way cannot put ``rate`` + 1 in a window.
    headroom: Number = Field(0.08, ge=0, lt=1)
    concurrency: Whole | None = Field(None, ge=1)  # worker threads (and connections) per batch; None: the kind's
    timeout: Number = Field(30.0, gt=0)  # seconds, for connecting, sending, waiting and reading
    retries: Whole = Field(5, ge=0)  # attempts after the first
    backoff: Number = Field(1.0, ge=0)  # seconds before the first retry; doubles each time
    max_backoff: Number = Field(30.0, ge=0)
    max_wait: Number = Field(120.0, ge=0)  # a longer Retry-After is not waited for: SearchFailure at once
    cache: bool | str = True  # true: the default file beside the indexes; false: none; or a file path
    cache_max_mb: Number = Field(1024, ge=1)
    cache_max_age_days: Number | None = Field(None, ge=0)  # None: entries never expire
    max_query_bytes: Whole = Field(4_000, ge=1)

    @field_validator("base_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        url = url.strip()
        scheme, _, rest = url.partition("://")
        if scheme not in ("http", "https") or not rest.split("/")[0]:
            raise ValueError(f"must be an http:// or https:// URL, got {url!r}")
        if "?" in url or "#" in url:
            raise ValueError(f"must have no query or fragment, got {url!r}")
        return url.rstrip("/")

    @field_validator("cache", mode="before")
    @classmethod
    def _cache(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
            return False
        if not isinstance(value, bool | str):
            raise ValueError(f"must be true, false or a file path, got {value!r}")
        return value


def no_secret(values: Any, name: str, what: str, file_field: str, variable: str) -> Any:
    """``values`` unless they write a secret (field ``name``) in the recipe, which is refused."""
    if isinstance(values, Mapping) and name in values:
        raise SpecError(
            name, f"{what} is never written in a recipe: name a file holding it in {file_field}, or set {variable}"
        )
    return values


def _text(value: Any) -> Any:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError(f"must be non-blank text, got {value!r}")
    return value.strip() if isinstance(value, str) else value


Text = Annotated[str, BeforeValidator(_text)]
EUTILS = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"
CTGOV = "https://clinicaltrials.gov/api/v2"
ESEARCH_MAX = 10_000  # esearch's most ids a request
CTGOV_MAX_PAGE = 1_000  # ClinicalTrials.gov's most studies a page


class PubMedSpec(HttpSpec):
    """``kind: pubmed``: PubMed E-utilities (``search.pubmed``). ``rate`` None: NCBI's limit (3/s, 10/s with
    a key); the key from the file ``api_key_file`` names, else ``$NCBI_API_KEY`` (never in a recipe)."""

    kind: Literal["pubmed"] = "pubmed"
    concurrency: Whole = Field(4, ge=1)
    api_key_file: str | None = None
    email: Text | None = None  # None: $NCBI_EMAIL
    tool: Text | None = None  # None: $NCBI_TOOL, else deepretrieval
    sort: Literal["relevance", "none"] = "relevance"
    page_size: Whole = Field(ESEARCH_MAX, ge=1, le=ESEARCH_MAX)

    @model_validator(mode="before")
    @classmethod
    def _no_key(cls, values: Any) -> Any:
        return no_secret(values, "api_key", "a key", "backend.api_key_file", "NCBI_API_KEY")


class CTGovSpec(HttpSpec):
    """``kind: ctgov``: ClinicalTrials.gov API v2 (``search.ctgov``); no key, about 50 requests a minute."""

    kind: Literal["ctgov"] = "ctgov"
    rate: Number = Field(0.8, gt=0)
    concurrency: Whole = Field(2, ge=1)
    page_size: Whole = Field(CTGOV_MAX_PAGE, ge=1, le=CTGOV_MAX_PAGE)
    date_filter: bool = False

    @field_validator("date_filter", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return value


SERVICE_TOKEN_ENV = "DEEPRETRIEVAL_SERVICE_TOKEN"


class RemoteSpec(HttpSpec):
    """``kind: remote``: a backend served by ``deepretrieval serve search`` (``search.remote``), for any family
    whose protocol the service speaks (text or Boolean: its ``/health`` says which). ``url`` (required; also
    read as ``base_url``) is the service's root; the bearer token from the file ``token_file`` names, else the
    variable ``token_env`` (never in a recipe). A batch goes as requests of ``batch_size`` distinct queries (the
    service's own limit caps it), ``concurrency`` at a time; the HTTP fields (``timeout``, ``retries``,
    ``backoff`` …) are every HTTP backend's. No cache by default: the service answers in milliseconds; with
    ``cache`` the key holds the served index's corpus hash, so a re-indexed service never meets old entries."""

    kind: Literal["remote"] = "remote"
    base_url: str = Field(validation_alias=AliasChoices("url", "base_url"))  # type: ignore[assignment]
    token_file: str | None = None
    token_env: Text = SERVICE_TOKEN_ENV
    rate: Number = Field(1000.0, gt=0)  # requests per second from this process: a service of our own
    concurrency: Whole = Field(4, ge=1)
    batch_size: Whole = Field(64, ge=1)
    cache: bool | str = False

    @model_validator(mode="before")
    @classmethod
    def _no_token(cls, values: Any) -> Any:
        variable = f"{SERVICE_TOKEN_ENV} (or the variable backend.token_env names)"
        return no_secret(values, "token", "a token", "backend.token_file", variable)


class SQLiteSpec(BackendSpec):
    """``kind: sqlite``: the read-only SQLite sandbox (``search.sqlite_sandbox``) that runs model SQL on each
    example's own database file: seconds of SQLite work, rows and characters of SQL one query may take."""

    kind: Literal["sqlite"] = "sqlite"
    timeout_seconds: Number = Field(5.0, gt=0)
    max_rows: Whole = Field(10_000, ge=1)  # one more row is the verdict too_many_rows, never a cut result
    max_sql_chars: Whole = Field(20_000, ge=16)
    # Gold results kept across runs, keyed by the database file's SHA-256: true: beside the cached indexes
    # (``sql-gold-cache.sqlite``); false: in memory only; or a file path.
    gold_cache: bool | str = False


# -- the registry -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """A registered kind: its spec class, ``factory(collection, spec, index)`` and the families that use it
    (a family's subclasses, such as qa of retrieval, use its backends too)."""

    spec: type[BackendSpec]
    factory: Callable[..., Any]
    families: tuple[str, ...]


REGISTRY: dict[str, Backend] = {}


def register(spec: type[BackendSpec], factory: Callable[..., Any], *, family: str) -> type[BackendSpec]:
    """Register a backend kind (``spec``'s ``kind`` default) for ``family``. A kind has one spec and one
    factory; registering them again for another family adds the family (``remote`` serves several)."""
    kind = spec.model_fields["kind"].default
    if not isinstance(kind, str):
        raise TypeError(f"{spec.__name__}.kind needs a default: the kind's name")
    known = REGISTRY.get(kind)
    if known is not None and (known.spec, known.factory) != (spec, factory):
        raise ValueError(f"backend kind {kind!r} is registered already")
    families = known.families if known is not None else ()
    REGISTRY[kind] = Backend(spec, factory, families if family in families else (*families, family))
    _union.cache_clear()
    return spec


def kinds(families: Iterable[str]) -> tuple[str, ...]:
    """The kinds registered for any of ``families``, in registration order."""
    wanted = set(families)
    return tuple(kind for kind, backend in REGISTRY.items() if wanted.intersection(backend.families))


def backend_of(spec: BackendSpec) -> Backend:
    return REGISTRY[spec.kind]


@cache
def _union(names: tuple[str, ...]) -> TypeAdapter:
    """The discriminated union (on ``kind``) of the kinds ``names``."""
    classes = tuple(REGISTRY[name].spec for name in names)
    if len(classes) == 1:
        return TypeAdapter(classes[0])
    return TypeAdapter(Annotated[Union[classes], Field(discriminator="kind")])  # noqa: UP007 (a runtime tuple)


def parse_backend(
    section: Mapping[str, Any] | BackendSpec | None, *, families: Iterable[str], task: str, default: str
) -> BackendSpec:
    """The typed spec of a ``backend:`` mapping for a task family (``default``: the kind when absent)."""
    names = kinds(families)
    if isinstance(section, BackendSpec):
        if section.kind not in names:
            raise SpecError("kind", f"the {task} task has no backend {section.kind!r} (known: {', '.join(names)})")
        return section
    values = dict(section or {})
    if not isinstance(values.setdefault("kind", default), str) or values["kind"] not in names:
        raise SpecError("kind", f"the {task} task has no backend {values['kind']!r} (known: {', '.join(names)})")
    spec = parse_kind(values, names)
    if "kind" not in (section or {}):  # as written: the kind is dumped only when given
        spec.model_fields_set.discard("kind")
    return spec


def parse_kind(values: Mapping[str, Any], names: tuple[str, ...] | None = None) -> BackendSpec:
    """``values`` (with a registered ``kind``) as its spec; errors name ``backend.<field>``."""
    names = names or tuple(REGISTRY)
    try:
        return _union(names).validate_python(dict(values))
    except ValidationError as exc:
        kind = values.get("kind")
        raise spec_error(exc, REGISTRY[kind].spec if kind in REGISTRY else BackendSpec) from None


def validate(spec: type[S], values: Mapping[str, Any]) -> S:
    """``values`` as a ``spec`` (registered or not); errors name ``backend.<field>``."""
    try:
        return spec.model_validate(dict(values))
    except ValidationError as exc:
        raise spec_error(exc, spec) from None


def spec_error(exc: ValidationError, spec: type[BackendSpec]) -> SpecError:
    """The first error of a validation, as one line naming the field."""
    error = exc.errors()[0]
    kind = spec.model_fields["kind"].default
    names = {spelling for name, f in spec.model_fields.items() for spelling in _spellings(name, f)}
    loc = [str(p) for p in error["loc"]]
    if len(loc) > 1 and loc[0] == kind:  # the union's tag
        loc = loc[1:]
    # the field (a loc's further parts name a union's member: int, float)
    field = loc[0] if loc and (loc[0] in names or error["type"] == "extra_forbidden") else "kind"
    if error["type"] == "extra_forbidden":
        known = sorted(_spellings(name, f)[0] for name, f in spec.model_fields.items() if name != "kind")
        return SpecError(field, f"unknown for kind {kind} (known: kind, {', '.join(known)})")
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    got = "" if "got" in message or isinstance(value, dict) else f", got {value!r}"
    return SpecError(field, f"{message[0].lower()}{message[1:]}{got}")


def _spellings(name: str, field: Any) -> list[str]:
    """How a recipe may write a field, its first spelling first: its aliases, then its name."""
    alias = field.validation_alias
    choices = list(alias.choices) if isinstance(alias, AliasChoices) else [alias] if isinstance(alias, str) else []
    return [str(c) for c in choices if isinstance(c, str)] + [a for a in (field.alias, name) if a]
