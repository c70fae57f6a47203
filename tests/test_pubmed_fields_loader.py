"""The PubMed fields the loader keeps (issue 22): each checked against Biopython's reading of NLM's own records, or
against a hand-checked record, with the PubMed Help section the field serves."""

from __future__ import annotations

import datetime
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from Bio import Entrez

from deepretrieval.data.literature import read_publications
from deepretrieval.errors import DataError

BIOPYTHON = Path(__file__).parent / "data" / "biopython-entrez"
FIXTURES = sorted(BIOPYTHON.glob("*.xml"))


# ---------------------------------------------------------------------------------------------------
# Biopython's reading, converted to the contract's Document fields without the loader's code


def _plain(marked: str) -> str:
    """Biopython's text (read with escape=True: markup tags raw, text characters escaped) as plain text: each
    MathML formula's leaf characters run together, other tags dropped, entities decoded, white space collapsed."""

    def formula(match: re.Match[str]) -> str:
        leaves = re.findall(r"<(mi|mn|mo|mtext|ms)\b[^>]*>(.*?)</\1>", match[0], flags=re.S)
        return "".join(re.sub(r"\s+", " ", text) for _, text in leaves)

    text = re.sub(r"<math\b.*?</math>", formula, marked, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]*>", "", text)).split())


def _starred(element: Any) -> str:
    return ("*" if element.attributes.get("MajorTopicYN") == "Y" else "") + _plain(element)


def _day(parts: dict) -> datetime.date | None:
    """A PubDate / ArticleDate dict as a date, a missing month or day being the period's first."""
    year, month, day = parts.get("Year"), parts.get("Month"), parts.get("Day")
    if year is None:
        return None
    number = (int(month) if month.isdigit() else datetime.datetime.strptime(month, "%b").month) if month else 1
    return datetime.date(int(year), number, int(day) if day else 1)


def _expected(record: dict) -> tuple[str, str, str, dict[str, tuple[str, ...]], datetime.date | None]:
    """(PMID, title, text, fields, print date) of one ``PubmedArticle`` as Bio.Entrez.read gives it."""
    citation = record["MedlineCitation"]
    article = citation["Article"]
    sections = [(_plain(s), s.attributes.get("Label", "")) for s in article.get("Abstract", {}).get("AbstractText", [])]
    sections = [(text, label) for text, label in sections if text]
    headings = citation.get("MeshHeadingList", [])
    authors = [a.get("CollectiveName") or f"{a['LastName']} {a.get('Initials', '')}".strip()
               for a in article.get("AuthorList", [])]  # fmt: skip
    journal = article["Journal"]
    electronic = [_day(d) for d in article.get("ArticleDate", []) if d.attributes.get("DateType") == "Electronic"]
    fields = {
        "mesh": tuple(_plain(h["DescriptorName"]) for h in headings),
        "publication_types": tuple(_plain(t) for t in article["PublicationTypeList"]),
    }
    optional = {
        "mesh_headings": tuple(
            "/".join([_starred(h["DescriptorName"]), *(_starred(q) for q in h.get("QualifierName", []))])
            for h in headings
        ),
        "abstract_labels": tuple(label for _, label in sections) if any(label for _, label in sections) else (),
        "keywords": tuple(_plain(k) for keywords in citation.get("KeywordList", []) for k in keywords),
        "languages": tuple(article.get("Language", [])),
        "authors": tuple(authors),
        "journal": (journal["Title"],) if journal.get("Title") else (),
        "journal_abbreviation": (
            citation.get("MedlineJournalInfo", {}).get("MedlineTA") or journal["ISOAbbreviation"],
        ),
        "issn": (str(journal["ISSN"]),) if journal.get("ISSN") else (),
        "electronic_date": (electronic[0].isoformat(),) if electronic else (),
    }
    fields |= {name: value for name, value in optional.items() if value}
    title = _plain(article["ArticleTitle"])
    text = "\n".join(text for text, _ in sections)
    return str(citation["PMID"]), title, text, fields, _day(journal["JournalIssue"]["PubDate"])


