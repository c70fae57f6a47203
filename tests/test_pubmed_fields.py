"""PubMed's field semantics on the Boolean engine, each case following the PubMed Help section its docstring
cites (https://pubmed.ncbi.nlm.nih.gov/help/). Expected ids are read off the hand-written records below, never
from the engine. Documents are built with the fields of the loader contract (docs/PUBMED-SYNTAX.md)."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import pytest

from deepretrieval.errors import DeepRetrievalError, StaleIndexError
from deepretrieval.search.boolean import (
    FORMAT_VERSION,
    MESH_TREE_MISSING,
    TRIALS,
    BooleanIndex,
    BooleanRequest,
)
from deepretrieval.search.pubmed_syntax import (
    MAX_EXPANSIONS,
    MAX_PROXIMITY,
    Expansions,
    MeshTree,
    QuerySyntaxError,
    parse,
)
from deepretrieval.search.specs import BooleanSpec
from deepretrieval.types import Document, Ranking

D = datetime.date
TREE = Path(__file__).parent / "fixtures" / "mesh-desc-tiny.xml"

RECORDS = [
    Document(
        "rct",
        "Aspirin after myocardial infarction: a randomized trial",
        "Patients with hip pain were randomized.\nAspirin reduced pain. Experiments were repeated.",
        {
            "mesh": ("Aspirin", "Myocardial Infarction", "Humans"),
            "mesh_headings": ("Aspirin/*therapeutic use/adverse effects", "*Myocardial Infarction", "Humans"),
            "publication_types": ("Journal Article", "Randomized Controlled Trial"),
            "keywords": ("secondary prevention", "thromboxane"),
            "authors": ("Smith JA", "van der Berg H"),
            "languages": ("eng",),
            "journal": ("The New England journal of medicine",),
            "journal_abbreviation": ("N Engl J Med",),
            "issn": ("0028-4793",),
            "electronic_date": ("2014-12-20",),
        },
        D(2015, 3, 1),
    ),
    Document(
        "cct",
        "Randomized and controlled: a trial of experience",
        "Pain in the hip was common.\nThe experience of pain matters.",
        {
            "mesh": ("Diabetes Mellitus, Type 2", "Humans"),
            "mesh_headings": ("Diabetes Mellitus, Type 2/drug therapy", "Humans"),
            "publication_types": ("Controlled Clinical Trial",),
            "authors": ("Smithson B", "Smith J"),
            "languages": ("fre",),
            "journal": ("Lancet (London, England)",),
            "journal_abbreviation": ("Lancet",),
            "issn": ("1474-547X", "0140-6736"),
        },
        D(2010, 6, 15),
    ),
    Document(
        "dm",
        "Insulin in diabetes",
        "Insulin therapy for diabetes mellitus in hip fracture.",
        {
            "mesh": ("Diabetes Mellitus", "Insulin"),
            "mesh_headings": ("*Diabetes Mellitus/*drug therapy", "Insulin/therapeutic use"),
            "publication_types": ("Review",),
            "authors": ("Smithers JB",),
            "languages": ("ger", "eng"),
            "abstract_labels": ("BACKGROUND",),
        },
        D(2020, 12, 31),
    ),
    Document(
        "gdm",
        "Gestational diabetes",
        "Pregnancy outcomes.",
        {"mesh": ("Diabetes, Gestational",), "publication_types": ("Journal Article",)},
        D(2021, 1, 1),
    ),
    Document("undated", "Hip pain", "Pain of the hip.", {"mesh": ("Humans",)}, None),
]


@pytest.fixture(scope="module")
def index() -> BooleanIndex:
    return BooleanIndex.build(RECORDS)


@pytest.fixture(scope="module")
def exploding() -> BooleanIndex:
    return BooleanIndex.build(RECORDS, mesh_tree=TREE)


def ids(index: BooleanIndex, query: str, mindate: D | None = None, maxdate: D | None = None) -> set[str]:
    [result] = index.search([BooleanRequest(query, mindate, maxdate)], 100)
    assert isinstance(result, Ranking), (query, result)
    return set(result.ids)


def error(index: BooleanIndex, query: str) -> QuerySyntaxError:
    [result] = index.search([BooleanRequest(query)], 10)
    assert isinstance(result, QuerySyntaxError), (query, result)
    return result


# -- phrases and stemming ---------------------------------------------------------------------------------


def test_a_tag_after_unquoted_words_searches_them_as_a_phrase(index):
    """PubMed Help, 'Search Field Descriptions and Tags' > Publication Type [pt]: "randomized controlled
    trial[pt]" finds the publication type Randomized Controlled Trial; its words scattered over other types
    ("Controlled Clinical Trial") and the title do not make a match."""
    assert ids(index, "randomized controlled trial[pt]") == {"rct"}
    assert ids(index, '"randomized controlled trial"[pt]') == {"rct"}
    # The old reading, written out: rct's "Controlled" is in its type, cct's "Trial" in its type.
    assert ids(index, "randomized AND controlled AND trial[pt]") == {"rct", "cct"}
    assert ids(index, "aspirin AND randomized trial[ti]") == {"rct"}  # "randomized trial"[ti]
    assert ids(index, "aspirin randomized trial[ti]") == set()  # "aspirin randomized trial"[ti]: the whole run


def test_tagged_terms_are_searched_as_written(index):
    """PubMed Help, 'Automatic Term Mapping' (a term tagged with a search field is not mapped) and 'Wildcards
    and truncation' (only '*' widens a term): experiment[tiab] does not find "experiments" or "experience";
    experiment*[tiab] finds "experiments" (not "experience": another word)."""
    assert ids(index, "experiment[tiab]") == set()
    assert ids(index, "experiments[tiab]") == {"rct"}
    assert ids(index, "experiment*[tiab]") == {"rct"}
    assert ids(index, "experience[tiab]") == {"cct"}
    assert ids(index, '"hip pains"[tiab]') == set()  # a tagged phrase too


def test_untagged_terms_are_stemmed_as_the_automatic_term_mapping_stand_in(index):
    """PubMed Help, 'Automatic Term Mapping': an untagged term is mapped to its variants. Here the variants
    are the English Snowball stem's (docs/PUBMED-SYNTAX.md): "experiment" finds "experiments", and
    "experience" (Snowball's "experi"), a known over-reach of the stand-in."""
    assert ids(index, "experiment") == {"rct", "cct"}
    assert ids(index, '"hip pains"') == {"rct", "undated"}
    assert ids(index, "experiment[all]") == set()  # [all] is a tag: as written


def test_typographic_double_quotes_are_quotes(index):
    """PubMed Help, 'Searching for a phrase': a phrase is enclosed in double quotes. The curly ones a word
    processor writes are read as quotes too (our choice: PubMed Help does not say; docs/PUBMED-SYNTAX.md).
    Single quotes are no quotes, as in PubMed."""
    assert ids(index, "\u201chip pain\u201d[tiab]") == ids(index, '"hip pain"[tiab]') == {"rct", "undated"}
    assert ids(index, "\u201crandomized controlled trial\u201d[pt]") == {"rct"}
    assert "unclosed quote" in error(index, "\u201chip pain").message
    assert ids(index, "\u2018hip pain\u2019[tiab]") == ids(index, "hip pain[tiab]")  # single: words


# -- MeSH -----------------------------------------------------------------------------------------------


def test_mesh_terms_match_descriptor_names(index):
    """PubMed Help, 'Search Field Descriptions and Tags' > MeSH Terms [mh]: the descriptor of each heading,
    not its qualifiers."""
    assert ids(index, "aspirin[mh]") == {"rct"}
    assert ids(index, "myocardial infarction[mh]") == {"rct"}
    assert ids(index, "therapeutic use[mh]") == set()  # a qualifier, not a descriptor


def test_heading_slash_subheading_matches_that_qualifier_on_that_heading(index):
    """PubMed Help, 'Search Field Descriptions and Tags' > MeSH Subheadings [sh]: "heading/subheading[mh]"
    combines a heading with a qualifier, both named in full (the qualifier abbreviations are refused)."""
    assert ids(index, "aspirin/therapeutic use[mh]") == {"rct"}
    assert ids(index, '"aspirin/adverse effects"[mh]') == {"rct"}
    assert ids(index, "insulin/therapeutic use[mh]") == {"dm"}
    assert ids(index, "aspirin/drug therapy[mh]") == set()  # a qualifier of another heading
    assert ids(index, "diabetes mellitus/drug therapy[mh]") == {"dm"}  # without a tree, the heading itself
    assert "abbreviations" in error(index, "aspirin/tu[mh]").message


def test_subheadings_match_qualifier_names(index):
    """PubMed Help, 'Search Field Descriptions and Tags' > MeSH Subheadings [sh]."""
    assert ids(index, "drug therapy[sh]") == {"cct", "dm"}
    assert ids(index, "adverse effects[subheading]") == {"rct"}
    assert ids(index, "aspirin[sh]") == set()


def test_major_topics_are_the_starred_headings(index):
    """PubMed Help, 'Search Field Descriptions and Tags' > MeSH Major Topic [majr]: a heading is a major
    topic when it or one of its heading/subheading combinations is starred."""
    assert ids(index, "myocardial infarction[majr]") == {"rct"}  # *Myocardial Infarction
    assert ids(index, "aspirin[majr]") == {"rct"}  # Aspirin/*therapeutic use
    assert ids(index, "humans[majr]") == set()
    assert ids(index, "insulin[mesh major topic]") == set()  # Insulin/therapeutic use: no star
    assert ids(index, "aspirin/therapeutic use[majr]") == {"rct"}
    assert ids(index, "aspirin/adverse effects[majr]") == set()  # neither it nor Aspirin starred
    assert ids(index, "diabetes mellitus/drug therapy[majr]") == {"dm"}


def test_noexp_is_the_heading_named_in_full(index):
    """PubMed Help, 'Search Field Descriptions and Tags' > MeSH Terms [mh]: [mh:noexp] searches the heading
    only, without the more specific headings under it."""
    assert ids(index, "diabetes mellitus[mh:noexp]") == {"dm"}
    assert ids(index, "diabetes mellitus[mh]") == {"cct", "dm"}  # words within a descriptor's name
    assert ids(index, "diabetes[mh:noexp]") == set()
    assert ids(index, "myocardial infarction[majr:noexp]") == {"rct"}


def test_mh_explodes_through_a_mesh_tree_and_says_so_when_it_cannot(index, exploding):
    """PubMed Help, 'Search Field Descriptions and Tags' > MeSH Terms [mh]: a MeSH term includes the more
    specific headings under it in the MeSH tree (explosion); [mh:noexp] turns that off. Under C19.246
    (Diabetes Mellitus) sit Type 1, Type 2 and Gestational; under C19 all of them."""
    assert ids(exploding, "endocrine system diseases[mh]") == {"cct", "dm", "gdm"}
    assert ids(exploding, "diabetes mellitus[mh]") == {"cct", "dm", "gdm"}
    assert ids(exploding, "diabetes mellitus[mh:noexp]") == {"dm"}
    assert ids(exploding, "diabetes mellitus/drug therapy[mh]") == {"cct", "dm"}
    assert ids(exploding, "diabetes mellitus/drug therapy[mh:noexp]") == {"dm"}
    assert ids(exploding, "endocrine system diseases[majr]") == {"dm"}  # *Diabetes Mellitus
    assert ids(index, "endocrine system diseases[mh]") == set()  # no tree: no explosion ...
    # ... and never silently: the searcher says so, for the query and in its description.
    assert index.warnings(BooleanRequest("endocrine system diseases[mh]")) == [MESH_TREE_MISSING]
    assert index.warnings("aspirin[mh:noexp] OR aspirin[tiab]") == []
    assert exploding.warnings("endocrine system diseases[mh]") == []
    assert index.describe()["warnings"] == [MESH_TREE_MISSING] and index.describe()["mesh_tree"] is None
    assert exploding.describe()["mesh_tree"] == str(TREE) and "warnings" not in exploding.describe()


def test_the_mesh_tree_reader_follows_the_descriptor_file(index):
    """NLM's descriptor file: DescriptorRecord/DescriptorName/String and TreeNumberList/TreeNumber; names
    nested deeper (a pharmacological action's DescriptorName) are not descriptors of their own."""
    tree = MeshTree.read(TREE, index._translator.key)
    assert len(tree) == 7
    assert tree.narrower("diabetes mellitus") == [
        "diabetes mellitus",
        "diabetes mellitus type 1",
        "diabetes mellitus type 2",
        "diabetes gestational",
    ]
    assert tree.narrower("hypoglycemic agents") == [] and tree.narrower("insulin") == ["insulin"]


def test_an_unreadable_mesh_tree_is_one_clear_error(tmp_path):
    broken = tmp_path / "desc.xml"
    broken.write_text("<DescriptorRecordSet><DescriptorRecord>")
    with pytest.raises(DeepRetrievalError, match=r"MeSH descriptor file .*desc.xml"):
        BooleanIndex.build(RECORDS[:1], mesh_tree=broken)
    with pytest.raises(DeepRetrievalError, match="MeSH descriptor file"):
        BooleanIndex.build(RECORDS[:1], mesh_tree=tmp_path / "missing.xml")


def test_a_generated_corpus_without_headings_has_descriptors_only():
    """Without ``mesh_headings`` (a generated corpus), "mesh" is all there is: [mh] and [mh:noexp] work,
    [sh] and [majr] match nothing (docs/PUBMED-SYNTAX.md)."""
    plain = BooleanIndex.build([Document("a", "t", "x", {"mesh": ("Heart Failure",)})])
    assert ids(plain, "heart failure[mh]") == ids(plain, "heart failure[mh:noexp]") == {"a"}
    assert ids(plain, "heart failure[majr]") == set()


# -- dates ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("2015[dp]", {"rct"}),  # print 2015-03-01
        ("2014[dp]", {"rct"}),  # electronic 2014-12-20
        ("2014/12[pdat]", {"rct"}),
        ("2014/12/20[publication date]", {"rct"}),
        ("2014/12/21[dp]", set()),
        ("2010/06/15[dp]", {"cct"}),
        ("2010:2020[dp]", {"rct", "cct", "dm"}),  # the end year is all of 2020: dm's 2020-12-31 is in
        ("2010/01/01:2020/06/30[dp]", {"rct", "cct"}),
        ("2020/12:2021[dp]", {"dm", "gdm"}),
        ("2014/12/21:2015/02[dp]", set()),  # between the two dates of rct
        ("2021:2010[dp]", set()),
        ("2010/6/15:2010/6/15[dp]", {"cct"}),
    ],
)
def test_publication_dates_single_and_ranges(index, query, expected):
    """PubMed Help, 'Search Field Descriptions and Tags' > Publication Date [dp] and 'How do I search by
    date?': a year, a year/month or a full date, or a range start:end; a partial date covers its whole
    period; the publication date includes both the electronic and the print date."""
    assert ids(index, query) == expected


