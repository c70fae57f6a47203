"""The PubMed emulator's E-utilities beyond a plain esearch (E-utilities Help, NCBI Bookshelf NBK25499):
esearch ``field``, ``reldate``, ``rettype=count``, ``sort``, the history server (``usehistory``, ``WebEnv``,
``query_key``), ``ErrorList`` / ``WarningList``, ``efetch`` and ``esummary``; and the ClinicalTrials.gov
emulator's query syntax (``AREA[...]``). Expected values are hand-checked on a six-record corpus, or
Biopython's reading of the replies.

Every server here is uvicorn on 127.0.0.1 (a free port), started and stopped by the test."""

from __future__ import annotations

import datetime
import io
import json
import xml.etree.ElementTree as ET

import httpx
import pytest
from Bio import Entrez

from deepretrieval.search.boolean import PUBLICATIONS, TRIALS, BooleanIndex
from deepretrieval.serve import Emulator, Faults, create_app, ctgov_term, serve_in_thread, tag_every_term
from deepretrieval.types import Document

TODAY = datetime.date(2024, 6, 30)


def publication(pmid, title, text, date, **fields) -> Document:
    return Document(pmid, title, text, {k: tuple(v) for k, v in fields.items()}, date)


DOCS = [
    publication("101", "Aspirin for stroke prevention", "We studied adults.", datetime.date(2024, 6, 20),
                mesh=["Aspirin"], authors=["Brown A"], journal_abbreviation=["BMJ"], languages=["eng"]),
    publication("102", "Statins after stroke", "Aspirin was the comparator.", datetime.date(2023, 1, 10),
                authors=["Adams B", "Zed Z"], journal_abbreviation=["Lancet"], journal=["The Lancet"]),
    publication("103", "Aspirin and bleeding", "Bleeding was rare.", datetime.date(2024, 5, 15),
                authors=["Clark C"], journal=["Annals of Internal Medicine"]),
    publication("104", "Exercise for knee pain", "Walking helped.", datetime.date(2024, 6, 20)),
    publication("105", "Aspirin in the elderly", "Older adults.", None),
    publication("106", "Knee pain in runners", "Aspirin was not used.", datetime.date(2020, 3, 1)),
]  # fmt: skip
ASPIRIN = {"101", "102", "103", "105", "106"}  # the word anywhere (title, abstract or MeSH)
ASPIRIN_TITLE = {"101", "103", "105"}


@pytest.fixture(scope="module")
def emulator() -> Emulator:
    return Emulator("pubmed", BooleanIndex.build(DOCS, PUBLICATIONS), documents=DOCS, clock=lambda: TODAY)


@pytest.fixture(scope="module")
def server(emulator):
    with serve_in_thread(create_app(emulator)) as running:
        yield running


def esearch(emulator: Emulator, **params) -> dict:
    reply = emulator.esearch({k: [str(v)] for k, v in {"db": "pubmed", "retmode": "json", **params}.items()})
    assert reply.status == 200, reply.body
    return json.loads(reply.body)["esearchresult"]


def found(emulator: Emulator, **params) -> set[str]:
    return set(esearch(emulator, retmax=100, **params)["idlist"])


def biopython(xml: str) -> dict:
    return Entrez.read(io.BytesIO(xml.encode()))  # validating against the DTD the reply names


# -- esearch -----------------------------------------------------------------------------------------------


def test_field_searches_every_term_in_that_field(emulator):
    """E-utilities Help, ESearch > ``field``: "the entire search term will be limited to the specified Entrez
    field" (``term=asthma&field=title`` is ``asthma[title]``); einfo's short names (``TITL``) work too."""
    assert found(emulator, term="aspirin") == ASPIRIN
    for field in ("title", "ti", "TITL"):
        assert found(emulator, term="aspirin", field=field) == ASPIRIN_TITLE
    assert found(emulator, term="aspirin OR knee", field="title") == ASPIRIN_TITLE | {"104", "106"}
    assert found(emulator, term="aspirin AND knee[tiab]", field="title") == set()  # knee is in no [ti] with aspirin
    assert found(emulator, term="aspirin[ab]", field="title") == {"102", "106"}  # a tagged term keeps its tag


def test_field_tags_words_phrases_and_groups_but_not_what_a_tag_binds():
    assert tag_every_term('a AND (b OR "c d") NOT e[au]', "ti") == 'a[ti] AND (b[ti] OR "c d"[ti]) NOT e[au]'
    assert tag_every_term("randomized controlled trial[pt] OR x", "ti") == "randomized controlled trial[pt] OR x[ti]"