def _biopython(path: Path) -> list[dict]:
    # escape=True keeps inline markup (<i>, <sub>, MathML) as tags and escapes the text's own "<" and "&", so
    # the two can be told apart (with escape=False, "<u><</u>4.5" is ambiguous). The DTDs are validated
    # (validate=True, Biopython's default): Biopython ships every DTD these files name, so nothing is fetched.
    with path.open("rb") as stream:
        return list(Entrez.read(stream, escape=True)["PubmedArticle"])


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_biopython_pubmed_files_load_as_biopython_reads_them(path: Path) -> None:
    """Every field the engine searches equals Bio.Entrez.read's reading of NLM's records (Biopython's test files):
    PubMed Help, 'Search Field Descriptions and Tags' > Title/Abstract [tiab], MeSH Terms [mh], MeSH Subheadings
    [sh], MeSH Major Topic [majr], Other Term [ot], Language [la], Author [au], Journal [ta], Publication Date [dp]
    ("includes both print and electronic dates of publication")."""
    documents = read_publications(path, [])
    expected = [_expected(record) for record in _biopython(path)]
    assert [d.id for d in documents] == [pmid for pmid, *_ in expected]
    for document, (_, title, text, fields, date) in zip(documents, expected, strict=True):
        assert document.title == title
        assert document.text == text
        assert dict(document.fields) == fields
        assert document.date == date


def test_the_biopython_files_cover_every_field() -> None:
    """The comparison above is not vacuous: Biopython's reading of the files has a structured abstract, an
    electronic date, MeSH qualifiers with major-topic flags, keywords, a group author and MathML."""
    expected = {pmid: fields for path in FIXTURES for pmid, _, _, fields, _ in map(_expected, _biopython(path))}
    assert expected["28775130"]["abstract_labels"] == ("OBJECTIVES", "METHODS", "RESULTS", "CONCLUSIONS")
    assert expected["28775130"]["electronic_date"] == ("2017-08-03",)
    assert "Sea Bream/*anatomy & histology/physiology" in expected["11748933"]["mesh_headings"]
    assert "Chromatium/*enzymology" in expected["9997"]["mesh_headings"]
    assert expected["12091962"]["keywords"] == ("Health Care and Public Health", "Legal Approach")
    assert expected["29963580"]["authors"][-1] == "Canadian Respiratory Research Network"
    assert "electronic_date" not in expected["9997"]  # a print-only article has none, on both sides
    assert "keywords" not in expected["11700088"] and expected["11700088"]["mesh"] == ()


def test_biopython_records_hand_checked() -> None:
    """A few values read off the XML by hand, so the comparison's helper is itself checked: PubMed Help, 'Search
    Field Descriptions and Tags' > MeSH Major Topic [majr], Author [au], Journal [ta], Publication Date [dp]."""
    documents = {d.id: d for path in FIXTURES for d in read_publications(path, [])}
    sperm = documents["11748933"]
    assert sperm.fields["mesh_headings"][-3:] == (
        "Semen Preservation/adverse effects/*methods",
        "*Sperm Motility",
        "Spermatozoa/physiology/*ultrastructure",
    )
    assert sperm.fields["authors"][:2] == ("Taddei AR", "Barbato F")
    pesticides = documents["28775130"]
    assert (pesticides.date, pesticides.fields["electronic_date"]) == (datetime.date(2018, 2, 1), ("2017-08-03",))
    assert pesticides.fields["journal_abbreviation"] == ("Occup Environ Med",)
    assert pesticides.fields["issn"] == ("1470-7926",)
    assert pesticides.text.splitlines()[3] == (
        "Our results suggest that long-term exposure to aldrin, pendimethalin and methyl bromide may alter thyroid "
        "function among male pesticide applicators."
    )
    assert "(0.4-<4.5 mIU/L)" in pesticides.text.splitlines()[1]  # <u>&lt;</u>: markup dropped, entity decoded
    telomeres = documents["27797938"]
    assert telomeres.title == (
        "Leucocyte telomere length, genetic variants at the TERT gene region and risk of pancreatic cancer."
    )
    assert "(linkage disequilibrium r2<0.25)" in telomeres.text.splitlines()[2]
    assert telomeres.fields["mesh_headings"][0] == "Adenocarcinoma/*epidemiology/*genetics"
    assert telomeres.fields["keywords"] == ("PANCREATIC CANCER",)


# ---------------------------------------------------------------------------------------------------
# Hand-written records


