"""The search service (``deepretrieval serve search``) and its client, the ``remote`` backend kind.

Every server is uvicorn on 127.0.0.1 (a free port), started and stopped by the test; the collections are the
generated ones (``demo``: BM25; ``literature-demo``: the Boolean engine). Expected values come from
somewhere else than the code under test: a backend built separately in the test, the collection's own
documents, Search-R1's published shapes."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from deepretrieval.cli import app
from deepretrieval.data import load_collection
from deepretrieval.errors import DeepRetrievalError, SearchFailure
from deepretrieval.prompts import PromptSettings
from deepretrieval.search.base import BooleanRequest
from deepretrieval.search.bm25 import BM25Searcher
from deepretrieval.search.http import Secret
from deepretrieval.search.pubmed_syntax import QuerySyntaxError
from deepretrieval.search.remote import RemoteBooleanSearcher, RemoteTextSearcher, open_remote
from deepretrieval.serve import serve_in_thread
from deepretrieval.service import Service, ServiceConfig, build_service, create_app
from deepretrieval.tasks import TaskReward, get_task
from deepretrieval.types import Ranking

TOKEN = "correct-horse-battery-staple"
FAST = {"backoff": 0.0, "max_backoff": 0.0, "timeout": 10, "retries": 1}
QUERIES = ["heart attack treatment", "blood pressure medicine", "kidney stones", "diabetes insulin", "bleeding gums"]


@pytest.fixture(autouse=True)
def _no_service_token(monkeypatch):
    monkeypatch.delenv("DEEPRETRIEVAL_SERVICE_TOKEN", raising=False)


@pytest.fixture(scope="module")
def text_service(tmp_path_factory) -> Service:
    return build_service(ServiceConfig(data="demo", index=str(tmp_path_factory.mktemp("bm25") / "index")))


@pytest.fixture(scope="module")
def boolean_service(tmp_path_factory) -> Service:
    folder = tmp_path_factory.mktemp("boolean") / "index"
    return build_service(ServiceConfig(data="literature-demo", task="literature", index=str(folder)))


@pytest.fixture(scope="module")
def demo():
    return load_collection("demo")


@pytest.fixture(scope="module")
def independent_bm25(demo) -> BM25Searcher:
    """A BM25 index built here, apart from the service's: the expected rankings."""
    return BM25Searcher.build(demo.documents)


@pytest.fixture(scope="module")
def text_url(text_service):
    with serve_in_thread(create_app(text_service)) as running:
        yield running.url


@pytest.fixture(scope="module")
def boolean_url(boolean_service):
    with serve_in_thread(create_app(boolean_service)) as running:
        yield running.url


def remote(url: str, **spec):
    return open_remote({"kind": "remote", "url": url, **FAST, **spec})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- Search-R1's /retrieve ------------------------------------------------------------------------------------


def test_retrieve_with_scores_is_search_r1s_shape_and_a_null_topk_is_three(text_url, demo, independent_bm25):
    reply = httpx.post(f"{text_url}/retrieve", json={"queries": QUERIES[:2], "topk": None, "return_scores": True})
    assert reply.status_code == 200
    body = reply.json()
    assert list(body) == ["result"] and len(body["result"]) == 2
    documents = {d.id: d for d in demo.documents}
    for query, hits in zip(QUERIES[:2], body["result"], strict=True):
        expected = independent_bm25.search([query], 3)[0]
        assert len(hits) == 3  # Search-R1's retrieval_server.py: --topk 3
        assert all(set(hit) == {"document", "score"} and set(hit["document"]) == {"id", "contents"} for hit in hits)
        assert [hit["document"]["id"] for hit in hits] == expected.ids
        assert [hit["score"] for hit in hits] == pytest.approx(expected.scores, rel=1e-6)
        for hit in hits:
            document = documents[hit["document"]["id"]]
            assert hit["document"]["contents"] == f'"{document.title}"\n{document.text}'


def test_retrieve_without_scores_gives_bare_documents(text_url, independent_bm25):
    reply = httpx.post(f"{text_url}/retrieve", json={"queries": QUERIES[:3], "topk": 5, "return_scores": False})
    assert reply.status_code == 200
    result = reply.json()["result"]
    assert [len(hits) for hits in result] == [5, 5, 5]
    assert all(set(hit) == {"id", "contents"} for hits in result for hit in hits)
    expected = independent_bm25.search(QUERIES[:3], 5)
    assert [[hit["id"] for hit in hits] for hits in result] == [r.ids for r in expected]
    # return_scores and topk may be left out (Search-R1's defaults: no scores, the configured depth); topk 0 is
    # read as Search-R1 reads it (``if not request.topk``): the default.
    for body in ({"queries": ["bleeding gums"]}, {"queries": ["bleeding gums"], "topk": 0}):
        (hits,) = httpx.post(f"{text_url}/retrieve", json=body).json()["result"]
        assert [hit["id"] for hit in hits] == independent_bm25.search(["bleeding gums"], 3)[0].ids


