"""ClinicalTrials.gov API v2 (``GET {base_url}/studies``), batched, rate-limited, retried and cached by
:mod:`.http`.

One search: ``query.term`` (the model's query, normalised: one parameter that httpx encodes, whatever it
contains), ``pageSize`` (at most 1,000), ``countTotal=true`` on the first page, then ``pageToken`` from
each reply's ``nextPageToken`` until ``k`` ids or the last page; ``fields=NCTId`` keeps replies small.
Ids are ``protocolSection.identificationModule.nctId``; the total is the first page's ``totalCount``.

**Date filter** (``date_filter: true``; off by default, as in the original, which had none): the
request's window is sent as ``filter.advanced=AREA[StartDate]RANGE[from,to]`` (``MIN`` / ``MAX`` for an
open side), so that only trials that had started by the review's date count, as PubMed's ``pdat`` window
does for publications. The filter is a parameter of its own: the model's text never reaches it.

Whose fault is a reply: 200 with ``studies`` is a result; 400 whose message names ``query.term`` is the
model's (a format error in the query's slot), as are queries refused before sending (empty, too long,
control characters); 408, 429, 5xx, timeouts, dropped connections and unreadable 200 replies are the
service's (retried, then SearchFailure); any other status is a configuration problem (SearchFailure at
once).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..types import Ranking
from .boolean import BooleanRequest
from .http import (
    HttpSearcher,
    HttpSettings,
    RefusedQuery,
    http_settings,
    json_body,
    unexpected_status,
)
from .resilience import ServiceFault
from .specs import CTGOV, CTGOV_MAX_PAGE, CTGovSpec, validate

# ClinicalTrials.gov asks for no key and throttles at about 50 requests a minute per IP address.
DEFAULT_RATE = CTGovSpec.default("rate")
MAX_PAGE = CTGOV_MAX_PAGE


@dataclass(frozen=True)
class CTGovSettings:
    http: HttpSettings
    page_size: int = CTGovSpec.default("page_size")
    date_filter: bool = CTGovSpec.default("date_filter")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | CTGovSpec, *, default_cache: Path | None = None) -> CTGovSettings:
        """Settings from a recipe's ``backend:`` section (``kind: ctgov``) or its typed spec."""
        if not isinstance(spec, CTGovSpec):
            spec = validate(CTGovSpec, spec)
        http = http_settings(spec, default_url=CTGOV, default_cache=default_cache)
        return cls(http=http, page_size=spec.page_size, date_filter=spec.date_filter)


@dataclass(frozen=True)
class Page:
    ids: list[str]
    total: int | None
    next_token: str | None


def start_date_filter(request: BooleanRequest) -> str | None:
    """The ``filter.advanced`` expression of a request's window, or None when it has none."""
    if request.mindate is None and request.maxdate is None:
        return None

    def side(day: datetime.date | None, open_end: str) -> str:
        return open_end if day is None else day.isoformat()

    return f"AREA[StartDate]RANGE[{side(request.mindate, 'MIN')},{side(request.maxdate, 'MAX')}]"


class CTGovSearcher(HttpSearcher):
    """ClinicalTrials.gov v2 as a batched Boolean backend: ``search(requests, k)`` like the offline engine's."""

    service: ClassVar[str] = "ctgov"
    endpoint: ClassVar[str] = "/studies"
    settings_type: ClassVar[type] = CTGovSettings

    def __init__(self, settings: CTGovSettings, *, transport: Any = None) -> None:
        super().__init__(settings.http, transport=transport)
        self.ctgov = settings

    def params(self, query: str, request: BooleanRequest) -> dict[str, str]:
        params = {"query.term": query, "fields": "NCTId", "format": "json"}
        window = start_date_filter(request) if self.ctgov.date_filter else None
        if window is not None:
            params["filter.advanced"] = window
        return params

    def fetch(self, params: Mapping[str, str], k: int) -> Ranking | RefusedQuery:
        size = str(max(1, min(k, self.ctgov.page_size)))
        first = self._page({**params, "pageSize": size, "countTotal": "true"})
        if isinstance(first, RefusedQuery):
            return first
        if first.total is None:
            raise ServiceFault("studies reply without totalCount although countTotal=true")
        ids, token, wanted = list(first.ids), first.next_token, min(k, first.total)
        while len(ids) < wanted and token:
            page = self._page({**params, "pageSize": size, "pageToken": token})
            if isinstance(page, RefusedQuery) or not page.ids:
                raise ServiceFault(f"ClinicalTrials.gov gave no page after {len(ids)} of {first.total} studies")
            ids.extend(page.ids)
            token = page.next_token
        return Ranking(ids[:k], total=first.total)

    def _page(self, params: Mapping[str, str]) -> Page | RefusedQuery:
        return self.http.send("GET", self.endpoint, read_studies, params=params)

    def describe(self) -> dict[str, object]:
        """What shapes the results (no rate): part of an evaluation's identity."""
        return {
            "backend": "ctgov-v2",
            "base_url": self.settings.base_url,
            "date_filter": "StartDate" if self.ctgov.date_filter else None,
        }


def read_studies(response: Any) -> Page | RefusedQuery:
    """One ``/studies`` reply: a page, the model's fault (RefusedQuery), or ServiceFault / SearchFailure."""
    if response.status_code == 400 and "query.term" in response.text:
        return RefusedQuery(f"ClinicalTrials.gov refused the query: {response.text.strip()[:300]}")
    if response.status_code != 200:
        raise unexpected_status("ctgov", response)
    body = json_body(response)
    if not isinstance(body, dict) or not isinstance(body.get("studies"), list):
        raise ServiceFault("studies reply without a list of studies")
    try:
        ids = [str(s["protocolSection"]["identificationModule"]["nctId"]) for s in body["studies"]]
    except (KeyError, TypeError):
        raise ServiceFault("a study without protocolSection.identificationModule.nctId") from None
    total = body.get("totalCount")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
        raise ServiceFault(f"totalCount is not a number: {total!r}")
    token = body.get("nextPageToken")
    return Page(ids, total, str(token) if token else None)
