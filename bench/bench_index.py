"""Benchmark the lab's index server through the real `pinecone` SDK: start time, upsert, query.

Starts `python -m drkit.lab.index_server` in a throw-away data folder on 127.0.0.1, upserts
embedded texts in batches of 100, then times queries at that size. It prints figures and
asserts nothing about time.

    .venv/bin/python bench/bench_index.py [--vectors 5000] [--dimension 64] [--queries 300]
"""

from __future__ import annotations

import argparse
import functools
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from pinecone import Index, Pinecone

from drkit.lab.embedding import DIMENSION, embed

BATCH = 100
TOP_K = 10
WORDS = ["wire", "card", "transfer", "settlement", "account", "ledger", "margin", "fee"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def index_server(data: Path, dimension: int) -> Iterator[tuple[str, float]]:
    """A running server and the seconds from spawn to its first healthy answer."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "drkit.lab.index_server", "--port", str(port)]
    command += ["--data", str(data), "--region", "us-east-1", "--dimension", str(dimension)]
    start = time.monotonic()
    proc = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        while not healthy(url):
            if proc.poll() is not None:
                raise SystemExit(f"index server exited with {proc.returncode}: {command}")
            time.sleep(0.005)
        yield url, time.monotonic() - start
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def documents(count: int, dimension: int) -> list[dict[str, Any]]:
    def text(i: int) -> str:
        return " ".join(WORDS[(i * k) % len(WORDS)] for k in (1, 3, 5, 7)) + f" account {i % 97}"

    return [
        {
            "id": f"doc-{i:06d}",
            "values": embed(text(i), dimension),
            "metadata": {"site": ("us-east-1", "us-west-2")[i % 2], "amount": i % 1000},
        }
        for i in range(count)
    ]


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, round(0.95 * len(ms)) - 1)]
    return f"p50 {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms   max {ms[-1]:7.2f} ms"


def bench_upsert(index: Index, docs: list[dict[str, Any]]) -> None:
    half = len(docs) // 2
    sequential = timed(
        lambda: [index.upsert(vectors=docs[i : i + BATCH]) for i in range(0, half, BATCH)]
    )
    concurrent = timed(
        lambda: index.upsert(vectors=docs[half:], batch_size=BATCH, show_progress=False)
    )
    rates = {
        f"one batch of {BATCH} per call": half / sequential,
        f"batch_size={BATCH} (SDK, 8 in flight)": (len(docs) - half) / concurrent,
    }
    for name, rate in rates.items():
        print(f"upsert, {name:34} {rate:7.0f} vectors/s")


def bench_query(index: Index, queries: int, dimension: int) -> None:
    vectors = [
        embed(f"{WORDS[i % len(WORDS)]} transfer account {i}", dimension) for i in range(queries)
    ]
    cases: dict[str, Callable[[list[float]], Any]] = {
        "query topK=10": lambda v: index.query(vector=v, top_k=TOP_K),
        "query topK=10 +metadata": lambda v: index.query(
            vector=v, top_k=TOP_K, include_metadata=True
        ),
        "query topK=10 filter $eq,$lt": lambda v: index.query(
            vector=v, top_k=TOP_K, filter={"site": "us-east-1", "amount": {"$lt": 500}}
        ),
    }
    for name, run in cases.items():
        print(f"{name:42} {percentiles(latencies(run, vectors))}")


def latencies(run: Callable[[list[float]], Any], vectors: list[list[float]]) -> list[float]:
    run(vectors[0])  # warm the connection
    return [timed(functools.partial(run, v)) for v in vectors]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=5000)
    parser.add_argument("--dimension", type=int, default=DIMENSION)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--starts", type=int, default=5, help="server starts to time")
    args = parser.parse_args()
    docs = documents(args.vectors, args.dimension)
    data = Path(tempfile.mkdtemp(prefix="drkit-bench-index-"))
    try:
        empty_starts: list[float] = []
        for _ in range(args.starts):
            with index_server(data / f"empty-{len(empty_starts)}", args.dimension) as (_, took):
                empty_starts.append(took)
        print(
            f"index server, {args.vectors} vectors of dimension {args.dimension}, through the SDK"
        )
        with (
            index_server(data / "full", args.dimension) as (url, _),
            Pinecone(api_key="bench").index(host=url) as index,
        ):
            bench_upsert(index, docs)
            bench_query(index, args.queries, args.dimension)
        full_starts: list[float] = []
        for _ in range(args.starts):
            with index_server(data / "full", args.dimension) as (_, took):
                full_starts.append(took)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    for name, starts in (("empty", empty_starts), (f"{args.vectors} vectors", full_starts)):
        low, mid, high = min(starts), statistics.median(starts), max(starts)
        label = f"start to healthy ({name})"
        print(f"{label:42} min {low:5.2f} s   median {mid:5.2f} s   max {high:5.2f} s")


if __name__ == "__main__":
    main()
