"""The feedback-anchored query mode: the policy edits the RM3 query by choosing terms from a menu."""

from __future__ import annotations

from dataclasses import replace

import pytest

from deepretrieval.data import load_collection
from deepretrieval.feedback import FeedbackSettings, feedback_for
from deepretrieval.parsing import Parsed
from deepretrieval.policies import PRFPolicy, make_policy
from deepretrieval.prompts import PromptSettings
from deepretrieval.rewards import PRESETS, score
from deepretrieval.tasks import TaskReward, get_task, propose_output
from deepretrieval.tasks.retrieval import FeedbackQuery, WeightedQuery

TASK = get_task("retrieval")
FEEDBACK = PromptSettings(mode="feedback", context_docs=0)


@pytest.fixture(scope="module")
def demo():
    collection = load_collection("demo")
    backend = TASK.backend(collection, {})
    examples = TASK.context(backend, collection, FEEDBACK)(collection.split("train")[:6])
    return collection, backend, examples


def test_the_prompt_shows_the_menu_and_the_unedited_query_is_rm3(demo):
    collection, backend, examples = demo
    example = examples[0]
    menu = example.meta["feedback"].menu
    assert len(menu) == 30
    user = TASK.messages(example, FEEDBACK)[1]["content"]
    assert "Candidate terms: " + ", ".join(t.word for t in menu) in user
    prf = PRFPolicy(backend).generate([example])[0].action
    assert TASK.fallback(example, FEEDBACK) == prf  # the starting point is exactly the prf baseline


def test_an_answer_adds_menu_terms_at_their_weight_and_drops_expansion_terms(demo):
    _, _, examples = demo
    feedback = examples[0].meta["feedback"]
    new, old = feedback.menu[20], feedback.menu[2]
    action = TASK.action(f"{new.word.upper()}, -{old.word}, notaterm", examples[0], FEEDBACK)
    weights = dict(action.terms)
    base = feedback.weights()
    assert weights[new.stem] == pytest.approx((1 - feedback.original_weight) * new.weight)
    assert weights.get(old.stem, 0.0) == pytest.approx(base[old.stem] - (1 - feedback.original_weight) * old.weight)
    assert {t for t in weights if t not in (new.stem, old.stem)} == {t for t in base if t not in (new.stem, old.stem)}
    assert TASK.action("nothing from the menu", examples[0], FEEDBACK) == TASK.fallback(examples[0], FEEDBACK)


@pytest.mark.parametrize("preset", ["ndcg-lenient", "recall-lenient", "recall", "deepretrieval-recall"])
@pytest.mark.parametrize("answer", ['"}</answer>', '!!!"}</answer>', "garbage with no answer"])
def test_an_empty_answer_runs_the_feedback_query_and_earns_no_more_than_its_ordinary_reward(demo, preset, answer):
    _, backend, examples = demo
    config = PRESETS[preset]
    reward = TaskReward(TASK, backend, examples, config, FEEDBACK)
    example = examples[0]
    menu_only = f'{example.meta["feedback"].menu[0].word}"}}</answer>'  # adds nothing: already in RM3
    ordinary = reward.score_batch([menu_only], [example.id])[0]
    empty = reward.score_batch([answer], [example.id])[0]
    assert empty.failure is None and empty.metric in (None, ordinary.metric)
    assert empty.total <= ordinary.total
    policy_output = propose_output(TASK, answer, example, FEEDBACK, backend)
    assert policy_output.action == TASK.fallback(example, FEEDBACK)  # evaluation runs the unedited RM3 query


def test_the_log_reports_the_gain_over_prf(demo):
    _, backend, examples = demo
    reward = TaskReward(TASK, backend, examples, PRESETS["ndcg-lenient"], FEEDBACK)
    logged = {}
    best = examples[0].meta["oracle_query"]
    reward([""] * 2, [f'{best}"}}</answer>', '"}</answer>'], [examples[0].id] * 2, log_metric=logged.__setitem__)
    assert "retrieval/gain_over_prf" in logged


def test_feedback_for_without_hits_is_the_user_query():
    class Empty:
        def analyze(self, text):
            return text.split()

    feedback = feedback_for(Empty(), "heart attack", [], FeedbackSettings())
    assert feedback.menu == () and feedback.weights() == {"attack": 0.25, "heart": 0.25}


# -- expand-rm3: the model's expansion, then RM3 on the expanded query ----------------------------------------

EXPAND_RM3 = PromptSettings(mode="expand-rm3", context_docs=0)


def test_expand_rm3_runs_rm3_on_the_expanded_query(demo):
    collection, backend, examples = demo
    example = examples[0]
    action = TASK.action("myocardial infarction", example, EXPAND_RM3)
    assert action == FeedbackQuery(f"{example.question} myocardial infarction")
    expanded = replace(example, question=action.text)
    rm3 = PRFPolicy(backend).generate([expanded])[0].action
    [outcome] = TASK.execute([action], backend, 100)
    assert outcome.ranking.ids == TASK.execute([rm3], backend, 100)[0].ranking.ids
    plain = TASK.execute([TASK.fallback(example, EXPAND_RM3)], backend, 100)[0].ranking.ids
    assert outcome.ranking.ids != plain  # the expansion changed what fed back


@pytest.mark.parametrize("preset", ["ndcg-lenient", "recall-lenient", "recall", "deepretrieval-recall"])
@pytest.mark.parametrize("answer", ['"}</answer>', '!!!"}</answer>', "garbage with no answer"])
def test_expand_rm3_empty_answer_runs_plain_rm3_for_no_more_than_its_ordinary_reward(demo, preset, answer):
    _, backend, examples = demo
    assert_empty_answer_runs_rm3(backend, examples, PRESETS[preset], EXPAND_RM3, answer)


