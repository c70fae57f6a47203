"""The verl export (``deepretrieval export verl``): every family's demo data as verl's RL dataset, and the exported
reward module, loaded the way verl loads it, scoring as the task's own reward does."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from deepretrieval.errors import DeepRetrievalError, SearchFailure
from deepretrieval.integrations import verl
from deepretrieval.recipe import TrainRecipe, load_recipe
from deepretrieval.tasks import TaskReward
from deepretrieval.tasks.base import show_context
from deepretrieval.train import reward_config

# `make test` installs verl (no GPU packages) here for the test of verl's own loader (see the Makefile).
VERL_SITE = Path(__file__).resolve().parents[1] / ".verl-site"

COLUMNS = ["data_source", "prompt", "ability", "reward_model", "extra_info"]

# One recipe per family on its generated collection (retrieval: expand mode with three context titles, so the
# prompts show what the backend retrieved).
RECIPES = {
    "retrieval": dict(data="demo", task="retrieval", mode="expand", context_docs=3, reward="recall-lenient"),
    "literature": dict(data="literature-demo", task="literature", reward="deepretrieval-recall", reward_k=100),
    "qa": dict(data="qa-demo", task="qa", reward="deepretrieval-rank", reward_k=100),
    "sql": dict(data="sql-demo", task="sql", reward="deepretrieval-spider"),
}


@pytest.fixture(autouse=True)
def _fresh_scorers():
    """Each test builds its own scorer (the module caches one per recipe file and process)."""
    verl._SCORERS.clear()
    yield
    verl._SCORERS.clear()


def exported(family: str, tmp_path: Path, **fields):
    """(recipe, collection, backend, export) of ``family``'s demo recipe."""
    from deepretrieval.data import load_collection

    recipe = TrainRecipe(**(RECIPES[family] | fields), output_dir=str(tmp_path / "run"))
    collection = load_collection(recipe.data, seed=recipe.seed)
    task = recipe.task_family()
    backend = task.backend(collection, recipe.backend)
    result = verl.export_verl(recipe, tmp_path / "verl", collection=collection, backend=backend)
    return recipe, collection, backend, result


def rows(path: Path) -> list[dict]:
    """A parquet file's rows as verl's dataset reads them (``datasets``)."""
    from datasets import load_dataset

    return list(load_dataset("parquet", data_files=str(path), split="train"))


def load_reward_module(path: Path):
    """The reward file loaded as verl's ``get_custom_reward_fn`` loads it: by path, under a name of its own,
    not put in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(f"custom_module_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def answer(task, text: str) -> str:
    """A whole answer, as a verl policy writes it (nothing pre-filled): the family's answer form around ``text``."""
    if task.answer_form == "raw":
        return f"<answer>{text}</answer>"
    return "<answer>" + json.dumps({task.answer_key: text}) + "</answer>"


