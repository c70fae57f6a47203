"""Loaders: user files (BEIR folders, SMART collections, examples JSONL) or the generated demo -> Collection."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl

from ..errors import DataError, DeepRetrievalError
from ..types import Collection
from .splits import split_ids

__all__ = ["generated_spec", "generator_options", "load_collection", "split_ids"]


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
    beside it or ``corpus``).

    A generated collection takes its generator's numeric options after a ``?``, as in a URL:
    ``literature-demo?held_out_conditions=8&n_reviews=200`` (:func:`generator_options` lists them)."""
    if (collection := _generated(str(spec), seed)) is not None:
        return collection
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


# name -> (module, builder, the function whose keyword parameters are the options)
_GENERATORS = {
    "demo": ("retrievaldemo", "build_demo_collection", "build_demo_collection"),
    "literature-demo": ("litdemo", "build_literature_demo", "build_literature_demo"),
    "trials-demo": ("trialsdemo", "build_trials_demo", "generate_trials_demo"),
    "qa-demo": ("qademo", "build_qa_demo", "build_qa_demo"),
    "sql-demo": ("sqldemo", "build_sql_demo", "build_sql_demo"),
}


def generator_options(name: str) -> dict[str, int | float]:
    """A generated collection's options (``?key=value`` in its spec) and their defaults: the generator's
    numeric keyword parameters other than ``seed`` (which is the recipe's)."""
    module, _, described = _GENERATORS[name]
    function = getattr(importlib.import_module(f".{module}", __package__), described)
    return {
        p.name: p.default
        for p in inspect.signature(function).parameters.values()
        if p.name != "seed" and type(p.default) in (int, float)
    }


def generated_spec(spec: str) -> tuple[str, dict[str, int | float]] | None:
    """(name, options) of a generated collection's spec (``literature-demo?held_out_conditions=6``), or None if
    ``spec`` names no generated collection; a bad option is a :class:`DataError` naming it."""
    name, _, query = spec.partition("?")
    if name not in _GENERATORS:
        return None
    allowed = generator_options(name)
    options: dict[str, int | float] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
    except ValueError:
        raise DataError(spec, "options must be key=value pairs joined with '&'") from None
    for key, text in pairs:
        if key not in allowed:
            raise DataError(spec, f"unknown option {key!r} for {name} (options: {', '.join(sorted(allowed))})")
        kind = type(allowed[key])
        try:
            options[key] = kind(text)
        except ValueError:
            wanted = "an integer" if kind is int else "a number"
            raise DataError(spec, f"option {key!r} must be {wanted}, got {text!r}") from None
    return name, options


def _generated(spec: str, seed: int) -> Collection | None:
    """The generated collection ``spec`` names, built with its options, or None if it names none."""
    if (found := generated_spec(spec)) is None:
        return None
    name, options = found
    module, builder, _ = _GENERATORS[name]
    build: Callable[..., Collection] = getattr(importlib.import_module(f".{module}", __package__), builder)
    try:
        return build(seed=seed, **options)
    except DataError:
        raise
    except DeepRetrievalError as exc:  # the generator's verdict on an option's value
        raise DataError(spec, str(exc)) from None
