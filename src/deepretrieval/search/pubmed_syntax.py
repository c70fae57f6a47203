"""PubMed query syntax: a parser into a small AST, and a translator of that AST into tantivy query objects.

Syntax (what PubMed accepts, minus what a local corpus cannot answer; the table of what transfers is
``docs/PUBMED-SYNTAX.md``):

- ``AND``, ``OR``, ``NOT`` — upper case only, as in PubMed; ``and`` / ``or`` / ``not`` are ordinary words.
- **Left-to-right**: no operator precedence, as PubMed. ``a OR b AND c`` = ``(a OR b) AND c`` and
  ``a NOT b OR c`` = ``(a NOT b) OR c``. Parentheses group. Adjacent terms are joined by an implicit ``AND``.
- ``"quoted phrases"`` (typographic double quotes too); a word that the analyser splits (``covid-19``) is
  searched as a phrase too.
- Field tags after a word or phrase (case-insensitive, blanks ignored): ``[tiab]`` / ``[title/abstract]``,
  ``[ti]`` / ``[title]``, ``[ab]`` / ``[abstract]``, ``[mh]`` / ``[mesh]`` / ``[mesh terms]``,
  ``[mh:noexp]``, ``[majr]`` / ``[mesh major topic]`` (and ``:noexp``), ``[sh]`` / ``[subheading]``,
  ``[pt]`` / ``[publication type]``, ``[ot]`` / ``[other term]``, ``[au]`` / ``[author]``, ``[la]`` /
  ``[language]``, ``[ta]`` / ``[journal]``, ``[dp]`` / ``[pdat]`` / ``[publication date]``, ``[all]`` /
  ``[all fields]`` / ``[tw]``; for trials ``[cond]`` / ``[condition]`` and ``[intr]`` / ``[intervention]``.
- **A tag binds the unquoted words before it as a phrase**, as PubMed: ``randomized controlled trial[pt]`` is
  ``"randomized controlled trial"[pt]``. The run goes back to the previous operator, parenthesis, quoted
  phrase, tagged word or truncated word. A tag after ``)``, an operator or another tag is an error.
- ``heading/qualifier`` in ``[mh]`` / ``[majr]`` (``aspirin/therapeutic use[mh]``): the qualifier named in
  full; abbreviations (``aspirin/tu[mh]``) and two qualifiers are errors.
- ``[dp]`` takes ``YYYY``, ``YYYY/MM``, ``YYYY/MM/DD`` or ``start:end`` of those (see :func:`date_range`).
- Proximity ``"hip pain"[tiab:~N]`` (also ``[ti:~N]``; ``[ab:~N]`` is refused: PubMed does not offer it):
  the words in any order with at most N words between them; N at most :data:`MAX_PROXIMITY`, at most
  :data:`MAX_PROXIMITY_WORDS` words, no truncation.
- **Unknown tags are an error** (``QuerySyntaxError`` naming the known ones), never a silent ``[all]``:
  ``smith[1au]`` searched as text would return unrelated records, and PubMed's "tag ignored" warning has no
  place in a ranking. A known tag the index lacks (``[mh]`` on trials) is an error from the translator.
- Truncation ``diabet*``: the words beginning with the prefix, on the unstemmed words. At most one ``*``,
  at the end of a word (of the last word in a phrase). **PubMed requires at least 4 characters before
  ``*``; so do we, as an error** rather than PubMed's silent fallback: a 1-3 letter prefix expands to a
  large share of the vocabulary and is almost never what the writer meant.
- A word or phrase with no letter or digit (``-``, ``&``, a lone ``:``) is an error: nothing to search for.

Meaning (the :class:`Translator`): an untagged word or phrase is Snowball-stemmed (the stand-in for PubMed's
automatic term mapping); a tagged one is searched as written, lower-cased (PubMed maps no tagged term), and
only truncation widens it. ``[au]``, ``[la]``, ``[ta]``, ``[mh:noexp]`` and ``heading/qualifier`` compare
whole values; ``[mh]`` / ``[majr]`` match words within a heading and explode through a :class:`MeshTree`
when one is given.

Every string gives either a query or a :class:`QuerySyntaxError` with a 0-based character position: the
query is capped at :data:`MAX_QUERY_CHARS` characters, control characters and lone surrogates are refused,
and nesting (parentheses, or alternating operators, which PubMed's left-to-right rule nests) is capped at
:data:`MAX_DEPTH` levels so that no recursion here or in tantivy can overflow.

Translation adds one limit that depends on the index, not the text alone: **a query's truncations may stand
for at most** :data:`MAX_EXPANSIONS` **index words in all** (each truncation counts the words it expands to in
every field it searches, a truncated phrase counts its other words too, a repeated truncation counts each
time: tantivy expands each occurrence, and each heading a MeSH explosion adds counts one). A query over it is
a :class:`QuerySyntaxError`, the writer's fault like any other: 444 ORed copies of a broad truncation would
otherwise take seconds, and a truncated phrase past tantivy's own limit would fail the whole batch it is
searched in.
"""

