"""The `deepretrieval` command line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import DeepRetrievalError

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
    typer.Option("--data", help="'demo', a BEIR folder, a SMART folder (Cranfield, MED) or examples .jsonl"),
]
SeedOpt = Annotated[int, typer.Option(help="Seed for generated data and for splitting collections without splits")]
CorpusOpt = Annotated[Path | None, typer.Option(help="corpus.jsonl for a .jsonl of examples (default: beside it)")]
IndexOpt = Annotated[Path | None, typer.Option("--index", help="BM25 index folder (built there if absent)")]


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
    """A train() progress hook: one bar for the GRPO steps, showing the latest reward and metric."""
    state: dict[str, int] = {}

    def report(step: int, total: int, logs: dict) -> None:
        if "task" not in state:
            state["task"] = bar.add_task("GRPO steps", total=total)
        shown = [f"{k} {logs[k]:.3f}" for k in ("reward", "retrieval/metric") if isinstance(logs.get(k), float | int)]
        bar.update(state["task"], completed=step, description=" ".join(["GRPO steps", *shown]))

    return report


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _bm25_settings(k1: float, b: float, method: str, stemmer: str, stopwords: str):
    from .search.bm25 import BM25Settings

    none = {"none", ""}
    return BM25Settings(
        k1=k1,
        b=b,
        method=method,
        stemmer=None if stemmer in none else stemmer,
        stopwords=None if stopwords in none else stopwords,
    )


K1Opt = Annotated[float, typer.Option(help="BM25 k1")]
BOpt = Annotated[float, typer.Option(help="BM25 b")]
MethodOpt = Annotated[str, typer.Option(help="BM25 variant: lucene, robertson, atire, bm25l, bm25+")]
VariantOpt = Annotated[str | None, typer.Option(help="Model policies: direct | reasoning (default: as trained)")]
ModeOpt = Annotated[str | None, typer.Option(help="Model policies: rewrite | expand (default: as trained)")]
RepeatsOpt = Annotated[int | None, typer.Option(help="Expand mode: times the user's query is repeated")]
MaxNewOpt = Annotated[int | None, typer.Option(help="Model policies: max new tokens")]
ContextOpt = Annotated[int | None, typer.Option(help="Model policies: top first-pass titles shown in the prompt")]
# One spelling everywhere, both forms accepted.
KOpt = Annotated[int, typer.Option("-k", "--k", min=1, help="How many hits")]
StemOpt = Annotated[str, typer.Option(help="Snowball stemmer language, or 'none'")]
StopOpt = Annotated[str, typer.Option(help="Stopword list ('en'), or 'none'")]


def prompt_flags(variant, mode, expand_repeats, max_new_tokens, context_docs) -> dict:
    """The prompt settings given on the command line; each overrides only itself (see make_policy)."""
    given = {
        "variant": variant,
        "mode": mode,
        "expand_repeats": expand_repeats,
        "max_new_tokens": max_new_tokens,
        "context_docs": context_docs,
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


def index_cache_dir() -> Path:
    """Where indexes built for ``--data`` without ``--index`` are kept (beside the model cache)."""
    from .models import cache_root

    return cache_root() / "indexes"


def open_searcher(collection, index: Path | None, settings=None):
    """Load the index at ``index`` (checked against the corpus and settings), or build it and save it there.

    ``settings`` None: whatever an existing index was built with (the defaults for a new one).
    Without ``index`` the index is cached under ``index_cache_dir()``, keyed by the corpus and the settings,
    so that repeated ``search`` / ``eval`` / ``rewrite`` calls on one collection index it once.
    """
    import hashlib
    import json
    from dataclasses import asdict

    from .search.bm25 import MANIFEST, BM25Searcher, BM25Settings, corpus_hash

    sha = corpus_hash(collection.documents)
    if index is None:
        settings = settings or BM25Settings()
        key = hashlib.sha256(json.dumps([sha, asdict(settings)], sort_keys=True).encode()).hexdigest()[:24]
        index = index_cache_dir() / key
    if (index / MANIFEST).exists():
        return BM25Searcher.load(index, expected_corpus_hash=sha, settings=settings)
    settings = settings or BM25Settings()
    with console.status(f"indexing {len(collection.documents):,} documents"):
        searcher = BM25Searcher.build(collection.documents, settings)
    searcher.save(index)
    return searcher


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
    k1: K1Opt = 0.9,
    b: BOpt = 0.4,
    method: MethodOpt = "lucene",
    stemmer: StemOpt = "english",
    stopwords: StopOpt = "en",
) -> None:
    """Build a BM25 index of a collection's documents and save it (memory-mappable)."""
    from .search.bm25 import BM25Searcher

    collection = load(data, seed, corpus)
    settings = _bm25_settings(k1, b, method, stemmer, stopwords)
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
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Retrieval depth")] = 1000,
    batch_size: Annotated[int, typer.Option(min=1, help="Queries per policy/search batch")] = 32,
    index: IndexOpt = None,
    seed: SeedOpt = 0,
    corpus: CorpusOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Discard earlier runs of these policies in --out")] = False,
    variant: VariantOpt = None,
    mode: ModeOpt = None,
    expand_repeats: RepeatsOpt = None,
    max_new_tokens: MaxNewOpt = None,
    context_docs: ContextOpt = None,
    prf_docs: Annotated[int, typer.Option(help="PRF: feedback documents")] = 10,
    prf_terms: Annotated[int, typer.Option(help="PRF: expansion terms")] = 10,
    prf_weight: Annotated[float, typer.Option(help="PRF: weight of the original query")] = 0.5,
    k1: K1Opt = 0.9,
    b: BOpt = 0.4,
    method: MethodOpt = "lucene",
    stemmer: StemOpt = "english",
    stopwords: StopOpt = "en",
) -> None:
    """Evaluate policies on a split: runs.jsonl, metrics.json, report.md and comparison.png in --out."""
    from .evaluate import EvalSettings, evaluate
    from .policies import PRFSettings, make_policy
    from .report import markdown_table

    collection = load(data, seed, corpus)
    searcher = open_searcher(collection, index, _bm25_settings(k1, b, method, stemmer, stopwords))
    prf = PRFSettings(fb_docs=prf_docs, fb_terms=prf_terms, original_weight=prf_weight)
    prompt = prompt_flags(variant, mode, expand_repeats, max_new_tokens, context_docs)
    policies = [
        make_policy(spec, searcher=searcher, prf=prf, prompt=prompt, documents=collection.documents) for spec in policy
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
            overwrite=overwrite,
            progress=track,
        )
    from .evaluate import load_policy_metrics

    out.print(markdown_table(load_policy_metrics(out_dir)))
    out.print(f"\nwrote {out_dir}/metrics.json, report.md, comparison.png")


