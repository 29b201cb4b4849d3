"""Benchmark: building the sealed evidence package of a drill run; prints figures, asserts nothing.

    .venv/bin/python bench/bench_evidence.py [--results reports/runs/<run-id>] [--runs 3]

Without --results it takes the stored run with the most drill verdicts (a full-catalog run
from `make drill` holds 17). Each build writes a fresh package to a temporary folder: copy,
compliance report, Allure 3 HTML as a folder and as one file, secret scan, manifest, Ed25519
signature, zip, and the verification `seal` runs on the zip. Goal: <= 10 s for a full-catalog
run, HTML included. Also prints `drkit evidence verify` on the result.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from drkit.evidence.package import build_package
from drkit.evidence.seal import generate_keypair, load_signing_key, verify
from drkit.paths import runs_dir


def fullest_run(root: Path) -> Path:
    runs = [
        p for p in root.iterdir() if (p / "allure-results").is_dir() and (p / "verdicts").is_dir()
    ]
    if not runs:
        raise SystemExit(f"no drill run with verdicts under {root}; run `make drill` first")
    return max(runs, key=lambda p: (len(list((p / "verdicts").glob("*.json"))), p.name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    run = args.results or fullest_run(runs_dir())
    drills = len(list((run / "verdicts").glob("*.json")))
    results = len(list((run / "allure-results").glob("*-result.json")))
    print(f"run {run.name}: {drills} drill verdict files, {results} Allure results")
    with tempfile.TemporaryDirectory() as tmp:
        private, public = Path(tmp) / "key.pem", Path(tmp) / "key.pub.pem"
        generate_keypair(private, public)
        key = load_signing_key(private)
        totals: list[float] = []
        stages: dict[str, list[float]] = {}
        for n in range(args.runs):
            started = time.perf_counter()
            package = build_package(run, quarter="2026-Q4", out=Path(tmp) / f"out{n}", key=key)
            totals.append(time.perf_counter() - started)
            for stage, took in package.timings.items():
                stages.setdefault(stage, []).append(took)
        started = time.perf_counter()
        report = verify(package.zip, public)
        verify_s = time.perf_counter() - started
        size = package.zip.stat().st_size / 1e6
    for stage, took in stages.items():
        mid = statistics.median(took)
        print(f"  {stage:18} median {mid:6.2f} s  (min {min(took):.2f}, max {max(took):.2f})")
    print(
        f"package build: median {statistics.median(totals):.2f} s over {args.runs} builds "
        f"(min {min(totals):.2f}, max {max(totals):.2f}); goal <= 10 s; zip {size:.1f} MB"
    )
    state = "intact" if report.ok else "NOT INTACT"
    print(f"verify: {verify_s:.2f} s, {state} ({report.files_checked} files)")


if __name__ == "__main__":
    main()