from __future__ import annotations

import bisect
import calendar
import dataclasses
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import DeepRetrievalError

MAX_QUERY_CHARS = 4_000
MAX_DEPTH = 64
MIN_TRUNCATION = 4  # characters before '*', as PubMed
# Index words all of a query's truncations may expand to, summed over fields and occurrences. tantivy refuses a
# truncated phrase that expands past 16,384 words (its default max_expansions) with an error of the whole search;
# a query-wide cap at that same value makes that error impossible, and bounds the work of one query (at most
# about 30 ms on a generated 100k-record index, where 444 ORed copies of one truncation took 15 s). MeSH
# explosion spends from the same budget: one unit per narrower heading.
MAX_EXPANSIONS = 16_384
# Proximity "a b"[tiab:~N]: N at most MAX_PROXIMITY, at most MAX_PROXIMITY_WORDS words (every order is
# searched: 4! = 24 phrase queries); the index keeps abstract sections further apart than N x (words - 1).
MAX_PROXIMITY = 30
MAX_PROXIMITY_WORDS = 4
OPERATORS = frozenset({"AND", "OR", "NOT"})

# Written forms (lower case, single spaces) -> canonical tag.
TAGS: Mapping[str, str] = {
    "tiab": "tiab",
    "title/abstract": "tiab",
    "ti": "ti",
    "title": "ti",
    "ab": "ab",
    "abstract": "ab",
    "mh": "mh",
    "mesh": "mh",
    "mesh terms": "mh",
    "mh:noexp": "mh:noexp",
    "mesh:noexp": "mh:noexp",
    "mesh terms:noexp": "mh:noexp",
    "majr": "majr",
    "mesh major topic": "majr",
    "majr:noexp": "majr:noexp",
    "mesh major topic:noexp": "majr:noexp",
    "sh": "sh",
    "subheading": "sh",
    "mesh subheading": "sh",
    "pt": "pt",
    "publication type": "pt",
    "ot": "ot",
    "other term": "ot",
    "au": "au",
    "author": "au",
    "la": "la",
    "language": "la",
    "ta": "ta",
    "journal": "ta",
    "dp": "dp",
    "pdat": "dp",
    "publication date": "dp",
    "all": "all",
    "all fields": "all",
    "tw": "all",
    "text word": "all",
    "cond": "cond",
    "condition": "cond",
    "conditions": "cond",
    "intr": "intr",
    "intervention": "intr",
    "interventions": "intr",
}
PROXIMITY_TAGS = frozenset({"tiab", "ti"})  # the tags ":~N" may follow: PubMed offers no [ab:~N]
MESH_TAGS = frozenset({"mh", "mh:noexp", "majr", "majr:noexp"})  # "heading/qualifier" is a pair in these
# Typographic double quotes are quotes (PubMed reads them so); single quotes are not quotes in PubMed at all.
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"'})
_PROXIMITY = re.compile(r"(.+?)\s*:\s*~\s*(\d+)")
_DATE = re.compile(r"(\d{4})(?:[/-](\d{1,2})(?:[/-](\d{1,2}))?)?")
_SPECIAL = '()"[]'
_REGEX_META = frozenset("\\.+*?()|[]{}^$")


class QuerySyntaxError(DeepRetrievalError):
    """A query the engine cannot run, with the 0-based character ``position`` of the problem.

    The model's fault, not the infrastructure's: batched search returns it in the query's slot.
    """

    def __init__(self, message: str, position: int) -> None:
        self.message = message
        self.position = position
        super().__init__(f"{message} (at character {position})")

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable with both arguments (multiprocessing, caches).
        return (type(self), (self.message, self.position))


# -- the AST ----------------------------------------------------------------------------------------------
# Positions are for error messages only and take no part in equality: `a AND b` parses equal to `a  AND b`.


@dataclass(frozen=True)
class Term:
    """One written word (``*`` removed when ``truncated``); ``field`` is a canonical tag or None (untagged)."""

    text: str
    field: str | None = None
    truncated: bool = False
    position: int = dataclasses.field(default=0, compare=False)
    depth: ClassVar[int] = 0


@dataclass(frozen=True)
class Phrase:
    """A phrase as written words (quoted, or a run of words a tag binds); ``truncated``: the last word is a
    prefix (``"heart attack*"``); ``proximity``: N of ``[tiab:~N]`` (the words in any order, at most N words
    between them), None for a phrase."""

    words: tuple[str, ...]
    field: str | None = None
    truncated: bool = False
    position: int = dataclasses.field(default=0, compare=False)
    proximity: int | None = None
    depth: ClassVar[int] = 0


@dataclass(frozen=True)
class _Compound:
    nodes: tuple[Node, ...]
    depth: int = dataclasses.field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Stored so the parser can cap nesting in O(1) per operator, without recursing.
        object.__setattr__(self, "depth", 1 + max(n.depth for n in self.nodes))


