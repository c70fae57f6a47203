"""PubMed XML from Documents: what E-utilities ``efetch`` (db=pubmed, retmode=xml) sends, written from a
corpus's publications so that the emulator can serve them and the loader (:mod:`.literature`) can read
them back.

:func:`write_pubmed_xml` writes a ``PubmedArticleSet`` with NCBI's DOCTYPE (``pubmed_250101.dtd``, which
Biopython ships, so ``Bio.Entrez.read`` validates against it), one ``PubmedArticle`` per Document, its
``MedlineCitation`` built from the fields of the publication contract (docs: ``/work/i22/CONTRACT.md``,
mirrored in :mod:`.literature`):

================================  ===========================================================================
Document                          XML
================================  ===========================================================================
``id``                            ``PMID`` (``Version="1"``)
``title``                         ``Article/ArticleTitle``
``text`` (one section a line)     ``Abstract/AbstractText``, one per line, ``Label`` from ``abstract_labels``
``date``                          ``Journal/JournalIssue/PubDate`` (``Year``, ``Month`` as ``Jan``, ``Day``)
``electronic_date``               ``ArticleDate DateType="Electronic"`` (``Year``, ``Month``, ``Day``)
``journal`` / ``issn``            ``Journal/Title`` / ``Journal/ISSN`` (the first value, ``IssnType="Print"``)
``journal_abbreviation``          ``Journal/ISOAbbreviation`` and ``MedlineJournalInfo/MedlineTA``
``authors``                       ``AuthorList/Author``: ``LastName`` + ``Initials`` when the name ends in
                                  1-4 capital letters after a space ("Smith JA"), else ``CollectiveName``
``languages``                     ``Language``
``publication_types``             ``PublicationTypeList/PublicationType``
``mesh_headings`` (else ``mesh``) ``MeshHeadingList/MeshHeading``: ``DescriptorName`` and ``QualifierName``,
                                  ``MajorTopicYN="Y"`` where the heading marks it ``*``
``keywords``                      ``KeywordList Owner="NOTNLM"/Keyword``
================================  ===========================================================================

Optional elements are left out when their field is absent. Elements the DTD requires are always written,
empty when the Document has nothing for them (``Language``, ``PublicationType``, ``MedlineTA``, ``PubDate``
as an empty ``MedlineDate``, and ``Pagination/MedlinePgn``, which a corpus does not keep); identifiers
the corpus does not keep (the MeSH and publication-type ``UI`` attributes) are empty strings.
``PubModel`` is ``Print-Electronic`` with an electronic date, else ``Print``; ``Status`` is ``MEDLINE``
with MeSH headings, else ``PubMed-not-MEDLINE``. Text is escaped by the XML library; characters XML 1.0
cannot carry (control characters, lone surrogates) become U+FFFD.
"""

from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from ..types import Document

DOCTYPE = (
    '<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">'
)
# PubMed writes a PubDate's month as an English abbreviation (calendar.month_abbr follows the locale).
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_PERSON = re.compile(r"^(?P<last>.+?)\s+(?P<initials>[A-Z]{1,4})$")


