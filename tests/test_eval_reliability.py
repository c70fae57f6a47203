"""An evaluation folder survives kills, corrupt files and a second eval: figures only for completed runs."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepretrieval.data import load_collection
from deepretrieval.errors import DeepRetrievalError
from deepretrieval.evaluate import EvalSettings, evaluate, load_policy_metrics
from deepretrieval.policies import OriginalPolicy
from deepretrieval.policies.base import PolicyOutput
from deepretrieval.search.bm25 import BM25Searcher, BM25Settings
from deepretrieval.types import Collection

from .conftest import ROOT, CountingPolicy, write_beir

MEASURES = ("ndcg@10", "recall@10", "mrr@10")
SETTINGS = EvalSettings(k=10, batch_size=1, measures=MEASURES)
OTHER = EvalSettings(k=20, batch_size=1, measures=MEASURES)  # other settings (a deeper k)

# Run in a subprocess: evaluate() with the original query, sleeping before each batch so it can be killed mid-run.
SLOW_EVAL = """
import sys, time
from pathlib import Path
from deepretrieval.data import load_collection
from deepretrieval.errors import DeepRetrievalError
from deepretrieval.evaluate import EvalSettings, evaluate
from deepretrieval.policies import OriginalPolicy
from deepretrieval.search.bm25 import BM25Searcher, BM25Settings

class SlowOriginal(OriginalPolicy):
    def generate(self, examples):
        time.sleep(float(sys.argv[4]))
        return super().generate(examples)

data, out, k, _, overwrite = sys.argv[1:]
collection = load_collection(data)
searcher = BM25Searcher.build(collection.documents, BM25Settings())
settings = EvalSettings(k=int(k), batch_size=1, measures=("ndcg@10", "recall@10", "mrr@10"))
try:
    evaluate(collection, "test", [SlowOriginal()], searcher, Path(out), settings, overwrite=overwrite == "1")
except DeepRetrievalError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
"""


class FailingPolicy(OriginalPolicy):
    """The original query for the first batch, then a crash: an eval that dies mid-run."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def generate(self, examples):
        self.batches += 1
        if self.batches > 1:
            raise KeyboardInterrupt
        return super().generate(examples)


class OtherPolicy:
    name = "other"

    def generate(self, examples):
        return [PolicyOutput(query=e.question + " therapy") for e in examples]

    def describe(self):
        return {"policy": self.name}


@pytest.fixture
def beir(small_collection: Collection, tmp_path: Path) -> Collection:
    """The small collection as a BEIR folder (so a subprocess loads the very same one), all queries in "test"."""
    return load_collection(write_beir(tmp_path / "beir", small_collection))


@pytest.fixture
def searcher(beir: Collection) -> BM25Searcher:
    return BM25Searcher.build(beir.documents, BM25Settings())


def policy_dir(out: Path, slug: str = "original") -> Path:
    return out / "policies" / slug


def sorted_lines(runs: Path) -> list[str]:
    return sorted(runs.read_text().splitlines())


def ids(runs: Path) -> list[str]:
    return [json.loads(line)["id"] for line in runs.read_text().splitlines()]


def start_slow_eval(data: Path, out: Path, *, k: int, delay: float, overwrite: bool = False) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-c", SLOW_EVAL, str(data), str(out), str(k), str(delay), "1" if overwrite else "0"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_new_lines(proc: subprocess.Popen, out: Path, k: int, timeout: float = 15.0) -> int:
    """Wait until the run of this process (its config says ``k``) has at least one complete line."""
    config, runs = policy_dir(out) / "config.json", policy_dir(out) / "runs.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            ours = json.loads(config.read_text()).get("k") == k
            lines = runs.read_bytes().count(b"\n") if ours else 0
        except (OSError, ValueError):  # not written yet (or, before atomic writes, caught half-written)
            lines = 0
        if lines:
            return lines
        time.sleep(0.02)
    raise AssertionError("the eval wrote no run line in time")


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def assert_same_eval(out: Path, reference: Path) -> None:
    for name in ("metrics.json", "policies/original/metrics.json", "policies/original/config.json"):
        assert json.loads((out / name).read_text()) == json.loads((reference / name).read_text()), name
    runs = policy_dir(out) / "runs.jsonl"
    assert sorted_lines(runs) == sorted_lines(policy_dir(reference) / "runs.jsonl")
    assert len(ids(runs)) == len(set(ids(runs)))


# -- 1. figures only for completed runs ------------------------------------------------------------


