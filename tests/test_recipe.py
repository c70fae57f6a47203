from __future__ import annotations

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
