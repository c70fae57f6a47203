"""Completion -> (think, query, format verdict): the one format-verdict parser every task family uses.
Tolerant of whitespace, strict on structure.

The parser judges the structure every family shares; what a family reads out of its one answer block is its
*answer reader* (``body -> (query, reason)``, ``reason`` "ok" or a format fault):

- ``direct``: ``<answer>ANSWER</answer>`` and nothing else around it;
- ``reasoning``: ``<think>...</think>`` then ``<answer>ANSWER</answer>``;

checked in this order: a completion past ``MAX_COMPLETION_CHARS`` is not read (``completion_too_long``); no
answer block (``missing_answer_tag``) or more than one (``multiple_answers``); the reader's verdict on the
block; text after it (``text_after_answer``); before it, text (direct: ``text_before_answer``) or anything
but one think block (reasoning: ``missing_think``). :func:`read_json_query` is the retrieval and QA
families' reader (``{"query": "..."}``); the literature family's reads a raw Boolean query.

No model text makes it raise: what malformed text can raise (bad JSON, JSON nested past the recursion
limit, integers past Python's digit limit, lone-surrogate escapes) is caught where it arises, in
``_query_of``, and becomes a format verdict. Anything else is a bug in this module and surfaces.

``prefilled`` is text the prompt already put in the assistant's mouth (e.g. ``<answer>``); it is
prepended before parsing so the completion is judged as a whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
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


# What a family reads out of its answer block: body -> (query or None, "ok" or a short format fault).
Reader = Callable[[str], tuple[str | None, str]]


def read_json_query(body: str, *, key: str = "query", max_chars: int = MAX_CHARS) -> tuple[str | None, str]:
    """The retrieval and QA families' answer reader: ``{"query": "..."}``, whitespace collapsed, at most
    ``max_chars`` characters (longer: cut, ``too_long``); a body that is not JSON reads as its plain words
    (``not_json``)."""
    return _query_of(body, key, max_chars)


def parse_completion(
    text: str,
    *,
    variant: str = "direct",
    answer_key: str = "query",
    max_chars: int = MAX_CHARS,
    prefilled: str = "",
    read: Reader | None = None,
    query_of_many: bool = True,
    end_at_last_tag: bool = True,
) -> Parsed:
    """The verdict on ``prefilled + text``. ``read``: the family's answer reader (default: :func:`read_json_query`
    with ``answer_key`` and ``max_chars``).

    Two structural rules still differ between the families, kept as they were so that no verdict changes:
    ``query_of_many`` (a ``multiple_answers`` verdict carries the first answer's query; the literature family's
    carries none, so its lenient reading takes the last answer) and ``end_at_last_tag`` (the answer is taken to
    end at the completion's last ``</answer>``, so text between a stray second closing tag and the answer is
    not seen; the literature family's ends at its block's own closing tag)."""
    if read is None:
        read = lambda body: _query_of(body, answer_key, max_chars)  # noqa: E731
    return _parse(prefilled + str(text), variant, read, query_of_many, end_at_last_tag)


def _parse(text: str, variant: str, read: Reader, query_of_many: bool, end_at_last_tag: bool) -> Parsed:
    if len(text) > MAX_COMPLETION_CHARS:
        return Parsed(None, None, False, "completion_too_long")
    text = text.strip()
    answers = blocks(text, "answer")
    thinks = [body for body, _, _ in blocks(text, "think")]
    think = thinks[0].strip() if thinks else None
    if not answers:
        return Parsed(None, think, False, "missing_answer_tag")
    if len(answers) > 1:
        return Parsed(read(answers[0][0])[0] if query_of_many else None, think, False, "multiple_answers")
    body, start, end = answers[0]
    query, reason = read(body)
    if reason != "ok":
        return Parsed(query, think, False, reason)
    if end_at_last_tag:
        end = text.rfind("</answer>") + len("</answer>")
    if text[end:].strip():
        return Parsed(query, think, False, "text_after_answer")
    before = text[:start].strip()
    if variant == "reasoning":
        if len(thinks) != 1 or not before.startswith("<think>") or not before.endswith("</think>"):
            return Parsed(query, think, False, "missing_think")
    elif before:
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