def test_the_date_window_also_takes_the_electronic_date(index):
    """PubMed Help, 'Search Field Descriptions and Tags' > Publication Date [dp]: electronic and print dates
    are both publication dates, so a record published electronically before a review's cut-off and in print
    after it is in the window (mindate/maxdate, as esearch's datetype=pdat)."""
    assert ids(index, "aspirin", maxdate=D(2014, 12, 31)) == {"rct"}
    assert ids(index, "aspirin", maxdate=D(2014, 12, 19)) == set()
    assert ids(index, "aspirin", mindate=D(2015, 3, 1)) == {"rct"}
    assert ids(index, "hip", mindate=D(1900, 1, 1)) == {"rct", "cct", "dm"}  # undated left out


# -- keywords, language, author, journal -----------------------------------------------------------------


def test_keywords_feed_tiab_ot_and_untagged(index):
    """PubMed Help, 'Search Field Descriptions and Tags' > Title/Abstract [tiab] (includes author keywords)
    and Other Term [ot]; not the title or the abstract alone."""
    for query in ("thromboxane[tiab]", "thromboxane[ot]", "secondary prevention[other term]", "thromboxane"):
        assert ids(index, query) == {"rct"}, query
    assert ids(index, "thromboxane[ti]") == ids(index, "thromboxane[ab]") == set()


