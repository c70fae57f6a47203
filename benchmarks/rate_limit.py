"""The HTTP backends' shared rate limiter against the PubMed emulator on 127.0.0.1: does it keep NCBI's
limits (3 requests/s without an API key, 10 with one) while using most of them?

    .venv/bin/python benchmarks/rate_limit.py           # writes benchmarks/results/rate_limit.json (~95 s)

For each rate: one batch of ``--requests`` distinct searches (so none is de-duplicated or cached) through
``PubMedSearcher`` with ``--workers`` concurrent workers sharing the process's token bucket, against an
emulator in its own process (``deepretrieval serve emulator pubmed --rate-limit RATE``) that stamps each
request's arrival and enforces the limit as NCBI does (429 above ``rate`` requests in one second), so an
overshoot would show twice. Reported per rate, at the server (arrivals) and at the client (sends): the most
requests in any one-second window [t, t + 1) (t at every request: the maximum over all windows), the
throughput between the first and the last request and its share of the rate; the 429s; the batch's time.
The machine may be busy (other jobs share its 2 cores): that is the point of the limiter's headroom.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from deepretrieval.search.boolean import BooleanRequest
from deepretrieval.search.pubmed import PubMedSearcher


def max_in_one_second(times: list[float]) -> int:
    times = sorted(times)
    best, end = 0, 0
    for start, t in enumerate(times):
        while end < len(times) and times[end] < t + 1.0:
            end += 1
        best = max(best, end - start)
    return best


@contextmanager
def emulator_process(index: Path, rate: float) -> Iterator[str]:
    """``deepretrieval serve emulator pubmed`` on a free loopback port, enforcing ``rate``; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).with_name("deepretrieval")), "serve", "emulator", "pubmed"]
    command += ["--data", "literature-demo", "--index", str(index), "--port", str(port), "--rate-limit", str(rate)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{url}/_emulator/log").raise_for_status()
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def window_figures(times: list[float], rate: float, prefix: str) -> dict[str, float | int]:
    throughput = (len(times) - 1) / (max(times) - min(times))
    return {
        f"{prefix}_max_in_any_1s_window": max_in_one_second(times),
        f"{prefix}_throughput_rps": round(throughput, 3),
        f"{prefix}_share_of_rate": round(throughput / rate, 3),
    }


def measure(index: Path, rate: float, requests: int, workers: int) -> dict[str, float | int]:
    spec = {"kind": "pubmed", "rate": rate, "concurrency": workers, "cache": False, "retries": 3, "backoff": 0.5}
    with (
        emulator_process(index, rate) as url,
        PubMedSearcher.from_spec({**spec, "base_url": f"{url}/entrez/eutils"}) as client,
    ):
        httpx.delete(f"{url}/_emulator/log")
        sends: list[float] = []
        acquire = client.http.limiter.acquire
        client.http.limiter.acquire = lambda: (acquire(), sends.append(time.time()))[0]
        started = time.perf_counter()
        client.search([BooleanRequest(f"osteoarthritis[tiab] OR q{i}") for i in range(requests)], 10)
        seconds = time.perf_counter() - started
        stats = client.stats()
        log = httpx.get(f"{url}/_emulator/log").json()["requests"]
    arrivals = [r["time"] for r in log]
    return {
        "rate": rate,
        "searches": requests,
        "requests_sent": stats.requests,
        "requests_received": len(arrivals),
        **window_figures(arrivals, rate, "server"),
        **window_figures(sends, rate, "client"),
        "rate_limited_429": sum(r["status"] == 429 for r in log),
        "batch_seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", type=float, nargs="+", default=[3.0, 10.0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "rate_limit.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        runs = [measure(Path(folder) / "index", rate, args.requests, args.workers) for rate in args.rates]
    result = {
        "what": "PubMedSearcher against the PubMed emulator (own process, 127.0.0.1), one batch of distinct searches",
        "workers": args.workers,
        "headroom": 0.08,
        "runs": runs,
        "ok": all(
            r["server_max_in_any_1s_window"] <= r["rate"]
            and r["server_share_of_rate"] > 0.9
            and r["rate_limited_429"] == 0
            for r in runs
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
