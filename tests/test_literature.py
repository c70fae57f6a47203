def test_pearl_query_is_the_headings_most_included_studies_share_and_few_documents_have():
    """Hand-checked, 16 documents: the 3 included studies all carry "Asthma" (on 4 of 16 documents: 25%, at
    the ceiling) and "Budesonide" (3 of 16); "Child" is on 2 of the 3 (under 80%); "Humans" on every document
    (over the 25% ceiling: it distinguishes nothing). Written in alphabetical order."""
    from deepretrieval.prompts import PromptSettings
    from deepretrieval.tasks.literature import LiteratureTask
    from deepretrieval.types import Collection, Document, Example

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