# -- /search ----------------------------------------------------------------------------------------------------


def test_search_gives_the_rankings_of_an_independently_built_index(text_url, text_service, independent_bm25):
    reply = httpx.post(f"{text_url}/search", json={"queries": QUERIES, "k": 20})
    assert reply.status_code == 200
    body = reply.json()
    assert body["protocol"] == "text" and body["queries"] == len(QUERIES) and body["errors"] == 0
    assert body["backend"]["corpus_sha256"] == independent_bm25.corpus_sha
    expected = independent_bm25.search(QUERIES, 20)
    assert [r["ids"] for r in body["results"]] == [r.ids for r in expected]
    assert all(r["ids"] for r in body["results"]) and max(len(r["ids"]) for r in body["results"]) == 20
    assert [r["scores"] for r in body["results"]] == [pytest.approx(r.scores, rel=1e-6) for r in expected]
    assert all("total" not in r for r in body["results"])  # BM25 does not count its matches
    health = httpx.get(f"{text_url}/health").json()
    assert health["protocol"] == "text" and health["documents"] == len(text_service.documents)
    assert health["limits"]["max_batch"] == 256 and health["retrieve_topk"] == 3


def test_a_boolean_search_takes_date_windows_and_returns_syntax_verdicts_in_their_slots(boolean_url, boolean_service):
    late = {"query": "aspirin", "mindate": "2015-01-01", "maxdate": None}
    early = {"query": "aspirin", "mindate": None, "maxdate": "2014-12-31"}
    body = {"queries": ["aspirin", late, early, "(aspirin OR"], "k": 500}
    reply = httpx.post(f"{boolean_url}/search", json=body)
    assert reply.status_code == 200  # a bad query is its writer's fault, not the server's
    results = reply.json()["results"]
    everything, after, before, broken = results
    assert reply.json()["errors"] == 1 and set(broken) == {"error", "position"} and "never closed" in broken["error"]
    # The two windows split the matches: none in both, all of them between them.
    assert everything["total"] == after["total"] + before["total"] and after["total"] > 0 and before["total"] > 0
    assert not set(after["ids"]) & set(before["ids"])
    assert set(after["ids"]) | set(before["ids"]) == set(everything["ids"])
    dates = {d.id: d.date for d in load_collection("literature-demo").documents}
    assert all(dates[i] >= datetime.date(2015, 1, 1) for i in after["ids"] if dates[i] is not None)
    assert all(dates[i] <= datetime.date(2014, 12, 31) for i in before["ids"] if dates[i] is not None)


# -- the bearer token and the limits ----------------------------------------------------------------------------


