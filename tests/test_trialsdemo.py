"""The generated trial collection (trials-demo): ClinicalTrials.gov v2 study objects, loaded by the loader.

Expected values come from the study objects themselves (read here with plain dict access and the packaged
vocabulary tables), from hand-written records, or from hand-checked cases; never from the generator's own
helpers."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from deepretrieval.data import load_collection
from deepretrieval.data.literature import _study, _Where, load_reviews
from deepretrieval.data.retrievaldemo import load_table
from deepretrieval.data.trialsdemo import build_trials_demo, generate_trials_demo, write_trials_demo
from deepretrieval.errors import DeepRetrievalError
from deepretrieval.search.boolean import TRIALS, BooleanIndex, BooleanRequest
from deepretrieval.search.ctgov import CTGovSearcher
from deepretrieval.serve import build_emulator, create_app, serve_in_thread
from deepretrieval.tasks.literature import LiteratureTask
from deepretrieval.types import Example

MODULES = {
    "identificationModule": ("nctId", "briefTitle", "officialTitle"),
    "statusModule": ("overallStatus", "startDateStruct", "completionDateStruct"),
    "descriptionModule": ("briefSummary",),
    "conditionsModule": ("conditions", "keywords"),
    "designModule": ("studyType", "phases"),
    "armsInterventionsModule": ("interventions",),
    "eligibilityModule": ("eligibilityCriteria", "sex", "minimumAge", "maximumAge", "healthyVolunteers"),
}
FAST = {"backoff": 0.0, "max_backoff": 0.0, "timeout": 5, "cache": False}
CT_TYPES = {"DRUG", "BEHAVIORAL", "DEVICE", "PROCEDURE", "DIETARY_SUPPLEMENT", "BIOLOGICAL", "RADIATION", "OTHER"}


@pytest.fixture(scope="module")
def demo():
    return generate_trials_demo()


@pytest.fixture(scope="module")
def small():
    return generate_trials_demo(3, 30, filler_docs=60)


@pytest.fixture(scope="module")
def backend(demo, tmp_path_factory):
    task = LiteratureTask()
    return task.backend(demo.collection, {"kind": "boolean", "schema": "trials"}, index=tmp_path_factory.mktemp("ix"))


def _start(study: dict[str, Any]) -> datetime.date:
    """A study's start date read from its object: ``YYYY-MM`` is the first of the month."""
    text = study["protocolSection"]["statusModule"]["startDateStruct"]["date"]
    parts = [int(p) for p in text.split("-")]
    return datetime.date(parts[0], parts[1], parts[2] if len(parts) == 3 else 1)


def _concepts() -> dict[str, dict[str, Any]]:
    table = load_table("concepts.yaml")
    return {c["key"]: c for kind in ("conditions", "interventions", "populations") for c in table[kind]}


def _words(terms: list[str]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(re.escape(t.lower()) for t in terms) + r")\b")


def _facet_truth(studies: tuple[dict[str, Any], ...], example: Example) -> tuple[set[str], set[str]]:
    """(started before, started after) the review date among the trials of its facets, read from the objects:
    the condition's heading among ``conditions``, an intervention named by one of its technical names, the
    population named in the first inclusion criterion (any population when the review names none)."""
    concepts, headings = _concepts(), load_table("literature.yaml")["mesh"]["conditions"]
    meta = example.meta
    heading = headings[meta["condition"]]
    names = {t.lower() for t in concepts[meta["intervention"]]["technical"]}
    pop = concepts[meta["population"]] if meta["population"] else None
    pattern = _words([*pop["technical"], *(re.sub(r"^(a|an|the) ", "", lay) for lay in pop["lay"])]) if pop else None
    before, after = set(), set()
    for study in studies:
        p = study["protocolSection"]
        if heading not in p["conditionsModule"]["conditions"]:
            continue
        if not any(i["name"].lower() in names for i in p["armsInterventionsModule"]["interventions"]):
            continue
        first = p["eligibilityModule"]["eligibilityCriteria"].split("\n")[1].lower()
        if pattern is not None and not pattern.search(first):
            continue
        nct = p["identificationModule"]["nctId"]
        (before if _start(study) < meta["pub_date"] else after).add(nct)
    return before, after


def test_same_seed_same_collection_and_other_seed_differs(demo) -> None:
    again = generate_trials_demo()
    assert again.studies == demo.studies and again.reviews == demo.reviews
    assert again.collection == demo.collection
    other = generate_trials_demo(1)
    assert other.studies != demo.studies
    assert [e.question for e in other.collection.examples] != [e.question for e in demo.collection.examples]


