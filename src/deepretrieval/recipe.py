"""Training recipes: one validated record, from YAML and/or command-line flags."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import DeepRetrievalError
from .prompts import PromptSettings
from .search.specs import SpecError

if TYPE_CHECKING:
    from .tasks import Task

# Fields whose default is the task family's (``task_defaults``): a retrieval default is no literature one.
TASK_DEFAULT_FIELDS = ("mode", "context_docs", "max_completion_length", "reward", "eval_measure")


def task_defaults(task: Task) -> dict[str, Any]:
    """The recipe values a task family gives the fields of ``TASK_DEFAULT_FIELDS`` that a recipe leaves out:
    its default prompt's mode, context titles and answer length, its default reward preset, and the measure that
    selects a run's final policy (its first)."""
    prompt = task.default_prompt()
    return {
        "mode": prompt.mode,
        "context_docs": prompt.context_docs,
        "max_completion_length": prompt.max_new_tokens,
        "reward": task.default_reward,
        "eval_measure": task.measures[0],
    }


class TrainRecipe(BaseModel):
    """Everything a training run depends on. Unknown keys are errors (a typo must not be ignored).

    The defaults are the best recipe measured on 2 CPU cores (docs/BENCHMARKS.md); the mode, the context
    titles, the answer length and the reward preset are the task family's (``task_defaults``), filled in at
    validation: for the retrieval task, expand mode, three context titles and the lenient recall reward, with
    the direct variant's pre-filled answer. The README demo's recipe (``deepretrieval/recipes/demo.yaml``) is
    these defaults on the demo collection. A mode or preset the task does not have is an error naming the field.
    Held-out selection (``eval_*``, ``early_stopping_patience``; ``selection``) evaluates on ``eval_split`` every
    ``save_steps`` by default, by the task's first measure; an ``eval_split`` equal to ``split`` is refused.
    """

    model_config = ConfigDict(extra="forbid")

    # data
    data: str = Field(
        "demo",
        description="'demo' or another generated collection (options after '?', as in "
        "'literature-demo?held_out_conditions=6'), a BEIR folder, a SMART folder or an examples .jsonl",
    )
    corpus: str | None = Field(None, description="corpus.jsonl for a .jsonl of examples")
    split: str = Field("train", description="split to train on")
    seed: int = Field(0, description="seed for data generation, splitting, sampling and initialisation")
    # task family and its backend
    task: str = Field("retrieval", description="task family (deepretrieval.tasks.TASKS)")
    backend: dict[str, Any] = Field(
        default_factory=dict,
        description="the task's backend, e.g. {kind: bm25, k1: 0.9, b: 0.4, method: lucene, stemmer: english}: "
        "checked against its kind's spec (search.specs; the task's default kind when absent) and kept as the "
        "spec's dump",
    )
    # prompt and query
    variant: Literal["direct", "reasoning"] = Field("direct", description="direct | reasoning (think first)")
    mode: Literal["rewrite", "expand", "expand-rm3", "select-rm3", "feedback"] | None = Field(
        None,
        description="rewrite | expand | expand-rm3 (RM3 after the expansion) | select-rm3 (RM3 from the results "
        "the model picks) | feedback (edit RM3 from a menu); the task's modes only",
    )
    expand_repeats: int = Field(1, ge=1, description="expand mode: times the user's query is repeated")
    context_docs: int | None = Field(
        None, ge=0, description="titles of the top-n first-pass hits shown in the prompt (sql: sample rows per table)"
    )
    prompt_style: Literal["full", "short"] = Field(
        "full", description="full instructions, or short ones (fewer prompt tokens: faster steps)"
    )
    # reward
    reward: str | None = Field(None, description="reward preset, one of the task's")
    reward_k: int | None = Field(None, ge=1, description="override the preset's metric depth k")
    # model
    model: str = Field("smollm2-135m", description="smollm2-135m | tiny-random | local HF folder | hub id")
    lora: bool = Field(False, description="train a LoRA adapter instead of all weights")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    # optimisation
    learning_rate: float = Field(2e-5, gt=0, description="learning rate")
    warm_start_epochs: float = Field(
        0.0,
        ge=0,
        description="epochs of supervised fine-tuning on answers built from the train split's judgments, before "
        "GRPO (0: none; with demonstrations: retrieval select-rm3, literature rewrite: pearl-growing queries)",
    )
    warm_start_learning_rate: float = Field(5e-5, gt=0, description="learning rate of the warm start")
    warm_start_batch_size: int = Field(8, ge=1, description="batch size of the warm start")
    max_steps: int = Field(24, ge=1, description="total optimisation steps")
    max_minutes: float | None = Field(
        None,
        gt=0,
        description="stop GRPO at the first step ending this many minutes after it began (its evaluations "
        "included; the warm start not), whatever max_steps says; none: max_steps only",
    )
    prompts_per_step: int = Field(2, ge=1, description="distinct prompts per step")
    num_generations: int = Field(8, ge=2, description="completions per prompt (the GRPO group)")
    max_completion_length: int | None = Field(None, ge=4, description="max completion tokens")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    top_k: int = Field(50, ge=0, description="sample from the k likeliest tokens (0: all; transformers' default is 50)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling: the smallest set of tokens holding p")
    beta: float = Field(0.0, ge=0, description="KL coefficient")
    loss_type: str = Field("dapo", description="grpo | dr_grpo | dapo | bnpo | ... (TRL's loss_type)")
    scale_rewards: str = Field("group", description="group | batch | none (TRL's scale_rewards)")
    save_steps: int = Field(8, ge=1, description="checkpoint every N steps")
    keep_checkpoints: int | None = Field(
        None,
        ge=1,
        description="checkpoint-N folders kept, the newest (each holds the optimizer state: 1.6 GB for SmolLM2-135M; "
        "RUN/best is saved apart); none: keep all",
    )
    logging_steps: int = Field(1, ge=1, description="log every N steps")
    bf16: bool = Field(False, description="bfloat16 training (a GPU)")
    use_vllm: bool = Field(False, description="generate with vLLM (a GPU; the stop tokens reach it)")
    activation_checkpointing: bool = Field(
        True, description="recompute activations in the backward pass (TRL's default: less memory, more time)"
    )
    shared_prefix: bool = Field(
        True,
        description="encode each group's prompt once, in the log-probs and when sampling (same result as TRL's "
        "stock path, faster: docs/BENCHMARKS.md)",
    )
    # held-out evaluation and checkpoint selection (``selection``)
    eval_steps: int | None = Field(
        None,
        ge=0,
        description="evaluate the policy on eval_split at the start, every N steps and at the last step; RUN/final "
        "is the best of them (0: never, RUN/final is the last step; none: every save_steps)",
    )
    eval_split: str = Field("dev", description="held-out split of those evaluations (never the training split)")
    eval_measure: str | None = Field(None, description="measure that chooses RUN/final, one of the task's")
    eval_limit: int | None = Field(None, ge=1, description="evaluate on the first N judged queries only (faster)")
    early_stopping_patience: int = Field(
        0, ge=0, description="stop after N evaluations without a better one (0: never)"
    )
    trl: dict[str, Any] = Field(
        default_factory=dict, description="further trl.GRPOConfig fields, passed through as they are"
    )
    output_dir: str = Field("runs/train", description="run folder (checkpoints, logs, final/)")

    @model_validator(mode="after")
    def _task_defaults(self) -> TrainRecipe:
        """Fill the fields left out with the task's defaults; refuse a mode or preset the task does not have."""
        task = self.task_family()
        for name, value in task_defaults(task).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.mode not in task.modes:
            raise DeepRetrievalError(
                f"field 'mode': the {task.name} task has no {self.mode!r} mode (it has {', '.join(task.modes)})"
            )
        if self.reward not in task.presets:
            raise DeepRetrievalError(
                f"field 'reward': the {task.name} task has no preset {self.reward!r} (it has {', '.join(task.presets)})"
            )
        self.backend = task.backend_spec(self.backend).dump()  # refused here: an unknown field or bad value
        if self.eval_steps is None:
            self.eval_steps = self.save_steps
        if self.eval_measure not in task.measures:
            raise DeepRetrievalError(
                f"field 'eval_measure': the {task.name} task reports no {self.eval_measure!r} "
                f"(it reports {', '.join(task.measures)})"
            )
        if self.eval_steps and self.eval_split == self.split:
            raise DeepRetrievalError(
                f"field 'eval_split': the held-out split must not be the training split ({self.split!r}); "
                "name another (dev) or set eval_steps: 0"
            )
        return self

    def backend_spec(self):
        """The typed spec of the ``backend:`` section (``search.specs``)."""
        return self.task_family().backend_spec(self.backend)

    def prompt_settings(self) -> PromptSettings:
        """How the policy is prompted: the same settings in training, evaluation and rewrite."""
        return PromptSettings(
            variant=self.variant,
            mode=self.mode,
            expand_repeats=self.expand_repeats,
            max_new_tokens=self.max_completion_length,
            context_docs=self.context_docs,
            style=self.prompt_style,
        )

    def task_family(self):
        """The task this recipe names (checked: a typo is an error naming the field)."""
        from .tasks import get_task

        try:
            return get_task(self.task)
        except DeepRetrievalError as exc:
            raise DeepRetrievalError(f"field 'task': {exc}") from None