@pytest.mark.parametrize(
    ("query", "expected"),
    [("eng[la]", {"rct", "dm"}), ("english[la]", {"rct", "dm"}), ("French[language]", {"cct"}), ("ger[la]", {"dm"})],
)
def test_language_by_code_or_english_name(index, query, expected):
    """PubMed Help, 'Search Field Descriptions and Tags' > Language [la]: the language code or its name."""
    assert ids(index, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("smith[au]", {"rct", "cct"}),  # every Smith, not Smithson or Smithers
        ("smith j[au]", {"rct", "cct"}),  # initials a prefix: Smith JA and Smith J
        ("smith ja[au]", {"rct"}),
        ("smith jb[au]", set()),
        ('"smith ja"[author]', {"rct"}),
        ("van der berg[au]", {"rct"}),
        ("van der berg h[au]", {"rct"}),
        ("smithson[au]", {"cct"}),
        ("smith*[au]", {"rct", "cct", "dm"}),
    ],
)
def test_author_names_match_initials_as_a_prefix(index, query, expected):
    """PubMed Help, 'Search Field Descriptions and Tags' > Author [au] and 'How do I search by author?':
    "last name and initials"; initials are optional and PubMed truncates on them (smith j[au] finds Smith
    JA); truncation widens the name."""
    assert ids(index, query) == expected


