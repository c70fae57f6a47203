"""verl (volcengine/verl) as the trainer: a recipe's data as verl's RL dataset, and verl's rollouts scored by the
recipe's own task, reward preset and backend.

``deepretrieval export verl RECIPE --out DIR`` (:func:`export_verl`) writes into DIR:

- ``train.parquet``, ``val.parquet``: one row per judged example of the two splits, in verl's schema:
  ``data_source`` (``deepretrieval/<task>/<collection>``), ``prompt`` (the task's chat messages under the
  recipe's prompt settings, retrieved context included when the mode shows it), ``ability``, ``reward_model``
  (``{"style": "rule", "ground_truth": {"targets": [{"id", "grade"}, ...]}}``) and ``extra_info`` (``example_id``,
  ``split``, ``index``, the need as ``question``, the example's JSON-able ``meta`` as JSON text): what
  ``Task.to_verl_row`` gives, so every family exports and nothing here names one;
- ``recipe.yaml``: the recipe (data paths made absolute), which the reward reads;
- ``reward.py``: verl's custom reward function file, ``compute_score`` (verl's per-sample reward managers: the
  calls its threads make at once are scored together, in one backend call) and ``compute_score_batch`` (the
  ``batch`` reward manager of older verl: the whole batch in one backend call); a few lines that call
  :func:`score_one` / :func:`score_many` here;
- ``run_grpo.sh`` and ``run_ppo.sh`` (GRPO, and PPO with a critic, the original DeepRetrieval's choice), which
  share ``verl_common.sh``: ``python3 -m verl.trainer.main_ppo`` with the files above and explicit batch and
  memory settings, each overridable from the environment or by further ``key=value`` arguments.

Scoring a completion (:class:`VerlScorer`) is training's own path: ``Task.from_verl_row`` rebuilds the example
from its row, then :class:`~deepretrieval.tasks.TaskReward` parses, builds the action, executes the batch with one
de-duplicated backend call and applies the recipe's reward preset. verl applies the chat template with the
generation prompt and pre-fills nothing, so the policy writes the whole answer (``<answer>…</answer>``): the
reward reads completions as not pre-filled. The task, the reward adapter and the backend are built once per
process (the first call), from ``recipe.yaml``'s ``backend:`` section or, when set, ``DEEPRETRIEVAL_BACKEND``
(a whole ``backend:`` mapping as YAML) or ``DEEPRETRIEVAL_BACKEND_URL`` (``{kind: remote, url: …}``: searches
go to ``deepretrieval serve search``). A search that still fails after the backend's retries raises
``SearchFailure`` out of the reward function: verl's reward worker fails and training stops, rather than train
on a number no search gave. verl's workers import ``deepretrieval`` (it must be installed where verl runs), and
an example's metadata names files by path (a SQL example's database): the reward process must see them there.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..errors import DeepRetrievalError, SearchFailure
from ..prompts import PromptSettings
from ..recipe import TrainRecipe, load_recipe
from ..search.specs import HttpSpec
from ..tasks import Task, TaskReward
from ..tasks.base import show_context
from ..train import reward_config, trainable
from ..types import Collection, Example

RECIPE_FILE = "recipe.yaml"
TEMPLATES = ("reward.py", "verl_common.sh", "run_grpo.sh", "run_ppo.sh")
BACKEND_ENV = "DEEPRETRIEVAL_BACKEND"  # a whole backend: mapping, as YAML
BACKEND_URL_ENV = "DEEPRETRIEVAL_BACKEND_URL"  # http://host:8000: {kind: remote, url: ...}
DEFAULT_MODEL = "Qwen/Qwen2.5-3B-Instruct"
# verl pre-fills nothing: the policy writes the answer's opening (``<answer>{"query": "``) the prompt pre-fills
# for our own trainer, and its closing tag: tokens on top of the recipe's completion length.
ANSWER_TAG_TOKENS = 32


@dataclass(frozen=True)
class VerlExport:
    """What :func:`export_verl` wrote: the folder, its files, and the rows of each parquet file."""

    out: Path
    files: tuple[Path, ...]
    rows: Mapping[str, int]


def data_source(task: Task, collection: Collection) -> str:
    return f"deepretrieval/{task.name}/{collection.name}"


def verl_rows(
    task: Task, examples: Sequence[Example], settings: PromptSettings, *, split: str, source: str
) -> list[dict[str, Any]]:
    """verl's rows for ``examples`` (their context already shown), numbered from 0 in ``extra_info.index``."""
    rows = []
    for index, example in enumerate(examples):
        row = task.to_verl_row(example, settings)
        row["extra_info"] = {**row["extra_info"], "split": split, "index": index}
        rows.append({"data_source": source, **row})
    return rows


