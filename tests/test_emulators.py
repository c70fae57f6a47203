"""The PubMed and ClinicalTrials.gov emulators (``deepretrieval serve emulator``) and the literature task run
through them over HTTP: NCBI's reply shapes (read by Biopython), injected faults, a full evaluation that a
faulty service cannot change, the cache, failures that never become rewards, and a short GRPO run.

Every server here is uvicorn on 127.0.0.1 (a free port), started and stopped by the test."""

from __future__ import annotations

import base64
import datetime
import json
import socket
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from deepretrieval.cli import app
from deepretrieval.data import load_collection
from deepretrieval.errors import DeepRetrievalError, SearchFailure
from deepretrieval.evaluate import EvalSettings, evaluate
from deepretrieval.policies import make_policy
from deepretrieval.prompts import PromptSettings
from deepretrieval.search.boolean import BooleanRequest
from deepretrieval.search.pubmed import PubMedSearcher
from deepretrieval.serve import Emulator, Faults, build_emulator, create_app, serve_in_thread
from deepretrieval.tasks import TaskReward, get_task

from .conftest import tiny_literature_recipe

TASK = get_task("literature")
DIRECT = PromptSettings(variant="direct", mode="rewrite", context_docs=0)
POLICIES = ("original", "pico-boolean", "oracle")
NCBI = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"


