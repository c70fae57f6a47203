"""The text-to-SQL family: DeepRetrieval's Spider / BIRD task. From a question and its database's schema the
policy writes one SQLite SELECT; it runs in a read-only sandbox (``search.sqlite_sandbox``: refused, stopped
or capped by SQLite itself) on the example's own database; the reward is execution match against the gold
query's rows (``execution_match``), with DeepRetrieval's presets as data.

Answers are DeepRetrieval's ``<answer>{"sql": "…"}</answer>``; a plain ``<answer>SELECT …</answer>`` is read
too. The direct variant pre-fills ``<answer>{"sql": "`` and stops at the first token opening a closing tag
(``prompts.ANSWER_FORMS["sql"]``: SQL may hold escaped double quotes). The prompt shows the database's own
CREATE statements, ``context_docs`` sample rows of each table when set (the SQL family shows no retrieved
context, so the field counts rows here), and BIRD's ``evidence`` when the example has one.

Scoring (a preset's ``comparison``: ``multiset``, the Spider test-suite rule, or ``set``, BIRD's): a match
earns ``match_reward``; SQL that runs but differs ``differs_reward`` (BIRD's partial credit); SQL that does not
run — a syntax or runtime error, a refusal, a timeout, too many rows — ``fails_reward``: a timeout or a refusal
is never an empty result, so it never matches an empty gold result. Out of format: ``format_penalty``.
Evaluation measures, per query then averaged: ``exec_acc`` (multiset), ``exec_acc_set`` (set), ``valid_sql``
(ran to its end) and ``timeout_rate``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataError
from ..execution_match import execution_match
from ..parsing import TAG, Parsed
from ..prompts import PromptSettings, answer_format
from ..rewards import RewardConfig, RewardResult
from ..search.specs import SQLiteSpec, register
from ..types import Collection, Example, PolicyOutput, Ranking
from .base import Action, Outcome, Proposal, Task

if TYPE_CHECKING:
    from ..search.sqlite_sandbox import QueryResult, SQLiteSandbox

MAX_SQL_CHARS = 4000


@dataclass(frozen=True)
class SQLRewardConfig(RewardConfig):
    """A reward on execution match: totals per outcome (DeepRetrieval's are totals, format term included)."""

    metric: str = "exec"
    k: int = 1
    comparison: str = "multiset"  # multiset (Spider test-suite) | set (BIRD)
    match_reward: float = 1.0
    differs_reward: float = 0.0  # runs, but its rows differ from the gold's
    fails_reward: float = 0.0  # does not run: error, refusal, timeout, too many rows
    format_penalty: float = -2.0
    empty_penalty: float = -2.0


PRESETS: dict[str, SQLRewardConfig] = {
    # DeepRetrieval's Spider reward, totals 1.1 / 0 / -2 (format +0.1 with a match, -2 out of format), on the
    # Spider test-suite comparison: the original compared sets, ignoring ORDER BY and duplicates.
    "deepretrieval-spider": SQLRewardConfig(match_reward=1.1),
    # DeepRetrieval's BIRD reward, totals 1.1 / 0.4 / 0 / -2: partial credit for SQL that runs but differs;
    # BIRD's own comparison (sets of rows).
    "deepretrieval-bird": SQLRewardConfig(comparison="set", match_reward=1.1, differs_reward=0.4),
    # 1 for a match, 0 otherwise, an out-of-format completion executed as it stands (small models on a CPU);
    # an answer with no SQL at all still costs: saying nothing must never pay as well as trying.
    "exec-lenient": SQLRewardConfig(require_format=False, format_penalty=0.0, empty_penalty=-1.0),
}
MEASURES = ("exec_acc", "exec_acc_set", "valid_sql", "timeout_rate")

_SYSTEM = (
    "You are an expert SQLite programmer. Given a database schema and a question, write one SQLite SELECT "
    "query that answers it. Use only the tables and columns of the schema. "
)


@dataclass(frozen=True)
class SQLAction:
    """Run ``sql`` on ``db_path`` and compare with ``gold`` (``source`` and ``record`` name the gold's record
    for an error about it)."""

    sql: str
    db_path: str
    gold: str
    source: str = ""
    record: str = ""


@dataclass(frozen=True)
class SQLOutcome(Outcome):
    """What running one SQLAction gave: the prediction's result, the gold's, and whether the gold orders rows."""

    result: QueryResult | None = None
    gold: QueryResult | None = None
    ordered: bool = False

    def matches(self, comparison: str) -> bool:
        if self.result is None or self.gold is None or not self.result.ok or self.gold.rows is None:
            return False
        return execution_match(self.result.rows or (), self.gold.rows, comparison=comparison, ordered=self.ordered)


def sqlite_backend(collection: Collection | None, spec: SQLiteSpec, index: Path | None) -> SQLiteSandbox:
    """The read-only sandbox; each example names its own database file (``meta.db_path``)."""
    from ..search.folders import index_cache_dir
    from ..search.sqlite_sandbox import SandboxLimits, SQLiteSandbox

    limits = SandboxLimits(**spec.fields(("timeout_seconds", "max_rows", "max_sql_chars")))
    cache = spec.gold_cache
    path = index_cache_dir() / "sql-gold-cache.sqlite" if cache is True else Path(cache) if cache else None
    return SQLiteSandbox(limits, gold_cache=path)


register(SQLiteSpec, sqlite_backend, family="sql")


class SQLTask(Task):
    name = "sql"
    presets = PRESETS
    measures = MEASURES
    modes = ("rewrite",)
    answer_key = "sql"
    answer_form = "sql"
    fallback_name = "nothing"
    default_backend = "sqlite"
    verl_ability = "text-to-sql"

    @property
    def depth(self) -> int:
        return 1  # no ranking: k is unused

    def open_backend(self, index: Path, spec: Mapping[str, Any]) -> SQLiteSandbox:
        return sqlite_backend(None, self.backend_spec(spec), None)

    # -- prompts ------------------------------------------------------------------------------------
    def default_prompt(self) -> PromptSettings:
        return PromptSettings(mode="rewrite", context_docs=0, max_new_tokens=128)

    def needs_context(self, settings: PromptSettings) -> bool:
        return False  # context_docs counts sample rows of each table, read from the example's database

    def messages(self, example: Example, settings: PromptSettings) -> list[dict[str, str]]:
        """The instructions, then the schema (the database's CREATE statements; ``context_docs`` sample rows
        of each table), BIRD's evidence when there is one, and the question."""
        shown = "<think>...</think>\n" if settings.variant == "reasoning" else ""
        system = _SYSTEM + shown + answer_format(settings.variant, what="SQL", example="SELECT ...", form="sql")
        user = f"Database schema:\n{example.meta.get('schema', '')}"
        if settings.context_docs:
            samples = sample_rows(str(example.meta["db_path"]), settings.context_docs)
            if samples:
                user += f"\n\nSample rows:\n{samples}"
        evidence = str(example.meta.get("evidence") or "").strip()
        if evidence:
            user += f"\n\nExternal knowledge: {evidence}"
        user += f"\n\nQuestion: {example.question.strip()}"
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def demonstration(
        self, example: Example, settings: PromptSettings, collection: Collection | None = None
    ) -> str | None:
        """The gold SQL, whitespace collapsed (what the warm start teaches before GRPO)."""
        sql = example.meta.get("sql")
        return " ".join(str(sql).split()) if sql else None

    def completion(self, text: str, variant: str) -> str:
        """``{"sql": "…"}`` after the prompt's answer prefix (direct: the prefix ends with the opening quote);
        reasoning: a short think block first."""
        answer = json.dumps({"sql": text}, ensure_ascii=False)
        if variant == "direct":
            return answer.removeprefix('{"sql": "') + "</answer>"
        return f"The question maps onto the schema's tables.</think>\n<answer>{answer}</answer>"

    # -- completion -> action -----------------------------------------------------------------------
    def read_answer(self, body: str) -> tuple[str | None, str]:
        """``{"sql": "…"}`` (DeepRetrieval's form), or plain SQL; whitespace collapsed, at most
        ``MAX_SQL_CHARS`` characters (longer: cut, ``too_long``). JSON that does not parse but has the form's
        shape (``{"sql": "… "John" …"}``: quotes left unescaped) reads as its inside, a format error."""
        text = body.strip()
        if not text:
            return None, "empty_query"
        if TAG.search(text):
            return None, "nested_tags"
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):
                inside = re.sub(r'^\{\s*"sql"\s*:\s*"?|"?\s*\}?\s*$', "", text)
                return _cap(inside) or None, "not_json"
            if not isinstance(value, dict) or "sql" not in value:
                return None, "missing_key"
            if not isinstance(value["sql"], str):
                return None, "not_a_string"
            text = value["sql"]
        sql = _cap(text)
        if not sql:
            return None, "empty_query"
        if len(" ".join(text.split())) > MAX_SQL_CHARS:
            return sql, "too_long"
        return sql, "ok"

    def lenient_query(self, text: str) -> str:
        """An out-of-format completion's SQL: the text after its last ``<answer>``, tags and the JSON wrapper
        taken off."""
        body = re.sub(r"</?(?:think|answer)>", " ", str(text).rsplit("<answer>", 1)[-1])
        body = re.sub(r'^\s*\{\s*"sql"\s*:\s*"?|"?\s*\}?\s*$', "", body)
        return _cap(body.replace('\\"', '"'))

    def searchable(self, text: str, backend: Any, settings: PromptSettings | None = None) -> bool:
        return any(ch.isalnum() for ch in text)

    def action(self, text: str, example: Example, settings: PromptSettings) -> Action:
        return self.query_action(text, example)

    def query_action(self, text: str, example: Example) -> Action:
        meta = example.meta
        if "db_path" not in meta or "sql" not in meta:
            raise DataError(meta.get("source", example.id), f"example {example.id!r} has no database or gold SQL")
        return SQLAction(
            text, str(meta["db_path"]), str(meta["sql"]), str(meta.get("source", "")), str(meta.get("record", ""))
        )

    def render(self, action: Action) -> str:
        return getattr(action, "sql", str(action))

    # -- execution and scoring ----------------------------------------------------------------------
    def execute(self, actions: Sequence[Action], backend: SQLiteSandbox, k: int) -> list[Outcome]:
        """Each action's SQL in the sandbox, and its gold's rows (run once per database and query)."""
        import sqlite3

        from ..search.sqlite_sandbox import has_order_by

        outcomes: list[Outcome] = []
        for action in actions:
            assert isinstance(action, SQLAction)
            source = action.source or action.db_path
            gold = backend.gold(action.db_path, action.gold, source=source, record=action.record)
            try:
                result = backend.run(action.db_path, action.sql)
            except sqlite3.DatabaseError as exc:
                raise DataError(action.db_path, f"no SQLite database ({exc})") from None
            error = None if result.ok else f"{result.verdict}: {result.message}"
            rows = len(result.rows) if result.rows is not None else None
            outcomes.append(
                SQLOutcome(Ranking(total=rows), error, result=result, gold=gold, ordered=has_order_by(action.gold))
            )
        return outcomes

    def score(
        self,
        parsed: Parsed,
        proposal: Proposal,
        outcome: Outcome | None,
        example: Example,
        config: RewardConfig,
        *,
        original_metric: float | None = None,
        failure: str | None = None,
    ) -> RewardResult:
        sql = proposal.text
        if failure is not None or (outcome is None and sql):
            return RewardResult(None, parsed.format_ok, None, sql, failure or "no result", "failure")
        reward = config if isinstance(config, SQLRewardConfig) else SQLRewardConfig()
        if config.require_format and not parsed.format_ok:
            return RewardResult(reward.format_penalty, False, None, sql, None, parsed.reason)
        if not sql or not isinstance(outcome, SQLOutcome) or outcome.result is None:
            return RewardResult(reward.empty_penalty, parsed.format_ok, None, sql, None, "empty_query")
        if not outcome.result.ok:
            return RewardResult(reward.fails_reward, parsed.format_ok, 0.0, sql, None, outcome.result.verdict)
        if outcome.matches(reward.comparison):
            return RewardResult(reward.match_reward, parsed.format_ok, 1.0, sql, None, "ok")
        return RewardResult(reward.differs_reward, parsed.format_ok, 0.0, sql, None, "rows_differ")

    def per_query(self, outcome: Outcome, example: Example, measures: Sequence[str]) -> dict[str, float]:
        result = outcome.result if isinstance(outcome, SQLOutcome) else None
        values = {
            "exec_acc": float(isinstance(outcome, SQLOutcome) and outcome.matches("multiset")),
            "exec_acc_set": float(isinstance(outcome, SQLOutcome) and outcome.matches("set")),
            "valid_sql": float(result is not None and result.ok),
            "timeout_rate": float(result is not None and result.verdict == "timeout"),
        }
        return {name: values[name] for name in measures}

    def evaluate_run(
        self, runs: Mapping[str, Mapping[str, Any]], examples: Sequence[Example], measures: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """Each example's measures as its run line holds them (computed when it ran: the rows are not kept)."""
        unknown = [m for m in measures if m not in MEASURES]
        if unknown:
            raise DataError("runs.jsonl", f"the sql task reports no {unknown[0]!r} (it reports {', '.join(MEASURES)})")
        return {e.id: {m: float(runs[e.id]["metrics"][m]) for m in measures} for e in examples if e.id in runs}

    def baselines(self) -> Mapping[str, Callable[..., Any]]:
        return {"gold": lambda task, backend, **_: GoldPolicy(task)}


def _cap(text: str) -> str:
    return " ".join(text.split())[:MAX_SQL_CHARS]


def _literal(value: Any) -> str:
    """A value as SQL writes it (NULL, 'text', 3.5)."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value[:60].replace("'", "''") + "'"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return repr(value)


_SAMPLES: dict[tuple[str, int], str] = {}


def sample_rows(db_path: str, n: int) -> str:
    """The first ``n`` rows of each table of a database, as ``table: (v, …)`` lines (read through the
    sandbox once per database)."""
    key = (db_path, n)
    if key not in _SAMPLES:
        from ..search.sqlite_sandbox import SandboxLimits, open_read_only, run_query

        limits = SandboxLimits(max_rows=10_000)
        connection = open_read_only(Path(db_path), limits)
        try:
            tables = run_query(
                connection, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'", limits
            )
            lines = []
            for (table,) in tables.rows or ():
                quoted = '"' + str(table).replace('"', '""') + '"'
                result = run_query(connection, f"SELECT * FROM {quoted} LIMIT {int(n)}", limits)
                lines += [f"{table}: ({', '.join(_literal(v) for v in row)})" for row in result.rows or ()]
        finally:
            connection.close()
        _SAMPLES[key] = "\n".join(lines)
    return _SAMPLES[key]


class GoldPolicy:
    """Baseline: the gold SQL itself (the ceiling: it must score 1.0 on every measure of a match)."""

    name = "gold"

    def __init__(self, task: Task) -> None:
        self.task = task

    def generate(self, examples: Sequence[Example]) -> list[PolicyOutput]:
        outputs = []
        for example in examples:
            action = self.task.query_action(str(example.meta.get("sql", "")), example)
            outputs.append(PolicyOutput(query=self.task.render(action), action=action))
        return outputs

    def describe(self) -> dict[str, object]:
        return {"policy": self.name}
