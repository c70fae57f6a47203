"""literature-demo under the old and the new PubMed field semantics (issue 22): one policy set, two engines.

The same policies (original, pico-boolean, oracle, the untrained model and one trained run) are evaluated on
literature-demo's test reviews by ``deepretrieval eval`` twice: with the engine before issue 22 (tagged
terms stemmed, a tag binding only the word before it) and after it. Each evaluation is its own folder; this
script reads both and writes one JSON: every policy's measures and shares per engine, and per policy a paired
test of after against before on each query's measures (the queries are the same reviews).

    # before (a checkout of the commit before the new semantics), with a cache of its own:
    DEEPRETRIEVAL_CACHE=/tmp/cache-old deepretrieval eval --data literature-demo --task literature \\
        --policy original --policy pico-boolean --policy oracle --policy smollm2-135m --policy RUN \\
        --split test --out runs/lit-eval-old
    # after (this checkout): the same command with --out runs/lit-eval-new and another cache
    .venv/bin/python benchmarks/literature_semantics.py --before runs/lit-eval-old --after runs/lit-eval-new \\
        --before-commit SHA --after-commit SHA --out benchmarks/results/literature_semantics.json

A separate cache per engine matters: both versions cache the Boolean index under the same corpus key, and the
index's format version is what keeps one engine from reading the other's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MEASURES = ("recall@100", "recall@1000", "recall@3000", "ndcg@10")


def per_query(folder: Path, slug: str) -> dict[str, dict[str, float]]:
    rows = (json.loads(line) for line in (folder / "policies" / slug / "runs.jsonl").read_text().splitlines() if line)
    return {row["id"]: row["metrics"] for row in rows}


def paired(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """After minus before per measure over the shared queries: the mean difference and a two-sided paired
    t-test's p (None when every difference is 0: nothing to test)."""
    from scipy import stats

    ids = sorted(set(before) & set(after))
    tests = {}
    for measure in MEASURES:
        a = [after[i][measure] for i in ids]
        b = [before[i][measure] for i in ids]
        differences = [x - y for x, y in zip(a, b, strict=True)]
        changed = any(differences)
        p = float(stats.ttest_rel(a, b).pvalue) if changed else None
        tests[measure] = {"queries": len(ids), "difference": sum(differences) / len(ids), "t_test_p": p}
    return tests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--before-commit", required=True)
    parser.add_argument("--after-commit", required=True)
    parser.add_argument("--trained-steps", type=int, required=True, help="GRPO steps of the trained run")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    before = json.loads((args.before / "metrics.json").read_text())["policies"]
    after = json.loads((args.after / "metrics.json").read_text())["policies"]
    if set(before) != set(after):
        raise SystemExit(f"the two evaluations ran other policies: {sorted(before)} vs {sorted(after)}")
    result = {
        "collection": "literature-demo",
        "split": "test",
        "trained_steps": args.trained_steps,
        "before": {"commit": args.before_commit, "policies": before},
        "after": {"commit": args.after_commit, "policies": after},
        "after_vs_before": {
            slug: paired(per_query(args.before, slug), per_query(args.after, slug)) for slug in sorted(before)
        },
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