def _recipe_help(name: str, text: str) -> str:
    """Help text with the recipe field's default (flags default to None so that a YAML recipe can set them)."""
    from .recipe import TrainRecipe

    default = TrainRecipe.model_fields[name].default
    return f"{text} (default: {'none' if default is None else default})"


def _train_opt(name: str, text: str, kind: type):
    return Annotated[kind | None, typer.Option(help=_recipe_help(name, text), show_default=False)]


def _reward_help() -> str:
    from .rewards import PRESETS

    return _recipe_help("reward", "Reward preset: " + ", ".join(PRESETS))


TRAIN_HELP = (
    "Train a query-writing policy with GRPO against the BM25 retriever.\n\n"
    "Every recipe field (a YAML file, or these flags on top of it) has a default: the best recipe measured "
    "on 2 CPU cores. Further trl.GRPOConfig fields go in the recipe's `trl:` section."
)


@app.command(help=TRAIN_HELP)
@clean_errors
def train(
    recipe: Annotated[Path | None, typer.Argument(help="YAML recipe (flags override its fields)")] = None,
    data: _train_opt("data", "'demo', a BEIR/SMART folder or examples .jsonl", str) = None,
    split: _train_opt("split", "Split to train on", str) = None,
    model: _train_opt("model", "smollm2-135m | tiny-random | HF folder | hub id", str) = None,
    output_dir: _train_opt("output_dir", "Run folder (checkpoints, logs, final/)", str) = None,
    variant: _train_opt("variant", "direct | reasoning", str) = None,
    mode: _train_opt("mode", "rewrite | expand", str) = None,
    expand_repeats: _train_opt("expand_repeats", "Expand mode: times the user's query is repeated", int) = None,
    context_docs: _train_opt("context_docs", "Top first-pass titles shown in the prompt", int) = None,
    reward: Annotated[str | None, typer.Option(help=_reward_help(), show_default=False)] = None,
    reward_k: _train_opt("reward_k", "Override the reward metric depth", int) = None,
    lora: _train_opt("lora", "Train a LoRA adapter instead of all weights", bool) = None,
    learning_rate: _train_opt("learning_rate", "Learning rate", float) = None,
    max_steps: _train_opt("max_steps", "Total optimisation steps", int) = None,
    prompts_per_step: _train_opt("prompts_per_step", "Distinct prompts per step", int) = None,
    num_generations: _train_opt("num_generations", "Completions per prompt (GRPO group)", int) = None,
    max_completion_length: _train_opt("max_completion_length", "Max completion tokens", int) = None,
    temperature: _train_opt("temperature", "Sampling temperature", float) = None,
    beta: _train_opt("beta", "KL coefficient", float) = None,
    loss_type: _train_opt("loss_type", "grpo | dr_grpo | dapo | bnpo | ...", str) = None,
    save_steps: _train_opt("save_steps", "Checkpoint every N steps", int) = None,
    seed: _train_opt("seed", "Seed", int) = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint in --output-dir")] = False,
) -> None:
    """Train a query-writing policy with GRPO against the BM25 retriever (see TRAIN_HELP)."""
    overrides = {k: v for k, v in locals().items() if k not in ("recipe", "resume")}
    from .recipe import load_recipe
    from .train import train as run_training

    config = load_recipe(recipe, overrides)
    with progress_bar() as bar:
        result = run_training(config, resume=resume, progress=training_progress(bar))
    out.print(f"trained {result.steps} steps; policy saved to {result.final_dir}")
    out.print(f"evaluate it: deepretrieval eval --data {config.data} --policy {result.output_dir} --out ...")


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
) -> None:
    """Print a policy's rewrite of QUERY (and its top hits when a collection or index is given)."""
    from .evaluate import search_outputs
    from .policies import make_policy
    from .search.bm25 import BM25Searcher
    from .types import Example

    collection = load(data, 0, None) if data else None
    searcher = None
    if collection is not None:
        searcher = open_searcher(collection, index)
    elif index is not None:
        searcher = BM25Searcher.load(index)
    elif policy in ("prf", "oracle"):
        raise DeepRetrievalError(f"the {policy} policy needs a collection to search: give --data or --index")
    prompt = prompt_flags(variant, mode, expand_repeats, max_new_tokens, context_docs)
    documents = collection.documents if collection else None
    chosen = make_policy(policy, searcher=searcher, prompt=prompt, documents=documents)  # type: ignore[arg-type]
    output = chosen.generate([Example(id="cli", question=query, targets={})])[0]
    out.print(f"[bold]query sent:[/] {output.query}", highlight=False)
    if output.completion is not None:
        out.print(
            f"[dim]completion ({'format ok' if output.format_ok else 'format error'}):[/] {output.completion}",
            highlight=False,
        )
    if searcher is not None:
        titles = {d.id: d.title or d.text[:80] for d in collection.documents} if collection else {}
        # The query as eval runs it: a weighted query (PRF) is searched with its weights, not as display text.
        ranking = search_outputs(searcher, [output], k)[0]
        for rank, hit in enumerate(ranking, start=1):
            out.print(f"{rank:>3}. {hit.doc_id}  {hit.score:.3f}  {titles.get(hit.doc_id, '')}", highlight=False)


@app.command()
@clean_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the demo writes its results")] = Path("runs/demo"),
    max_steps: Annotated[int | None, typer.Option(help="GRPO steps (default: the demo recipe's)")] = None,
    model: Annotated[str | None, typer.Option(help="Model (default: the embedded SmolLM2-135M)")] = None,
) -> None:
    """The main job on the embedded default: baselines, a short GRPO run, the trained policy, a table."""
    from .demo import run_demo
    from .recipe import demo_recipe

    updates = {k: v for k, v in {"max_steps": max_steps, "model": model}.items() if v is not None}
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
    out.print(result.table)
    out.print(f"\nwrote {out_dir}/demo.md, {result.curve}, {result.eval_dir}/report.md")


def main() -> None:  # pragma: no cover - console entry alias
    app(sys.argv[1:])
