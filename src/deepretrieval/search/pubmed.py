"""PubMed through NCBI E-utilities ``esearch`` (db=pubmed, JSON), batched, rate-limited, retried and cached
by :mod:`.http`.

One search: ``POST {base_url}/esearch.fcgi`` with the form fields ``db``, ``term`` (the model's query,
normalised: one field, whatever it contains), ``retmode=json``, ``retstart``, ``retmax``, ``sort``, the
review's date window (``datetype=pdat``, ``mindate``, ``maxdate``, inclusive; an open side is
``1700/01/01`` or ``3000/12/31``, since NCBI wants both bounds) and ``tool`` / ``email`` / ``api_key``.
POST, as NCBI advises for long requests: a query never meets a URL length limit, and the key never
appears in a URL that a proxy or a log might keep.

Pages: the first request asks for ``min(k, page_size)`` ids and brings the count with them (``esearch``
always returns it), so the usual search of K <= ``page_size`` is one request, not a count request and
then a page: at 3 requests a second that halves the time. Further pages follow with ``retstart``, up
to ``k`` <= 10,000 (as far as esearch pages). ``k = 0`` asks for the count alone (``retmax=0``).

``sort``: ``relevance`` (the default: with more than K matches, keep the K that match best, as the
emulator and the offline engine do) or ``none`` (E-utilities' own default order, which the original
DeepRetrieval used without saying).

Whose fault is a reply (the decision table; each row is tested in tests/test_http_backends.py):

- **Neither: a result.** 200 with ``esearchresult.count`` and ``idlist``. Its ``errorlist`` /
  ``warninglist`` (``PhraseNotFound``, ``QuotedPhraseNotFound``, ``OutputMessage`` "No items found.", and
  ``FieldNotFound`` when PubMed still found records: it searched the term without the tag) are PubMed's
  notes on a query it ran, whatever the count.
- **The model's: a format error** (:class:`RefusedQuery` in the query's slot). 200 with an ``ERROR``
  that names the query: an empty term, a syntax error, unbalanced or unmatched parentheses or quotes, a
  query too long; 200 with ``count`` 0 and ``errorlist.fieldsnotfound`` (a field tag that does not exist:
  the emulator's engine cannot search past it, so it finds nothing). Also, never sent: a query empty, over
  ``max_query_bytes`` or holding control characters once whitespace is normalised.
- **The service's: retried, then SearchFailure.** 408, 429 (``Retry-After`` honoured), 500, 502, 503,
  504; timeouts, refused and dropped connections; 200 whose body is not JSON, lacks ``esearchresult`` or
  a readable ``count``, or holds a page shorter or longer than asked; 200 with an ``ERROR`` naming the
  service ("Search Backend failed", a rate limit) **or any ERROR not recognised above**.
- **Ours (configuration): SearchFailure at once**, naming the setting to fix: any other status (400,
  401, 403, 404, a redirect).

An unrecognised ``ERROR`` is the service's: a failure costs an unscorable sample, while a wrong "model
fault" would teach the policy with a penalty it did not earn.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import SearchFailure
from ..types import Ranking
from .boolean import BooleanRequest
from .http import (
    MAX_RESULTS,
    HttpSearcher,
    HttpSettings,
    RefusedQuery,
    Secret,
    http_settings,
    json_body,
    read_secret,
    unexpected_status,
)
from .resilience import ServiceFault
from .specs import EUTILS, PubMedSpec, validate

log = logging.getLogger(__name__)

OPEN_MINDATE = "1700/01/01"
OPEN_MAXDATE = "3000/12/31"
RATE_WITHOUT_KEY, RATE_WITH_KEY = 3.0, 10.0  # NCBI's limits, requests per second per client
ENV_KEY, ENV_EMAIL, ENV_TOOL = "NCBI_API_KEY", "NCBI_EMAIL", "NCBI_TOOL"
# ERROR texts that blame the query (lower case, matched as substrings), checked after SERVICE_ERRORS.
MODEL_ERRORS = ("empty term", "syntax error", "unbalanced", "unmatched", "too long", "invalid query")
SERVICE_ERRORS = ("backend failed", "unavailable", "rate limit", "timeout", "timed out", "try again")


@dataclass(frozen=True)
class PubMedSettings:
    http: HttpSettings
    api_key: Secret | None = field(default=None, repr=False)
    email: str | None = None
    tool: str = "deepretrieval"
    sort: str = PubMedSpec.default("sort")
    page_size: int = PubMedSpec.default("page_size")
    db: str = "pubmed"

    @classmethod
    def from_spec(
        cls,
        spec: Mapping[str, Any] | PubMedSpec,
        *,
        default_cache: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> PubMedSettings:
        """Settings from a recipe's ``backend:`` section (``kind: pubmed``) or its typed spec; the key from the
        file named by ``api_key_file``, else ``$NCBI_API_KEY``; ``email`` / ``tool`` from the recipe, else the
        environment."""
        environ = os.environ if environ is None else environ
        if not isinstance(spec, PubMedSpec):
            spec = validate(PubMedSpec, spec)
        key = read_key(spec.api_key_file, environ)
        rate = RATE_WITH_KEY if key else RATE_WITHOUT_KEY
        settings = cls(
            http=http_settings(spec, rate=rate, default_url=EUTILS, default_cache=default_cache),
            api_key=key,
            email=spec.email or environ.get(ENV_EMAIL, "").strip() or None,
            tool=spec.tool or environ.get(ENV_TOOL, "").strip() or "deepretrieval",
            sort=spec.sort,
            page_size=spec.page_size,
        )
        settings.warn_if_over_ncbi_limits()
        return settings

    def warn_if_over_ncbi_limits(self) -> None:
        limit = RATE_WITH_KEY if self.api_key else RATE_WITHOUT_KEY
        if self.http.base_url.split("/")[2].endswith(".nih.gov") and self.http.rate > limit:
            log.warning(
                "backend.rate %.1f/s is above NCBI's %.0f/s %s an API key: NCBI will answer 429 or block",
                self.http.rate,
                limit,
                "with" if self.api_key else "without",
            )


def read_key(path: Any, environ: Mapping[str, str]) -> Secret | None:
    """The NCBI API key: the first line of the file at ``path``, else ``$NCBI_API_KEY``, else None."""
    return read_secret(path, environ, variable=ENV_KEY, field="api_key_file")


def ncbi_date(day: datetime.date | None, default: str) -> str:
    return default if day is None else f"{day.year:04d}/{day.month:02d}/{day.day:02d}"


@dataclass(frozen=True)
class Page:
    ids: list[str]
    total: int


class PubMedSearcher(HttpSearcher):
    """PubMed esearch as a batched Boolean backend: ``search(requests, k)`` like the offline engine's."""

    service: ClassVar[str] = "pubmed"
    endpoint: ClassVar[str] = "/esearch.fcgi"
    settings_type: ClassVar[type] = PubMedSettings

    def __init__(self, settings: PubMedSettings, *, transport: Any = None) -> None:
        super().__init__(settings.http, transport=transport)
        self.pubmed = settings

    def params(self, query: str, request: BooleanRequest) -> dict[str, str]:
        params = {"db": self.pubmed.db, "term": query}
        if request.mindate is not None or request.maxdate is not None:
            params["datetype"] = "pdat"
            params["mindate"] = ncbi_date(request.mindate, OPEN_MINDATE)
            params["maxdate"] = ncbi_date(request.maxdate, OPEN_MAXDATE)
        if self.pubmed.sort != "none":
            params["sort"] = self.pubmed.sort
        return params

    def fetch(self, params: Mapping[str, str], k: int) -> Ranking | RefusedQuery:
        first = self._page(params, 0, min(k, self.pubmed.page_size))
        if isinstance(first, RefusedQuery):
            return first
        ids, wanted = list(first.ids), min(k, first.total, MAX_RESULTS)
        while len(ids) < wanted:
            page = self._page(params, len(ids), min(self.pubmed.page_size, wanted - len(ids)))
            if isinstance(page, RefusedQuery):
                raise SearchFailure(f"pubmed refused page {len(ids)}+ of a query it had accepted: {page}")
            ids.extend(page.ids)
        return Ranking(ids[:k], total=first.total)

    def _page(self, params: Mapping[str, str], retstart: int, retmax: int) -> Page | RefusedQuery:
        form = {**params, "retmode": "json", "retstart": str(retstart), "retmax": str(retmax), **self._credentials()}
        return self.http.send("POST", self.endpoint, lambda r: read_esearch(r, retstart, retmax), form=form)

    def _credentials(self) -> dict[str, str]:
        sent = {"tool": self.pubmed.tool}
        if self.pubmed.email:
            sent["email"] = self.pubmed.email
        if self.pubmed.api_key is not None:
            sent["api_key"] = self.pubmed.api_key.reveal()
        return sent

    def describe(self) -> dict[str, object]:
        """What shapes the results (no rate, no credentials): part of an evaluation's identity."""
        return {
            "backend": "pubmed-esearch",
            "base_url": self.settings.base_url,
            "db": self.pubmed.db,
            "sort": self.pubmed.sort,
            "datetype": "pdat",
            "open_window": [OPEN_MINDATE, OPEN_MAXDATE],
        }


