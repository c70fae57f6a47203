"""What a select-rm3 policy learned, read from its answers: a judgment, or a constant rule?

    .venv/bin/python benchmarks/answers.py --run runs/warm/cranfield \
        --policy warm-started_smollm2-135m_select-rm3          # -> RUN/answers.json

From a learning run's evaluation (``RUN/eval/policies/POLICY/runs.jsonl``): the policy's distinct answers on
the test split, its two commonest answers run as constant rules on the train and test splits (beside
RM3), and, over the test queries where those two rank differently, how often the policy gave the one with
the higher nDCG@10 (a judge beats chance here; a rule does not).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from deepretrieval import metrics as M
from deepretrieval.data import load_collection
from deepretrieval.parsing import extract_query_lenient
from deepretrieval.recipe import TrainRecipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--policy", required=True, help="a policy folder name under RUN/eval/policies")
    args = parser.parse_args()
    recipe = TrainRecipe(**json.loads((args.run / "train" / "recipe.json").read_text()))
    task, settings = recipe.task_family(), recipe.prompt_settings()
    collection = load_collection(recipe.data, seed=recipe.seed)
    backend = task.backend(collection, recipe.backend)
    context = task.context(backend, collection, settings)
    rows = [json.loads(line) for line in (args.run / "eval" / "policies" / args.policy / "runs.jsonl").open()]
    prefix = task.answer_prefix(settings.variant)
    # as evaluation reads them: an answer cut at the token cap is searched as it stands
    said = {r["id"]: extract_query_lenient(prefix + r["completion"]) for r in rows}
    answers = Counter(said.values())
    (a, _), (b, _) = answers.most_common(2)

    def ndcg(example, text: str | None) -> float:
        action = task.fallback(example, settings) if text is None else task.action(text, example, settings)
        return M.measure("ndcg@10", task.execute([action], backend, 1000)[0].ids, example.targets)

    rules, per_query = {}, {}
    for split in ("train", "test"):
        examples = context([e for e in collection.split(split) if e.relevant])
        scored = {name: {e.id: ndcg(e, text) for e in examples} for name, text in (("rm3", None), (a, a), (b, b))}
        rules[split] = {name: round(sum(s.values()) / len(s), 4) for name, s in scored.items()}
        per_query[split] = scored
    differ = better = 0
    for query, given in said.items():
        first, second = per_query["test"][a][query], per_query["test"][b][query]
        if given in (a, b) and first != second:
            differ += 1
            better += (given == a) == (first > second)
    report = {
        "run": str(args.run),
        "policy": args.policy,
        "test answers": dict(answers.most_common()),
        "constant rules (mean nDCG@10)": rules,
        "queries where the two commonest answers rank differently": differ,
        "of which the policy gave the better one": better,
    }
    (args.run / "answers.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
