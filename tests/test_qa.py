"""The evidence-seeking QA family on the task seam: question -> query -> BM25 over passages -> rank of the
first passage holding an answer (DeepRetrieval's step table), its loader and its generated collection."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepretrieval.cli import app
from deepretrieval.data import load_collection
from deepretrieval.data.qa import AnswerIndex, answer_tokens, has_answer, load_qa
from deepretrieval.data.qademo import build_qa_demo
from deepretrieval.errors import DataError, DeepRetrievalError
from deepretrieval.prompts import PromptSettings
from deepretrieval.tasks import TaskReward, get_task
from deepretrieval.types import Collection, Document, Example, Ranking

runner = CliRunner()
TASK = get_task("qa")
DIRECT = PromptSettings(variant="direct", mode="rewrite", context_docs=0)
REASONING = PromptSettings(variant="reasoning", mode="rewrite", context_docs=0)


@pytest.fixture(scope="module")
def demo() -> Collection:
    return build_qa_demo()


# ---------------------------------------------------------------------------------------------------
# Answer containment


@pytest.mark.parametrize(
    ("answer", "text", "found"),
    [
        ("Zürich", "He moved to Zu\u0308rich in 1900.", True),  # NFC answer, NFD passage
        ("Zu\u0308rich", "He moved to Zürich in 1900.", True),  # and the other way round
        ("Zurich", "He moved to Zürich in 1900.", False),  # accents are letters, not decoration
        ("ZÜRICH", "he moved to zürich", True),  # case
        ("new york", "She left New York.", True),
        ("Jean-Paul Sartre", "a play by Jean Paul Sartre", True),  # punctuation is a word break
        ("Jean Paul Sartre", "a play by Jean-Paul Sartre, in 1944", True),
        ("U.S.", "the U.S. army", True),
        ("Bizet", "Bizet's opera Carmen", True),
        ("fish", "the \ufb01sh market", True),  # NFKC: the "fi" ligature
        ("1944", "in １９４４", True),  # NFKC: full-width digits
        ("cat", "a category of animals", False),  # a substring of a longer word does not count
        ("cat", "concatenate", False),
        ("cat", "the cat sat", True),
        ("New York", "a New Yorker cartoon", False),
        ("York", "New York", True),
        ("Carmen Bizet", "Bizet wrote Carmen", False),  # a word sequence, not a bag of words
    ],
)
def test_an_answer_is_contained_as_a_normalised_word_sequence(answer, text, found):
    assert has_answer([answer], text) is found
    index = AnswerIndex({"q": [answer]})
    assert (index.questions_in(text) == {"q"}) is found


def test_normalisation_by_hand():
    assert answer_tokens("Zu\u0308rich, U.S.A.!") == ("zürich", "u", "s", "a")
    assert answer_tokens("  ") == () and answer_tokens("!!!") == ()
    assert answer_tokens("İstanbul") == answer_tokens("i\u0307stanbul")  # folding that decomposes


def test_one_answer_of_several_is_enough_and_the_index_finds_every_question():
    assert has_answer(["nope", "Georges Bizet"], "composed by georges bizet.")
    index = AnswerIndex({"a": ["cat"], "b": ["the cat sat", "dog"], "c": ["cat sat down"], "d": ["mat"]})
    assert index.questions_in("The cat sat on the mat.") == {"a", "b", "d"}
    documents = [Document("p1", "Cat", "a category"), Document("p2", "", "a dog and a cat")]
    assert index.targets(documents) == {"b": {"p2": 1}, "a": {"p2": 1}}  # titles are not searched, as DPR


# ---------------------------------------------------------------------------------------------------
# Reward: DeepRetrieval's rank table, +1 / -4 format term


class RankedBackend:
    """Returns one fixed ranking for every query: the answer passage at a chosen rank."""

    def __init__(self, rank: int | None, length: int = 3100) -> None:
        ids = [f"x{i}" for i in range(length)]
        if rank is not None:
            ids[rank - 1] = "gold"
        self.ids = ids
        self.calls: list[int] = []

    def search(self, queries, k):
        self.calls.append(len(queries))
        return [Ranking(self.ids[:k]) for _ in queries]


EXAMPLE = Example("q1", "who wrote carmen?", {"gold": 1}, {"answers": ["Georges Bizet"]})


def _reward(rank: int | None, completion: str, preset: str = "deepretrieval-rank", settings=DIRECT):
    reward = TaskReward(TASK, RankedBackend(rank), [EXAMPLE], TASK.presets[preset], settings)
    return reward.score_batch([completion], [EXAMPLE.id])[0]


@pytest.mark.parametrize(
    ("rank", "total"),
    [
        (1, 1 + 5.0),
        (5, 1 + 5.0),
        (6, 1 + 4.0),
        (7, 1 + 4.0),
        (20, 1 + 4.0),
        (21, 1 + 2.0),
        (50, 1 + 2.0),
        (51, 1 + 1.0),
        (60, 1 + 1.0),
        (100, 1 + 1.0),
        (101, 1 + 0.5),
        (1000, 1 + 0.5),
        (1001, 1 + 0.1),
        (3000, 1 + 0.1),
        (3001, 1 - 3.5),  # beyond the top 3,000: as absent
        (None, 1 - 3.5),
    ],
)
def test_reward_is_the_rank_table_plus_the_format_bonus(rank, total):
    result = _reward(rank, 'bizet carmen opera"')
    assert result.format_ok and result.failure is None
    assert result.total == pytest.approx(total)


def test_reasoning_variant_and_format_errors():
    assert _reward(1, 'who wrote it</think><answer>{"query": "bizet"}</answer>', settings=REASONING).total == 6.0
    assert _reward(1, '<answer>{"query": "bizet"}</answer>', settings=REASONING).total == -4.0  # no <think>
    assert _reward(7, "bizet carmen opera and it never ends").total == -4.0  # never closed
    # An empty answer, or one with nothing to search, is never better than a valid query that finds nothing.
    for empty in ('"', ' "', '!!! "'):
        assert _reward(1, empty).total == -4.0 <= _reward(None, 'bizet"').total


def test_squad_preset_costs_less_when_nothing_is_found():
    assert _reward(None, 'bizet"', "deepretrieval-rank-squad").total == pytest.approx(1 - 2.5)
    assert _reward(60, 'bizet"', "deepretrieval-rank-squad").total == pytest.approx(2.0)


def test_the_reward_log_is_under_the_family_prefix():
    """The reward adapter logs its per-step statistics under the family's name, ``qa/``, never ``retrieval/``."""
    reward = TaskReward(TASK, RankedBackend(5), [EXAMPLE], TASK.presets["deepretrieval-rank"], DIRECT)
    logged: dict[str, float] = {}
    completions = ['bizet carmen opera"', 'bizet carmen opera"', "bizet carmen opera and it never ends"]
    totals = reward([""] * 3, completions, [EXAMPLE.id] * 3, log_metric=logged.__setitem__)
    assert totals == [6.0, 6.0, -4.0]  # rank 5: 1 + 5.0 each; the third never closes its answer
    assert logged == pytest.approx(
        {
            "qa/metric": 1 / 5,  # MRR of the two answers that searched: the answer passage at rank 5
            "qa/empty_ratio": 0.0,
            "qa/format_error_ratio": 1 / 3,
            "qa/failures": 0.0,
            "qa/query_tokens": 3.0,  # "bizet carmen opera", by words (no tokenizer given)
            "qa/unique_queries": 1.0,
        }
    )


