"""The offline trial-search demo: SYNTHETIC systematic reviews over a synthetic ClinicalTrials.gov.

:func:`build_trials_demo` builds, deterministically from a seed and in well under a second, what
:func:`deepretrieval.data.literature.load_reviews` reads from a reviews file with ``trial_nctids`` and a
ClinicalTrials.gov export: the trials are first written as **API v2 study objects** (``protocolSection``
with its identification, status, description, conditions, design, arms/interventions and eligibility
modules), and the Documents are made from those objects by the loader's own ``_study``, so what is
generated is exactly what a user's CT.gov export would load. :func:`write_trials_demo` writes them as such
files (``reviews.jsonl`` and ``trials.json``); the ``ctgov`` emulator (:mod:`deepretrieval.serve`) answers
``/api/v2/studies`` with these objects.

The topics, the lay PICO, the splits and the review truth are the literature demo's (:mod:`.litdemo`):

* a review is one topic (condition, intervention, population or none); its PICO asks in LAY words;
* a trial lists its condition as CT.gov does (the MeSH-like heading of ``tables/literature.yaml``,
  sometimes with a technical synonym beside it), its intervention by a technical name with a CT.gov type
  (``tables/trials.yaml``), and names its population in the eligibility criteria ("Inclusion Criteria:
  * Pediatric patients diagnosed with ...", in lay words only at ``lay_rate``) and in its title and summary;
* per review: trials of the topic that STARTED before the review date (``included``) and after it
  (``later``, kept out only by a start-date cut-off), ``partial`` trials in another population and
  ``distractors`` sharing only the condition or only the intervention; ``filler_docs`` more trials are
  healthy-volunteer studies of an intervention or registries of a condition.

An included trial of a review is any topic trial (not filler) of its condition and intervention — and of
its population, if it names one — that started strictly before the review date (no trial starts within
60 days of a review). ``Example.meta`` is litdemo's with ``kind`` ``"trials"`` and an ``oracle_query`` in
the trial fields: the condition's names in ``[cond]``, the intervention's in ``[intr]``, the population's
(technical and lay) in ``[tiab]`` (the eligibility criteria are lines of the text, which feeds ``[ab]``).
"""

from __future__ import annotations

import datetime
import functools
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DeepRetrievalError
from ..types import Collection
from .litdemo import (
    _ARTICLE,
    _PLAIN,
    MARGIN,
    _between,
    _check,
    _distractor,
    _example,
    _matching,
    _other_populations,
)
from .litdemo import _tables as _literature_tables
from .literature import TRIALS, _study, _Where
from .retrievaldemo import (
    _capitalize,
    _Concept,
    _split,
    _templates,
    _Topic,
    _topic_pool,
    _vocabulary,
    _Writer,
    load_table,
)
from .retrievaldemo import held_out_conditions as held_out_conditions_of

# ClinicalTrials.gov opened in 2000; older trials were registered later with their real start dates.
FIRST_DATE, LAST_DATE = datetime.date(1995, 1, 1), datetime.date(2025, 6, 30)
FIRST_REVIEW, LAST_REVIEW = datetime.date(2005, 1, 1), datetime.date(2022, 12, 31)
TODAY = LAST_DATE  # the registry's "now": trials completed before it are past, the others current
FIRST_NCT = 100_000
REVIEWS_FILE, TRIALS_FILE = "reviews.jsonl", "trials.json"


@dataclass(frozen=True)
class _TrialTables:
    """``tables/trials.yaml``."""

    intervention_types: Mapping[str, str]  # intervention key -> CT.gov type (absent: DRUG)
    drug_phases: tuple[tuple[str, ...], ...]
    brief_titles: tuple[str, ...]
    official_titles: tuple[str, ...]
    summary_sentences: tuple[str, ...]
    inclusion_population: tuple[str, ...]
    inclusion_general: tuple[str, ...]
    inclusion_other: tuple[str, ...]
    exclusion: tuple[str, ...]
    ages: Mapping[str, tuple[str, str, str]]  # population key or "none" -> (minimumAge, maximumAge, sex)
    healthy_condition: str
    procedures: tuple[str, ...]
    filler_titles: tuple[str, ...]
    filler_condition_titles: tuple[str, ...]
    filler_sentences: tuple[str, ...]
    statuses_past: tuple[str, ...]
    statuses_current: tuple[str, ...]