@dataclass(frozen=True)
class And(_Compound):
    """Every node matches."""


@dataclass(frozen=True)
class Or(_Compound):
    """At least one node matches."""


@dataclass(frozen=True)
class Not(_Compound):
    """The first node matches and none of the others does (``a NOT b NOT c``)."""


Node = Term | Phrase | And | Or | Not


# -- parsing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "(", ")", "op" or "operand"
    position: int
    op: str = ""
    node: Term | Phrase | None = None


@dataclass
class _Group:
    """One level of parentheses being read: the left-folded result so far and a pending operator."""

    opened_at: int
    left: Node | None = None
    op: str | None = None
    op_at: int = 0


def parse(query: str) -> Node:
    """Parse PubMed syntax into an AST, or raise :class:`QuerySyntaxError` (and nothing else)."""
    if not isinstance(query, str):
        raise QuerySyntaxError(f"a query is text, not {type(query).__name__}", 0)
    if len(query) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(
            f"query too long: {len(query):,} characters (at most {MAX_QUERY_CHARS:,})", MAX_QUERY_CHARS
        )
    _refuse_control_characters(query)
    return _fold(_lex(query.translate(_QUOTES)))


def render(node: Node) -> str:
    """PubMed text for an AST; ``parse(render(node)) == node``. Compound children are parenthesised."""
    if isinstance(node, Term):
        return node.text + ("*" if node.truncated else "") + _tag_text(node.field)
    if isinstance(node, Phrase):
        near = "" if node.proximity is None else f":~{node.proximity}"
        return '"' + " ".join(node.words) + ("*" if node.truncated else "") + '"' + _tag_text(node.field, near)
    op = {And: " AND ", Or: " OR ", Not: " NOT "}[type(node)]
    return op.join(render(n) if isinstance(n, (Term, Phrase)) else f"({render(n)})" for n in node.nodes)


def _tag_text(field: str | None, near: str = "") -> str:
    return f"[{field}{near}]" if field else ""


def _refuse_control_characters(query: str) -> None:
    for i, ch in enumerate(query):
        if ch in "\t\n\r":
            continue
        category = unicodedata.category(ch)
        if category == "Cc":
            raise QuerySyntaxError(f"control character U+{ord(ch):04X} is not allowed in a query", i)
        if category == "Cs":
            # A lone surrogate cannot be encoded as UTF-8, which the engine needs.
            raise QuerySyntaxError(f"invalid character U+{ord(ch):04X} (a lone surrogate)", i)