def read_esearch(response: Any, retstart: int, retmax: int) -> Page | RefusedQuery:
    """One esearch JSON reply: a page, the model's fault (RefusedQuery), or ServiceFault / SearchFailure."""
    if response.status_code != 200:
        raise unexpected_status("pubmed", response)
    body = json_body(response)
    result = body.get("esearchresult") if isinstance(body, dict) else None
    if not isinstance(result, dict):
        said = f": {body['error']}" if isinstance(body, dict) and "error" in body else ""
        raise ServiceFault(f"esearch reply without esearchresult{said}")
    if result.get("ERROR"):
        return classify_error(str(result["ERROR"]))
    try:
        total, ids = int(result["count"]), result["idlist"]
    except (KeyError, TypeError, ValueError):
        raise ServiceFault("esearch reply without a readable count and idlist") from None
    if not isinstance(ids, list) or not all(isinstance(i, str | int) for i in ids):
        raise ServiceFault("esearch reply whose idlist is not a list of ids")
    ids = [str(i) for i in ids]
    unknown_fields = _fields_not_found(result)
    if total == 0 and unknown_fields:
        return RefusedQuery(f"PubMed knows no field tag {', '.join(unknown_fields)[:300]} and found nothing")
    expected = min(retmax, max(0, min(total, MAX_RESULTS) - retstart))
    if len(ids) != expected:
        raise ServiceFault(f"esearch page of {len(ids)} ids where {expected} were due (count {total})")
    return Page(ids, total)


def _fields_not_found(result: Mapping[str, Any]) -> list[str]:
    """``errorlist.fieldsnotfound`` of an esearch reply, as tags ("[xx]"); [] when absent or unreadable."""
    errors = result.get("errorlist")
    found = errors.get("fieldsnotfound") if isinstance(errors, dict) else None
    if isinstance(found, str):  # a lone member may come as a bare string
        found = [found]
    return [f"[{f}]" for f in found if isinstance(f, str) and f] if isinstance(found, list) else []


def classify_error(message: str) -> RefusedQuery:
    """An esearch ``ERROR``: the model's fault (returned) or the service's (ServiceFault, raised)."""
    lowered = message.lower()
    if any(p in lowered for p in SERVICE_ERRORS) or not any(p in lowered for p in MODEL_ERRORS):
        raise ServiceFault(f"esearch ERROR: {message[:300]}")
    return RefusedQuery(f"PubMed refused the query: {message[:300]}")
