from __future__ import annotations

from deepretrieval.prompts import build_messages
from deepretrieval.search.bm25 import BM25Searcher
from deepretrieval.titles import TitleProvider, snippet
from deepretrieval.types import Document


def test_the_context_shows_the_top_first_pass_titles_in_the_prompt(small_collection):
    searcher = BM25Searcher.build(small_collection.documents)
    provider = TitleProvider(searcher, small_collection.documents, 2)
    [example] = provider([small_collection.examples[2]])  # "kidney stones"
    assert example.meta["titles"][0] == "kidney stones"
    assert small_collection.examples[2].meta == {}  # the original is untouched
    user = build_messages(example)[1]["content"]
    assert "Top search results for it:\n- kidney stones" in user
    assert build_messages(small_collection.examples[2])[1]["content"] == "Information need: kidney stones"
    assert TitleProvider(searcher, small_collection.documents, 0)(small_collection.examples) == list(
        small_collection.examples
    )


def test_snippet_falls_back_to_text_and_is_capped():
    assert snippet(Document("d", "", "  some   body text ")) == "some body text"
    long = snippet(Document("d", "word " * 100, ""))
    assert len(long) <= 160 and long.endswith("…")
