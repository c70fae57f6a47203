"""GRPO training of a query-writing policy with TRL: the DeepRetrieval loop.

prompt (chat template) -> TRL samples completions -> parse -> compose query -> one batched, de-duplicated
BM25 search for the whole batch -> reward (pure, configurable) -> GRPO update. Checkpoints every
``save_steps``; ``resume`` continues from the last one; the final policy is a normal HF folder.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import DeepRetrievalError, SearchFailure
from .modes import compose_query
from .parsing import Parsed, extract_query_lenient, parse_completion
from .prompts import Context, assistant_prefix, close_answer, render_prompts, stop_token_ids
from .recipe import TrainRecipe
from .rewards import PRESETS, RewardConfig, RewardResult, metric_value, score
from .search.base import has_terms
from .search.bm25 import BM25Searcher
from .types import Example

log = logging.getLogger(__name__)

POLICY_FILE = "policy.json"
LOG_FILE = "train_log.jsonl"


def reward_config(recipe: TrainRecipe) -> RewardConfig:
    if recipe.reward not in PRESETS:
        raise DeepRetrievalError(f"unknown reward preset {recipe.reward!r} (known: {', '.join(PRESETS)})")
    config = PRESETS[recipe.reward]
    if recipe.reward_k is not None:
        from dataclasses import replace

        config = replace(config, k=recipe.reward_k)
    return config


class RetrievalReward:
    """A TRL reward function: the whole batch is scored with one de-duplicated, batched search.

    Returns ``None`` for a sample whose search failed (TRL 1.16 keeps such samples out of the group
    baseline and gives them zero advantage); a failure that persists for ``max_failed_batches``
    consecutive batches stops training with ``SearchFailure``.
    """

    __name__ = "retrieval"

    def __init__(
        self,
        searcher: BM25Searcher,
        examples: Sequence[Example],
        config: RewardConfig,
        *,
        variant: str = "direct",
        mode: str = "rewrite",
        repeats: int = 1,
        tokenizer: Any = None,
        retries: int = 2,
        backoff_seconds: float = 0.5,
        max_failed_batches: int = 3,
    ) -> None:
        self.searcher = searcher
        self.examples = {e.id: e for e in examples}
        self.config = config
        self.variant, self.mode, self.repeats = variant, mode, repeats
        self.tokenizer = tokenizer
        self.retries, self.backoff_seconds = retries, backoff_seconds
        self.max_failed_batches = max_failed_batches
        self.failed_batches = 0
        self.failures_total = 0
        self.original_metric: dict[str, float] = {}
        if config.relative_to_original:
            self.original_metric = self._original_metrics(list(self.examples.values()))

    def __call__(self, prompts: list, completions: list, example_id: list[str], **kwargs: Any) -> list[float | None]:
        texts = [_completion_text(c) for c in completions]
        results = self.score_batch(texts, example_id)
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:
            for name, value in self.batch_stats(texts, results).items():
                log_metric(name, value)
        return [r.total for r in results]

    def score_batch(self, completions: Sequence[str], example_ids: Sequence[str]) -> list[RewardResult]:
        examples = [self.examples[i] for i in example_ids]
        parsed = [self.parse(c) for c in completions]
        generated = [self._generated(p, c) for p, c in zip(parsed, completions, strict=True)]
        queries = [
            compose_query(self.mode, e.question, g, repeats=self.repeats) if g else ""
            for g, e in zip(generated, examples, strict=True)
        ]
        ranked, failure = self._search_unique(queries)
        return [
            score(
                p,
                None if ranked is None else ranked.get(q, []),
                e,
                self.config,
                query=g or "",
                original_metric=self.original_metric.get(e.id),
                failure=failure,
            )
            for p, g, q, e in zip(parsed, generated, queries, examples, strict=True)
        ]

    def parse(self, completion: str) -> Parsed:
        completion = close_answer(completion, self.variant)
        return parse_completion(completion, variant=self.variant, prefilled=assistant_prefix(self.variant))

    def _generated(self, parsed: Parsed, completion: str) -> str | None:
        """The model's query text, or None when it gives the backend nothing to search (scored as empty, in
        every mode: in expand mode it would otherwise run the user's query and earn its reward)."""
        if parsed.query or self.config.require_format:
            generated = parsed.query
        else:
            generated = extract_query_lenient(assistant_prefix(self.variant) + completion)
        return generated if generated and has_terms(self.searcher, generated) else None

    def batch_stats(self, completions: Sequence[str], results: Sequence[RewardResult]) -> dict[str, float]:
        scored = [r for r in results if r.failure is None]
        metrics = [r.metric for r in scored if r.metric is not None]
        parsed = [self.parse(c) for c in completions]
        stats = {
            "retrieval/metric": _mean(metrics),
            # Samples that gave the backend nothing to search (empty, or no indexable term): scored as empty.
            "retrieval/empty_ratio": _mean([1.0 if r.reason == "empty_query" else 0.0 for r in scored]),
            "retrieval/format_error_ratio": _mean([0.0 if r.format_ok else 1.0 for r in scored]),
            "retrieval/failures": float(len(results) - len(scored)),
            "retrieval/query_tokens": _mean([self._tokens(r.query) for r in results if r.query]),
            "retrieval/think_tokens": _mean([self._tokens(p.think) for p in parsed if p.think]),
            "retrieval/unique_queries": float(len({r.query for r in scored if r.query})),
        }
        return {k: v for k, v in stats.items() if not math.isnan(v)}

    def _search_unique(self, queries: Sequence[str]) -> tuple[dict[str, list[str]] | None, str | None]:
        unique = sorted({q for q in queries if q.strip()})
        if not unique:
            return {}, None
        error: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                hits = self.searcher.search(unique, self.config.k)
                self.failed_batches = 0
                return {q: hs.ids for q, hs in zip(unique, hits, strict=True)}, None
            except SearchFailure as exc:
                error = exc
                log.warning("search failed (attempt %d/%d): %s", attempt + 1, self.retries + 1, exc)
                time.sleep(self.backoff_seconds * 2**attempt)
        self.failed_batches += 1
        self.failures_total += len(queries)
        if self.failed_batches >= self.max_failed_batches:
            raise SearchFailure(f"search kept failing for {self.failed_batches} batches; stopping: {error}")
        return None, f"search failed: {error}"

    def _original_metrics(self, examples: Sequence[Example]) -> dict[str, float]:
        hits = self.searcher.search([e.question for e in examples], self.config.k)
        return {e.id: metric_value(self.config, hs.ids, e) for e, hs in zip(examples, hits, strict=True)}

    def _tokens(self, text: str | None) -> float:
        if not text:
            return 0.0
        if self.tokenizer is None:
            return float(len(text.split()))
        return float(len(self.tokenizer(text, add_special_tokens=False)["input_ids"]))