def _lex(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(query):
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(_Token(ch, i))
            i += 1
        elif ch == '"':
            i = _lex_phrase(query, i, tokens)
        elif ch == "[":
            i = _lex_tag(query, i, tokens)
        elif ch == "]":
            raise QuerySyntaxError("']' without '['", i)
        else:
            i = _lex_word(query, i, tokens)
    return tokens


def _lex_word(query: str, start: int, tokens: list[_Token]) -> int:
    end = start
    while end < len(query) and not query[end].isspace() and query[end] not in _SPECIAL:
        end += 1
    word = query[start:end]
    if word in OPERATORS:
        tokens.append(_Token("op", start, op=word))
    else:
        text, truncated = _truncation(word, start)
        if not any(ch.isalnum() for ch in text):
            raise QuerySyntaxError(f"nothing to search in {word!r}: it has no letter or digit", start)
        tokens.append(_Token("operand", start, node=Term(text, None, truncated, start)))
    return end


def _lex_phrase(query: str, start: int, tokens: list[_Token]) -> int:
    end = query.find('"', start + 1)
    if end == -1:
        raise QuerySyntaxError('unclosed quote: a phrase needs a closing "', start)
    words: list[str] = []
    truncated = False
    offset = start + 1
    pieces = query[start + 1 : end].split()
    if not pieces:
        raise QuerySyntaxError("empty phrase", start)
    for n, piece in enumerate(pieces):
        offset = query.index(piece, offset)
        if n < len(pieces) - 1 and "*" in piece:
            star = offset + piece.index("*")
            raise QuerySyntaxError("'*' (truncation) is allowed only at the end of a phrase's last word", star)
        text, truncated = _truncation(piece, offset)
        words.append(text)
        offset += len(piece)
    if not any(ch.isalnum() for word in words for ch in word):
        raise QuerySyntaxError("nothing to search in this phrase: it has no letter or digit", start)
    tokens.append(_Token("operand", start, node=Phrase(tuple(words), None, truncated, start)))
    return end + 1


def _truncation(word: str, start: int) -> tuple[str, bool]:
    """The word without its trailing '*' and whether it had one; refuses any other use of '*'."""
    star = word.find("*")
    if star == -1:
        return word, False
    if star != len(word) - 1:
        raise QuerySyntaxError("'*' (truncation) is allowed only once, at the end of a word", start + star)
    stem = word[:-1]
    run = 0  # the letters and digits right before '*': the prefix the engine will expand
    for ch in reversed(stem):
        if not ch.isalnum():
            break
        run += 1
    if run < MIN_TRUNCATION:
        raise QuerySyntaxError(
            f"truncation needs at least {MIN_TRUNCATION} letters or digits before '*' (as in PubMed)", start + star
        )
    return stem, True


def _lex_tag(query: str, start: int, tokens: list[_Token]) -> int:
    end = query.find("]", start + 1)
    if end == -1:
        raise QuerySyntaxError("unclosed field tag: '[' needs a closing ']'", start)
    tag, proximity = _read_tag(query[start + 1 : end], start)
    previous = tokens[-1] if tokens else None
    if previous is None or previous.node is None:
        raise QuerySyntaxError("a field tag must follow a word or a quoted phrase", start)
    if previous.node.field is not None:
        raise QuerySyntaxError("a word or phrase takes one field tag", start)
    run = _unquoted_run(tokens)
    del tokens[len(tokens) - len(run) :]
    first = run[0]
    if len(run) == 1:
        node: Term | Phrase = dataclasses.replace(first.node, field=tag)
    else:
        # PubMed: a tag after several unquoted words searches them as a phrase in that field.
        words = tuple(t.node.text for t in run)  # type: ignore[union-attr]
        node = Phrase(words, tag, run[-1].node.truncated, first.position)  # type: ignore[union-attr]
    node = _checked(node, proximity, start)
    tokens.append(_Token("operand", first.position, node=node))
    return end + 1


def _read_tag(written: str, start: int) -> tuple[str, int | None]:
    """The canonical tag of a written one, and the N of a proximity tag (``tiab:~3``)."""
    name = " ".join(written.lower().split())
    proximity = None
    near = _PROXIMITY.fullmatch(name)
    if near and TAGS.get(near.group(1)) in PROXIMITY_TAGS:
        name, proximity = near.group(1), int(near.group(2))
        if proximity > MAX_PROXIMITY:
            raise QuerySyntaxError(f"proximity [{written.strip()}]: at most ~{MAX_PROXIMITY} words apart", start)
    tag = TAGS.get(name)
    if tag is None:
        known = ", ".join(f"[{t}]" for t in sorted(set(TAGS.values())))
        raise QuerySyntaxError(
            f"unknown field tag [{written.strip()}] (known: {known}; proximity: [tiab:~N], [ti:~N])", start
        )
    return tag, proximity


def _unquoted_run(tokens: list[_Token]) -> list[_Token]:
    """The tokens a tag binds: the last operand, and before it the unquoted, untagged words back to the
    previous operator, parenthesis, quoted phrase, tagged term or truncated word."""
    run = [tokens[-1]]
    if not isinstance(tokens[-1].node, Term):
        return run
    for token in reversed(tokens[:-1]):
        node = token.node
        if not isinstance(node, Term) or node.field is not None or node.truncated:
            break
        run.insert(0, token)
    return run


def _checked(node: Term | Phrase, proximity: int | None, start: int) -> Term | Phrase:
    """A tagged node, refused if its tag cannot apply to it (dates, MeSH pairs, proximity)."""
    text = node.text if isinstance(node, Term) else " ".join(node.words)
    if node.field == "dp":
        if node.truncated:
            raise QuerySyntaxError("a publication date [dp] takes no truncation '*'", start)
        date_range(text, node.position)
    if node.field in MESH_TAGS and "/" in text:
        mesh_pair(text, node.position)
    if proximity is not None:
        if not isinstance(node, Phrase) or len(node.words) < 2:
            raise QuerySyntaxError("proximity [tiab:~N] needs a phrase of two or more words", start)
        if node.truncated:
            raise QuerySyntaxError("proximity [tiab:~N] takes no truncation '*'", start)
        if len(node.words) > MAX_PROXIMITY_WORDS:
            raise QuerySyntaxError(f"proximity [tiab:~N] takes at most {MAX_PROXIMITY_WORDS} words", start)
        node = dataclasses.replace(node, proximity=proximity)
    return node


def date_range(text: str, position: int = 0) -> tuple[int, int]:
    """A ``[dp]`` value as an inclusive ``yyyymmdd`` range: ``2015`` (the whole year), ``2015/03`` (the
    month), ``2015/03/07`` (the day), or ``start:end`` with each side one of those (an end-side partial date
    runs to the end of its period). ``-`` may separate the parts too. Raises :class:`QuerySyntaxError`."""
    compact = "".join(text.split())
    sides = compact.split(":")
    if len(sides) > 2 or not all(sides):
        raise QuerySyntaxError(f"publication date {text!r}: write YYYY, YYYY/MM, YYYY/MM/DD or start:end", position)
    low = _date_bounds(sides[0], text, position)[0]
    high = _date_bounds(sides[-1], text, position)[1]
    return low, high


def _date_bounds(side: str, text: str, position: int) -> tuple[int, int]:
    match = _DATE.fullmatch(side)
    if match is None:
        raise QuerySyntaxError(f"publication date {text!r}: write YYYY, YYYY/MM, YYYY/MM/DD or start:end", position)
    year = int(match.group(1))
    month = int(match.group(2)) if match.group(2) else None
    day = int(match.group(3)) if match.group(3) else None
    if year < 1 or (month is not None and not 1 <= month <= 12):
        raise QuerySyntaxError(f"publication date {text!r}: no such month", position)
    if month is None:
        return year * 10_000 + 101, year * 10_000 + 1231
    last = calendar.monthrange(year, month)[1]
    if day is None:
        return year * 10_000 + month * 100 + 1, year * 10_000 + month * 100 + last
    if not 1 <= day <= last:
        raise QuerySyntaxError(f"publication date {text!r}: no such day", position)
    return (year * 10_000 + month * 100 + day,) * 2


def mesh_pair(text: str, position: int = 0) -> tuple[str, str]:
    """``heading/qualifier`` of a MeSH tag, split; refuses two qualifiers and qualifier abbreviations."""
    heading, _, qualifier = text.partition("/")
    if "/" in qualifier:
        raise QuerySyntaxError(f"{text!r}: one qualifier per heading (heading/qualifier[mh])", position)
    if not any(ch.isalnum() for ch in heading):
        raise QuerySyntaxError(f"{text!r}: a heading is needed before '/'", position)
    if sum(ch.isalnum() for ch in qualifier) <= 2:
        raise QuerySyntaxError(
            f"{text!r}: qualifier abbreviations are not supported; write the qualifier's name "
            "(aspirin/therapeutic use[mh])",
            position,
        )
    return heading, qualifier


def _fold(tokens: Sequence[_Token]) -> Node:
    """PubMed's left-to-right evaluation with an explicit stack (deep parentheses never recurse)."""
    stack = [_Group(opened_at=0)]
    for token in tokens:
        group = stack[-1]
        if token.kind == "(":
            stack.append(_Group(opened_at=token.position))
        elif token.kind == ")":
            if len(stack) == 1:
                raise QuerySyntaxError("')' without '('", token.position)
            inner = stack.pop()
            _feed(stack[-1], _close(inner, "empty parentheses"), token.position)
        elif token.kind == "op":
            if group.left is None:
                raise QuerySyntaxError(f"{token.op} needs a term before it", token.position)
            if group.op is not None:
                raise QuerySyntaxError(f"{token.op} follows {group.op} with no term between them", token.position)
            group.op, group.op_at = token.op, token.position
        else:
            assert token.node is not None
            _feed(group, token.node, token.position)
    if len(stack) > 1:
        raise QuerySyntaxError("'(' is never closed", stack[-1].opened_at)
    return _close(stack[0], "empty query")


def _close(group: _Group, empty: str) -> Node:
    if group.op is not None:
        raise QuerySyntaxError(f"{group.op} needs a term after it", group.op_at)
    if group.left is None:
        raise QuerySyntaxError(empty, group.opened_at)
    return group.left


def _feed(group: _Group, node: Node, position: int) -> None:
    if group.left is None:
        group.left = node
        return
    combined = _combine(group.op or "AND", group.left, node)
    if combined.depth > MAX_DEPTH:
        raise QuerySyntaxError(f"query nested too deeply (more than {MAX_DEPTH} levels)", position)
    group.left, group.op = combined, None


def _combine(op: str, left: Node, right: Node) -> Node:
    # AND and OR are associative, so same-operator chains flatten into one node; NOT flattens on the left only.
    if op == "AND":
        return And(_members(left, And) + _members(right, And))
    if op == "OR":
        return Or(_members(left, Or) + _members(right, Or))
    return Not(_members(left, Not) + (right,))


def _members(node: Node, kind: type) -> tuple[Node, ...]:
    return node.nodes if isinstance(node, kind) else (node,)  # type: ignore[union-attr]


# -- translation into tantivy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetField:
    """The tantivy fields behind one indexed text source: ``stemmed`` for untagged words and phrases (the
    index's analysis, Snowball-stemmed or not), ``plain`` for tagged words and phrases and for truncation
    (lower-cased, never stemmed: PubMed searches a tagged term as written)."""

    stemmed: str
    plain: str


@dataclass(frozen=True)
class Fields:
    """What a :class:`Translator` may search, by canonical tag.

    ``text``: a text tag (``"all"`` included: untagged words use it) -> its sources. ``keys``: a tag whose
    values are matched whole (``au``, ``la``, ``ta``, and ``mh`` / ``majr`` for full headings and
    ``heading/qualifier`` pairs) -> its untokenised field, whose values are :meth:`Translator.key` forms.
    ``near``: a proximity tag -> the plain fields its phrases search (abstract sections kept apart).
    ``dates``: the integer ``yyyymmdd`` fields ``[dp]`` searches (print and electronic date).
    """

    text: Mapping[str, Sequence[TargetField]]
    keys: Mapping[str, str] = dataclasses.field(default_factory=dict)
    near: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)
    dates: Sequence[str] = ()

    def tags(self) -> list[str]:
        tags = set(self.text) | set(self.keys) | ({"dp"} if self.dates else set())
        tags |= {f"{t}:noexp" for t in ("mh", "majr") if t in self.keys and t in self.text}
        return sorted(tags)


