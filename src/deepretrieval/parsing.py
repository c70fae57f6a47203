"""Completion -> (think, query, format verdict). Tolerant of whitespace, strict on structure, never raises.

Formats:
- ``direct``: ``<answer>{"query": "..."}</answer>``
- ``reasoning``: ``<think>...</think>`` then ``<answer>{"query": "..."}</answer>``

``prefilled`` is text the prompt already put in the assistant's mouth (e.g. ``<answer>``); it is
prepended before parsing so the completion is judged as a whole.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
TAG = re.compile(r"</?(think|answer)>")
MAX_CHARS = 2000


@dataclass(frozen=True)
class Parsed:
    query: str | None
    think: str | None
    format_ok: bool
    reason: str  # "ok" or a short machine-readable cause


def parse_completion(
    text: str,
    *,
    variant: str = "direct",
    answer_key: str = "query",
    max_chars: int = MAX_CHARS,
    prefilled: str = "",
) -> Parsed:
    try:
        return _parse(prefilled + str(text), variant, answer_key, max_chars)
    except Exception:  # noqa: BLE001 - model output is untrusted; parsing must never crash training
        return Parsed(None, None, False, "unparsable")


def _parse(text: str, variant: str, answer_key: str, max_chars: int) -> Parsed:
    text = text.strip()
    answers = ANSWER.findall(text)
    thinks = THINK.findall(text)
    think = thinks[0].strip() if thinks else None
    if not answers:
        return Parsed(None, think, False, "missing_answer_tag")
    if len(answers) > 1:
        return Parsed(_query_of(answers[0], answer_key, max_chars)[0], think, False, "multiple_answers")
    query, reason = _query_of(answers[0], answer_key, max_chars)
    if reason != "ok":
        return Parsed(query, think, False, reason)
    answer_end = text.rfind("</answer>") + len("</answer>")
    if text[answer_end:].strip():
        return Parsed(query, think, False, "text_after_answer")
    before = text[: text.find("<answer>")]
    if variant == "reasoning":
        if len(thinks) != 1 or not before.strip().startswith("<think>") or not before.strip().endswith("</think>"):
            return Parsed(query, think, False, "missing_think")
    elif before.strip():
        return Parsed(query, think, False, "text_before_answer")
    return Parsed(query, think, True, "ok")


def _query_of(answer: str, key: str, max_chars: int) -> tuple[str | None, str]:
    """The query inside one answer block and a verdict."""
    body = answer.strip()
    if TAG.search(body):
        return None, "nested_tags"
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, RecursionError, ValueError):
        plain = body.strip().strip('"').strip()
        return (_cap(plain, max_chars) or None), "not_json"
    if not isinstance(value, dict):
        return None, "not_an_object"
    if key not in value:
        return None, "missing_key"
    query = value[key]
    if not isinstance(query, str):
        return None, "not_a_string"
    query = " ".join(query.split())
    if not query:
        return None, "empty_query"
    if len(query) > max_chars:
        return query[:max_chars], "too_long"
    return query, "ok"


def _cap(text: str, max_chars: int) -> str:
    return " ".join(text.split())[:max_chars]


def extract_query_lenient(text: str, *, max_words: int = 64) -> str:
    """Best effort for untrained models: the parsed query if any, else the text without tags or JSON."""
    parsed = parse_completion(text)
    if parsed.query:
        return parsed.query
    cleaned = THINK.sub(" ", str(text))
    cleaned = TAG.sub(" ", cleaned)
    cleaned = re.sub(r'"?\bquery\b"?\s*:|[{}\[\]"]', " ", cleaned)
    return " ".join(cleaned.split()[:max_words])