def test_sizes_name_and_the_data_name(demo) -> None:
    c = demo.collection
    assert c.name == "trialsdemo" and len(c.examples) == 300 and len(demo.studies) == len(c.documents)
    assert {k: len(v) for k, v in c.splits.items()} == {"train": 180, "dev": 60, "test": 60}
    assert load_collection("trials-demo") == c
    assert build_trials_demo(3, 30, filler_docs=60) == generate_trials_demo(3, 30, filler_docs=60).collection


def test_every_study_object_carries_the_v2_modules(demo) -> None:
    for study in demo.studies:
        protocol = study["protocolSection"]
        assert set(protocol) == set(MODULES)
        for module, keys in MODULES.items():
            assert all(key in protocol[module] for key in keys), (module, protocol[module])
        assert protocol["designModule"]["studyType"] == "INTERVENTIONAL"
        assert re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", protocol["statusModule"]["startDateStruct"]["date"])
        assert all(i["type"] in CT_TYPES and i["name"] for i in protocol["armsInterventionsModule"]["interventions"])
        assert protocol["eligibilityModule"]["eligibilityCriteria"].startswith("Inclusion Criteria:\n* ")
        assert protocol["eligibilityModule"]["sex"] in ("ALL", "FEMALE")
        assert isinstance(study["hasResults"], bool)


def test_nct_ids_are_well_formed_unique_and_rise_with_the_start_date(demo) -> None:
    ids = [s["protocolSection"]["identificationModule"]["nctId"] for s in demo.studies]
    assert all(re.fullmatch(r"NCT\d{8}", i) for i in ids)
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    starts = [_start(s) for s in demo.studies]
    assert starts == sorted(starts)


def test_documents_are_the_loaders_reading_of_the_objects(demo) -> None:
    study = demo.studies[7]
    p = study["protocolSection"]
    document = demo.collection.documents[7]
    assert document.id == p["identificationModule"]["nctId"]
    assert document.title == p["identificationModule"]["briefTitle"]
    assert document.text.startswith(p["descriptionModule"]["briefSummary"] + "\nInclusion Criteria:\n")
    assert document.fields["conditions"] == tuple(p["conditionsModule"]["conditions"])
    assert document.fields["interventions"] == tuple(i["name"] for i in p["armsInterventionsModule"]["interventions"])
    assert document.date == _start(study)


def test_included_trials_match_the_facets_and_started_before_the_review(demo) -> None:
    for example in demo.collection.examples:
        before, after = _facet_truth(demo.studies, example)
        assert set(example.targets) == before, example.id
        assert set(example.meta["later_studies"]) == after, example.id
        assert len(before) >= 3 and after, example.id
    later = sum(len(e.meta["later_studies"]) for e in demo.collection.examples)
    assert 0.1 < later / sum(len(e.targets) for e in demo.collection.examples) < 0.8


def test_examples_carry_pico_date_kind_and_a_trials_oracle(demo) -> None:
    example = demo.collection.examples[0]
    meta = example.meta
    assert set(meta["pico"]) == {"P", "I", "C", "O"} and meta["kind"] == "trials"
    assert isinstance(meta["pub_date"], datetime.date)
    assert example.question.startswith(f"P: {meta['pico']['P']}\nI: {meta['pico']['I']}\n")
    # Hand-checked: seed 0's first review is teens with IBS taking fiber.
    assert (meta["condition"], meta["intervention"], meta["population"]) == ("ibs", "fiber", "teens")
    assert meta["oracle_query"] == (
        '("Irritable Bowel Syndrome"[cond]) AND (psyllium[intr] OR "ispaghula husk"[intr]) AND '
        '(adolescents[tiab] OR "adolescent patients"[tiab] OR teens[tiab] OR teenagers[tiab])'
    )
    for key in ("lay_terms", "technical_terms", "later_studies", "topic"):
        assert meta[key]


def test_the_pico_is_lay_and_lay_words_are_rare_in_trials(demo) -> None:
    texts = {d.id: d.contents.lower() for d in demo.collection.documents}
    hits = total = 0
    for example in demo.collection.examples:
        condition = _words(example.meta["lay_terms"][:1])
        hits += sum(bool(condition.search(texts[d])) for d in example.targets)
        total += len(example.targets)
    assert 0 < hits / total < 0.2  # a lay aside now and then, as in the literature demo