class MeshTree:
    """MeSH descriptors and their tree numbers, for exploding ``[mh]`` / ``[majr]`` to narrower headings.

    Read from NLM's descriptor file (``descYYYY.xml``: ``DescriptorRecord`` / ``DescriptorName`` / ``String``
    and ``TreeNumberList`` / ``TreeNumber``) with a streaming reader; names are kept in their key form
    (``normalize``: the index's plain analysis, words joined by single spaces).
    """

    def __init__(self, trees: Mapping[str, Sequence[str]], source: str = "") -> None:
        self.source = source
        self._numbers = {name: tuple(numbers) for name, numbers in trees.items()}
        self._by_number = sorted((number, name) for name, numbers in trees.items() for number in numbers)
        self._keys = [number for number, _ in self._by_number]

    @classmethod
    def read(cls, path: str | Path, normalize: Callable[[str], str]) -> MeshTree:
        """The descriptors of ``path``; an unreadable file is a :class:`DeepRetrievalError` naming it."""
        import xml.etree.ElementTree as ET

        trees: dict[str, list[str]] = {}
        try:
            for _, element in ET.iterparse(str(path), events=("end",)):
                if element.tag != "DescriptorRecord":
                    continue
                name = element.findtext("DescriptorName/String")
                if name:
                    numbers = [n.text.strip() for n in element.iterfind("TreeNumberList/TreeNumber") if n.text]
                    trees.setdefault(normalize(name), []).extend(numbers)
                element.clear()
        except (OSError, ET.ParseError) as e:
            raise DeepRetrievalError(f"MeSH descriptor file {path}: {e}") from None
        if not trees:
            raise DeepRetrievalError(f"MeSH descriptor file {path}: no DescriptorRecord with a DescriptorName")
        return cls(trees, str(path))

    def __len__(self) -> int:
        return len(self._numbers)

    def narrower(self, name: str) -> list[str]:
        """The descriptors under ``name`` (a key form) in any of its trees, ``name`` first; [] if unknown."""
        if name not in self._numbers:
            return []
        found = dict.fromkeys([name])
        for number in self._numbers[name]:
            at = bisect.bisect_left(self._keys, number + ".")
            while at < len(self._keys) and self._keys[at].startswith(number + "."):
                found[self._by_number[at][1]] = None
                at += 1
        return list(found)