@pytest.mark.parametrize(
    "query", ["n engl j med[ta]", "N Engl J Med[journal]", "the new england journal of medicine[ta]", "0028-4793[ta]"]
)
def test_journal_by_abbreviation_full_title_or_issn(index, query):
    """PubMed Help, 'Search Field Descriptions and Tags' > Journal [ta]: the title abbreviation, the full
    title or the ISSN, each whole."""
    assert ids(index, query) == {"rct"}
    assert ids(index, "lancet[ta]") == ids(index, "1474-547X[ta]") == {"cct"}
    assert ids(index, "engl[ta]") == set()


# -- proximity and sections -----------------------------------------------------------------------------


def test_tantivys_phrase_slop_counts_words_between_in_order_and_a_swap_costs_two(index):
    """The premise of the proximity translation, checked on tantivy itself: slop N lets N words stand
    between the words in their written order; the reverse order costs 2 more, hence one query per order."""
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("t")
    schema = builder.build()
    engine = tantivy.Index(schema)
    writer = engine.writer(15_000_000, 1)
    for text in ("hip pain", "pain hip", "hip x pain", "pain x hip", "hip x y pain"):
        writer.add_document(tantivy.Document(t=text))
    writer.commit()
    engine.reload()
    searcher = engine.searcher()

    def found(slop: int) -> list[int]:
        query = tantivy.Query.phrase_query(schema, "t", ["hip", "pain"], slop)
        return sorted(a.doc for _, a in searcher.search(query, 10).hits)

    assert found(0) == [0] and found(1) == [0, 2] and found(2) == [0, 1, 2, 4] and found(3) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"hip pain"[tiab:~0]', {"rct", "undated"}),
        ('"pain hip"[tiab:~0]', {"rct", "undated"}),  # any order
        ('"pain hip"[tiab:~2]', {"rct", "cct", "undated"}),  # "Pain in the hip", "Pain of the hip"
        ('"pain hip"[tiab:~1]', {"rct", "undated"}),
        ('"hip fracture insulin"[tiab:~5]', {"dm"}),  # "Insulin therapy for diabetes mellitus in hip fracture"
        ('"insulin diabetes fracture"[tiab:~3]', {"dm"}),  # 2 words between the first two, 3 the next
        ('"insulin diabetes fracture"[tiab:~2]', set()),
        ('"trial experience"[ti:~1]', {"cct"}),  # "a trial of experience"
        ('"trial experience"[ti:~0]', set()),
        ('"randomized trial"[title:~0]', {"rct"}),
    ],
)
def test_proximity_is_at_most_n_words_between_in_any_order(index, query, expected):
    """PubMed Help, 'Proximity searching': "search terms"[field:~N] finds the terms with at most N words
    between them (between each two, for more than two terms), in any order, in [tiab], [ti] (and here [ab],
    which PubMed does not offer)."""
    assert ids(index, query) == expected