def test_the_oracle_finds_every_included_trial_and_the_date_cut_off_drops_later_ones(demo, backend) -> None:
    task = LiteratureTask()
    for example in demo.collection.split("test")[:12]:
        query = example.meta["oracle_query"]
        windowed, unwindowed = task.execute([task.query_action(query, example), BooleanRequest(query)], backend, 1000)
        assert windowed.error is None and set(example.targets) <= set(windowed.ids), example.id
        assert not set(windowed.ids) & set(example.meta["later_studies"]), example.id
        assert set(example.meta["later_studies"]) <= set(unwindowed.ids), example.id


def test_pearl_growing_gives_a_shared_headings_query_with_high_recall(demo, backend) -> None:
    task = LiteratureTask()
    settings = task.default_prompt()
    recalls = []
    for example in demo.collection.split("train")[:60]:
        query = task.demonstration(example, settings, demo.collection)
        assert query and "[cond]" in query, example.id
        (outcome,) = task.execute([task.query_action(query, example)], backend, 100)
        recalls.append(len(set(outcome.ids) & set(example.targets)) / len(example.targets))
    assert sum(recalls) / len(recalls) > 0.85  # measured 0.95 on all of train


def test_eligibility_criteria_are_searchable_text_and_a_field(tmp_path: Path) -> None:
    study = {
        "protocolSection": {
            "identificationModule": {"nctId": "NCT00000042", "briefTitle": "Aspirin for pain"},
            "descriptionModule": {"briefSummary": "A trial of aspirin."},
            "eligibilityModule": {
                "eligibilityCriteria": "Inclusion Criteria:\n\n* Zanzibari fishermen\n- aged 30\n\n"
                "Exclusion Criteria:\n\n1. Pregnancy"
            },
        }
    }
    document = _study(study, _Where(tmp_path / "trials.json"))
    lines = ("Inclusion Criteria:", "Zanzibari fishermen", "aged 30", "Exclusion Criteria:", "Pregnancy")
    assert document.fields["eligibility"] == lines
    assert document.text == "\n".join(("A trial of aspirin.", *lines))
    plain = _study({"protocolSection": {"identificationModule": {"nctId": "NCT00000043"}}}, _Where(tmp_path))
    assert "eligibility" not in plain.fields and plain.text == ""
    index = BooleanIndex.build([document, plain], TRIALS)
    (found,) = index.search([BooleanRequest("zanzibari[ab] AND fishermen[tiab]")], 10)
    assert found.ids == ["NCT00000042"]


def test_the_demos_eligibility_text_is_searched(demo, backend) -> None:
    phrase = "current substance misuse"
    expected = {
        s["protocolSection"]["identificationModule"]["nctId"]
        for s in demo.studies
        if phrase in s["protocolSection"]["eligibilityModule"]["eligibilityCriteria"].lower()
    }
    (found,) = LiteratureTask().execute([BooleanRequest(f'"{phrase}"[ab]')], backend, 10_000)
    assert set(found.ids) == expected and 200 < len(expected) < len(demo.studies)


def test_written_files_load_back_to_the_same_collection(small, tmp_path: Path) -> None:
    reviews, trials = write_trials_demo(tmp_path, small)
    assert (reviews.name, trials.name) == ("reviews.jsonl", "trials.json")
    first = json.loads(reviews.read_text().splitlines()[0])
    assert set(first) == {"id", "pico", "trial_nctids", "pub_date", "split"}
    assert json.loads(trials.read_text())["studies"][0] == small.studies[0]
    loaded = load_collection(str(reviews))
    want = small.collection
    assert loaded.documents == want.documents
    assert loaded.splits == want.splits
    assert loaded.warnings == []
    for got, expected in zip(loaded.examples, want.examples, strict=True):
        assert (got.id, got.question, got.targets) == (expected.id, expected.question, expected.targets)
        assert got.meta == {k: expected.meta[k] for k in ("pico", "pub_date", "kind")}
    assert load_reviews(reviews, trials).documents == want.documents


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    return build_emulator("ctgov", "trials-demo", index=tmp_path_factory.mktemp("emulator") / "index")


def test_the_ctgov_emulator_answers_with_the_generated_study_objects(demo, emulator) -> None:
    by_id = {s["protocolSection"]["identificationModule"]["nctId"]: s for s in demo.studies}
    expected = {
        i for i, s in by_id.items() if "Periodontitis" in s["protocolSection"]["conditionsModule"]["conditions"]
    }
    with TestClient(create_app(emulator)) as client:
        reply = client.get(
            "/api/v2/studies",
            params={"query.term": 'AREA[Condition]"Periodontitis"', "pageSize": "1000", "countTotal": "true"},
        )
    assert reply.status_code == 200
    body = reply.json()
    got = {s["protocolSection"]["identificationModule"]["nctId"]: s for s in body["studies"]}
    assert set(got) == expected and body["totalCount"] == len(expected) > 5
    assert all(study == by_id[nct] for nct, study in got.items())


