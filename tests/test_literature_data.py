"""Literature loaders: review records (PICO, included studies, date) and publication / trial corpora."""

from __future__ import annotations

import datetime
import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepretrieval.cli import app
from deepretrieval.data import literature, load_collection
from deepretrieval.data.literature import (
    is_reviews_file,
    load_reviews,
    parse_date,
    read_publications,
    read_trials,
    render_pico,
)
from deepretrieval.errors import DataError

PICO = {"P": "older people with high blood pressure", "I": "water pills", "C": "a dummy pill", "O": "living longer"}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def review(studies: list, **extra: object) -> dict:
    return {"pico": PICO, "publication_pmids": studies, "pub_date": "2015/03/01", **extra}


def publication(pmid: str | int, date: str | None = "2001-02-03", **extra: object) -> dict:
    record = {"pmid": pmid, "title": f"Diuretics in hypertension {pmid}", "abstract": "Thiazide lowered mortality."}
    record |= {"mesh": ["Hypertension", "Diuretics"], "publication_types": ["Randomized Controlled Trial"]}
    return record | ({"date": date} if date is not None else {}) | extra


def pubmed_article(
    pmid: str, *, title: str = "A trial", pub_date: str = "<Year>2001</Year>", body: str = "", mesh: str = ""
) -> str:
    """One PubmedArticle as in efetch replies and baseline files; ``body`` goes inside Article, ``mesh`` after it."""
    return f"""
  <PubmedArticle>
    <MedlineCitation Status="MEDLINE" Owner="NLM">
      <PMID Version="1">{pmid}</PMID>
      <Article PubModel="Print">
        <Journal><JournalIssue CitedMedium="Print"><Volume>3</Volume>
          <PubDate>{pub_date}</PubDate>
        </JournalIssue><Title>J Test</Title></Journal>
        <ArticleTitle>{title}</ArticleTitle>
        {body}
      </Article>
      {mesh}
      <CommentsCorrectionsList>
        <CommentsCorrections RefType="Cites"><RefSource>Other</RefSource>
          <PMID Version="1">999</PMID></CommentsCorrections>
      </CommentsCorrectionsList>
    </MedlineCitation>
    <PubmedData><PublicationStatus>ppublish</PublicationStatus></PubmedData>
  </PubmedArticle>"""


def pubmed_xml(*articles: str) -> str:
    return (
        '<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2024//EN"'
        ' "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_240101.dtd">\n<PubmedArticleSet>'
        + "".join(articles)
        + "\n</PubmedArticleSet>\n"
    )


def ctgov_study(nct: str, *, start: str = "2010-05", **sections: object) -> dict:
    protocol = {
        "identificationModule": {"nctId": nct, "briefTitle": f"Metformin for diabetes ({nct})", "officialTitle": "X"},
        "descriptionModule": {"briefSummary": "A randomized trial of metformin."},
        "conditionsModule": {"conditions": ["Diabetes Mellitus, Type 2"], "keywords": ["sugar"]},
        "armsInterventionsModule": {"interventions": [{"type": "DRUG", "name": "Metformin"}]},
        "statusModule": {"overallStatus": "COMPLETED", "startDateStruct": {"date": start, "type": "ACTUAL"}},
    }
    return {"protocolSection": protocol | sections, "hasResults": False}


# ---------------------------------------------------------------------------------------------------
# Reviews


def test_reviews_with_a_publication_corpus_beside_them(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "publications.jsonl", [publication(1), publication(2, date="1999/12"), publication(3)])
    reviews = [
        review([1, "2"], id="r1"),
        {"pico": {"P": "kids with a cold", "I": "vitamin C", "O": "feeling better"}, "publication_pmids": ["3"]},
        review(["3", "1"], id=7, pub_date="2020"),
    ]
    c = load_reviews(write_jsonl(tmp_path / "reviews.jsonl", reviews))
    assert c.name == "reviews"
    assert [e.id for e in c.examples] == ["r1", "2", "7"]  # no id: the line number
    first = c.examples[0]
    assert first.question == (
        "P: older people with high blood pressure\nI: water pills\nC: a dummy pill\nO: living longer"
    )
    assert first.targets == {"1": 1, "2": 1}
    assert first.meta == {"pico": PICO, "pub_date": datetime.date(2015, 3, 1), "kind": "publications"}
    second = c.examples[1]
    assert second.question.splitlines()[2] == "C: "  # C may be absent
    assert second.meta["pico"]["C"] == ""
    assert c.examples[2].meta["pub_date"] == datetime.date(2020, 12, 31)  # a year: its end
    doc = c.documents[1]
    assert (doc.id, doc.date) == ("2", datetime.date(1999, 12, 1))  # a document month: its start
    assert doc.fields == {"mesh": ("Hypertension", "Diuretics"), "publication_types": ("Randomized Controlled Trial",)}
    assert doc.text == "Thiazide lowered mortality."
    assert c.warnings == ["reviews.jsonl: 1 reviews have no pub_date (first: review 2); they are kept with pub_date "
                          "None, so no date cut-off applies to their searches"]  # fmt: skip
    assert second.meta["pub_date"] is None
    assert sorted(q for ids in c.splits.values() for q in ids) == ["2", "7", "r1"]
    assert set(c.splits) == {"train", "dev", "test"}