def test_phrases_and_proximity_stay_inside_one_abstract_section(index):
    """PubMed Help, 'Searching for a phrase' / 'Proximity searching': the terms are found within the text
    of one field; an abstract's sections (one per line of Document.text, labels never indexed) are kept
    apart, so "randomized aspirin" (the end of one section, the start of the next) is no phrase, and no
    proximity up to the largest N spans them (``[tiab:~N]``: PubMed offers no ``[ab:~N]``). The words are
    both there."""
    assert ids(index, "randomized[ab] AND aspirin[ab]") == {"rct"}
    assert ids(index, '"randomized aspirin"[ab]') == set()
    assert ids(index, f'"hip reduced"[tiab:~{MAX_PROXIMITY}]') == set()  # one in each section, not in the title
    assert ids(index, f'"randomized aspirin"[tiab:~{MAX_PROXIMITY}]') == {"rct"}  # the title holds both
    assert ids(index, f'"were randomized aspirin reduced"[tiab:~{MAX_PROXIMITY}]') == set()  # slop 3 x 30
    assert ids(index, '"common experience"[tiab:~5]') == set()  # cct: "...was common." / "The experience..."
    assert ids(index, "background") == set()  # dm's section label
    assert ids(index, '"hip pain"[tiab:~3] AND "reduced pain"[ab]') == {"rct"}


