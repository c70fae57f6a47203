"""The literature family: DeepRetrieval's systematic-review search. From a review's PICO the policy writes a
PubMed-syntax Boolean query; it runs on a Boolean engine with the review's publication date as the upper
end of the date window; the reward is the recall of the studies the review included among the first K
results (DeepRetrieval: K = 3,000 on PubMed, with a step table and a +1 / -4 format term).

Answers are the Boolean query itself, ``<answer>QUERY</answer>`` (DeepRetrieval's JSON form
``<answer>{"query": "…"}</answer>`` is read too): Boolean queries are full of double quotes, which JSON
would make a small model escape. The direct variant pre-fills ``<answer>`` and stops at the first token
that opens a closing tag (``prompts.ANSWER_FORMS["raw"]``). The one format-verdict parser (``parsing``)
judges the structure, this family's reader (:meth:`LiteratureTask.read_answer`) the answer. A query the
engine cannot run for what it says (its parser rejects it, or its truncations expand past
``search.pubmed_syntax.MAX_EXPANSIONS`` words) is the model's fault: that sample's format error, never an
infrastructure failure, and the rest of its batch is scored as usual. Backend: ``backend: {kind: boolean,
schema: publications | trials, mesh_tree: descYYYY.xml}``, the offline tantivy engine of ``search.boolean``
(cached on disk like the BM25 index; its PubMed syntax in ``docs/PUBMED-SYNTAX.md``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DeepRetrievalError
from ..parsing import Parsed, blocks, parse_completion
from ..prompts import PromptSettings, answer_format
from ..rewards import DEEPRETRIEVAL_TIERS, RewardConfig
from ..search.remote import remote_backend
from ..search.specs import BooleanSpec, CTGovSpec, PubMedSpec, RemoteSpec, register
from ..types import Collection, Example, PolicyOutput, Ranking
from .base import Action, Outcome, Task

if TYPE_CHECKING:
    from ..search.base import BooleanSearcher

MAX_QUERY_CHARS = 4000
_SYSTEM = (
    "You are a medical librarian who builds literature searches for systematic reviews. From the review's "
    "PICO (Population, Intervention, Comparison, Outcome) write a PubMed Boolean query that finds the "
    "studies the review would include: synonyms joined with OR inside parentheses, concepts joined with AND, "
    "quoted phrases, field tags such as [tiab] or [mh], truncation such as random*. "
)
# One worked example, as a previous chat turn (a 135M model copies a turn's form far better than it follows a
# description): lay PICO words become the technical terms and synonyms the studies use. Its topic is in no
# table of the generated collection, so it teaches the form, not the answers.
_EXAMPLE_PICO = (
    "P: Adults who snore and stop breathing at night\nI: A mouth guard worn in bed\nC: No treatment\n"
    "O: Less daytime sleepiness"
)
_EXAMPLE_QUERY = (
    '("sleep apnea" OR "obstructive sleep apnoea" OR snoring) AND ("mandibular advancement" OR "oral appliance*" '
    "OR splint*) AND (sleepiness OR somnolence)"
)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
_OPERATORS = {"AND", "OR", "NOT"}
_STOP = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "of", "on", "or", "the"}
    | {"to", "with", "without", "versus", "vs", "people", "patients"}
)

PRESETS: dict[str, RewardConfig] = {
    # DeepRetrieval's reward: recall@3000 step table, +1 for a valid query, -4 for an invalid one.
    "deepretrieval-recall": RewardConfig(
        metric="recall", k=3000, tiers=DEEPRETRIEVAL_TIERS, below_tiers=-3.5, format_bonus=1.0, format_penalty=-4.0
    ),
    "recall": RewardConfig(metric="recall", k=3000),
    # Recall rewards invite ever broader queries: a small penalty when the result set is far larger than K.
    "recall-focused": RewardConfig(metric="recall", k=3000, oversize_factor=10.0, oversize_penalty=0.2),
}


def _schema(collection: Collection, spec: BooleanSpec):
    from ..search.boolean import PUBLICATIONS, TRIALS

    name = spec.schema_
    if name is None:
        name = "trials" if any("conditions" in d.fields for d in collection.documents[:50]) else "publications"
    return {"publications": PUBLICATIONS, "trials": TRIALS}[name]


def boolean_backend(collection: Collection, spec: BooleanSpec, index: Path | None):
    """The Boolean index at ``index`` (checked against the corpus), or built and saved there; without
    ``index``, cached beside the model cache, keyed by the corpus and the schema (a cached index of an older
    format or tantivy is rebuilt; a folder the recipe names is refused instead). ``spec.mesh_tree`` (a MeSH
    descriptor file) makes ``[mh]`` explode; it is read at every start, never stored in the index."""
    from ..errors import StaleIndexError
    from ..search.boolean import BooleanIndex
    from ..search.folders import MANIFEST, corpus_hash, index_cache_dir

    schema = _schema(collection, spec)
    sha = corpus_hash(collection.documents, fielded=True)
    cached = index is None
    index = index or index_cache_dir() / f"boolean-{schema.name}-{sha[:24]}"
    if (index / MANIFEST).exists():
        try:
            return BooleanIndex.load(index, expected_corpus_hash=sha, schema=schema, mesh_tree=spec.mesh_tree)
        except StaleIndexError:
            if not cached:
                raise
    BooleanIndex.build(collection.documents, schema).save(index)
    return BooleanIndex.load(index, expected_corpus_hash=sha, schema=schema, mesh_tree=spec.mesh_tree)


def pubmed_backend(collection: Collection | None, spec: PubMedSpec, index: Path | None):
    """PubMed E-utilities over HTTP (``search.pubmed``), its results cached in ``http-cache.sqlite``."""
    from ..search.folders import index_cache_dir
    from ..search.pubmed import PubMedSearcher

    return PubMedSearcher.from_spec(spec, default_cache=index_cache_dir() / "http-cache.sqlite")


def ctgov_backend(collection: Collection | None, spec: CTGovSpec, index: Path | None):
    """ClinicalTrials.gov API v2 over HTTP (``search.ctgov``), its results cached like PubMed's."""
    from ..search.ctgov import CTGovSearcher
    from ..search.folders import index_cache_dir

    return CTGovSearcher.from_spec(spec, default_cache=index_cache_dir() / "http-cache.sqlite")


