"""The main job on the embedded default: baselines, a short GRPO run with SmolLM2, before/after table.

Everything is generated or shipped with the package (demo collection, SmolLM2-135M-Instruct GGUF), so it
runs offline on 2 CPU cores in 10–30 minutes (measured: 10 min on an Intel host, 28 on an AVX2-only AMD one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .recipe import TrainRecipe

# Chosen so the run fits ~20 CPU-minutes on 2 cores (a step of 16 completions x 32 tokens is ~30 s).
DEMO_RECIPE = TrainRecipe(
    data="demo",
    split="train",
    model="smollm2-135m",
    variant="direct",
    mode="expand",
    reward="recall-lenient",
    context_docs=3,
    learning_rate=2e-5,
    max_steps=24,
    prompts_per_step=2,
    num_generations=8,
    max_completion_length=32,
    temperature=1.0,
    save_steps=8,
    output_dir="runs/demo/train",
)


@dataclass(frozen=True)
class DemoResult:
    table: str
    eval_dir: Path
    train_dir: Path
    curve: Path


def run_demo(
    out_dir: Path,
    *,
    recipe: TrainRecipe = DEMO_RECIPE,
    split: str = "test",
    baselines: tuple[str, ...] = ("original", "prf", "oracle"),
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Baselines and the untrained model, GRPO on ``recipe.split``, the trained model; all on ``split``.

    Also the learning benchmark's pipeline (on Cranfield and MED, without the oracle). Rerunning it
    resumes: evaluations skip finished queries and training continues from its last checkpoint.
    """
    from .context import ContextProvider
    from .data import load_collection
    from .evaluate import EvalSettings, evaluate, load_policy_metrics
    from .policies import make_policy
    from .policies.llm import HFPolicy, PromptSettings
    from .report import markdown_table, plot_training
    from .search.bm25 import BM25Searcher, BM25Settings
    from .train import LOG_FILE, train

    recipe = recipe.model_copy(update={"output_dir": str(out_dir / "train")})
    collection = load_collection(recipe.data, seed=recipe.seed)
    settings = BM25Settings(
        k1=recipe.k1,
        b=recipe.b,
        method=recipe.bm25_method,
        stemmer=recipe.stemmer,
        stopwords=recipe.stopwords,
    )
    searcher = BM25Searcher.build(collection.documents, settings)
    eval_dir, eval_settings = out_dir / "eval", EvalSettings(k=1000, batch_size=16)
    prompt = PromptSettings(
        variant=recipe.variant,
        mode=recipe.mode,
        expand_repeats=recipe.expand_repeats,
        max_new_tokens=recipe.max_completion_length,
        context_docs=recipe.context_docs,
    )
    context = ContextProvider(searcher, collection.documents, recipe.context_docs)

    say(f"1/3 baselines ({', '.join(baselines)}) and the untrained model")
    fixed = [make_policy(s, searcher=searcher) for s in baselines]
    untrained = HFPolicy(recipe.model, prompt=prompt, name=f"untrained {recipe.model} [{recipe.mode}]", context=context)
    evaluate(collection, split, [*fixed, untrained], searcher, eval_dir, eval_settings, progress=progress)

    train_dir = Path(recipe.output_dir)
    say(f"2/3 GRPO: {recipe.max_steps} steps x {recipe.prompts_per_step * recipe.num_generations} completions")
    resume = train_dir.is_dir() and any(train_dir.glob("checkpoint-*"))
    result = train(recipe, resume=resume, collection=collection, searcher=searcher)

    say("3/3 trained policy on the held-out split")
    trained = HFPolicy(str(result.final_dir), name=f"trained {recipe.model} [{recipe.mode}]", context=context)
    evaluate(collection, split, [trained], searcher, eval_dir, eval_settings, progress=progress, overwrite=True)

    curve = out_dir / "reward_curve.png"
    plot_training(train_dir / LOG_FILE, curve)
    table = markdown_table(load_policy_metrics(eval_dir))
    title = f"# {collection.name}: GRPO with {recipe.model}, {recipe.max_steps} steps ({split} split)"
    (out_dir / "demo.md").write_text(f"{title}\n\n{table}\n\n![reward curve](reward_curve.png)\n")
    return DemoResult(table, eval_dir, train_dir, curve)
