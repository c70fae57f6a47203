from __future__ import annotations

from pathlib import Path

import pytest

from deepretrieval.errors import DeepRetrievalError
from deepretrieval.modes import compose_query
from deepretrieval.recipe import load_recipe


def test_yaml_with_flag_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: tiny-random\nmax_steps: 3\nmode: expand\n")
    recipe = load_recipe(path, {"max_steps": 5, "seed": None})
    assert (recipe.model, recipe.max_steps, recipe.mode, recipe.seed) == ("tiny-random", 5, "expand", 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_stepz: 3\n", "max_stepz"),
        ("mode: shout\n", "'mode'"),
        ("num_generations: 1\n", "'num_generations'"),
        ("- a\n- b\n", "mapping"),
        ("model: [unclosed\n", "r.yaml:"),
    ],
)
def test_bad_recipes_name_the_field_or_line(tmp_path, text, message):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(DeepRetrievalError, match=message) as info:
        load_recipe(path, {})
    assert "\n" not in str(info.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(DeepRetrievalError, match="no such recipe"):
        load_recipe(tmp_path / "nope.yaml", {})


def test_query_modes():
    assert compose_query("rewrite", "heart attack", "myocardial infarction") == "myocardial infarction"
    assert compose_query("expand", "heart attack", "myocardial infarction") == "heart attack myocardial infarction"
    assert compose_query("expand", "a b", "c", repeats=3) == "a b a b a b c"
    assert compose_query("rewrite", "heart attack", None) == ""
    assert compose_query("expand", "heart attack", "  ") == "heart attack"
    with pytest.raises(ValueError):
        compose_query("shout", "q", "x")


def test_defaults_are_the_demo_recipe_which_has_one_copy():
    """The plain `train` defaults are the best measured recipe (the demo's), and recipes/demo.yaml is the
    package's own file (a link), not a second copy that could drift."""
    from pathlib import Path

    from deepretrieval.recipe import TrainRecipe, demo_recipe

    demo = demo_recipe()
    defaults = TrainRecipe()
    differing = {k for k, v in demo.model_dump().items() if defaults.model_dump()[k] != v}
    assert differing == {"output_dir"}
    assert (defaults.mode, defaults.reward, defaults.context_docs) == ("expand", "recall-lenient", 3)
    root = Path(__file__).resolve().parents[1]
    assert (root / "recipes" / "demo.yaml").resolve() == (root / "src/deepretrieval/recipes/demo.yaml").resolve()


@pytest.mark.parametrize("word", ["none", "None", ""])
def test_none_switches_stemming_and_stopwords_off_in_a_recipe(tmp_path, word):
    path = tmp_path / "r.yaml"
    path.write_text(f"backend:\n  stemmer: '{word}'\n  stopwords: '{word}'\n")
    from deepretrieval.tasks.retrieval import bm25_settings

    settings = bm25_settings(load_recipe(path, {}).backend)
    assert (settings.stemmer, settings.stopwords) == (None, None)
    from deepretrieval.search.bm25 import BM25Searcher
    from deepretrieval.types import Document

    searcher = BM25Searcher.build([Document("d1", "", "the running dogs"), Document("d2", "", "a cat")], settings)
    assert searcher.analyze("the running dogs") == ["the", "running", "dogs"]


def test_trl_section_passes_grpo_config_fields_through(tmp_path):
    from deepretrieval.recipe import TrainRecipe
    from deepretrieval.train import grpo_config

    recipe = TrainRecipe(trl={"max_grad_norm": 0.3, "warmup_steps": 2})
    args = grpo_config(recipe, tmp_path, stops=[5])
    assert (args.max_grad_norm, args.warmup_steps) == (0.3, 2)
    with pytest.raises(DeepRetrievalError, match="trl.no_such_field: not a trl.GRPOConfig field"):
        grpo_config(TrainRecipe(trl={"no_such_field": 1}), tmp_path, stops=[])
    with pytest.raises(DeepRetrievalError, match="trl.learning_rate: set by the recipe"):
        grpo_config(TrainRecipe(trl={"learning_rate": 1.0}), tmp_path, stops=[])


def test_stop_tokens_reach_vllm_through_generation_kwargs(tmp_path):
    """TRL's vLLM path reads stop tokens only from generation_kwargs (not from the model's generation_config)."""
    from deepretrieval.recipe import TrainRecipe
    from deepretrieval.train import grpo_config

    recipe = TrainRecipe(use_vllm=True, trl={"vllm_mode": "server"})
    args = grpo_config(recipe, tmp_path, stops=[7, 9])
    assert args.generation_kwargs == {"stop_token_ids": [7, 9]}
    extra = TrainRecipe(use_vllm=True, trl={"generation_kwargs": {"min_tokens": 2}})
    assert grpo_config(extra, tmp_path, stops=[7]).generation_kwargs == {"stop_token_ids": [7], "min_tokens": 2}
    assert grpo_config(TrainRecipe(), tmp_path, stops=[7]).generation_kwargs is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("task: sequel\n", "r.yaml:1: field 'task': unknown task 'sequel'"),
        ("backend:\n  kind: faiss\n", "r.yaml:2: recipe field backend.kind: the retrieval task has no backend 'faiss'"),
        ("backend:\n  k2: 1\n", "r.yaml:2: recipe field backend.k2: unknown for kind bm25 .known: kind, b, k1,"),
        ("seed: 1\nbackend:\n  k1: 1\n  b: 7\n", "r.yaml:4: recipe field backend.b: input should be less than or"),
        ("task: literature\nbackend: {kind: pubmed, rate: 0}\n", "r.yaml:2: recipe field backend.rate: input"),
        ("task: literature\nbackend:\n  kind: boolean\n  schema: trial\n", "r.yaml:4: recipe field backend.schema"),
        ("task: qa\nbackend:\n  kind: boolean\n", "r.yaml:3: recipe field backend.kind: the qa task has no backend"),
    ],
)
def test_task_and_backend_sections_are_checked_when_the_recipe_is_read(tmp_path, text, message):
    """An unknown task, backend kind, backend field or a bad value: refused naming the recipe's line."""
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(DeepRetrievalError, match=message) as info:
        load_recipe(path, {})
    assert "\n" not in str(info.value)


