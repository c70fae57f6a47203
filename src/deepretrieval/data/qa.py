"""Evidence-seeking QA data: questions with answer strings, and the passage corpus they are answered from.

**Questions** — JSONL, one a line, as NQ-open, TriviaQA and SQuAD are distributed (DPR's retriever data)::

    {"id": "q7", "question": "who wrote the opera carmen", "answers": ["Georges Bizet", "Bizet"]}
    {"question": "...", "answers": {"text": ["Denver Broncos"], "answer_start": [177]}}   (SQuAD)

``answers`` is a list of strings or SQuAD's ``{"text": [...]}`` (``answer``, NQ-open's spelling, is read
too). ``id`` defaults to the line number. ``split``: on every record or on none (then seeded
train/dev/test splits, as for the other loaders). A question with no answer (SQuAD v2's unanswerable
ones) is dropped and counted in the warnings: there is nothing to find.

**Corpus** — ``corpus.jsonl`` beside the questions or passed explicitly: BEIR's ``{"_id" | "id", "title",
"text"}``.

**Relevance** — a passage is relevant to a question when its text contains one of the question's answers
as a token sequence after DPR-style normalisation (:func:`answer_tokens`): Unicode NFKC, case-folded,
punctuation and symbols removed, split into words. "cat" is in "the cat's bowl" but not in "category".
As DPR's ``has_answer``, only the passage text is searched, not its title. Containment is computed once, at
load, for every question at once (:class:`AnswerIndex`: one pass over each passage), and stored as
``targets`` ``{passage id: 1}``: so rewards (rank of the first relevant passage) and evaluation (pytrec_eval
on qrels) need nothing but the ranked ids. A question whose answers are in no passage is dropped, counted
in the warnings. ``meta["answers"]`` keeps the answer strings.

Refused (a :class:`DataError` naming file and line): a malformed record, answers that are not strings,
an answer with no word in it, a question id given twice with other content.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..errors import DataError
from ..types import Collection, Document, Example
from ._judgments import unique
from .beir import identifier, question, read_corpus, read_jsonl
from .splits import split_ids

# Anything that is neither a word character nor white space (and the underscore \w lets in): punctuation,
# symbols, and combining marks. Marks are kept (NFKC composes most of them; the rest belong to their word).
_NON_WORD = re.compile(r"[^\w\s]|_")


def _blank_unless_mark(match: re.Match[str]) -> str:
    char = match.group()
    return char if unicodedata.category(char).startswith("M") else " "


def answer_tokens(text: str) -> tuple[str, ...]:
    """DPR-style normalised words: NFKC, case-folded, punctuation and symbols as word breaks.

    ``"Zürich"`` and ``"Zu\\u0308rich"`` give ``("zürich",)``; ``"U.S."`` gives ``("u", "s")``; ``"Jean-Paul"``
    gives ``("jean", "paul")``, as ``"Jean Paul"`` does.
    """
    # NFKC before case folding (composes "u" + diaeresis), and after it (folding can decompose: "İ").
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return tuple(_NON_WORD.sub(_blank_unless_mark, folded).split())


def has_answer(answers: Iterable[str], text: str) -> bool:
    """Whether ``text`` contains one of ``answers`` as a whole-word sequence (after :func:`answer_tokens`)."""
    words = answer_tokens(text)
    for answer in answers:
        wanted = answer_tokens(answer)
        n = len(wanted)
        if n and any(words[i : i + n] == wanted for i in range(len(words) - n + 1)):
            return True
    return False


class AnswerIndex:
    """The answers of many questions, found in a passage in one pass over its words.

    Answers are keyed by their first word, then by length: at each word of a passage only the answers
    starting with it are compared, so the cost grows with the corpus, hardly with the number of questions.
    """

    def __init__(self, answers: Mapping[str, Sequence[str]]) -> None:
        # first word -> answer length -> answer words -> question ids
        self._index: dict[str, dict[int, dict[tuple[str, ...], list[str]]]] = {}
        for qid, strings in answers.items():
            for words in dict.fromkeys(answer_tokens(s) for s in strings):
                if words:
                    self._index.setdefault(words[0], {}).setdefault(len(words), {}).setdefault(words, []).append(qid)

    def questions_in(self, text: str) -> set[str]:
        """The ids of the questions with an answer in ``text``."""
        words = answer_tokens(text)
        found: set[str] = set()
        for i, word in enumerate(words):
            by_length = self._index.get(word)
            if by_length is None:
                continue
            for n, table in by_length.items():
                qids = table.get(words[i : i + n])
                if qids:
                    found.update(qids)
        return found

    def targets(self, documents: Iterable[Document]) -> dict[str, dict[str, int]]:
        """question id -> {id of a passage whose text holds an answer: 1}."""
        targets: dict[str, dict[str, int]] = {}
        for document in documents:
            for qid in self.questions_in(document.text):
                targets.setdefault(qid, {})[document.id] = 1
        return targets


# ---------------------------------------------------------------------------------------------------
# Questions


def is_qa_file(path: Path) -> bool:
    """Whether a ``.jsonl`` holds QA records (its first record has ``answers`` and no ``targets``)."""
    for _, record in read_jsonl(path):
        return ("answers" in record or "answer" in record) and "targets" not in record
    return False


# (question, answers, split): what a repeated id is compared on.
_Row = tuple[str, tuple[str, ...], "str | None"]


def _answers(record: dict, path: Path, line: int) -> tuple[str, ...]:
    key = "answers" if "answers" in record or "answer" not in record else "answer"
    raw = record.get(key)
    if isinstance(raw, dict):  # SQuAD: {"text": [...], "answer_start": [...]}
        if "text" not in raw:
            raise DataError(path, f"field {key!r} is an object without 'text' (SQuAD's {{\"text\": [...]}})", line=line)
        raw = raw["text"]
    if isinstance(raw, str):
        raise DataError(path, f"field {key!r} must be a list of strings, got one string (write [{raw!r}])", line=line)
    if not isinstance(raw, list):
        raise DataError(path, f'field {key!r} must be a list of answer strings or {{"text": [...]}}', line=line)
    answers = []
    for value in raw:
        if not isinstance(value, str):
            raise DataError(path, f"an answer in {key!r} must be a string, got {value!r}", line=line)
        if not answer_tokens(value):
            raise DataError(path, f"answer {value!r} has no word in it (nothing to find in a passage)", line=line)
        answers.append(value)
    return tuple(dict.fromkeys(answers))


def _row(record: dict, path: Path, line: int) -> tuple[str, _Row]:
    qid = identifier(record["id"], "field 'id'", path, line) if record.get("id") is not None else str(line)
    split = identifier(record["split"], "field 'split'", path, line) if "split" in record else None
    return qid, (question(record, "question", path, line), _answers(record, path, line), split)


def load_qa(
    path: Path,
    corpus: Path | None = None,
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.1, 0.3),
) -> Collection:
    """Questions (JSONL) and their passages (``corpus``, else ``corpus.jsonl`` beside them) -> a Collection."""
    corpus = corpus or path.parent / "corpus.jsonl"
    if not corpus.is_file():
        raise DataError(corpus, "no passage corpus for these questions (put corpus.jsonl beside them or pass --corpus)")
    warnings: list[str] = []
    rows = unique(((*_row(r, path, n), n) for n, r in read_jsonl(path)), path, "question", warnings)
    if not rows:
        raise DataError(path, "no questions (the file is empty)")
    documents = read_corpus(corpus, warnings)
    answered = {qid: row for qid, (row, _) in rows.items() if row[1]}
    _warn(warnings, path, [q for q in rows if q not in answered], "have no answer (unanswerable): dropped")
    targets = AnswerIndex({qid: answers for qid, (_, answers, _) in answered.items()}).targets(documents)
    _warn(warnings, path, [q for q in answered if q not in targets], "have no answer in any passage: dropped")
    examples = [
        Example(qid, text, targets[qid], {"answers": list(answers)})
        for qid, (text, answers, _) in answered.items()
        if qid in targets
    ]
    if not examples:
        raise DataError(path, f"none of its {len(rows)} questions has an answer in a passage of {corpus}")
    return Collection(path.stem, documents, examples, _splits(rows, examples, path, seed, fractions), warnings)


def _warn(warnings: list[str], path: Path, ids: list[str], what: str) -> None:
    if ids:
        warnings.append(f"{path.name}: {len(ids)} questions {what} (first: {ids[0]!r})")


def _splits(
    rows: Mapping[str, tuple[_Row, int]],
    examples: list[Example],
    path: Path,
    seed: int,
    fractions: tuple[float, float, float],
) -> dict[str, list[str]]:
    declared = {qid: row[2] for qid, (row, _) in rows.items() if row[2] is not None}
    if not declared:
        return split_ids([e.id for e in examples], seed, fractions)
    if len(declared) != len(rows):
        line = next(n for qid, (row, n) in rows.items() if row[2] is None)
        raise DataError(path, "either every question has a 'split' or none does", line=line)
    splits: dict[str, list[str]] = {}
    for example in examples:
        splits.setdefault(str(declared[example.id]), []).append(example.id)
    return splits