def _pubmed(article: str, *, citation: str = "", pmid: str = "1") -> str:
    return f"""<?xml version="1.0" ?>
<PubmedArticleSet>
  <PubmedArticle>
    <MedlineCitation Status="MEDLINE" Owner="NLM">
      <PMID Version="1">{pmid}</PMID>
      <Article PubModel="Print-Electronic">
        <Journal>
          <JournalIssue CitedMedium="Print"><PubDate><Year>2020</Year><Month>Mar</Month></PubDate></JournalIssue>
          <Title>Journal of Tests</Title>
          <ISOAbbreviation>J Tests</ISOAbbreviation>
        </Journal>
        {article}
      </Article>
      {citation}
    </MedlineCitation>
  </PubmedArticle>
</PubmedArticleSet>
"""


def _load(tmp_path: Path, xml: str) -> list:
    path = tmp_path / "publications.xml"
    path.write_text(xml, encoding="utf-8")
    return read_publications(path, [])


STRUCTURED = """
        <ArticleTitle>Aspirin after hip surgery</ArticleTitle>
        <Abstract>
          <AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">Hip pain is
            common.</AbstractText>
          <AbstractText Label="DESIGN" NlmCategory="METHODS">Hip  surgery patients were randomised.</AbstractText>
          <AbstractText>An unlabelled closing line.</AbstractText>
        </Abstract>"""


def test_structured_abstract_labels_are_not_text(tmp_path: Path) -> None:
    """One line per section, its label beside it and never a word of it, so "pain design" is no phrase of this
    abstract: PubMed Help, 'Search Field Descriptions and Tags' > Title/Abstract [tiab] (the abstract's words)."""
    [document] = _load(tmp_path, _pubmed(STRUCTURED))
    assert document.text.split("\n") == [
        "Hip pain is common.",
        "Hip surgery patients were randomised.",
        "An unlabelled closing line.",
    ]
    assert document.fields["abstract_labels"] == ("BACKGROUND", "DESIGN", "")
    assert "BACKGROUND" not in document.text and "DESIGN" not in document.text


def test_an_abstract_without_labels_has_no_label_field(tmp_path: Path) -> None:
    """PubMed Help, 'Search Field Descriptions and Tags' > Title/Abstract [tiab]."""
    [document] = _load(tmp_path, _pubmed("<ArticleTitle>T</ArticleTitle><Abstract><AbstractText>One.</AbstractText>"
                                         "<AbstractText>Two.</AbstractText></Abstract>"))  # fmt: skip
    assert document.text == "One.\nTwo."
    assert "abstract_labels" not in document.fields


MATHML = """
        <ArticleTitle>Relaxation time <mml:math xmlns:mml="http://www.w3.org/1998/Math/MathML">
            <mml:msub>
              <mml:mi>T</mml:mi>
              <mml:mn>2</mml:mn>
            </mml:msub>
          </mml:math> of <i>in vivo</i> cartilage</ArticleTitle>
        <Abstract>
          <AbstractText>We measured <mml:math xmlns:mml="http://www.w3.org/1998/Math/MathML">
              <mml:mrow>
                <mml:msup>
                  <mml:mi>Na</mml:mi>
                  <mml:mo>+</mml:mo>
                </mml:msup>
                <mml:mtext> </mml:mtext>
                <mml:mi>MRI</mml:mi>
              </mml:mrow>
            </mml:math> and CO<sub>2</sub> at <mml:math xmlns:mml="http://www.w3.org/1998/Math/MathML">
              <mml:mi>p</mml:mi><mml:mo>&lt;</mml:mo><mml:mn>0.05</mml:mn>
            </mml:math>.</AbstractText>
        </Abstract>"""


def test_mathml_text_is_kept_whole(tmp_path: Path) -> None:
    """A pretty-printed formula is its characters run together ("T2", not "T 2"), its mtext space kept; inline
    <i>, <sub> read as their text: PubMed Help, 'Search Field Descriptions and Tags' > Title/Abstract [tiab]."""
    [document] = _load(tmp_path, _pubmed(MATHML))
    assert document.title == "Relaxation time T2 of in vivo cartilage"
    assert document.text == "We measured Na+ MRI and CO2 at p<0.05."