def test_parameters_are_checked_and_scale_the_collection() -> None:
    with pytest.raises(DeepRetrievalError, match="n_reviews must be between 3"):
        generate_trials_demo(n_reviews=2)
    tiny = generate_trials_demo(0, 5, included=(1, 1), later=(0, 0), partial=0, distractors=0, filler_docs=0)
    assert len(tiny.collection.examples) == 5 and len(tiny.studies) == 5
    assert all(len(r["trial_nctids"]) == 1 for r in tiny.reviews)  # its one trial: no partial, no distractor


def test_the_ctgov_emulator_sends_ids_alone_when_fields_asks_for_nctid(emulator) -> None:
    with TestClient(create_app(emulator)) as client:
        reply = client.get("/api/v2/studies", params={"query.term": "AREA[Condition]Periodontitis", "fields": "NCTId"})
    studies = reply.json()["studies"]
    assert len(studies) == 10 and all(
        s
        == {
            "protocolSection": {
                "identificationModule": {"nctId": s["protocolSection"]["identificationModule"]["nctId"]}
            }
        }
        for s in studies
    )


def test_the_ctgov_backend_over_http_agrees_with_the_offline_engine_on_the_demo(demo, emulator, backend) -> None:
    """The trial-search family's HTTP backend (CT.gov API v2, start-date window) against the emulator of the
    generated registry finds what the offline engine finds for the same query and window."""
    example = demo.collection.split("test")[0]
    meta = example.meta
    term = f'AREA[Condition]"{load_table("literature.yaml")["mesh"]["conditions"][meta["condition"]]}"'
    spec = {"kind": "ctgov", "rate": 500, "date_filter": True, **FAST}
    with (
        serve_in_thread(create_app(emulator)) as running,
        CTGovSearcher.from_spec({**spec, "base_url": f"{running.url}/api/v2"}) as client,
    ):
        (online,) = client.search([BooleanRequest(term, maxdate=meta["pub_date"])], 1000)
    (offline,) = backend.search(
        [BooleanRequest(term.replace("AREA[Condition]", "") + "[cond]", maxdate=meta["pub_date"])], 1000
    )
    assert online.ids == offline.ids and set(example.targets) <= set(online.ids)


def test_the_recipes_warm_start_has_a_pearl_demonstration_for_every_training_review(demo) -> None:
    from deepretrieval.recipe import load_recipe
    from deepretrieval.warm_start import demonstrations

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "trials-demo.yaml", {})
    assert (recipe.data, recipe.backend, recipe.warm_start_epochs) == (
        "trials-demo",
        {"kind": "boolean", "schema": "trials"},
        2,
    )
    train = demo.collection.split("train")
    kept, completions = demonstrations(LiteratureTask(), train, recipe, demo.collection)
    assert kept == train
    # The direct variant's completion: a space, the query, the closing tag (the prompt ends in <answer>).
    assert completions[0] == ' "Irritable Bowel Syndrome"[cond]</answer>'


def test_held_out_conditions_split_the_trial_reviews_too(demo) -> None:
    held = load_collection("trials-demo?held_out_conditions=5")
    assert [(e.id, e.targets) for e in held.examples] == [(e.id, e.targets) for e in demo.collection.examples]
    seen = {e.meta["condition"] for part in ("train", "dev") for e in held.split(part)}
    unseen = {e.meta["condition"] for e in held.split("test")} - seen
    assert len(unseen) == 5
    assert {e.id for e in held.examples if e.meta["condition"] in unseen} <= set(held.splits["test"])


def test_the_ctgov_emulator_takes_a_generated_spec_with_options(tmp_path) -> None:
    small = generate_trials_demo(n_reviews=12, filler_docs=3)
    emulator = build_emulator("ctgov", "trials-demo?n_reviews=12&filler_docs=3", index=tmp_path / "index")
    condition = small.studies[0]["protocolSection"]["conditionsModule"]["conditions"][0]
    expected = [s for s in small.studies if condition in s["protocolSection"]["conditionsModule"]["conditions"]]
    with TestClient(create_app(emulator)) as client:
        reply = client.get(
            "/api/v2/studies",
            params={"query.term": f'AREA[Condition]"{condition}"', "pageSize": "1000", "countTotal": "true"},
        )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    key = lambda s: s["protocolSection"]["identificationModule"]["nctId"]  # noqa: E731
    assert body["totalCount"] == len(expected) and sorted(body["studies"], key=key) == sorted(expected, key=key)
