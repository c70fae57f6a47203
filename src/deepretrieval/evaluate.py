"""Evaluate policies on a collection split: run each policy's queries, score them, write resumable runs.

Layout of an evaluation folder::

    OUT/metrics.json                 the first policy of this invocation (flat keys) + every policy in OUT
    OUT/report.md, OUT/comparison.png
    OUT/policies/<slug>/config.json  what produced the run (a resumed run must match it)
    OUT/policies/<slug>/runs.jsonl   one line per query: query sent, ranked ids, per-query metrics
    OUT/policies/<slug>/metrics.json aggregate metrics computed by pytrec_eval from runs.jsonl

A policy's metrics.json exists only once its runs.jsonl is complete: it is removed before the run is
resumed or redone and written after, so a killed eval never leaves old figures beside new runs. The
top-level files show only such complete policies: before a policy's metrics.json is removed they are
removed too (``withdraw``), and rebuilt from the complete policies when the eval ends (``publish``), so an
eval killed mid-run (``--overwrite`` or not) leaves no figure at the top that a folder no longer vouches
for. JSON, report and plot are written atomically (temporary file, fsync, rename). One process at a time
writes a policy's folder: it holds an flock on ``policies/<slug>/.eval.lock`` for the run (the kernel drops
it if the process dies); the top-level files are rewritten under a lock on ``OUT/.eval.lock``.

Means follow trec_eval: over the queries that have judgments ("queries"), the others being counted in
"unjudged_queries"; runs.jsonl still holds every query, unjudged ones with per-query metrics of 0.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import metrics as M
from .errors import DataError, DeepRetrievalError
from .policies.base import Policy, PolicyOutput
from .report import write_report
from .runs import write_text_atomic
from .tasks import Outcome, Task, default_task
from .types import Collection, Example

LOCK_FILE = ".eval.lock"
# The top-level files, in the order they are removed: metrics.json last, so while it is absent so are the others.
TOP_FILES = ("comparison.png", "report.md", "metrics.json")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSettings:
    k: int | None = None  # retrieval depth; None: the task's (``Task.depth``, the deepest cut-off it reports)
    batch_size: int = 32
    measures: tuple[str, ...] | None = None  # None: the task's own measures


def with_depth(task: Task, settings: EvalSettings) -> EvalSettings:
    """``settings`` with the retrieval depth resolved: the task's by default (at least the deepest cut-off of the
    measures); an explicit one shallower than a measure is refused, as that measure would count the ranking's
    missing tail as misses (``-k 10`` reported recall@1000 = recall@10)."""
    from dataclasses import replace

    from .tasks.base import deepest_cutoff

    measures = settings.measures or task.measures
    deepest = deepest_cutoff(measures) or 0
    if settings.k is None:
        return replace(settings, k=max(task.depth, deepest))
    if settings.k < deepest:
        name = next(m for m in measures if m.endswith(f"@{deepest}"))
        raise DeepRetrievalError(
            f"retrieval depth -k {settings.k} is shallower than {name}, which the {task.name} evaluation reports: "
            f"give -k {deepest} or more, or leave -k out (the task's depth, {max(task.depth, deepest)})"
        )
    return settings


@dataclass(frozen=True)
class PolicyResult:
    slug: str
    metrics: dict[str, float | int | str]
    runs_path: Path


# Called after each batch with the number of examples just finished.
Advance = Callable[[int], None]


def policy_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "policy"


def execute_outputs(task: Task, backend: object, outputs: Sequence[PolicyOutput], k: int) -> list[Outcome]:
    """The task's batched execution of the policy's actions (an output without one: its query text), in order."""
    return task.execute([o.query if o.action is None else o.action for o in outputs], backend, k)


def run_policy(
    policy: Policy,
    examples: Sequence[Example],
    task: Task,
    backend: object,
    run_dir: Path,
    settings: EvalSettings,
    identity: dict[str, object],
    *,
    overwrite: bool = False,
    advance: Advance | None = None,
) -> Path:
    """Write ``runs.jsonl`` for ``policy`` on ``examples``, skipping examples already written.

    The caller holds the folder's lock (``lock_run_dir``). The policy's metrics.json is removed first:
    its figures are absent until the caller scores the completed runs again.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path, runs_path = run_dir / "config.json", run_dir / "runs.jsonl"
    if overwrite:
        # Figures first: a kill between the two must not leave old figures without their runs.
        (run_dir / "metrics.json").unlink(missing_ok=True)
        runs_path.unlink(missing_ok=True)
    _check_config(config_path, identity, runs_path)
    (run_dir / "metrics.json").unlink(missing_ok=True)
    write_text_atomic(config_path, json.dumps(identity, indent=2, sort_keys=True))
    done = _completed_ids(runs_path)
    if advance and done:
        advance(len(done))
    todo = [e for e in examples if e.id not in done]
    with runs_path.open("a", encoding="utf-8") as out:
        for batch in _batches(todo, settings.batch_size):
            outputs = policy.generate(batch)
            outcomes = execute_outputs(task, backend, outputs, settings.k)
            measures = settings.measures or task.measures
            for example, output, outcome in zip(batch, outputs, outcomes, strict=True):
                out.write(json.dumps(_run_line(task, example, output, outcome, measures)) + "\n")
            out.flush()
            if advance:
                advance(len(batch))
        # On disk before the caller writes metrics.json, which vouches for a complete run.
        os.fsync(out.fileno())
    return runs_path