def test_an_interrupted_overwrite_leaves_no_stale_figures(beir, searcher, tmp_path):
    out = tmp_path / "eval"
    evaluate(beir, "test", [OriginalPolicy()], searcher, out, OTHER)
    with pytest.raises(KeyboardInterrupt):
        evaluate(beir, "test", [FailingPolicy()], searcher, out, SETTINGS, overwrite=True)
    assert "original" not in load_policy_metrics(out)
    assert not (policy_dir(out) / "metrics.json").exists()
    assert len(ids(policy_dir(out) / "runs.jsonl")) == 1  # the old runs were discarded, not appended to
    # Another policy evaluated into the folder reports only what completed.
    evaluate(beir, "test", [OtherPolicy()], searcher, out, SETTINGS)
    top = json.loads((out / "metrics.json").read_text())
    assert list(top["policies"]) == ["other"]
    assert "| original |" not in (out / "report.md").read_text()
    # Resuming finishes the new run; its figures are those of an uninterrupted one.
    evaluate(beir, "test", [OriginalPolicy()], searcher, out, SETTINGS)
    reference = tmp_path / "reference"
    evaluate(beir, "test", [OriginalPolicy()], searcher, reference, SETTINGS)
    assert load_policy_metrics(out)["original"] == load_policy_metrics(reference)["original"]


def top_level_policies(out: Path) -> set[str]:
    """The policies whose figures the top-level files show: metrics.json's (flat keys and "policies"), the
    rows of report.md, and for comparison.png (a picture) "?" whenever it exists."""
    shown: set[str] = set()
    if (out / "metrics.json").exists():
        top = json.loads((out / "metrics.json").read_text())
        shown |= set(top["policies"]) | ({top["policy"]} if "policy" in top else set())
    if (out / "report.md").exists():
        shown |= set(re.findall(r"^\| (\S+) \|", (out / "report.md").read_text(), re.MULTILINE)) - {"policy"}
    if (out / "comparison.png").exists():
        shown.add("?")
    return shown


def test_an_overwrite_interrupted_mid_run_leaves_no_old_figures_at_the_top(beir, searcher, tmp_path):
    out = tmp_path / "eval"
    evaluate(beir, "test", [OriginalPolicy(), OtherPolicy()], searcher, out, OTHER)
    assert top_level_policies(out) == {"original", "other", "?"}
    with pytest.raises(KeyboardInterrupt):  # after the first batch of the new run: its folder already reset
        evaluate(beir, "test", [FailingPolicy()], searcher, out, SETTINGS, overwrite=True)
    assert json.loads((policy_dir(out) / "config.json").read_text())["k"] == 10  # the new config
    assert len(ids(policy_dir(out) / "runs.jsonl")) == 1
    # Nothing at the top shows the old figures of "original" (none at all: the plot cannot be redrawn
    # without them until an eval ends); "other" is still complete in its folder.
    assert top_level_policies(out) == set()
    assert list(load_policy_metrics(out)) == ["other"]
    # The next eval to end rebuilds the top from complete folders only.
    evaluate(beir, "test", [OtherPolicy()], searcher, out, OTHER)
    assert top_level_policies(out) == {"other", "?"}
    evaluate(beir, "test", [OriginalPolicy()], searcher, out, SETTINGS)  # resume the new run
    top = json.loads((out / "metrics.json").read_text())
    assert top["policies"]["original"] == json.loads((policy_dir(out) / "metrics.json").read_text())
    assert top["policy"] == "original" and top_level_policies(out) == {"original", "other", "?"}


def test_a_failed_json_write_keeps_the_previous_file_whole(beir, searcher, tmp_path, monkeypatch):
    evaluate(beir, "test", [OriginalPolicy()], searcher, tmp_path, OTHER)
    config = policy_dir(tmp_path) / "config.json"
    before = config.read_text()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", disk_full)
        with pytest.raises(OSError, match="No space"):
            evaluate(beir, "test", [OriginalPolicy()], searcher, tmp_path, SETTINGS, overwrite=True)
    assert config.read_text() == before
    assert "original" not in load_policy_metrics(tmp_path)
    assert not [p for p in policy_dir(tmp_path).iterdir() if ".tmp" in p.name]  # no temporary file left behind
    evaluate(beir, "test", [OriginalPolicy()], searcher, tmp_path, SETTINGS)
    assert json.loads(config.read_text())["k"] == 10


# -- 2. corrupt files ------------------------------------------------------------------------------


