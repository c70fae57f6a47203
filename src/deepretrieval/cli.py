"""The `deepretrieval` command line."""

from __future__ import annotations

import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import DeepRetrievalError
from .feedback import FeedbackSettings
from .search.specs import BM25_METHODS, BM25Spec

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train language models to search.")
console = Console(stderr=True)
out = Console()

F = TypeVar("F", bound=Callable)


@app.callback()
def _setup() -> None:
    """Keep the screen for progress and results: silence library noise we cannot fix at its cause."""
    import os
    import warnings

    # transformers draws a "Loading weights" bar per model load between our own bars (it reads this
    # variable when first imported, which happens later, inside a command).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    # TRL 1.16 calls transformers' `gradient_checkpointing*` names, deprecated in transformers 5 ("removed in
    # v6"): one FutureWarning per generation step, about code that is not ours.
    warnings.filterwarnings("ignore", message=r".*is deprecated and will be removed in v6", category=FutureWarning)


DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        help="'demo', 'literature-demo', 'trials-demo', 'qa-demo', 'sql-demo' (generated; options after '?', as "
        "'literature-demo?held_out_conditions=6'), a BEIR folder, a SMART folder (Cranfield, MED), a Spider or BIRD "
        "folder, an examples, reviews or QA .jsonl",
    ),
]
SeedOpt = Annotated[int, typer.Option(help="Seed for generated data and for splitting collections without splits")]
CorpusOpt = Annotated[Path | None, typer.Option(help="corpus.jsonl for a .jsonl of examples (default: beside it)")]
IndexOpt = Annotated[
    Path | None, typer.Option("--index", help="The task backend's index folder (built there if absent)")
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="The task's backend settings as a YAML mapping, as a recipe's backend: section "
        "(e.g. '{kind: bm25, k1: 1.2}', '{kind: boolean, schema: trials}')",
    ),
]


def clean_errors(fn: F) -> F:
    """Turn a user-fixable error into one clean line and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DeepRetrievalError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/] (partial results are kept; run the same command to resume)")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def training_progress(bar: Progress):
    """A train() progress hook: one bar for the GRPO steps, showing the latest reward and the family's metric."""
    from .runs import family_stat

    state: dict[str, int] = {}

    def report(step: int, total: int, logs: dict) -> None:
        if "task" not in state:
            state["task"] = bar.add_task("GRPO steps", total=total)
        values = [("reward", logs.get("reward")), family_stat(logs, "metric") or ("metric", None)]
        shown = [f"{k} {v:.3f}" for k, v in values if isinstance(v, float | int)]
        bar.update(state["task"], completed=step, description=" ".join(["GRPO steps", *shown]))

    return report


def progress_bar(*, disable: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=disable,
    )


def _bm25_spec(k1, b, method, stemmer, stopwords) -> dict:
    """The BM25 settings given on the command line (the rest: an existing index's, or the defaults)."""
    given = {"k1": k1, "b": b, "method": method, "stemmer": stemmer, "stopwords": stopwords}
    return {k: v for k, v in given.items() if v is not None}