def test_seeded_splits_are_stable_and_declared_splits_are_kept(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "publications.jsonl", [publication(i) for i in range(1, 11)])
    path = write_jsonl(tmp_path / "reviews.jsonl", [review([i], id=f"r{i}") for i in range(1, 11)])
    assert load_reviews(path, seed=3).splits == load_reviews(path, seed=3).splits
    assert load_reviews(path, seed=3).splits != load_reviews(path, seed=4).splits
    declared = [review([i], id=f"r{i}", split="train" if i < 8 else "test") for i in range(1, 11)]
    declared.append(review([404], id="gone", split="dev"))  # dropped: its split disappears with it
    c = load_reviews(write_jsonl(tmp_path / "declared.jsonl", declared), tmp_path / "publications.jsonl")
    assert c.splits == {"train": [f"r{i}" for i in range(1, 8)], "test": ["r8", "r9", "r10"]}


def test_missing_and_repeated_studies_are_counted_and_empty_reviews_dropped(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "publications.jsonl", [publication(1), publication(2)])
    reviews = [
        review([1, 123, 124], id="r1"),
        review([2, 2], id="r2"),
        review([125], id="r3"),
        review([], id="r4"),
    ]
    c = load_reviews(write_jsonl(tmp_path / "reviews.jsonl", reviews))
    assert [e.id for e in c.examples] == ["r1", "r2"]
    assert c.examples[0].targets == {"1": 1}
    assert c.warnings == [
        "reviews.jsonl: 3 included studies of 2 reviews are not in the corpus (first: PMID 123 of review r1); "
        "recall is measured on the others",
        "reviews.jsonl: 2 reviews are dropped: none of their included studies is in the corpus (first: review r3)",
        "reviews.jsonl: 1 included studies are listed twice by one review (first: PMID 2 of review r2); "
        "each is counted once",
    ]


def test_included_studies_dated_after_their_review_are_counted(tmp_path: Path) -> None:
    # Data errors or e-pub dates: a date cut-off can never find these, which caps the review's recall.
    write_jsonl(tmp_path / "publications.jsonl", [publication(1), publication(2, date="2016"), publication(3)])
    reviews = [review([1, 2], id="r1"), review([3], id="r2", pub_date=None)]
    c = load_reviews(write_jsonl(tmp_path / "reviews.jsonl", reviews))
    assert c.examples[0].targets == {"1": 1, "2": 1}  # still included: the review says so
    assert c.warnings[0] == (
        "reviews.jsonl: 1 included studies of 1 reviews are dated after their review's pub_date "
        "(first: PMID 2 of review r1); a date cut-off cannot find them"
    )
    assert len(c.warnings) == 2  # and r2, undated, is not "before" anything


