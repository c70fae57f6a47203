"""The one resilience layer: retries with jittered back-off honouring Retry-After, failure accounting, and
exactly one layer retrying a call (a persistent outage costs the configured attempts, never their square)."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import httpx
import pytest

from deepretrieval.data import load_collection
from deepretrieval.errors import DeepRetrievalError, EndpointFailure, SearchFailure
from deepretrieval.policies.llm import OpenAIPolicy
from deepretrieval.prompts import PromptSettings
from deepretrieval.search.pubmed import PubMedSearcher, PubMedSettings
from deepretrieval.search.resilience import (
    Fault,
    Retrier,
    RetryPolicy,
    ServiceFault,
    backoff_delay,
    retries_itself,
)
from deepretrieval.tasks import TaskReward, get_task

TASK = get_task("literature")
DIRECT = PromptSettings(variant="direct", mode="rewrite", context_docs=0)
NO_CONTEXT = PromptSettings(mode="rewrite", context_docs=0)


@pytest.fixture(autouse=True)
def _no_ncbi_environment(monkeypatch):
    for name in ("NCBI_API_KEY", "NCBI_EMAIL", "NCBI_TOOL"):
        monkeypatch.delenv(name, raising=False)


class Script:
    """A call that fails with ``faults`` in turn (None: succeed), counting its attempts."""

    def __init__(self, *faults: Exception | None) -> None:
        self.faults, self.attempts = list(faults), 0

    def __call__(self) -> str:
        self.attempts += 1
        fault = self.faults[min(self.attempts, len(self.faults)) - 1]
        if fault is not None:
            raise fault
        return "ok"


def retrier(attempts: int, waits: list[float], **policy) -> Retrier:
    return Retrier(RetryPolicy(attempts=attempts, **policy), name="svc", failure=SearchFailure, sleep=waits.append)


# -- the retrier on its own --------------------------------------------------------------------------------


def test_a_persistent_fault_costs_exactly_the_attempts_then_raises_the_callers_error():
    waits: list[float] = []
    call, retry = Script(ServiceFault("HTTP 503")), retrier(4, waits, backoff=1.0, max_backoff=30.0)
    with pytest.raises(SearchFailure, match=r"^svc: no usable reply from http://x after 4 attempts \(HTTP 503\)$"):
        retry.call(call, where="http://x")
    assert call.attempts == 4 and len(waits) == 3  # no wait after the last attempt
    counts, retried = retry.counts()
    assert (counts["attempts"], counts["answered"], counts["failures"]) == (4, 0, 1)
    assert retried == {"HTTP 503": 4}


def test_the_waits_are_the_seeded_jittered_backoff_and_a_transient_fault_is_recovered():
    waits: list[float] = []
    retry = Retrier(
        RetryPolicy(attempts=5, backoff=1.0, max_backoff=3.0),
        name="svc",
        failure=SearchFailure,
        sleep=waits.append,
        seed=11,
    )
    call = Script(ServiceFault("a"), ServiceFault("b"), ServiceFault("c"), None)
    assert retry.call(call) == "ok" and call.attempts == 4
    rng = random.Random(11)
    assert waits == [backoff_delay(n, 1.0, 3.0, rng) for n in range(3)]
    # ceilings 1, 2, 3 (capped): each wait between half the ceiling and the ceiling
    for wait, ceiling in zip(waits, (1.0, 2.0, 3.0), strict=True):
        assert ceiling / 2 <= wait <= ceiling
    counts, retried = retry.counts()
    assert counts["attempts"] == counts["answered"] + sum(retried.values()) == 4


def test_retry_after_is_honoured_when_longer_than_the_backoff_and_refused_over_max_wait():
    waits: list[float] = []
    retry = retrier(3, waits, backoff=0.1, max_backoff=0.1, max_wait=10.0)
    assert retry.call(Script(ServiceFault("HTTP 429", retry_after=7.0), None)) == "ok"
    assert waits == [7.0]
    waits.clear()
    call = Script(ServiceFault("HTTP 503", retry_after=60.0), None)
    with pytest.raises(
        SearchFailure, match=r"asked to wait 60 s \(HTTP 503\), more than the 10 s allowed \(max_wait\)"
    ):
        retry.call(call)
    assert call.attempts == 1 and waits == []


def test_an_error_that_is_not_transient_propagates_at_once_unretried():
    waits: list[float] = []
    retry, call = retrier(5, waits), Script(DeepRetrievalError("HTTP 404: check backend.base_url"))
    with pytest.raises(DeepRetrievalError, match="404"):
        retry.call(call)
    assert call.attempts == 1 and waits == []
    custom = Retrier(RetryPolicy(attempts=2), name="x", failure=EndpointFailure, classify=lambda e: Fault("boom"))
    with pytest.raises(EndpointFailure, match="after 2 attempts"):
        custom.call(Script(ValueError("anything")))


def test_the_policy_refuses_no_attempt():
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        RetryPolicy(attempts=0)


# -- the reward path: one layer retries -----------------------------------------------------------------------


def always(status: int, headers: dict[str, str] | None = None):
    """A mock transport answering every request ``status``, and the list of requests it saw."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, headers=headers or {})

    return httpx.MockTransport(handle), seen