def test_the_reward_table_is_deepretrievals():
    from deepretrieval.tasks.qa import FIRST_HIT_TIERS

    seed_facts = [(5, 5.0), (20, 4.0), (50, 2.0), (100, 1.0), (1000, 0.5), (3000, 0.1)]  # SEED-FACTS.md
    assert [(round(1 / t), r) for t, r in FIRST_HIT_TIERS] == seed_facts
    config = TASK.presets["deepretrieval-rank"]
    assert (config.k, config.below_tiers, config.format_bonus, config.format_penalty) == (3000, -3.5, 1.0, -4.0)
    assert next(iter(TASK.presets)) == "deepretrieval-rank"  # listed first: the family's default


# ---------------------------------------------------------------------------------------------------
# Prompts and modes


@pytest.mark.parametrize("settings", [DIRECT, REASONING, replace(DIRECT, style="short")])
def test_prompts_ask_for_a_query_for_the_question(settings, demo):
    example = demo.split("test")[0]
    system, user = TASK.messages(example, settings)
    assert user["content"] == f"Question: {example.question}"
    assert '<answer>{"query": "..."}</answer>' in system["content"] and "medical passage" in system["content"]
    assert ("<think>" in system["content"]) == (settings.variant == "reasoning")
    assert (
        TASK.answer_prefix(settings.variant)
        == {"direct": '<answer>{"query": "', "reasoning": "<think>"}[settings.variant]
    )


