"""The text-to-SQL family through the task seam: data (Spider / BIRD folders, the generated sql-demo), prompts,
answers, rewards from presets, evaluation from the CLI, malformed inputs, and a short GRPO run."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepretrieval.cli import app
from deepretrieval.data import load_collection
from deepretrieval.data.sqldemo import build_sql_demo
from deepretrieval.errors import DataError
from deepretrieval.prompts import PromptSettings
from deepretrieval.tasks import TaskReward, get_task

TASK = get_task("sql")
DIRECT = PromptSettings(variant="direct", mode="rewrite", context_docs=0)
REASONING = PromptSettings(variant="reasoning", mode="rewrite", context_docs=0)
runner = CliRunner()


def make_db(path: Path, script: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    connection.executescript(script)
    connection.commit()
    connection.close()
    return path


SINGERS = (
    "CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);"
    "INSERT INTO singer VALUES (1, 'Joe', 'France', 52), (2, 'Ann', 'Peru', 30), (3, 'Bo', 'France', NULL);"
)


def spider_folder(root: Path, records: list[dict], *, tables: list[str] | None = None) -> Path:
    make_db(root / "database" / "concert" / "concert.sqlite", SINGERS)
    (root / "dev.json").write_text(json.dumps(records))
    if tables is not None:
        (root / "tables.json").write_text(json.dumps([{"db_id": t} for t in tables]))
    return root


def record(question="How many singers are there?", query="SELECT count(*) FROM singer", db_id="concert"):
    return {"db_id": db_id, "question": question, "query": query}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_sql_demo(folder=tmp_path_factory.mktemp("sql-demo") / "v1")


# -- data ---------------------------------------------------------------------------------------------------


def test_sql_demo_is_deterministic_and_split_by_database(demo, tmp_path):
    again = build_sql_demo(folder=tmp_path / "again")
    assert [(e.id, e.question, e.meta["sql"]) for e in again.examples] == [
        (e.id, e.question, e.meta["sql"]) for e in demo.examples
    ]
    for a, b in zip(demo.examples[::10], again.examples[::10], strict=True):
        assert (
            hashlib.sha256(Path(a.meta["db_path"]).read_bytes()).digest()
            == hashlib.sha256(Path(b.meta["db_path"]).read_bytes()).digest()
        )
    databases = {split: {e.meta["db_id"] for e in demo.split(split)} for split in ("train", "dev", "test")}
    assert len(databases["train"]) == 4 and len(databases["dev"]) == len(databases["test"]) == 1
    assert not databases["train"] & databases["dev"] and not databases["train"] & databases["test"]
    assert not databases["dev"] & databases["test"]


def test_sql_demo_answers_by_hand(demo):
    """Every database has 0+1+2+3+3+5+6 = 20 child rows (the generator's counts) and exactly one parent without
    any; the library's schema is its own CREATE statements."""
    sandbox = TASK.backend(demo, {})
    counts = [e for e in demo.examples if e.question.startswith("How many") and e.question.endswith("are there?")]
    assert len(counts) == 6
    for example in counts:
        assert sandbox.run(example.meta["db_path"], example.meta["sql"]).rows == ((20,),)
    nobody = [e for e in demo.examples if e.question.endswith("yet?")]
    assert all(len(sandbox.run(e.meta["db_path"], e.meta["sql"]).rows) == 1 for e in nobody)
    library = next(e for e in demo.examples if e.meta["db_id"] == "library")
    assert "CREATE TABLE books (" in library.meta["schema"] and "price REAL" in library.meta["schema"]
    sql = [e.meta["sql"].upper() for e in demo.examples]
    for construct in ("JOIN", "GROUP BY", "ORDER BY", "IS NULL", "AVG(", "SUM(", "LIMIT", "NOT IN"):
        assert any(construct in s for s in sql), construct


def test_load_collection_knows_sql_demo():
    collection = load_collection("sql-demo")
    assert collection.name == "sql-demo" and len(collection.split("test")) > 0


def test_a_spider_folder_becomes_examples(tmp_path):
    root = spider_folder(
        tmp_path / "spider",
        [record(), record("Names of singers from France?", 'SELECT name FROM singer WHERE country = "France"')],
    )
    (root / "train_spider.json").write_text(json.dumps([record()]))
    collection = load_collection(root)
    assert set(collection.splits) == {"train", "dev"}
    dev = collection.split("dev")
    assert [e.id for e in dev] == ["dev-0", "dev-1"]
    assert dev[1].meta["sql"] == 'SELECT name FROM singer WHERE country = "France"'
    assert dev[1].meta["db_path"].endswith("database/concert/concert.sqlite")
    assert dev[1].meta["schema"].startswith("CREATE TABLE singer")


def test_a_bird_folder_becomes_examples_with_evidence(tmp_path):
    root = tmp_path / "bird"
    make_db(root / "dev" / "dev_databases" / "concert" / "concert.sqlite", SINGERS)
    records = [
        {
            "question_id": 7,
            "db_id": "concert",
            "question": "How many senior singers?",
            "evidence": "senior refers to age > 50",
            "SQL": "SELECT count(*) FROM singer WHERE age > 50",
        }
    ]
    (root / "dev" / "dev.json").write_text(json.dumps(records))
    collection = load_collection(root)
    (example,) = collection.split("dev")
    assert example.id == "dev-7" and example.meta["evidence"] == "senior refers to age > 50"
    _, user = TASK.messages(example, DIRECT)
    assert "External knowledge: senior refers to age > 50" in user["content"]
    sandbox = TASK.backend(collection, {})
    outcome = TASK.execute([TASK.query_action("SELECT count(*) FROM singer WHERE age >= 51", example)], sandbox, 1)[0]
    assert TASK.per_query(outcome, example, TASK.measures)["exec_acc"] == 1.0


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_file", "dev.json: record 1: no database file"),
        ("unknown_db_id", "dev.json: record 1: unknown db_id 'nowhere'"),
        ("not_in_tables", "dev.json: record 1: unknown db_id 'other' (not in tables.json)"),
        ("corrupt", "dev.json: record 1: "),
        ("no_query", "dev.json: record 1: no 'query' text"),
    ],
)
def test_malformed_spider_folders_are_one_line_errors_naming_file_and_record(tmp_path, case, message):
    records = [record(), record()]
    tables = None
    root = tmp_path / "spider"
    if case == "missing_file":
        (root / "database" / "empty").mkdir(parents=True)
        records[1]["db_id"] = "empty"
    elif case == "unknown_db_id":
        records[1]["db_id"] = "nowhere"
    elif case == "not_in_tables":
        make_db(root / "database" / "other" / "other.sqlite", SINGERS)
        records[1]["db_id"], tables = "other", ["concert"]
    elif case == "corrupt":
        (root / "database" / "broken").mkdir(parents=True)
        (root / "database" / "broken" / "broken.sqlite").write_bytes(b"this is not a database, only text " * 40)
        records[1]["db_id"] = "broken"
    elif case == "no_query":
        del records[1]["query"]
    spider_folder(root, records, tables=tables)
    with pytest.raises(DataError) as caught:
        load_collection(root)
    text = str(caught.value)
    assert message in text and "\n" not in text
    if case == "corrupt":
        assert "broken.sqlite is no SQLite database" in text
    result = runner.invoke(app, ["eval", "--data", str(root), "--task", "sql", "--policy", "gold", "--split", "dev",
                                 "--out", str(tmp_path / "e")])  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert message in " ".join(result.output.split())


