"""Prompts for query writing, rendered through the tokenizer's chat template (never hand-written markup).

The direct variant pre-fills the start of the answer (``<answer>{"query": "``) after the generation
prompt, so even a 135M model answers in format; the parser is given the same prefix. The reasoning
variant pre-fills ``<think>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import DeepRetrievalError
from .modes import MODES
from .types import Example

VARIANTS = ("direct", "reasoning")
STYLES = ("full", "short")


@dataclass(frozen=True)
class PromptSettings:
    """How a model policy is prompted and how its text becomes a query (saved in a run's policy.json).

    The defaults are the best measured recipe's (see ``recipe.TrainRecipe``): expand mode, the direct
    variant with its pre-filled answer, three context titles.
    """

    variant: str = "direct"
    mode: str = "expand"
    expand_repeats: int = 1
    max_new_tokens: int = 32
    context_docs: int = 3  # top first-pass titles shown in the prompt (needs a context provider)
    style: str = "full"  # "short": terse instructions, fewer prompt tokens per GRPO step

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise DeepRetrievalError(f"unknown prompt variant {self.variant!r} (known: {', '.join(VARIANTS)})")
        if self.style not in STYLES:
            raise DeepRetrievalError(f"unknown prompt style {self.style!r} (known: {', '.join(STYLES)})")
        if self.mode not in MODES:
            raise DeepRetrievalError(f"unknown query mode {self.mode!r} (known: {', '.join(MODES)})")
        for name in ("expand_repeats", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise DeepRetrievalError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.context_docs < 0:
            raise DeepRetrievalError(f"context_docs must be 0 or more, got {self.context_docs}")

    def replace(self, **changes: Any) -> PromptSettings:
        """A copy with only the given (non-None) settings changed."""
        from dataclasses import replace

        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# A prompt's *context*: what it shows beside the information need, drawn from a first pass of the user's query
# (the top titles, ``context_docs``: ``titles.TitleProvider``; the feedback mode's RM3 menu; select-rm3's
# numbered results: ``feedback``). A Context attaches it to examples (in their meta); None when prompts show none.
Context = Callable[[Sequence[Example]], list[Example]]


_TASK = {
    "rewrite": (
        "You are a search expert. Rewrite the user's information need as a keyword query for a search engine "
        "over a collection of {domain} documents. Use the technical terms, synonyms and phrasing that relevant "
        "documents would contain."
    ),
    "expand": (
        "You are a search expert. The user's information need will be searched in a collection of {domain} "
        "documents. Write extra keywords to add to it: technical terms, synonyms and related concepts that "
        "relevant documents would contain."
    ),
    "feedback": (
        "You are a search expert. The user's information need will be searched in a collection of {domain} "
        "documents, together with terms taken from the top results. From the candidate terms, choose the ones "
        "relevant documents would contain; put a minus sign before a candidate that would mislead the search."
    ),
    "select-rm3": (
        "You are a search expert. The user's information need was searched in a collection of {domain} "
        "documents; the top results are numbered below. Choose the results that are relevant to the need: the "
        "search will be refined with their words. If none of them is relevant, answer none."
    ),
}
_TASK["expand-rm3"] = _TASK["expand"]  # the model writes the same expansion; feedback runs after it
# Short style: the same requests in a fraction of the tokens (a GRPO step's cost grows with prompt length).
_SHORT_TASK = {
    "rewrite": "Rewrite the need as a keyword query for {domain} documents.",
    "expand": "Add keywords that relevant {domain} documents contain.",
    "expand-rm3": "Add keywords that relevant {domain} documents contain.",
    "feedback": "Pick the candidates relevant {domain} documents contain (-word drops one).",
    "select-rm3": "Pick the numbers of the {domain} results relevant to the need (or none).",
}
# How the instructions ask for the answer ({shown}: the answer form's ``shown``, around an example).
_SHORT_FORMAT = {
    "direct": "Answer: {shown}",
    "reasoning": "Think in <think> </think>, then answer: {shown}",
}
_FORMAT = {
    "direct": "Reply with the {what} only, in this format: {shown}",
    "reasoning": "First think briefly inside <think> </think>, then reply in this format: {shown}",
}


@dataclass(frozen=True)
class AnswerForm:
    """How a family writes its answer, so what the direct variant pre-fills and where sampling stops."""

    prefix: str  # the direct variant's pre-filled start of the answer
    stop: str  # the first token holding it ends the answer (a stop sequence, as `stop=[...]` for an endpoint)
    end: str  # what replaces the stop and anything after it: the answer's canonical end
    shown: str  # the answer as the instructions show it, around an example ({})


# json: ``<answer>{"query": "…"}</answer>`` (retrieval, QA), pre-filled to the query's opening quote, so the
# first closing quote ends the query. raw: ``<answer>QUERY</answer>`` (literature: Boolean queries are full of
# double quotes, which JSON would make a small model escape), ended by the first token opening a closing tag.
# sql: ``<answer>{"sql": "…"}</answer>`` (DeepRetrieval's SQL answer), pre-filled to the SQL's opening quote and
# ended, as raw, by the first token opening a closing tag: SQL may hold escaped double quotes (``\"John\"``),
# which a stop at the first quote would cut.
ANSWER_FORMS = {
    "json": AnswerForm('<answer>{"query": "', stop='"', end='"}</answer>', shown='<answer>{{"query": "{}"}}</answer>'),
    "raw": AnswerForm("<answer>", stop="</", end="</answer>", shown="<answer>{}</answer>"),
    "sql": AnswerForm('<answer>{"sql": "', stop="</", end="</answer>", shown='<answer>{{"sql": "{}"}}</answer>'),
}
REASONING_PREFIX = "<think>"  # the reasoning variant pre-fills the think block, whatever the answer form


def build_messages(
    example: Example, *, variant: str = "direct", mode: str = "rewrite", style: str = "full"
) -> list[dict[str, str]]:
    """System and user chat messages for one information need."""
    if variant not in _FORMAT:
        raise DeepRetrievalError(f"unknown prompt variant {variant!r} (known: {', '.join(VARIANTS)})")
    if mode not in _TASK:
        raise DeepRetrievalError(f"unknown query mode {mode!r} (known: {', '.join(MODES)})")
    domain = str(example.meta.get("domain", "scientific"))
    short = style == "short"
    numbers = mode == "select-rm3"  # the answer names results by number
    reply = answer_format(
        variant, style, what="numbers" if numbers else "keywords", example="2 5" if numbers else "..."
    )
    system = (_SHORT_TASK if short else _TASK)[mode].format(domain=domain) + " " + reply
    user = f"{'Need' if short else 'Information need'}: {example.question.strip()}"
    titles = example.meta.get("titles")
    if titles:
        heading = "\nTop results:\n" if short else "\nTop search results for it:\n"
        user += heading + "\n".join(f"- {t}" for t in titles)
    feedback = example.meta.get("feedback")
    if mode == "feedback" and feedback is not None:
        user += ("\nCandidates: " if short else "\nCandidate terms: ") + ", ".join(t.word for t in feedback.menu)
    selection = example.meta.get("selection")
    if mode == "select-rm3" and selection is not None:
        user += "\nTop results:\n" + "\n".join(f"{i}. {d.snippet}" for i, d in enumerate(selection.docs, 1))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def answer_format(
    variant: str, style: str = "full", *, what: str = "keywords", example: str = "...", form: str = "json"
) -> str:
    """The instruction that asks for the answer: the variant's, in the answer form, ``example`` inside it."""
    shown = ANSWER_FORMS[form].shown.format(example)
    return (_SHORT_FORMAT if style == "short" else _FORMAT)[variant].format(what=what, shown=shown)


def assistant_prefix(variant: str, form: str = "json") -> str:
    """Text the prompt puts at the start of the assistant's turn (the parser must be told the same)."""
    return {"direct": ANSWER_FORMS[form].prefix, "reasoning": REASONING_PREFIX}[variant]


def render_prompt(messages: list[dict[str, str]], tokenizer: Any, *, variant: str | None = None) -> str:
    """The chat template's rendering with the generation prompt, plus the variant's answer prefix."""
    if not getattr(tokenizer, "chat_template", None):
        raise DeepRetrievalError("the model's tokenizer has no chat template; use an instruction-tuned model")
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + (assistant_prefix(variant) if variant else "")


def stop_token_ids(tokenizer: Any, variant: str, form: str = "json") -> list[int]:
    """Token ids that end generation besides EOS: in the direct variant, every token holding the answer
    form's stop (json: a double quote; raw: ``</``).

    Direct variant: the answer is pre-filled up to where the query starts, so the first token holding its stop
    ends the query (a stop sequence, as `stop=['"']` would be for an endpoint). Without it a small model
    sampling at temperature 1 rambles past the answer and every completion fails the format.
    """
    if variant != "direct":
        return []
    stop = ANSWER_FORMS[form].stop
    cache = getattr(tokenizer, "_deepretrieval_stop_ids", None)
    if cache is None:
        cache = tokenizer._deepretrieval_stop_ids = {}
    if stop not in cache:
        cache[stop] = sorted(i for i in tokenizer.get_vocab().values() if stop in tokenizer.decode([i]))
    return cache[stop]


def close_answer(completion: str, variant: str, form: str = "json") -> str:
    """Give a completion stopped at its answer form's stop the answer's canonical end (json: ``"}</answer>``;
    raw: ``</answer>``)."""
    spec = ANSWER_FORMS[form]
    if variant != "direct" or "</answer>" in completion or spec.stop not in completion:
        return completion
    return completion[: completion.index(spec.stop)] + spec.end
