"""The task seam: what a task family must say, and what every family shares.

A family (one module beside this one: ``retrieval``, ``literature`` …) subclasses :class:`Task` and says
everything family-specific: its prompt messages per variant, the answer prefix and stop rule, how a
completion becomes an *action* (a query string, a weighted query, a Boolean request …), how a batch of
actions is executed on its backend, its reward presets and evaluation measures, its baseline policies,
and how its backend is built from a recipe's ``backend:`` section.

Written once here, for every family: :func:`propose_output` (completion -> what a model policy sends),
:class:`TaskReward`, the TRL reward adapter that parses a GRPO batch, executes it with one batched,
de-duplicated call, retries, turns an infrastructure failure into ``None`` (never a number) and logs
per-step statistics, and a row of verl's RL dataset per example (``Task.to_verl_row`` and its inverse,
``Task.from_verl_row``). ``train.py``, ``evaluate.py`` and ``integrations/`` see only this module's names.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import DeepRetrievalError, SearchFailure
from ..parsing import Parsed, extract_query_lenient, parse_completion, read_json_query
from ..prompts import (
    Context,
    PromptSettings,
    assistant_prefix,
    build_messages,
    close_answer,
    render_prompt,
    stop_token_ids,
)
from ..rewards import RewardConfig, RewardResult, metric_value, score
from ..search.resilience import Fault, Retrier, RetryPolicy, retries_itself
from ..search.specs import BackendSpec, backend_of, parse_backend
from ..types import Collection, Example, PolicyOutput, Ranking

log = logging.getLogger(__name__)

# What a task executes for one example. Hashable, so a batch can be de-duplicated before it is executed.
Action = Hashable


@dataclass(frozen=True)
class Outcome:
    """What executing one action gave: a ranking (ids best first; ``total`` where the backend counts), or
    ``error``: the backend refused the action as malformed — the model's fault, scored as a format error."""

    ranking: Ranking
    error: str | None = None

    @property
    def ids(self) -> list[str]:
        return self.ranking.ids


@dataclass(frozen=True)
class Proposal:
    """A completion read as a family reads it: the model's query text and the action built from it.

    ``text`` None: the answer gave the backend nothing to search, an empty answer (scored as one in training);
    ``action`` is then what evaluation runs for it, the mode's fallback (None: nothing)."""

    text: str | None
    action: Action | None


def deepest_cutoff(measures: Sequence[str]) -> int | None:
    """The deepest cut-off among ``measures`` (``recall@1000`` -> 1000); None for no measures with one (a
    family's measures on something else than a ranking, such as SQL's ``exec_acc``, have none)."""
    from ..metrics import parse_measure

    return max((parse_measure(m)[1] for m in measures if "@" in m), default=None)