def test_reviews_of_trials_with_a_trial_corpus_beside_them(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "trials.jsonl",
        [
            {"nct_id": "NCT00000001", "title": "Metformin trial", "summary": "We gave metformin.",
             "conditions": ["Diabetes"], "interventions": ["Metformin"], "start_date": "2004-06"},
            {"nct_id": "NCT00000002", "title": "Insulin trial", "start_date": "2005-01-20"},
        ],
    )  # fmt: skip
    reviews = [{"pico": PICO, "trial_nctids": ["NCT00000001", "NCT00000009"], "pub_date": "2010/01/05"}]
    c = load_reviews(write_jsonl(tmp_path / "reviews.jsonl", reviews))
    (e,) = c.examples
    assert e.targets == {"NCT00000001": 1}
    assert e.meta["kind"] == "trials"
    assert "(first: NCT id NCT00000009 of review 1)" in c.warnings[0]
    first, second = c.documents
    assert first.fields == {"conditions": ("Diabetes",), "interventions": ("Metformin",)}
    assert (first.text, first.date) == ("We gave metformin.", datetime.date(2004, 6, 1))
    assert (second.text, second.fields["conditions"], second.date) == ("", (), datetime.date(2005, 1, 20))


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"pico": "P: x", "publication_pmids": [1]}, "field 'pico' must be an object"),
        ({"pico": {"I": "a", "O": "b"}, "publication_pmids": [1]}, "missing field 'P'"),
        ({"pico": {"P": "a", "I": " ", "O": "b"}, "publication_pmids": [1]}, "pico 'I' is blank"),
        ({"pico": {"P": "a", "I": "b", "O": 3}, "publication_pmids": [1]}, "field 'O' must be a string"),
        ({"pico": PICO | {"population": "x"}, "publication_pmids": [1]}, "unknown key 'population'"),
        ({"pico": PICO}, "exactly one of 'publication_pmids' and 'trial_nctids', it has neither"),
        ({"pico": PICO, "publication_pmids": [1], "trial_nctids": ["N"]}, "it has both"),
        ({"pico": PICO, "publication_pmids": "1 2"}, "field 'publication_pmids' must be a list of ids"),
        ({"pico": PICO, "publication_pmids": [1.5]}, "an id in 'publication_pmids' must be"),
        (review([1], pub_date="2015/13/01"), "field 'pub_date': '2015/13/01' is not a date"),
        (review([1], pub_date="2015/02/30"), "field 'pub_date': '2015/02/30' is not a date"),
        (review([1], pub_date="March 2015"), "expected YYYY/MM/DD, YYYY/MM or YYYY"),
        (review([1], pub_date=20150301), "field 'pub_date' must be a string"),
        (review([1], id=["r1"]), "field 'id' must be a non-empty string or an integer"),
        (review([1], split=None), "missing field 'split'"),
        (review(["١٢٣"]), "an id in 'publication_pmids': PMID '١٢٣' is not a number (ASCII digits 0-9)"),
        (review([1, "²³"]), "an id in 'publication_pmids': PMID '²³' is not a number"),
        (review([-5]), "an id in 'publication_pmids': PMID '-5' is not a number"),
        (review([1], pub_date="٢٠١٥/03/01"), "field 'pub_date': '٢٠١٥/03/01' is not a date (expected YYYY/MM/DD"),
    ],
)
def test_malformed_reviews_name_file_and_line(tmp_path: Path, record: dict, message: str) -> None:
    write_jsonl(tmp_path / "publications.jsonl", [publication(1)])
    path = write_jsonl(tmp_path / "reviews.jsonl", [review([1], id="ok"), record])
    with pytest.raises(DataError, match="reviews.jsonl:2: ") as info:
        load_reviews(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([review([1], id="a"), review([1], id="a")], "reviews.jsonl:2: duplicate review id 'a' (first at line 1)"),
        ([review([1], id="2"), review([1])], "reviews.jsonl:2: duplicate review id '2' (first at line 1)"),
        (
            [review([1]), {"pico": PICO, "trial_nctids": ["NCT1"]}],
            "reviews.jsonl:2: this review lists trial_nctids, those before it publication_pmids",
        ),
        ([review([1], split="train"), review([1])], "reviews.jsonl:2: either every review has a 'split' or none"),
        ([review([404])], "none of its 1 reviews has an included study in"),
    ],
)
def test_inconsistent_review_files_are_refused(tmp_path: Path, records: list[dict], message: str) -> None:
    write_jsonl(tmp_path / "publications.jsonl", [publication(1)])
    with pytest.raises(DataError, match="reviews.jsonl") as info:
        load_reviews(write_jsonl(tmp_path / "reviews.jsonl", records))
    assert message in str(info.value)