def export_verl(
    recipe: TrainRecipe,
    out: Path,
    *,
    split: str = "train",
    val_split: str = "dev",
    collection: Collection | None = None,
    backend: Any = None,
) -> VerlExport:
    """Write the recipe's ``split`` and ``val_split`` as verl's RL dataset, with the recipe, the reward module and
    the launch scripts, into ``out`` (see the module docstring). ``collection`` / ``backend``: already loaded
    (the backend is needed only when the prompts show retrieved context)."""
    from ..data import load_collection

    task = recipe.task_family()
    settings = recipe.prompt_settings()
    task.check(settings)
    if split == val_split:
        raise DeepRetrievalError(f"--val-split must not be the training split ({split!r}): name a held-out one")
    if collection is None:
        collection = load_collection(recipe.data, corpus=_path(recipe.corpus), seed=recipe.seed)
    context = None
    if task.needs_context(settings):
        backend = backend if backend is not None else task.backend(collection, recipe.backend)
        context = task.context(backend, collection, settings)
    out.mkdir(parents=True, exist_ok=True)
    source = data_source(task, collection)
    written: list[Path] = []
    counts: dict[str, int] = {}
    longest = 0
    for name, which in (("train", split), ("val", val_split)):
        examples, _ = trainable(collection.split(which))
        if not examples:
            raise DeepRetrievalError(f"split {which!r} of {collection.name!r} has no judged example to export")
        rows = verl_rows(task, show_context(task, examples, settings, context), settings, split=which, source=source)
        written.append(write_parquet(rows, out / f"{name}.parquet"))
        counts[name] = len(rows)
        longest = max(longest, *(sum(len(m["content"]) for m in row["prompt"]) for row in rows))
    written.append(out / RECIPE_FILE)
    written[-1].write_text(portable_recipe(recipe), encoding="utf-8")
    values = {
        "MODEL": DEFAULT_MODEL,
        "MAX_PROMPT_LENGTH": prompt_budget(longest),
        "MAX_RESPONSE_LENGTH": (recipe.max_completion_length or 64) + ANSWER_TAG_TOKENS,
        "GROUP_SIZE": recipe.num_generations,
        "KL_COEF": recipe.beta or 0.001,
        "TEMPERATURE": recipe.temperature,
        "EXPERIMENT": f"{task.name}-{collection.name}",
    }
    written += [render_template(name, out, values) for name in TEMPLATES]
    return VerlExport(out, tuple(written), counts)


