"""Completion -> (think, query, format verdict). Tolerant of whitespace, strict on structure.

No model text makes it raise: what malformed text can raise (bad JSON, JSON nested past the recursion
limit, integers past Python's digit limit, lone-surrogate escapes) is caught where it arises, in
``_query_of``, and becomes a format verdict. Anything else is a bug in this module and surfaces.

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

TAG = re.compile(r"</?(think|answer)>")
MAX_CHARS = 2000
# Longer completions are not parsed at all (a 500-token completion is ~3,000 characters): parse time stays
# bounded whatever a policy writes.
MAX_COMPLETION_CHARS = 32_000


def blocks(text: str, name: str) -> list[tuple[str, int, int]]:
    """Non-overlapping ``<name>…</name>`` blocks as (body, start, end), first closing tag wins — what
    ``re.findall(r"<name>(.*?)</name>", re.DOTALL)`` finds, in one linear pass over the tags (the lazy
    regex rescans to the end for every unclosed opening tag: quadratic in repeated tags)."""
    opening, closing = f"<{name}>", f"</{name}>"
    found: list[tuple[str, int, int]] = []
    start: int | None = None
    for match in TAG.finditer(text):
        tag = match.group(0)
        if start is None and tag == opening:
            start = match.start()
        elif start is not None and tag == closing:
            found.append((text[start + len(opening) : match.start()], start, match.end()))
            start = None
    return found


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
    return _parse(prefilled + str(text), variant, answer_key, max_chars)


def _parse(text: str, variant: str, answer_key: str, max_chars: int) -> Parsed:
    if len(text) > MAX_COMPLETION_CHARS:
        return Parsed(None, None, False, "completion_too_long")
    text = text.strip()
    answers = [body for body, _, _ in blocks(text, "answer")]
    thinks = [body for body, _, _ in blocks(text, "think")]
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
    # JSONDecodeError is a ValueError; a bare ValueError comes from integers past the digit limit
    # ({"query": 1000...0}); RecursionError from nesting past the recursion limit ("[" * 100000).
    except (ValueError, RecursionError):
        plain = body.strip().strip('"').strip()
        return (_cap(plain, max_chars) or None), "not_json"
    if not isinstance(value, dict):
        return None, "not_an_object"
    if key not in value:
        return None, "missing_key"
    query = value[key]
    if not isinstance(query, str):
        return None, "not_a_string"
    if not _encodable(query):
        return None, "invalid_unicode"
    query = " ".join(query.split())
    if not query:
        return None, "empty_query"
    if len(query) > max_chars:
        return query[:max_chars], "too_long"
    return query, "ok"


def _encodable(text: str) -> bool:
    """False for a lone surrogate, which JSON lets through ("\\ud800") but no tokenizer or stemmer can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _cap(text: str, max_chars: int) -> str:
    return " ".join(text.split())[:max_chars]


def extract_query_lenient(text: str, *, max_words: int = 64) -> str:
    """Best effort for untrained models: the parsed query if any, else the text without tags or JSON."""
    text = str(text)[:MAX_COMPLETION_CHARS]
    parsed = parse_completion(text)
    if parsed.query:
        return parsed.query
    pieces, last = [], 0
    for _, start, end in blocks(text, "think"):
        pieces.append(text[last:start])
        last = end
    cleaned = TAG.sub(" ", " ".join([*pieces, text[last:]]))
    cleaned = re.sub(r'"?\bquery\b"?\s*:|[{}\[\]"]', " ", cleaned)
    return " ".join(cleaned.split()[:max_words])
