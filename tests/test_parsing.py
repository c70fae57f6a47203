from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepretrieval.parsing import Parsed, extract_query_lenient, parse_completion

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


near_valid = st.builds(
    lambda a, b, c, d: f'{a}<think>{b}</think>{c}<answer>{{"query": "{d}"}}</answer>',
    st.text(max_size=20),
    st.text(max_size=40),
    st.text(max_size=20),
    st.text(max_size=40),
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=3000), near_valid), st.sampled_from(["direct", "reasoning"]), st.booleans())
def test_never_raises_and_is_consistent(text, variant, prefilled):
    parsed = parse_completion(text, variant=variant, prefilled=PREFIX if prefilled else "")
    assert isinstance(parsed, Parsed)
    if parsed.format_ok:
        assert parsed.reason == "ok" and parsed.query and parsed.query.strip() == parsed.query
    else:
        assert parsed.reason != "ok"
    assert isinstance(extract_query_lenient(text), str)