def test_expand_mode_appends_the_keywords_to_the_question_and_feedback_is_refused():
    expand = replace(DIRECT, mode="expand")
    assert TASK.action("georges bizet", EXAMPLE, expand) == "who wrote carmen? georges bizet"
    assert TASK.action("georges bizet", EXAMPLE, DIRECT) == "georges bizet"
    with pytest.raises(DeepRetrievalError, match="no 'feedback' mode"):
        TASK.check(replace(DIRECT, mode="feedback"))


# ---------------------------------------------------------------------------------------------------
# Loader


def _write(folder: Path, questions: list, passages: list | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    passages = passages or [
        {"_id": "p1", "title": "Carmen", "text": "Carmen is an opera by Georges Bizet."},
        {"_id": "p2", "title": "Zürich", "text": "Zu\u0308rich is the largest city in Switzerland."},
        {"_id": "p3", "title": "Cats", "text": "A category of small animals."},
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(p) + "\n" for p in passages))
    path = folder / "questions.jsonl"
    path.write_text("".join((q if isinstance(q, str) else json.dumps(q, ensure_ascii=False)) + "\n" for q in questions))
    return path


def test_loader_reads_nq_triviaqa_and_squad_answers(tmp_path):
    path = _write(
        tmp_path,
        [
            {"id": "nq", "question": "who wrote carmen", "answers": ["Georges Bizet", "Bizet"]},
            {"question": "largest city in switzerland", "answer": ["Zürich"]},  # NQ-open's spelling, no id
            {"id": "squad", "question": "what is zurich", "answers": {"text": ["largest city"], "answer_start": [9]}},
            {"id": "v2", "question": "unanswerable", "answers": {"text": [], "answer_start": []}},
            {"id": "cat", "question": "what is a cat", "answers": ["cat"]},  # only inside "category"
        ],
    )
    collection = load_collection(path)  # recognised as QA by its first record
    by_id = {e.id: e for e in collection.examples}
    assert set(by_id) == {"nq", "2", "squad"}
    assert by_id["nq"].targets == {"p1": 1} and by_id["nq"].meta["answers"] == ["Georges Bizet", "Bizet"]
    assert by_id["2"].targets == {"p2": 1} and by_id["squad"].targets == {"p2": 1}
    warnings = " ".join(collection.warnings)
    assert "1 questions have no answer (unanswerable): dropped (first: 'v2')" in warnings
    assert "1 questions have no answer in any passage: dropped (first: 'cat')" in warnings
    assert sorted(sum(collection.splits.values(), [])) == sorted(by_id)