def test_an_unknown_field_is_field_not_found(emulator):
    """E-utilities answers a field it does not know with ``ErrorList/FieldNotFound``; the emulator's engine
    cannot search past it, so nothing is found (PubMed would search the term without the tag)."""
    for params in ({"term": "aspirin[zz]"}, {"term": "aspirin", "field": "zz"}):
        result = esearch(emulator, **params)
        assert (result["count"], result["idlist"]) == ("0", [])
        assert result["errorlist"] == {"phrasesnotfound": [], "fieldsnotfound": ["zz"]}
        assert result["warninglist"]["outputmessages"] == ["No items found."]
    xml = emulator.esearch({"db": ["pubmed"], "term": ["aspirin[zz]"]}).body
    record = biopython(xml)
    assert record["ErrorList"]["FieldNotFound"] == ["zz"] and record["Count"] == "0"


def test_reldate_keeps_the_last_n_days_of_an_injected_clock(emulator):
    """E-utilities Help, ESearch > ``reldate``: items whose ``datetype`` date is within the last n days
    (today 2024-06-30 here)."""
    assert found(emulator, term="aspirin", reldate=30) == {"101"}  # 2024-06-20; 103 is 2024-05-15
    assert found(emulator, term="aspirin", reldate=60, datetype="pdat") == {"101", "103"}
    assert found(emulator, term="aspirin", reldate=60, mindate="2024/06/01", maxdate="2024/12/31") == {"101"}
    assert esearch(emulator, term="aspirin", reldate=60, datetype="edat")["ERROR"].startswith("Invalid datetype")


def test_rettype_count_answers_the_count_alone(emulator):
    """E-utilities Help, ESearch > ``rettype``: ``count`` gives only the Count."""
    assert esearch(emulator, term="aspirin", rettype="count") == {"count": "5"}
    record = biopython(emulator.esearch({"db": ["pubmed"], "term": ["aspirin"], "rettype": ["count"]}).body)
    assert record == {"Count": "5"}


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("pub_date", ["101", "103", "102", "106", "105"]),  # newest print date first; undated last
        ("pub+date", ["101", "103", "102", "106", "105"]),
        ("Author", ["102", "101", "103", "105", "106"]),  # first author A-Z: Adams, Brown, Clark; none last
        ("JournalName", ["103", "101", "102", "105", "106"]),  # Annals…, BMJ, Lancet; none last
        ("first_author", ["102", "101", "103", "105", "106"]),
        ("last_author", ["101", "103", "102", "105", "106"]),  # Brown, Clark, Zed
        ("title", ["103", "101", "105", "106", "102"]),  # Aspirin and…, Aspirin for…, Aspirin in…, Knee…, Statins…
    ],
)
def test_sort_orders_the_whole_result_before_paging(emulator, sort, expected):
    """E-utilities Help, ESearch > ``sort`` for PubMed: ``pub_date`` (descending publication date),
    ``Author`` (ascending first author), ``JournalName`` (ascending journal), and the older values
    ``first_author``, ``last_author``, ``title``; ties keep relevance order."""
    relevance = esearch(emulator, term="aspirin", retmax=100)["idlist"]
    ordered = esearch(emulator, term="aspirin", retmax=100, sort=sort)["idlist"]
    ties = [i for i in relevance if i in ("105", "106")]  # no author and no journal: tied, by relevance
    if sort not in ("pub_date", "pub+date", "title"):
        expected = expected[:3] + ties
    assert ordered == expected
    assert esearch(emulator, term="aspirin", retmax=2, retstart=1, sort=sort)["idlist"] == expected[1:3]


def test_an_unknown_sort_is_refused_clearly(emulator):
    assert esearch(emulator, term="aspirin", sort="most_cited")["ERROR"].startswith("Invalid sort: 'most_cited'")


def test_a_search_without_hits_sends_pubmeds_error_and_warning_lists(emulator):
    """E-utilities Help, ESearch output: ``ErrorList`` (PhraseNotFound) and ``WarningList``
    (QuotedPhraseNotFound, OutputMessage "No items found.")."""
    result = esearch(emulator, term='zzqq AND "knee aspirin" AND aspirin')
    assert result["errorlist"] == {"phrasesnotfound": ["zzqq"], "fieldsnotfound": []}
    assert result["warninglist"] == {
        "phrasesignored": [],
        "quotedphrasesnotfound": ['"knee aspirin"'],
        "outputmessages": ["No items found."],
    }
    none_missing = esearch(emulator, term="knee AND stroke")  # each word exists; together nothing
    assert "errorlist" not in none_missing and none_missing["warninglist"]["outputmessages"] == ["No items found."]
    assert "errorlist" not in esearch(emulator, term="aspirin") and "warninglist" not in esearch(emulator, term="knee")
    record = biopython(emulator.esearch({"db": ["pubmed"], "term": ['zzqq AND "knee aspirin"']}).body)
    assert record["ErrorList"]["PhraseNotFound"] == ["zzqq"]
    assert record["WarningList"]["QuotedPhraseNotFound"] == ['"knee aspirin"']
    assert record["WarningList"]["OutputMessage"] == ["No items found."]