@functools.cache
def _trial_tables() -> _TrialTables:
    raw = load_table("trials.yaml")
    try:
        types = {key: kind for kind, keys in raw["intervention_types"].items() for key in keys}
        lists = {
            name: tuple(raw[name])
            for name in _TrialTables.__dataclass_fields__
            if name not in ("intervention_types", "drug_phases", "ages", "healthy_condition")
        }
        return _TrialTables(
            intervention_types=types,
            drug_phases=tuple(tuple(p) for p in raw["drug_phases"]),
            ages={key: (str(a), str(b), str(c)) for key, (a, b, c) in raw["ages"].items()},
            healthy_condition=str(raw["healthy_condition"]),
            **lists,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DeepRetrievalError(f"packaged table trials.yaml is malformed ({exc!r}); reinstall") from None


@dataclass(frozen=True)
class _Trial:
    """A generated trial before it has an NCT id: its facets (for the truth) and its record's parts."""

    condition: str | None
    intervention: str | None
    population: str | None
    date: datetime.date  # the start date as written (a "YYYY-MM" date is the 1st of its month)
    role: str  # "study" (can be included by a review) or "other" (filler)
    protocol: Mapping[str, Any]  # protocolSection without identificationModule.nctId
    has_results: bool


@dataclass(frozen=True)
class TrialsDemo:
    """The generated collection, its trials as CT.gov v2 study objects (NCT order) and its reviews as
    the records of a reviews JSONL (``id``, ``pico``, ``trial_nctids``, ``pub_date``, ``split``)."""

    collection: Collection
    studies: tuple[dict[str, Any], ...]
    reviews: tuple[dict[str, Any], ...]


def _month_or_day(rng: random.Random, date: datetime.date) -> tuple[datetime.date, str]:
    """CT.gov writes a start date as ``YYYY-MM`` or ``YYYY-MM-DD``; a month stands for its first day."""
    if rng.random() < 0.5:
        first = date.replace(day=1)
        return first, first.strftime("%Y-%m")
    return date, date.isoformat()


class _Registrar:
    """Writes trials: the demo's writer for the words, plus the CT.gov modules around them."""

    def __init__(self, rng: random.Random, lay_rate: float) -> None:
        self.rng, self.lay_rate = rng, lay_rate
        self.writer = _Writer(rng, lay_rate)
        self.tables = _trial_tables()
        self.headings = _literature_tables().mesh

    def _eligibility(self, cond: _Concept | None, pop: _Concept | None) -> str:
        rng, tables = self.rng, self.tables
        c = rng.choice(cond.technical) if cond else "no chronic illness"
        if pop is not None:
            who = rng.choice(pop.lay if rng.random() < self.lay_rate else pop.technical)
            first = rng.choice(tables.inclusion_population).format(P=_capitalize(who), C=c)
        else:
            first = rng.choice(tables.inclusion_general).format(C=c)
        inclusion = [first, *rng.sample(tables.inclusion_other, rng.randint(1, 2))]
        exclusion = rng.sample(tables.exclusion, rng.randint(1, 3))
        return "\n".join(
            ["Inclusion Criteria:", *(f"* {line}" for line in inclusion), "", "Exclusion Criteria:"]
            + [f"* {line}" for line in exclusion]
        )

    def _intervention(self, interv: _Concept) -> dict[str, str]:
        # Mostly the first technical name, so most trials of an intervention share it (as sponsors of one
        # drug write its generic name); sometimes a synonym.
        name = interv.technical[0] if self.rng.random() < 0.8 else self.rng.choice(interv.technical)
        return {"type": self.tables.intervention_types.get(interv.key, "DRUG"), "name": _capitalize(name)}

    def register(
        self,
        role: str,
        facets: tuple[_Concept | None, _Concept | None, _Concept | None],
        start: datetime.date,
        titles: tuple[str, ...] | None = None,
        sentences: tuple[str, ...] | None = None,
    ) -> _Trial:
        rng, tables = self.rng, self.tables
        cond, interv, pop = facets
        brief, summary = self.writer.write(
            cond, interv, pop, titles or tables.brief_titles, sentences or tables.summary_sentences
        )
        official, _ = self.writer.write(cond, interv, pop, titles or tables.official_titles, ())
        date, written = _month_or_day(rng, start)
        end, end_written = _month_or_day(rng, start + datetime.timedelta(days=rng.randint(365, 5 * 365)))
        status = rng.choice(tables.statuses_past if end < TODAY else tables.statuses_current)
        if cond is not None:
            conditions = [self.headings["conditions"][cond.key]]
            synonym = _capitalize(rng.choice(cond.technical))
            if rng.random() < 0.3 and synonym.lower() != conditions[0].lower():
                conditions.append(synonym)
        else:
            conditions = [tables.healthy_condition]
        keywords = [*(cond.technical if cond else ()), *(interv.technical if interv else ())]
        interventions = (
            [self._intervention(interv)] if interv else [{"type": "OTHER", "name": rng.choice(tables.procedures)}]
        )
        kind = interventions[0]["type"]
        phases = list(rng.choice(tables.drug_phases)) if kind in ("DRUG", "BIOLOGICAL") else ["NA"]
        low, high, sex = tables.ages[pop.key if pop else "none"]
        protocol = {
            "identificationModule": {"briefTitle": brief, "officialTitle": official},
            "statusModule": {
                "overallStatus": status,
                "startDateStruct": {"date": written},
                "completionDateStruct": {"date": end_written},
            },
            "descriptionModule": {"briefSummary": summary},
            "conditionsModule": {"conditions": conditions, "keywords": rng.sample(keywords, min(len(keywords), 3))},
            "designModule": {"studyType": "INTERVENTIONAL", "phases": phases},
            "armsInterventionsModule": {"interventions": interventions},
            "eligibilityModule": {
                "eligibilityCriteria": self._eligibility(cond, pop),
                "healthyVolunteers": cond is None,
                "sex": sex,
                "minimumAge": low,
                "maximumAge": high,
            },
        }
        keys = [c.key if c else None for c in facets]
        return _Trial(*keys, date, role, protocol, status == "COMPLETED" and rng.random() < 0.5)


def generate_trials_demo(
    seed: int = 0,
    n_reviews: int = 300,
    *,
    included: tuple[int, int] = (3, 10),
    later: tuple[int, int] = (1, 3),
    partial: int = 1,
    distractors: int = 3,
    filler_docs: int = 800,
    lay_rate: float = 0.08,
    held_out_conditions: int = 0,
) -> TrialsDemo:
    """Generate the SYNTHETIC trial collection (name ``"trialsdemo"``), its study objects and its review
    records, deterministically from ``seed``. ``included`` and ``later`` are (min, max) numbers of a
    review's own trials started before and after its date; ``held_out_conditions`` as the literature
    demo's (:func:`.litdemo.build_literature_demo`)."""
    pool = _topic_pool()
    _check(n_reviews, len(pool), included, later, min(partial, distractors, filler_docs), lay_rate)
    rng = random.Random(f"deepretrieval-trialsdemo-{seed}")
    topics = rng.sample(pool, n_reviews)
    registrar = _Registrar(rng, lay_rate)
    dates = [_between(rng, FIRST_REVIEW, LAST_REVIEW) for _ in topics]
    trials: list[_Trial] = []
    for topic, date in zip(topics, dates, strict=True):
        trials += _topic_trials(topic, date, registrar, included, later, partial, distractors)
    trials += [_filler(registrar) for _ in range(filler_docs)]
    studies, ids = _number(trials, rng)
    where = _Where(Path(TRIALS_FILE))
    documents = [_study(study, where.named(f"study {n}")) for n, study in enumerate(studies, start=1)]
    by_facets: dict[tuple[str | None, str | None], list[int]] = {}
    for k, trial in enumerate(trials):
        if trial.role == "study":
            by_facets.setdefault((trial.condition, trial.intervention), []).append(k)
    examples = []
    for n, (topic, date) in enumerate(zip(topics, dates, strict=True)):
        found = _matching(topic, by_facets[topic.key[:2]], trials, ids, date)
        examples.append(
            _example(f"trialsdemo-r{n:04d}", topic, date, found, rng, kind=TRIALS, oracle=oracle_trials_query)
        )
    held_out = held_out_conditions_of(topics, held_out_conditions, seed)
    splits = _split(topics, [e.id for e in examples], rng, held_out)
    split_of = {qid: name for name, qids in splits.items() for qid in qids}
    reviews = tuple(
        {
            "id": e.id,
            "pico": e.meta["pico"],
            "trial_nctids": list(e.targets),
            "pub_date": e.meta["pub_date"].strftime("%Y/%m/%d"),
            "split": split_of[e.id],
        }
        for e in examples
    )
    return TrialsDemo(Collection("trialsdemo", documents, examples, splits), tuple(studies), reviews)


def build_trials_demo(seed: int = 0, n_reviews: int = 300, **options: Any) -> Collection:
    """The generated trial collection (name ``"trialsdemo"``); ``options`` as :func:`generate_trials_demo`."""
    return generate_trials_demo(seed, n_reviews, **options).collection


def _topic_trials(
    topic: _Topic,
    review_date: datetime.date,
    registrar: _Registrar,
    included: tuple[int, int],
    later: tuple[int, int],
    partial: int,
    distractors: int,
) -> list[_Trial]:
    rng = registrar.rng
    cond, interv, pop = topic.condition, topic.intervention, topic.population

    def anytime() -> datetime.date:
        return _between(rng, FIRST_DATE, LAST_DATE)

    span = datetime.timedelta(days=365 * rng.randint(6, 20))  # how far back the registered evidence reaches
    # A "YYYY-MM" start moves back to the 1st of its month: the margin keeps it on its side of the review.
    before = (max(FIRST_DATE, review_date - span), review_date - MARGIN)
    after = (review_date + MARGIN + datetime.timedelta(days=31), LAST_DATE)
    trials = [
        registrar.register("study", (cond, interv, pop), _between(rng, *before)) for _ in range(rng.randint(*included))
    ]
    trials += [
        registrar.register("study", (cond, interv, pop), _between(rng, *after)) for _ in range(rng.randint(*later))
    ]
    others = _other_populations(cond, pop)
    trials += [
        registrar.register("study", (cond, interv, rng.choice(others)), anytime())
        for _ in range(partial if others else 0)
    ]
    trials += [registrar.register("study", _distractor(topic, j, rng), anytime()) for j in range(distractors)]
    return trials


def _filler(registrar: _Registrar) -> _Trial:
    """A healthy-volunteer trial of an intervention, a study of a condition with a procedure only, or a
    healthy-volunteer study of a procedure: background noise no review includes."""
    rng, tables, demo, vocabulary = registrar.rng, registrar.tables, _templates(), _vocabulary()
    date = _between(rng, FIRST_DATE, LAST_DATE)
    kind = rng.random()
    if kind < 0.4:
        cond = rng.choice(vocabulary.conditions)
        return registrar.register(
            "other", (cond, None, None), date, tables.filler_condition_titles, demo.condition_sentences
        )
    if kind < 0.7:
        interv = rng.choice(vocabulary.interventions)
        return registrar.register("other", (None, interv, None), date, tables.filler_titles, tables.filler_sentences)
    return registrar.register("other", (None, None, None), date, demo.filler_titles, tables.filler_sentences)


def _number(trials: list[_Trial], rng: random.Random) -> tuple[list[dict[str, Any]], list[str]]:
    """Study objects in NCT order, NCT ids rising with the start date (with gaps, as the registry's have);
    ``ids[k]`` is ``trials[k]``'s."""
    tiebreak = list(range(len(trials)))
    rng.shuffle(tiebreak)  # so that neither ids nor order reveal which trials were written together
    order = sorted(range(len(trials)), key=lambda k: (trials[k].date, tiebreak[k]))
    ids = [""] * len(trials)
    studies = []
    number = FIRST_NCT
    for k in order:
        number += rng.randint(1, 40)
        ids[k] = f"NCT{number:08d}"
        trial = trials[k]
        identification = {"nctId": ids[k], **trial.protocol["identificationModule"]}
        protocol = {"identificationModule": identification}
        protocol.update((name, module) for name, module in trial.protocol.items() if name != "identificationModule")
        studies.append({"protocolSection": protocol, "hasResults": trial.has_results})
    return studies, ids


def oracle_trials_query(cond: _Concept, interv: _Concept, pop: _Concept | None) -> str:
    """``("Heading"[cond] OR c1[cond] ...) AND (i1[intr] ...) [AND (p1[tiab] ...)]``: the condition as CT.gov
    lists it and its technical synonyms, the intervention's technical names (a trial names it by one), and
    the population's technical and lay names (without article) where the eligibility criteria name it."""
    heading = _literature_tables().mesh["conditions"][cond.key]
    groups = [
        _any_of([heading, *cond.technical], "cond"),
        _any_of(interv.technical, "intr"),
    ]
    if pop is not None:
        groups.append(_any_of([*pop.technical, *(_ARTICLE.sub("", lay) for lay in pop.lay)], "tiab"))
    return " AND ".join(groups)


def _any_of(terms: list[str] | tuple[str, ...], tag: str) -> str:
    unique = {t.lower(): t for t in reversed(terms)}  # one spelling per term, the first one listed
    chosen = [unique[t.lower()] for t in dict.fromkeys(t.lower() for t in terms)]
    return "(" + " OR ".join(f"{t}[{tag}]" if _PLAIN.fullmatch(t) else f'"{t}"[{tag}]' for t in chosen) + ")"


def write_trials_demo(folder: Path, demo: TrialsDemo | None = None, *, seed: int = 0) -> tuple[Path, Path]:
    """Write the demo as a user's files: ``reviews.jsonl`` (``trial_nctids``, ``pico``, ``pub_date``,
    ``split``) and beside it ``trials.json`` (``{"studies": [...]}``, CT.gov v2), which
    :func:`~.literature.load_reviews` reads back to the same documents, examples and splits."""
    demo = demo or generate_trials_demo(seed)
    folder.mkdir(parents=True, exist_ok=True)
    reviews, trials = folder / REVIEWS_FILE, folder / TRIALS_FILE
    reviews.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in demo.reviews), encoding="utf-8")
    trials.write_text(json.dumps({"studies": list(demo.studies)}, ensure_ascii=False, indent=1), encoding="utf-8")
    return reviews, trials