def yaml_mapping(flag: str, text: str | None) -> dict[str, Any]:
    """A mapping given on the command line as YAML (``--backend '{kind: bm25, k1: 1.2}'``); {} when absent."""
    import yaml

    if text is None:
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeepRetrievalError(f"{flag}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(value, dict):
        raise DeepRetrievalError(f"{flag}: a mapping such as '{{kind: bm25, k1: 1.2}}', got {text!r}")
    return value


def backend_spec(family, saved: dict, backend: str | None, flags: dict) -> dict:
    """A backend section: a trained run's, then ``--backend``, then the flags of the task's own backend settings
    (``--k1`` …: only for a family whose backend has them, never merged into another's)."""
    foreign = [name for name in flags if name not in family.backend_flags]
    if foreign:
        raise DeepRetrievalError(
            f"--{foreign[0]}: the {family.name} task's backend has no such setting; give its settings with "
            "--backend '{...}'"
        )
    return {**saved, **yaml_mapping("--backend", backend), **flags}


# BM25's flags: their defaults are the spec's (search.specs.BM25Spec), an existing index's when it is opened.
K1Opt = Annotated[
    float | None,
    typer.Option(help=f"BM25 k1 (tasks with a BM25 backend) [default: {BM25Spec.default('k1')}, or the index's]"),
]
BOpt = Annotated[
    float | None,
    typer.Option(help=f"BM25 b (tasks with a BM25 backend) [default: {BM25Spec.default('b')}, or the index's]"),
]
MethodOpt = Annotated[
    str | None,
    typer.Option(help=f"BM25 variant: {', '.join(BM25_METHODS)} [default: {BM25Spec.default('method')}]"),
]
VariantOpt = Annotated[str | None, typer.Option(help="Model policies: direct | reasoning (default: as trained)")]
ModeOpt = Annotated[
    str | None,
    typer.Option(help="Model policies: rewrite | expand | expand-rm3 | select-rm3 | feedback (default: as trained)"),
]
StyleOpt = Annotated[str | None, typer.Option(help="Model policies: prompt style full | short (default: as trained)")]
RepeatsOpt = Annotated[int | None, typer.Option(help="Expand mode: times the user's query is repeated")]
MaxNewOpt = Annotated[int | None, typer.Option(help="Model policies: max new tokens")]
ContextOpt = Annotated[int | None, typer.Option(help="Model policies: top first-pass titles shown in the prompt")]
# One spelling everywhere, both forms accepted.
KOpt = Annotated[int, typer.Option("-k", "--k", min=1, help="How many hits")]
StemOpt = Annotated[
    str | None, typer.Option(help=f"Snowball stemmer language, or 'none' [default: {BM25Spec.default('stemmer')}]")
]
StopOpt = Annotated[
    str | None, typer.Option(help=f"Stopword list, or 'none' [default: {BM25Spec.default('stopwords')}]")
]


def per_task(value: Callable[[Any], object]) -> str:
    """``retrieval: …; literature: …; qa: …``: ``value`` of each task family, for help texts."""
    from .tasks import TASKS, get_task

    return "; ".join(f"{name}: {value(get_task(name))}" for name in TASKS)


def task_of(name: str | None, policies: list[str]):
    """The task to evaluate (``--task``, else the first trained run's, else the default family) and the backend
    settings a trained run recorded (command-line flags go on top)."""
    from .policies.llm import read_policy_settings, resolve_run_dir
    from .tasks import DEFAULT_TASK, get_task

    for spec in policies:
        folder = Path(resolve_run_dir(spec))
        saved = read_policy_settings(folder) if folder.is_dir() else {}
        if "task" in saved and (name is None or name == saved["task"]):
            return get_task(saved["task"]), dict(saved.get("backend") or {})
    return get_task(name or DEFAULT_TASK), {}


def prompt_flags(variant, mode, expand_repeats, max_new_tokens, context_docs, style=None) -> dict:
    """The prompt settings given on the command line; each overrides only itself (see make_policy)."""
    given = {
        "variant": variant,
        "mode": mode,
        "expand_repeats": expand_repeats,
        "max_new_tokens": max_new_tokens,
        "context_docs": context_docs,
        "style": style,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if given:
        from .prompts import PromptSettings

        PromptSettings().replace(**given)  # validates the values, with a message naming the setting
    return given


def load(data: str, seed: int, corpus: Path | None):
    from .data import load_collection

    with console.status(f"loading {data}"):
        collection = load_collection(data, corpus=corpus, seed=seed)
    for warning in collection.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    return collection


def open_searcher(collection, index: Path | None, spec: dict | None = None):
    """The BM25 index of ``collection`` at ``index`` (or in the cache), built there when absent."""
    from .tasks import get_task

    with console.status(f"opening the index of {len(collection.documents):,} documents"):
        return get_task("retrieval").backend(collection, spec or {}, index=index)


@app.command()
@clean_errors
def info(data: DataOpt, seed: SeedOpt = 0, corpus: CorpusOpt = None) -> None:
    """Describe a collection: documents, queries, splits and judgments."""
    collection = load(data, seed, corpus)
    table = Table(title=f"{collection.name}: {len(collection.documents):,} documents")
    for column in ("split", "queries", "judged relevant", "mean relevant / query"):
        table.add_column(column)
    for name in [*collection.splits, "all"]:
        examples = collection.split(name)
        relevant = sum(len(e.relevant) for e in examples)
        table.add_row(name, str(len(examples)), str(relevant), f"{relevant / max(len(examples), 1):.1f}")
    out.print(table)


@app.command()
@clean_errors
def index(
    data: DataOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="Index folder to write")],
    seed: SeedOpt = 0,
    corpus: CorpusOpt = None,
    k1: K1Opt = None,
    b: BOpt = None,
    method: MethodOpt = None,
    stemmer: StemOpt = None,
    stopwords: StopOpt = None,
) -> None:
    """Build a BM25 index of a collection's documents and save it (memory-mappable)."""
    from .search.bm25 import BM25Searcher
    from .tasks.retrieval import bm25_settings

    collection = load(data, seed, corpus)
    settings = bm25_settings(_bm25_spec(k1, b, method, stemmer, stopwords))
    with console.status(f"indexing {len(collection.documents):,} documents"):
        searcher = BM25Searcher.build(collection.documents, settings)
    searcher.save(out_dir)
    out.print(f"indexed {len(collection.documents):,} documents of {collection.name} into {out_dir}")