def demo_recipe() -> TrainRecipe:
    """The README demo's recipe, read from the package's ``recipes/demo.yaml`` (the one copy of it)."""
    from importlib.resources import files

    resource = files("deepretrieval") / "recipes" / "demo.yaml"
    return load_recipe(Path(str(resource)), {})


def load_recipe(path: Path | None, overrides: dict[str, object]) -> TrainRecipe:
    """A recipe from YAML (if given) with command-line ``overrides`` on top; errors name the field."""
    import yaml

    values: dict[str, object] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise DeepRetrievalError(f"{path}: no such recipe file") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise DeepRetrievalError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise DeepRetrievalError(f"{path}: a recipe is a mapping of settings, got {type(loaded).__name__}")
        values.update(loaded or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    from_file = set(loaded or {}) - set(overrides) if path is not None else set()

    def source(*loc: object) -> str:
        """``path:line: `` of the key at ``loc`` when the file wrote it, ``path: `` otherwise."""
        if not path:
            return ""
        line = _line_of(path, loc) if loc and loc[0] in from_file else None
        return f"{path}:{line}: " if line else f"{path}: "

    try:
        return TrainRecipe(**values)
    except SpecError as exc:  # a backend: field (the task's spec of its kind)
        raise DeepRetrievalError(f"{source('backend', exc.field)}{exc}") from None
    except DeepRetrievalError as exc:  # the task's defaults and checks (``TrainRecipe._task_defaults``)
        field = str(exc).split("'")[1] if str(exc).startswith("field '") else None
        raise DeepRetrievalError(f"{source(field) if field else source()}{exc}") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "recipe"
        raise DeepRetrievalError(f"{source(*error['loc'])}field {field!r}: {error['msg']}") from None


def _line_of(path: Path, loc: tuple[object, ...]) -> int | None:
    """The line (1-based) of the deepest key of ``loc`` found in the YAML file at ``path``."""
    import yaml

    try:
        node = yaml.compose(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for key in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next(((k, v) for k, v in node.value if k.value == str(key)), None)
        if match is None:
            break
        line, node = match[0].start_mark.line + 1, match[1]
    return line