@pytest.mark.parametrize("family", list(RECIPES))
def test_every_family_exports_verls_schema_with_the_tasks_own_prompts(family, tmp_path):
    recipe, collection, backend, result = exported(family, tmp_path)
    task, settings = recipe.task_family(), recipe.prompt_settings()
    folder = result.out
    for name in ("train.parquet", "val.parquet", "recipe.yaml", "reward.py", "run_grpo.sh", "run_ppo.sh"):
        assert (folder / name).is_file(), name
    schema = pq.read_schema(folder / "train.parquet")
    assert schema.names == COLUMNS
    assert str(schema.field("prompt").type) == "list<element: struct<role: string, content: string>>"
    assert str(schema.field("extra_info").type.field("meta").type) == "string"

    train = rows(folder / "train.parquet")
    val = rows(folder / "val.parquet")
    expected_train = [e for e in collection.split("train") if e.relevant]
    assert result.rows == {"train": len(train), "val": len(val)}
    assert [r["extra_info"]["example_id"] for r in train] == [e.id for e in expected_train]
    assert {r["extra_info"]["split"] for r in val} == {"dev"}
    context = task.context(backend, collection, settings)
    for row, index in ((train[0], 0), (train[-1], len(train) - 1)):
        example = show_context(task, [expected_train[index]], settings, context)[0]
        assert row["data_source"] == f"deepretrieval/{family}/{collection.name}"
        assert row["ability"] == task.verl_ability
        assert row["prompt"] == task.messages(example, settings)  # what training's prompts are made of
        assert row["reward_model"]["style"] == "rule"
        truth = {t["id"]: t["grade"] for t in row["reward_model"]["ground_truth"]["targets"]}
        assert truth == example.targets
        assert row["extra_info"]["index"] == index
        json.dumps(row)  # JSON-serialisable throughout
    if family == "retrieval":
        assert "Top search results for it:" in train[0]["prompt"][-1]["content"]

    assert load_recipe(folder / "recipe.yaml", {}) == recipe
    script = (folder / "run_grpo.sh").read_text() + (folder / "verl_common.sh").read_text()
    assert "reward.custom_reward_function.path=" in script and "algorithm.adv_estimator=grpo" in script
    assert "{{" not in script  # every placeholder filled in
    assert "critic.model.path" in (folder / "run_ppo.sh").read_text()
    for name in ("verl_common.sh", "run_grpo.sh", "run_ppo.sh"):
        subprocess.run(["bash", "-n", str(folder / name)], check=True)


@pytest.mark.parametrize("family", list(RECIPES))
def test_the_reward_module_scores_as_the_tasks_own_reward(family, tmp_path, monkeypatch):
    recipe, collection, backend, result = exported(family, tmp_path)
    task, settings = recipe.task_family(), recipe.prompt_settings()
    module = load_reward_module(result.out / "reward.py")
    batch = rows(result.out / "train.parquet")[:4]
    examples = {e.id: e for e in collection.examples}
    # The user's own query (the gold SQL for the SQL family): a known-good answer for each row.
    texts = [
        examples[r["extra_info"]["example_id"]].meta["sql"]
        if family == "sql"
        else task.user_query(examples[r["extra_info"]["example_id"]])
        for r in batch
    ]
    completions = [answer(task, text) for text in texts] + ["no answer at all"]
    batch.append(batch[0])

    # TRL's reward on the same answers, in its own form (the prompt pre-filled the answer's opening).
    own = TaskReward(task, backend, list(examples.values()), reward_config(recipe, task), settings)
    prefix = task.answer_prefix(settings.variant)
    trl_form = [c.removeprefix(prefix) if c.startswith(prefix) else c for c in completions[:-1]]
    expected = own([""] * len(trl_form), trl_form, example_id=[r["extra_info"]["example_id"] for r in batch[:-1]])

    one = [
        module.compute_score(r["data_source"], c, r["reward_model"]["ground_truth"], r["extra_info"])
        for r, c in zip(batch, completions, strict=True)
    ]
    assert [s["score"] for s in one[:-1]] == pytest.approx(expected)
    assert one[-1]["format_ok"] == 0.0
    if reward_config(recipe, task).require_format:  # (a lenient preset searches it as it stands)
        assert one[-1]["score"] == reward_config(recipe, task).format_penalty
    assert all(set(s) == {"score", "metric", "format_ok"} for s in one)
    if family == "sql":  # the gold SQL matches itself: DeepRetrieval's Spider match reward, execution match 1
        assert [s["score"] for s in one[:-1]] == [pytest.approx(1.1)] * 4
        assert [s["metric"] for s in one[:-1]] == [1.0] * 4

    calls = []
    execute = type(task).execute
    monkeypatch.setattr(type(task), "execute", lambda self, *a, **k: calls.append(1) or execute(self, *a, **k))
    many = module.compute_score_batch(
        [r["data_source"] for r in batch],
        completions,
        [r["reward_model"]["ground_truth"] for r in batch],
        [r["extra_info"] for r in batch],
    )
    assert many == one
    assert len(calls) == 1  # the whole batch in one backend call