@app.command()
@clean_errors
def search(
    query: Annotated[str, typer.Argument(help="Query text")],
    index: Annotated[Path | None, typer.Option("--index", help="Index folder from `deepretrieval index`")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Collection (for titles; indexed if no --index)")] = None,
    k: KOpt = 10,
    seed: SeedOpt = 0,
) -> None:
    """Run one query and print the top hits."""
    from .search.bm25 import BM25Searcher

    if index is None and data is None:
        raise DeepRetrievalError("give --index (a folder from `deepretrieval index`) or --data")
    collection = load(data, seed, None) if data else None
    searcher = open_searcher(collection, index) if collection else BM25Searcher.load(index)
    titles = {d.id: d.title or d.text[:80] for d in collection.documents} if collection else {}
    table = Table(title=query)
    for column in ("rank", "doc", "score", "title"):
        table.add_column(column)
    for rank, hit in enumerate(searcher.search([query], k)[0], start=1):
        table.add_row(str(rank), hit.doc_id, f"{hit.score:.3f}", titles.get(hit.doc_id, ""))
    out.print(table)


@app.command("eval")
@clean_errors
def eval_command(
    data: DataOpt,
    policy: Annotated[
        list[str],
        typer.Option(
            "--policy",
            help="original | prf | oracle | a training run dir | a model name | openai:<model>@<url> (repeatable)",
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Evaluation folder (resumable; policies accumulate)")],
    split: Annotated[str, typer.Option(help="train | dev | test | all (or the collection's own splits)")] = "test",
    k: Annotated[
        int | None,
        typer.Option(
            "-k",
            "--k",
            min=1,
            help="Retrieval depth; one shallower than a measure the task reports is refused (default: the "
            f"deepest cut-off the task reports — {per_task(lambda t: t.depth)})",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Queries per policy/search batch")] = 32,
    index: IndexOpt = None,
    backend: BackendOpt = None,
    seed: SeedOpt = 0,
    corpus: CorpusOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Discard earlier runs of these policies in --out")] = False,
    variant: VariantOpt = None,
    mode: ModeOpt = None,
    expand_repeats: RepeatsOpt = None,
    max_new_tokens: MaxNewOpt = None,
    context_docs: ContextOpt = None,
    prompt_style: StyleOpt = None,
    prf_docs: Annotated[int, typer.Option(help="PRF: feedback documents")] = FeedbackSettings.fb_docs,
    prf_terms: Annotated[int, typer.Option(help="PRF: expansion terms")] = FeedbackSettings.fb_terms,
    prf_weight: Annotated[
        float, typer.Option(help="PRF: weight of the original query")
    ] = FeedbackSettings.original_weight,
    k1: K1Opt = None,
    b: BOpt = None,
    method: MethodOpt = None,
    stemmer: StemOpt = None,
    stopwords: StopOpt = None,
    task: Annotated[str | None, typer.Option(help="Task family (default: a trained run's, else retrieval)")] = None,
) -> None:
    """Evaluate policies on a split: runs.jsonl, metrics.json, report.md and comparison.png in --out."""
    from .evaluate import EvalSettings, evaluate
    from .policies import make_policy
    from .report import markdown_table

    collection = load(data, seed, corpus)
    family, saved = task_of(task, policy)
    spec = backend_spec(family, saved, backend, _bm25_spec(k1, b, method, stemmer, stopwords))
    with console.status(f"opening the {family.name} backend for {len(collection.documents):,} documents"):
        searcher = family.backend(collection, spec, index=index)
    prf = FeedbackSettings(fb_docs=prf_docs, fb_terms=prf_terms, original_weight=prf_weight)
    prompt = prompt_flags(variant, mode, expand_repeats, max_new_tokens, context_docs, prompt_style)
    policies = [
        make_policy(name, task=family, backend=searcher, prf=prf, prompt=prompt, collection=collection)
        for name in policy
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    with progress_bar() as bar:

        def track(slug: str, total: int):
            task = bar.add_task(slug, total=total)
            return lambda n: bar.advance(task, n)

        evaluate(
            collection,
            split,
            policies,
            searcher,
            out_dir,
            EvalSettings(k=k, batch_size=batch_size),
            task=family,
            overwrite=overwrite,
            progress=track,
        )
    from .evaluate import load_policy_metrics

    out.print(markdown_table(load_policy_metrics(out_dir)), markup=False, highlight=False)  # "[expand]" is no markup
    out.print(f"\nwrote {out_dir}/metrics.json, report.md, comparison.png")


def _recipe_help(name: str) -> str:
    """A recipe field's help: its description and default (flags default to None so that a YAML recipe can set
    them); a field whose default is the task's shows each family's."""
    from .recipe import TASK_DEFAULT_FIELDS, TrainRecipe, task_defaults

    field = TrainRecipe.model_fields[name]
    text = (field.description or name.replace("_", " ")).rstrip(".")
    if name == "task":
        from .tasks import TASKS

        text += ": " + " | ".join(TASKS)
    if name == "mode":
        text += ". Modes — " + per_task(lambda t: ", ".join(t.modes))
    if name == "reward":
        text += ". Presets — " + per_task(lambda t: ", ".join(t.presets))
    if name in TASK_DEFAULT_FIELDS:
        return f"{text} (default: the task's — {per_task(lambda t: task_defaults(t)[name])})"
    if _flag_type(field.annotation) is str and _is_mapping(field.annotation):
        text += ", as a YAML mapping"
    default = field.get_default(call_default_factory=True)
    return f"{text} (default: {'none' if default is None else default})"


def _is_mapping(annotation: Any) -> bool:
    return annotation is dict or typing.get_origin(annotation) is dict


def _flag_type(annotation: Any) -> type:
    """The command-line type of a recipe field: without None; a Literal's choices are text (the recipe checks
    them), a mapping is YAML text."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return type(typing.get_args(annotation)[0])
    return str if _is_mapping(annotation) else annotation


def _train_signature() -> inspect.Signature:
    """``train``'s parameters: the recipe file, one flag per recipe field (so every field has one), ``--resume``."""
    from .recipe import TrainRecipe

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    recipe = Annotated[Path | None, typer.Argument(help="YAML recipe (flags override its fields)", show_default=False)]
    fields = [
        inspect.Parameter(
            name,
            kind,
            default=None,
            annotation=Annotated[
                _flag_type(field.annotation) | None, typer.Option(help=_recipe_help(name), show_default=False)
            ],
        )
        for name, field in TrainRecipe.model_fields.items()
    ]
    resume = Annotated[bool, typer.Option(help="Continue from the last checkpoint in --output-dir")]
    return inspect.Signature(
        [
            inspect.Parameter("recipe", kind, default=None, annotation=recipe),
            *fields,
            inspect.Parameter("resume", kind, default=False, annotation=resume),
        ]
    )


TRAIN_HELP = (
    "Train a query-writing policy with GRPO against the task's backend.\n\n"
    "Every recipe field (a YAML file, or these flags on top of it) has a default: the best recipe measured "
    "on 2 CPU cores; the mode, context titles, answer length and reward preset are the task's own. Further "
    "trl.GRPOConfig fields go in the recipe's `trl:` section (or --trl)."
)


def train_overrides(fields: dict[str, Any]) -> dict[str, Any]:
    """The recipe fields given as flags, mappings (``--backend``, ``--trl``) read from their YAML."""
    from .recipe import TrainRecipe

    return {
        name: yaml_mapping(f"--{name}", value) if _is_mapping(TrainRecipe.model_fields[name].annotation) else value
        for name, value in fields.items()
        if value is not None
    }


@clean_errors
def train(recipe: Path | None = None, resume: bool = False, **fields: Any) -> None:
    """Train a query-writing policy with GRPO against the task's backend (see TRAIN_HELP)."""
    from .distributed import is_main
    from .recipe import load_recipe
    from .runs import LAST_DIR, read_selection
    from .train import train as run_training

    config = load_recipe(recipe, train_overrides(fields))
    with progress_bar(disable=not is_main()) as bar:  # under accelerate launch: the main process reports
        result = run_training(config, resume=resume, progress=training_progress(bar))
    if not is_main():
        return
    out.print(f"trained {result.steps} steps; policy saved to {result.final_dir}")
    if chosen := read_selection(result.final_dir):
        out.print(
            f"it is step {chosen['step']}, the best on {chosen['split']} {chosen['measure']} ({chosen['value']:.4f}; "
            f"the start {chosen['start_value']}, the last step {chosen['last_value']}); the last step is in "
            f"{result.output_dir / LAST_DIR}",
            markup=False,
        )
    out.print(f"evaluate it: deepretrieval eval --data {config.data} --policy {result.output_dir} --out ...")


train.__signature__ = _train_signature()  # type: ignore[attr-defined]
app.command(help=TRAIN_HELP)(train)


@app.command()
@clean_errors
def rewrite(
    query: Annotated[str, typer.Argument(help="The user's query")],
    policy: Annotated[str, typer.Option(help="Training run dir, model name or openai:<model>@<url>")],
    data: Annotated[str | None, typer.Option(help="Collection to search with the rewrite")] = None,
    index: IndexOpt = None,
    k: KOpt = 10,
    variant: VariantOpt = None,
    mode: ModeOpt = None,
    expand_repeats: RepeatsOpt = None,
    max_new_tokens: MaxNewOpt = None,
    context_docs: ContextOpt = None,
    prompt_style: StyleOpt = None,
) -> None:
    """Print a policy's rewrite of QUERY (and its top hits when a collection or index is given)."""
    from .policies import make_policy
    from .types import Example

    family, spec = task_of(None, [policy])
    collection = load(data, 0, None) if data else None
    backend = None
    if collection is not None:
        backend = family.backend(collection, spec, index=index)
    elif index is not None:
        backend = family.open_backend(index, spec)  # the policy's task's backend, as the run recorded it
    elif policy in ("prf", "oracle", *family.baselines()):
        raise DeepRetrievalError(f"the {policy} policy needs a collection to search: give --data or --index")
    prompt = prompt_flags(variant, mode, expand_repeats, max_new_tokens, context_docs, prompt_style)
    chosen = make_policy(policy, task=family, backend=backend, prompt=prompt, collection=collection)
    example = Example(id="cli", question=query, targets={})
    output = chosen.generate([example])[0]
    out.print(f"[bold]query sent:[/] {output.query}", highlight=False)
    if output.completion is not None:
        out.print(
            f"[dim]completion ({'format ok' if output.format_ok else 'format error'}):[/] {output.completion}",
            highlight=False,
        )
    if backend is not None:
        titles = {d.id: d.title or d.text[:80] for d in collection.documents} if collection else {}
        # The action as eval runs it: a weighted query (PRF) is searched with its weights, not as display text.
        outcome = family.execute([output.action], backend, k)[0]
        if outcome.error:
            out.print(f"[red]the backend refused the query:[/] {outcome.error}", highlight=False)
        for rank, hit in enumerate(outcome.ranking, start=1):
            out.print(f"{rank:>3}. {hit.doc_id}  {hit.score:.3f}  {titles.get(hit.doc_id, '')}", highlight=False)


@app.command()
@clean_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the demo writes its results")] = Path("runs/demo"),
    max_steps: Annotated[int | None, typer.Option(help="GRPO steps (default: the demo recipe's)")] = None,
    model: Annotated[str | None, typer.Option(help="Model (default: the embedded SmolLM2-135M)")] = None,
    shared_prefix: Annotated[
        bool | None,
        typer.Option(
            "--shared-prefix/--no-shared-prefix",
            help="Encode each group's prompt once (default: the recipe's, on); off: TRL's stock path",
        ),
    ] = None,
) -> None:
    """The main job on the embedded default: baselines, a short GRPO run, the trained policy, a table."""
    from .demo import run_demo
    from .recipe import demo_recipe

    chosen = {"max_steps": max_steps, "model": model, "shared_prefix": shared_prefix}
    updates = {k: v for k, v in chosen.items() if v is not None}
    recipe = demo_recipe().model_copy(update=updates)
    with progress_bar() as bar:

        def track(slug: str, total: int):
            task = bar.add_task(slug, total=total)
            return lambda n: bar.advance(task, n)

        result = run_demo(
            out_dir,
            recipe=recipe,
            progress=track,
            say=lambda m: bar.console.print(f"[bold]{m}"),
            train_progress=training_progress(bar),
        )
    out.print("\n[bold]demo collection (synthetic), held-out test split[/]\n")
    out.print(result.table, markup=False, highlight=False)
    out.print(f"\nwrote {out_dir}/demo.md, {result.curve}, {result.learning_curve}, {result.eval_dir}/report.md")


serve_app = typer.Typer(no_args_is_help=True, help="Local HTTP services (API emulators for offline runs and tests).")
app.add_typer(serve_app, name="serve")


@serve_app.command("emulator")
@clean_errors
def serve_emulator(
    service: Annotated[
        str, typer.Argument(help="pubmed (E-utilities esearch, efetch, esummary) | ctgov (ClinicalTrials.gov /studies)")
    ],
    data: DataOpt,
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless you mean otherwise)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port")] = 8765,
    seed: SeedOpt = 0,
    corpus: CorpusOpt = None,
    schema: Annotated[str | None, typer.Option(help="publications | trials (default: from the corpus)")] = None,
    index: Annotated[Path | None, typer.Option("--index", help="Boolean index folder (built there if absent)")] = None,
    mesh_tree: Annotated[
        Path | None,
        typer.Option(
            "--mesh-tree", help="NLM MeSH descriptor file (descYYYY.xml): MeSH searches explode to narrower headings"
        ),
    ] = None,
    fail_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of requests given a fault")] = 0.0,
    faults: Annotated[str, typer.Option(help="Fault kinds to draw from (comma-separated)")] = "429,500,503,slow,drop",
    retry_after: Annotated[float, typer.Option(min=0.0, help="Retry-After seconds in 429 / 503 replies")] = 1.0,
    slow_seconds: Annotated[float, typer.Option(min=0.0, help="Delay of a slow reply")] = 5.0,
    fault_seed: Annotated[int, typer.Option(help="Seed of the fault draws")] = 0,
    rate_limit: Annotated[
        float | None, typer.Option(min=0.0, help="Answer 429 above this many requests a second (NCBI: 3, or 10)")
    ] = None,
    log: Annotated[Path | None, typer.Option("--log", help="Append every request as a JSON line to this file")] = None,
    body_timeout: Annotated[
        float, typer.Option(min=0.001, help="Answer 408 to a request whose body has not arrived in full by then (s)")
    ] = 10.0,
) -> None:
    """Serve an emulator of PubMed E-utilities (esearch, efetch, esummary) or ClinicalTrials.gov /studies, answering
    from a local collection."""
    from .serve import BASE_PATHS, Faults, build_emulator, run

    kinds = tuple(k.strip() for k in faults.split(",") if k.strip())
    plan = Faults(fail_rate, kinds, retry_after=retry_after, slow_seconds=slow_seconds, seed=fault_seed)
    options = {
        "corpus": corpus,
        "seed": seed,
        "schema": schema,
        "index": index,
        "log_path": log,
        "mesh_tree": mesh_tree,
    }
    with console.status(f"opening the Boolean index of {data}"):
        emulator = build_emulator(service, data, faults=plan, rate_limit=rate_limit, **options)
    console.print(f"{service} emulator: backend.base_url: http://{host}:{port}{BASE_PATHS[service]}", highlight=False)
    run(emulator, host, port, body_timeout=body_timeout)


@serve_app.command("search")
@clean_errors
def serve_search(
    data: DataOpt,
    index: IndexOpt = None,
    backend_spec_text: Annotated[
        str | None,
        typer.Option(
            "--backend-spec",
            help="The task's backend as a recipe's backend: section: YAML ('{kind: bm25, k1: 1.2}') or a YAML file",
        ),
    ] = None,
    task: Annotated[
        str, typer.Option(help="Task family whose backend is served (retrieval, literature …)")
    ] = "retrieval",
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless you mean otherwise)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes, each holding the backend")] = 1,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="File whose first word is the bearer token clients must send (default: $DEEPRETRIEVAL_SERVICE_TOKEN)"
        ),
    ] = None,
    seed: SeedOpt = 0,
    corpus: CorpusOpt = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Most queries (texts, ids) in one request")] = 256,
    max_k: Annotated[int, typer.Option(min=1, help="Deepest k / topk a request may ask for")] = 10_000,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Largest request body (bytes)")] = 1 << 20,
    retrieve_topk: Annotated[int, typer.Option(min=1, help="/retrieve's depth when a request gives no topk")] = 3,
) -> None:
    """Serve a task's backend over HTTP: /search (and the text protocol's /search_weighted, /analyze,
    /doc_term_counts), Search-R1's /retrieve, /health, /docs. Clients: backend: {kind: remote, url: ...}."""
    from .service import ServiceConfig, build_service, read_token, run
    from .tasks import get_task

    family = get_task(task)
    text = backend_spec_text
    if text is not None and Path(text).expanduser().is_file():
        text = Path(text).expanduser().read_text(encoding="utf-8")
    spec = family.backend_spec(backend_spec(family, {}, text, {})).dump()  # refused here, with the field
    config = ServiceConfig(
        data=data,
        task=family.name,
        backend=spec,
        index=str(index) if index else None,
        corpus=str(corpus) if corpus else None,
        seed=seed,
        token_file=str(token_file) if token_file else None,
        max_batch=max_batch,
        max_k=max_k,
        max_body_bytes=max_body_bytes,
        retrieve_topk=retrieve_topk,
    )
    token = read_token(config)  # a bad --token-file is said before the index is opened
    collection = load(data, seed, corpus)
    with console.status(f"opening the {family.name} backend of {data}"):
        service = build_service(config, collection)
    console.print(
        f"serving {service.protocol} backend {service.description.get('backend', '?')} on http://{host}:{port} "
        f"({workers} worker{'s' * (workers > 1)}, {'a bearer token' if token else 'no token'}); clients: "
        f"backend: {{kind: remote, url: http://{host}:{port}}}",
        highlight=False,
    )
    run(service, host, port, workers=workers)


export_app = typer.Typer(no_args_is_help=True, help="A recipe's data and reward for another trainer.")
app.add_typer(export_app, name="export")


@export_app.command("verl")
@clean_errors
def export_verl(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe: its data, task, prompt settings, reward and backend")],
    folder: Annotated[Path, typer.Option("--out", help="Folder to write the parquet files, reward and scripts into")],
    split: Annotated[str, typer.Option(help="Split of train.parquet")] = "train",
    val_split: Annotated[str, typer.Option(help="Split of val.parquet (held out)")] = "dev",
) -> None:
    """Write RECIPE's data as verl's RL dataset (train.parquet, val.parquet), with the recipe, a reward module
    that scores with the recipe's task and backend (reward.py) and launch scripts (run_grpo.sh, run_ppo.sh)."""
    from .integrations.verl import export_verl as export
    from .recipe import load_recipe

    config = load_recipe(recipe, {})
    with console.status(f"exporting {config.data} for verl"):
        result = export(config, folder, split=split, val_split=val_split)
    rows = ", ".join(f"{name} {n} rows" for name, n in result.rows.items())
    out.print(f"wrote {folder}: {rows}; " + ", ".join(p.name for p in result.files), highlight=False)
    out.print(f"train with verl: bash {folder / 'run_grpo.sh'}  (or run_ppo.sh: PPO with a critic)", highlight=False)


def main() -> None:  # pragma: no cover - console entry alias
    app(sys.argv[1:])


if __name__ == "__main__":  # python -m deepretrieval.cli (accelerate launch -m deepretrieval.cli train ...)
    main()