class Expansions:
    """The index words one query's truncations stand for, counted as it is translated and capped at ``cap``.

    ``terms(field, prefix, limit)`` is the number of distinct words of ``field`` that begin with ``prefix``,
    counted up to ``limit`` (the index's term dictionary: tantivy's ``Searcher.terms_with_prefix``).
    """

    def __init__(self, terms: Callable[[str, str, int], int], cap: int = MAX_EXPANSIONS) -> None:
        self.terms, self.cap = terms, cap
        self.used = 0
        # Looked up once per (field, prefix); every occurrence still counts, as tantivy expands each.
        self._seen: dict[tuple[str, str], int] = {}

    def spend(self, field: str, prefix: str, fixed: int, position: int) -> None:
        """Add a truncation of ``prefix`` in ``field`` (with ``fixed`` other phrase words); raise
        :class:`QuerySyntaxError` once the query's total passes the cap."""
        key = (field, prefix)
        if key not in self._seen:
            self._seen[key] = self.terms(field, prefix, self.cap + 1)
        self.add(fixed + self._seen[key], position)

    def add(self, count: int, position: int) -> None:
        """Add ``count`` expanded terms (a MeSH explosion's headings); raise past the cap."""
        self.used += count
        if self.used > self.cap:
            raise QuerySyntaxError(
                f"truncation expands too far: this query's truncations stand for more than {self.cap:,} index "
                "words in all (every field searched, every occurrence counted, and every heading a MeSH "
                "explosion adds); lengthen the prefixes, tag the fields, or truncate fewer words",
                position,
            )