def assert_empty_answer_runs_rm3(backend, examples, config, settings, answer):
    """In a feedback-anchored mode, ``answer`` (nothing usable) is scored no higher than RM3's own
    well-formed reward, and evaluation runs RM3 for it."""
    example = examples[0]
    prf = PRFPolicy(backend).generate([example])[0].action
    prf_ids = TASK.execute([prf], backend, config.k)[0].ranking.ids
    ordinary = score(Parsed("query", None, True, "ok"), prf_ids, example, config)  # RM3's own, well-formed
    empty = TaskReward(TASK, backend, examples, config, settings).score_batch([answer], [example.id])[0]
    assert empty.failure is None and empty.metric in (None, pytest.approx(ordinary.metric))
    assert empty.total <= ordinary.total
    output = propose_output(TASK, answer, example, settings, backend)
    assert (
        TASK.execute([output.action], backend, 100)[0].ranking.ids == TASK.execute([prf], backend, 100)[0].ranking.ids
    )


@pytest.mark.parametrize("mode", ["feedback", "expand-rm3"])
def test_a_model_policy_evaluates_in_the_feedback_anchored_modes(demo, mode):
    collection, backend, _ = demo
    settings = {"mode": mode, "context_docs": 0, "max_new_tokens": 4}
    policy = make_policy("tiny-random", task=TASK, backend=backend, collection=collection, prompt=settings)
    examples = collection.split("test")[:3]
    outputs = policy.generate(examples)
    kind = WeightedQuery if mode == "feedback" else FeedbackQuery
    assert [type(o.action) for o in outputs] == [kind] * 3


def test_the_short_prompt_style_says_the_same_in_fewer_words(demo):
    _, _, examples = demo
    example = replace(examples[0], meta={**examples[0].meta, "context": ["a title", "another title"]})
    full = TASK.messages(example, FEEDBACK)
    short = TASK.messages(example, PromptSettings(mode="feedback", context_docs=2, style="short"))
    for part in (example.question, "a title", "another title", example.meta["feedback"].menu[-1].word, '"query"'):
        assert part in short[0]["content"] + short[1]["content"]
    assert len(" ".join(m["content"] for m in short)) < 0.75 * len(" ".join(m["content"] for m in full))


# -- select-rm3: the model names the relevant results, RM3 feeds back those only -----------------------------

SELECT = PromptSettings(mode="select-rm3", context_docs=3, style="short")


@pytest.fixture(scope="module")
def selected(demo):
    collection, backend, _ = demo
    examples = TASK.context(backend, collection, SELECT)(collection.split("train")[:6])
    return collection, backend, examples


def test_select_rm3_lists_the_feedback_documents_and_all_of_them_is_rm3(selected):
    collection, backend, examples = selected
    example = examples[0]
    selection = example.meta["selection"]
    assert len(selection.docs) == 10 and "context" not in example.meta  # the numbered list replaces the titles
    user = TASK.messages(example, SELECT)[1]["content"]
    first_pass = backend.search([example.question], 10)[0]
    titles = {d.id: d.title for d in collection.documents}
    for number, hit in enumerate(first_pass, 1):
        assert f"\n{number}. {titles[hit.doc_id].strip()}" in user
    prf = PRFPolicy(backend).generate([example])[0].action
    assert TASK.fallback(example, SELECT) == prf
    everything = TASK.action(" ".join(str(i) for i in range(1, 11)), example, SELECT)
    assert dict(everything.terms) == pytest.approx(dict(prf.terms))


def test_select_rm3_feeds_back_only_the_named_results(selected):
    _, backend, examples = selected
    example = examples[0]
    hits = list(backend.search([example.question], 10)[0])
    action = TASK.action("3, 1 and 12 (7.5)", example, SELECT)  # 12 is not listed, 7.5 is not a number of one
    expected = feedback_for(backend, example.question, [hits[0], hits[2]], FeedbackSettings(menu_terms=10))
    assert dict(action.terms) == pytest.approx(expected.weights())
    assert example.meta["selection"].choice("3, 1 and 12 (7.5)") == (0, 2)
    assert TASK.action("12 0", example, SELECT) == TASK.fallback(example, SELECT)  # nothing listed: plain RM3


@pytest.mark.parametrize("preset", ["ndcg-lenient", "recall-lenient", "deepretrieval-recall"])
@pytest.mark.parametrize("answer", ['"}</answer>', 'none of them"}</answer>', "garbage with no answer"])
def test_select_rm3_empty_answer_runs_rm3_for_no_more_than_its_ordinary_reward(selected, preset, answer):
    _, backend, examples = selected
    assert_empty_answer_runs_rm3(backend, examples, PRESETS[preset], SELECT, answer)
    assert propose_output(TASK, answer, examples[0], SELECT, backend).action == TASK.fallback(examples[0], SELECT)


def test_a_model_policy_evaluates_in_select_rm3(demo):
    collection, backend, _ = demo
    policy = make_policy(
        "tiny-random",
        task=TASK,
        backend=backend,
        collection=collection,
        prompt={"mode": "select-rm3", "max_new_tokens": 4},
    )
    outputs = policy.generate(collection.split("test")[:3])
    assert [type(o.action) for o in outputs] == [WeightedQuery] * 3
