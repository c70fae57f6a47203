"""The benchmark scripts keep running, and docs/BENCHMARKS.md's tables are their results, rendered."""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
# Globbed, so a new script is covered without touching this file.
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


def load_renderer() -> ModuleType:
    """benchmarks/render.py as a module (registered first: its dataclasses look their module up)."""
    if "benchmark_render" not in sys.modules:
        spec = importlib.util.spec_from_file_location("benchmark_render", BENCHMARKS / "render.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["benchmark_render"]


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_every_benchmark_script_answers_help(script: Path, tmp_path: Path) -> None:
    # A fresh interpreter, as a user runs it; from an empty folder, so a script that loads data or writes
    # results before parsing its arguments fails here instead of doing the work.
    done = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_no_benchmark_script_works_at_import_time(script: Path) -> None:
    """Top level holds imports, definitions and constants; the work is in main(), behind the __main__ guard."""
    tree = ast.parse(script.read_text())
    body = tree.body[1:] if ast.get_docstring(tree) else tree.body
    stray = [ast.unparse(node)[:80] for node in body if isinstance(node, ast.Expr)]
    assert not stray, f"top-level statements run on import: {stray}"
    guards = [node for node in body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
    assert len(guards) == 1 and "main(" in ast.unparse(guards[0])
    assert body[-1] is guards[0]


def test_benchmarks_doc_tables_agree_with_the_results(capsys: pytest.CaptureFixture[str]) -> None:
    status = load_renderer().main(["--check"])
    assert status == 0, "docs/BENCHMARKS.md is stale; run benchmarks/render.py:\n" + capsys.readouterr().out


def test_a_replaced_result_reaches_the_doc_and_nothing_else(tmp_path: Path) -> None:
    render = load_renderer()
    results, doc = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    shutil.copytree(BENCHMARKS / "results", results)
    shutil.copy(render.DOC, doc)
    run = json.loads((results / "learning_literature_demo.json").read_text())
    trained = next(k for k in run["policies"] if k.startswith("trained_"))
    run["policies"][trained]["recall@100"] = 0.2501
    (results / "learning_literature_demo.json").write_text(json.dumps(run))

    arguments = ["--doc", str(doc), "--results", str(results)]
    assert render.main([*arguments, "--check"]) == 1
    assert render.main(arguments) == 0
    assert render.main([*arguments, "--check"]) == 0
    before, after = render.DOC.read_text().splitlines(), doc.read_text().splitlines()
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert len(changed) == 1 and "| **0.140** |" in changed[0][0] and "| **0.250** |" in changed[0][1]


def test_every_marked_table_has_a_renderer_and_every_renderer_a_table(tmp_path: Path) -> None:
    render = load_renderer()
    doc = render.DOC.read_text()
    results = render.Results(render.RESULTS)
    with pytest.raises(SystemExit, match="missing \\['qa'\\]"):
        render.render(doc.replace("<!-- table: qa -->", "<!-- gone -->"), results)
    with pytest.raises(SystemExit, match="unknown \\['typo'\\]"):
        render.render(doc + "\n<!-- table: typo -->\n| 1 |\n<!-- /table -->\n", results)


def test_rounding_is_half_up_from_the_stored_decimal() -> None:
    render = load_renderer()
    # Binary floats would print 0.178 and 0.801; the doc has always printed these half up.
    assert [render.num(0.1785), render.num(0.8015), render.num(0.3885)] == ["0.179", "0.802", "0.389"]
    assert render.signed(-0.00609) == "\u22120.0061" and render.signed(0.00001) == "+0.0000"
    assert render.pvalue(0.0238) == "**0.024**" and render.pvalue(0.625) == "0.63"


def test_the_learning_summary_reads_each_familys_log_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/learning.py summarises the format-error ratio under the prefix its family logged it with: a
    literature run's ``literature/…`` key, and a retrieval run's exactly as the results JSON has always named it."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # learning.py imports its sibling ceilings.py
    spec = importlib.util.spec_from_file_location("benchmark_learning", BENCHMARKS / "learning.py")
    learning = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(learning)
    for family in ("retrieval", "literature"):
        log = tmp_path / f"{family}.jsonl"
        records = [
            {"step": 1, "reward": 0.1, f"{family}/format_error_ratio": 0.5, "completions/clipped_ratio": 0.25},
            {"step": 2, "reward": 0.2, f"{family}/format_error_ratio": 0.0, "completions/clipped_ratio": 0.75},
            {"step": 2, "train_runtime": 9.0},  # the end-of-training summary: no reward of its own
        ]
        log.write_text("".join(json.dumps(r) + "\n" for r in records))
        assert learning.training_summary(log) == {
            "mean completions/clipped_ratio": 0.5,
            "last completions/clipped_ratio": 0.75,
            f"mean {family}/format_error_ratio": 0.25,
            f"last {family}/format_error_ratio": 0.0,
        }
