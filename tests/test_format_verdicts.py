"""One format-verdict parser, per-family answer readers: a table of completions through every family's parse.

The expected verdicts are written from the documented format (``parsing``'s docstring: the structure every
family shares, checked in order; then each family's reader): the retrieval and QA families read
``{"query": "..."}`` (``parsing.read_json_query``), the literature family the Boolean query as written, or
DeepRetrieval's JSON form unwrapped (``LiteratureTask.read_answer``). Two structural rules still differ
between the families (``query_of_many``, ``end_at_last_tag``): their rows say which.
"""

from __future__ import annotations

import pytest

from deepretrieval.parsing import MAX_CHARS, MAX_COMPLETION_CHARS, Parsed
from deepretrieval.prompts import ANSWER_FORMS, PromptSettings, assistant_prefix, close_answer, stop_token_ids
from deepretrieval.tasks import get_task
from deepretrieval.tasks.literature import MAX_QUERY_CHARS

DIRECT = PromptSettings(variant="direct", mode="rewrite", context_docs=0)
REASONING = PromptSettings(variant="reasoning", mode="rewrite", context_docs=0)
JSON_FAMILIES = ("retrieval", "qa")
Q = '<answer>{"query": "heart attack"}</answer>'

# (completion as the model wrote it whole, settings, verdict of the JSON families, verdict of literature);
# a verdict is (query, reason, think); format_ok is reason == "ok".
CASES = [
    # well-formed
    (Q, DIRECT, ("heart attack", "ok", None), ("heart attack", "ok", None)),
    ("<answer>heart attack</answer>", DIRECT, ("heart attack", "not_json", None), ("heart attack", "ok", None)),
    (
        '<answer>("heart attack"[tiab] OR mi) AND aspirin</answer>',
        DIRECT,
        ('("heart attack"[tiab] OR mi) AND aspirin', "not_json", None),
        ('("heart attack"[tiab] OR mi) AND aspirin', "ok", None),
    ),
    # whitespace is tolerated: around the block, inside it, inside the query
    (
        '  \n<answer>\n { "query" :  "heart   attack" } \n</answer>\n ',
        DIRECT,
        ("heart attack", "ok", None),
        ("heart attack", "ok", None),
    ),
    # missing or unclosed tags
    ("heart attack", DIRECT, (None, "missing_answer_tag", None), (None, "missing_answer_tag", None)),
    (
        '<answer>{"query": "heart attack"}',
        DIRECT,
        (None, "missing_answer_tag", None),
        (None, "missing_answer_tag", None),
    ),
    # think only: the think is kept, there is no answer
    (
        "<think>search for aspirin</think>",
        REASONING,
        (None, "missing_answer_tag", "search for aspirin"),
        (None, "missing_answer_tag", "search for aspirin"),
    ),
    # bad JSON: the JSON families read its plain words; literature takes the text as its Boolean query
    (
        '<answer>{"query": "heart attack"</answer>',
        DIRECT,
        ('{"query": "heart attack', "not_json", None),
        ('{"query": "heart attack"', "ok", None),
    ),
    ('<answer>{"q": "x"}</answer>', DIRECT, (None, "missing_key", None), ('{"q": "x"}', "ok", None)),
    ('<answer>{"query": 3}</answer>', DIRECT, (None, "not_a_string", None), ('{"query": 3}', "ok", None)),
    ('<answer>["x"]</answer>', DIRECT, (None, "not_an_object", None), ('["x"]', "ok", None)),
    # a lone surrogate: refused by the JSON reader; literature's engine refuses it later (a syntax verdict)
    ('<answer>{"query": "\\ud800"}</answer>', DIRECT, (None, "invalid_unicode", None), ("\ud800", "ok", None)),
    # empty answers: an empty body is not JSON for the JSON families (no query either way)
    ("<answer></answer>", DIRECT, (None, "not_json", None), (None, "empty_query", None)),
    ('<answer>{"query": "  "}</answer>', DIRECT, (None, "empty_query", None), (None, "empty_query", None)),
    # extra text around the answer
    (Q + " thanks", DIRECT, ("heart attack", "text_after_answer", None), ("heart attack", "text_after_answer", None)),
    ("Sure: " + Q, DIRECT, ("heart attack", "text_before_answer", None), ("heart attack", "text_before_answer", None)),
    # end_at_last_tag: the JSON families take the answer to end at the last </answer>, so text before a stray
    # second closing tag goes unseen (flagged for the lead); literature's ends at its own block's closing tag
    (Q + " junk </answer>", DIRECT, ("heart attack", "ok", None), ("heart attack", "text_after_answer", None)),
    # query_of_many: a multiple-answers verdict carries the first answer's query in the JSON families only
    (
        Q + '<answer>{"query": "stroke"}</answer>',
        DIRECT,
        ("heart attack", "multiple_answers", None),
        (None, "multiple_answers", None),
    ),
    # tags inside the answer: refused by the JSON reader; literature reads the body as written
    (
        '<answer><think>a</think>{"query": "x"}</answer>',
        DIRECT,
        (None, "nested_tags", "a"),
        ('<think>a</think>{"query": "x"}', "ok", "a"),
    ),
    # the reasoning variant: one think block, then the answer
    ("<think>why</think>\n" + Q, REASONING, ("heart attack", "ok", "why"), ("heart attack", "ok", "why")),
    (Q, REASONING, ("heart attack", "missing_think", None), ("heart attack", "missing_think", None)),
    (
        "<think>a</think><think>b</think>" + Q,
        REASONING,
        ("heart attack", "missing_think", "a"),
        ("heart attack", "missing_think", "a"),
    ),
    (
        "<think>why</think> so " + Q,
        REASONING,
        ("heart attack", "missing_think", "why"),
        ("heart attack", "missing_think", "why"),
    ),
    # lengths: each reader's own cap, and the completion cap that keeps parse time bounded
    (
        '<answer>{"query": "' + "a" * (MAX_CHARS + 1) + '"}</answer>',
        DIRECT,
        ("a" * MAX_CHARS, "too_long", None),
        ("a" * (MAX_CHARS + 1), "ok", None),
    ),
    (
        "<answer>" + "a" * (MAX_QUERY_CHARS + 1) + "</answer>",
        DIRECT,
        ("a" * MAX_CHARS, "not_json", None),
        ("a" * MAX_QUERY_CHARS, "too_long", None),
    ),
    (
        "x" * (MAX_COMPLETION_CHARS + 1),
        DIRECT,
        (None, "completion_too_long", None),
        (None, "completion_too_long", None),
    ),
]