def score_runs(
    runs_path: Path, examples: Sequence[Example], measures: Sequence[str], task: Task | None = None
) -> dict[str, float | int]:
    """Aggregate metrics over ``examples``, from the lines stored in ``runs_path``: the task's
    (``Task.evaluate_run``; pytrec_eval on the ranked ids unless the family says otherwise).

    As trec_eval, examples without any judgment are left out of the means: ``queries`` is the number
    averaged and ``unjudged_queries`` the number left out (see ``metrics.evaluate_run``).
    """
    wanted = {e.id for e in examples}
    run = {qid: line for qid, line in _read_records(runs_path) if qid in wanted}
    missing = wanted - run.keys()
    if missing:
        raise DeepRetrievalError(f"{runs_path}: {len(missing)} queries have no run line; rerun eval to resume")
    per_query = (task or default_task()).evaluate_run(run, examples, measures)
    summary: dict[str, float | int] = dict(M.aggregate(per_query))
    summary["queries"] = len(per_query)
    summary["unjudged_queries"] = len(examples) - len(per_query)
    statistics = run_statistics(runs_path, wanted)
    if statistics:
        summary["statistics"] = statistics  # type: ignore[assignment]
    return summary


def run_statistics(runs_path: Path, wanted: set[str]) -> dict[str, float]:
    """What the executed actions looked like: for a model policy, the share of answers that gave nothing to
    search (the mode's fallback ran instead); for backends that count matches or refuse malformed actions,
    result-set sizes and the shares of empty and of refused queries."""
    lines = [json.loads(x) for x in runs_path.read_text(encoding="utf-8").splitlines() if x.strip()]
    lines = [x for x in lines if str(x.get("id")) in wanted]
    if not lines:
        return {}
    stats: dict[str, float] = {}
    if any("completion" in x for x in lines):
        stats["fallback_share"] = sum(bool(x.get("fallback")) for x in lines) / len(lines)
    totals = sorted(int(x["total"]) for x in lines if isinstance(x.get("total"), int))
    if not totals and not any("error" in x for x in lines):
        return stats
    stats |= {
        "refused_share": sum("error" in x for x in lines) / len(lines),
        # A backend that counts its results says how many (SQL: rows); the ranking holds only the first k.
        "empty_result_share": sum(not x.get("total", len(x.get("ranked") or ())) for x in lines) / len(lines),
    }
    if totals:
        stats |= {"total_median": float(totals[len(totals) // 2]), "total_mean": sum(totals) / len(totals)}
        stats["total_max"] = float(totals[-1])
    return stats


def evaluate(
    collection: Collection,
    split: str,
    policies: Sequence[Policy],
    backend: object,
    out_dir: Path,
    settings: EvalSettings | None = None,
    *,
    task: Task | None = None,
    overwrite: bool = False,
    progress: Callable[[str, int], Advance] | None = None,
) -> list[PolicyResult]:
    """Evaluate each policy on ``task`` (default: ``tasks.default_task()``) with its ``backend``, and
    (re)write the folder's metrics.json, report.md and comparison.png."""
    task = task or default_task()
    settings = with_depth(task, settings or EvalSettings())
    examples = collection.split(split)
    if not examples:
        raise DeepRetrievalError(f"split {split!r} of {collection.name!r} has no queries")
    if not any(e.targets for e in examples):
        # Every query would be left out of the means: nothing to report, so say so before searching.
        raise DeepRetrievalError(f"split {split!r} of {collection.name!r} has no query with judgments")
    results = []
    first = policy_slug(policies[0].name)
    for policy in policies:
        slug = policy_slug(policy.name)
        advance = progress(slug, len(examples)) if progress else None
        results.append(
            evaluate_policy(
                collection,
                split,
                examples,
                policy,
                task,
                backend,
                out_dir,
                settings,
                overwrite=overwrite,
                advance=advance,
            )
        )
    publish(out_dir, first)
    return results


def publish(out_dir: Path, first: str | None = None) -> None:
    """(Re)write OUT/metrics.json, report.md and comparison.png from the complete policy folders only:
    ``first``'s figures as the flat keys (when it is complete), every complete policy under "policies"."""
    # Serialised, so that of two evals finishing together the last to write has seen both policies' figures.
    with _flock(out_dir / LOCK_FILE, out_dir, blocking=True):
        every = load_policy_metrics(out_dir)
        top = {**every.get(first or "", {}), "policies": every}
        write_text_atomic(out_dir / "metrics.json", json.dumps(top, indent=2))
        write_report(out_dir, every)


def withdraw(out_dir: Path, slug: str) -> None:
    """Take a policy's figures out of the folder before its run is redone or resumed.

    Under the folder's lock, the top-level files go first (metrics.json last), then the policy's metrics.json:
    a kill at any step leaves no top-level figure that a complete policy folder does not hold. ``evaluate``
    rebuilds the top-level files from the complete policies once its own are done. Nothing to do when neither
    the policy nor the top-level files show its figures (a policy new to the folder).
    """
    metrics = out_dir / "policies" / slug / "metrics.json"
    with _flock(out_dir / LOCK_FILE, out_dir, blocking=True):
        if metrics.exists() or _top_may_show(out_dir, slug):
            for name in TOP_FILES:
                (out_dir / name).unlink(missing_ok=True)
            metrics.unlink(missing_ok=True)


def _top_may_show(out_dir: Path, slug: str) -> bool:
    """Whether the top-level files may hold ``slug``'s figures (an unreadable metrics.json: they may)."""
    try:
        top = json.loads((out_dir / "metrics.json").read_bytes())
    except FileNotFoundError:
        return any((out_dir / name).exists() for name in TOP_FILES)  # left by a kill mid-rewrite: say yes
    except ValueError:
        return True
    return not isinstance(top, dict) or not isinstance(top.get("policies"), dict) or slug in top["policies"]


def evaluate_policy(
    collection: Collection,
    split: str,
    examples: Sequence[Example],
    policy: Policy,
    task: Task,
    backend: object,
    out_dir: Path,
    settings: EvalSettings,
    *,
    overwrite: bool = False,
    advance: Advance | None = None,
) -> PolicyResult:
    """Run (or resume) and score one policy under its folder's lock; metrics.json only once runs are complete.

    Its figures leave the top-level files before its run is touched (``withdraw``); ``evaluate`` puts them back
    once it is complete."""
    slug = policy_slug(policy.name)
    run_dir = out_dir / "policies" / slug
    identity = {
        "collection": collection.name,
        "split": split,
        "queries": len(examples),
        "k": settings.k,
        "task": task.name,
        "backend": task.describe_backend(backend),
        **policy.describe(),
    }
    with lock_run_dir(run_dir):
        if not overwrite:  # a resume that will be refused must not take complete figures away
            _check_config(run_dir / "config.json", identity, run_dir / "runs.jsonl")
        withdraw(out_dir, slug)
        runs_path = run_policy(
            policy, examples, task, backend, run_dir, settings, identity, overwrite=overwrite, advance=advance
        )
        summary: dict[str, float | int | str] = {
            "policy": policy.name,
            "collection": collection.name,
            "split": split,
            **score_runs(runs_path, examples, settings.measures or task.measures, task),
        }
        write_text_atomic(run_dir / "metrics.json", json.dumps(summary, indent=2))
    return PolicyResult(slug, summary, runs_path)


def load_policy_metrics(out_dir: Path) -> dict[str, dict]:
    """Every policy whose run completed in ``out_dir``, by slug, in evaluation order.

    An unreadable metrics.json counts as not completed: left out with a warning (evaluating that policy
    again rescores its runs.jsonl, or resumes it).
    """
    found = []
    for path in (out_dir / "policies").glob("*/metrics.json"):
        try:
            mtime, summary = path.stat().st_mtime, json.loads(path.read_bytes())
        except FileNotFoundError:
            continue  # removed by an eval that has just started (re)running this policy
        except ValueError as exc:
            summary = exc
        if not isinstance(summary, dict):
            log.warning("%s is unreadable (%s); left out until this policy is evaluated again", path, summary)
            continue
        found.append((mtime, path.parent.name, summary))
    return {slug: m for _, slug, m in sorted(found, key=lambda f: f[:2])}


def paired_test(
    out_dir: Path,
    examples: Sequence[Example],
    policy: str,
    baseline: str,
    measures: Sequence[str],
    task: Task | None = None,
) -> dict[str, dict[str, float]]:
    """Paired significance of ``policy`` against ``baseline`` (slugs of completed runs in ``out_dir``) on the
    judged ``examples``, per measure (the task's per-query measures, ``Task.evaluate_run``): both means, the
    mean difference, a two-sided paired t-test's p and a paired randomization test's p (scipy: 10,000 sign
    flips of the per-query differences, seeded)."""
    import numpy as np
    from scipy import stats

    wanted = {e.id for e in examples}
    per_query = []
    for slug in (policy, baseline):
        runs_path = out_dir / "policies" / slug / "runs.jsonl"
        if not runs_path.exists():
            raise DeepRetrievalError(f"{runs_path}: no run of policy {slug!r} to compare")
        run = {qid: line for qid, line in _read_records(runs_path) if qid in wanted}
        per_query.append((task or default_task()).evaluate_run(run, examples, measures))
    ids = sorted(per_query[0].keys() & per_query[1].keys())
    report = {}
    for measure in measures:
        a = np.array([per_query[0][q][measure] for q in ids])
        b = np.array([per_query[1][q][measure] for q in ids])
        same = bool(np.allclose(a, b))
        randomized = stats.permutation_test(
            (a, b), lambda x, y: np.mean(x - y), permutation_type="samples", n_resamples=10_000, random_state=0
        )
        report[measure] = {
            "queries": len(ids),
            policy: float(a.mean()),
            baseline: float(b.mean()),
            "difference": float((a - b).mean()),
            "t_test_p": 1.0 if same else float(stats.ttest_rel(a, b).pvalue),
            "randomization_p": 1.0 if same else float(randomized.pvalue),
        }
    return report


@contextmanager
def lock_run_dir(run_dir: Path) -> Iterator[None]:
    """Be the only process writing ``run_dir``, or fail at once with a one-line error naming the holder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with _flock(run_dir / LOCK_FILE, run_dir, blocking=False):
        yield


def _run_line(task: Task, example: Example, output: PolicyOutput, outcome: Outcome, measures: Sequence[str]) -> dict:
    line = {
        "id": example.id,
        "question": example.question,
        "query": output.query,
        "ranked": outcome.ids,
        "metrics": task.per_query(outcome, example, measures),
    }
    if outcome.ranking.total is not None:
        line["total"] = outcome.ranking.total
    if outcome.error is not None:
        line["error"] = outcome.error
    if output.completion is not None:
        line["completion"] = output.completion
        line["format_ok"] = output.format_ok
        if output.fallback:
            line["fallback"] = True
    return line


def _check_config(config_path: Path, identity: dict[str, object], runs_path: Path) -> None:
    if not (config_path.exists() and runs_path.exists()):
        return
    try:
        previous = json.loads(config_path.read_bytes())
    except ValueError as exc:
        previous = exc
    if not isinstance(previous, dict):
        # Without the identity nothing says these runs belong to this policy and these settings.
        raise DeepRetrievalError(
            f"{config_path} is unreadable ({previous}), so {runs_path} cannot be resumed; use --overwrite"
        )
    if previous != json.loads(json.dumps(identity, sort_keys=True)):
        changed = sorted(k for k in previous.keys() | identity.keys() if previous.get(k) != identity.get(k))
        raise DeepRetrievalError(
            f"{runs_path} was produced with other settings ({', '.join(changed)}); use --overwrite or another --out"
        )


def _completed_ids(runs_path: Path) -> set[str]:
    return {qid for qid, _ in read_runs(runs_path, repair=True)} if runs_path.exists() else set()


def read_runs(runs_path: Path, *, repair: bool = False) -> Iterator[tuple[str, list[str]]]:
    """Yield (id, ranked ids) of a policy's ``runs.jsonl`` (public: benchmarks read per-query rankings with it).
    With ``repair``, a torn last line (interrupted write) is cut off."""
    for qid, record in _read_records(runs_path, repair=repair):
        yield qid, record["ranked"]


def _read_records(runs_path: Path, *, repair: bool = False) -> Iterator[tuple[str, dict]]:
    """Yield (id, the line's record, its ``ranked`` a list). With ``repair``, a torn last line is cut off."""
    raw = runs_path.read_bytes()
    lines = raw.split(b"\n")
    if repair and lines and lines[-1]:
        # No trailing newline: the last write was interrupted. Drop the partial line so resume redoes it.
        # Truncate in place: rewriting the file would lose every finished line if killed meanwhile.
        os.truncate(runs_path, len(raw) - len(lines[-1]))
        lines = lines[:-1]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            record["ranked"] = list(record["ranked"])
            yield str(record["id"]), record
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(runs_path, f"unreadable run line ({exc})", line=number) from exc


@contextmanager
def _flock(lock_path: Path, folder: Path, *, blocking: bool) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_path``, which records the holder's pid for the error message."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise DeepRetrievalError(
                f"{folder} is being written by another eval (pid {holder}); wait for it or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; so does the process dying


def _batches(items: Sequence[Example], size: int) -> Iterator[Sequence[Example]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
