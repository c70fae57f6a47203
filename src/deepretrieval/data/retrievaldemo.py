"""The offline demo collection: a SYNTHETIC medical search task generated deterministically by code.

Named after its task family like its siblings (``litdemo``: literature, ``qademo``: QA), which build on its
vocabulary; ``deepretrieval.demo`` is the main job that runs on it (``--data demo``).

Nothing here is downloaded: :func:`build_demo_collection` builds the whole collection from vocabulary
tables (package data: ``tables/concepts.yaml``, ``tables/demo_templates.yaml``) and a seed, in well
under a second. The documents are NOT real abstracts and their findings are invented; only the
vocabulary is real.

What it models is the vocabulary mismatch of real medical search. Users ask in LAY words ("blood
thinners for a heart attack in seniors"); the documents are written in TECHNICAL terms
("Anticoagulant therapy for myocardial infarction in elderly patients"). Each concept in the tables has
one or more lay phrases and one to three real technical synonyms:

* conditions, each with the interventions and populations that plausibly go with it;
* interventions: drugs (often the lay name is a brand, the technical name the generic), procedures and
  lifestyle changes;
* populations: "kids" -> "pediatric patients", "seniors" -> "elderly patients", ...

A *topic* is one combination (condition, intervention, population or none). Per topic the generator
writes ``docs_per_topic`` short abstracts (title plus two to four sentences from templates, technical
terms plus generic clinical filler) about exactly that combination, ``partial_per_topic`` about the same
condition and intervention in another population, and ``distractors`` that share only the condition or
only the intervention. ``filler_docs`` more documents mention a single concept or none. With a small
probability a document also gives a lay name in passing ("(commonly called heart attacks)"), as real
abstracts sometimes do.

Each topic yields one example: a lay question from varied templates ("does Tylenol work for a sore
throat in kids?") that shares no stemmed word with the topic's technical terms. Judgments follow the
facets over the whole corpus: 2 for a document with the topic's condition, intervention and population,
1 for the same condition and intervention in another population (or none), and 0 for the topic's own
distractors. ``example.meta`` records the facets, the lay and technical terms, and ``oracle_query``:
every technical synonym of the topic, the "perfect rewrite" (see :func:`oracle_query`).

Splits (train/dev/test) are by topic; concepts are shared across splits (every concept of a dev or test
topic also occurs in a train topic), so a lay-to-technical mapping learned on train transfers.

With the defaults, BM25 (bm25s, English stopwords and stemmer) reaches a recall@100 of about 0.2 with
the lay questions and about 0.99 with the oracle rewrites on the test split (see ``tests/test_retrievaldemo.py``).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

from ..errors import DeepRetrievalError
from ..types import Collection, Document, Example

_T = TypeVar("_T")

# ---------------------------------------------------------------------------------------------------
# Vocabulary and templates: package data (``tables/concepts.yaml``, ``tables/demo_templates.yaml``), read
# on first use, never at import. Lay phrases never share a stemmed word with a technical term of the same
# concept, nor with the technical terms of any concept they are combined with (checked in tests/test_retrievaldemo.py).


@dataclass(frozen=True)
class _Concept:
    key: str
    lay: tuple[str, ...]
    technical: tuple[str, ...]


@dataclass(frozen=True)
class _Condition(_Concept):
    interventions: tuple[str, ...] = ()
    # Population keys a topic may add to this condition (a topic may also have no population).
    populations: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Vocabulary:
    populations: tuple[_Concept, ...]
    interventions: tuple[_Concept, ...]
    conditions: tuple[_Condition, ...]


@dataclass(frozen=True)
class _Templates:
    """Document templates ({C}, {I}, {P} and the facet slots) and lay question templates."""

    trial_titles: tuple[str, ...]
    trial_sentences: tuple[str, ...]
    condition_titles: tuple[str, ...]
    condition_sentences: tuple[str, ...]
    intervention_titles: tuple[str, ...]
    intervention_sentences: tuple[str, ...]
    filler_titles: tuple[str, ...]
    filler_sentences: tuple[str, ...]
    lay_asides: tuple[str, ...]
    questions: tuple[str, ...]
    # Drawn in table order for every template: the order is part of the generator's random sequence.
    facets: Mapping[str, tuple[str, ...]]
    general_population: tuple[str, ...]
    who_general: tuple[str, ...]


def load_table(name: str) -> dict[str, Any]:
    """A YAML table shipped as package data in ``deepretrieval/data/tables`` (so it is in the wheel too)."""
    import yaml  # here, not at import: 30 ms that only the generators need

    resource = resources.files(__package__) / "tables" / name
    try:
        table = yaml.load(resource.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise DeepRetrievalError(f"packaged table {name} is missing or unreadable ({exc}); reinstall") from None
    if not isinstance(table, dict):
        raise DeepRetrievalError(f"packaged table {name} is not a mapping; reinstall")
    return table


def _frozen(value: Any) -> Any:
    """YAML lists as tuples, recursively: tables are shared by every caller and must not be mutated."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