def xml_safe(text: object) -> str:
    """``text`` with the characters XML 1.0 cannot carry replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", str(text))


def write_pubmed_xml(documents: Sequence[Document]) -> bytes:
    """A ``PubmedArticleSet`` (UTF-8, NCBI's DOCTYPE) of ``documents``, in order (none: an empty set)."""
    root = ET.Element("PubmedArticleSet")
    for document in documents:
        root.append(pubmed_article(document))
    body = ET.tostring(root, encoding="unicode", short_empty_elements=True)
    return f'<?xml version="1.0" encoding="UTF-8" ?>\n{DOCTYPE}\n{body}\n'.encode()


def pubmed_article(document: Document) -> ET.Element:
    """One ``PubmedArticle`` (its ``MedlineCitation``) from a Document's publication fields."""
    values = document.fields
    article = ET.Element("PubmedArticle")
    headings = values.get("mesh_headings") or ()
    descriptors = () if headings else values.get("mesh", ())
    citation = _sub(
        article, "MedlineCitation", Status="MEDLINE" if headings or descriptors else "PubMed-not-MEDLINE", Owner="NLM"
    )
    _sub(citation, "PMID", document.id, Version="1")
    electronic = values.get("electronic_date", ())
    body = _sub(citation, "Article", PubModel="Print-Electronic" if electronic else "Print")
    _journal(body, document)
    _sub(body, "ArticleTitle", document.title)
    _sub(_sub(body, "Pagination"), "MedlinePgn")
    _abstract(body, document.text, values.get("abstract_labels", ()))
    _authors(body, values.get("authors", ()))
    for language in values.get("languages") or ("",):
        _sub(body, "Language", language)
    types = _sub(body, "PublicationTypeList")
    for kind in values.get("publication_types") or ("",):
        _sub(types, "PublicationType", kind, UI="")
    for day in electronic[:1]:
        _date(_sub(body, "ArticleDate", DateType="Electronic"), datetime.date.fromisoformat(day), named_month=False)
    info = _sub(citation, "MedlineJournalInfo")
    _sub(info, "MedlineTA", _first(values, "journal_abbreviation"))
    if headings or descriptors:
        _mesh(_sub(citation, "MeshHeadingList"), headings, descriptors)
    if values.get("keywords"):
        keywords = _sub(citation, "KeywordList", Owner="NOTNLM")
        for keyword in values["keywords"]:
            _sub(keywords, "Keyword", keyword, MajorTopicYN="N")
    return article


def mesh_heading(heading: str) -> tuple[tuple[str, bool], list[tuple[str, bool]]]:
    """A MEDLINE display heading ("Aspirin/*therapeutic use/adverse effects") as (descriptor, major) and its
    qualifiers [(name, major)]: a "*" before a name marks it a major topic."""
    descriptor, *qualifiers = (part.strip() for part in heading.split("/"))

    def named(part: str) -> tuple[str, bool]:
        return (part[1:].strip(), True) if part.startswith("*") else (part, False)

    return named(descriptor), [named(q) for q in qualifiers]


def _journal(article: ET.Element, document: Document) -> None:
    values = document.fields
    journal = _sub(article, "Journal")
    for issn in values.get("issn", ())[:1]:  # the DTD allows one ISSN per Journal
        _sub(journal, "ISSN", issn, IssnType="Print")
    issue = _sub(journal, "JournalIssue", CitedMedium="Print")
    published = _sub(issue, "PubDate")
    if document.date is None:
        _sub(published, "MedlineDate")
    else:
        _date(published, document.date, named_month=True)
    if values.get("journal"):
        _sub(journal, "Title", values["journal"][0])
    if values.get("journal_abbreviation"):
        _sub(journal, "ISOAbbreviation", values["journal_abbreviation"][0])


def _abstract(article: ET.Element, text: str, labels: Sequence[str]) -> None:
    sections = text.split("\n") if text.strip() else []
    if not sections:
        return
    abstract = _sub(article, "Abstract")
    for i, section in enumerate(sections):
        label = labels[i] if i < len(labels) else ""
        _sub(abstract, "AbstractText", section, **({"Label": label} if label else {}))


def _authors(article: ET.Element, authors: Sequence[str]) -> None:
    if not authors:
        return
    listed = _sub(article, "AuthorList", CompleteYN="Y")
    for name in authors:
        author = _sub(listed, "Author", ValidYN="Y")
        person = _PERSON.match(name.strip())
        if person:
            _sub(author, "LastName", person["last"])
            _sub(author, "Initials", person["initials"])
        else:
            _sub(author, "CollectiveName", name.strip())


def _mesh(listed: ET.Element, headings: Sequence[str], descriptors: Sequence[str]) -> None:
    # Without display headings, the descriptor names alone: no qualifier, no major topic.
    parsed = [mesh_heading(h) for h in headings] or [((d, False), []) for d in descriptors]
    for (descriptor, major), qualifiers in parsed:
        element = _sub(listed, "MeshHeading")
        _sub(element, "DescriptorName", descriptor, UI="", MajorTopicYN="Y" if major else "N")
        for name, qualifier_major in qualifiers:
            _sub(element, "QualifierName", name, UI="", MajorTopicYN="Y" if qualifier_major else "N")


def _date(parent: ET.Element, day: datetime.date, *, named_month: bool) -> None:
    _sub(parent, "Year", f"{day.year:04d}")
    _sub(parent, "Month", MONTHS[day.month - 1] if named_month else f"{day.month:02d}")
    _sub(parent, "Day", f"{day.day:02d}")


def _first(values: object, name: str) -> str:
    found = values.get(name, ())  # type: ignore[attr-defined]
    return found[0] if found else ""


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_safe(v) for k, v in attributes.items()})
    if text:
        element.text = xml_safe(text)
    return element