def test_an_unexploded_mesh_search_says_so_in_the_warning_list(emulator):
    """docs/PUBMED-SYNTAX.md: without a MeSH tree ``[mh]`` is not exploded, and that is never silent — the
    reply's WarningList carries the engine's note (E-utilities Help, ESearch output: ``OutputMessage``), with
    hits or without; ``[mh:noexp]`` and untagged searches carry none."""
    from deepretrieval.search.boolean import MESH_TREE_MISSING

    hit = esearch(emulator, term="aspirin[mh]")
    assert hit["idlist"] == ["101"] and hit["warninglist"]["outputmessages"] == [MESH_TREE_MISSING]
    miss = esearch(emulator, term="zzqq[mh]")
    assert miss["warninglist"]["outputmessages"] == [MESH_TREE_MISSING, "No items found."]
    counted = esearch(emulator, term="aspirin[mh]", rettype="count")
    assert counted["count"] == "1" and counted["warninglist"]["outputmessages"] == [MESH_TREE_MISSING]
    assert "warninglist" not in esearch(emulator, term="aspirin[mh:noexp]")
    assert "warninglist" not in esearch(emulator, term="aspirin")
    record = biopython(emulator.esearch({"db": ["pubmed"], "term": ["aspirin[mh]"]}).body)
    assert record["WarningList"]["OutputMessage"] == [MESH_TREE_MISSING]


def test_with_a_mesh_tree_the_emulator_explodes_mesh_and_sends_no_note(tmp_path):
    """docs/PUBMED-SYNTAX.md, ``[mh]`` explosion: with NLM's descriptor file (here the tiny hand-made one in
    tests/fixtures) ``endocrine system diseases[mh]`` also finds a record indexed under a heading below it
    (Diabetes Mellitus, Type 2: C19 > C19.246 > C19.246.300), and the reply carries no unexploded note."""
    from pathlib import Path

    tree = Path(__file__).parent / "fixtures" / "mesh-desc-tiny.xml"
    docs = [
        publication("201", "Metformin", "Glucose fell.", datetime.date(2020, 1, 1), mesh=["Diabetes Mellitus, Type 2"]),
        publication("202", "Knee pain", "Walking.", datetime.date(2020, 1, 1), mesh=["Osteoarthritis, Knee"]),
    ]
    index = BooleanIndex.build(docs, PUBLICATIONS, mesh_tree=tree)
    exploding = Emulator("pubmed", index, documents=docs, clock=lambda: TODAY)
    result = esearch(exploding, term="endocrine system diseases[mh]")
    assert result["idlist"] == ["201"] and "warninglist" not in result
    assert esearch(exploding, term="endocrine system diseases[mh:noexp]")["count"] == "0"


# -- the history server ------------------------------------------------------------------------------------


def test_usehistory_stores_the_result_for_later_requests(emulator):
    """E-utilities Help, ESearch > ``usehistory``, ``WebEnv``, ``query_key``: the reply carries WebEnv and
    QueryKey; a later esearch with ``query_key`` ANDs its term with the stored set; efetch and esummary
    read the stored set."""
    first = esearch(emulator, term="aspirin", usehistory="y", sort="pub_date", retmax=1)
    assert first["querykey"] == "1" and first["webenv"].startswith("MCID_") and first["idlist"] == ["101"]
    second = esearch(emulator, term="knee", usehistory="y", WebEnv=first["webenv"])
    assert (second["webenv"], second["querykey"]) == (first["webenv"], "2")
    both = esearch(emulator, term="pain", WebEnv=first["webenv"], query_key=1, retmax=100)
    assert both["idlist"] == ["106"] and both["count"] == "1"  # aspirin AND pain
    stored = esearch(emulator, WebEnv=first["webenv"], query_key=1, retmax=100)
    assert stored["idlist"] == ["101", "103", "102", "106", "105"] and stored["count"] == "5"
    params = {"db": ["pubmed"], "WebEnv": [first["webenv"]], "query_key": ["1"], "retstart": ["1"], "retmax": ["2"]}
    fetched = biopython(emulator.efetch(params).body)["PubmedArticle"]
    assert [a["MedlineCitation"]["PMID"] for a in fetched] == ["103", "102"]
    summaries = biopython(emulator.esummary(params).body)
    assert [s["Id"] for s in summaries] == ["103", "102"]