def test_deeply_nested_markup_is_read_without_recursion(tmp_path: Path) -> None:
    """A hostile title nesting 20,000 <i> still loads (no RecursionError): PubMed Help, 'Search Field
    Descriptions and Tags' > Title [ti]."""
    title = "<ArticleTitle>" + "<i>" * 20_000 + "deep" + "</i>" * 20_000 + " end</ArticleTitle>"
    [document] = _load(tmp_path, _pubmed(title))
    assert document.title == "deep end"


CITATION = """
      <MedlineJournalInfo><Country>England</Country><MedlineTA>J Test Med</MedlineTA></MedlineJournalInfo>
      <MeshHeadingList>
        <MeshHeading><DescriptorName UI="D001241" MajorTopicYN="Y">Aspirin</DescriptorName></MeshHeading>
        <MeshHeading>
          <DescriptorName UI="D001241" MajorTopicYN="N">Aspirin</DescriptorName>
          <QualifierName UI="Q000627" MajorTopicYN="Y">therapeutic use</QualifierName>
          <QualifierName UI="Q000009" MajorTopicYN="N">adverse effects</QualifierName>
        </MeshHeading>
        <MeshHeading><DescriptorName UI="D006801" MajorTopicYN="N">Humans</DescriptorName></MeshHeading>
      </MeshHeadingList>
      <KeywordList Owner="NOTNLM"><Keyword MajorTopicYN="N">hip pain</Keyword></KeywordList>
      <KeywordList Owner="KIE"><Keyword MajorTopicYN="N">Ethics</Keyword></KeywordList>"""
ARTICLE = """
        <ArticleTitle>T</ArticleTitle>
        <AuthorList CompleteYN="Y">
          <Author ValidYN="Y"><LastName>Smith</LastName><ForeName>John A</ForeName><Initials>JA</Initials></Author>
          <Author ValidYN="Y"><CollectiveName>Hip Trial Group</CollectiveName></Author>
          <Author ValidYN="Y"><LastName>Plato</LastName></Author>
        </AuthorList>
        <Language>eng</Language>
        <Language>fre</Language>
        <ArticleDate DateType="Electronic"><Year>2019</Year><Month>12</Month><Day>24</Day></ArticleDate>"""


def test_contract_fields_of_a_hand_checked_record(tmp_path: Path) -> None:
    """The contract's examples, read off the XML by hand: PubMed Help, 'Search Field Descriptions and Tags' > MeSH
    Major Topic [majr], MeSH Subheadings [sh], Other Term [ot], Language [la], Author [au], Journal [ta],
    Publication Date [dp]."""
    [document] = _load(tmp_path, _pubmed(ARTICLE, citation=CITATION))
    assert dict(document.fields) == {
        "mesh": ("Aspirin", "Aspirin", "Humans"),
        "mesh_headings": ("*Aspirin", "Aspirin/*therapeutic use/adverse effects", "Humans"),
        "publication_types": (),
        "keywords": ("hip pain", "Ethics"),
        "languages": ("eng", "fre"),
        "authors": ("Smith JA", "Hip Trial Group", "Plato"),
        "journal": ("Journal of Tests",),
        "journal_abbreviation": ("J Test Med",),  # MedlineTA before ISOAbbreviation
        "electronic_date": ("2019-12-24",),
    }
    assert document.date == datetime.date(2020, 3, 1)  # the print date stays the date


def test_journal_abbreviation_falls_back_to_iso(tmp_path: Path) -> None:
    """No MedlineJournalInfo/MedlineTA: the ISOAbbreviation. PubMed Help, 'Search Field Descriptions and Tags' >
    Journal [ta]."""
    [document] = _load(tmp_path, _pubmed("<ArticleTitle>T</ArticleTitle>"))
    assert document.fields["journal_abbreviation"] == ("J Tests",)
    assert "electronic_date" not in document.fields and "authors" not in document.fields


def test_an_impossible_electronic_date_names_the_article(tmp_path: Path) -> None:
    """PubMed Help, 'Search Field Descriptions and Tags' > Publication Date [dp]."""
    bad = '<ArticleTitle>T</ArticleTitle><ArticleDate DateType="Electronic"><Year>2019</Year><Month>02</Month>'
    with pytest.raises(DataError) as info:
        _load(tmp_path, _pubmed(bad + "<Day>30</Day></ArticleDate>", pmid="7"))
    message = str(info.value)
    assert "publications.xml: PubmedArticle 1 (PMID 7): ArticleDate '2019/02/30' is not a date" in message
    assert "\n" not in message