def test_invalid_json_and_empty_review_files(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "publications.jsonl", [publication(1)])
    path = tmp_path / "reviews.jsonl"
    path.write_text(json.dumps(review([1])) + "\n{oops\n")
    with pytest.raises(DataError, match=r"reviews.jsonl:2: invalid JSON"):
        load_reviews(path)
    path.write_text("\n")
    with pytest.raises(DataError, match="no reviews"):
        load_reviews(path)


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_an_empty_reviews_file_is_named_not_a_corpus(tmp_path: Path, text: str) -> None:
    write_jsonl(tmp_path / "publications.jsonl", [publication(1)])
    path = tmp_path / "reviews.jsonl"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_collection(path)
    assert str(info.value) == f"{path}: no records (the file is empty)"
    result = CliRunner().invoke(app, ["info", "--data", str(path)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {path}: no records (the file is empty)"


def test_the_corpus_is_found_beside_the_reviews_or_passed(tmp_path: Path) -> None:
    reviews = write_jsonl(tmp_path / "reviews.jsonl", [review([1])])
    with pytest.raises(DataError, match="no publications corpus beside these reviews: put publications.jsonl or"):
        load_reviews(reviews)
    write_jsonl(tmp_path / "publications.jsonl", [publication(1)])
    (tmp_path / "publications.xml").write_text(pubmed_xml(pubmed_article("1")))
    with pytest.raises(DataError, match=r"two publications corpora .*\(publications.jsonl, publications.xml\)"):
        load_reviews(reviews)
    other = write_jsonl(tmp_path / "elsewhere.jsonl", [publication(1, title="Chosen")])
    assert load_reviews(reviews, other).documents[0].title == "Chosen"
    (tmp_path / "publications.csv").write_text("pmid,title\n1,x\n")
    with pytest.raises(DataError, match="a publication corpus is .jsonl"):
        load_reviews(reviews, tmp_path / "publications.csv")
    with pytest.raises(DataError, match="no such file"):
        load_reviews(reviews, tmp_path / "absent.jsonl")


def test_is_reviews_file(tmp_path: Path) -> None:
    assert is_reviews_file(write_jsonl(tmp_path / "r.jsonl", [review([1])]))
    assert not is_reviews_file(write_jsonl(tmp_path / "q.jsonl", [{"id": "q", "question": "x", "targets": []}]))
    assert not is_reviews_file(write_jsonl(tmp_path / "empty.jsonl", []))


def test_render_pico_and_parse_date() -> None:
    assert render_pico({"P": "a", "I": "b", "O": "d"}) == "P: a\nI: b\nC: \nO: d"
    assert parse_date("2015/03/01") == parse_date("2015-03-01") == datetime.date(2015, 3, 1)
    assert parse_date("2016/02", end=True) == datetime.date(2016, 2, 29)
    assert parse_date("2016", end=False) == datetime.date(2016, 1, 1)
    with pytest.raises(ValueError, match="not a date"):
        parse_date("2015/03-01")  # one separator per date


# ---------------------------------------------------------------------------------------------------
# Publication corpora


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"title": "no id"}, "publications.jsonl:2: missing field 'pmid'"),
        (publication(2, mesh="Hypertension"), "publications.jsonl:2: field 'mesh' must be a list of strings"),
        (publication(2, publication_types=[1]), "field 'publication_types' must be a list of strings"),
        (publication(2, date="2001-02-30"), "publications.jsonl:2: field 'date': '2001-02-30' is not a date"),
        (publication(2, title=["x"]), "publications.jsonl:2: field 'title' must be a string"),
        (publication(1), "publications.jsonl:2: duplicate PMID 1 (first: publications.jsonl line 1)"),
        (publication("²³"), "publications.jsonl:2: field 'pmid': PMID '²³' is not a number (ASCII digits 0-9)"),
        (publication("١٢٣"), "publications.jsonl:2: field 'pmid': PMID '١٢٣' is not a number"),
        (publication(2, date="٢٠٠١-02-03"), "publications.jsonl:2: field 'date': '٢٠٠١-02-03' is not a date"),
    ],
)
def test_malformed_publications_name_file_and_line(tmp_path: Path, record: dict, message: str) -> None:
    path = write_jsonl(tmp_path / "publications.jsonl", [publication(1), record])
    with pytest.raises(DataError) as info:
        read_publications(path, [])
    assert message in str(info.value)


def test_undated_publications_are_counted(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "publications.jsonl", [publication(1), publication(2, None), publication(3, "")])
    warnings: list[str] = []
    documents = read_publications(path, warnings)
    assert [d.date for d in documents][1:] == [None, None]
    assert warnings == [
        "publications.jsonl: 2 publications have no date (first: PMID 2); "
        "a date cut-off cannot tell whether they predate a review"
    ]


LABELLED = """
        <Abstract>
          <AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">Aspirin may help.</AbstractText>
          <AbstractText Label="METHODS" NlmCategory="METHODS">We randomised
            120 <i>elderly</i> patients.</AbstractText>
          <AbstractText Label="RESULTS" NlmCategory="RESULTS"/>
        </Abstract>
        <PublicationTypeList>
          <PublicationType UI="D016428">Journal Article</PublicationType>
          <PublicationType UI="D016449">Randomized Controlled Trial</PublicationType>
        </PublicationTypeList>"""