def test_a_gold_query_that_fails_stops_eval_with_exit_2_naming_file_and_record(tmp_path):
    root = spider_folder(tmp_path / "spider", [record(), record(query="SELECT nosuch FROM singer")])
    args = ["eval", "--data", str(root), "--task", "sql", "--policy", "gold", "--split", "dev"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    flat = " ".join(result.output.split())
    assert "dev.json: record 1: the gold SQL gives runtime_error on concert.sqlite: no such column: nosuch" in flat


# -- prompts and answers ---------------------------------------------------------------------------------


def test_prompts_show_the_schema_and_the_question_and_sample_rows_on_request(demo):
    example = demo.split("test")[0]
    system, user = TASK.messages(example, DIRECT)
    assert '<answer>{"sql": "SELECT ..."}</answer>' in system["content"]
    assert user["content"].startswith("Database schema:\nCREATE TABLE")
    assert user["content"].endswith(f"Question: {example.question}")
    assert "Sample rows" not in user["content"] and "External knowledge" not in user["content"]
    _, with_rows = TASK.messages(example, DIRECT.replace(context_docs=2))
    tables = example.meta["schema"].count("CREATE TABLE")
    assert with_rows["content"].split("Sample rows:\n")[1].split("\n\n")[0].count("\n") == 2 * tables - 1
    assert "<think>" in TASK.messages(example, REASONING)[0]["content"]
    assert TASK.answer_prefix("direct") == '<answer>{"sql": "'


@pytest.mark.parametrize(
    ("completion", "variant", "sql", "ok", "reason"),
    [
        # ended without the closing tag (EOS before the stop): out of format
        ('SELECT name FROM singer"}', "direct", None, False, "missing_answer_tag"),
        # stopped at the closing tag's first token: closed by the answer form
        ('SELECT name FROM singer"}</', "direct", "SELECT name FROM singer", True, "ok"),
        ('SELECT name FROM singer WHERE country = \\"Peru\\""}</answer>', "direct",
         'SELECT name FROM singer WHERE country = "Peru"', True, "ok"),
        # quotes left unescaped: not JSON, read as its inside, a format error
        ('SELECT name FROM singer WHERE country = "Peru""}</answer>', "direct",
         'SELECT name FROM singer WHERE country = "Peru"', False, "not_json"),
        ('"}</answer>', "direct", None, False, "empty_query"),
        ("plan</think>\n<answer>SELECT 1</answer>", "reasoning", "SELECT 1", True, "ok"),
        ('plan</think>\n<answer>{"sql": "SELECT 1"}</answer>', "reasoning", "SELECT 1", True, "ok"),
        ('plan</think>\n<answer>{"query": "SELECT 1"}</answer>', "reasoning", None, False, "missing_key"),
    ],
)  # fmt: skip
def test_answers_are_read_as_json_or_plain_sql(completion, variant, sql, ok, reason):
    settings = DIRECT if variant == "direct" else REASONING
    parsed = TASK.parse(completion, settings)
    assert (parsed.query, parsed.format_ok, parsed.reason) == (sql, ok, reason)


def test_demonstrations_are_the_gold_sql_and_their_completion_parses_back(demo):
    from deepretrieval.models import load_model_and_tokenizer
    from deepretrieval.recipe import TrainRecipe
    from deepretrieval.tasks import render_prompts
    from deepretrieval.warm_start import demonstrations

    train = demo.split("train")
    recipe = TrainRecipe(data="sql-demo", task="sql", model="tiny-random", eval_steps=0)
    kept, completions = demonstrations(TASK, train, recipe)
    assert len(kept) == len(train)
    _, tokenizer = load_model_and_tokenizer("tiny-random")
    prompts = render_prompts(TASK, kept, recipe.prompt_settings(), tokenizer)
    for example, prompt, completion in zip(kept, prompts, completions, strict=True):
        parsed = TASK.parse(completion, recipe.prompt_settings())
        assert parsed.format_ok and parsed.query == " ".join(example.meta["sql"].split())
        # the prompt is a token prefix of prompt + completion: no BPE merge across the boundary
        alone = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        joined = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
        assert joined[: len(alone)] == alone
    quoted = TASK.completion('SELECT 1 WHERE "a" = "a"', "direct")
    assert quoted == 'SELECT 1 WHERE \\"a\\" = \\"a\\""}</answer>'
    assert TASK.parse(quoted, DIRECT).query == 'SELECT 1 WHERE "a" = "a"'


# -- rewards ----------------------------------------------------------------------------------------------


@pytest.fixture()
def concert(tmp_path):
    from deepretrieval.data.sql import database_schema, sql_example

    path = make_db(tmp_path / "concert.sqlite", SINGERS)
    golds = {
        "count": "SELECT count(*) FROM singer",
        "french": "SELECT name FROM singer WHERE country = 'France' ORDER BY name",
        "none": "SELECT name FROM singer WHERE age > 100",
    }
    return [
        sql_example(
            id=key,
            question=key,
            sql=sql,
            db_id="concert",
            db_path=path,
            schema=database_schema(path),
            source="t",
            record=i,
        )
        for i, (key, sql) in enumerate(golds.items())
    ]


# completion (direct, after the prefix), example, Spider total, BIRD total — by hand from SEED-FACTS.md: Spider
# 1.1 / 0 / -2, BIRD 1.1 / 0.4 / 0 / -2.
REWARD_CASES = [
    ('SELECT count(id) FROM singer"}</answer>', "count", 1.1, 1.1),
    ('SELECT count(*) + 1 FROM singer"}</answer>', "count", 0.0, 0.4),  # runs, differs
    ('SELECT count(*) FROM nosuch"}</answer>', "count", 0.0, 0.0),  # does not run
    ('DELETE FROM singer"}</answer>', "count", 0.0, 0.0),  # refused
    ("SELECT count(*) FROM singer</answer>", "count", -2.0, -2.0),  # out of format (no JSON end)
    ('SELECT name FROM singer WHERE country = \'France\' ORDER BY name"}</answer>', "french", 1.1, 1.1),
    # gold has ORDER BY: the multiset rule counts the order, BIRD's set rule does not
    ('SELECT name FROM singer WHERE country = \'France\' ORDER BY name DESC"}</answer>', "french", 0.0, 1.1),
    # a duplicate row: the multiset rule sees it, the set rule does not
    ('SELECT name FROM singer WHERE country = \'France\' UNION ALL SELECT \'Joe\' ORDER BY name"}</answer>', "french",
     0.0, 1.1),
]  # fmt: skip


@pytest.mark.parametrize(("completion", "key", "spider", "bird"), REWARD_CASES)
def test_presets_score_by_hand(concert, completion, key, spider, bird):
    sandbox = TASK.backend(None, {})
    for preset, expected in (("deepretrieval-spider", spider), ("deepretrieval-bird", bird)):
        reward = TaskReward(TASK, sandbox, concert, TASK.presets[preset], DIRECT)
        (result,) = reward.score_batch([completion], [key])
        assert result.total == pytest.approx(expected), (preset, result)


def test_a_timeout_against_an_empty_gold_result_is_a_failure_not_a_match(concert):
    """The original turned a timeout into an empty result, which matched an empty gold result."""
    sandbox = TASK.backend(None, {"timeout_seconds": 0.3})
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
    hang = f'{endless} SELECT name FROM singer, c WHERE x < 0"}}</answer>'
    for preset in TASK.presets:
        reward = TaskReward(TASK, sandbox, concert, TASK.presets[preset], DIRECT)
        (result,) = reward.score_batch([hang], ["none"])
        assert result.reason == "timeout" and result.total == TASK.presets[preset].fails_reward
        assert result.total < TASK.presets[preset].match_reward
    example = concert[2]
    (outcome,) = TASK.execute([TASK.query_action(hang.removesuffix('"}</answer>'), example)], sandbox, 1)
    measures = TASK.per_query(outcome, example, TASK.measures)
    assert measures == {"exec_acc": 0.0, "exec_acc_set": 0.0, "valid_sql": 0.0, "timeout_rate": 1.0}
    (empty,) = TASK.execute([TASK.query_action("SELECT name FROM singer WHERE 0", example)], sandbox, 1)
    assert TASK.per_query(empty, example, ["exec_acc"]) == {"exec_acc": 1.0}  # a real empty result does match


def test_the_reward_log_is_under_the_sql_prefix(concert):
    sandbox = TASK.backend(None, {})
    reward = TaskReward(TASK, sandbox, concert, TASK.presets["deepretrieval-spider"], DIRECT)
    logged = {}
    reward(
        [""] * 2, ['SELECT count(*) FROM singer"}</answer>', "oops"], ["count", "count"], log_metric=logged.__setitem__
    )
    assert logged["sql/metric"] == 1.0 and logged["sql/format_error_ratio"] == 0.5


# -- evaluation and training ------------------------------------------------------------------------------


def test_eval_of_the_gold_policy_from_the_cli_is_exact(tmp_path):
    out = tmp_path / "e"
    args = ["eval", "--data", "sql-demo", "--task", "sql", "--policy", "gold", "--policy", "original"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    policies = json.loads((out / "metrics.json").read_text())["policies"]
    assert policies["gold"]["exec_acc"] == 1.0 and policies["gold"]["exec_acc_set"] == 1.0
    assert policies["gold"]["valid_sql"] == 1.0 and policies["gold"]["timeout_rate"] == 0.0
    assert policies["original"]["exec_acc"] == 0.0 and policies["original"]["valid_sql"] == 0.0  # a question is no SQL
    assert "exec_acc" in result.output
    from deepretrieval.evaluate import paired_test

    test = load_collection("sql-demo").split("test")
    paired = paired_test(out, test, "gold", "original", ["exec_acc"], task=TASK)["exec_acc"]
    assert paired["difference"] == 1.0 and paired["queries"] == len(test)


@pytest.mark.slow
def test_grpo_trains_on_the_sql_demo(tmp_path):
    """A short GRPO run with the tiny random model on the generated databases, dev-evaluated at both ends."""
    from deepretrieval.runs import read_log
    from deepretrieval.train import train

    from .conftest import tiny_recipe

    recipe = tiny_recipe(
        tmp_path / "run", data="sql-demo", task="sql", reward="deepretrieval-spider", reward_k=None,
        max_completion_length=16, eval_limit=4,
    )  # fmt: skip
    result = train(recipe)
    assert result.steps == 2
    log = read_log(result.log_path)
    steps = [r for r in log if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(r["sql/failures"] == 0 for r in steps)
    assert [r["step"] for r in log if "dev/exec_acc" in r] == [0, 2]
    policy = json.loads((result.final_dir / "policy.json").read_text())
    assert policy["task"] == "sql" and policy["selection"]["measure"] == "exec_acc"
