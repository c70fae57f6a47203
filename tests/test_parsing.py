from __future__ import annotations

from unittest.mock import ANY

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepretrieval import parsing
from deepretrieval.parsing import MAX_CHARS, Parsed, extract_query_lenient, parse_completion

PREFIX = '<answer>{"query": "'


@pytest.mark.parametrize(
    ("text", "variant", "query", "ok", "reason"),
    [
        ('<answer>{"query": "a b"}</answer>', "direct", "a b", True, "ok"),
        ('  \n<answer>\n  { "query" :  "a   b" }\n</answer>\n ', "direct", "a b", True, "ok"),
        ('<think>why</think>\n<answer>{"query": "x"}</answer>', "reasoning", "x", True, "ok"),
        ('<answer>{"query": "x"}</answer>', "reasoning", "x", False, "missing_think"),
        ('<think>a</think><think>b</think><answer>{"query": "x"}</answer>', "reasoning", "x", False, "missing_think"),
        ('<answer>{"query": "x"}</answer> and more', "direct", "x", False, "text_after_answer"),
        ('Sure! <answer>{"query": "x"}</answer>', "direct", "x", False, "text_before_answer"),
        ('<answer>{"query": "x"}</answer><answer>{"query": "y"}</answer>', "direct", "x", False, "multiple_answers"),
        ("no tags at all", "direct", None, False, "missing_answer_tag"),
        ("<answer>heart attack</answer>", "direct", "heart attack", False, "not_json"),
        ('<answer>{"q": "x"}</answer>', "direct", None, False, "missing_key"),
        ('<answer>{"query": 3}</answer>', "direct", None, False, "not_a_string"),
        ('<answer>{"query": "   "}</answer>', "direct", None, False, "empty_query"),
        ('<answer>["x"]</answer>', "direct", None, False, "not_an_object"),
        ('<answer><answer>{"query": "x"}</answer>', "direct", None, False, "nested_tags"),
        ('<answer>{"query": "x"', "direct", None, False, "missing_answer_tag"),
    ],
)
def test_cases(text, variant, query, ok, reason):
    assert parse_completion(text, variant=variant) == Parsed(query, parse_completion(text).think, ok, reason)


def test_prefilled_prefix_and_length_cap():
    assert parse_completion('kidney stones"}</answer>', prefilled=PREFIX).query == "kidney stones"
    long = parse_completion('<answer>{"query": "' + "a" * 50 + '"}</answer>', max_chars=10)
    assert (long.query, long.format_ok, long.reason) == ("a" * 10, False, "too_long")


def test_lenient_extraction_for_untrained_models():
    assert extract_query_lenient(PREFIX + 'heart attack drugs"}</answer>') == "heart attack drugs"
    assert extract_query_lenient(PREFIX + "heart attack drugs and more") == "heart attack drugs and more"
    assert extract_query_lenient("<think>hmm</think> plain words") == "plain words"


@pytest.mark.parametrize(
    ("body", "query", "reason"),
    [
        ("[" * 30_000, "[" * MAX_CHARS, "not_json"),  # RecursionError inside json
        ('{"query": ' * 3_000, ANY, "not_json"),
        ('{"query": 1' + "0" * 5000 + "}", ANY, "not_json"),  # ValueError: past the int digit limit
        ('{"query": "\\ud800"}', None, "invalid_unicode"),  # a lone surrogate no stemmer can encode
        ('{"query": "heart \\udc00 attack"}', None, "invalid_unicode"),
        ('{"query": "\\ud83d\\ude00 heart"}', "\U0001f600 heart", "ok"),  # a valid surrogate pair
        ('{"query": NaN}', None, "not_a_string"),
        ('{"query": "x", "w": [NaN, Infinity, -Infinity, 1e99999, -0]}', "x", "ok"),
        ('{"query": "x", "deep": ' + "[" * 200 + "]" * 200 + "}", "x", "ok"),
        ('{"query": "a\\u0000b"}', "a\x00b", "ok"),
        ('{"query": "x", "query": "y"}', "y", "ok"),  # json keeps the last duplicate key
    ],
)
def test_adversarial_json_is_a_verdict_not_a_crash(body, query, reason):
    parsed = parse_completion(f"<answer>{body}</answer>")
    assert (parsed.query, parsed.reason, parsed.format_ok) == (query, reason, reason == "ok")


