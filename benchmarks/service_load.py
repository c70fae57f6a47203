"""The search service under load: BM25 on Cranfield served by ``deepretrieval serve search`` vs the same
searches in-process, and a GRPO-sized reward batch scored through the ``remote`` backend vs locally.

    .venv/bin/python benchmarks/service_load.py      # writes benchmarks/results/service_load.json (~1 min)

The service runs in its own processes (``deepretrieval serve search --data CRANFIELD --workers 2``, on a free
loopback port) over the BM25 index this script builds first. Load: ``--clients`` threads, each with its own
HTTP connection, each sending ``--batches`` requests of ``--batch-size`` Cranfield queries (``POST /search``,
k = ``--k``), all at once; every reply is checked (status 200, one ranking per query, the ids the in-process
index gives). In-process: the same batches, one after another, through ``BM25Searcher.search`` (threads
would only share the GIL). Reported: queries a second both ways and their ratio, the client-side latency of
a request (p50, p99), errors. Reward: ``--reward-batches`` batches of 16 distinct completions (a GRPO group)
scored by the retrieval task's TRL adapter (``tasks.TaskReward``: parse, check each answer has terms, one
batched search) through ``kind: remote`` and on the local index; the median seconds a batch and their ratio.
The machine has 2 cores and may be busy with other jobs; one run, as measured.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

import deepretrieval
from deepretrieval.data import load_collection
from deepretrieval.prompts import PromptSettings
from deepretrieval.rewards import PRESETS
from deepretrieval.search.remote import open_remote
from deepretrieval.tasks import TaskReward, get_task

ROOT = Path(__file__).resolve().parents[1]
CRANFIELD = ROOT.parent / "shared" / "data" / "classic" / "cranfield"
COMMAND = ".venv/bin/python benchmarks/service_load.py"
SETTINGS = PromptSettings(variant="direct", mode="rewrite", context_docs=0)
GROUP = 16  # completions in a GRPO group


@contextmanager
def service_process(data: Path, index: Path, workers: int) -> Iterator[str]:
    """``deepretrieval serve search`` on a free loopback port (this interpreter, this source tree); its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-c", "from deepretrieval.cli import main; main()", "serve", "search"]
    command += ["--data", str(data), "--index", str(index), "--port", str(port), "--workers", str(workers)]
    source = str(Path(deepretrieval.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    env.pop("DEEPRETRIEVAL_SERVICE_TOKEN", None)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the service did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def load(url: str, batches: list[list[str]], k: int, expected: list[list[list[str]]], clients: int) -> dict:
    """``clients`` threads sending their share of ``batches`` at once; latencies, errors, wall time."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(mine: list[int]) -> None:
        with httpx.Client(timeout=60) as http:
            start.wait()
            for i in mine:
                began = time.perf_counter()
                try:
                    reply = http.post(f"{url}/search", json={"queries": batches[i], "k": k})
                    ok = reply.status_code == 200 and [r["ids"] for r in reply.json()["results"]] == expected[i]
                    problem = None if ok else f"batch {i}: HTTP {reply.status_code} or rankings differ"
                except httpx.HTTPError as exc:
                    problem = f"batch {i}: {type(exc).__name__}"
                with lock:
                    latencies.append(time.perf_counter() - began)
                    if problem:
                        errors.append(problem)

    threads = [threading.Thread(target=client, args=(list(range(c, len(batches), clients)),)) for c in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return {"seconds": time.perf_counter() - began, "latencies": latencies, "errors": errors}


def completions(collection, repeats: int) -> list[list[str]]:
    """``repeats`` groups of 16 distinct answers in the direct variant's format (the prompt holds its opening):
    each a Cranfield query's first words, so no two groups share an answer."""
    questions = [e.question.split() for e in collection.examples]
    groups = []
    for r in range(repeats):
        group = [" ".join(questions[(r * GROUP + i) % len(questions)][: 3 + i % 5]) for i in range(GROUP)]
        groups.append([f'{text} {r}"}}</answer>' for text in group])
    return groups


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=CRANFIELD)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--batches", type=int, default=25, help="requests per client")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reward-batches", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "service_load.json")
    args = parser.parse_args()

    collection = load_collection(str(args.data))
    queries = [e.question for e in collection.examples]
    total = args.clients * args.batches
    size = args.batch_size
    batches = [[queries[(b * size + j) % len(queries)] for j in range(size)] for b in range(total)]
    task = get_task("retrieval")
    with tempfile.TemporaryDirectory() as folder:
        index = Path(folder) / "index"
        local = task.backend(collection, {}, index=index)
        began = time.perf_counter()
        expected = [[r.ids for r in local.search(batch, args.k)] for batch in batches]
        in_process = time.perf_counter() - began
        with service_process(args.data, index, args.workers) as url:
            load(url, batches[: args.clients], args.k, expected[: args.clients], args.clients)  # warm-up
            served = load(url, batches, args.k, expected, args.clients)
            remote = open_remote({"kind": "remote", "url": url})
            examples = collection.examples[:1]
            config = PRESETS["recall"]
            through = TaskReward(task, remote, examples, config, SETTINGS)
            here = TaskReward(task, local, examples, config, SETTINGS)
            timings: dict[str, list[float]] = {"remote": [], "local": []}
            groups = completions(collection, args.reward_batches + 1)
            for i, group in enumerate(groups):
                ids = [examples[0].id] * GROUP
                for name, reward in (("remote", through), ("local", here)):
                    began = time.perf_counter()
                    scored = reward.score_batch(group, ids)
                    if i:  # the first group warms both up
                        timings[name].append(time.perf_counter() - began)
                    if name == "remote":
                        remote_totals = [r.total for r in scored]
                    elif remote_totals != [r.total for r in scored]:
                        raise SystemExit(f"group {i}: remote and local rewards differ")
            requests_per_batch = remote.stats()["requests"] / len(groups)

    n = total * args.batch_size
    latencies = served["latencies"]
    remote_s, local_s = statistics.median(timings["remote"]), statistics.median(timings["local"])
    result = {
        "command": COMMAND,
        "collection": "cranfield",
        "documents": len(collection.documents),
        "service": f"deepretrieval serve search --data cranfield --workers {args.workers} (bm25, 127.0.0.1)",
        "clients": args.clients,
        "requests": total,
        "batch_size": args.batch_size,
        "queries": n,
        "k": args.k,
        "service_seconds": round(served["seconds"], 3),
        "service_queries_per_second": round(n / served["seconds"], 1),
        "in_process_seconds": round(in_process, 3),
        "in_process_queries_per_second": round(n / in_process, 1),
        "throughput_ratio": round(in_process / served["seconds"], 3),
        "latency_p50_ms": round(1000 * percentile(latencies, 0.50), 2),
        "latency_p99_ms": round(1000 * percentile(latencies, 0.99), 2),
        "errors": len(served["errors"]),
        "error_examples": served["errors"][:5],
        "reward_batch": {
            "completions": GROUP,
            "batches": len(timings["remote"]),
            "remote_median_seconds": round(remote_s, 4),
            "local_median_seconds": round(local_s, 4),
            "ratio": round(remote_s / local_s, 2),
            "requests_per_batch": round(requests_per_batch, 2),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if served["errors"]:
        raise SystemExit(f"{len(served['errors'])} requests failed: {served['errors'][:3]}")


if __name__ == "__main__":
    main()