def test_a_backend_error_from_a_flag_names_no_line(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("seed: 1\n")
    with pytest.raises(DeepRetrievalError, match=r"r.yaml: recipe field backend.b: "):
        load_recipe(path, {"backend": {"b": 7}})


def test_the_recipe_keeps_the_backend_as_its_spec_dump(tmp_path):
    """What policy.json records: the fields written (the flat spellings normalised), kind only when given."""
    from deepretrieval.search.specs import BM25Spec

    path = tmp_path / "r.yaml"
    path.write_text("backend:\n  bm25_method: bm25+\n  k1: 1\n  stemmer: none\n")
    recipe = load_recipe(path, {})
    assert recipe.backend == {"method": "bm25+", "k1": 1, "stemmer": None}
    assert recipe.backend_spec() == BM25Spec(method="bm25+", k1=1, stemmer=None)
    assert load_recipe(None, {}).backend == {}
    assert load_recipe(None, {"backend": {"kind": "bm25"}}).backend == {"kind": "bm25"}


def test_activation_checkpointing_is_a_recipe_choice(tmp_path):
    from deepretrieval.recipe import TrainRecipe
    from deepretrieval.train import grpo_config

    assert grpo_config(TrainRecipe(), tmp_path, stops=[]).activation_checkpointing is True  # TRL's default
    assert (
        grpo_config(TrainRecipe(activation_checkpointing=False), tmp_path, stops=[]).activation_checkpointing is False
    )


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_recipe_loads_and_names_its_task_and_mode(path):
    recipe = load_recipe(path, {})
    assert recipe.mode in recipe.task_family().modes


# What each family's defaults are: retrieval's the best recipe measured on 2 CPU cores (docs/BENCHMARKS.md);
# literature's DeepRetrieval's (a Boolean query from the PICO, no retrieved context, its recall step table);
# qa's DeepRetrieval's rank-of-first-hit table; sql's DeepRetrieval's Spider reward (no sample rows shown).
FAMILY_DEFAULTS = {
    "retrieval": ("expand", 3, 32, "recall-lenient"),
    "literature": ("rewrite", 0, 64, "deepretrieval-recall"),
    "qa": ("expand", 3, 32, "deepretrieval-rank"),
    "sql": ("rewrite", 0, 128, "deepretrieval-spider"),
}


@pytest.mark.parametrize("task", list(FAMILY_DEFAULTS))
def test_a_recipe_that_names_only_its_task_gets_that_tasks_defaults_and_passes_trainings_checks(task):
    """The defaults were the retrieval family's: `task: literature` alone got mode expand, three context
    titles and the recall-lenient preset, none of which the literature task has."""
    from deepretrieval.tasks import TASKS
    from deepretrieval.train import reward_config

    assert set(FAMILY_DEFAULTS) == set(TASKS)  # a new family states its defaults here
    recipe = load_recipe(None, {"task": task, "data": "x"})
    assert (recipe.mode, recipe.context_docs, recipe.max_completion_length, recipe.reward) == FAMILY_DEFAULTS[task]
    family = recipe.task_family()
    family.check(recipe.prompt_settings())  # what train() checks first
    assert reward_config(recipe, family) == family.presets[recipe.reward]
    assert family.needs_context(recipe.prompt_settings()) == (recipe.context_docs > 0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "expand"}, "field 'mode': the literature task has no 'expand' mode"),
        ({"reward": "recall-lenient"}, "field 'reward': the literature task has no preset 'recall-lenient'"),
    ],
)
def test_a_mode_or_preset_the_task_lacks_is_refused_naming_the_field(tmp_path, fields, message):
    path = tmp_path / "r.yaml"
    path.write_text("task: literature\n")
    with pytest.raises(DeepRetrievalError, match=f"r.yaml: {message}"):
        load_recipe(path, fields)


def test_keep_checkpoints_reaches_the_trainer_rotation(tmp_path):
    # transformers' save_total_limit: after each save only the newest N checkpoint-* folders remain (its docs)
    from deepretrieval.recipe import TrainRecipe
    from deepretrieval.train import grpo_config

    assert grpo_config(TrainRecipe(), tmp_path, stops=[]).save_total_limit is None  # keep all
    assert grpo_config(TrainRecipe(keep_checkpoints=2), tmp_path, stops=[]).save_total_limit == 2
    with pytest.raises(ValueError, match="keep_checkpoints"):
        TrainRecipe(keep_checkpoints=0)
    headline = load_recipe(Path(__file__).parents[1] / "recipes" / "literature-demo.yaml", {})
    assert headline.keep_checkpoints == 2