MESH = """
      <MeshHeadingList>
        <MeshHeading><DescriptorName UI="D000369" MajorTopicYN="N">Aged</DescriptorName></MeshHeading>
        <MeshHeading><DescriptorName UI="D009203" MajorTopicYN="Y">Myocardial Infarction</DescriptorName>
          <QualifierName UI="Q000188" MajorTopicYN="N">drug therapy</QualifierName></MeshHeading>
      </MeshHeadingList>"""


def test_pubmed_xml_fields_dates_and_markup(tmp_path: Path) -> None:
    xml = pubmed_xml(
        pubmed_article(
            "101",
            title="Effect of <i>in vivo</i> CO<sub>2</sub> on\n   myocardial infarction.",
            pub_date="<Year>2001</Year><Month>Mar</Month><Day>05</Day>",
            body=LABELLED,
            mesh=MESH,
        ),
        pubmed_article("102", pub_date="<MedlineDate>1998 Dec-1999 Jan</MedlineDate>"),
        pubmed_article("103", pub_date="<Year>2003</Year><Month>11</Month>"),
        pubmed_article("104", pub_date="<Year>1975</Year><Season>Spring</Season>"),
        pubmed_article("105", pub_date="<MedlineDate>1975-1976</MedlineDate>"),
        pubmed_article("106", pub_date="<MedlineDate>Summer</MedlineDate>", title=""),
    )
    path = tmp_path / "publications.xml"
    path.write_text(xml, encoding="utf-8")
    warnings: list[str] = []
    documents = read_publications(path, warnings)
    assert [d.id for d in documents] == ["101", "102", "103", "104", "105", "106"]  # not the cited 999
    first = documents[0]
    assert first.title == "Effect of in vivo CO2 on myocardial infarction."
    # Labels are not words of the text (issue 22): one section a line, the labels beside them; the empty
    # RESULTS section is left out of both.
    assert first.text == "Aspirin may help.\nWe randomised 120 elderly patients."
    assert first.fields == {
        "mesh": ("Aged", "Myocardial Infarction"),
        "mesh_headings": ("Aged", "*Myocardial Infarction/drug therapy"),
        "abstract_labels": ("BACKGROUND", "METHODS"),
        "publication_types": ("Journal Article", "Randomized Controlled Trial"),
        "journal": ("J Test",),
    }
    assert [d.date for d in documents] == [
        datetime.date(2001, 3, 5),
        datetime.date(1998, 12, 1),
        datetime.date(2003, 11, 1),
        datetime.date(1975, 1, 1),
        datetime.date(1975, 1, 1),
        None,
    ]
    assert documents[1].fields == {"mesh": (), "publication_types": (), "journal": ("J Test",)}
    assert warnings == [
        "publications.xml: 1 publications have no date (first: PMID 106); "
        "a date cut-off cannot tell whether they predate a review"
    ]


def test_pubmed_xml_gz_a_folder_of_files_and_skipped_records(tmp_path: Path) -> None:
    folder = tmp_path / "baseline"
    folder.mkdir()
    with gzip.open(folder / "pubmed24n0001.xml.gz", "wt", encoding="utf-8") as f:
        f.write(pubmed_xml(pubmed_article("1"), pubmed_article("2")))
    book = "<PubmedBookArticle><BookDocument><PMID>77</PMID></BookDocument></PubmedBookArticle>"
    (folder / "pubmed24n0002.xml").write_text(pubmed_xml(pubmed_article("3"), book))
    (folder / "README.txt").write_text("not read")
    warnings: list[str] = []
    assert [d.id for d in read_publications(folder / "pubmed24n0001.xml.gz", warnings)] == ["1", "2"]
    assert [d.id for d in read_publications(folder, warnings)] == ["1", "2", "3"]
    assert warnings == ["pubmed24n0002.xml: 1 <PubmedBookArticle> records skipped (only PubmedArticle is read)"]
    reviews = write_jsonl(tmp_path / "reviews.jsonl", [review([3, 1])])
    assert load_reviews(reviews, folder).examples[0].targets == {"3": 1, "1": 1}