register(BooleanSpec, boolean_backend, family="literature")
register(PubMedSpec, pubmed_backend, family="literature")
register(CTGovSpec, ctgov_backend, family="literature")
register(RemoteSpec, remote_backend, family="literature")  # a Boolean backend served by `deepretrieval serve search`


class LiteratureTask(Task):
    name = "literature"
    presets = PRESETS
    measures = ("recall@100", "recall@1000", "recall@3000", "ndcg@10")
    modes = ("rewrite",)
    answer_form = "raw"  # <answer>QUERY</answer>: prompts.ANSWER_FORMS

    # -- backend: kind boolean (the default), the offline tantivy engine; pubmed / ctgov over HTTP
    # (``base_url`` a real service or ``deepretrieval serve emulator``), rate-limited, retried and cached
    # (``cache: true`` keeps results in ``http-cache.sqlite`` beside the indexes): ``search.specs``.
    default_backend = "boolean"

    # -- prompts ------------------------------------------------------------------------------------
    def default_prompt(self) -> PromptSettings:
        return PromptSettings(mode="rewrite", context_docs=0, max_new_tokens=64)

    def messages(self, example: Example, settings: PromptSettings) -> list[dict[str, str]]:
        """The instructions, one worked example turn, then the review's PICO."""
        shown = (
            "<think>Translate each PICO element into technical terms.</think>\n"
            if settings.variant == "reasoning"
            else ""
        )
        answer = answer_format(settings.variant, what="query", example="QUERY", form="raw")
        return [
            {"role": "system", "content": _SYSTEM + answer},
            {"role": "user", "content": f"Systematic review:\n{_EXAMPLE_PICO}"},
            {"role": "assistant", "content": f"{shown}<answer>{_EXAMPLE_QUERY}</answer>"},
            {"role": "user", "content": f"Systematic review:\n{example.question.strip()}"},
        ]

    # -- completion -> action -----------------------------------------------------------------------
    def parse(self, completion: str, settings: PromptSettings, *, prefilled: bool = True) -> Parsed:
        """The Boolean query in the one ``<answer>`` block (raw, or DeepRetrieval's ``{"query": …}``)."""
        if prefilled:
            completion = self.answer_prefix(settings.variant) + self.close(completion, settings.variant)
        return parse_completion(
            completion, variant=settings.variant, read=self.read_answer, query_of_many=False, end_at_last_tag=False
        )

    def read_answer(self, body: str) -> tuple[str | None, str]:
        """The query as written (or DeepRetrieval's JSON form unwrapped), whitespace collapsed, at most
        ``MAX_QUERY_CHARS`` characters (longer: cut, ``too_long``)."""
        query = " ".join(_unwrap(body).split())
        if not query:
            return None, "empty_query"
        if len(query) > MAX_QUERY_CHARS:
            return query[:MAX_QUERY_CHARS], "too_long"
        return query, "ok"

    def lenient_query(self, text: str) -> str:
        """An out-of-format completion's Boolean query as written (quotes, field tags, parentheses kept: a
        bag-of-words reading turns ``"heart attack"[tiab]`` into ``heart attack tiab``): the text after its last
        ``<answer>``, without think blocks or tags, DeepRetrieval's JSON form unwrapped (even cut short)."""
        text = str(text)[: 8 * MAX_QUERY_CHARS]
        for _, start, end in reversed(blocks(text, "think")):
            text = text[:start] + " " + text[end:]
        text = re.sub(r"</?(?:think|answer)>", " ", text.rsplit("<answer>", 1)[-1])
        body = _unwrap(text).strip()
        if re.match(r'\{\s*"query"\s*:', body):  # JSON cut short: its string, without the quotes around it
            body = re.sub(r'^\{\s*"query"\s*:\s*"?|(?<!\\)"?\s*\}?$', "", body).replace('\\"', '"')
        return " ".join(body.split())[:MAX_QUERY_CHARS]

    def searchable(self, text: str, backend: BooleanSearcher, settings: PromptSettings | None = None) -> bool:
        return any(ch.isalnum() for ch in text)

    def action(self, text: str, example: Example, settings: PromptSettings) -> Action:
        return self.query_action(text, example)

    def query_action(self, text: str, example: Example) -> Action:
        """The query with the review's date window: only studies published by the review's date count."""
        from ..search.boolean import BooleanRequest

        return BooleanRequest(text, maxdate=example.meta.get("pub_date"))

    def user_query(self, example: Example) -> str:
        """The PICO's own words as a query (what a user would type): words only, operators lower-cased."""
        pico = example.meta.get("pico")
        text = " ".join(str(v) for v in pico.values()) if isinstance(pico, dict) else example.question
        return " ".join(w.lower() if w in _OPERATORS else w for w in _WORD.findall(text))

    def render(self, action: Action) -> str:
        window = f" [published by {action.maxdate}]" if getattr(action, "maxdate", None) else ""
        return f"{getattr(action, 'query', action)}{window}"

    # -- execution and scoring ----------------------------------------------------------------------
    def execute(self, actions: Sequence[Action], backend: BooleanSearcher, k: int) -> list[Outcome]:
        from ..search.boolean import BooleanRequest
        from ..search.pubmed_syntax import QuerySyntaxError

        requests = [a if isinstance(a, BooleanRequest) else BooleanRequest(str(a)) for a in actions]
        outcomes = []
        for result in backend.search(requests, k):
            if isinstance(result, QuerySyntaxError):
                outcomes.append(Outcome(Ranking(total=0), error=str(result)))
            else:
                outcomes.append(Outcome(result))
        return outcomes

    def score(self, parsed, proposal, outcome, example, config, *, original_metric=None, failure=None):
        result = super().score(
            parsed, proposal, outcome, example, config, original_metric=original_metric, failure=failure
        )
        total = outcome.ranking.total if outcome is not None else None
        if config.oversize_factor and result.total is not None and total and total > config.oversize_factor * config.k:
            return replace(result, total=result.total - config.oversize_penalty, reason="oversized_result")
        return result

    def baselines(self) -> Mapping[str, Callable[..., Any]]:
        return {"pico-boolean": lambda task, backend, **_: PicoBooleanPolicy(task)}

    # -- warm start ---------------------------------------------------------------------------------
    def demonstration(
        self, example: Example, settings: PromptSettings, collection: Collection | None = None
    ) -> str | None:
        """A pearl-growing query: the subject headings most of the review's included studies share (a
        librarian's "citation pearl growing"), AND-ed; None without a collection or shared headings."""
        if collection is None:
            return None
        return pearl_query(example, _headings(collection))

    def completion(self, text: str, variant: str) -> str:
        """The query in the raw answer form after a space (the prompt ends with ``<answer>``, and a query
        starting with a quote would merge with its ``>`` into one token the model never sees at inference);
        the reasoning variant's think block first."""
        if variant == "direct":
            return f" {text}</answer>"
        return f"{_PEARL_THOUGHT}</think>\n<answer>{text}</answer>"


