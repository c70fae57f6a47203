"""data/pubmed_xml.py: the PubMed XML the emulator's efetch sends, read back by Biopython (validating against
the DTD it ships) and checked against NCBI's DTD by lxml; every value compared with the Document's."""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import pytest
from Bio import Entrez

from deepretrieval.data.pubmed_xml import write_pubmed_xml
from deepretrieval.types import Document

FULL = Document(
    "31452104",
    'Aspirin & <stroke>: "a trial" of T2 – café',
    "Stroke is common.\nWe randomised 120 adults.\nAspirin helped.",
    {
        "abstract_labels": ("BACKGROUND", "", "CONCLUSIONS"),
        "mesh": ("Aspirin", "Humans", "Stroke"),
        "mesh_headings": ("Aspirin/*therapeutic use/adverse effects", "Humans", "*Stroke/prevention & control"),
        "publication_types": ("Journal Article", "Randomized Controlled Trial"),
        "keywords": ("antiplatelet", "secondary prevention"),
        "languages": ("eng", "fre"),
        "authors": ("Smith JA", "van der Berg K", "Stroke Trialists' Collaboration"),
        "journal": ("The Lancet. Neurology",),
        "journal_abbreviation": ("Lancet Neurol",),
        "issn": ("1474-4422",),
        "electronic_date": ("2019-12-30",),
    },
    datetime.date(2020, 2, 15),
)
BARE = Document("7", "A bare record", "", {"mesh": ("Humans",)}, None)


def read(documents) -> dict:
    return Entrez.read(io.BytesIO(write_pubmed_xml(documents)))  # validating, against pubmed_250101.dtd


def test_biopython_reads_every_field_back():
    (article,) = read([FULL])["PubmedArticle"]
    citation = article["MedlineCitation"]
    body = citation["Article"]
    assert citation["PMID"] == FULL.id
    assert body["ArticleTitle"] == FULL.title
    sections = body["Abstract"]["AbstractText"]
    assert [str(s) for s in sections] == FULL.text.split("\n")
    assert [s.attributes.get("Label", "") for s in sections] == ["BACKGROUND", "", "CONCLUSIONS"]
    journal = body["Journal"]
    assert (journal["Title"], journal["ISOAbbreviation"], journal["ISSN"]) == (
        "The Lancet. Neurology",
        "Lancet Neurol",
        "1474-4422",
    )
    assert dict(journal["JournalIssue"]["PubDate"]) == {"Year": "2020", "Month": "Feb", "Day": "15"}
    (electronic,) = body["ArticleDate"]
    assert electronic.attributes["DateType"] == "Electronic"
    assert (electronic["Year"], electronic["Month"], electronic["Day"]) == ("2019", "12", "30")
    assert citation["MedlineJournalInfo"]["MedlineTA"] == "Lancet Neurol"
    assert list(body["Language"]) == ["eng", "fre"]
    assert list(body["PublicationTypeList"]) == ["Journal Article", "Randomized Controlled Trial"]
    authors = body["AuthorList"]
    assert (authors[0]["LastName"], authors[0]["Initials"]) == ("Smith", "JA")
    assert (authors[1]["LastName"], authors[1]["Initials"]) == ("van der Berg", "K")
    assert authors[2]["CollectiveName"] == "Stroke Trialists' Collaboration"
    (keywords,) = citation["KeywordList"]
    assert list(keywords) == ["antiplatelet", "secondary prevention"]


def test_mesh_headings_keep_qualifiers_and_major_topic_flags():
    """MEDLINE display form ("Aspirin/*therapeutic use") written back as DescriptorName / QualifierName with
    MajorTopicYN, as PubMed XML carries them (PubMed Help, 'MeSH Major Topic [majr]')."""
    headings = read([FULL])["PubmedArticle"][0]["MedlineCitation"]["MeshHeadingList"]
    found = [
        (
            (str(h["DescriptorName"]), h["DescriptorName"].attributes["MajorTopicYN"]),
            [(str(q), q.attributes["MajorTopicYN"]) for q in h["QualifierName"]],
        )
        for h in headings
    ]
    assert found == [
        (("Aspirin", "N"), [("therapeutic use", "Y"), ("adverse effects", "N")]),
        (("Humans", "N"), []),
        (("Stroke", "Y"), [("prevention & control", "N")]),
    ]


def test_absent_fields_leave_out_optional_elements_and_mesh_alone_gives_descriptors():
    citation = read([BARE])["PubmedArticle"][0]["MedlineCitation"]
    body = citation["Article"]
    assert "Abstract" not in body and "AuthorList" not in body and body["ArticleDate"] == []
    assert citation["KeywordList"] == [] and "Title" not in body["Journal"]
    (heading,) = citation["MeshHeadingList"]
    assert heading["DescriptorName"] == "Humans" and heading["DescriptorName"].attributes["MajorTopicYN"] == "N"


def test_the_xml_is_valid_against_ncbis_dtd():
    """Biopython reads what it can; lxml checks the whole content model of pubmed_250101.dtd (required
    elements and attributes, order)."""
    etree = pytest.importorskip("lxml.etree")
    dtd = etree.DTD(str(Path(Entrez.__file__).parent / "DTDs" / "pubmed_250101.dtd"))
    parsed = etree.fromstring(write_pubmed_xml([FULL, BARE]))
    assert dtd.validate(parsed), dtd.error_log.filter_from_errors()


def test_characters_xml_cannot_carry_are_replaced_and_markup_is_escaped():
    hostile = Document("1", "a\x00b </ArticleTitle><x>", "c\x1fd", {}, None)
    body = read([hostile])["PubmedArticle"][0]["MedlineCitation"]["Article"]
    assert body["ArticleTitle"] == "a\ufffdb </ArticleTitle><x>"
    assert body["Abstract"]["AbstractText"][0] == "c\ufffdd"
    assert read([]) == {"PubmedArticle": [], "PubmedBookArticle": []}


def test_the_corpus_loader_reads_the_xml_back_to_the_same_documents(tmp_path):
    """The writer is the loader's inverse: every field the loader keeps comes back as written (the title,
    the abstract, the print date and each publication field it reads). Elements the DTD requires are
    written empty when a field is absent; an empty value is no value. A record with descriptors alone may
    come back with its headings too: the same names."""
    from deepretrieval.data.literature import read_publications

    written = [FULL, BARE]
    path = tmp_path / "corpus.xml"
    path.write_bytes(write_pubmed_xml(written))
    loaded = read_publications(path, [])
    assert [(d.id, d.title, d.text, d.date) for d in loaded] == [(d.id, d.title, d.text, d.date) for d in written]
    assert loaded[0].fields["abstract_labels"] == FULL.fields["abstract_labels"]
    for back, document in zip(loaded, written, strict=True):
        kept = {k: tuple(filter(None, v)) for k, v in back.fields.items() if k != "abstract_labels"}
        kept = {k: v for k, v in kept.items() if v}
        assert "mesh" in kept
        for name, values in kept.items():
            assert values == document.fields.get(name, document.fields["mesh"] if name == "mesh_headings" else None)