def _build(kind: type[_T], entry: Any, table: str) -> _T:
    try:
        return kind(**_frozen(entry))
    except TypeError as exc:  # not a mapping, or a missing or misspelt key
        raise DeepRetrievalError(f"packaged table {table}: malformed entry {entry!r} ({exc}); reinstall") from None


def _entries(table: dict[str, Any], section: str, kind: type[_T], name: str) -> tuple[_T, ...]:
    if not isinstance(table.get(section), list):
        raise DeepRetrievalError(f"packaged table {name} has no list {section!r}; reinstall")
    return tuple(_build(kind, entry, name) for entry in table[section])


@functools.cache
def _vocabulary() -> _Vocabulary:
    name = "concepts.yaml"
    table = load_table(name)
    return _Vocabulary(
        populations=_entries(table, "populations", _Concept, name),
        interventions=_entries(table, "interventions", _Concept, name),
        conditions=_entries(table, "conditions", _Condition, name),
    )


@functools.cache
def _templates() -> _Templates:
    return _build(_Templates, load_table("demo_templates.yaml"), "demo_templates.yaml")


# The tables' names from when they were Python literals here (tests/test_retrievaldemo.py imports two of them).
_LEGACY = {"_POPULATIONS": "populations", "_INTERVENTIONS": "interventions", "_CONDITIONS": "conditions"}