def outage_searcher(retries: int) -> tuple[PubMedSearcher, list[httpx.Request]]:
    transport, seen = always(503)
    spec = {"kind": "pubmed", "base_url": "http://127.0.0.1:9/entrez/eutils", "rate": 10_000, "retries": retries}
    settings = PubMedSettings.from_spec({**spec, "backoff": 0.0, "max_backoff": 0.0, "cache": False}, environ={})
    return PubMedSearcher(settings, transport=transport), seen


def test_a_persistent_outage_through_the_reward_costs_the_configured_attempts_not_their_square():
    collection = load_collection("literature-demo")
    example = collection.split("train")[0]
    config = replace(TASK.presets["deepretrieval-recall"], k=100)
    backend, seen = outage_searcher(retries=3)  # 4 attempts per search
    assert retries_itself(backend)
    # The reward's own retries (2 by default) would stack on the searcher's: they must not apply.
    reward = TaskReward(TASK, backend, [example], config, DIRECT, retries=2, max_failed_batches=3)
    assert reward.retrier is None
    completion = [f"{example.meta['oracle_query']}</answer>"]
    (result,) = reward.score_batch(completion, [example.id])
    assert result.total is None and "after 4 attempts (HTTP 503)" in result.failure  # a failure, never a reward
    assert len(seen) == 4  # the configured attempts, not 4 x 3
    reward.score_batch(completion, [example.id])
    with pytest.raises(SearchFailure, match="kept failing for 3 batches"):
        reward.score_batch(completion, [example.id])
    assert len(seen) == 3 * 4  # three batches, each the configured attempts
    stats = backend.stats()
    assert stats.requests == 12 and stats.answered == 0 and stats.retried == {"HTTP 503": 12}


class Unreachable:
    """A backend with no retries of its own that always fails, counting calls."""

    def __init__(self) -> None:
        self.calls = 0

    def search(self, requests, k):
        self.calls += 1
        raise SearchFailure("index unreachable")


def test_a_backend_that_does_not_retry_is_retried_by_the_reward_alone():
    collection = load_collection("literature-demo")
    example = collection.split("train")[0]
    config = replace(TASK.presets["deepretrieval-recall"], k=100)
    backend, waits = Unreachable(), []
    reward = TaskReward(TASK, backend, [example], config, DIRECT, retries=2, backoff_seconds=0.5, sleep=waits.append)
    assert not retries_itself(backend) and reward.retrier is not None
    (result,) = reward.score_batch([f"{example.meta['oracle_query']}</answer>"], [example.id])
    assert backend.calls == 3 and result.total is None and "index unreachable" in result.failure
    assert len(waits) == 2 and 0.25 <= waits[0] <= 0.5 and 0.5 <= waits[1] <= 1.0  # jittered, doubling


# -- the OpenAI policy ---------------------------------------------------------------------------------------


def chat(replies):
    """A chat endpoint answering ``replies`` in turn: (status, headers, content); the requests it saw."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, headers, content = replies[min(len(seen), len(replies)) - 1]
        body = {"choices": [{"message": {"content": content}}]}
        return httpx.Response(status, headers=headers, content=json.dumps(body).encode())

    return httpx.Client(base_url="http://llm.test/v1", transport=httpx.MockTransport(handle)), seen


def test_the_openai_policy_makes_exactly_its_attempts_in_a_persistent_outage():
    collection = load_collection("demo")
    client, seen = chat([(503, {}, "")])
    waits: list[float] = []
    policy = OpenAIPolicy("m", "http://llm.test/v1", client=client, retries=4, prompt=NO_CONTEXT, sleep=waits.append)
    with pytest.raises(EndpointFailure, match=r"after 5 attempts \(HTTP 503\)"):
        policy.generate(collection.examples[:1])
    assert len(seen) == 5 and len(waits) == 4
    for n, wait in enumerate(waits):  # jittered exponential back-off from 1 s: [2^n / 2, 2^n]
        assert 2**n / 2 <= wait <= 2**n


def test_the_openai_policy_honours_retry_after_and_refuses_one_over_max_wait():
    collection = load_collection("demo")
    good = '<answer>{"query": "renal calculi"}</answer>'
    client, seen = chat([(429, {"Retry-After": "12"}, ""), (200, {}, good)])
    waits: list[float] = []
    policy = OpenAIPolicy("m", "http://llm.test/v1", client=client, retries=2, prompt=NO_CONTEXT, sleep=waits.append)
    assert policy.generate(collection.examples[:1])[0].query == "renal calculi"
    assert len(seen) == 2 and waits == [12.0]  # Retry-After (12 s) beats the first back-off (at most 1 s)
    client, seen = chat([(503, {"Retry-After": "600"}, ""), (200, {}, good)])
    waits.clear()
    policy = OpenAIPolicy(
        "m", "http://llm.test/v1", client=client, retries=2, prompt=NO_CONTEXT, max_wait=60, sleep=waits.append
    )
    with pytest.raises(EndpointFailure, match="asked to wait 600 s"):
        policy.generate(collection.examples[:1])
    assert len(seen) == 1 and waits == []