# ---------------------------------------------------------------------------------------------------
# JSONL publications


def _jsonl(tmp_path: Path, *records: dict) -> Path:
    path = tmp_path / "publications.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_jsonl_publications_take_the_contract_fields(tmp_path: Path) -> None:
    """The same fields as PubMed XML gives, with the same meanings: PubMed Help, 'Search Field Descriptions and
    Tags' > MeSH Subheadings [sh], Other Term [ot], Language [la], Author [au], Journal [ta], Publication Date."""
    full = {
        "pmid": "1",
        "title": "T",
        "abstract": "Hip pain is common.\nPatients were randomised.",
        "abstract_labels": ["BACKGROUND", ""],
        "mesh": ["Aspirin"],
        "mesh_headings": ["Aspirin/*therapeutic use"],
        "keywords": ["hip pain"],
        "languages": ["eng"],
        "authors": ["Smith JA"],
        "journal": ["Journal of Tests"],
        "journal_abbreviation": ["J Tests"],
        "issn": ["1234-5678"],
        "date": "2020-03",
        "electronic_date": "2019/12/24",
    }
    bare = {"pmid": "2", "keywords": [], "abstract": "One.\nTwo.", "abstract_labels": ["", ""], "electronic_date": ""}
    first, second = read_publications(_jsonl(tmp_path, full, bare), [])
    assert dict(first.fields) == {
        "mesh": ("Aspirin",),
        "publication_types": (),
        "abstract_labels": ("BACKGROUND", ""),
        "mesh_headings": ("Aspirin/*therapeutic use",),
        "keywords": ("hip pain",),
        "languages": ("eng",),
        "authors": ("Smith JA",),
        "journal": ("Journal of Tests",),
        "journal_abbreviation": ("J Tests",),
        "issn": ("1234-5678",),
        "electronic_date": ("2019-12-24",),
    }
    assert (first.text, first.date) == ("Hip pain is common.\nPatients were randomised.", datetime.date(2020, 3, 1))
    assert dict(second.fields) == {"mesh": (), "publication_types": ()}  # empty is absent


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"keywords": "hip pain"}, "publications.jsonl:2: field 'keywords' must be a list of strings"),
        ({"authors": ["Smith JA", 3]}, "publications.jsonl:2: field 'authors' must be a list of strings"),
        ({"journal": "Gut"}, "publications.jsonl:2: field 'journal' must be a list of strings"),
        ({"mesh_headings": [["Aspirin"]]}, "publications.jsonl:2: field 'mesh_headings' must be a list of strings"),
        ({"languages": {"eng": 1}}, "publications.jsonl:2: field 'languages' must be a list of strings"),
        ({"issn": [None]}, "publications.jsonl:2: field 'issn' must be a list of strings"),
        ({"journal_abbreviation": 5}, "publications.jsonl:2: field 'journal_abbreviation' must be a list of strings"),
        (
            {"electronic_date": "2019-13-01"},
            "publications.jsonl:2: field 'electronic_date': '2019-13-01' is not a date",
        ),
        ({"electronic_date": 2019}, "publications.jsonl:2: field 'electronic_date' must be a string"),
        (
            {"abstract": "One.\nTwo.", "abstract_labels": ["A"]},
            "publications.jsonl:2: field 'abstract_labels' has 1 labels for 2 lines of 'abstract'",
        ),
        ({"abstract_labels": "BACKGROUND"}, "publications.jsonl:2: field 'abstract_labels' must be a list of strings"),
    ],
)
def test_jsonl_refuses_a_malformed_contract_field(tmp_path: Path, extra: dict, message: str) -> None:
    """One line naming file, line and field: PubMed Help, 'Search Field Descriptions and Tags' (the fields)."""
    path = _jsonl(tmp_path, {"pmid": "1"}, {"pmid": "2", "abstract": "x"} | extra)
    with pytest.raises(DataError) as info:
        read_publications(path, [])
    assert message in str(info.value)
    assert "\n" not in str(info.value)
