from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepretrieval.policies import OriginalPolicy
from deepretrieval.types import Collection, Document, Example

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "classic"


def shared_collection(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(autouse=True)
def _index_cache(tmp_path_factory, monkeypatch):
    """Indexes the CLI caches for --data go to a fresh temporary folder per test."""
    import deepretrieval.search.folders

    folder = tmp_path_factory.mktemp("index-cache")
    monkeypatch.setattr(deepretrieval.search.folders, "index_cache_dir", lambda: folder)


@pytest.fixture
def small_collection() -> Collection:
    """A hand-made collection where the right words matter: 'cardiac' docs vs 'heart' queries."""
    docs = [
        Document("d1", "myocardial infarction therapy", "aspirin and thrombolysis after myocardial infarction"),
        Document("d2", "myocardial infarction outcomes", "mortality after acute myocardial infarction"),
        Document("d3", "hypertension drugs", "angiotensin inhibitors lower blood pressure in hypertension"),
        Document("d4", "kidney stones", "nephrolithiasis and ureteral calculi treated by lithotripsy"),
        Document("d5", "heart health", "walking is good for the heart"),
        Document("d6", "diet", "vegetables fruit and fibre"),
    ]
    examples = [
        Example("q1", "heart attack treatment", {"d1": 2, "d2": 1, "d5": 0}),
        Example("q2", "high blood pressure medicine", {"d3": 1}),
        Example("q3", "kidney stones", {"d4": 1}),
        Example("q4", "heart attack death", {"d2": 2}),
    ]
    return Collection("small", docs, examples, {"train": ["q1", "q2"], "test": ["q3", "q4"]})


def write_beir(folder: Path, collection: Collection, split: str = "test") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w") as f:
        for d in collection.documents:
            f.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    with (folder / "queries.jsonl").open("w") as f:
        for e in collection.examples:
            f.write(json.dumps({"_id": e.id, "text": e.question}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    with (folder / "qrels" / f"{split}.tsv").open("w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for e in collection.examples:
            for doc, grade in e.targets.items():
                f.write(f"{e.id}\t{doc}\t{grade}\n")
    return folder


def retrieval_reward(searcher, examples, config, *, mode: str = "rewrite", variant: str = "direct", **options):
    """The TRL reward adapter of the retrieval task, prompted without context."""
    from deepretrieval.prompts import PromptSettings
    from deepretrieval.tasks import TaskReward, get_task

    settings = PromptSettings(variant=variant, mode=mode, context_docs=0)
    return TaskReward(get_task("retrieval"), searcher, examples, config, settings, **options)


class CountingPolicy(OriginalPolicy):
    """The original query, counting how many examples it was asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def generate(self, examples):
        self.seen += [e.id for e in examples]
        return super().generate(examples)


def tiny_recipe(output_dir, **fields):
    """A GRPO recipe that trains the tiny random model for two steps in seconds: the literature task on its
    generated collection unless ``fields`` say otherwise (any TrainRecipe field)."""
    from deepretrieval.recipe import TrainRecipe

    values = dict(
        data="literature-demo",
        task="literature",
        model="tiny-random",
        mode="rewrite",
        context_docs=0,
        reward="deepretrieval-recall",
        reward_k=100,
        max_steps=2,
        save_steps=2,
        prompts_per_step=2,
        num_generations=4,
        max_completion_length=12,
        output_dir=str(output_dir),
    )
    return TrainRecipe(**(values | fields))


tiny_literature_recipe = tiny_recipe