class Task:
    """A task family. Subclasses set the class attributes and implement the methods that raise."""

    name: str = ""
    presets: Mapping[str, RewardConfig] = {}
    measures: tuple[str, ...] = ()  # evaluation measures (pytrec_eval names such as "ndcg@10")
    modes: tuple[str, ...] = ("rewrite",)
    answer_key: str = "query"
    answer_form: str = "json"  # a key of prompts.ANSWER_FORMS: the answer prefix, stop and end of the direct variant
    fallback_name: str = "fallback"  # what ``fallback`` runs, for the log's gain_over_<name>
    # Backend settings the command line may give as flags of their own (``--k1``); others go in ``--backend``.
    backend_flags: tuple[str, ...] = ()
    default_backend: str = ""  # the kind of an empty ``backend:`` section (``search.specs``' registry)
    verl_ability: str = "search"  # the ``ability`` column of a verl row (verl only groups by it)

    @property
    def depth(self) -> int:
        """How deep evaluation retrieves by default: the deepest cut-off the task reports (a measure deeper
        than the ranking it is computed on would count the missing tail as misses)."""
        return deepest_cutoff(self.measures) or 1000

    @property
    def default_reward(self) -> str:
        """The reward preset a recipe gets when it names none: the family's first preset."""
        return next(iter(self.presets))

    # -- backend ------------------------------------------------------------------------------------
    def backend_spec(self, spec: Mapping[str, Any] | BackendSpec | None) -> BackendSpec:
        """A ``backend:`` section as its typed spec: one of the kinds registered for this family (or a family
        it extends: qa uses retrieval's), ``default_backend`` when it names none; errors name the field."""
        families = [c.name for c in type(self).__mro__ if getattr(c, "name", "")]
        return parse_backend(spec, families=families, task=self.name, default=self.default_backend)

    def backend(self, collection: Collection, spec: Mapping[str, Any] | BackendSpec, *, index: Path | None = None):
        """The backend a recipe's ``backend:`` section describes, for this collection (``index``: a folder
        to load it from or save it to, where the backend has one): built by its kind's registered factory."""
        typed = self.backend_spec(spec)
        return backend_of(typed).factory(collection, typed, index)

    def open_backend(self, index: Path, spec: Mapping[str, Any]) -> Any:
        """The backend saved in ``index``, opened without its collection (``rewrite --index``)."""
        raise DeepRetrievalError(f"the {self.name} task opens its backend from the collection: give --data")

    def describe_backend(self, backend: Any) -> dict[str, object]:
        return dict(backend.describe())

    def needs_context(self, settings: PromptSettings) -> bool:
        """Whether prompts (and actions) under ``settings`` need a context provider."""
        return settings.context_docs > 0

    def context(self, backend: Any, collection: Collection, settings: PromptSettings) -> Context | None:
        """A provider of what ``settings`` show beside the need (retrieved titles, a feedback menu …), or
        None when they show nothing."""
        if self.needs_context(settings):
            raise DeepRetrievalError(f"the {self.name} task shows no retrieved context in prompts: set context_docs: 0")
        return None

    def fallback(self, example: Example, settings: PromptSettings) -> Action | None:
        """What evaluation runs for an answer with nothing to search (None: nothing). Training never runs it:
        such an answer scores as an empty one, or doing nothing would pay as well as the fallback does."""
        return None

    # -- prompts ------------------------------------------------------------------------------------
    def check(self, settings: PromptSettings) -> None:
        if settings.mode not in self.modes:
            raise DeepRetrievalError(
                f"the {self.name} task has no {settings.mode!r} mode (it has {', '.join(self.modes)})"
            )

    def default_prompt(self) -> PromptSettings:
        """Prompt settings for an untrained model where none are given (a trained run's are in policy.json)."""
        return PromptSettings()

    def messages(self, example: Example, settings: PromptSettings) -> list[dict[str, str]]:
        return build_messages(example, variant=settings.variant, mode=settings.mode, style=settings.style)

    def answer_prefix(self, variant: str) -> str:
        """Text the prompt puts at the start of the assistant's turn (the parser is told the same)."""
        return assistant_prefix(variant, self.answer_form)

    def stop_token_ids(self, tokenizer: Any, variant: str) -> list[int]:
        """Token ids that end sampling besides EOS."""
        return stop_token_ids(tokenizer, variant, self.answer_form)

    def close(self, completion: str, variant: str) -> str:
        """A completion stopped by the stop rule, given its answer's canonical end."""
        return close_answer(completion, variant, self.answer_form)

    def demonstration(
        self, example: Example, settings: PromptSettings, collection: Collection | None = None
    ) -> str | None:
        """The answer ``example``'s judgments call right under ``settings`` (what a warm start teaches before
        GRPO), or None where the family or mode has no such answer. ``collection``: the corpus the judged
        documents are in (a family may read them)."""
        return None

    def completion(self, text: str, variant: str) -> str:
        """What a model writes after the prompt's answer prefix to answer ``text`` (a demonstration's target);
        the direct variant only: a demonstration has no reasoning to show."""
        prefix = self.answer_prefix(variant)
        answer = json.dumps({self.answer_key: text}, ensure_ascii=False)
        head = prefix.removeprefix("<answer>")
        if variant != "direct" or not answer.startswith(head):
            raise DeepRetrievalError(
                f"demonstrations are direct answers (the {variant!r} variant's prefix {prefix!r}): use variant: direct"
            )
        return answer[len(head) :] + "</answer>"

    # -- completion -> action -----------------------------------------------------------------------
    def parse(self, completion: str, settings: PromptSettings, *, prefilled: bool = True) -> Parsed:
        prefix = self.answer_prefix(settings.variant) if prefilled else ""
        if prefilled:
            completion = self.close(completion, settings.variant)
        return parse_completion(completion, variant=settings.variant, prefilled=prefix, read=self.read_answer)

    def read_answer(self, body: str) -> tuple[str | None, str]:
        """The family's answer reader: its query in one ``<answer>`` block's body and a verdict ("ok" or a
        format fault); the parser judges the structure around it. Default: ``{"<answer_key>": "..."}``."""
        return read_json_query(body, key=self.answer_key)

    def lenient_query(self, text: str) -> str:
        """Best-effort query text of an out-of-format completion (``text`` starts with the answer prefix), as
        this family writes queries; '' when there is none. Default: the words, without tags or JSON."""
        return extract_query_lenient(text)

    def searchable(self, text: str, backend: Any, settings: PromptSettings | None = None) -> bool:
        """Whether the model's text gives the backend anything to execute (under ``settings``' mode)."""
        return bool(text.strip())

    def action(self, text: str, example: Example, settings: PromptSettings) -> Action:
        """The action that runs the model's query ``text`` for ``example`` (mode, date window … applied)."""
        raise NotImplementedError

    def query_action(self, text: str, example: Example) -> Action:
        """The action that runs ``text`` as written (baselines: the user's query, an oracle query)."""
        raise NotImplementedError

    def user_query(self, example: Example) -> str:
        """The user's own query for an example (the ``original`` baseline)."""
        return example.question

    def render(self, action: Action) -> str:
        """A readable form of an action, for runs.jsonl and the command line."""
        return str(action)

    # -- execution and scoring ----------------------------------------------------------------------
    def execute(self, actions: Sequence[Action], backend: Any, k: int) -> list[Outcome]:
        """Run a batch of actions (already de-duplicated) with as few backend calls as the backend allows.
        An infrastructure problem raises ``SearchFailure``; a malformed action is an ``Outcome.error``."""
        raise NotImplementedError

    def score(
        self,
        parsed: Parsed,
        proposal: Proposal,
        outcome: Outcome | None,
        example: Example,
        config: RewardConfig,
        *,
        original_metric: float | None = None,
        failure: str | None = None,
    ) -> RewardResult:
        if outcome is not None and outcome.error is not None:
            return RewardResult(config.format_penalty, False, None, proposal.text, None, "rejected_by_backend")
        return score(
            parsed,
            None if failure is not None else (outcome.ids if outcome is not None else []),
            example,
            config,
            query=proposal.text or "",
            original_metric=original_metric,
            failure=failure,
        )

    def per_query(self, outcome: Outcome, example: Example, measures: Sequence[str]) -> dict[str, float]:
        from ..metrics import measure

        return {name: measure(name, outcome.ids, example.targets) for name in measures}

    def evaluate_run(
        self, runs: Mapping[str, Mapping[str, Any]], examples: Sequence[Example], measures: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """Per-query measures of a complete run (``runs.jsonl``'s lines by example id), over the judged
        examples: pytrec_eval on the ranked ids (``metrics.evaluate_run``). A family whose measures are not on
        rankings (SQL's execution accuracy) reads each line's own ``metrics`` instead."""
        from ..metrics import evaluate_run

        qrels = {e.id: dict(e.targets) for e in examples}
        ranked = {qid: list(line.get("ranked") or []) for qid, line in runs.items() if qid in qrels}
        return evaluate_run(ranked, qrels, measures)

    def baselines(self) -> Mapping[str, Callable[..., Any]]:
        """Family-specific baseline policies by name, each built as ``factory(task, backend, **options)``."""
        return {}

    # -- verl's RL dataset ----------------------------------------------------------------------------
    def to_verl_row(self, example: Example, settings: PromptSettings) -> dict[str, Any]:
        """One row of verl's RL dataset for ``example`` (its context already shown, :func:`show_context`):
        ``prompt``, the chat messages training gives the model; ``ability``; ``reward_model``, verl's rule-based
        record with the judged targets as ``ground_truth``; ``extra_info``, what :meth:`from_verl_row` needs to
        score a completion without the collection (the example's id, need and JSON-able ``meta``, as JSON text:
        a column of one type whatever the family's meta holds). The caller adds ``data_source`` and the
        ``extra_info`` fields of the export (``split``, ``index``)."""
        self.check(settings)
        targets = [{"id": doc, "grade": int(grade)} for doc, grade in example.targets.items()]
        return {
            "prompt": self.messages(example, settings),
            "ability": self.verl_ability,
            "reward_model": {"style": "rule", "ground_truth": {"targets": targets}},
            "extra_info": {"example_id": example.id, "question": example.question, "meta": _meta_json(example.meta)},
        }

    def from_verl_row(self, ground_truth: Mapping[str, Any], extra_info: Mapping[str, Any]) -> Example:
        """The Example a row of :meth:`to_verl_row` was made from, as far as scoring reads it."""
        if "example_id" not in extra_info or "targets" not in ground_truth:
            raise DeepRetrievalError(
                "a verl row without deepretrieval's extra_info.example_id or ground_truth.targets: score the rows "
                "`deepretrieval export verl` wrote"
            )
        targets = {str(t["id"]): int(t["grade"]) for t in ground_truth["targets"]}
        meta = _meta_from_json(extra_info.get("meta") or "{}")
        return Example(str(extra_info["example_id"]), str(extra_info.get("question", "")), targets, meta)


# -- shared by every family ---------------------------------------------------------------------------


def render_prompts(
    task: Task,
    examples: Sequence[Example],
    settings: PromptSettings,
    tokenizer: Any,
    context: Context | None = None,
    *,
    shown: bool = False,
) -> list[str]:
    """The exact text a local model is given for each example: the one prompt function that training,
    evaluation, ``rewrite`` and exports share, so a policy is always evaluated as it was trained.
    ``shown``: the examples already carry their context (:func:`show_context`)."""
    task.check(settings)
    if not shown:
        examples = show_context(task, examples, settings, context)
    return [
        render_prompt(task.messages(e, settings), tokenizer) + task.answer_prefix(settings.variant) for e in examples
    ]


def show_context(task: Task, examples: Sequence[Example], settings: PromptSettings, context: Context | None):
    """The examples with the retrieved context their prompts and actions need (unchanged when none)."""
    if not task.needs_context(settings):
        return list(examples)
    if context is None:
        raise DeepRetrievalError("these prompts show retrieved context: give a context provider")
    return context(examples)


def propose(
    task: Task,
    completion: str,
    example: Example,
    settings: PromptSettings,
    backend: Any,
    *,
    lenient: bool,
    prefilled: bool = True,
) -> tuple[Parsed, Proposal]:
    """Read a completion: the verdict, and the action to run.

    An answer that gives the backend nothing to search (empty, ``!!!``, only stopwords, a zero-width space,
    nothing a lenient reading finds) is an empty answer, in every mode: its proposal has no text, and its
    action is the mode's fallback, which evaluation runs and training does not (in expand mode it would run
    the user's own query, in the feedback-anchored modes plain RM3, and earn their reward for saying
    nothing). ``lenient``: an out-of-format completion's best-effort text (the family's reading) is executed.
    """
    parsed, text = candidate(task, completion, settings, lenient=lenient, prefilled=prefilled)
    if text and not task.searchable(text, backend, settings):
        if text == parsed.query:  # the answer itself gives nothing to search: an empty answer
            parsed = replace(parsed, query=None, format_ok=False, reason="empty_query")
        text = None
    if text:
        return parsed, Proposal(text, task.action(text, example, settings))
    return parsed, Proposal(None, task.fallback(example, settings))


def candidate(
    task: Task, completion: str, settings: PromptSettings, *, lenient: bool, prefilled: bool = True
) -> tuple[Parsed, str | None]:
    """A completion's verdict and the text :func:`propose` would search if the backend finds terms in it: the
    answer's query, else (``lenient``) the best-effort reading of an out-of-format completion, else None."""
    parsed = task.parse(completion, settings, prefilled=prefilled)
    if parsed.query:
        return parsed, parsed.query
    if lenient and parsed.reason != "empty_query":
        prefix = task.answer_prefix(settings.variant) if prefilled else ""
        return parsed, task.lenient_query(prefix + completion) or None
    return parsed, None


def propose_output(
    task: Task, completion: str, example: Example, settings: PromptSettings, backend: Any, *, prefilled: bool = True
) -> PolicyOutput:
    """What a model policy sends for one completion at evaluation: its best-effort action (an answer with
    nothing to search sends the mode's fallback: the user's query in expand mode, nothing in rewrite)."""
    if prefilled:
        completion = task.close(completion, settings.variant)
    parsed, proposal = propose(task, completion, example, settings, backend, lenient=True, prefilled=prefilled)
    # Nothing to search: the mode's own fallback (the user's query in expand mode, nothing in rewrite).
    action = proposal.action if proposal.action is not None else task.action("", example, settings)
    return PolicyOutput(
        query=task.render(action),
        completion=completion,
        format_ok=parsed.format_ok,
        action=action,
        fallback=proposal.text is None,
    )


def execute_unique(task: Task, actions: Sequence[Action | None], backend: Any, k: int) -> list[Outcome | None]:
    """Execute a batch with one call per distinct action; ``None`` actions get ``None``."""
    unique = list(dict.fromkeys(a for a in actions if a is not None))
    outcomes = dict(zip(unique, task.execute(unique, backend, k), strict=True)) if unique else {}
    return [None if a is None else outcomes[a] for a in actions]


class TaskReward:
    """A TRL reward function for any task: the whole batch is executed with one de-duplicated, batched call.

    Returns ``None`` for a sample whose execution failed (TRL 1.16 keeps such samples out of the group
    baseline and gives them zero advantage); a failure that persists for ``max_failed_batches``
    consecutive batches stops training with ``SearchFailure``.

    Exactly one layer retries a batch: a backend that retries its own calls (an HTTP searcher, see
    :func:`~deepretrieval.search.resilience.retries_itself`) is called once per batch, and ``retries`` /
    ``backoff_seconds`` apply only to a backend that does not (its batch is retried under a
    :class:`~deepretrieval.search.resilience.Retrier`, with jittered back-off). ``sleep``: the waits (tests).
    """

    __name__ = "task_reward"

    def __init__(
        self,
        task: Task,
        backend: Any,
        examples: Sequence[Example],
        config: RewardConfig,
        settings: PromptSettings,
        *,
        tokenizer: Any = None,
        retries: int = 2,
        backoff_seconds: float = 0.5,
        max_failed_batches: int = 3,
        prefilled: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.task, self.backend, self.config, self.settings = task, backend, config, settings
        self.prefilled = prefilled
        self.tokenizer = tokenizer
        # One layer retries: the backend's own retrier when it has one, else this one around the batch.
        self.retrier: Retrier | None = None
        if not retries_itself(backend):
            policy = RetryPolicy(attempts=retries + 1, backoff=backoff_seconds, max_backoff=30.0)
            self.retrier = Retrier(policy, name="search", failure=SearchFailure, classify=_search_fault, sleep=sleep)
        self.max_failed_batches = max_failed_batches
        self.failed_batches = 0
        self.failures_total = 0
        self.examples: dict[str, Example] = {}
        self.original_metric: dict[str, float] = {}
        # Where the mode has a fallback (feedback mode: the unedited RM3 query), log the gain over it.
        self.fallback_metric: dict[str, float] = {}
        self.add_examples(examples)

    def add_examples(self, examples: Sequence[Example]) -> None:
        """Make ``examples`` scorable (those not known yet), with the original query's and the fallback's
        metrics where the preset or the log needs them: one batched search each."""
        new = list({e.id: e for e in examples if e.id not in self.examples}.values())
        if not new:
            return
        self.examples.update((e.id, e) for e in new)
        if self.config.relative_to_original:
            self.original_metric.update(self._original_metrics(new))
        self.fallback_metric.update(self._fallback_metrics(new))

    def __call__(self, prompts: list, completions: list, example_id: list[str], **kwargs: Any) -> list[float | None]:
        texts = [_completion_text(c) for c in completions]
        scored = self.score_with_verdicts(texts, example_id)
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:
            for name, value in self.batch_stats(scored, example_id).items():
                log_metric(name, value)
        return [result.total for _, result in scored]

    def score_batch(self, completions: Sequence[str], example_ids: Sequence[str]) -> list[RewardResult]:
        return [result for _, result in self.score_with_verdicts(completions, example_ids)]

    def score_with_verdicts(
        self, completions: Sequence[str], example_ids: Sequence[str]
    ) -> list[tuple[Parsed, RewardResult]]:
        examples = [self.examples[i] for i in example_ids]
        lenient = not self.config.require_format
        prefetch = getattr(self.backend, "prefetch_analysis", None)
        if callable(prefetch):  # a remote backend analyses the whole batch's texts in one request, not one each
            texts = [candidate(self.task, c, self.settings, lenient=lenient)[1] for c in completions]
            prefetch([t for t in texts if t])
        read = [
            propose(self.task, c, e, self.settings, self.backend, lenient=lenient, prefilled=self.prefilled)
            for c, e in zip(completions, examples, strict=True)
        ]
        # An empty answer's fallback is evaluation's business: in training it scores as empty, unsearched.
        outcomes, failure = self._execute([proposal.action if proposal.text else None for _, proposal in read])
        return [
            (
                parsed,
                self.task.score(
                    parsed,
                    proposal,
                    outcome,
                    example,
                    self.config,
                    original_metric=self.original_metric.get(example.id),
                    failure=failure,
                ),
            )
            for (parsed, proposal), outcome, example in zip(read, outcomes, examples, strict=True)
        ]

    def batch_stats(self, scored: Sequence[tuple[Parsed, RewardResult]], ids: Sequence[str] = ()) -> dict[str, float]:
        results = [r for _, r in scored]
        ok = [r for r in results if r.failure is None]
        family = self.task.name  # the log keys' prefix: retrieval/..., literature/..., qa/... (runs.family_stat)
        stats = {
            f"{family}/metric": _mean([r.metric for r in ok if r.metric is not None]),
            # Samples that gave the backend nothing to search (empty, or no searchable term): scored as empty.
            f"{family}/empty_ratio": _mean([1.0 if r.reason == "empty_query" else 0.0 for r in ok]),
            f"{family}/format_error_ratio": _mean([0.0 if r.format_ok else 1.0 for r in ok]),
            f"{family}/failures": float(len(results) - len(ok)),
            f"{family}/query_tokens": _mean([self._tokens(r.query) for r in results if r.query]),
            f"{family}/think_tokens": _mean([self._tokens(p.think) for p, _ in scored if p.think]),
            f"{family}/unique_queries": float(len({r.query for r in ok if r.query})),
        }
        if self.fallback_metric and ids:
            # Over the answers that searched (an empty answer has no metric: it is penalised, not searched).
            gains = [
                r.metric - self.fallback_metric[i] for i, r in zip(ids, results, strict=True) if r.metric is not None
            ]
            stats[f"{family}/gain_over_{self.task.fallback_name}"] = _mean(gains)
        return {k: v for k, v in stats.items() if not math.isnan(v)}

    def _execute(self, actions: Sequence[Action | None]) -> tuple[list[Outcome | None], str | None]:
        """Outcomes in input order (retried by the one retrying layer); after the retries, all None and a
        failure text."""

        def run() -> list[Outcome | None]:
            return execute_unique(self.task, actions, self.backend, self.config.k)

        try:
            outcomes = run() if self.retrier is None else self.retrier.call(run, where="the backend")
        except SearchFailure as exc:
            error = exc
        else:
            self.failed_batches = 0
            return outcomes, None
        log.warning("search failed: %s", error)
        self.failed_batches += 1
        self.failures_total += len(actions)
        if self.failed_batches >= self.max_failed_batches:
            raise SearchFailure(f"search kept failing for {self.failed_batches} batches; stopping: {error}")
        return [None] * len(actions), f"search failed: {error}"

    def _original_metrics(self, examples: Sequence[Example]) -> dict[str, float]:
        actions = [self.task.query_action(self.task.user_query(e), e) for e in examples]
        outcomes = execute_unique(self.task, actions, self.backend, self.config.k)
        return {e.id: metric_value(self.config, o.ids if o else [], e) for e, o in zip(examples, outcomes, strict=True)}

    def _fallback_metrics(self, examples: Sequence[Example]) -> dict[str, float]:
        actions = [self.task.fallback(e, self.settings) for e in examples]
        if all(a is None for a in actions):
            return {}
        outcomes = execute_unique(self.task, actions, self.backend, self.config.k)
        return {
            e.id: metric_value(self.config, o.ids, e) for e, o in zip(examples, outcomes, strict=True) if o is not None
        }

    def _tokens(self, text: str | None) -> float:
        if not text:
            return 0.0
        if self.tokenizer is None:
            return float(len(text.split()))
        return float(len(self.tokenizer(text, add_special_tokens=False)["input_ids"]))


def _meta_json(meta: Mapping[str, Any]) -> str:
    """``meta`` as JSON text: its JSON-able entries (a date tagged, to come back as one; a path as text); an
    object (a feedback menu a context provider added) is left out: a family whose actions read one refuses
    the export (``to_verl_row``)."""
    kept: dict[str, Any] = {}
    for key, value in meta.items():
        try:
            kept[key] = json.loads(json.dumps(value, default=_json_value))
        except (TypeError, ValueError):
            continue
    return json.dumps(kept, ensure_ascii=False, sort_keys=True)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"$date": value.isoformat()}
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


def _meta_from_json(text: str) -> dict[str, Any]:
    def dates(record: dict[str, Any]) -> Any:
        if record.keys() == {"$date"}:
            return datetime.date.fromisoformat(record["$date"])
        if record.keys() == {"$datetime"}:
            return datetime.datetime.fromisoformat(record["$datetime"])
        return record

    return json.loads(text, object_hook=dates)


def _search_fault(exc: BaseException) -> Fault | None:
    """What the reward retries on a backend that does not retry itself: a SearchFailure."""
    return Fault(str(exc)) if isinstance(exc, SearchFailure) else None


def _completion_text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[0], dict):
        return str(completion[0].get("content", ""))
    return str(completion)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