def test_concurrent_per_sample_calls_are_scored_in_shared_batches(tmp_path, monkeypatch):
    """verl 0.9's reward loop calls compute_score once per completion from a pool of threads: the calls that wait
    while a batch is scored go to the backend together, and each caller gets its own record."""
    import threading
    import time

    recipe, _, _, result = exported("qa", tmp_path)
    task = recipe.task_family()
    module = load_reward_module(result.out / "reward.py")
    batch = rows(result.out / "train.parquet")[:12]
    completions = [answer(task, r["extra_info"]["question"]) for r in batch]
    arguments = [
        (r["data_source"], c, r["reward_model"]["ground_truth"], r["extra_info"])
        for r, c in zip(batch, completions, strict=True)
    ]
    alone = [module.compute_score(*a) for a in arguments]  # one at a time: one backend call each

    calls = []
    execute = type(task).execute

    def slow(self, actions, *a, **k):
        calls.append(len(actions))
        time.sleep(0.3)  # the first batch is still being scored while the other threads ask
        return execute(self, actions, *a, **k)

    monkeypatch.setattr(type(task), "execute", slow)
    together: list = [None] * len(arguments)
    start = threading.Barrier(len(arguments))

    def call(i):
        start.wait()
        together[i] = module.compute_score(*arguments[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(arguments))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone
    assert len(calls) < len(arguments) / 2 and sum(calls) <= len(arguments)


def test_a_search_failure_raises_instead_of_scoring(tmp_path, monkeypatch):
    recipe, _, _, result = exported("literature", tmp_path)
    module = load_reward_module(result.out / "reward.py")
    row = rows(result.out / "val.parquet")[0]
    # Nothing listens on port 9: PubMed over HTTP fails, once retried.
    monkeypatch.setenv(verl.BACKEND_ENV, "{kind: pubmed, base_url: 'http://127.0.0.1:9/', retries: 1, backoff: 0}")
    with pytest.raises(SearchFailure, match="verl reward: the backend failed"):
        module.compute_score(
            row["data_source"], "<answer>aspirin</answer>", row["reward_model"]["ground_truth"], row["extra_info"]
        )


def test_the_reward_searches_the_search_service_the_environment_names(tmp_path, monkeypatch):
    from deepretrieval.serve import serve_in_thread
    from deepretrieval.service import ServiceConfig, build_service, create_app

    monkeypatch.delenv("DEEPRETRIEVAL_SERVICE_TOKEN", raising=False)
    recipe, collection, _, result = exported("retrieval", tmp_path)
    task = recipe.task_family()
    module = load_reward_module(result.out / "reward.py")
    batch = rows(result.out / "val.parquet")[:6]
    examples = {e.id: e for e in collection.examples}
    columns = (
        [r["data_source"] for r in batch],
        [answer(task, "cardiac " + task.user_query(examples[r["extra_info"]["example_id"]])) for r in batch],
        [r["reward_model"]["ground_truth"] for r in batch],
        [r["extra_info"] for r in batch],
    )
    local = module.compute_score_batch(*columns)
    service = build_service(ServiceConfig(data="demo", index=str(tmp_path / "served")))
    with serve_in_thread(create_app(service)) as running:
        monkeypatch.setenv(verl.BACKEND_URL_ENV, running.url)  # the recipe's backend stays bm25
        served = module.compute_score_batch(*columns)
    assert served == local


def test_the_backend_can_be_named_by_the_environment(tmp_path):
    recipe = TrainRecipe(**RECIPES["qa"], output_dir=str(tmp_path))
    assert verl.backend_section(recipe, {}) == recipe.backend
    url = {verl.BACKEND_URL_ENV: "http://search:8000"}
    assert verl.backend_section(recipe, url) == {"kind": "remote", "url": "http://search:8000"}
    yaml = {verl.BACKEND_ENV: "{kind: bm25, k1: 1.2}", **url}  # the whole mapping wins
    assert verl.backend_section(recipe, yaml) == {"kind": "bm25", "k1": 1.2}
    with pytest.raises(DeepRetrievalError, match="a backend: mapping"):
        verl.backend_section(recipe, {verl.BACKEND_ENV: "bm25"})


def test_modes_whose_actions_need_the_exporters_menu_are_refused(tmp_path):
    with pytest.raises(DeepRetrievalError, match="feedback mode's actions"):
        exported("retrieval", tmp_path, mode="feedback", context_docs=0)


@pytest.fixture
def verl_site(monkeypatch):
    """verl's folder at the end of sys.path when `make test` installed it there (the venv's packages win)."""
    if VERL_SITE.is_dir():
        monkeypatch.setattr("sys.path", [*sys.path, str(VERL_SITE)])


def test_verls_own_loader_reads_the_reward_module(tmp_path, verl_site):
    reward = pytest.importorskip("verl.trainer.ppo.reward", reason="verl is not installed (make test installs it)")
    omegaconf = pytest.importorskip("omegaconf")
    recipe, _, _, result = exported("sql", tmp_path)
    section = {"path": str(result.out / "reward.py"), "name": "compute_score", "reward_kwargs": {}}
    # verl 0.9 reads reward.custom_reward_function; earlier versions the top-level custom_reward_function.
    config = omegaconf.OmegaConf.create(
        {"reward": {"custom_reward_function": section}, "custom_reward_function": section}
    )
    compute_score = reward.get_custom_reward_fn(config)
    row = rows(result.out / "val.parquet")[0]
    gold = answer(recipe.task_family(), json.loads(row["extra_info"]["meta"])["sql"])
    score = compute_score(
        data_source=row["data_source"],
        solution_str=gold,
        ground_truth=row["reward_model"]["ground_truth"],
        extra_info=row["extra_info"],
    )
    assert score == {"score": pytest.approx(1.1), "metric": 1.0, "format_ok": 1.0}


def test_verls_own_loader_scores_an_exported_batch_against_the_service(tmp_path, monkeypatch, verl_site):
    """The acceptance path end to end: verl's loader reads the exported reward module, and each completion is
    scored through the search service started here (127.0.0.1) exactly as through the recipe's local index."""
    reward = pytest.importorskip("verl.trainer.ppo.reward", reason="verl is not installed (make test installs it)")
    omegaconf = pytest.importorskip("omegaconf")
    from deepretrieval.serve import serve_in_thread
    from deepretrieval.service import ServiceConfig, build_service, create_app

    monkeypatch.delenv("DEEPRETRIEVAL_SERVICE_TOKEN", raising=False)
    recipe, collection, _, result = exported("retrieval", tmp_path)
    task = recipe.task_family()
    section = {"path": str(result.out / "reward.py"), "name": "compute_score", "reward_kwargs": {}}
    compute_score = reward.get_custom_reward_fn(
        omegaconf.OmegaConf.create({"reward": {"custom_reward_function": section}})
    )
    examples = {e.id: e for e in collection.examples}
    batch = rows(result.out / "val.parquet")[:6]
    calls = [
        dict(
            data_source=r["data_source"],
            solution_str=answer(task, "cardiac " + task.user_query(examples[r["extra_info"]["example_id"]])),
            ground_truth=r["reward_model"]["ground_truth"],
            extra_info=r["extra_info"],
        )
        for r in batch
    ]
    local = [compute_score(**call) for call in calls]
    service = build_service(ServiceConfig(data="demo", index=str(tmp_path / "served")))
    with serve_in_thread(create_app(service)) as running:
        monkeypatch.setenv(verl.BACKEND_URL_ENV, running.url)
        served = [compute_score(**call) for call in calls]
    assert served == local
    assert len({s["score"] for s in local}) > 1  # the batch's answers score differently: the comparison can fail