def test_a_token_is_asked_for_and_compared(text_service, caplog):
    with caplog.at_level(logging.DEBUG), serve_in_thread(create_app(text_service, Secret(TOKEN))) as running:
        body = {"queries": ["bleeding gums"], "k": 3}
        assert httpx.post(f"{running.url}/search", json=body).status_code == 401
        for wrong in (f"Bearer {TOKEN}x", "Bearer", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN[:-1]}"):
            refused = httpx.post(f"{running.url}/search", json=body, headers={"Authorization": wrong})
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert httpx.get(f"{running.url}/health").status_code == 401
        right = httpx.post(f"{running.url}/search", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200 and len(right.json()["results"][0]["ids"]) == 3
        assert httpx.get(f"{running.url}/openapi.json").status_code == 200  # the docs are public
        with pytest.raises(SearchFailure, match=r"HTTP 401 \(missing or wrong bearer token\).*backend.token_file"):
            remote(running.url)
        os.environ["DEEPRETRIEVAL_SERVICE_TOKEN"] = TOKEN  # the fixture removes it again
        client = remote(running.url)
        assert client.search(["bleeding gums"], 3)[0].ids == right.json()["results"][0]["ids"]
        assert TOKEN not in repr(client.settings) and TOKEN not in json.dumps(client.describe())
    assert TOKEN not in caplog.text


def test_limits_are_refused_with_a_message_naming_them(text_service, demo):
    config = ServiceConfig(data="demo", max_batch=4, max_k=50, max_body_bytes=2_000)
    limited = Service(text_service.task, text_service.backend, demo.documents, config)
    with serve_in_thread(create_app(limited)) as running:
        url = running.url
        big = httpx.post(f"{url}/search", json={"queries": ["x" * 2_500], "k": 3})
        assert big.status_code == 413 and "limited to 2000 bytes" in big.text
        many = httpx.post(f"{url}/search", json={"queries": ["a", "b", "c", "d", "e"], "k": 3})
        assert many.status_code == 422 and many.json()["detail"].startswith("5 queries in one request")
        deep = httpx.post(f"{url}/search", json={"queries": ["a"], "k": 51})
        assert deep.status_code == 422 and deep.json()["detail"] == "k 51 is over this service's limit of 50"
        topk = httpx.post(f"{url}/retrieve", json={"queries": ["a"], "topk": 51})
        assert topk.status_code == 422 and "topk 51" in topk.json()["detail"]
        counts = httpx.post(f"{url}/doc_term_counts", json={"ids": ["1", "2", "3", "4", "5"]})
        assert counts.status_code == 422 and "5 document ids" in counts.json()["detail"]
        dated = httpx.post(f"{url}/search", json={"queries": [{"query": "a", "maxdate": "2020-01-01"}]})
        assert dated.status_code == 422 and "text backend" in dated.json()["detail"]
        assert httpx.post(f"{url}/search", json={"queries": ["a"], "k": 3}).status_code == 200
        # The client sends what the service takes: 9 distinct queries in chunks of at most 4.
        client = remote(url, batch_size=64)
        queries = [f"query {i}" for i in range(9)] + ["query 0"]
        assert [r.ids for r in client.search(queries, 5)] == [r.ids for r in text_service.backend.search(queries, 5)]
        assert client.stats()["requests"] == 3 and client.stats()["deduplicated"] == 1


class Broken:
    """A text backend whose index is gone: every search is an infrastructure failure."""

    def search(self, queries, k):
        raise SearchFailure("the index at /gone is unreadable")

    def search_weighted(self, weights, k):
        raise DeepRetrievalError("this backend has no term statistics: use kind bm25")

    analyze = analyze_many = doc_term_counts = search_weighted

    def describe(self):
        return {"backend": "broken"}


def test_an_infrastructure_failure_is_a_503_with_its_message_never_an_empty_ranking(demo):
    service = Service(get_task("retrieval"), Broken(), demo.documents, ServiceConfig(data="demo"))
    with serve_in_thread(create_app(service)) as running:
        reply = httpx.post(f"{running.url}/search", json={"queries": ["bleeding gums"], "k": 3})
        assert reply.status_code == 503 and reply.json() == {"detail": "the index at /gone is unreadable"}
        assert httpx.post(f"{running.url}/retrieve", json={"queries": ["bleeding gums"]}).status_code == 503
        stats = httpx.post(f"{running.url}/search_weighted", json={"weights": [{"a": 1.0}], "k": 3})
        assert stats.status_code == 400 and "no term statistics" in stats.json()["detail"]
        client = remote(running.url, retries=2)
        with pytest.raises(SearchFailure, match=r"after 3 attempts \(HTTP 503 \(the index at /gone is unreadable\)\)"):
            client.search(["bleeding gums"], 3)
        with pytest.raises(SearchFailure, match=r"HTTP 400 \(this backend has no term statistics"):
            client.search_weighted([{"a": 1.0}], 3)


# -- the remote backend ------------------------------------------------------------------------------------------


def test_remote_bm25_ranks_as_the_local_index_and_answers_rm3s_questions(text_url, independent_bm25):
    client = remote(text_url)
    assert isinstance(client, RemoteTextSearcher)
    assert client.describe()["served"]["corpus_sha256"] == independent_bm25.corpus_sha
    queries = [*QUERIES, QUERIES[0]]
    expected = independent_bm25.search(queries, 100)
    got = client.search(queries, 100)
    assert [r.ids for r in got] == [r.ids for r in expected]
    assert [r.scores for r in got] == [pytest.approx(r.scores, rel=1e-6) for r in expected]
    assert client.stats()["requests"] == 1 and client.stats()["deduplicated"] == 1  # one request for the batch
    weights = [{"heart": 0.7, "attack": 0.3}, {"kidnei": 1.0}]
    assert [r.ids for r in client.search_weighted(weights, 10)] == [
        r.ids for r in independent_bm25.search_weighted(weights, 10)
    ]
    text = "The kidneys and their stones, zyzzyva"
    assert client.analyze(text) == independent_bm25.analyze(text)
    assert client.analyze_many([text, "heart"]) == independent_bm25.analyze_many([text, "heart"])
    doc = expected[0].ids[0]
    assert client.doc_term_counts(doc) == independent_bm25.doc_term_counts(doc)


def test_prf_runs_remotely_as_it_runs_locally(text_url, independent_bm25, demo):
    """RM3 (first pass, feedback documents' term counts, weighted search) through the service."""
    from deepretrieval.tasks.retrieval import PRFPolicy

    examples = demo.split("test")[:6]
    remote_queries = [o.action for o in PRFPolicy(remote(text_url)).generate(examples)]
    local_queries = [o.action for o in PRFPolicy(independent_bm25).generate(examples)]
    assert remote_queries == local_queries


def test_an_evaluation_through_the_service_measures_what_a_local_one_does(text_url, independent_bm25, demo, tmp_path):
    from deepretrieval.evaluate import EvalSettings, evaluate
    from deepretrieval.policies import OriginalPolicy

    def measured(backend, folder):
        (result,) = evaluate(demo, "test", [OriginalPolicy()], backend, folder, EvalSettings(batch_size=16))
        return {k: v for k, v in result.metrics.items() if isinstance(v, float)}

    local = measured(independent_bm25, tmp_path / "local")
    assert measured(remote(text_url), tmp_path / "remote") == local
    assert local["ndcg@10"] > 0


def test_remote_boolean_engine_ranks_as_the_local_engine(boolean_url, boolean_service):
    client = remote(boolean_url)
    assert isinstance(client, RemoteBooleanSearcher)
    requests = [
        BooleanRequest("aspirin"),
        BooleanRequest("aspirin", maxdate=datetime.date(2014, 12, 31)),
        BooleanRequest('"myocardial infarction"[tiab] AND statin*', mindate=datetime.date(2010, 1, 1)),
        BooleanRequest("(aspirin OR"),
        "stroke",
    ]
    local = boolean_service.backend.search(
        [r if isinstance(r, BooleanRequest) else BooleanRequest(r) for r in requests], 300
    )
    got = client.search(requests, 300)
    for mine, theirs in zip(got, local, strict=True):
        if isinstance(theirs, QuerySyntaxError):
            assert isinstance(mine, QuerySyntaxError) and (mine.message, mine.position) == (
                theirs.message,
                theirs.position,
            )
        else:
            assert isinstance(mine, Ranking) and (mine.ids, mine.total) == (theirs.ids, theirs.total)
    assert sum(len(r) for r in got if isinstance(r, Ranking)) > 0


def test_a_text_client_of_a_boolean_service_says_so(boolean_url):
    client = remote(boolean_url)
    text = RemoteTextSearcher(client.settings, health=client.health)
    with pytest.raises(DeepRetrievalError, match="serves a text backend: it searches query strings"):
        text.search([BooleanRequest("aspirin")], 3)


def test_a_reward_batch_scores_the_same_through_the_service(text_url, independent_bm25, demo):
    task = get_task("retrieval")
    settings = PromptSettings(variant="direct", mode="rewrite", context_docs=0)
    examples = demo.split("train")[:4]
    config = task.presets["recall"]
    completions = [f'{e.question.split()[0]} {w}"}}</answer>' for e in examples for w in ("heart", "risk", "care", "")]
    ids = [e.id for e in examples for _ in range(4)]
    local = TaskReward(task, independent_bm25, examples, config, settings).score_batch(completions, ids)
    client = remote(text_url)
    through = TaskReward(task, client, examples, config, settings).score_batch(completions, ids)
    assert [r.total for r in through] == [r.total for r in local]
    assert [r.reason for r in through] == [r.reason for r in local]
    assert any(r.total and r.total > 0 for r in local) and all(r.failure is None for r in through)
    assert any(r.reason == "empty_query" for r in local)  # the empty answers: nothing searched for them
    # The whole batch: one request analysing every answer (is there anything to search?), one searching.
    assert client.stats()["requests"] == 2


# -- training through the service, the service killed and back ---------------------------------------------------


@pytest.mark.slow
def test_a_killed_service_leaves_samples_unscored_stops_training_and_resumes_once_back(
    boolean_service, tmp_path, monkeypatch
):
    """Step 1 is scored through the service; then the service is stopped: steps 2 and 3 are unscored (their
    samples' rewards None, counted as failures, no metric), step 4 stops the run with SearchFailure; with the
    service back on its port, the run resumes from its last checkpoint and scores steps 4 and 5. The reward
    reads out-of-format completions leniently, so that the random model's text is searched."""
    from deepretrieval.runs import LOG_FILE, last_checkpoint, read_log
    from deepretrieval.tasks import literature
    from deepretrieval.train import train

    from .conftest import tiny_recipe

    lenient = dataclasses.replace(literature.PRESETS["deepretrieval-recall"], require_format=False)
    monkeypatch.setitem(literature.PRESETS, "service-test-lenient", lenient)
    port = free_port()
    spec = {"kind": "remote", "url": f"http://127.0.0.1:{port}", **FAST}
    recipe = tiny_recipe(
        tmp_path / "run", backend=spec, reward="service-test-lenient", max_steps=5, save_steps=1, eval_steps=0
    )
    server = serve_in_thread(create_app(boolean_service), port=port)

    class StopsTheServiceOnItsSecondBatch(RemoteBooleanSearcher):
        calls = 0

        def search(self, requests, k):
            type(self).calls += 1
            if type(self).calls == 2:
                server.stop()
            return super().search(requests, k)

    first = open_remote(spec)
    backend = StopsTheServiceOnItsSecondBatch(first.settings, health=first.health)
    try:
        with pytest.raises(SearchFailure, match="kept failing for 3 batches"):
            train(recipe, backend=backend)
    finally:
        server.stop()
    log = {r["step"]: r for r in read_log(tmp_path / "run" / LOG_FILE) if "reward" in r}
    assert sorted(log) == [1, 2, 3]
    assert log[1]["literature/failures"] == 0 and "literature/metric" in log[1]
    for step in (2, 3):
        assert log[step]["literature/failures"] == 8 and "literature/metric" not in log[step]  # None, never 0
    assert last_checkpoint(tmp_path / "run").name == "checkpoint-3"

    with serve_in_thread(create_app(boolean_service), port=port):
        result = train(recipe, resume=True)  # the recipe's own backend: kind remote, built by the registry
    assert result.steps == 5
    log = {r["step"]: r for r in read_log(result.log_path) if "reward" in r}
    assert sorted(log) == [1, 2, 3, 4, 5]
    assert all(log[step]["literature/failures"] == 0 and "literature/metric" in log[step] for step in (4, 5))
    policy = json.loads((result.final_dir / "policy.json").read_text())
    assert policy["backend"]["kind"] == "remote" and policy["backend"]["base_url"] == spec["url"]


# -- the command line ----------------------------------------------------------------------------------------------


def test_serve_search_refuses_a_backend_the_task_has_not():
    result = CliRunner().invoke(app, ["serve", "search", "--data", "demo", "--backend-spec", "{kind: pubmed}"])
    assert result.exit_code == 2 and "the retrieval task has no backend 'pubmed'" in result.output
    result = CliRunner().invoke(app, ["serve", "search", "--data", "demo", "--token-file", "/nonexistent/token"])
    assert result.exit_code == 2 and "--token-file: cannot read /nonexistent/token" in result.output


@pytest.mark.slow
def test_serve_search_with_two_workers_and_a_token_file(tmp_path, independent_bm25):
    """The command as a user runs it: two worker processes (each building its service from the environment),
    a token file, a backend spec file; a remote client's rankings are the local index's."""
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    spec_file = tmp_path / "backend.yaml"
    spec_file.write_text("kind: bm25\nk1: 0.9\n")
    port = free_port()
    command = [sys.executable, "-c", "from deepretrieval.cli import main; main()"]
    command += ["serve", "search", "--data", "demo", "--port", str(port)]
    command += ["--workers", "2", "--token-file", str(token_file), "--backend-spec", str(spec_file)]
    command += ["--index", str(tmp_path / "index")]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with (tmp_path / "server.out").open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=environment, start_new_session=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "server.out").read_text()[-2000:]
            assert time.monotonic() < deadline, "the service did not start in 120 s"
            try:
                if httpx.get(f"{url}/health", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        client = remote(url, token_file=str(token_file), concurrency=4, batch_size=2)
        queries = QUERIES * 2 + ["liver", "lung", "bone"]
        assert [r.ids for r in client.search(queries, 10)] == [r.ids for r in independent_bm25.search(queries, 10)]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert TOKEN not in (tmp_path / "server.out").read_text()


def test_the_served_spec_is_the_recipe_section(tmp_path):
    config = ServiceConfig(data="demo", backend={"kind": "bm25", "k1": 1.2}, index=str(tmp_path), token_file="t")
    assert ServiceConfig.from_json(config.to_json()) == config
    assert "token" not in json.loads(config.to_json()).get("backend", {})
    assert Path(json.loads(config.to_json())["token_file"]) == Path("t")  # a path, never the token