# Subject-heading fields (a controlled vocabulary the indexers assign) and their tags, in both schemas.
SUBJECT_FIELDS = (("mesh", "mh"), ("conditions", "cond"), ("interventions", "intr"))
PEARL_SHARE = 0.8  # a heading on at least this share of the included studies ...
PEARL_MAX_DF = 0.25  # ... and on at most this share of the corpus (not "Humans")
PEARL_MAX_TERMS = 4
_PEARL_THOUGHT = "The studies would be indexed under the subject headings of each PICO element."


@dataclass(frozen=True)
class _HeadingIndex:
    """Each document's (tag, heading) pairs and each pair's share of the corpus."""

    of: Mapping[str, frozenset[tuple[str, str]]]
    share: Mapping[tuple[str, str], float]


_HEADINGS: dict[int, tuple[Collection, _HeadingIndex]] = {}


def _headings(collection: Collection) -> _HeadingIndex:
    cached = _HEADINGS.get(id(collection))
    if cached is not None and cached[0] is collection:
        return cached[1]
    of: dict[str, frozenset[tuple[str, str]]] = {}
    counts: Counter[tuple[str, str]] = Counter()
    for document in collection.documents:
        pairs = frozenset(
            (tag, str(value)) for key, tag in SUBJECT_FIELDS for value in document.fields.get(key, ()) or ()
        )
        of[document.id] = pairs
        counts.update(pairs)
    n = max(1, len(collection.documents))
    index = _HeadingIndex(of, {pair: count / n for pair, count in counts.items()})
    _HEADINGS.clear()  # one collection at a time: a run trains on one
    _HEADINGS[id(collection)] = (collection, index)
    return index


