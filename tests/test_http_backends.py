"""The HTTP search backends (PubMed esearch, ClinicalTrials.gov v2) and what they share: the rate limiter,
retries, the cache, batching, injection safety, secrets, the fault decision table and recipe validation.

Replies are either scripted (``httpx.MockTransport``: the exact body and status of each attempt) or real,
from an emulator served by uvicorn on 127.0.0.1 (``deepretrieval.serve``); nothing leaves the machine."""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from deepretrieval.errors import DeepRetrievalError, SearchFailure
from deepretrieval.search.boolean import TRIALS, BooleanIndex, BooleanRequest
from deepretrieval.search.cache import ResultCache, cache_key
from deepretrieval.search.ctgov import CTGovSearcher, CTGovSettings
from deepretrieval.search.http import RefusedQuery
from deepretrieval.search.pubmed import PubMedSearcher, PubMedSettings
from deepretrieval.search.resilience import RateLimiter, backoff_delay, retry_after_seconds
from deepretrieval.serve import Emulator, Faults, build_emulator, create_app, serve_in_thread
from deepretrieval.types import Document, Ranking

FAST = {"backoff": 0.0, "max_backoff": 0.0, "timeout": 5, "cache": False}


@pytest.fixture(autouse=True)
def _no_ncbi_environment(monkeypatch):
    for name in ("NCBI_API_KEY", "NCBI_EMAIL", "NCBI_TOOL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def publications(tmp_path_factory) -> Emulator:
    """An emulator of PubMed over the literature demo (its index built once for the module)."""
    return build_emulator("pubmed", "literature-demo", index=tmp_path_factory.mktemp("pubmed") / "index")


@pytest.fixture(scope="module")
def trials_index() -> BooleanIndex:
    """12 trials on aspirin, started 2001-2012 (one a year), and 3 on insulin."""
    docs = [
        Document(f"NCT{i:08d}", f"Aspirin trial {i}", "aspirin for stroke", {"conditions": ("Stroke",)}, date)
        for i, date in enumerate((datetime.date(2001 + n, 6, 1) for n in range(12)), start=1)
    ]
    docs += [Document(f"NCT{90 + i:08d}", "Insulin", "insulin for diabetes", {}, None) for i in range(3)]
    return BooleanIndex.build(docs, TRIALS)


@contextmanager
def serving(emulator: Emulator) -> Iterator[str]:
    with serve_in_thread(create_app(emulator)) as server:
        yield server.url


def pubmed(url: str, **spec) -> PubMedSearcher:
    return PubMedSearcher.from_spec({"kind": "pubmed", "base_url": f"{url}/entrez/eutils", "rate": 500, **FAST, **spec})


def ctgov(url: str, **spec) -> CTGovSearcher:
    return CTGovSearcher.from_spec({"kind": "ctgov", "base_url": f"{url}/api/v2", "rate": 500, **FAST, **spec})


def scripted(replies: list, **spec) -> tuple[PubMedSearcher, list[httpx.Request]]:
    """A PubMed client whose attempts get ``replies`` in turn (a Response, or an exception to raise)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        reply = replies[min(len(seen), len(replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        return reply

    base = {"kind": "pubmed", "base_url": "http://127.0.0.1:9/entrez/eutils", "rate": 10_000, "retries": 2, **FAST}
    settings = PubMedSettings.from_spec({**base, **spec}, environ={})
    return PubMedSearcher(settings, transport=httpx.MockTransport(handler)), seen


def esearch(count: int = 2, ids: tuple[str, ...] = ("11", "12"), **extra) -> httpx.Response:
    result = {"count": str(count), "retmax": str(len(ids)), "retstart": "0", "idlist": list(ids), **extra}
    return httpx.Response(200, json={"header": {"type": "esearch", "version": "0.3"}, "esearchresult": result})


def esearch_error(message: str) -> httpx.Response:
    return httpx.Response(200, json={"header": {"type": "esearch"}, "esearchresult": {"ERROR": message}})


# -- the rate limiter --------------------------------------------------------------------------------------


def test_the_token_bucket_spaces_reservations_evenly_and_saves_up_to_its_burst():
    now = [0.0]
    bucket = RateLimiter(4.0, burst=1, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    now[0] = 10.0  # idle for long: only ``burst`` tokens were saved
    assert bucket.reserve() == 0.0 and bucket.reserve() == pytest.approx(0.25)
    roomy = RateLimiter(2.0, burst=3, clock=lambda: now[0])
    assert [roomy.reserve() for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.5])


def test_retry_after_pauses_the_whole_bucket():
    now = [0.0]
    bucket = RateLimiter(10.0, clock=lambda: now[0])
    bucket.reserve()
    bucket.pause(2.0)
    assert bucket.reserve() == pytest.approx(2.0)


def test_one_bucket_per_service_host_and_rate_in_a_process():
    assert RateLimiter.shared("pubmed@h", 3.0) is RateLimiter.shared("pubmed@h", 3.0)
    assert RateLimiter.shared("pubmed@h", 3.0) is not RateLimiter.shared("pubmed@h", 10.0)


def arrival_windows(times: list[float]) -> int:
    """The most arrivals in any one-second window [t, t + 1) starting at an arrival."""
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u < t + 1.0) for i, t in enumerate(times))


def test_concurrent_workers_share_the_rate_and_use_most_of_it(publications, monkeypatch):
    """8 workers, 40 distinct searches at 20/s: no one-second window holds more than 20 sends, and the sends
    come at over 90% of the rate. (Measured where the client sends: the arrivals at an emulator in this
    process also carry its event loop's delays; benchmarks/rate_limit.py measures arrivals at a separate one.)"""
    rate, n = 20.0, 40
    publications.log.clear()
    with serving(publications) as url, pubmed(url, rate=rate, concurrency=8) as client:
        sends: list[float] = []
        limiter, acquire = client.http.limiter, client.http.limiter.acquire
        monkeypatch.setattr(limiter, "acquire", lambda: (acquire(), sends.append(time.monotonic()))[0])
        client.search([BooleanRequest(f"osteoarthritis[tiab] OR x{i}") for i in range(n)], 10)
    assert len(sends) == n == len(publications.log.records())
    assert arrival_windows(sends) <= rate
    assert (n - 1) / (max(sends) - min(sends)) >= 0.9 * rate


# -- retries ---------------------------------------------------------------------------------------------


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("2") == 2.0 and retry_after_seconds(" 0.5 ") == 0.5
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("nan") is None and retry_after_seconds("-3") == 0.0


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    import random

    rng = random.Random(0)
    delays = [backoff_delay(a, 1.0, 8.0, rng) for a in range(6)]
    for attempt, delay in enumerate(delays):
        ceiling = min(8.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling


def test_a_429_is_retried_after_the_servers_retry_after():
    client, seen = scripted([httpx.Response(429, headers={"Retry-After": "0.3"}), esearch()])
    start = time.monotonic()
    (ranking,) = client.search([BooleanRequest("aspirin")], 10)
    assert time.monotonic() - start >= 0.3
    assert ranking.ids == ["11", "12"] and len(seen) == 2
    assert client.stats().retried == {"HTTP 429": 1}


def test_a_retry_after_longer_than_max_wait_fails_at_once():
    client, seen = scripted([httpx.Response(503, headers={"Retry-After": "3600"}), esearch()], max_wait=5)
    with pytest.raises(SearchFailure, match="asked to wait 3600 s"):
        client.search([BooleanRequest("aspirin")], 10)
    assert len(seen) == 1


# -- whose fault is a reply: the decision table ---------------------------------------------------------

RESULT, MODEL, SERVICE, CONFIG = "result", "model", "service", "config"
NO_ITEMS = {"phrasesignored": [], "quotedphrasesnotfound": [], "outputmessages": ["No items found."]}
CASES: list[tuple[str, list, str]] = [
    ("a result", [esearch()], RESULT),
    (
        "PubMed's notes on a query it ran",
        [esearch(0, (), errorlist={"phrasesnotfound": ["zzz"], "fieldsnotfound": []}, warninglist=NO_ITEMS)],
        RESULT,
    ),
    (
        "a tag PubMed ignored and still found records",
        [esearch(2, ("11", "12"), errorlist={"phrasesnotfound": [], "fieldsnotfound": ["zz"]})],
        RESULT,
    ),
    (
        "a tag that does not exist and nothing found",
        [esearch(0, (), errorlist={"phrasesnotfound": [], "fieldsnotfound": ["zz"]}, warninglist=NO_ITEMS)],
        MODEL,
    ),
    ("empty term", [esearch_error("Empty term and query_key - nothing todo")], MODEL),
    ("syntax error", [esearch_error("Query syntax error: '(' is never closed (at character 0)")], MODEL),
    ("unbalanced parentheses", [esearch_error("Unbalanced parentheses in term")], MODEL),
    ("search backend failed", [esearch_error("Search Backend failed: Couldn't resolve #exec"), esearch()], SERVICE),
    ("an ERROR not recognised", [esearch_error("Something odd happened"), esearch()], SERVICE),
    ("HTML in a 200", [httpx.Response(200, text="<html>oops</html>"), esearch()], SERVICE),
    ("no esearchresult", [httpx.Response(200, json={"error": "API rate limit exceeded"}), esearch()], SERVICE),
    ("no count", [httpx.Response(200, json={"esearchresult": {"idlist": []}}), esearch()], SERVICE),
    ("a page shorter than due", [esearch(5, ("1", "2")), esearch()], SERVICE),
    (
        "an idlist that is not a list",
        [httpx.Response(200, json={"esearchresult": {"count": "2", "idlist": "11"}}), esearch()],
        SERVICE,
    ),
    ("429", [httpx.Response(429), esearch()], SERVICE),
    ("408", [httpx.Response(408), esearch()], SERVICE),
    ("500", [httpx.Response(500), esearch()], SERVICE),
    ("502", [httpx.Response(502), esearch()], SERVICE),
    ("503", [httpx.Response(503), esearch()], SERVICE),
    ("504", [httpx.Response(504), esearch()], SERVICE),
    ("refused connection", [httpx.ConnectError("refused"), esearch()], SERVICE),
    ("timeout", [httpx.ReadTimeout("slow"), esearch()], SERVICE),
    ("dropped connection", [httpx.RemoteProtocolError("peer closed connection"), esearch()], SERVICE),
    ("400", [httpx.Response(400, text="bad request"), esearch()], CONFIG),
    ("401", [httpx.Response(401), esearch()], CONFIG),
    ("403", [httpx.Response(403), esearch()], CONFIG),
    ("404", [httpx.Response(404), esearch()], CONFIG),
    ("redirect", [httpx.Response(301, headers={"Location": "https://elsewhere/"}), esearch()], CONFIG),
]


@pytest.mark.parametrize(("name", "replies", "fault"), CASES, ids=[c[0] for c in CASES])
def test_whose_fault_each_reply_is(name, replies, fault):
    client, seen = scripted(replies)
    if fault == RESULT:
        (ranking,) = client.search([BooleanRequest("aspirin")], 10)
        assert isinstance(ranking, Ranking) and len(seen) == 1
    elif fault == MODEL:
        (refused,) = client.search([BooleanRequest("aspirin")], 10)
        assert isinstance(refused, RefusedQuery) and len(seen) == 1  # a refusal is not retried
    elif fault == SERVICE:
        (ranking,) = client.search([BooleanRequest("aspirin")], 10)  # retried, then answered
        assert ranking.ids == ["11", "12"] and len(seen) == 2
        persistent, tries = scripted(replies[:1])
        with pytest.raises(SearchFailure, match="after 3 attempts"):
            persistent.search([BooleanRequest("aspirin")], 10)
        assert len(tries) == 3 and persistent.stats().failures == 1
    else:
        with pytest.raises(SearchFailure, match="check|set backend.base_url|refused"):
            client.search([BooleanRequest("aspirin")], 10)
        assert len(seen) == 1  # retrying would not change it


@pytest.mark.parametrize(
    ("text", "why"),
    [("", "empty"), ("  \n\t ", "empty"), ("aspirin\x00stroke", "control character"), ("a" * 4_001, "too long")],
)
def test_queries_the_client_refuses_are_never_sent(text, why):
    client, seen = scripted([esearch()])
    (refused,) = client.search([BooleanRequest(text)], 10)
    assert isinstance(refused, RefusedQuery) and why in str(refused)
    assert seen == [] and client.stats().refused_locally == 1


def test_k_is_checked_as_the_offline_engine_checks_it():
    client, seen = scripted([esearch()])
    with pytest.raises(DeepRetrievalError, match="k must be between 0 and 10,000"):
        client.search([BooleanRequest("aspirin")], 10_001)
    assert seen == []


def test_the_length_cap_counts_utf8_bytes_and_is_configurable():
    client, seen = scripted([esearch()], max_query_bytes=10)
    short, long_ = client.search([BooleanRequest("é" * 5), BooleanRequest("é" * 6)], 10)
    assert isinstance(short, Ranking) and isinstance(long_, RefusedQuery) and len(seen) == 1


# -- batching, paging and the request ----------------------------------------------------------------------


def test_duplicate_queries_in_a_batch_are_sent_once_and_answer_every_slot():
    client, seen = scripted([esearch()])
    day = datetime.date(2010, 5, 1)
    requests = [BooleanRequest("aspirin", maxdate=day), BooleanRequest(" aspirin\n", maxdate=day)] * 3
    results = client.search(requests, 10)
    assert len(seen) == 1 and all(r.ids == ["11", "12"] for r in results)
    assert client.stats().deduplicated == 5
    client.search([BooleanRequest("aspirin", maxdate=datetime.date(2011, 5, 1))], 10)  # another window: another search
    assert len(seen) == 2


def test_pubmed_pages_with_retstart_up_to_k_and_matches_the_engine(publications):
    query = BooleanRequest("osteoarthritis[tiab] OR arthritis[tiab]", maxdate=datetime.date(2000, 1, 1))
    publications.log.clear()
    with serving(publications) as url, pubmed(url, page_size=7) as client:
        (paged,) = client.search([query], 20)
        (counted,) = client.search([query], 0)
    (direct,) = publications.index.search([query], 20)
    assert paged.ids == direct.ids and paged.total == direct.total == counted.total and counted.ids == []
    pages = [(r.params["retstart"], r.params["retmax"]) for r in publications.log.records()]
    assert pages == [(["0"], ["7"]), (["7"], ["7"]), (["14"], ["6"]), (["0"], ["0"])]
    assert publications.log.records()[0].params["mindate"] == ["1700/01/01"]
    assert publications.log.records()[0].params["maxdate"] == ["2000/01/01"]


def test_ctgov_pages_with_tokens_and_counts_the_total(trials_index):
    emulator = Emulator("ctgov", trials_index)
    with serving(emulator) as url, ctgov(url, page_size=5) as client:
        (ranking,) = client.search([BooleanRequest("aspirin")], 11)
    assert len(ranking) == 11 and ranking.total == 12
    records = emulator.log.records()
    assert [r.params.get("pageToken") is None for r in records] == [True, False, False]
    assert records[0].params["countTotal"] == ["true"] and "countTotal" not in records[1].params
    assert all(r.params["pageSize"] == ["5"] for r in records)


def test_the_ctgov_start_date_filter_is_off_by_default_and_applies_the_window(trials_index):
    emulator = Emulator("ctgov", trials_index)
    window = BooleanRequest("aspirin", maxdate=datetime.date(2005, 12, 31))
    with serving(emulator) as url, ctgov(url) as plain, ctgov(url, date_filter=True) as dated:
        (everything,) = plain.search([window], 100)
        (started,) = dated.search([window], 100)
    assert everything.total == 12 and started.total == 5  # started 2001 ... 2005
    filters = [r.params.get("filter.advanced") for r in emulator.log.records()]
    assert filters == [None, ["AREA[StartDate]RANGE[MIN,2005-12-31]"]]


def test_ctgov_refusals_name_query_term(trials_index):
    with serving(Emulator("ctgov", trials_index)) as url, ctgov(url) as client:
        bad, good = client.search([BooleanRequest("(aspirin OR"), BooleanRequest("insulin")], 10)
    assert isinstance(bad, RefusedQuery) and "query.term" in str(bad)
    assert good.total == 3


HOSTILE = [
    "aspirin&retmax=0&term=x",
    "aspirin&api_key=stolen&db=protein&mindate=1000/01/01",
    "aspirin#frag",
    "aspirin%26stroke%3Dx",
    "aspirin\nAND\r\nstroke\n\nretmax=0",
    'aspirin" OR "stroke" &sort=date',
    "aspirin;retmax=0?term=y",
    "aspirin+OR+x&",
    "a" * 3_990,
]


def test_model_text_cannot_add_or_change_a_pubmed_parameter(publications):
    day = datetime.date(1995, 1, 1)
    publications.log.clear()
    with serving(publications) as url, pubmed(url) as client:
        results = client.search([BooleanRequest(q, maxdate=day) for q in [*HOSTILE, "b" * 10_000]], 50)
    assert isinstance(results[-1], RefusedQuery) and "too long" in str(results[-1])  # never sent
    records = publications.log.records()
    assert len(records) == len(HOSTILE)
    expected = {"db", "term", "retmode", "retstart", "retmax", "sort", "tool", "datetype", "mindate", "maxdate"}
    sent = {r.params["term"][0] for r in records}
    assert sent == {" ".join(q.split()) for q in HOSTILE}
    for record in records:
        assert set(record.params) == expected and all(len(v) == 1 for v in record.params.values())
        assert (record.params["db"], record.params["retmax"], record.params["retstart"]) == (["pubmed"], ["50"], ["0"])
        assert record.params["mindate"] == ["1700/01/01"] and record.params["maxdate"] == ["1995/01/01"]


def test_model_text_cannot_add_or_change_a_ctgov_parameter(trials_index):
    emulator = Emulator("ctgov", trials_index)
    with serving(emulator) as url, ctgov(url) as client:
        client.search([BooleanRequest(q) for q in [*HOSTILE, "b" * 10_000]], 50)
    records = emulator.log.records()
    assert len(records) == len(HOSTILE)
    assert {r.params["query.term"][0] for r in records} == {" ".join(q.split()) for q in HOSTILE}
    for record in records:
        assert set(record.params) == {"query.term", "fields", "format", "pageSize", "countTotal"}
        assert all(len(v) == 1 for v in record.params.values()) and record.params["pageSize"] == ["50"]


# -- the cache ---------------------------------------------------------------------------------------------


def test_a_second_client_on_the_same_cache_sends_nothing_and_entries_say_when_they_were_fetched(publications, tmp_path):
    cache = tmp_path / "cache.sqlite"
    requests = [BooleanRequest("osteoarthritis[tiab]"), BooleanRequest("(broken"), BooleanRequest("arthritis")]
    publications.log.clear()
    before = time.time()
    with serving(publications) as url:
        with pubmed(url, cache=str(cache)) as first:
            fetched = first.search(requests, 30)
        with pubmed(url, cache=str(cache)) as second:
            again = second.search(requests, 30)
            assert second.stats().requests == 0 and second.stats().cache_hits == 3
            key = second.key(second.params("osteoarthritis[tiab]", requests[0]), 30)
            assert key == cache_key(
                "pubmed",
                f"{url}/entrez/eutils/esearch.fcgi",
                {"db": "pubmed", "term": "osteoarthritis[tiab]", "sort": "relevance"},
                30,
            )
            assert before <= second.cache.fetched_at(key) <= time.time()
    assert len(publications.log.records()) == 3
    assert [r.ids for r in again[::2]] == [r.ids for r in fetched[::2]]
    assert isinstance(again[1], RefusedQuery) and str(again[1]) == str(fetched[1])  # refusals are cached too


def test_one_cache_file_never_mixes_two_servers_results(tmp_path):
    cache = str(tmp_path / "c.sqlite")
    emulator, sent_there = scripted([esearch()], cache=cache, base_url="http://127.0.0.1:1/entrez/eutils")
    real, sent_here = scripted([esearch(3, ("7", "8", "9"))], cache=cache)
    assert emulator.search([BooleanRequest("aspirin")], 10)[0].ids == ["11", "12"]
    assert real.search([BooleanRequest("aspirin")], 10)[0].ids == ["7", "8", "9"]
    assert len(sent_there) == len(sent_here) == 1


def test_failures_are_never_cached(tmp_path):
    client, seen = scripted([httpx.Response(500)], cache=str(tmp_path / "c.sqlite"))
    with pytest.raises(SearchFailure):
        client.search([BooleanRequest("aspirin")], 10)
    assert len(client.cache) == 0


def test_the_cache_keeps_under_its_size_cap_dropping_the_oldest(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite", max_bytes=4_000)
    for i in range(200):
        cache.put(f"k{i}", "pubmed", {"term": f"q{i}"}, {"ids": [str(i)] * 10, "total": i})
    size = cache._db.execute("SELECT SUM(size) FROM results").fetchone()[0]
    assert size <= 4_000 + 200 and cache.get("k199") is not None and cache.get("k0") is None


def test_cache_entries_expire_after_max_age(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite", max_age=0.05)
    cache.put("k", "pubmed", {}, {"ids": [], "total": 0})
    assert cache.get("k") is not None
    time.sleep(0.1)
    assert cache.get("k") is None


def test_the_cache_serves_concurrent_readers_while_it_is_written(tmp_path):
    path = tmp_path / "c.sqlite"
    writer = ResultCache(path)
    assert writer._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    writer.put("k", "pubmed", {}, {"ids": ["1"], "total": 1})
    readers = [ResultCache(path) for _ in range(4)]
    seen: list[object] = []

    def read() -> None:
        for _ in range(50):
            seen.append(readers[len(seen) % 4].get("k"))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(50):
        writer.put(f"w{i}", "pubmed", {}, {"ids": [str(i)], "total": 1})
    for t in threads:
        t.join()
    assert len(seen) == 200 and all(s == {"ids": ["1"], "total": 1} for s in seen)


# -- secrets -----------------------------------------------------------------------------------------------

KEY = "SECRETkey0123456789abcdef"


def test_the_api_key_is_sent_but_never_logged_cached_or_shown(publications, tmp_path, caplog):
    key_file = tmp_path / "ncbi.key"
    key_file.write_text(KEY + "\n")
    cache = tmp_path / "cache.sqlite"
    noisy = Emulator("pubmed", publications.index, faults=Faults(0.5, ("429", "500"), retry_after=0.0, seed=3))
    caplog.set_level(logging.DEBUG)
    with serving(noisy) as url, pubmed(url, api_key_file=str(key_file), cache=str(cache), retries=20) as client:
        client.search([BooleanRequest(f"osteoarthritis[tiab] OR y{i}") for i in range(6)], 10)
        shown = [repr(client), repr(client.pubmed), str(client.settings), json.dumps(client.describe())]
        assert client.pubmed.api_key is not None and client.pubmed.api_key.reveal() == KEY
        assert client.stats().retried  # the faults were met, and logged
    broken = Emulator("pubmed", publications.index, faults=Faults(1.0, ("500",)))
    with (
        serving(broken) as url,
        pubmed(url, api_key_file=str(key_file), retries=1) as failing,
        pytest.raises(SearchFailure) as failure,
    ):
        failing.search([BooleanRequest("aspirin")], 10)
    assert "retrying" in caplog.text
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("cache.sqlite*"))
    received = json.dumps([r.params for r in noisy.log.records()])
    assert '"api_key": ["<redacted>"]' in received  # it was sent, and the emulator's log hides it
    for text in [caplog.text, stored.decode("latin-1"), received, str(failure.value), *shown]:
        assert KEY not in text


def test_the_key_comes_from_a_file_or_the_environment_and_sets_the_default_rate(tmp_path):
    assert PubMedSettings.from_spec({}, environ={}).http.rate == 3.0
    from_env = PubMedSettings.from_spec({}, environ={"NCBI_API_KEY": KEY, "NCBI_EMAIL": "me@example.org"})
    assert from_env.http.rate == 10.0 and from_env.email == "me@example.org"
    key_file = tmp_path / "k"
    key_file.write_text(f"  {KEY}\n")
    from_file = PubMedSettings.from_spec({"api_key_file": str(key_file), "rate": 5}, environ={"NCBI_API_KEY": "other"})
    assert from_file.api_key.reveal() == KEY and from_file.http.rate == 5.0


# -- recipe validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "spec", "field"),
    [
        ("pubmed", {"rate": 0}, "backend.rate"),
        ("pubmed", {"rate": "fast"}, "backend.rate"),
        ("pubmed", {"concurrency": 1.5}, "backend.concurrency"),
        ("pubmed", {"retries": -1}, "backend.retries"),
        ("pubmed", {"timeout": 0}, "backend.timeout"),
        ("pubmed", {"api_key": "abc"}, "backend.api_key"),
        ("pubmed", {"api_key_file": "/nonexistent/key"}, "backend.api_key_file"),
        ("pubmed", {"base_url": "ftp://x"}, "backend.base_url"),
        ("pubmed", {"base_url": "http://h/e?x=1"}, "backend.base_url"),
        ("pubmed", {"page_size": 20_000}, "backend.page_size"),
        ("pubmed", {"sort": "date"}, "backend.sort"),
        ("pubmed", {"cache": 3}, "backend.cache"),
        ("pubmed", {"date_filter": True}, "backend.date_filter"),
        ("pubmed", {"schema": "trials"}, "backend.schema"),
        ("ctgov", {"page_size": 5_000}, "backend.page_size"),
        ("ctgov", {"date_filter": "yes"}, "backend.date_filter"),
        ("ctgov", {"api_key_file": "k"}, "backend.api_key_file"),
    ],
)
def test_backend_fields_are_validated_and_errors_name_them(kind, spec, field):
    from deepretrieval.tasks import get_task

    with pytest.raises(DeepRetrievalError, match=rf"^recipe field {field}:"):
        get_task("literature").backend(None, {"kind": kind, "cache": False, **spec})


def test_the_literature_task_builds_each_backend_from_its_kind(tmp_path):
    from deepretrieval.tasks import get_task

    task = get_task("literature")
    with task.backend(None, {"kind": "pubmed"}) as client:
        assert isinstance(client, PubMedSearcher) and client.settings.base_url.startswith("https://eutils.ncbi")
        assert client.cache is not None and client.cache.path.name == "http-cache.sqlite"
    with task.backend(None, {"kind": "ctgov", "cache": False, "date_filter": True}) as client:
        assert isinstance(client, CTGovSearcher) and client.ctgov.date_filter and client.cache is None
    assert CTGovSettings.from_spec({}).http.base_url == "https://clinicaltrials.gov/api/v2"
    with pytest.raises(DeepRetrievalError, match="backend.kind"):
        task.backend(None, {"kind": "google"})