def test_a_missing_or_evicted_webenv_is_an_error_and_the_store_is_bounded():
    small = Emulator("pubmed", BooleanIndex.build(DOCS, PUBLICATIONS), documents=DOCS, history_size=2)
    webenvs = [esearch(small, term=t, usehistory="y")["webenv"] for t in ("aspirin", "knee", "stroke")]
    assert esearch(small, WebEnv=webenvs[0], query_key=1)["ERROR"] == "Unable to obtain query #1"  # evicted
    assert esearch(small, WebEnv=webenvs[2], query_key=1)["count"] == "2"
    assert esearch(small, WebEnv="MCID_nonsense", query_key=1)["ERROR"] == "Unable to obtain query #1"
    reply = small.efetch({"db": ["pubmed"], "WebEnv": ["MCID_nonsense"], "query_key": ["1"]})
    assert ET.fromstring(reply.body).findtext("ERROR") == "Unable to obtain query #1"
    assert small.esearch({"db": ["pubmed"], "query_key": ["x"], "WebEnv": ["a"]}).status == 400


# -- efetch and esummary -----------------------------------------------------------------------------------


def test_efetch_sends_pubmed_xml_of_the_ids_and_skips_unknown_ones(server):
    url = f"{server.url}/entrez/eutils/efetch.fcgi"
    for reply in (
        httpx.get(url, params={"db": "pubmed", "id": "103,999,101", "retmode": "xml"}),
        httpx.post(url, data={"db": "pubmed", "id": ["103", "999", "101"]}),
    ):
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/xml")
        articles = biopython(reply.text)["PubmedArticle"]
        assert [(a["MedlineCitation"]["PMID"], a["MedlineCitation"]["Article"]["ArticleTitle"]) for a in articles] == [
            ("103", "Aspirin and bleeding"),
            ("101", "Aspirin for stroke prevention"),
        ]
    refused = httpx.get(url, params={"db": "pubmed", "id": "101", "rettype": "medline", "retmode": "text"})
    assert refused.status_code == 200 and "PubMed XML only" in ET.fromstring(refused.content).findtext("ERROR")
    empty = httpx.get(url, params={"db": "pubmed"})
    assert ET.fromstring(empty.content).findtext("ERROR") == "Empty id list - nothing todo"


def test_esummary_answers_version_1_xml_and_json(server):
    url = f"{server.url}/entrez/eutils/esummary.fcgi"
    xml = httpx.get(url, params={"db": "pubmed", "id": "102,101"})
    first, second = biopython(xml.text)
    assert (first["Id"], first["Title"], first["PubDate"], first["Source"]) == (
        "102",
        "Statins after stroke",
        "2023 Jan 10",
        "Lancet",
    )
    assert list(first["AuthorList"]) == ["Adams B", "Zed Z"] and first["LastAuthor"] == "Zed Z"
    assert first["FullJournalName"] == "The Lancet" and first["HasAbstract"] == 1
    assert list(second["LangList"]) == ["English"] and second["EPubDate"] == ""
    body = httpx.post(url, data={"db": "pubmed", "id": "101,999", "retmode": "json"}).json()
    assert body["result"]["uids"] == ["101", "999"]
    assert body["result"]["101"]["title"] == "Aspirin for stroke prevention"
    assert body["result"]["101"]["authors"] == [{"name": "Brown A", "authtype": "Author", "clusterid": ""}]
    assert body["result"]["999"] == {"uid": "999", "error": "cannot get document summary"}
    with pytest.raises(RuntimeError, match="UID=999"):  # Biopython raises on an ERROR element
        biopython(httpx.get(url, params={"db": "pubmed", "id": "999"}).text)


def test_efetch_and_esummary_are_logged_and_meet_faults(emulator):
    faulty = Emulator("pubmed", emulator.index, documents=DOCS, faults=Faults(1.0, ("503",), retry_after=0.0))
    with serve_in_thread(create_app(faulty)) as running:
        for path in ("efetch", "esummary"):
            reply = httpx.get(f"{running.url}/entrez/eutils/{path}.fcgi", params={"db": "pubmed", "id": "101"})
            assert reply.status_code == 503
    assert [(r.path, r.fault, r.params["id"]) for r in faulty.log.records()] == [
        ("/entrez/eutils/efetch.fcgi", "503", ["101"]),
        ("/entrez/eutils/esummary.fcgi", "503", ["101"]),
    ]