def pearl_query(example: Example, headings: _HeadingIndex) -> str | None:
    """``"H1"[mh] AND "H2"[mh] ...``: the headings on at least ``PEARL_SHARE`` of the example's included
    studies and on at most ``PEARL_MAX_DF`` of the corpus, rarest first, at most ``PEARL_MAX_TERMS``,
    written in alphabetical order; None when no heading qualifies (a corpus without headings)."""
    included = [d for d, grade in example.targets.items() if grade > 0 and d in headings.of]
    if not included:
        return None
    on = Counter(pair for d in included for pair in headings.of[d])
    shared = [p for p, n in on.items() if n >= PEARL_SHARE * len(included) and headings.share[p] <= PEARL_MAX_DF]
    chosen = sorted(sorted(shared, key=lambda p: (headings.share[p], p))[:PEARL_MAX_TERMS], key=lambda p: p[1])
    if not chosen:
        return None
    return " AND ".join(f'"{heading.replace(chr(34), "")}"[{tag}]' for tag, heading in chosen)


def _unwrap(body: str) -> str:
    """DeepRetrieval's JSON answer ``{"query": "…"}`` -> its query; anything else is the query as written."""
    stripped = body.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except (ValueError, RecursionError):
            return body
        if isinstance(value, dict) and isinstance(value.get("query"), str):
            return value["query"]
    return body


def pico_boolean(pico: Mapping[str, str]) -> str:
    """The classical structured query a searcher builds by hand, without a model: the population's words
    OR'd, AND the intervention's words OR'd (each in title/abstract)."""
    blocks_ = []
    for key in ("P", "I"):
        words = [w.lower() for w in _WORD.findall(str(pico.get(key, ""))) if w.lower() not in _STOP and len(w) > 2]
        words = list(dict.fromkeys(w for w in words if w.upper() not in _OPERATORS))
        if words:
            blocks_.append("(" + " OR ".join(f"{w}[tiab]" for w in words) + ")")
    return " AND ".join(blocks_)


class PicoBooleanPolicy:
    """Baseline: (P terms OR'd) AND (I terms OR'd), built from the review's PICO without a model."""

    name = "pico-boolean"

    def __init__(self, task: Task) -> None:
        self.task = task

    def generate(self, examples: Sequence[Example]) -> list[PolicyOutput]:
        outputs = []
        for example in examples:
            pico = example.meta.get("pico")
            if not isinstance(pico, dict):
                raise DeepRetrievalError(f"the pico-boolean policy needs a PICO; example {example.id!r} has none")
            action = self.task.query_action(pico_boolean(pico), example)
            outputs.append(PolicyOutput(query=self.task.render(action), action=action))
        return outputs

    def describe(self) -> dict[str, object]:
        return {"policy": self.name}
