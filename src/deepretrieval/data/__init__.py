"""Loaders: user files (BEIR folders, SMART collections, examples JSONL) or the generated demo -> Collection."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..types import Collection
from .splits import split_ids

__all__ = ["load_collection", "split_ids"]


def load_collection(
    spec: str | Path,
    *,
    corpus: Path | None = None,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.1, 0.3),
) -> Collection:
    """``demo`` | ``literature-demo`` | ``trials-demo`` | ``qa-demo`` | ``sql-demo`` (generated) | a Spider or BIRD
    folder (text-to-SQL) | a BEIR folder | a SMART folder | an examples ``.jsonl`` | a reviews ``.jsonl``
    (DeepRetrieval's PICO records) | a QA ``.jsonl`` (``question`` and ``answers``; for the last three, the corpus
    beside it or ``corpus``)."""
    if str(spec) == "demo":
        from .retrievaldemo import build_demo_collection

        return build_demo_collection(seed=seed)
    if str(spec) == "literature-demo":
        from .litdemo import build_literature_demo

        return build_literature_demo(seed=seed)
    if str(spec) == "trials-demo":
        from .trialsdemo import build_trials_demo

        return build_trials_demo(seed=seed)
    if str(spec) == "qa-demo":
        from .qademo import build_qa_demo

        return build_qa_demo(seed=seed)
    if str(spec) == "sql-demo":
        from .sqldemo import build_sql_demo

        return build_sql_demo(seed=seed)
    path = Path(spec)
    if path.is_file() and path.suffix == ".jsonl":
        from .beir import read_jsonl
        from .literature import is_reviews_file

        if next(read_jsonl(path), None) is None:  # its kind is unknown: each loader would blame another file
            raise DataError(path, "no records (the file is empty)")

        if is_reviews_file(path):
            from .literature import load_reviews

            return load_reviews(path, corpus, seed=seed, fractions=fractions)
        from .qa import is_qa_file, load_qa

        if is_qa_file(path):
            return load_qa(path, corpus, seed=seed, fractions=fractions)
        from .jsonl import load_jsonl

        return load_jsonl(path, corpus, seed=seed, fractions=fractions)
    if path.is_dir():
        from .sql import is_bird_folder, is_spider_folder, load_bird, load_spider

        if is_spider_folder(path):
            return load_spider(path)
        if is_bird_folder(path):
            return load_bird(path)
        if (path / "corpus.jsonl").exists():
            from .beir import load_beir

            return load_beir(path)
        from .classic import find_files, load_classic

        if find_files(path):
            return load_classic(path, seed=seed, fractions=fractions)
    if not path.exists():
        raise DataError(
            path,
            "no such file or folder (expected 'demo', 'literature-demo', 'trials-demo', 'qa-demo', 'sql-demo', a "
            "BEIR, SMART, Spider or BIRD folder, a .jsonl)",
        )
    raise DataError(
        path,
        "not a BEIR folder (corpus.jsonl), SMART folder (*.ALL, *.QRY or query.text, *.REL or qrels.text), Spider "
        "folder (dev.json, database/), BIRD folder (dev.json, dev_databases/) or .jsonl",
    )