def test_a_lone_pubmed_article_is_read(tmp_path: Path) -> None:
    path = tmp_path / "one.xml"
    path.write_text(pubmed_article("42", title="Alone"))
    assert [(d.id, d.title) for d in read_publications(path, [])] == [("42", "Alone")]


def _line_of(text: str, xml: str) -> int:
    return next(n for n, line in enumerate(xml.splitlines(), start=1) if text in line)


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (
            pubmed_xml(pubmed_article("1"), pubmed_article("")),
            "publications.xml: PubmedArticle 2: no MedlineCitation/PMID",
        ),
        (pubmed_xml(pubmed_article("12a")), "PubmedArticle 1: PMID '12a' is not a number"),
        (
            pubmed_xml(pubmed_article("1"), pubmed_article("7", pub_date="<Year>2001</Year><Month>Foo</Month>")),
            "publications.xml: PubmedArticle 2 (PMID 7): PubDate '2001/Foo' is not a date",
        ),
        (
            pubmed_xml(pubmed_article("7", pub_date="<Year>2001</Year><Month>Feb</Month><Day>30</Day>")),
            "PubmedArticle 1 (PMID 7): PubDate '2001/Feb/30' is not a date (day is out of range for month)",
        ),
        (
            pubmed_xml(pubmed_article("5"), pubmed_article("5")),
            "PubmedArticle 2 (PMID 5): duplicate PMID 5 (first: publications.xml PubmedArticle 1 (PMID 5))",
        ),
        (
            pubmed_xml(pubmed_article("1")).replace("</ArticleTitle>", ""),
            f"publications.xml:{_line_of('</Article>', pubmed_xml(pubmed_article('1')))}: invalid XML (mismatched tag)",
        ),
        ("<eSearchResult><Count>0</Count></eSearchResult>", "not PubMed XML: the root element is <eSearchResult>"),
        (
            "<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>3</PMID></MedlineCitation></PubmedArticle>"
            "</PubmedArticleSet>",
            "PubmedArticle 1 (PMID 3): no MedlineCitation/Article",
        ),
        (
            pubmed_xml(pubmed_article("1"), pubmed_article("7", pub_date="<MedlineDate>0000 Jan</MedlineDate>")),
            "publications.xml: PubmedArticle 2 (PMID 7): MedlineDate '0000 Jan' is not a date (year 0 is out of range)",
        ),
        (pubmed_xml(pubmed_article("١٢٣")), "publications.xml: PubmedArticle 1: PMID '١٢٣' is not a number (ASCII"),
        (pubmed_xml(pubmed_article("²³")), "publications.xml: PubmedArticle 1: PMID '²³' is not a number (ASCII"),
        (
            pubmed_xml(pubmed_article("7", pub_date="<Year>2001</Year><Month>²</Month>")),
            "PubmedArticle 1 (PMID 7): PubDate '2001/²' is not a date (month '²')",
        ),
        (
            pubmed_xml(pubmed_article("7", pub_date="<Year>٢٠٠١</Year>")),
            "PubmedArticle 1 (PMID 7): PubDate '٢٠٠١' is not a date (year '٢٠٠١' is not a number in ASCII digits)",
        ),
        (
            pubmed_xml(pubmed_article("7", pub_date="<Year>2001</Year><Month>1</Month><Day>٣</Day>")),
            "PubmedArticle 1 (PMID 7): PubDate '2001/1/٣' is not a date (day '٣' is not a number in ASCII digits)",
        ),
    ],
)
def test_malformed_pubmed_xml_names_the_article(tmp_path: Path, xml: str, message: str) -> None:
    path = tmp_path / "publications.xml"
    path.write_text(xml, encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_publications(path, [])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_an_oversized_pubmed_record_is_refused_as_the_file_streams(tmp_path: Path, monkeypatch) -> None:
    """A megabyte of white space in one abstract (a kilobyte gzipped), then a file cut short: the size is
    refused while streaming, before the record is complete (reading on would find the invalid XML)."""
    blank = "<Abstract><AbstractText>" + " " * 2**20 + "x</AbstractText></Abstract>"
    whole = pubmed_xml(pubmed_article("1"), pubmed_article("2", body=blank), pubmed_article("3"))
    path = tmp_path / "publications.xml.gz"
    path.write_bytes(gzip.compress(whole[: whole.index("x</AbstractText>")].encode()))
    assert path.stat().st_size < 10_000
    monkeypatch.setattr(literature, "MAX_RECORD_BYTES", 100_000)
    with pytest.raises(DataError) as info:
        read_publications(path, [])
    assert str(info.value) == (
        f"{path}: record 2 (PMID 2): over 100,000 bytes of XML in one record (MAX_RECORD_BYTES; PubMed's largest "
        "are a few MB): a damaged or hostile file, not read further"
    )
    path.write_bytes(gzip.compress(whole.encode()))  # complete, and within the cap: read
    monkeypatch.setattr(literature, "MAX_RECORD_BYTES", 2 * 2**20)
    assert [(d.id, d.text) for d in read_publications(path, [])] == [("1", ""), ("2", "x"), ("3", "")]


def test_truncated_gzip_is_a_data_error(tmp_path: Path) -> None:
    data = gzip.compress(pubmed_xml(*(pubmed_article(str(i)) for i in range(1, 50))).encode())
    path = tmp_path / "publications.xml.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="publications.xml.gz: cannot read"):
        read_publications(path, [])


# ---------------------------------------------------------------------------------------------------
# Trial corpora


def test_ctgov_v2_studies_json_list_and_jsonl(tmp_path: Path) -> None:
    studies = [ctgov_study("NCT00000001"), ctgov_study("NCT00000002", start="2011-02-03")]
    wrapped = tmp_path / "trials.json"
    wrapped.write_text(json.dumps({"studies": studies, "nextPageToken": "abc"}))
    bare = tmp_path / "list.json"
    bare.write_text(json.dumps(studies))
    lines = write_jsonl(tmp_path / "trials.jsonl", [*studies, {"nct_id": "NCT00000003", "title": "Flat"}])
    for path in (wrapped, bare):
        documents = read_trials(path, [])
        assert [d.id for d in documents] == ["NCT00000001", "NCT00000002"]
    first, second, third = read_trials(lines, [])
    assert first.title == "Metformin for diabetes (NCT00000001)"
    assert first.text == "A randomized trial of metformin."
    assert first.fields == {"conditions": ("Diabetes Mellitus, Type 2",), "interventions": ("Metformin",)}
    assert (first.date, second.date) == (datetime.date(2010, 5, 1), datetime.date(2011, 2, 3))
    assert (third.id, third.title, third.date) == ("NCT00000003", "Flat", None)
    official = ctgov_study("NCT00000004")
    del official["protocolSection"]["identificationModule"]["briefTitle"]
    del official["protocolSection"]["armsInterventionsModule"]
    wrapped.write_text(json.dumps({"studies": [official]}))
    (only,) = read_trials(wrapped, [])
    assert (only.title, only.fields["interventions"]) == ("X", ())


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ({"protocolSection": {"identificationModule": {}}}, "trials.json: study 2: missing protocolSection"),
        ("NCT1", "trials.json: study 2: a study must be a JSON object"),
        (ctgov_study("NCT9", start="May 2010"), "study 2 (NCT9): field 'protocolSection.statusModule"),
        (ctgov_study("NCT9", conditionsModule={"conditions": "Asthma"}), "conditions must be a list"),
        (ctgov_study("NCT9", conditionsModule={"conditions": [1]}), "must be a list of strings"),
        (
            ctgov_study("NCT9", armsInterventionsModule={"interventions": ["Metformin"]}),
            "study 2 (NCT9): every entry of protocolSection.armsInterventionsModule.interventions must be an object",
        ),
        (ctgov_study("NCT9", statusModule="x"), "protocolSection.statusModule must be an object"),
        (ctgov_study("NCT00000001"), "study 2 (NCT00000001): duplicate NCT id NCT00000001 (first: trials.json study 1"),
        (
            ctgov_study("NCT9", identificationModule={"nctId": "NCT9", "briefTitle": "\ud800 broken"}),
            "trials.json: study 2: field 'protocolSection.identificationModule.briefTitle' holds a lone surrogate",
        ),
        (
            ctgov_study("NCT9", conditionsModule={"conditions": ["Asthma", "\udc00"]}),
            "trials.json: study 2: field 'protocolSection.conditionsModule.conditions[1]' holds a lone surrogate",
        ),
    ],
)
def test_malformed_ctgov_studies_name_the_study(tmp_path: Path, study: object, message: str) -> None:
    path = tmp_path / "trials.json"
    path.write_text(json.dumps({"studies": [ctgov_study("NCT00000001"), study]}))
    with pytest.raises(DataError) as info:
        read_trials(path, [])
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"studies": 3}', 'expected ClinicalTrials.gov v2 JSON: {"studies": [...]}'),
        ('{"studies": [\n{"protocolSection": }]}', "trials.json:2: invalid JSON"),
        ('{"studies": ' + "[" * 100_000, "trials.json: invalid JSON (nested too deeply)"),
        ('{"studies": [], "total": ' + "9" * 5000 + "}", "trials.json: invalid JSON (Exceeds the limit (4300 digits)"),
        (
            json.dumps({"studies": [ctgov_study("NCT1", start="NaN")]}).replace('"NaN"', "NaN"),
            "trials.json: invalid JSON (NaN is not a JSON number",
        ),
        (
            json.dumps({"studies": [ctgov_study("NCT1")]}).replace('"hasResults"', '"hasResults": 1, "hasResults"'),
            "trials.json: invalid JSON (key 'hasResults' appears twice in one object)",
        ),
    ],
)
def test_malformed_ctgov_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "trials.json"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_trials(path, [])
    assert message in str(info.value)
    assert "\n" not in str(info.value) and info.value.__cause__ is None


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"title": "no id"}, "trials.jsonl:2: missing field 'nct_id'"),
        ({"nct_id": "NCT2", "conditions": "Asthma"}, "trials.jsonl:2: field 'conditions' must be a list of strings"),
        ({"nct_id": "NCT2", "start_date": "2010-13"}, "trials.jsonl:2: field 'start_date': '2010-13' is not a date"),
        ({"nct_id": "NCT1"}, "trials.jsonl:2: duplicate NCT id NCT1 (first: trials.jsonl line 1)"),
        (ctgov_study("NCT3", start="soon"), "trials.jsonl:2: NCT3: field 'protocolSection.statusModule"),
    ],
)
def test_malformed_trials_jsonl_name_file_and_line(tmp_path: Path, record: dict, message: str) -> None:
    path = write_jsonl(tmp_path / "trials.jsonl", [{"nct_id": "NCT1"}, record])
    with pytest.raises(DataError) as info:
        read_trials(path, [])
    assert message in str(info.value)


