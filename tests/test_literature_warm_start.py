"""The literature family's warm start: pearl-growing demonstrations read off the judgments, and their completions."""

from __future__ import annotations

import pytest

from deepretrieval.prompts import PromptSettings
from deepretrieval.tasks.literature import LiteratureTask
from deepretrieval.types import Collection, Document, Example


def test_pearl_query_is_the_headings_most_included_studies_share_and_few_documents_have():
    """Hand-checked, 16 documents: the 3 included studies all carry "Asthma" (on 4 of 16 documents: 25%, at
    the ceiling) and "Budesonide" (3 of 16); "Child" is on 2 of the 3 (under 80%); "Humans" on every document
    (over the 25% ceiling: it distinguishes nothing). Written in alphabetical order."""

    def doc(i, *mesh):
        return Document(str(i), f"t{i}", "x", {"mesh": ("Humans", *mesh), "publication_types": ()})

    documents = [
        doc(1, "Asthma", "Budesonide", "Child"),
        doc(2, "Asthma", "Budesonide", "Child"),
        doc(3, "Asthma", "Budesonide"),
        doc(4, "Asthma"),
        *(doc(i) for i in range(5, 17)),
    ]
    example = Example("r1", "P: kids with wheeze\nI: inhaler", {"1": 1, "2": 1, "3": 1}, {"pico": {}})
    collection = Collection("c", documents, [example], {"train": ["r1"]})
    task, settings = LiteratureTask(), PromptSettings(mode="rewrite", context_docs=0)
    assert task.demonstration(example, settings, collection) == '"Asthma"[mh] AND "Budesonide"[mh]'
    assert task.demonstration(example, settings) is None  # no corpus to read the headings from
    assert task.completion('"Asthma"[mh]', "direct") == ' "Asthma"[mh]</answer>'
    bare = Collection("c", [Document(d.id, d.title, d.text, {}) for d in documents], [example], {"train": ["r1"]})
    assert task.demonstration(example, settings, bare) is None  # no headings at all


@pytest.mark.parametrize("variant", ["direct", "reasoning"])
def test_a_demonstrations_completion_parses_back_to_its_query(variant):
    """What the warm start teaches is what the reward's parser reads: the completion after the prompt's answer
    prefix parses (as sampled completions are, pre-filled) to the demonstrated query, in format."""
    task, query = LiteratureTask(), '"Asthma"[mh] AND "Budesonide"[mh]'
    settings = PromptSettings(variant=variant, mode="rewrite", context_docs=0)
    completion = task.completion(query, variant)
    parsed = task.parse(completion, settings)
    assert (parsed.query, parsed.format_ok, parsed.reason) == (query, True, "ok")