@pytest.fixture(autouse=True)
def _no_ncbi_environment(monkeypatch):
    for name in ("NCBI_API_KEY", "NCBI_EMAIL", "NCBI_TOOL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def collection():
    return load_collection("literature-demo")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Emulator:
    return build_emulator("pubmed", "literature-demo", index=tmp_path_factory.mktemp("emulator") / "index")


@pytest.fixture(scope="module")
def server(emulator):
    with serve_in_thread(create_app(emulator)) as running:
        yield running


def client(url: str, **spec) -> PubMedSearcher:
    """A PubMed client for an emulator: a high rate (one local server), small back-offs."""
    base = {"kind": "pubmed", "base_url": f"{url}/entrez/eutils", "rate": 400, "concurrency": 8, "cache": False}
    return TASK.backend(None, {**base, "backoff": 0.01, "max_backoff": 0.05, "timeout": 5, **spec})


def run_eval(collection, backend, out: Path) -> dict[str, list[dict]]:
    policies = [make_policy(name, task=TASK, backend=backend) for name in POLICIES]
    # The task's own depth (the deepest cut-off it reports: recall@3000).
    evaluate(collection, "test", policies, backend, out, EvalSettings(batch_size=32), task=TASK)
    return read_eval(out)


def read_eval(out: Path) -> dict[str, object]:
    """Each policy's run lines and metrics (the figures; the folder's config names the backend)."""
    found: dict[str, object] = {}
    for name in POLICIES:
        folder = out / "policies" / name
        lines = [json.loads(x) for x in (folder / "runs.jsonl").read_text().splitlines()]
        found[name] = {
            "runs": sorted(lines, key=lambda x: x["id"]),
            "metrics": json.loads((folder / "metrics.json").read_text()),
        }
    return found


# -- reply shapes ----------------------------------------------------------------------------------------


def test_esearch_answers_in_ncbis_json_and_xml_shapes(server):
    url = f"{server.url}/entrez/eutils/esearch.fcgi"
    params = {"db": "pubmed", "term": "osteoarthritis[tiab]", "retmax": "3", "datetype": "pdat", "maxdate": "2000"}
    reply = httpx.get(url, params={**params, "retmode": "json"})
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/json")
    result = reply.json()["esearchresult"]
    assert reply.json()["header"] == {"type": "esearch", "version": "0.3"}
    assert set(result) == {"count", "retmax", "retstart", "idlist", "translationset", "querytranslation"}
    assert int(result["count"]) > 3 and result["retmax"] == "3" and len(result["idlist"]) == 3
    xml = httpx.post(url, data=params)  # XML is esearch's default; POST form as NCBI accepts
    assert "<!DOCTYPE eSearchResult PUBLIC" in xml.text and xml.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(xml.content)
    assert [child.tag for child in root] == [
        "Count",
        "RetMax",
        "RetStart",
        "IdList",
        "TranslationSet",
        "QueryTranslation",
    ]
    assert [e.text for e in root.find("IdList")] == result["idlist"] and root.findtext("Count") == result["count"]


def test_a_malformed_query_is_a_200_with_an_error_field_and_a_format_error_for_the_task(server, collection):
    url = f"{server.url}/entrez/eutils/esearch.fcgi"
    reply = httpx.get(url, params={"db": "pubmed", "term": "(aspirin OR", "retmode": "json"})
    assert reply.status_code == 200 and "Query syntax error" in reply.json()["esearchresult"]["ERROR"]
    empty = httpx.get(url, params={"db": "pubmed", "term": " ", "retmode": "json"}).json()["esearchresult"]
    assert empty == {"ERROR": "Empty term and query_key - nothing todo"}
    xml = ET.fromstring(httpx.get(url, params={"db": "pubmed", "term": "aspirin[zz]"}).content)
    assert xml.findtext("Count") == "0" and xml.findtext("ErrorList/FieldNotFound") == "zz"  # E-utilities' shape
    examples = collection.split("train")[:1]
    config = replace(TASK.presets["deepretrieval-recall"], k=100)
    with client(server.url) as backend:
        reward = TaskReward(TASK, backend, examples, config, DIRECT)
        good, unbalanced, tag = reward.score_batch(
            [f"{examples[0].meta['oracle_query']}</answer>", "(aspirin OR</answer>", "aspirin[zz]</answer>"],
            [examples[0].id] * 3,
        )
    assert good.total == pytest.approx(1.0 + 5.0) and good.format_ok
    for bad in (unbalanced, tag):
        assert bad.failure is None and bad.total == config.format_penalty and bad.reason == "rejected_by_backend"


def test_biopython_reads_the_emulator_and_agrees_with_our_client(server, monkeypatch):
    """Bio.Entrez 1.88 has no base-URL setting (its URLs are literals in each function), so its one
    ``urlopen`` is pointed at the emulator; everything else (parameters, GET or POST, DTD validation) is
    Biopython's own."""
    from Bio import Entrez

    def to_emulator(request, *args, **kwargs):
        assert request.full_url.startswith(NCBI), request.full_url
        request.full_url = f"{server.url}/entrez/eutils{request.full_url[len(NCBI) :]}"
        return urllib.request.urlopen(request, *args, **kwargs)

    monkeypatch.setattr(Entrez, "urlopen", to_emulator)
    monkeypatch.setattr(Entrez, "email", "tests@example.org")
    long_query = " OR ".join(["osteoarthritis[tiab]", *(f"zz{i}[tiab]" for i in range(120))])  # > 1000: POST
    window = {"datetype": "pdat", "mindate": "1700/01/01", "maxdate": "1995/06/30"}
    with client(server.url) as ours:
        for query in ("osteoarthritis[tiab] OR (arthritis AND knee)", long_query):
            with Entrez.esearch(db="pubmed", term=query, retmax=40, sort="relevance", **window) as handle:
                record = Entrez.read(handle)
            (ranking,) = ours.search([BooleanRequest(query, maxdate=datetime.date(1995, 6, 30))], 40)
            assert int(record["Count"]) == ranking.total > 0 and list(record["IdList"]) == ranking.ids
    with pytest.raises(RuntimeError, match="Query syntax error"):
        Entrez.read(Entrez.esearch(db="pubmed", term="(osteoarthritis"))


def test_a_biopython_history_pipeline_runs_end_to_end_against_the_emulator(server, collection, monkeypatch):
    """Biopython's own pipeline: ``esearch(usehistory="y")`` -> ``Entrez.read`` -> ``efetch(webenv=…,
    query_key=…, retmode="xml")`` -> ``Entrez.read``, then ``esummary`` from the same history; the records
    it reads are the corpus's (PMID, title, abstract sections, MeSH, date)."""
    from Bio import Entrez

    def to_emulator(request, *args, **kwargs):
        request.full_url = f"{server.url}/entrez/eutils{request.full_url[len(NCBI) :]}"
        return urllib.request.urlopen(request, *args, **kwargs)

    monkeypatch.setattr(Entrez, "urlopen", to_emulator)
    monkeypatch.setattr(Entrez, "email", "tests@example.org")
    with Entrez.esearch(db="pubmed", term="osteoarthritis[tiab]", usehistory="y", retmax=5) as handle:
        search = Entrez.read(handle)
    count, webenv, key = int(search["Count"]), search["WebEnv"], search["QueryKey"]
    assert 5 < count <= 200 and webenv.startswith("MCID_") and key == "1"
    with Entrez.efetch(db="pubmed", webenv=webenv, query_key=key, retmode="xml", retmax=count) as handle:
        fetched = Entrez.read(handle)["PubmedArticle"]
    corpus = {d.id: d for d in collection.documents}
    assert [a["MedlineCitation"]["PMID"] for a in fetched][:5] == list(search["IdList"])
    assert len(fetched) == count
    for article in fetched:
        citation = article["MedlineCitation"]
        document = corpus[str(citation["PMID"])]
        body = citation["Article"]
        assert body["ArticleTitle"] == document.title
        assert "\n".join(body["Abstract"]["AbstractText"]) == document.text
        assert [h["DescriptorName"] for h in citation.get("MeshHeadingList", [])] == list(document.fields["mesh"])
        published = body["Journal"]["JournalIssue"]["PubDate"]
        assert int(published["Year"]) == document.date.year
    with Entrez.esummary(db="pubmed", webenv=webenv, query_key=key, retstart=2, retmax=3) as handle:
        summaries = Entrez.read(handle)
    assert [s["Id"] for s in summaries] == [a["MedlineCitation"]["PMID"] for a in fetched[2:5]]
    assert [s["Title"] for s in summaries] == [corpus[s["Id"]].title for s in summaries]


def test_the_ctgov_emulator_answers_v2_studies(tmp_path_factory):
    from deepretrieval.search.boolean import TRIALS, BooleanIndex
    from deepretrieval.types import Document

    docs = [Document(f"NCT{i:08d}", "aspirin", "aspirin for stroke", {"conditions": ("Stroke",)}) for i in range(7)]
    emulator = Emulator("ctgov", BooleanIndex.build(docs, TRIALS))
    with serve_in_thread(create_app(emulator)) as running:
        url = f"{running.url}/api/v2/studies"
        first = httpx.get(url, params={"query.term": "aspirin", "pageSize": 5, "countTotal": "true"}).json()
        assert first["totalCount"] == 7 and len(first["studies"]) == 5
        assert first["studies"][0]["protocolSection"]["identificationModule"]["nctId"] == "NCT00000000"
        rest = httpx.get(url, params={"query.term": "aspirin", "pageSize": 5, "pageToken": first["nextPageToken"]})
        assert (
            len(rest.json()["studies"]) == 2 and "nextPageToken" not in rest.json() and "totalCount" not in rest.json()
        )
        for params in ({"filter.advanced": "AREA[Phase]PHASE3"}, {"pageToken": "nonsense"}, {"pageSize": "5000"}):
            reply = httpx.get(url, params={"query.term": "aspirin", **params})
            assert reply.status_code == 400 and "query.term" not in reply.text  # not the model's fault
        bad = httpx.get(url, params={"query.term": "(aspirin"})
        assert bad.status_code == 400 and "query.term" in bad.text


@pytest.fixture(scope="module")
def trials_server():
    from deepretrieval.search.boolean import TRIALS, BooleanIndex
    from deepretrieval.types import Document

    docs = [Document(f"NCT{i:08d}", "aspirin", "aspirin for stroke", {"conditions": ("Stroke",)}) for i in range(7)]
    with serve_in_thread(create_app(Emulator("ctgov", BooleanIndex.build(docs, TRIALS)))) as running:
        yield running


NESTED_TOKEN = base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode()  # JSON past the recursion limit


@pytest.mark.parametrize(
    ("service", "name", "value"),
    [
        ("pubmed", "retmax", "\u00b2"),  # '²': str.isdigit() says yes, int() says no
        ("pubmed", "retstart", "\u0663"),  # Arabic-Indic three: int() would read it as 3
        ("pubmed", "retmax", "9" * 5000),  # past int()'s 4,300 digits
        ("ctgov", "pageSize", "\u00b2"),
        ("ctgov", "pageSize", "9" * 5000),
        ("ctgov", "pageToken", NESTED_TOKEN),
        ("ctgov", "pageToken", NESTED_TOKEN[:200]),  # short, and still not a token this server gave
    ],
)
def test_malformed_numbers_and_page_tokens_are_a_400_naming_the_parameter(server, trials_server, service, name, value):
    if service == "pubmed":
        url, params = f"{server.url}/entrez/eutils/esearch.fcgi", {"db": "pubmed", "term": "aspirin", name: value}
        replies = [httpx.get(url, params=params), httpx.post(url, data=params)]  # the query string and a form
    else:
        url, params = f"{trials_server.url}/api/v2/studies", {"query.term": "aspirin", name: value}
        replies = [httpx.get(url, params=params)]
    for reply in replies:
        assert reply.status_code == 400, reply.text[:200]
        assert reply.text.startswith((f"Invalid {name}: ", f"{name}: ")) and len(reply.text) < 300


def test_well_formed_numbers_are_still_answered(server, trials_server):
    params = {"db": "pubmed", "term": "aspirin", "retmax": "0003", "retstart": "1", "retmode": "json"}
    result = httpx.get(f"{server.url}/entrez/eutils/esearch.fcgi", params=params).json()["esearchresult"]
    assert (result["retmax"], result["retstart"]) == ("3", "1")
    studies = httpx.get(f"{trials_server.url}/api/v2/studies", params={"query.term": "aspirin", "pageSize": "2"})
    assert studies.status_code == 200 and len(studies.json()["studies"]) == 2


def read_until_closed(connection: socket.socket) -> bytes:
    data = b""
    while chunk := connection.recv(4096):
        data += chunk
    return data


def test_a_body_shorter_than_its_content_length_is_answered_408_and_the_connection_closed(emulator):
    head = (
        "POST /entrez/eutils/esearch.fcgi HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n"
    )
    form = b"db=pubmed&term=aspirin&retmode=json"
    with serve_in_thread(create_app(emulator, body_timeout=0.5)) as running:
        with socket.create_connection(("127.0.0.1", running.port), timeout=15) as connection:
            connection.sendall(head.format(len(form) + 100).encode() + form)  # 100 bytes never come
            reply = read_until_closed(connection)  # b"" from recv: the server closed it (a hang times out)
        assert reply.startswith(b"HTTP/1.1 408 ") and b"connection: close" in reply.lower()
        assert b"did not arrive within 0.5 s" in reply
        with socket.create_connection(("127.0.0.1", running.port), timeout=15) as connection:
            complete = head.format(len(form)).replace("HTTP/1.1", "HTTP/1.0").encode() + form
            connection.sendall(complete)  # HTTP/1.0: the server closes after its reply
            whole = read_until_closed(connection)
        assert whole.startswith(b"HTTP/1.1 200 ") and b'"count": "' in whole
    with pytest.raises(DeepRetrievalError, match="body_timeout"):
        create_app(emulator, body_timeout=0)


FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_a_body_over_the_cap_is_answered_413_declared_or_streamed(emulator, monkeypatch):
    """A declared Content-Length over MAX_BODY_BYTES is refused before any body is read; a chunked body (no
    length declared) is refused once what arrived passes the cap; a body at the cap is still answered."""
    import deepretrieval.serve as serve

    monkeypatch.setattr(serve, "MAX_BODY_BYTES", 64)
    url_path = "/entrez/eutils/esearch.fcgi"
    with serve_in_thread(create_app(emulator, body_timeout=5)) as running:
        url = f"{running.url}{url_path}"
        form = "db=pubmed&term=aspirin&retmode=json"
        assert httpx.post(url, content=form + "&x=" + "y" * 100, headers=FORM).status_code == 413
        chunks = iter([form.encode(), b"&x=" + b"y" * 100])
        assert httpx.post(url, content=chunks, headers=FORM).status_code == 413  # chunked: no length
        at_cap = form + "&x=" + "y" * (64 - len(form) - 3)
        assert len(at_cap) == 64 and httpx.post(url, content=at_cap, headers=FORM).status_code == 200


# -- faults ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["429", "500", "503", "slow", "drop"])
def test_each_fault_is_injected_and_logged(emulator, kind):
    faulty = Emulator("pubmed", emulator.index, faults=Faults(1.0, (kind,), retry_after=2.0, slow_seconds=0.3))
    params = {"db": "pubmed", "term": "osteoarthritis", "retmode": "json", "api_key": "hidden"}
    with serve_in_thread(create_app(faulty)) as running:
        url = f"{running.url}/entrez/eutils/esearch.fcgi"
        start = time.monotonic()
        if kind == "drop":
            with pytest.raises(httpx.RemoteProtocolError):
                httpx.get(url, params=params)
        else:
            reply = httpx.get(url, params=params)
            expected = {"429": 429, "500": 500, "503": 503, "slow": 200}[kind]
            assert reply.status_code == expected
            if kind in ("429", "503"):
                assert reply.headers["Retry-After"] == "2"
            if kind == "429":
                assert reply.json()["error"] == "API rate limit exceeded"
            if kind == "slow":
                assert time.monotonic() - start >= 0.3 and "esearchresult" in reply.json()
    (record,) = faulty.log.records()
    assert record.fault == kind and record.status == (None if kind == "drop" else reply.status_code)
    assert record.params["api_key"] == ["<redacted>"] and record.params["term"] == ["osteoarthritis"]


def test_the_emulator_can_enforce_ncbis_rate_limit(emulator):
    limited = Emulator("pubmed", emulator.index, rate_limit=2)
    with serve_in_thread(create_app(limited)) as running:
        url = f"{running.url}/entrez/eutils/esearch.fcgi"
        codes = [httpx.get(url, params={"db": "pubmed", "term": "knee"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert [r.fault for r in limited.log.records()] == [None, None, "rate_limit"]


# -- the literature task over HTTP -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_run(collection, server, emulator, tmp_path_factory):
    """A fault-free evaluation through the emulator, caching its results."""
    folder = tmp_path_factory.mktemp("clean")
    emulator.log.clear()
    with client(server.url, cache=str(folder / "cache.sqlite")) as backend:
        figures = run_eval(collection, backend, folder / "eval")
    return folder, figures, len(emulator.log.records())


def test_the_evaluation_through_the_emulator_equals_the_offline_engines(collection, emulator, clean_run, tmp_path):
    _, figures, requests = clean_run
    offline = run_eval(collection, emulator.index, tmp_path / "offline")
    assert figures == offline and requests > 0
    assert figures["oracle"]["metrics"]["recall@100"] == pytest.approx(1.0)


def test_a_faulty_service_changes_nothing_and_every_request_is_answered_or_reported(
    collection, emulator, clean_run, tmp_path
):
    """30% of requests fail (429, 500, 503, too slow for the client's timeout, dropped mid-reply)."""
    faults = Faults(0.3, ("429", "500", "503", "slow", "drop"), retry_after=0.05, slow_seconds=1.5, seed=7)
    faulty = Emulator("pubmed", emulator.index, faults=faults)
    with serve_in_thread(create_app(faulty)) as running, client(running.url, timeout=1.0, retries=15) as backend:
        figures = run_eval(collection, backend, tmp_path / "faulty")
        stats = backend.stats()
    assert figures == clean_run[1]
    records = faulty.log.records()
    faulted = [r for r in records if r.fault is not None]
    assert 0.15 < len(faulted) / len(records) < 0.45
    assert stats.failures == 0 and stats.requests == len(records)  # every request sent arrived and was logged
    assert stats.answered + sum(stats.retried.values()) == stats.requests  # each answered, or retried and logged
    assert sum(stats.retried.values()) >= len(faulted)
    assert {r.fault for r in faulted} == {"429", "500", "503", "slow", "drop"}
    seen_as = {"HTTP 429", "HTTP 500", "HTTP 503", "ReadTimeout", "RemoteProtocolError"}
    assert seen_as <= set(stats.retried), stats.retried


def test_a_second_identical_evaluation_sends_no_request(collection, server, emulator, clean_run, tmp_path):
    folder, figures, requests = clean_run
    before = len(emulator.log.records())
    assert before >= requests
    with client(server.url, cache=str(folder / "cache.sqlite")) as backend:
        again = run_eval(collection, backend, tmp_path / "again")
        assert backend.stats().requests == 0 and backend.stats().cache_hits > 0
    assert len(emulator.log.records()) == before and again == figures


def test_a_search_that_keeps_failing_is_an_unscorable_sample_never_a_reward(collection, emulator):
    broken = Emulator("pubmed", emulator.index, faults=Faults(1.0, ("500", "503"), retry_after=0.0))
    examples = collection.split("train")[:2]
    config = replace(TASK.presets["deepretrieval-recall"], k=100)
    completions = [f"{examples[0].meta['oracle_query']}</answer>", "(aspirin OR</answer>", "no answer at all"]
    with serve_in_thread(create_app(broken)) as running, client(running.url, retries=1) as backend:
        reward = TaskReward(TASK, backend, examples, config, DIRECT)  # the client retries; the reward does not
        results = reward.score_batch(completions, [examples[0].id] * 3)
        assert [r.total for r in results] == [None, None, None]
        assert all(r.failure and "search failed" in r.failure for r in results)
        assert reward.failures_total == 3
        reward.score_batch(completions, [examples[0].id] * 3)
        with pytest.raises(SearchFailure, match="kept failing for 3 batches"):
            reward.score_batch(completions, [examples[0].id] * 3)


# -- the command line --------------------------------------------------------------------------------------


def test_serve_emulator_refuses_an_unknown_service():
    result = CliRunner().invoke(app, ["serve", "emulator", "scopus", "--data", "literature-demo"])
    assert result.exit_code == 2 and "no emulator for 'scopus'" in result.output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_emulator_serves_esearch_on_loopback(tmp_path):
    port, log = free_port(), tmp_path / "requests.jsonl"
    command = [str(Path(sys.executable).with_name("deepretrieval")), "serve", "emulator", "pubmed"]
    options = ["--data", "literature-demo", "--port", str(port), "--index", str(tmp_path / "index"), "--log", str(log)]
    process = subprocess.Popen([*command, *options], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline, reply = time.monotonic() + 90, None
        while reply is None:
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "the emulator did not start"
            try:
                reply = httpx.get(
                    f"http://127.0.0.1:{port}/entrez/eutils/esearch.fcgi",
                    params={"db": "pubmed", "term": "knee", "retmode": "json"},
                )
            except httpx.TransportError:
                time.sleep(0.2)
        assert int(reply.json()["esearchresult"]["count"]) > 0
        assert json.loads(log.read_text().splitlines()[0])["params"]["term"] == ["knee"]
    finally:
        process.terminate()
        process.wait(timeout=20)


# -- training ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_grpo_trains_on_the_literature_task_through_the_emulator_over_http(emulator, tmp_path, monkeypatch):
    """Two GRPO steps of the tiny random model with the PubMed backend, against an emulator on 127.0.0.1 that
    fails a fifth of its requests. The reward reads out-of-format completions leniently, so that the random
    model's text is searched (over HTTP) rather than only penalised."""
    from deepretrieval.runs import read_log
    from deepretrieval.tasks import literature
    from deepretrieval.train import train

    lenient = replace(literature.PRESETS["deepretrieval-recall"], require_format=False)
    monkeypatch.setitem(literature.PRESETS, "http-test-lenient", lenient)
    faults = Faults(0.2, ("429", "500", "503", "drop"), retry_after=0.01, seed=3)
    served = Emulator("pubmed", emulator.index, faults=faults)
    with serve_in_thread(create_app(served)) as running:
        backend = {"kind": "pubmed", "base_url": f"{running.url}/entrez/eutils", "rate": 200, "cache": False}
        backend |= {"backoff": 0.01, "max_backoff": 0.05, "retries": 12}
        recipe = tiny_literature_recipe(tmp_path / "run", backend=backend, reward="http-test-lenient")
        result = train(recipe)
    assert result.steps == 2
    log = [r for r in read_log(result.log_path) if "reward" in r]
    assert [r["step"] for r in log] == [1, 2]
    assert all(r["literature/failures"] == 0 for r in log)  # faults were retried: no sample went unscored
    searched = [r for r in served.log.records() if r.status == 200]
    assert searched and all(r.path == "/entrez/eutils/esearch.fcgi" for r in searched)
    policy = json.loads((result.final_dir / "policy.json").read_text())
    assert (policy["task"], policy["backend"]) == ("literature", backend)


def test_serve_emulator_passes_its_body_timeout_to_the_server(monkeypatch):
    import deepretrieval.serve as serve

    seen = {}
    monkeypatch.setattr(serve, "build_emulator", lambda *a, **k: "emulator")
    monkeypatch.setattr(serve, "run", lambda emulator, host, port, **k: seen.update(k, emulator=emulator))
    result = CliRunner().invoke(app, ["serve", "emulator", "pubmed", "--data", "x", "--body-timeout", "2.5"])
    assert result.exit_code == 0, result.output
    assert seen == {"emulator": "emulator", "body_timeout": 2.5}
    default = CliRunner().invoke(app, ["serve", "emulator", "pubmed", "--data", "x"])
    assert default.exit_code == 0 and seen["body_timeout"] == serve.BODY_TIMEOUT