class Translator:
    """AST -> tantivy query objects; tantivy evaluates all Boolean logic.

    ``fields`` (:class:`Fields`) says what each tag searches. An untagged word or phrase searches the
    ``stemmed`` copy of every ``"all"`` source (the stand-in for PubMed's automatic term mapping); a tagged
    one the ``plain`` copies of its tag's sources, as written (lower-cased); truncation always the plain
    copies. ``stemmed`` and ``plain`` are the very analysers the index registered, so a query word is
    analysed exactly as the documents were. A word the analyser splits (``covid-19``) becomes a phrase; one
    it drops entirely (tokens of 40 bytes or more, tantivy's limit) matches nothing, as in the documents.

    Whole-value tags (``au``, ``la``, ``ta``, ``mh:noexp``, ``heading/qualifier[mh]``) compare the key form
    (:meth:`key`) with an untokenised field. ``[dp]`` is a range on each date field, ORed. ``[mh]`` /
    ``[majr]`` explode through ``tree`` (a :class:`MeshTree`) when one is given.

    tantivy objects used: ``boolean_query`` with ``Occur.Must`` (AND), ``Should`` (OR), ``Must`` + ``MustNot``
    (NOT); ``term_query`` and ``phrase_query`` (with token positions; with ``slop`` for proximity, one per
    order of the words) on the text fields; for truncation ``fuzzy_term_query(distance=0, prefix=True)``
    (tantivy's prefix automaton) on a word and ``regex_phrase_query`` on a phrase whose last word is
    truncated; ``term_query``, ``term_set_query`` (explosion) and ``regex_query`` (authors) on key fields;
    ``range_query`` on dates.
    """

    def __init__(self, schema: Any, fields: Fields, stemmed: Any, plain: Any, tree: MeshTree | None = None) -> None:
        self.schema = schema
        self.fields = fields
        self.stemmed = stemmed
        self.plain = plain
        self.tree = tree
        self.tags = fields.tags()

    def key(self, text: str) -> str:
        """The key form of a value (:func:`key_form` with the index's plain analyser)."""
        return key_form(self.plain, text)

    def translate(self, node: Node, expansions: Expansions | None = None) -> Any:
        """A tantivy ``Query``; raises :class:`QuerySyntaxError` for a tag this index lacks, and for
        truncations past ``expansions``' cap (None: truncations are not counted)."""
        import tantivy

        if isinstance(node, (Term, Phrase)):
            return self._leaf(node, expansions)
        children = [self.translate(n, expansions) for n in node.nodes]
        if isinstance(node, And):
            clauses = [(tantivy.Occur.Must, q) for q in children]
        elif isinstance(node, Or):
            clauses = [(tantivy.Occur.Should, q) for q in children]
        else:
            clauses = [(tantivy.Occur.Must, children[0])] + [(tantivy.Occur.MustNot, q) for q in children[1:]]
        return tantivy.Query.boolean_query(clauses)

    def _leaf(self, node: Term | Phrase, expansions: Expansions | None) -> Any:
        text = node.text if isinstance(node, Term) else " ".join(node.words)
        tag, position = node.field or "all", node.position
        if tag not in self.tags:
            known = ", ".join(f"[{t}]" for t in self.tags)
            raise QuerySyntaxError(f"field tag [{tag}] is not indexed in this corpus (its tags: {known})", position)
        if tag == "dp":
            return self._dates(text, position)
        base = tag.split(":")[0]
        if tag in MESH_TAGS and "/" in text:
            return self._keyed(base, text, node.truncated, position, expansions, explode=":" not in tag)
        if tag.endswith(":noexp") or tag in ("au", "la", "ta"):
            return self._keyed(base, text, node.truncated, position, expansions, explode=False)
        if isinstance(node, Phrase) and node.proximity is not None:
            return self._near(tag, node.words, node.proximity, position)
        words = self._text(tag, text, node.truncated, node.field is None, position, expansions)
        if tag in ("mh", "majr") and not node.truncated and self.tree is not None:
            exploded = self._exploded(base, self.key(text), "", position, expansions)
            if exploded is not None:
                return _any([words, exploded])
        return words

    # -- text fields ---------------------------------------------------------------------------------
    def _text(
        self, tag: str, text: str, truncated: bool, untagged: bool, position: int, expansions: Expansions | None
    ) -> Any:
        import tantivy

        targets = self.fields.text[tag]
        analyzer = self.stemmed if untagged and not truncated else self.plain
        tokens = [(t.position, t.text) for t in analyzer.pre_tokenize(text).tokens]
        if not tokens:
            return tantivy.Query.empty_query()
        if truncated and len(tokens[-1][1]) < MIN_TRUNCATION:
            raise QuerySyntaxError(
                f"truncation needs at least {MIN_TRUNCATION} letters or digits before '*' (as in PubMed)", position
            )
        # Offsets relative to the first token keep the gaps of dropped tokens, as in the documents' positions.
        first = tokens[0][0]
        tokens = [(p - first, t) for p, t in tokens]
        if truncated and expansions is not None:
            # tantivy counts a truncated phrase's other words among its expansions: so do we.
            for target in targets:
                expansions.spend(target.plain, tokens[-1][1], len(tokens) - 1, position)
        names = [t.stemmed if analyzer is self.stemmed else t.plain for t in targets]
        return _any([self._field_query(name, tokens, truncated) for name in names])

    def _field_query(self, field: str, tokens: list[tuple[int, str]], truncated: bool) -> Any:
        from tantivy import Query

        # tantivy panics on a one-word phrase, so a single token is a term (or prefix) query.
        if len(tokens) == 1:
            word = tokens[0][1]
            if truncated:
                # tantivy's prefix automaton (a Levenshtein automaton at distance 0): the same terms and constant
                # score as the regex `word.*`, about 8x faster on a 100k-record index.
                return Query.fuzzy_term_query(self.schema, field, word, distance=0, prefix=True)
            return Query.term_query(self.schema, field, word)
        if truncated:
            words = [(p, _regex_literal(w)) for p, w in tokens[:-1]]
            last_position, last = tokens[-1]
            return Query.regex_phrase_query(self.schema, field, [*words, (last_position, _regex_literal(last) + ".*")])
        return Query.phrase_query(self.schema, field, tokens)

    def _near(self, tag: str, words: Sequence[str], distance: int, position: int) -> Any:
        """The words in any order with at most ``distance`` words between each two (PubMed Help, 'Proximity
        searching'). tantivy's phrase slop is the words between them in all, in the written order (a swap
        costs 2): so every order is searched with slop ``distance`` x (words - 1), which holds every
        arrangement PubMed finds, and for three or four words also some with one gap wider than
        ``distance`` whose total is within it."""
        import itertools

        from tantivy import Query

        tokens = [t for w in words for t in self.plain.analyze(w)]
        if not tokens:
            return Query.empty_query()
        if len(tokens) > MAX_PROXIMITY_WORDS:
            raise QuerySyntaxError(f"proximity [tiab:~N] takes at most {MAX_PROXIMITY_WORDS} words", position)
        fields = self.fields.near[tag]
        if len(tokens) == 1:
            return _any([Query.term_query(self.schema, f, tokens[0]) for f in fields])
        slop = distance * (len(tokens) - 1)
        orders = dict.fromkeys(itertools.permutations(tokens))
        return _any([Query.phrase_query(self.schema, f, list(order), slop) for f in fields for order in orders])

    # -- whole values ---------------------------------------------------------------------------------
    def _keyed(
        self, base: str, text: str, truncated: bool, position: int, expansions: Expansions | None, explode: bool
    ) -> Any:
        from tantivy import Query

        field = self.fields.keys[base]
        heading, _, qualifier = text.partition("/")
        key = self.key(text)
        if not key.replace("/", "").strip():
            return Query.empty_query()
        if truncated:
            if len(key.split("/")[-1].split(" ")[-1]) < MIN_TRUNCATION:
                raise QuerySyntaxError(
                    f"truncation needs at least {MIN_TRUNCATION} letters or digits before '*' (as in PubMed)", position
                )
            if expansions is not None:
                expansions.spend(field, key, 0, position)
            return Query.fuzzy_term_query(self.schema, field, key, distance=0, prefix=True)
        if base == "au":
            # PubMed: "smith[au]" is every Smith; "smith j[au]" every Smith whose initials begin with J.
            words = key.split(" ")
            initials = len(words) > 1 and len(words[-1]) <= 3
            return Query.regex_query(self.schema, field, _regex_literal(key) + ("[^ ]*" if initials else "( .*)?"))
        if explode and self.tree is not None:
            suffix = "/" + self.key(qualifier) if "/" in text else ""
            exploded = self._exploded(base, self.key(heading), suffix, position, expansions)
            if exploded is not None:
                return exploded
        return Query.term_query(self.schema, field, key)

    def _exploded(
        self, base: str, heading: str, suffix: str, position: int, expansions: Expansions | None
    ) -> Any | None:
        """Every heading under ``heading`` in the MeSH tree (with ``suffix``, a ``/qualifier``), or None when
        the tree does not know ``heading``."""
        from tantivy import Query

        assert self.tree is not None
        headings = self.tree.narrower(heading)
        if not headings:
            return None
        if expansions is not None:
            expansions.add(len(headings), position)
        return Query.term_set_query(self.schema, self.fields.keys[base], [h + suffix for h in headings])

    def _dates(self, text: str, position: int) -> Any:
        from tantivy import FieldType, Query

        low, high = date_range(text, position)
        if low > high:
            return Query.empty_query()
        ranges = [Query.range_query(self.schema, f, FieldType.Integer, low, high) for f in self.fields.dates]
        return Query.const_score_query(_any(ranges), 1.0)  # 1 whether one date or both are in range


def key_form(plain: Any, text: str) -> str:
    """How a whole value (an author, a journal, a heading, ``heading/qualifier``) is indexed and looked up:
    its words as the plain analyser gives them (lower-cased, split on anything not a letter or digit),
    joined by single spaces, each side of a ``/`` apart. "Smith JA" -> "smith ja"; "0028-4793" -> "0028 4793"."""
    return "/".join(" ".join(plain.analyze(part)) for part in text.split("/"))


def _any(queries: Sequence[Any]) -> Any:
    from tantivy import Occur, Query

    if len(queries) == 1:
        return queries[0]
    return Query.boolean_query([(Occur.Should, q) for q in queries])


def _regex_literal(word: str) -> str:
    # Analysed tokens hold only letters, digits (and in key forms spaces and '/'); escaping is a guard.
    return "".join("\\" + ch if ch in _REGEX_META else ch for ch in word)