@dataclass(frozen=True)
class TrainResult:
    output_dir: Path
    final_dir: Path
    log_path: Path
    steps: int


def build_dataset(examples: Sequence[Example], tokenizer: Any, recipe: TrainRecipe, context: Context | None = None):
    """Prompts rendered once, by the same function evaluation uses (``prompts.render_prompts``), with the
    example id alongside."""
    from datasets import Dataset

    prompts = render_prompts(examples, recipe.prompt_settings(), tokenizer, context)
    return Dataset.from_dict({"prompt": prompts, "example_id": [e.id for e in examples]})


def trainable(examples: Sequence[Example]) -> tuple[list[Example], int]:
    """Examples with at least one relevant target, and how many were left out (they carry no signal:
    every query scores 0 on them, so GRPO's group advantage is 0)."""
    kept = [e for e in examples if e.relevant]
    return kept, len(examples) - len(kept)


def grpo_config(recipe: TrainRecipe, output_dir: Path, stops: Sequence[int]):
    """TRL's GRPOConfig from the recipe, plus the recipe's ``trl:`` section passed through as it is."""
    from dataclasses import fields

    from trl import GRPOConfig

    values: dict[str, Any] = dict(
        output_dir=str(output_dir),
        learning_rate=recipe.learning_rate,
        lr_scheduler_type="constant",
        max_steps=recipe.max_steps,
        per_device_train_batch_size=recipe.prompts_per_step * recipe.num_generations,
        gradient_accumulation_steps=1,
        num_generations=recipe.num_generations,
        max_completion_length=recipe.max_completion_length,
        temperature=recipe.temperature,
        top_k=recipe.top_k,
        top_p=recipe.top_p,
        beta=recipe.beta,
        loss_type=recipe.loss_type,
        scale_rewards=recipe.scale_rewards,
        save_strategy="steps",
        save_steps=recipe.save_steps,
        logging_steps=recipe.logging_steps,
        report_to=["tensorboard"],
        bf16=recipe.bf16,
        use_vllm=recipe.use_vllm,
        seed=recipe.seed,
        data_seed=recipe.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,  # pinning needs an accelerator; on a CPU it only warns
        activation_checkpointing=True,  # TRL's default, under transformers 5's name (the old one warns)
        shuffle_dataset=True,
    )
    if stops and recipe.use_vllm:
        # TRL's transformers path stops at generation_config's EOS ids (set in train()); its vLLM path reads
        # only generation_kwargs, which it hands to vLLM's SamplingParams.
        values["generation_kwargs"] = {"stop_token_ids": list(stops)}
    known = {f.name for f in fields(GRPOConfig)}
    for key, value in recipe.trl.items():
        if key not in known:
            raise DeepRetrievalError(f"recipe field trl.{key}: not a trl.GRPOConfig field")
        if key in values and key != "generation_kwargs":
            raise DeepRetrievalError(f"recipe field trl.{key}: set by the recipe itself; change it there")
        if key == "generation_kwargs" and isinstance(value, dict):
            value = {**values.get(key, {}), **value}
        values[key] = value
    return GRPOConfig(**values)


# Called after each logged step with (global step, max steps, the step's logged values).
StepProgress = Callable[[int, int, dict], None]