def test_a_corrupt_policy_metrics_file_counts_as_not_completed(beir, searcher, tmp_path, caplog):
    evaluate(beir, "test", [OriginalPolicy()], searcher, tmp_path, SETTINGS)
    metrics = policy_dir(tmp_path) / "metrics.json"
    good = json.loads(metrics.read_text())
    metrics.write_text(metrics.read_text()[:20])  # cut short by a kill (as a non-atomic write could be)
    (tmp_path / "metrics.json").write_text("{")
    with caplog.at_level(logging.WARNING, logger="deepretrieval.evaluate"):
        evaluate(beir, "test", [OtherPolicy()], searcher, tmp_path, SETTINGS)
    assert list(json.loads((tmp_path / "metrics.json").read_text())["policies"]) == ["other"]
    warned = [r.getMessage() for r in caplog.records if str(metrics) in r.getMessage()]
    assert len(warned) == 1 and "\n" not in warned[0]
    # Evaluating the policy again rescores its complete runs.jsonl without generating anything.
    again = CountingPolicy()
    evaluate(beir, "test", [again], searcher, tmp_path, SETTINGS)
    assert again.seen == []
    assert json.loads(metrics.read_text()) == good
    assert list(load_policy_metrics(tmp_path)) == ["other", "original"]


def test_a_corrupt_config_with_runs_asks_for_overwrite(beir, searcher, tmp_path):
    evaluate(beir, "test", [OriginalPolicy()], searcher, tmp_path, SETTINGS)
    config = policy_dir(tmp_path) / "config.json"
    config.write_text('{"collection": "be')
    with pytest.raises(DeepRetrievalError, match="--overwrite") as refused:
        evaluate(beir, "test", [OriginalPolicy()], searcher, tmp_path, SETTINGS)
    assert "\n" not in str(refused.value) and str(config) in str(refused.value)
    evaluate(beir, "test", [OriginalPolicy()], searcher, tmp_path, SETTINGS, overwrite=True)
    assert json.loads(config.read_text())["k"] == 10


def test_a_corrupt_config_without_runs_is_replaced(beir, searcher, tmp_path):
    config = policy_dir(tmp_path) / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text("{")
    evaluate(beir, "test", [OriginalPolicy()], searcher, tmp_path, SETTINGS)
    assert json.loads(config.read_text())["k"] == 10


# -- 3. one writer per run folder ------------------------------------------------------------------


def test_a_second_eval_into_a_folder_being_written_fails_cleanly(beir, searcher, tmp_path):
    out = tmp_path / "eval"
    first = start_slow_eval(tmp_path / "beir", out, k=10, delay=0.5)
    try:
        wait_for_new_lines(first, out, k=10)
        with pytest.raises(DeepRetrievalError, match=rf"being written by another eval \(pid {first.pid}\)") as exc:
            evaluate(beir, "test", [OriginalPolicy()], searcher, out, SETTINGS)
        assert "\n" not in str(exc.value) and "another --out" in str(exc.value)
        assert first.wait(timeout=120) == 0, first.communicate()
    finally:
        if first.poll() is None:
            kill(first)
    runs = policy_dir(out) / "runs.jsonl"
    assert sorted(ids(runs)) == ["q1", "q2", "q3", "q4"]  # no duplicate lines
    reference = tmp_path / "reference"
    evaluate(beir, "test", [OriginalPolicy()], searcher, reference, SETTINGS)
    assert_same_eval(out, reference)


# -- 4. kill -9 ------------------------------------------------------------------------------------


def test_kill_9_mid_eval_then_resume_matches_an_uninterrupted_run(beir, searcher, tmp_path):
    out = tmp_path / "eval"
    proc = start_slow_eval(tmp_path / "beir", out, k=10, delay=1.0)
    try:
        wait_for_new_lines(proc, out, k=10)
    finally:
        kill(proc)
    assert 1 <= len(ids(policy_dir(out) / "runs.jsonl")) < 4  # killed mid-run
    assert "original" not in load_policy_metrics(out)
    evaluate(beir, "test", [OriginalPolicy()], searcher, out, SETTINGS)  # the lock died with the process
    reference = tmp_path / "reference"
    evaluate(beir, "test", [OriginalPolicy()], searcher, reference, SETTINGS)
    assert_same_eval(out, reference)


def test_kill_9_mid_overwrite_reports_no_stale_figures_then_resumes(beir, searcher, tmp_path):
    out = tmp_path / "eval"
    evaluate(beir, "test", [OriginalPolicy()], searcher, out, OTHER)  # old figures, other settings
    proc = start_slow_eval(tmp_path / "beir", out, k=10, delay=1.0, overwrite=True)
    try:
        wait_for_new_lines(proc, out, k=10)
    finally:
        kill(proc)
    assert 1 <= len(ids(policy_dir(out) / "runs.jsonl")) < 4
    assert "original" not in load_policy_metrics(out)
    assert top_level_policies(out) == set()  # the old figures left the top before the run was reset
    evaluate(beir, "test", [OriginalPolicy()], searcher, out, SETTINGS)  # resume the new run, no --overwrite
    reference = tmp_path / "reference"
    evaluate(beir, "test", [OriginalPolicy()], searcher, reference, SETTINGS)
    assert_same_eval(out, reference)
