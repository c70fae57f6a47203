from __future__ import annotations

import json
import os
import re

import pytest
from typer.testing import CliRunner

from deepretrieval.cli import app

from .conftest import ROOT, shared_collection, write_beir

runner = CliRunner()

# The reference table of ../shared/data/README.md (BM25 k1=0.9 b=0.4, title + text, stemming, stopwords) gives
# nDCG@10 and R@100 to 3 decimals; the 4-decimal figures here (which round to them) are pytrec_eval's, computed
# apart from this package over the eval's runs.jsonl, with the judgments parsed as that README says (Cranfield
# grade = 5 - code, -1 not relevant; MED binary). Its R@1000 counts zero-score documents that bm25s pads a
# ranking with; like Lucene we return only documents that match a query term, so our R@1000 is lower.
REFERENCE = {"cranfield": (225, 0.3517, 0.7258, 0.9515), "med": (30, 0.6710, 0.7716, 0.9108)}
README_TABLE = {"cranfield": (0.352, 0.726), "med": (0.671, 0.772)}


@pytest.mark.parametrize("name", ["cranfield", "med"])
def test_eval_reproduces_the_reference_table_and_reports_prf_beside_it(name, tmp_path):
    data = shared_collection(name)
    out = tmp_path / "e1"
    result = runner.invoke(
        app, ["eval", "--data", str(data), "--split", "all", "--policy", "original", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    queries, ndcg, r100, r1000 = REFERENCE[name]
    assert (round(ndcg, 3), round(r100, 3)) == README_TABLE[name]
    assert metrics["queries"] == queries
    # Deterministic figures: exact to the reference's 4 decimals.
    assert metrics["ndcg@10"] == pytest.approx(ndcg, abs=1e-4)
    assert metrics["recall@100"] == pytest.approx(r100, abs=1e-4)
    assert metrics["recall@1000"] == pytest.approx(r1000, abs=1e-4)

    result = runner.invoke(app, ["eval", "--data", str(data), "--split", "all", "--policy", "prf", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "| original |" in report and "| prf |" in report
    both = json.loads((out / "metrics.json").read_text())["policies"]
    assert set(both) == {"original", "prf"}
    # Feedback helps recall on both collections (README: 0.740 vs 0.726 and 0.840 vs 0.772).
    assert both["prf"]["recall@100"] > both["original"]["recall@100"]


def test_bad_input_is_one_clean_line(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n{not json\n')
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "x"}\n')
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    result = runner.invoke(app, ["eval", "--data", str(folder), "--policy", "original", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "corpus.jsonl:2" in lines[0], result.output
    assert "Traceback" not in result.output


def test_index_then_search_and_eval_with_saved_index(small_collection, tmp_path):
    data = write_beir(tmp_path / "beir", small_collection)
    index = tmp_path / "index"
    result = runner.invoke(app, ["index", "--data", str(data), "--out", str(index)])
    assert result.exit_code == 0, result.output
    assert (index / "manifest.json").exists()
    result = runner.invoke(app, ["search", "nephrolithiasis", "--index", str(index), "-k", "3"])
    assert result.exit_code == 0, result.output
    assert "d4" in result.output
    result = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(data),
            "--split",
            "test",
            "--policy",
            "original",
            "--index",
            str(index),
            "--out",
            str(tmp_path / "e"),
        ],
    )
    assert result.exit_code == 0, result.output


def test_stale_index_is_detected(small_collection, tmp_path):
    data = write_beir(tmp_path / "beir", small_collection)
    index = tmp_path / "index"
    assert runner.invoke(app, ["index", "--data", str(data), "--out", str(index)]).exit_code == 0
    corpus = data / "corpus.jsonl"
    corpus.write_text(corpus.read_text().replace("lithotripsy", "shock waves"))
    result = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(data),
            "--policy",
            "original",
            "--index",
            str(index),
            "--out",
            str(tmp_path / "e"),
        ],
    )
    assert result.exit_code == 2
    assert "stale" in result.output.lower() or "differ" in result.output.lower(), result.output


def test_info_lists_splits(small_collection, tmp_path):
    data = write_beir(tmp_path / "beir", small_collection)
    result = runner.invoke(app, ["info", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "test" in result.output and "all" in result.output


def _saved_run(tmp_path, **settings):
    """A run folder as training leaves it (tiny-random weights, policy.json), without the training."""
    from deepretrieval.models import load_model_and_tokenizer
    from deepretrieval.recipe import TrainRecipe
    from deepretrieval.runs import save_policy

    model, tokenizer = load_model_and_tokenizer("tiny-random")
    save_policy(model, tokenizer, tmp_path / "run" / "final", TrainRecipe(model="tiny-random", **settings))
    return tmp_path / "run"


def test_a_prompt_flag_on_a_trained_run_overrides_only_itself(small_collection, tmp_path):
    data = write_beir(tmp_path / "beir", small_collection)
    run = _saved_run(tmp_path, mode="expand", context_docs=2, max_completion_length=12)
    out = tmp_path / "e"
    args = ["eval", "--data", str(data), "--policy", str(run), "--max-new-tokens", "5", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (config,) = [json.loads(p.read_text()) for p in out.glob("policies/*/config.json")]
    assert (config["mode"], config["context_docs"], config["max_new_tokens"]) == ("expand", 2, 5)
    assert config["variant"] == "direct"


def test_rewrite_with_prf_runs_the_weighted_query(small_collection, tmp_path):
    from deepretrieval.policies import PRFPolicy
    from deepretrieval.search.bm25 import BM25Searcher
    from deepretrieval.tasks import get_task
    from deepretrieval.types import Example

    result = runner.invoke(app, ["rewrite", "heart attack", "--policy", "prf"])
    assert result.exit_code == 2
    assert "needs a collection" in result.output and "Traceback" not in result.output
    data = write_beir(tmp_path / "beir", small_collection)
    result = runner.invoke(app, ["rewrite", "heart attack", "--policy", "prf", "--data", str(data), "-k", "3"])
    assert result.exit_code == 0, result.output
    searcher = BM25Searcher.build(small_collection.documents)
    output = PRFPolicy(searcher).generate([Example("x", "heart attack", {})])[0]
    expected = get_task("retrieval").execute([output.action], searcher, 3)[0].ranking
    shown = re.findall(r"^\s*\d+\.\s+(\S+)\s+(\S+)", result.output, flags=re.MULTILINE)
    assert shown == [(h.doc_id, f"{h.score:.3f}") for h in expected]
    as_text = searcher.search([output.query], 3)[0]  # the display string searched as words scores differently
    assert [f"{h.score:.3f}" for h in as_text] != [score for _, score in shown]


@pytest.mark.parametrize("spelling", ["-k", "--k"])
def test_depth_option_has_one_spelling_everywhere(small_collection, tmp_path, spelling):
    data = write_beir(tmp_path / "beir", small_collection)
    result = runner.invoke(app, ["search", "myocardial infarction", "--data", str(data), spelling, "1"])
    assert result.exit_code == 0, result.output
    assert "d1" in result.output or "d2" in result.output
    assert "d3" not in result.output
    out = tmp_path / "e"
    args = ["eval", "--data", str(data), "--policy", "original", spelling, "1500", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    assert json.loads((out / "policies/original/config.json").read_text())["k"] == 1500
    refused = runner.invoke(app, [*args[:-4], spelling, "2", "--out", str(tmp_path / "e2")])
    assert refused.exit_code == 2 and "-k 2 " in refused.output


def test_search_with_data_reuses_its_index(small_collection, tmp_path, monkeypatch):
    from deepretrieval.search.bm25 import BM25Searcher

    data = write_beir(tmp_path / "beir", small_collection)
    builds = []
    real_build = BM25Searcher.build.__func__

    def counting_build(cls, *args, **kwargs):
        builds.append(1)
        return real_build(cls, *args, **kwargs)

    monkeypatch.setattr(BM25Searcher, "build", classmethod(counting_build))
    for _ in range(3):
        result = runner.invoke(app, ["search", "kidney stones", "--data", str(data)])
        assert result.exit_code == 0, result.output
        assert "d4" in result.output
    assert len(builds) == 1


def test_library_deprecation_noise_is_silenced_by_the_cli(small_collection, tmp_path):
    import warnings

    data = write_beir(tmp_path / "beir", small_collection)
    assert runner.invoke(app, ["info", "--data", str(data)]).exit_code == 0
    with warnings.catch_warnings(record=True) as seen:
        warnings.warn(
            "`gradient_checkpointing` is deprecated and will be removed in v6. Use x.", FutureWarning, stacklevel=1
        )
        warnings.warn("something else", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["something else"]
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"  # no "Loading weights" bars between ours


def _help(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.replace("│", " ").split())


def test_train_help_lists_every_familys_presets_and_defaults():
    """It listed the retrieval presets only, and the retrieval defaults as everyone's."""
    from deepretrieval.tasks import TASKS, get_task

    text = _help("train")
    assert "against the BM25 retriever" not in text
    for name in TASKS:
        task = get_task(name)
        assert f"{name}: {', '.join(task.presets)}" in text, name  # --reward: each family's presets
        assert f"{name}: {task.default_reward}" in text, name
        assert f"{name}: {task.default_prompt().mode}" in text, name
    assert "literature: rewrite" in text and "literature: deepretrieval-recall" in text and "literature: 0" in text
    assert "(default: 2e-05)" in text and "(default: 16)" in text  # learning rate, LoRA rank


def test_every_recipe_field_has_a_train_flag():
    """README: `train --help` lists every recipe field with its default (it had no --task, --backend,
    --top-k, --lora-r ...)."""
    import typer.main

    from deepretrieval.recipe import TrainRecipe

    flags = _flags(typer.main.get_command(app).commands["train"])
    missing = [name for name in TrainRecipe.model_fields if f"--{name.replace('_', '-')}" not in flags]
    assert missing == []


def _readme_commands() -> list[list[str]]:
    """The `deepretrieval ...` command lines of the README (code blocks and inline code), as words."""
    import shlex

    text = (ROOT / "README.md").read_text()
    lines = re.findall(r"^deepretrieval [^\n]*", text, flags=re.MULTILINE)
    lines += re.findall(r"`(deepretrieval [^`]*)`", text)
    commands = []
    for line in lines:
        words = shlex.split(line.split(" #")[0].replace("…", "").replace("&", ""))
        commands.append([w.strip("[]") for w in words[1:]])
    return commands


def _flags(command) -> set[str]:
    """A command's option spellings (typer vendors its own click: read the parameters, not their classes)."""
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")} | {"--help"}


def _all_commands(command):
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _all_commands(sub)


def test_the_readmes_command_lines_use_flags_that_exist():
    import typer.main

    group = typer.main.get_command(app)
    checked = 0
    for words in _readme_commands():
        command = group
        while words and words[0].split("|")[0] in getattr(command, "commands", {}):
            command, words = command.commands[words[0].split("|")[0]], words[1:]
        assert command is not group, words
        for word in words:
            if word.startswith("--"):
                assert word.split("=")[0] in _flags(command), (command.name, word)
                checked += 1
    assert checked > 20
    # Flags the prose names (`--task`, `--prompt-style` ...) exist on some command.
    every = set().union(*(_flags(c) for c in _all_commands(group)))
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", _readme_without_other_programs()))
    assert named - every == set()


# Programs whose command lines the README shows beside ours (Scaling out): their flags are theirs.
OTHER_PROGRAMS = ("accelerate", "trl", "bash", "python3", "torchrun")


def _readme_without_other_programs() -> str:
    """The README without the command lines (continuations included) of ``OTHER_PROGRAMS``."""
    kept, continued = [], False
    for line in (ROOT / "README.md").read_text().splitlines():
        words = line.split()
        while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value before the program
            words = words[1:]
        foreign = continued or (bool(words) and words[0] in OTHER_PROGRAMS)
        if not foreign:
            kept.append(line)
        continued = foreign and line.rstrip().endswith("\\")
    return "\n".join(kept)


def test_train_with_only_a_task_trains_with_that_tasks_defaults(tmp_path, monkeypatch):
    """`train --task literature` validated to mode expand, three context titles and recall-lenient: none of
    them the literature task's. The recipe reaches training with the literature defaults (training itself
    is replaced here)."""
    import deepretrieval.train
    from deepretrieval.train import TrainResult

    seen = []

    def fake_train(recipe, **_):
        seen.append(recipe)
        return TrainResult(tmp_path, tmp_path / "final", tmp_path / "log", 0)

    monkeypatch.setattr(deepretrieval.train, "train", fake_train)
    args = ["train", "--task", "literature", "--data", "literature-demo", "--output-dir", str(tmp_path / "run")]
    result = runner.invoke(app, [*args, "--backend", "{kind: boolean, schema: publications}", "--lora-r", "4"])
    assert result.exit_code == 0, result.output
    (recipe,) = seen
    assert (recipe.task, recipe.mode, recipe.context_docs, recipe.reward) == (
        "literature",
        "rewrite",
        0,
        "deepretrieval-recall",
    )
    assert recipe.backend == {"kind": "boolean", "schema": "publications"} and recipe.lora_r == 4
    refused = runner.invoke(app, [*args, "--mode", "expand"])
    assert refused.exit_code == 2 and "the literature task has no 'expand' mode" in refused.output


@pytest.fixture
def literature_backend(monkeypatch):
    """The literature task's backend factory, recording the spec it is given; it stops the command there."""
    from deepretrieval.errors import DeepRetrievalError
    from deepretrieval.tasks.literature import LiteratureTask

    specs = []

    def record(self, collection, spec, *, index=None):
        specs.append(dict(spec))
        raise DeepRetrievalError("backend opened")

    monkeypatch.setattr(LiteratureTask, "backend", record)
    return specs


def _literature_eval(tmp_path, *extra):
    args = ["eval", "--data", "literature-demo", "--task", "literature", "--policy", "original"]
    return runner.invoke(app, [*args, "--out", str(tmp_path / "literature-eval"), *extra])


def test_eval_gives_the_bm25_flags_to_no_other_familys_backend(tmp_path, literature_backend):
    result = _literature_eval(tmp_path, "--k1", "1.2")
    assert result.exit_code == 2
    assert "--k1: the literature task's backend has no such setting" in " ".join(result.output.split())
    assert literature_backend == []  # refused before the backend is opened, not merged into it
    result = _literature_eval(tmp_path, "--backend", "{kind: boolean, schema: trials}")
    assert result.exit_code == 2 and "backend opened" in result.output
    assert literature_backend == [{"kind": "boolean", "schema": "trials"}]


def test_eval_searches_as_deep_as_the_deepest_cutoff_the_task_reports(small_collection, tmp_path, monkeypatch):
    """`eval -k 10` reported recall@100 = recall@1000 = recall@10; the literature task reports recall@3000 and
    was searched to 1,000. The default depth is the task's deepest cut-off; a shallower -k is refused."""
    from deepretrieval.tasks.literature import LiteratureTask
    from deepretrieval.types import Ranking

    data = write_beir(tmp_path / "beir", small_collection)
    args = ["eval", "--data", str(data), "--policy", "original"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "e/policies/original/config.json").read_text())["k"] == 1000  # recall@1000
    refused = runner.invoke(app, [*args, "-k", "10", "--out", str(tmp_path / "e10")])
    assert refused.exit_code == 2
    lines = [x for x in refused.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "-k 10 is shallower than recall@1000" in lines[0] and "-k 1000" in lines[0]
    assert not (tmp_path / "e10" / "policies").exists()

    depths = []

    class Backend:
        def search(self, requests, k):
            depths.append(k)
            return [Ranking() for _ in requests]

        def describe(self):
            return {"kind": "fake"}

    monkeypatch.setattr(LiteratureTask, "backend", lambda self, collection, spec, index=None: Backend())
    result = _literature_eval(tmp_path)
    assert result.exit_code == 0, result.output
    assert set(depths) == {3000}  # recall@3000
    assert json.loads((tmp_path / "literature-eval/policies/original/config.json").read_text())["k"] == 3000


def test_rewrite_with_an_index_opens_the_policys_own_backend(small_collection, tmp_path):
    """`rewrite --index` opened a BM25 index whatever the policy's task; a literature run's backend opens from
    its collection only, which is said in one line."""
    data = write_beir(tmp_path / "beir", small_collection)
    index = tmp_path / "index"
    assert runner.invoke(app, ["index", "--data", str(data), "--out", str(index)]).exit_code == 0
    result = runner.invoke(app, ["rewrite", "kidney stones", "--policy", "prf", "--index", str(index), "-k", "3"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^\s*1\.\s+d4\s", result.output, flags=re.MULTILINE)
    run = _saved_run(tmp_path, task="literature", max_completion_length=12)
    result = runner.invoke(app, ["rewrite", "heart attack", "--policy", str(run), "--index", str(index)])
    assert result.exit_code == 2
    assert "the literature task opens its backend from the collection: give --data" in result.output


@pytest.mark.parametrize("family", ["retrieval", "literature", "qa"])
def test_the_training_bar_shows_the_familys_metric(family):
    """The GRPO bar shows the reward and the reward adapter's metric under whichever family logged it."""
    from rich.progress import Progress

    from deepretrieval.cli import training_progress

    with Progress(disable=True) as bar:
        report = training_progress(bar)
        report(3, 8, {"reward": 0.5, f"{family}/metric": 0.25, "completions/mean_length": 12.0})
        (task,) = bar.tasks
        assert (task.completed, task.total) == (3, 8)
        assert task.description == f"GRPO steps reward 0.500 {family}/metric 0.250"
        report(4, 8, {"loss": 0.1})  # a record without them: the bare title
        assert bar.tasks[0].description == "GRPO steps"