@pytest.mark.parametrize("helper", ["_query_of", "_cap", "_parse"])
@pytest.mark.parametrize("error", [TypeError, AttributeError, KeyError])
def test_a_bug_in_the_parser_surfaces_instead_of_becoming_a_format_penalty(monkeypatch, helper, error):
    def broken(*args, **kwargs):
        raise error("bug")

    monkeypatch.setattr(parsing, helper, broken)
    with pytest.raises(error, match="bug"):
        parse_completion("<answer>heart attack</answer>")  # not JSON: reaches _cap too


near_valid = st.builds(
    lambda a, b, c, d: f'{a}<think>{b}</think>{c}<answer>{{"query": "{d}"}}</answer>',
    st.text(max_size=20),
    st.text(max_size=40),
    st.text(max_size=20),
    st.text(max_size=40),
)


# Bodies made of JSON's own punctuation, escapes and literals, and nesting up to past the recursion limit.
json_like = st.builds(
    lambda body: f"<answer>{body}</answer>",
    st.one_of(
        st.text(alphabet='[]{}":,\\u0123456789abcdefdDNaIinfty.eE+- ', max_size=300),
        st.integers(0, 3000).map(lambda n: "[" * n + "]" * (n // 2)),
        st.integers(0, 3000).map(lambda n: '{"query": ' * n),
    ),
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.text(max_size=3000), near_valid, json_like), st.sampled_from(["direct", "reasoning"]), st.booleans()
)
def test_never_raises_and_is_consistent(text, variant, prefilled):
    parsed = parse_completion(text, variant=variant, prefilled=PREFIX if prefilled else "")
    assert isinstance(parsed, Parsed)
    if parsed.format_ok:
        assert parsed.reason == "ok" and parsed.query and parsed.query.strip() == parsed.query
    else:
        assert parsed.reason != "ok"
    if parsed.query:
        parsed.query.encode("utf-8")  # what the search backends will do with it
    assert isinstance(extract_query_lenient(text), str)


@pytest.mark.parametrize("tag", ["<think>", "<answer>", "</think><think>", "<answer><think>"])
def test_repeated_tags_up_to_the_cap_are_refused_and_past_it_unread(tag):
    """80 kB of repeated tags (4 s with the old lazy regexes: speed is a benchmark matter, not asserted
    here) are an out-of-format completion; completions past MAX_COMPLETION_CHARS are refused unread."""
    from deepretrieval.parsing import MAX_COMPLETION_CHARS, extract_query_lenient

    text = tag * ((MAX_COMPLETION_CHARS - 100) // len(tag))
    for variant in ("direct", "reasoning"):
        assert not parse_completion(text, variant=variant).format_ok
    assert extract_query_lenient(text + " words").split()[-1] == "words"
    too_long = parse_completion("x" * (MAX_COMPLETION_CHARS + 1))
    assert (too_long.query, too_long.reason) == (None, "completion_too_long")


def test_each_family_reads_an_out_of_format_answer_as_it_writes_queries():
    """The lenient reading belongs to the task: bag-of-words for the retrieval family, the Boolean query as
    written for the literature family (the shared extractor stripped its quotes and brackets)."""
    from deepretrieval.prompts import PromptSettings
    from deepretrieval.tasks import get_task, propose_output
    from deepretrieval.types import Example

    cut_short = '<answer>"heart attack"[tiab]'  # no closing tag: out of format
    assert get_task("retrieval").lenient_query(cut_short) == "heart attack tiab"
    assert get_task("qa").lenient_query(cut_short) == "heart attack tiab"
    literature = get_task("literature")
    assert literature.lenient_query(cut_short) == '"heart attack"[tiab]'
    # DeepRetrieval's JSON form cut short, after a think block, still reads as the Boolean query.
    cut_json = '<think>PICO</think><answer>{"query": "(\\"heart attack\\"[tiab] OR mi[ti]) AND aspirin'
    assert literature.lenient_query(cut_json) == '("heart attack"[tiab] OR mi[ti]) AND aspirin'
    # What evaluation sends for such a completion (the prompt pre-fills "<answer>").
    example = Example("r1", "P: adults", {}, meta={"pub_date": "2020-01-01"})
    settings = PromptSettings(mode="rewrite", context_docs=0)
    output = propose_output(literature, '"heart attack"[tiab] AND aspirin', example, settings, backend=None)
    assert output.format_ok is False
    assert (output.action.query, output.action.maxdate) == ('"heart attack"[tiab] AND aspirin', "2020-01-01")
