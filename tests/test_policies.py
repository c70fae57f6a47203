from __future__ import annotations

import json

import httpx
import pytest

from deepretrieval.errors import DeepRetrievalError, EndpointFailure
from deepretrieval.policies import make_policy
from deepretrieval.policies.llm import HFPolicy, OpenAIPolicy, parse_openai_spec
from deepretrieval.prompts import PromptSettings
from deepretrieval.tasks import get_task
from deepretrieval.types import Example

NO_CONTEXT = PromptSettings(mode="rewrite", context_docs=0)


def endpoint(replies):
    """An OpenAI-compatible chat endpoint that answers from ``replies`` (status, content) in order."""
    seen = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request, body))
        status, content = replies[min(len(seen) - 1, len(replies) - 1)]
        return httpx.Response(status, json={"choices": [{"message": {"content": content}}]})

    return httpx.Client(base_url="http://llm.test/v1", transport=httpx.MockTransport(handle)), seen


def test_openai_policy_sends_chat_messages_and_parses(small_collection, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    client, seen = endpoint([(200, '<answer>{"query": "myocardial infarction"}</answer>')])
    policy = OpenAIPolicy(
        "m", "http://llm.test/v1", client=client, prompt=PromptSettings(mode="expand", context_docs=0)
    )
    out = policy.generate(small_collection.examples[:1])[0]
    assert out.query == "heart attack treatment myocardial infarction" and out.format_ok
    request, body = seen[0]
    assert request.url.path == "/v1/chat/completions"
    assert [m["role"] for m in body["messages"]] == ["system", "user"] and body["temperature"] == 0.0
    assert "sk-secret" not in json.dumps(policy.describe())


def test_openai_policy_retries_then_surfaces_a_persistent_outage(small_collection):
    client, seen = endpoint([(503, ""), (200, '<answer>{"query": "x"}</answer>')])
    policy = OpenAIPolicy("m", "http://llm.test/v1", client=client, backoff_seconds=0.0, prompt=NO_CONTEXT)
    assert policy.generate(small_collection.examples[:1])[0].query == "x"
    client, seen = endpoint([(500, "")])
    policy = OpenAIPolicy("m", "http://llm.test/v1", client=client, retries=2, backoff_seconds=0.0, prompt=NO_CONTEXT)
    with pytest.raises(EndpointFailure, match="after 3 attempts"):
        policy.generate(small_collection.examples[:1])
    assert len(seen) == 3


def test_openai_spec():
    assert parse_openai_spec("openai:qwen2.5:7b@http://localhost:11434/v1") == (
        "qwen2.5:7b",
        "http://localhost:11434/v1",
    )
    with pytest.raises(DeepRetrievalError):
        parse_openai_spec("openai:model-without-url")


def test_hf_policy_generates_batched_queries_with_a_local_model(small_collection):
    from deepretrieval.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer("tiny-random")
    policy = HFPolicy(
        "tiny-random",
        model=model,
        tokenizer=tokenizer,
        batch_size=3,
        prompt=PromptSettings(mode="expand", max_new_tokens=6, context_docs=0),
    )
    outputs = policy.generate(small_collection.examples)
    assert len(outputs) == 4
    for example, out in zip(small_collection.examples, outputs, strict=True):
        assert out.query.startswith(example.question)  # expand mode keeps the user's query
        assert out.completion is not None and out.format_ok is False  # random weights: no format
    assert make_policy("original", task=get_task("retrieval"), backend=None).name == "original"  # type: ignore[arg-type]


def test_openai_policy_shows_the_retrieved_context_it_is_asked_for(small_collection):
    """--context-docs reaches the endpoint's prompt as it reaches a local model's."""
    from deepretrieval.search.bm25 import BM25Searcher

    searcher = BM25Searcher.build(small_collection.documents)
    spec = "openai:m@http://llm.test/v1"
    policy = make_policy(
        spec, task=get_task("retrieval"), backend=searcher, prompt={"context_docs": 2}, collection=small_collection
    )
    client, seen = endpoint([(200, '<answer>{"query": "x"}</answer>')])
    policy.client = client
    policy.generate([Example("x", "myocardial infarction", {})])
    user = seen[0][1]["messages"][1]["content"]
    # d1 and d2 tie (each holds both words twice in seven indexed words): corpus order, d1 first.
    assert user.endswith(
        "Top search results for it:\n- myocardial infarction therapy\n- myocardial infarction outcomes"
    )
    with pytest.raises(DeepRetrievalError, match="retrieved context"):
        make_policy(spec, task=get_task("retrieval"), backend=searcher, prompt={"context_docs": 2})


def raw_endpoint(bodies):
    """An endpoint answering each request with the next raw (status, body) pair, then the last one again."""
    seen = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body = bodies[min(len(seen) - 1, len(bodies) - 1)]
        return httpx.Response(status, content=body if isinstance(body, bytes) else json.dumps(body).encode())

    return httpx.Client(base_url="http://llm.test/v1", transport=httpx.MockTransport(handle)), seen


UNUSABLE = {
    "content null": {"choices": [{"message": {"content": None}}]},
    "content empty": {"choices": [{"message": {"content": ""}}]},
    "content blank": {"choices": [{"message": {"content": "  \n"}}]},
    "no choices": {"choices": []},
    "a list body": [{"message": {"content": "x"}}],
    "message not an object": {"choices": [{"message": "x"}]},
    "not json": b"<html>busy</html>",
}


@pytest.mark.parametrize("reply", list(UNUSABLE.values()), ids=list(UNUSABLE))
def test_an_unusable_reply_is_retried_then_reported_never_scored(small_collection, reply):
    client, seen = raw_endpoint([(200, reply)])
    policy = OpenAIPolicy("m", "http://llm.test/v1", client=client, retries=2, backoff_seconds=0.0, prompt=NO_CONTEXT)
    with pytest.raises(EndpointFailure, match="after 3 attempts"):
        policy.generate(small_collection.examples[:1])
    assert len(seen) == 3
    good = {"choices": [{"message": {"content": '<answer>{"query": "renal calculi"}</answer>'}}]}
    client, seen = raw_endpoint([(200, reply), (200, good)])
    policy = OpenAIPolicy("m", "http://llm.test/v1", client=client, retries=2, backoff_seconds=0.0, prompt=NO_CONTEXT)
    assert policy.generate(small_collection.examples[:1])[0].query == "renal calculi"


def test_unknown_policy_fails_at_once_listing_the_known_ones(small_collection, tmp_path):
    from deepretrieval.search.bm25 import BM25Searcher

    searcher = BM25Searcher.build(small_collection.documents)
    for spec in ("no-such-model", "", "  ", str(tmp_path)):
        with pytest.raises(DeepRetrievalError, match="original, prf, oracle") as info:
            make_policy(spec, task=get_task("retrieval"), backend=searcher)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec", ["./missing_dir", "../x", "runs/a/final"])
def test_a_policy_folder_that_does_not_exist_is_one_line(small_collection, spec):
    from deepretrieval.search.bm25 import BM25Searcher

    searcher = BM25Searcher.build(small_collection.documents)
    with pytest.raises(DeepRetrievalError) as info:
        make_policy(spec, task=get_task("retrieval"), backend=searcher)
    assert str(info.value) == f"policy folder {spec} does not exist"


@pytest.mark.parametrize("command", [["rewrite", "heart attack"], ["eval", "--data", "demo", "--out", "o"]])
@pytest.mark.parametrize("spec", ["./missing_dir", "../x"])
def test_cli_names_the_missing_policy_folder_and_exits_2(tmp_path, monkeypatch, command, spec):
    from typer.testing import CliRunner

    from deepretrieval.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*command, "--policy", spec])
    assert result.exit_code == 2, result.output
    assert result.output == f"error: policy folder {spec} does not exist\n"
    assert not (tmp_path / "o").exists()  # refused before any work


def test_loading_a_model_from_a_missing_relative_folder_is_one_line():
    from deepretrieval.models import load_model_and_tokenizer

    with pytest.raises(DeepRetrievalError) as info:
        load_model_and_tokenizer("./missing_dir")
    assert str(info.value).startswith("model './missing_dir' was not found locally (no such folder); ")