def __getattr__(name: str) -> Any:
    if name in _LEGACY:
        return getattr(_vocabulary(), _LEGACY[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_SPLIT_FRACTIONS: tuple[tuple[str, float], ...] = (("test", 0.2), ("dev", 0.2))


# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Topic:
    condition: _Condition
    intervention: _Concept
    population: _Concept | None

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.condition.key, self.intervention.key, self.population.key if self.population else None)

    @property
    def technical_terms(self) -> list[str]:
        terms = [*self.condition.technical, *self.intervention.technical]
        return terms + list(self.population.technical) if self.population else terms


@dataclass(frozen=True)
class _Doc:
    title: str
    text: str
    condition: str | None
    intervention: str | None
    population: str | None


def _concepts_by_key(concepts: tuple[_Concept, ...]) -> dict[str, _Concept]:
    return {c.key: c for c in concepts}


def _topic_pool() -> list[_Topic]:
    """Every plausible (condition, intervention, population) combination, in table order."""
    interventions = _concepts_by_key(_vocabulary().interventions)
    populations = _concepts_by_key(_vocabulary().populations)
    pool = []
    for cond in _vocabulary().conditions:
        for ikey in cond.interventions:
            for pkey in (None, *cond.populations):
                pop = populations[pkey] if pkey else None
                pool.append(_Topic(cond, interventions[ikey], pop))
    return pool


def _capitalize(s: str) -> str:
    return s[:1].upper() + s[1:]


class _Writer:
    """Fills document templates for one facet combination, with an occasional lay aside."""

    def __init__(self, rng: random.Random, lay_rate: float) -> None:
        self.rng = rng
        self.lay_rate = lay_rate
        self.templates = _templates()

    def _fill(self, template: str, slots: dict[str, str]) -> str:
        rng = self.rng
        values = {k: rng.choice(v) for k, v in self.templates.facets.items()}
        values["outcome"], values["outcome2"] = rng.sample(self.templates.facets["outcome"], 2)
        values.update(
            n=str(rng.randint(40, 4000)),
            weeks=str(rng.choice((4, 8, 12, 24, 52))),
            sites=str(rng.randint(3, 60)),
            hr=str(rng.randint(55, 85)),
            lo=str(rng.randint(35, 54)),
            hi=str(rng.randint(86, 99)),
        )
        values.update(slots)
        return template.format(**values)

    def _slots(
        self, cond: _Concept | None, interv: _Concept | None, pop: _Concept | None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Technical names for each slot, and for some slots a version with a lay aside."""
        rng = self.rng
        slots: dict[str, str] = {
            "P": rng.choice(pop.technical) if pop else rng.choice(self.templates.general_population)
        }
        asides: dict[str, str] = {}
        for slot, concept in (("C", cond), ("I", interv), ("P", pop)):
            if concept is None:
                continue
            if slot != "P":
                slots[slot] = rng.choice(concept.technical)
            if rng.random() < self.lay_rate:
                asides[slot] = rng.choice(self.templates.lay_asides).format(T=slots[slot], L=rng.choice(concept.lay))
        return slots, asides

    def write(
        self,
        cond: _Concept | None,
        interv: _Concept | None,
        pop: _Concept | None,
        titles: tuple[str, ...],
        sentences: tuple[str, ...],
    ) -> tuple[str, str]:
        rng = self.rng
        slots, asides = self._slots(cond, interv, pop)
        title = _capitalize(self._fill(rng.choice(titles), slots))
        chosen = rng.sample(sentences, k=min(len(sentences), rng.randint(2, 4)))
        body = []
        for sentence in chosen:
            # A lay aside goes into the first sentence that mentions its slot.
            local = dict(slots)
            for slot in list(asides):
                if "{" + slot + "}" in sentence:
                    local[slot] = asides.pop(slot)
            body.append(_capitalize(self._fill(sentence, local)))
        return title, " ".join(body)


def build_demo_collection(
    seed: int = 0,
    n_topics: int = 300,
    docs_per_topic: int = 8,
    distractors: int = 4,
    *,
    partial_per_topic: int = 2,
    filler_docs: int = 600,
    lay_rate: float = 0.12,
) -> Collection:
    """Generate the SYNTHETIC demo collection (name ``"demo"``), deterministically from ``seed``.

    ``n_topics`` topics (one example each) are drawn from the plausible combinations of the vocabulary.
    Per topic: ``docs_per_topic`` fully matching documents, ``partial_per_topic`` documents about the
    same condition and intervention in another population, ``distractors`` documents sharing only the
    condition or only the intervention; plus ``filler_docs`` documents about one concept or none.
    ``lay_rate`` is the chance that a document gives a concept's lay name in passing.
    """
    pool = _topic_pool()
    if not 3 <= n_topics <= len(pool):
        raise DeepRetrievalError(f"demo collection: n_topics must be between 3 and {len(pool)}, got {n_topics}")
    if min(docs_per_topic, distractors, partial_per_topic, filler_docs) < 0 or docs_per_topic < 1:
        raise DeepRetrievalError("demo collection: document counts must be >= 0 (docs_per_topic >= 1)")
    if not 0.0 <= lay_rate <= 1.0:
        raise DeepRetrievalError(f"demo collection: lay_rate must be in [0, 1], got {lay_rate}")

    rng = random.Random(f"deepretrieval-demo-{seed}")
    topics = rng.sample(pool, n_topics)
    writer = _Writer(rng, lay_rate)
    vocabulary, templates = _vocabulary(), _templates()
    interventions = _concepts_by_key(vocabulary.interventions)
    populations = _concepts_by_key(vocabulary.populations)
    conditions_with: dict[str, list[_Condition]] = {}
    for cond in vocabulary.conditions:
        for ikey in cond.interventions:
            conditions_with.setdefault(ikey, []).append(cond)

    def trial(cond: _Condition, interv: _Concept, pop: _Concept | None) -> _Doc:
        title, text = writer.write(cond, interv, pop, templates.trial_titles, templates.trial_sentences)
        return _Doc(title, text, cond.key, interv.key, pop.key if pop else None)

    docs: list[_Doc] = []
    own_distractors: list[list[int]] = []
    for topic in topics:
        cond, interv, pop = topic.condition, topic.intervention, topic.population
        docs.extend(trial(cond, interv, pop) for _ in range(docs_per_topic))
        other_pops: list[_Concept | None] = [populations[k] for k in cond.populations if pop is None or k != pop.key]
        if pop is not None:
            other_pops.append(None)
        for _ in range(partial_per_topic if other_pops else 0):
            docs.append(trial(cond, interv, rng.choice(other_pops)))
        mine = []
        for j in range(distractors):
            if j % 2 == 0:  # same condition, another intervention
                others = [k for k in cond.interventions if k != interv.key] or [
                    c.key for c in vocabulary.interventions if c.key != interv.key
                ]
                docs.append(trial(cond, interventions[rng.choice(others)], pop))
            else:  # same intervention, another condition
                candidates = [c for c in conditions_with[interv.key] if c.key != cond.key] or [
                    c for c in vocabulary.conditions if c.key != cond.key
                ]
                other = rng.choice(candidates)
                if pop is None or pop.key in other.populations:
                    docs.append(trial(other, interv, pop))
                else:
                    pkey = rng.choice((None, *other.populations))
                    docs.append(trial(other, interv, populations[pkey] if pkey else None))
            mine.append(len(docs) - 1)
        own_distractors.append(mine)

    for _ in range(filler_docs):
        kind = rng.random()
        if kind < 0.4:
            cond = rng.choice(vocabulary.conditions)
            pkey = rng.choice((None, *cond.populations))
            pop = populations[pkey] if pkey else None
            title, text = writer.write(cond, None, pop, templates.condition_titles, templates.condition_sentences)
            docs.append(_Doc(title, text, cond.key, None, pkey))
        elif kind < 0.7:
            interv = rng.choice(vocabulary.interventions)
            title, text = writer.write(
                None, interv, None, templates.intervention_titles, templates.intervention_sentences
            )
            docs.append(_Doc(title, text, None, interv.key, None))
        else:
            title, text = writer.write(None, None, None, templates.filler_titles, templates.filler_sentences)
            docs.append(_Doc(title, text, None, None, None))

    # Shuffle so that neither ids nor index order reveal which documents belong together.
    order = list(range(len(docs)))
    rng.shuffle(order)
    doc_ids = [""] * len(docs)
    documents = []
    for new, old in enumerate(order):
        doc_ids[old] = f"demo-d{new:05d}"
        documents.append(Document(id=doc_ids[old], title=docs[old].title, text=docs[old].text))

    by_pair: dict[tuple[str | None, str | None], list[int]] = {}
    for i, d in enumerate(docs):
        by_pair.setdefault((d.condition, d.intervention), []).append(i)

    examples = []
    for n, (topic, mine) in enumerate(zip(topics, own_distractors, strict=True)):
        ckey, ikey, pkey = topic.key
        targets = {doc_ids[i]: 0 for i in mine}
        for i in by_pair[(ckey, ikey)]:
            targets[doc_ids[i]] = 2 if docs[i].population == pkey else 1
        examples.append(_example(f"demo-q{n:04d}", topic, targets, rng))

    return Collection(
        name="demo",
        documents=documents,
        examples=examples,
        splits=_split(topics, [e.id for e in examples], rng),
    )


def _example(qid: str, topic: _Topic, targets: dict[str, int], rng: random.Random) -> Example:
    cond, interv, pop = topic.condition, topic.intervention, topic.population
    c, i = rng.choice(cond.lay), rng.choice(interv.lay)
    p = rng.choice(pop.lay) if pop else None
    template = rng.choice(_templates().questions)
    question = template.format(c=c, i=i, in_p=f" in {p}" if p else "", who=p or rng.choice(_templates().who_general))
    lay_terms = [c, i] + ([p] if p else [])
    technical = topic.technical_terms
    meta = {
        "synthetic": True,
        "topic": "/".join(k or "-" for k in topic.key),
        "condition": cond.key,
        "intervention": interv.key,
        "population": pop.key if pop else None,
        "lay_terms": lay_terms,
        "technical_terms": technical,
        "oracle_query": " ".join(technical),
    }
    return Example(id=qid, question=question, targets=targets, meta=meta)


def _split(
    topics: list[_Topic], ids: list[str], rng: random.Random, held_out: frozenset[str] = frozenset()
) -> dict[str, list[str]]:
    """Split topics into train/dev/test (60/20/20), putting first occurrences of concepts into train.

    While train has room, a topic with a concept not yet in train goes to train, so that every concept
    of a dev or test topic also occurs in train (always so with the default sizes; best effort for very
    small collections, where dev and test still get at least one topic each).

    ``held_out`` (condition keys, :func:`held_out_conditions`): every topic of such a condition goes to test,
    and the rest of test is filled as above, so those conditions never occur in a train or dev topic.
    """
    n = len(topics)
    quota = {name: max(1, round(frac * n)) for name, frac in _SPLIT_FRACTIONS}
    train_quota = n - sum(quota.values())
    order = list(range(n))
    rng.shuffle(order)
    kept = [t for t in order if topics[t].key[0] in held_out]
    if len(kept) > quota["test"]:
        count = len({topics[t].key[0] for t in kept})
        raise DeepRetrievalError(
            f"held_out_conditions: the {count} held-out conditions have {len(kept)} topics, more than the "
            f"{quota['test']} the test split holds; hold out fewer"
        )
    seen: set[str] = set()
    train: list[int] = []
    rest: list[int] = []
    for t in order:
        if topics[t].key[0] in held_out:
            continue
        concepts = {f"{kind}:{k}" for kind, k in zip("cip", topics[t].key, strict=True) if k is not None}
        if concepts - seen and len(train) < train_quota:
            train.append(t)
            seen |= concepts
        else:
            rest.append(t)
    room = quota["test"] - len(kept)
    test = kept + rest[:room]
    dev = rest[room : room + quota["dev"]]
    train += rest[room + quota["dev"] :]
    return {name: sorted(ids[t] for t in part) for name, part in (("train", train), ("dev", dev), ("test", test))}


def held_out_conditions(topics: list[_Topic], count: int, seed: int) -> frozenset[str]:
    """``count`` of the topics' conditions, drawn from their own seeded stream (so the collection is the same
    whatever ``count`` is, but for its split): the conditions a concept-held-out split keeps out of training."""
    conditions = sorted({t.key[0] for t in topics})
    if not 0 <= count < len(conditions):
        raise DeepRetrievalError(
            f"held_out_conditions must be between 0 and {len(conditions) - 1} (the collection has "
            f"{len(conditions)} conditions), got {count}"
        )
    return frozenset(random.Random(f"deepretrieval-held-out-{seed}").sample(conditions, count))


def oracle_query(example: Example) -> str:
    """The "perfect rewrite" of a demo example: every technical synonym of its topic's concepts."""
    try:
        return str(example.meta["oracle_query"])
    except KeyError:
        raise DeepRetrievalError(
            f"example {example.id!r} has no oracle query (only demo collection examples have one)"
        ) from None