def _progress_callback(report: StepProgress):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """Reports each logged step to ``report`` (the CLI's progress bar) instead of printing dicts."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                report(state.global_step, state.max_steps, logs)

    return Progress()


def _log_callback(path: Path):
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        """Appends every logged dict (reward, loss, retrieval/* ...) to train_log.jsonl with its step."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                with path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return JsonlLog()


def train(
    recipe: TrainRecipe,
    *,
    resume: bool = False,
    collection=None,
    searcher: BM25Searcher | None = None,
    progress: StepProgress | None = None,
) -> TrainResult:
    """Run GRPO for ``recipe.max_steps`` steps (in total, counting a resumed checkpoint's steps).

    ``progress``: called after each logged step; it replaces the trainer's own bar and per-step dicts.
    """
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOTrainer

    from .data import load_collection
    from .models import load_model_and_tokenizer

    output_dir = Path(recipe.output_dir)
    checkpoint = _prepare_output(output_dir, recipe, resume, get_last_checkpoint)
    if collection is None:
        collection = load_collection(
            recipe.data, corpus=Path(recipe.corpus) if recipe.corpus else None, seed=recipe.seed
        )
    examples, left_out = trainable(collection.split(recipe.split))
    if left_out:
        log.warning(
            "%d of the %s split's queries have no relevant document; left out of training", left_out, recipe.split
        )
    if not examples:
        raise DeepRetrievalError(f"split {recipe.split!r} of {collection.name!r} has no query with a relevant document")
    if searcher is None:
        searcher = BM25Searcher.build(collection.documents, recipe.bm25_settings())
    from .context import ContextProvider

    context = ContextProvider(searcher, collection.documents, recipe.context_docs)
    model, tokenizer = load_model_and_tokenizer(recipe.model)
    # TRL stops sampling at the model's generation_config EOS ids: add the variant's stop tokens.
    stops = stop_token_ids(tokenizer, recipe.variant)
    if stops:
        model.generation_config.eos_token_id = [tokenizer.eos_token_id, *stops]
    reward = RetrievalReward(
        searcher,
        examples,
        reward_config(recipe),
        variant=recipe.variant,
        mode=recipe.mode,
        repeats=recipe.expand_repeats,
        tokenizer=tokenizer,
    )
    args = grpo_config(recipe, output_dir, stops)
    peft_config = None
    if recipe.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=recipe.lora_r,
            lora_alpha=recipe.lora_alpha,
            lora_dropout=recipe.lora_dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    log_path = output_dir / LOG_FILE
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=args,
        train_dataset=build_dataset(examples, tokenizer, recipe, context),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[_log_callback(log_path)],
    )
    if progress is not None:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(_progress_callback(progress))
    trainer.train(resume_from_checkpoint=checkpoint)
    final_dir = save_policy(trainer.model, tokenizer, output_dir / "final", recipe)
    return TrainResult(output_dir, final_dir, log_path, trainer.state.global_step)


def save_policy(model: Any, tokenizer: Any, final_dir: Path, recipe: TrainRecipe) -> Path:
    """Save a normal HF folder (LoRA merged) plus policy.json, which tells eval how to prompt it."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    final_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(final_dir)
    tokenizer.save_pretrained(final_dir)
    policy = {**asdict(recipe.prompt_settings()), "base_model": recipe.model, "data": recipe.data}
    (final_dir / POLICY_FILE).write_text(json.dumps(policy, indent=2))
    return final_dir


def _prepare_output(output_dir: Path, recipe: TrainRecipe, resume: bool, get_last_checkpoint) -> str | None:
    """Write the recipe; on resume, check it matches the run's (only max_steps may change)."""
    recipe_path = output_dir / "recipe.json"
    checkpoint = None
    if resume:
        if not output_dir.is_dir() or (checkpoint := get_last_checkpoint(str(output_dir))) is None:
            raise DeepRetrievalError(f"{output_dir}: no checkpoint to resume from (run without --resume first)")
        if recipe_path.exists():
            previous = json.loads(recipe_path.read_text())
            current = recipe.model_dump()
            changed = [k for k in current if k != "max_steps" and previous.get(k) != current[k]]
            if changed:
                raise DeepRetrievalError(f"{recipe_path}: --resume with changed settings: {', '.join(changed)}")
    elif output_dir.exists() and any(output_dir.glob("checkpoint-*")):
        raise DeepRetrievalError(f"{output_dir} already holds a run; use --resume or another --output-dir")
    output_dir.mkdir(parents=True, exist_ok=True)
    recipe_path.write_text(json.dumps(recipe.model_dump(), indent=2))
    return checkpoint


def read_log(path: Path) -> list[dict]:
    """The training log, one dict per logged step (the last entry wins when a resumed run re-logs a step)."""
    by_step: dict[int, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                by_step.setdefault(record["step"], {}).update(record)
    return [by_step[s] for s in sorted(by_step)]


def _completion_text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[0], dict):
        return str(completion[0].get("content", ""))
    return str(completion)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
