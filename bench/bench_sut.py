"""Benchmark the system under test on a real lab: ingest throughput through the public API,
query latency, and index replication lag from us-east-1 to us-west-2 under that load.

It starts a lab in a throw-away state folder on its own ports (default base 28400, with the
default 5,000 seed documents), prints figures, asserts nothing, and takes the lab down.

    .venv/bin/python bench/bench_sut.py [--writes 2000] [--clients 4] [--queries 300]

* ingest: acknowledged writes per second, `--clients` concurrent clients posting unique
  documents to us-east-1's public address (goal >= 100/s with the rest of the lab running);
* query: GET /query latency p50/p95 in each region, one client and `--clients` clients;
* replication lag: time from the ack on us-east-1 to the vector being fetchable in
  us-west-2's index (polled every `--poll` seconds, the figures' error bar), under the load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from drkit.config import LabPorts, LabSettings
from drkit.lab.lab import Lab
from drkit.lab.lock import lab_lock
from drkit.lab.seed import ISSUERS, seed_count_from_env
from drkit.lab.sut import api_url, async_index, document_counts, index_url
from drkit.lab.topology import REGIONS
from drkit.paths import new_run_id

EAST, WEST = REGIONS
FETCH_BATCH = 200  # ids per fetch: keeps the GET URL well under the server's header limit


@dataclass
class IngestRun:
    ack_at: dict[str, float] = field(default_factory=dict)  # id -> monotonic ack time
    latencies: list[float] = field(default_factory=list)
    failures: dict[int, int] = field(default_factory=dict)
    elapsed_s: float = 0.0


@contextmanager
def bench_lab(port_base: int) -> Iterator[Lab]:
    home = Path(tempfile.mkdtemp(prefix="drkit-bench-sut-", dir="/var/tmp"))
    os.chmod(home, 0o755)
    os.environ.update(DRKIT_HOME=str(home), DRKIT_LAB_PORT_BASE=str(port_base))
    lab = Lab(home, LabSettings(ports=LabPorts(port_base)))
    try:
        with lab_lock(home, f"bench-{new_run_id()}"):
            started = time.monotonic()
            lab.up()
            print(f"lab up in {time.monotonic() - started:.1f}s (state {home})")
            try:
                yield lab
            finally:
                lab.down(purge=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def document(n: int) -> dict[str, str]:
    issuer = ISSUERS[n % len(ISSUERS)]
    return {
        "id": f"bench-{uuid.uuid4().hex}",
        "title": f"{issuer.name} ({issuer.ticker}) intraday risk note {n}",
        "body": f"Desk exposure to {issuer.ticker} reviewed; limit utilisation {n % 97} percent.",
        "source": "bench",
        "as_of": "2025-06-30",
        "ticker": issuer.ticker,
    }


async def ingest(lab: Lab, run: IngestRun, writes: int, clients: int) -> None:
    """Fill `run` as acks arrive (the replication watcher reads it meanwhile)."""
    url = f"{api_url(lab.settings, EAST)}/documents"
    numbers = iter(range(writes))

    async def client(http: httpx.AsyncClient) -> None:
        for n in numbers:
            started = time.monotonic()
            try:
                response = await http.post(url, json=document(n))
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            done = time.monotonic()
            if status == 201:
                run.ack_at[response.json()["id"]] = done
                run.latencies.append(done - started)
            else:
                run.failures[status] = run.failures.get(status, 0) + 1

    async with httpx.AsyncClient(timeout=10) as http:
        started = time.monotonic()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        run.elapsed_s = time.monotonic() - started


async def watch_replication(
    lab: Lab, run: IngestRun, poll_s: float, stop: asyncio.Event
) -> dict[str, float]:
    """id -> monotonic time it was first fetchable in us-west-2's index."""
    index = async_index(index_url(lab.settings, WEST), timeout_s=5)
    seen: dict[str, float] = {}
    try:
        while True:
            pending = [i for i in run.ack_at if i not in seen]
            for start in range(0, len(pending), FETCH_BATCH):
                found = await index.fetch(ids=pending[start : start + FETCH_BATCH])
                now = time.monotonic()
                seen.update({i: now for i in found.vectors})
            if stop.is_set() and len(seen) == len(run.ack_at):
                return seen
            await asyncio.sleep(poll_s)
    finally:
        await index.close()


async def queries(lab: Lab, region: str, count: int, clients: int) -> list[float]:
    url = f"{api_url(lab.settings, region)}/query"
    latencies: list[float] = []
    numbers = iter(range(count))

    async def client(http: httpx.AsyncClient) -> None:
        for n in numbers:
            issuer = ISSUERS[n % len(ISSUERS)]
            started = time.monotonic()
            response = await http.get(url, params={"q": f"{issuer.name} revenue guidance"})
            if response.status_code == 200:
                latencies.append(time.monotonic() - started)

    async with httpx.AsyncClient(timeout=10) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def show(name: str, values: list[float], note: str = "") -> None:
    if not values:
        print(f"{name:40} no samples {note}")
        return
    print(
        f"{name:40} p50 {pct(values, 0.5):7.1f} ms  p95 {pct(values, 0.95):7.1f} ms  "
        f"max {max(values) * 1000:7.1f} ms  (n={len(values)}) {note}"
    )


async def measure(lab: Lab, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    run = IngestRun()
    watcher = asyncio.create_task(watch_replication(lab, run, args.poll, stop))
    await ingest(lab, run, args.writes, args.clients)
    stop.set()
    seen = await asyncio.wait_for(watcher, timeout=60)
    rate = len(run.ack_at) / run.elapsed_s
    print(
        f"{'ingest through us-east-1 public API':40} {rate:7.1f} acked writes/s "
        f"({len(run.ack_at)} in {run.elapsed_s:.1f}s, {args.clients} clients; "
        f"failures {run.failures or 'none'})  goal >= 100/s"
    )
    show("ingest latency (ack)", run.latencies)
    lags = [seen[i] - acked for i, acked in run.ack_at.items() if i in seen]
    show("replication lag ack -> us-west-2 index", lags, f"(poll {args.poll * 1000:.0f} ms)")
    for region in REGIONS:
        for clients in sorted({1, args.clients}):
            latencies = await queries(lab, region, args.queries, clients)
            show(f"query latency {region}, {clients} client(s)", latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--poll", type=float, default=0.01, help="replication poll, seconds")
    parser.add_argument("--port-base", type=int, default=28400)
    args = parser.parse_args()
    print(f"seed documents: {seed_count_from_env()}, cpus: {os.cpu_count()}")
    with bench_lab(args.port_base) as lab:
        asyncio.run(measure(lab, args))
        print(f"documents after the run: {document_counts(lab)}")


if __name__ == "__main__":
    main()