def test_proximity_and_dates_are_bounded(index):
    """Malformed or enormous uses end as format errors, quickly: N, the words of a proximity search and its
    orders are capped; a date range is one range query whatever its span."""
    assert "at most ~" in error(index, f'"a b"[tiab:~{MAX_PROXIMITY + 1}]').message
    assert "at most 4 words" in error(index, '"covid-19 long haul syndrome"[tiab:~3]').message  # 5 once split
    assert "no letter or digit" in error(index, "2010 : 2012[dp]").message  # write 2010:2012[dp]
    assert "two or more words" in error(index, "pain[tiab:~3]").message
    # PubMed Help, 'Proximity searching': [ti], [tiab] (and [ad]) only; an [ab:~N] habit would not transfer.
    assert error(index, '"hip pain"[ab:~2]').message.startswith("unknown field tag [ab:~2]")
    many = " OR ".join(f'"hip pain{i} knee{i} back"[tiab:~{MAX_PROXIMITY}]' for i in range(60))
    started = time.perf_counter()
    assert ids(index, many) == set() and ids(index, "0001:9999[dp]") == {"rct", "cct", "dm", "gdm"}
    assert time.perf_counter() - started < 5


def test_explosion_spends_the_expansion_budget(exploding):
    """Each exploded heading counts as one expansion, every occurrence again (as truncation's words do), so
    a query of many broad explosions ends as a format error, never an unbounded search."""
    assert MAX_EXPANSIONS >= 16_384
    query = parse(" OR ".join(["endocrine system diseases[mh]"] * 3))  # C19 and the 4 headings under it
    exploding._translator.translate(query, Expansions(lambda *_: 0, cap=15))
    with pytest.raises(QuerySyntaxError, match="more than 14 index words"):
        exploding._translator.translate(query, Expansions(lambda *_: 0, cap=14))


# -- the index ------------------------------------------------------------------------------------------


def test_an_index_of_the_previous_format_is_stale_and_a_cached_one_is_rebuilt(tmp_path, monkeypatch):
    """The schema changed (format 2): an older folder is refused as stale, never searched with the new
    semantics; the literature task's cache rebuilds it."""
    from deepretrieval.search import folders
    from deepretrieval.tasks.literature import boolean_backend
    from deepretrieval.types import Collection

    assert FORMAT_VERSION == 2
    folder = BooleanIndex.build(RECORDS).save(tmp_path / "index")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format": 1}))
    with pytest.raises(StaleIndexError, match="format 1"):
        BooleanIndex.load(folder)
    collection = Collection("t", RECORDS, [], {})
    with pytest.raises(StaleIndexError, match="format 1"):  # a folder the recipe names: refused
        boolean_backend(collection, BooleanSpec(), folder)
    monkeypatch.setattr(folders, "index_cache_dir", lambda: tmp_path / "cache")
    cached = boolean_backend(collection, BooleanSpec(), None)
    cache = next((tmp_path / "cache").iterdir())
    (cache / "manifest.json").write_text(json.dumps({**json.loads((cache / "manifest.json").read_text()), "format": 1}))
    rebuilt = boolean_backend(collection, BooleanSpec(mesh_tree=str(TREE)), None)
    assert json.loads((cache / "manifest.json").read_text())["format"] == FORMAT_VERSION
    assert ids(rebuilt, "endocrine system diseases[mh]") == {"cct", "dm", "gdm"} != ids(cached, "x[mh]")


def test_a_bad_electronic_date_names_the_document():
    bad = Document("x", "t", "a", {"electronic_date": ("2015-02-30",)})
    with pytest.raises(DeepRetrievalError, match=r"document 'x' cannot be indexed: its electronic_date '2015-02-30'"):
        BooleanIndex.build([bad])


def test_the_trials_schema_keeps_its_tags():
    trials = [Document("NCT1", "Asthma", "Budesonide for adults\nOpen", {"conditions": ("Asthma",)}, D(2020, 1, 1))]
    index = BooleanIndex.build(trials, TRIALS)
    assert ids(index, "asthma[cond]") == ids(index, '"budesonide adults"[tiab:~2]') == {"NCT1"}
    assert ids(index, '"adults open"[tiab:~2]') == set()
    assert "not indexed in this corpus" in error(index, "asthma[mh]").message
    assert "not indexed in this corpus" in error(index, "smith[au]").message