def _verdict(parsed: Parsed) -> tuple[str | None, str, str | None]:
    assert parsed.format_ok == (parsed.reason == "ok")
    return parsed.query, parsed.reason, parsed.think


@pytest.mark.parametrize(("completion", "settings", "json_verdict", "literature_verdict"), CASES)
def test_every_family_judges_the_table_as_its_format_says(completion, settings, json_verdict, literature_verdict):
    for family in JSON_FAMILIES:
        assert _verdict(get_task(family).parse(completion, settings, prefilled=False)) == json_verdict, family
    assert _verdict(get_task("literature").parse(completion, settings, prefilled=False)) == literature_verdict


@pytest.mark.parametrize(
    ("family", "stopped", "query"),
    [
        ("retrieval", 'heart attack"', "heart attack"),  # stopped by the token holding the closing quote
        ("qa", 'heart attack"}', "heart attack"),
        ("literature", "aspirin AND stroke</ans", "aspirin AND stroke"),  # stopped at the closing tag's first token
        ("literature", '"heart attack"[tiab]</', '"heart attack"[tiab]'),  # quotes do not stop a raw answer
    ],
)
def test_a_prefilled_completion_stopped_by_its_stop_rule_is_a_well_formed_answer(family, stopped, query):
    task = get_task(family)
    assert _verdict(task.parse(stopped, DIRECT)) == (query, "ok", None)
    # the prefix is the prompt's: the same completion judged whole, prefix written out, gets the same verdict
    whole = task.answer_prefix("direct") + task.close(stopped, "direct")
    assert task.parse(whole, DIRECT, prefilled=False) == task.parse(stopped, DIRECT)


def test_the_answer_prefix_stop_and_end_are_written_once_per_answer_form():
    retrieval, literature = get_task("retrieval"), get_task("literature")
    assert (retrieval.answer_form, get_task("qa").answer_form, literature.answer_form) == ("json", "json", "raw")
    assert retrieval.answer_prefix("direct") == assistant_prefix("direct") == '<answer>{"query": "'
    assert literature.answer_prefix("direct") == ANSWER_FORMS["raw"].prefix == "<answer>"
    assert retrieval.answer_prefix("reasoning") == literature.answer_prefix("reasoning") == "<think>"
    assert literature.close("a OR b</an", "direct") == close_answer("a OR b</an", "direct", "raw") == "a OR b</answer>"
    assert literature.close('"a b" OR c', "direct") == '"a b" OR c'  # a quote ends a JSON answer, not a raw one
    assert literature.close("a</b", "reasoning") == "a</b"


class _Tokenizer:
    """Five tokens; decoding one gives its text."""

    pieces = {0: "heart", 1: '"', 2: '"}', 3: "</", 4: "</answer>"}

    def get_vocab(self) -> dict[str, int]:
        return {text: i for i, text in self.pieces.items()}

    def decode(self, ids: list[int]) -> str:
        return "".join(self.pieces[i] for i in ids)


def test_one_tokenizer_shared_by_two_answer_forms_gets_each_its_own_stop_tokens():
    tokenizer = _Tokenizer()
    assert get_task("retrieval").stop_token_ids(tokenizer, "direct") == [1, 2]
    assert get_task("literature").stop_token_ids(tokenizer, "direct") == [3, 4]
    assert stop_token_ids(tokenizer, "direct") == [1, 2]  # cached per stop: the second form did not overwrite it
    assert get_task("literature").stop_token_ids(tokenizer, "reasoning") == []


@pytest.mark.parametrize(
    ("family", "settings", "instruction"),
    [
        ("retrieval", DIRECT, 'Reply with the keywords only, in this format: <answer>{"query": "..."}</answer>'),
        (
            "retrieval",
            PromptSettings(mode="select-rm3", style="short"),
            'Answer: <answer>{"query": "2 5"}</answer>',
        ),
        ("qa", DIRECT, 'Reply with the query only, in this format: <answer>{"query": "..."}</answer>'),
        (
            "qa",
            PromptSettings(variant="reasoning", mode="expand", style="short"),
            'Think in <think> </think>, then answer: <answer>{"query": "..."}</answer>',
        ),
        ("literature", DIRECT, "Reply with the query only, in this format: <answer>QUERY</answer>"),
        (
            "literature",
            REASONING,
            "First think briefly inside <think> </think>, then reply in this format: <answer>QUERY</answer>",
        ),
    ],
)
def test_each_family_asks_for_its_answer_form_in_one_instruction_table(family, settings, instruction):
    from deepretrieval.types import Example

    example = Example(id="1", question="heart attack", targets={}, meta={})
    system = get_task(family).messages(example, settings)[0]["content"]
    assert system.endswith(instruction)
