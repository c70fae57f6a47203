"""The feedback-anchored query mode: the policy edits the RM3 query by choosing terms from a menu."""

from __future__ import annotations

from dataclasses import replace

import pytest

from deepretrieval.data import load_collection
from deepretrieval.feedback import FeedbackSettings, feedback_for
from deepretrieval.policies import PRFPolicy, make_policy
from deepretrieval.prompts import PromptSettings
from deepretrieval.rewards import PRESETS
from deepretrieval.tasks import TaskReward, get_task, propose_output
from deepretrieval.tasks.retrieval import RM3Query, WeightedQuery

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


# An answer with nothing to search, in every family, mode and preset (feedback, expand-rm3, select-rm3
# included): test_hostile_completions.py::test_an_answer_with_nothing_to_search_is_penalised_in_training_...


def _ndcg10(ranked_ids, example) -> float:
    """nDCG@10 by pytrec_eval (not the reward's own metric code)."""
    import pytrec_eval

    qrels = {"q": {d: int(g) for d, g in example.targets.items()}}
    run = {"q": {d: float(len(ranked_ids) - i) for i, d in enumerate(ranked_ids)}}
    return pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)["q"]["ndcg_cut_10"]


def test_the_log_reports_the_gain_over_prf(demo):
    """The logged gain is the answers' mean nDCG@10 minus the prf baseline's on the same examples (an empty
    answer searched nothing: it is penalised and left out of the gain)."""
    _, backend, examples = demo
    reward = TaskReward(TASK, backend, examples, PRESETS["ndcg-lenient"], FEEDBACK)
    logged = {}
    pairs = [(examples[0], examples[0].meta["oracle_query"]), (examples[1], examples[1].meta["oracle_query"])]
    completions = [f'{text}"}}</answer>' for _, text in pairs] + ['"}</answer>']
    ids = [e.id for e, _ in pairs] + [examples[0].id]
    totals = reward([""] * 3, completions, ids, log_metric=logged.__setitem__)
    prf = PRFPolicy(backend).generate([e for e, _ in pairs])
    gains = []
    for (example, text), baseline in zip(pairs, prf, strict=True):
        answer = TASK.execute([TASK.action(text, example, FEEDBACK)], backend, 10)[0].ids
        gains.append(_ndcg10(answer, example) - _ndcg10(TASK.execute([baseline.action], backend, 10)[0].ids, example))
    assert totals[:2] == pytest.approx(
        [_ndcg10(TASK.execute([TASK.action(t, e, FEEDBACK)], backend, 10)[0].ids, e) for e, t in pairs]
    )
    assert totals[2] == PRESETS["ndcg-lenient"].empty_penalty
    assert abs(sum(gains)) > 0.01  # the answers differ from RM3: a wrong gain cannot pass as zero
    assert logged["retrieval/gain_over_prf"] == pytest.approx(sum(gains) / len(gains))
    assert logged["retrieval/empty_ratio"] == pytest.approx(1 / 3)


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
    assert action == RM3Query(f"{example.question} myocardial infarction")
    expanded = replace(example, question=action.text)
    rm3 = PRFPolicy(backend).generate([expanded])[0].action
    [outcome] = TASK.execute([action], backend, 100)
    assert outcome.ranking.ids == TASK.execute([rm3], backend, 100)[0].ranking.ids
    plain = TASK.execute([TASK.fallback(example, EXPAND_RM3)], backend, 100)[0].ranking.ids
    assert outcome.ranking.ids != plain  # the expansion changed what fed back


@pytest.mark.parametrize("mode", ["feedback", "expand-rm3"])
def test_a_model_policy_evaluates_in_the_feedback_anchored_modes(demo, mode):
    collection, backend, _ = demo
    settings = {"mode": mode, "context_docs": 0, "max_new_tokens": 4}
    policy = make_policy("tiny-random", task=TASK, backend=backend, collection=collection, prompt=settings)
    examples = collection.split("test")[:3]
    outputs = policy.generate(examples)
    kind = WeightedQuery if mode == "feedback" else RM3Query
    assert [type(o.action) for o in outputs] == [kind] * 3


def test_the_short_prompt_style_says_the_same_in_fewer_words(demo):
    _, _, examples = demo
    example = replace(examples[0], meta={**examples[0].meta, "titles": ["a title", "another title"]})
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
    assert len(selection.docs) == 10 and "titles" not in example.meta  # the numbered list replaces the titles
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


@pytest.mark.parametrize("preset", ["ndcg-lenient", "ndcg", "deepretrieval-recall"])
@pytest.mark.parametrize("answer", ["none", "None of them.", " NONE "])
def test_select_rm3_none_is_a_deliberate_answer_plain_rm3_scored_on_its_merits(selected, preset, answer):
    """``none`` (no shown result is relevant) is a well-formed answer: plain RM3, with a well-formed answer's
    reward (computed here from the prf baseline's ranking); the empty answer gets the penalty instead."""
    _, backend, examples = selected
    config = PRESETS[preset]
    example = examples[0]
    rm3 = PRFPolicy(backend).generate([example])[0].action
    ranked = TASK.execute([rm3], backend, config.k)[0].ids
    if config.tiers is None:  # nDCG@10, no format term
        expected = _ndcg10(ranked, example)
    else:  # DeepRetrieval's step table on recall@100, +1 for the format
        recall = len(set(ranked[:100]) & example.relevant) / len(example.relevant)
        expected = next((r for t, r in config.tiers if recall >= t), config.below_tiers) + config.format_bonus
    reward = TaskReward(TASK, backend, examples, config, SELECT)
    result = reward.score_batch([TASK.completion(answer, "direct")], [example.id])[0]
    assert (result.format_ok, result.reason, result.failure) == (True, "ok", None)
    assert result.total == pytest.approx(expected)
    empty = reward.score_batch([TASK.completion("", "direct")], [example.id])[0]
    assert empty.total == (config.format_penalty if config.require_format else config.empty_penalty)
    output = propose_output(TASK, TASK.completion(answer, "direct"), example, SELECT, backend)
    assert output.action == rm3


def test_the_select_rm3_demonstration_with_no_relevant_result_shown_is_none(selected):
    """The warm start teaches ``none`` where the judgments call no shown result relevant, never the empty
    answer (which training penalises); it parses back as a well-formed answer that runs plain RM3."""
    _, backend, examples = selected
    example = replace(examples[0], targets={"not-a-shown-document": 1})
    text = TASK.demonstration(example, SELECT)
    assert text == "none"
    parsed = TASK.parse(TASK.completion(text, "direct"), SELECT)
    assert (parsed.query, parsed.format_ok) == ("none", True)
    assert TASK.searchable(text, backend, SELECT)
    assert TASK.action(text, example, SELECT) == PRFPolicy(backend).generate([example])[0].action


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
