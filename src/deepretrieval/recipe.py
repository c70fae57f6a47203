"""Training recipes: one validated record, from YAML and/or command-line flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import DeepRetrievalError
from .prompts import PromptSettings


class TrainRecipe(BaseModel):
    """Everything a training run depends on. Unknown keys are errors (a typo must not be ignored).

    The defaults are the best recipe measured on 2 CPU cores (docs/BENCHMARKS.md): expand mode, the direct
    variant with a pre-filled answer, three context titles, the lenient recall reward. The README demo's
    recipe (``deepretrieval/recipes/demo.yaml``) is these defaults on the demo collection.
    """

    model_config = ConfigDict(extra="forbid")

    # data
    data: str = Field("demo", description="'demo', a BEIR folder, a SMART folder or an examples .jsonl")
    corpus: str | None = Field(None, description="corpus.jsonl for a .jsonl of examples")
    split: str = Field("train", description="split to train on")
    seed: int = Field(0, description="seed for data generation, splitting, sampling and initialisation")
    # task family and its backend
    task: str = Field("retrieval", description="task family (see deepretrieval.tasks.TASKS)")
    backend: dict[str, Any] = Field(
        default_factory=dict,
        description="the task's backend, e.g. {kind: bm25, k1: 0.9, b: 0.4, method: lucene, stemmer: english}",
    )
    # prompt and query
    variant: Literal["direct", "reasoning"] = "direct"
    mode: Literal["rewrite", "expand", "expand-rm3", "select-rm3", "feedback"] = "expand"
    expand_repeats: int = Field(1, ge=1, description="expand mode: times the user's query is repeated")
    context_docs: int = Field(3, ge=0, description="titles of the top-n first-pass hits shown in the prompt")
    prompt_style: Literal["full", "short"] = Field(
        "full", description="full instructions, or short ones (fewer prompt tokens: faster steps)"
    )
    # reward
    reward: str = Field("recall-lenient", description="reward preset (see deepretrieval.rewards.PRESETS)")
    reward_k: int | None = Field(None, ge=1, description="override the preset's metric depth k")
    # model
    model: str = Field("smollm2-135m", description="registry name, local HF folder or hub id")
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    # optimisation
    learning_rate: float = Field(2e-5, gt=0)
    warm_start_epochs: float = Field(
        0.0,
        ge=0,
        description="epochs of supervised fine-tuning on answers built from the train split's judgments, before "
        "GRPO (0: none; modes with demonstrations: select-rm3)",
    )
    warm_start_learning_rate: float = Field(5e-5, gt=0)
    warm_start_batch_size: int = Field(8, ge=1)
    max_steps: int = Field(24, ge=1)
    prompts_per_step: int = Field(2, ge=1)
    num_generations: int = Field(8, ge=2)
    max_completion_length: int = Field(32, ge=4)
    temperature: float = Field(1.0, gt=0)
    top_k: int = Field(50, ge=0, description="sample from the k likeliest tokens (0: all; transformers' default is 50)")
    top_p: float = Field(1.0, gt=0, le=1)
    beta: float = Field(0.0, ge=0, description="KL coefficient")
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    save_steps: int = Field(8, ge=1)
    logging_steps: int = Field(1, ge=1)
    bf16: bool = False
    use_vllm: bool = False
    activation_checkpointing: bool = Field(
        True, description="recompute activations in the backward pass (TRL's default: less memory, more time)"
    )
    trl: dict[str, Any] = Field(
        default_factory=dict, description="further trl.GRPOConfig fields, passed through as they are"
    )
    output_dir: str = "runs/train"

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
            raise DeepRetrievalError(f"recipe field 'task': {exc}") from None


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
    try:
        return TrainRecipe(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "recipe"
        source = f"{path}: " if path else ""
        raise DeepRetrievalError(f"{source}field {field!r}: {error['msg']}") from None