def test_declared_splits_are_kept(tmp_path):
    questions = [
        {"id": "a", "question": "who wrote carmen", "answers": ["Bizet"], "split": "train"},
        {"id": "b", "question": "swiss city", "answers": ["Zürich"], "split": "test"},
    ]
    assert load_qa(_write(tmp_path, questions)).splits == {"train": ["a"], "test": ["b"]}


GOOD = '{"id": "a", "question": "who wrote carmen", "answers": ["Bizet"]}'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "b", "question": "x", "answers": "Bizet"}', "field 'answers' must be a list of strings, got one"),
        ('{"id": "b", "question": "x", "answers": ["Bizet", 7]}', "an answer in 'answers' must be a string, got 7"),
        ('{"id": "b", "question": "x", "answers": {"start": [1]}}', "is an object without 'text'"),
        ('{"id": "b", "question": "x", "answers": ["!!!"]}', "answer '!!!' has no word in it"),
        ('{"id": "b", "question": "x"}', "field 'answers' must be a list of answer strings"),
        ('{"id": "b", "question": " ", "answers": ["Bizet"]}', "field 'question' is blank"),
        ('{"id": "b", "answers": ["Bizet"]}', "missing field 'question'"),
        ('{"id": "a", "question": "who composed carmen", "answers": ["Bizet"]}', "duplicate question id 'a'"),
        ('{"id": "b", "question": "x", "answers": ["Bizet"], "split": "test"}', "either every question has a 'split'"),
        ('{"id": "b", "question": "x", "answers": ["Bizet"', "invalid JSON"),
    ],
)
def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path, line, message):
    path = _write(tmp_path, [GOOD, line])
    with pytest.raises(DataError) as raised:
        load_qa(path)
    text = str(raised.value)
    assert "\n" not in text and message in text
    assert text.startswith(f"{path}:2:") or (message.startswith("either") and text.startswith(f"{path}:1:"))