def write_parquet(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """``rows`` as a parquet file (columns and nested types inferred by pyarrow, as ``datasets`` reads them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(list(rows)), path)
    return path


def portable_recipe(recipe: TrainRecipe) -> str:
    """The recipe as YAML, its data paths absolute: the reward process may start in another folder."""
    import yaml

    values = recipe.model_dump()
    for key in ("data", "corpus"):
        if values.get(key) and Path(values[key]).exists():
            values[key] = str(Path(values[key]).resolve())
    header = "# The recipe verl's reward (reward.py) scores with: its task, reward preset and backend.\n"
    return header + yaml.safe_dump(values, sort_keys=False, allow_unicode=True)


def prompt_budget(chars: int) -> int:
    """A prompt length in tokens that holds a prompt of ``chars`` characters with its chat template: at most a
    token per 3 characters of English, plus the template's own tokens, in steps of 256."""
    return max(512, -(-(chars // 3 + 128) // 256) * 256)


def render_template(name: str, out: Path, values: Mapping[str, object]) -> Path:
    """``integrations/templates/<name>`` with each ``{{KEY}}`` replaced, written to ``out`` (scripts executable)."""
    text = (files("deepretrieval.integrations") / "templates" / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    path = out / name
    path.write_text(text, encoding="utf-8")
    if name.endswith(".sh"):
        path.chmod(0o755)
    return path


# -- scoring verl's rollouts ------------------------------------------------------------------------------


class VerlScorer:
    """Scores verl's completions with a task's reward adapter; thread-safe (verl's reward loop calls the reward
    function from several threads at once)."""

    def __init__(self, task: Task, reward: TaskReward) -> None:
        self.task, self.reward = task, reward
        self.lock = threading.Lock()  # the reward adapter's state: one batch at a time
        self.turn = threading.Lock()  # whose thread scores what is waiting (``score_one``)
        self.waiting: list[tuple[tuple[str, Mapping[str, Any], Mapping[str, Any] | None], Future]] = []
        self.waiting_lock = threading.Lock()

    def score_one(
        self, completion: str, ground_truth: Mapping[str, Any], extra_info: Mapping[str, Any] | None
    ) -> dict[str, float]:
        """One completion's record, scored together with those other threads ask for meanwhile: verl 0.9's reward
        loop calls the reward function once per completion, from a pool of threads. Whoever finds no batch being
        scored scores everything waiting in one backend call; a failure reaches every caller of that batch."""
        mine: Future = Future()
        with self.waiting_lock:
            self.waiting.append(((completion, ground_truth, extra_info), mine))
        with self.turn:
            if not mine.done():
                with self.waiting_lock:
                    batch, self.waiting = self.waiting, []
                try:
                    records = self.score(*(list(column) for column in zip(*(item for item, _ in batch), strict=True)))
                except BaseException as exc:
                    for _, future in batch:
                        future.set_exception(exc)
                else:
                    for (_, future), record in zip(batch, records, strict=True):
                        future.set_result(record)
        return mine.result()

    def score(
        self,
        completions: Sequence[str],
        ground_truths: Sequence[Mapping[str, Any]],
        extra_infos: Sequence[Mapping[str, Any] | None],
    ) -> list[dict[str, float]]:
        """One record per completion: ``score`` (the reward), ``metric`` (the preset's metric; 0 when nothing
        was searched) and ``format_ok`` (1 or 0). The batch is executed with one backend call."""
        examples = [
            self.task.from_verl_row(truth, info or {}) for truth, info in zip(ground_truths, extra_infos, strict=True)
        ]
        with self.lock:
            try:
                self.reward.add_examples(examples)
                results = self.reward.score_batch([str(c) for c in completions], [e.id for e in examples])
            except SearchFailure as exc:
                raise SearchFailure(f"deepretrieval's verl reward: the backend failed ({exc}); stopping") from exc
        for result in results:
            if result.total is None:  # a failure the adapter did not raise: never a number either
                raise SearchFailure(f"deepretrieval's verl reward: the backend failed ({result.failure}); stopping")
        return [
            {"score": float(r.total), "metric": float(r.metric or 0.0), "format_ok": float(r.format_ok)}  # type: ignore[arg-type]
            for r in results
        ]


def backend_section(recipe: TrainRecipe, environ: Mapping[str, str]) -> dict[str, Any]:
    """The backend the reward uses: ``$DEEPRETRIEVAL_BACKEND`` (YAML), else ``$DEEPRETRIEVAL_BACKEND_URL`` as a
    remote backend, else the recipe's ``backend:``."""
    import yaml

    if text := environ.get(BACKEND_ENV, "").strip():
        value = yaml.safe_load(text)
        if not isinstance(value, dict):
            raise DeepRetrievalError(f"${BACKEND_ENV}: a backend: mapping as YAML, e.g. '{{kind: bm25}}'; got {text!r}")
        return value
    if url := environ.get(BACKEND_URL_ENV, "").strip():
        return {"kind": "remote", "url": url}
    return dict(recipe.backend)


def load_scorer(recipe_path: Path, environ: Mapping[str, str] | None = None) -> VerlScorer:
    """The task, backend and reward adapter of an exported recipe (loads the collection only for a backend built
    from it: not for an HTTP or remote one)."""
    from ..data import load_collection

    environ = os.environ if environ is None else environ
    recipe = load_recipe(recipe_path, {})
    task = recipe.task_family()
    spec = task.backend_spec(backend_section(recipe, environ))
    remote = isinstance(spec, HttpSpec) or spec.kind == "remote"
    collection = None if remote else load_collection(recipe.data, corpus=_path(recipe.corpus), seed=recipe.seed)
    backend = task.backend(collection, spec)  # type: ignore[arg-type]
    # One failed batch (after the backend's own retries) stops verl: no zero reward stands in for a search.
    reward = TaskReward(
        task, backend, [], reward_config(recipe, task), recipe.prompt_settings(), prefilled=False, max_failed_batches=1
    )
    return VerlScorer(task, reward)


_SCORERS: dict[tuple[str, str, str], VerlScorer] = {}
_SCORERS_LOCK = threading.Lock()


def scorer(recipe_path: str | Path) -> VerlScorer:
    """This process's scorer for ``recipe_path`` (and the backend variables as they are now), built once."""
    key = (str(Path(recipe_path).resolve()), os.environ.get(BACKEND_ENV, ""), os.environ.get(BACKEND_URL_ENV, ""))
    with _SCORERS_LOCK:
        if key not in _SCORERS:
            _SCORERS[key] = load_scorer(Path(key[0]))
        return _SCORERS[key]


def score_one(
    recipe_path: str | Path, solution_str: str, ground_truth: Mapping[str, Any], extra_info: Mapping[str, Any] | None
) -> dict[str, float]:
    """verl's ``compute_score`` for one completion (the exported ``reward.py`` calls it); concurrent calls are
    scored in batches (``VerlScorer.score_one``)."""
    return scorer(recipe_path).score_one(solution_str, ground_truth, extra_info)


def score_many(
    recipe_path: str | Path,
    solution_strs: Sequence[str],
    ground_truths: Sequence[Mapping[str, Any]],
    extra_infos: Sequence[Mapping[str, Any] | None] | None,
) -> list[dict[str, float]]:
    """verl's ``compute_score_batch`` (its ``batch`` reward manager): the whole batch in one backend call."""
    infos = [None] * len(solution_strs) if extra_infos is None else list(extra_infos)
    return scorer(recipe_path).score(list(solution_strs), list(ground_truths), infos)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None