def test_pubmed_xml_records_are_cleared_as_they_stream(tmp_path: Path) -> None:
    from deepretrieval.data.literature import _top_level

    path = tmp_path / "publications.xml"
    path.write_text(pubmed_xml(*(pubmed_article(str(i), body=LABELLED, mesh=MESH) for i in range(1, 6))))
    with path.open("rb") as stream:
        seen = [(len(element), element) for element in _top_level(path, stream)]
    assert [size for size, _ in seen] == [2] * 5  # MedlineCitation and PubmedData while in use
    assert all(len(element) == 0 for _, element in seen)  # and nothing kept once read


def _pubmed_corpus(xml: str) -> dict[str, str]:
    return {"reviews.jsonl": json.dumps(review([1])) + "\n", "publications.xml": xml}


def _trials_corpus(text: str) -> dict[str, str]:
    reviews = {"pico": PICO, "trial_nctids": ["NCT00000001"]}
    return {"reviews.jsonl": json.dumps(reviews) + "\n", "trials.json": text}


STUDY = ctgov_study("NCT00000001")


@pytest.mark.parametrize(
    ("files", "expect"),
    [
        (
            _pubmed_corpus(pubmed_xml(pubmed_article("1", pub_date="<MedlineDate>0000 Jan</MedlineDate>"))),
            "publications.xml: PubmedArticle 1 (PMID 1): MedlineDate '0000 Jan' is not a date",
        ),
        (
            _pubmed_corpus(pubmed_xml(pubmed_article("١"))),
            "publications.xml: PubmedArticle 1: PMID '١' is not a number",
        ),
        (_trials_corpus('{"studies": ' + "[" * 100_000), "trials.json: invalid JSON (nested too deeply)"),
        (_trials_corpus('{"studies": [], "n": ' + "7" * 5000 + "}"), "trials.json: invalid JSON (Exceeds the limit"),
        (
            _trials_corpus(json.dumps({"studies": [STUDY]}).replace("Metformin for", "\\ud800 for")),
            "trials.json: study 1: field 'protocolSection.identificationModule.briefTitle' holds a lone surrogate",
        ),
    ],
    ids=["medline-year-0", "pmid-arabic-digit", "trials-deep", "trials-huge-int", "trials-surrogate"],
)
def test_cli_info_prints_one_line_and_exits_2(tmp_path: Path, files: dict[str, str], expect: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["info", "--data", str(tmp_path / "reviews.jsonl")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path}/"), result.output
    assert expect in lines[0]