def test_missing_corpus_and_no_answer_anywhere_are_errors(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(GOOD + "\n")
    with pytest.raises(DataError, match="no passage corpus for these questions"):
        load_qa(path)
    none = _write(tmp_path / "none", [{"id": "a", "question": "x", "answers": ["Verdi"]}])
    with pytest.raises(DataError, match="none of its 1 questions has an answer in a passage"):
        load_qa(none)


# ---------------------------------------------------------------------------------------------------
# The generated collection


def _digest(c: Collection) -> str:
    payload = {
        "documents": [[d.id, d.title, d.text] for d in c.documents],
        "examples": [[e.id, e.question, e.targets, e.meta] for e in c.examples],
        "splits": c.splits,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


QA_DEMO_DIGEST = "dd17fbd677659cc2d6fb6466139a684406aa3870f88836fb99875e37775cce85"


def test_qa_demo_is_deterministic(demo):
    assert _digest(build_qa_demo()) == _digest(demo) == QA_DEMO_DIGEST
    assert _digest(build_qa_demo(seed=1)) != _digest(demo)
    assert _digest(load_collection("qa-demo")) == _digest(demo)
    assert (len(demo.examples), {k: len(v) for k, v in demo.splits.items()}) == (
        300,
        {"train": 180, "dev": 60, "test": 60},
    )


def test_qa_demo_answers_are_really_contained_and_only_where_stated(demo):
    texts = {d.id: d.text for d in demo.documents}
    words = {d.id: answer_tokens(d.text) for d in demo.documents}
    for example in demo.examples:
        assert 1 <= len(example.targets) <= 10
        assert all(has_answer(example.meta["answers"], texts[p]) for p in example.targets)
    for example in demo.examples[:25]:  # every passage, checked without the index
        wanted = answer_tokens(example.meta["answers"][0])
        n = len(wanted)
        holding = {p for p, w in words.items() if any(w[i : i + n] == wanted for i in range(len(w) - n + 1))}
        assert holding == set(example.targets)
    # Some answers are written decomposed (NFD) and still found.
    decomposed = {p for p, t in texts.items() if unicodedata.normalize("NFC", t) != t}
    assert decomposed & set().union(*(e.targets for e in demo.examples))


def test_qa_demo_questions_use_lay_words_the_answer_passages_lack(demo):
    for example in demo.examples[:50]:
        question = set(answer_tokens(example.question))
        for term in example.meta["technical_terms"]:
            assert not set(answer_tokens(term)) <= question, (example.question, term)


def test_qa_demo_arguments_are_checked():
    with pytest.raises(DeepRetrievalError, match="n_questions must be between 3"):
        build_qa_demo(n_questions=2)
    with pytest.raises(DeepRetrievalError, match="nfd_rate must be in"):
        build_qa_demo(nfd_rate=2.0)


# ---------------------------------------------------------------------------------------------------
# End to end through the seam: eval from the CLI, and a short GRPO run


def test_eval_on_qa_demo_from_the_cli(tmp_path):
    out = tmp_path / "e"
    args = ["eval", "--data", "qa-demo", "--task", "qa", "--out", str(out), "--policy", "original"]
    result = runner.invoke(app, [*args, "--policy", "oracle"])
    assert result.exit_code == 0, result.output
    policies = json.loads((out / "metrics.json").read_text())["policies"]
    assert set(policies) == {"original", "oracle"}
    for name in TASK.measures:
        assert 0.0 <= policies["original"][name] < policies["oracle"][name] <= 1.0
    assert policies["oracle"]["success@100"] == pytest.approx(1.0)
    line = json.loads((out / "policies" / "original" / "runs.jsonl").read_text().splitlines()[0])
    assert line["query"] == line["question"]


def test_one_batched_search_per_reward_batch_on_the_real_index(demo, tmp_path):
    backend = TASK.backend(demo, {}, index=tmp_path / "index")
    examples = demo.split("train")[:2]
    config = replace(TASK.presets["deepretrieval-rank"], k=100)
    reward = TaskReward(TASK, backend, examples, config, DIRECT)
    oracle, lay = (f'{examples[0].meta["oracle_query"]}"', f'{examples[0].question}"')
    results = reward.score_batch([oracle, lay, oracle, '"'], [examples[0].id] * 4)
    assert results[0].total == results[2].total >= results[1].total
    assert results[0].total == pytest.approx(6.0)  # the oracle query's first answer passage is in the top 5
    assert results[3].total == -4.0


def test_expand_prompts_can_show_the_top_titles(demo, tmp_path):
    settings = PromptSettings(variant="direct", mode="expand", context_docs=3)
    backend = TASK.backend(demo, {}, index=tmp_path / "index")
    shown = TASK.context(backend, demo, settings)(demo.split("test")[:1])
    _, user = TASK.messages(shown[0], settings)
    assert user["content"].count("\n- ") == 3 and "Top search results for it:" in user["content"]


@pytest.mark.slow
def test_grpo_trains_on_the_qa_task(tmp_path):
    """A short GRPO run with the tiny random model, through the task seam, on the BM25 passage index."""
    from deepretrieval.runs import read_log
    from deepretrieval.train import train

    from .conftest import tiny_recipe

    recipe = tiny_recipe(tmp_path / "run", data="qa-demo", task="qa", reward="deepretrieval-rank")
    result = train(recipe)
    assert result.steps == 2
    log = [r for r in read_log(result.log_path) if "reward" in r]
    assert [r["step"] for r in log] == [1, 2]
    assert all(r["qa/failures"] == 0 for r in log)
    assert not any(key.startswith("retrieval/") for r in log for key in r)  # the family's prefix, not retrieval's
    policy = json.loads((result.final_dir / "policy.json").read_text())
    assert policy["task"] == "qa"
    assert [r["step"] for r in read_log(result.log_path) if "dev/success@1" in r] == [0, 2]
    assert policy["selection"]["measure"] == "success@1"
    assert (result.output_dir / "learning_curve.png").exists()