# -- ClinicalTrials.gov query syntax -----------------------------------------------------------------------

TRIAL_DOCS = [
    Document("NCT00000001", "Aspirin after heart attack", "aspirin", {"conditions": ("Heart Attack",),
             "interventions": ("Aspirin",)}, datetime.date(2010, 1, 1)),
    Document("NCT00000002", "Statins for stroke", "heart attack and statins", {"conditions": ("Stroke",),
             "interventions": ("Atorvastatin",)}, datetime.date(2015, 1, 1)),
    Document("NCT00000003", "Heart attack registry", "no drug", {"conditions": ("Myocardial Infarction",),
             "interventions": ("Aspirin", "Statin")}, datetime.date(2020, 1, 1)),
]  # fmt: skip


@pytest.fixture(scope="module")
def trials():
    with serve_in_thread(create_app(Emulator("ctgov", BooleanIndex.build(TRIAL_DOCS, TRIALS)))) as running:
        yield f"{running.url}/api/v2/studies"


def nct(url: str, term: str, **params) -> set[str]:
    reply = httpx.get(url, params={"query.term": term, "pageSize": 100, **params})
    assert reply.status_code == 200, reply.text
    return {s["protocolSection"]["identificationModule"]["nctId"][-1] for s in reply.json()["studies"]}


def test_ctgov_area_operators_search_their_field(trials):
    """ClinicalTrials.gov search areas: AREA[Condition] (conditions), AREA[InterventionName] (interventions),
    AREA[BriefTitle] / AREA[OfficialTitle] (the title); a quoted phrase, a word or a parenthesised group."""
    assert nct(trials, '"heart attack"') == {"1", "2", "3"}
    assert nct(trials, 'AREA[Condition]"heart attack"') == {"1"}
    assert nct(trials, "AREA[InterventionName]aspirin") == {"1", "3"}
    assert nct(trials, "AREA[InterventionName](statin OR atorvastatin)") == {"2", "3"}
    assert nct(trials, "AREA[BriefTitle]statins OR AREA[OfficialTitle]registry") == {"2", "3"}
    assert nct(trials, "AREA[InterventionName]aspirin NOT AREA[Condition]heart") == {"3"}
    assert nct(
        trials, "AREA[InterventionName]aspirin", **{"filter.advanced": "AREA[StartDate]RANGE[2015-01-01,MAX]"}
    ) == {"3"}
    assert ctgov_term("AREA[Condition](a OR AREA[BriefTitle]b)") == "(a[cond] OR b[ti])"


@pytest.mark.parametrize(
    ("term", "said"),
    [
        ("AREA[Phase]PHASE3", "AREA[Phase] is not searchable"),
        ("AREA[StartDate]RANGE[2010-01-01,MAX]", "RANGE[...] is not supported in query.term"),
        ("aspirin AND AREA[Condition]", "AREA[Condition] needs a term after it"),
        ("(aspirin", "Invalid query.term"),
    ],
)
def test_ctgov_syntax_the_emulator_cannot_run_is_a_400_naming_query_term(trials, term, said):
    reply = httpx.get(trials, params={"query.term": term})
    assert (
        reply.status_code == 400
        and reply.text.startswith(("query.term: ", "Invalid query.term"))
        and said in reply.text
    )


def test_hostile_values_are_answered_in_bounded_time(emulator, trials):
    """A reldate past the calendar, AREA groups nested past Python's recursion limit and a long query
    without hits are answered (an ERROR, a 400 or a result), never a 500."""
    assert found(emulator, term="aspirin", reldate="999999999") == {"101", "102", "103", "106"}  # dated ones
    assert nct(trials, "AREA[Condition](" * 200 + "heart" + ")" * 200) == {"1"}  # within 4,000 characters
    deep = httpx.get(trials, params={"query.term": "AREA[Condition](" * 1200 + "heart" + ")" * 1200})
    assert deep.status_code == 400 and "query.term" in deep.text  # past them: the engine refuses its length
    many = " AND ".join(f"zz{i}q" for i in range(300))
    result = esearch(emulator, term=many)
    assert result["count"] == "0" and len(result["errorlist"]["phrasesnotfound"]) == 20
