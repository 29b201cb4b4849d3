"""Charts of the evidence package: each renders a PNG of its stated size from a hand-built
history, returns None when there is nothing to draw, and the trend reads stored run folders."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from drkit.evidence.charts import (
    DPI,
    NO_VERDICTS,
    SIZES,
    TrendPoint,
    fault_windows,
    lag_chart,
    load_trend,
    recovery_marks,
    rto_waterfall,
    timeline_chart,
    trend_chart,
)
from drkit.measure.builder import HistoryBuilder
from drkit.measure.history import Op
from drkit.measure.rto import check_rto, measure_rto
from tests.unit.drill_cases import EAST, PERIOD, WEST, failover, lag_drill

pytestmark = pytest.mark.unit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PHASE_TIMES = {"detection": 101.5, "decision": 101.6, "fencing": 101.62, "promotion": 101.9,
               "dns_switch": 102.0}  # fmt: skip


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the signature and decoding it all."""
    from matplotlib.image import imread

    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert imread(io.BytesIO(data), format="png").shape[:2] == (height, width)
    return width, height


def expected(kind: str) -> tuple[int, int]:
    width, height = SIZES[kind]
    return round(width * DPI), round(height * DPI)


def region_outage(writes_per_side: int = 200) -> tuple[Op, ...]:
    """Writes and reads on us-east-1, a link cut at 95 s, the disaster at 100 s (healed at
    110 s), failed and unknown writes, recovery marks, then us-west-2 answering from 102.5 s."""
    b = HistoryBuilder()
    before = [f"e{n}" for n in range(writes_per_side)]
    b.writes(before, 100.0 - writes_per_side * PERIOD, PERIOD, region=EAST)
    for n in range(writes_per_side):
        b.read(100.0 - writes_per_side * PERIOD + n * PERIOD + 0.02, region=EAST)
    b.fault("replication link cut", 95.0, record=1)
    b.fault("us-east-1 cut off", 100.0, disaster=True, record=2)
    b.writes([f"x{n}" for n in range(25)], 100.0, PERIOD * 2, result="fail")
    b.writes([f"u{n}" for n in range(5)], 100.01, PERIOD * 10, result="info")
    for phase, at in PHASE_TIMES.items():
        b.phase(phase, at)
    b.phase("detection", 101.55)  # the same mark from a second source
    b.writes([f"w{n}" for n in range(writes_per_side)], 102.5, PERIOD, region=WEST)
    b.fault("us-east-1 cut off", 110.0, f="heal", record=2)
    b.fault("replication link cut", 111.0, f="heal", record=1)
    return b.ops()


# -- facts ------------------------------------------------------------------------------


def test_fault_windows_pair_each_injection_with_its_heal_and_keep_unhealed_ones_open() -> None:
    ops = region_outage()
    windows = fault_windows(ops)
    assert [(w.fault, w.disaster, w.end is not None) for w in windows] == [
        ("replication link cut", False, True),
        ("us-east-1 cut off", True, True),
    ]
    assert windows[1].start == pytest.approx(100.0)
    assert windows[1].end == pytest.approx(110.01)  # the heal's completion
    before_heal = fault_windows([op for op in ops if op.mono < 105.0])
    assert [w.end for w in before_heal] == [None, None]


def test_recovery_marks_draw_a_phase_marked_twice_in_a_moment_once() -> None:
    marks = recovery_marks(region_outage())
    assert [name for name, _ in marks] == list(PHASE_TIMES)


# -- 1. timeline --------------------------------------------------------------------------


def test_timeline_renders_a_png_of_its_size() -> None:
    png = timeline_chart(region_outage(), title="us-east-1 cut off")
    assert png_size(png) == expected("timeline")


def test_timeline_of_an_empty_history_still_renders_saying_so() -> None:
    assert png_size(timeline_chart((), title="nothing")) == expected("timeline")


def test_timeline_renders_a_history_without_faults_or_recovery() -> None:
    b = HistoryBuilder().writes([f"d{n}" for n in range(50)], 0.0, PERIOD)
    assert png_size(timeline_chart(b.ops(), title="steady")) == expected("timeline")


def test_charts_of_a_single_operation_render_without_warnings() -> None:
    one = HistoryBuilder().observe("replication", 1.0, lag_s=0.0, lag_bytes=0).ops()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert png_size(timeline_chart(one, title="one op")) == expected("timeline")
        lag = lag_chart(one, title="one sample", threshold_s=1.0)
    assert lag is not None
    assert png_size(lag) == expected("lag")


def test_timeline_renders_a_10k_op_history() -> None:
    ops = region_outage(writes_per_side=2500)
    assert len(ops) > 10_000
    assert png_size(timeline_chart(ops, title="10k ops")) == expected("timeline")


# -- 2. replication lag -------------------------------------------------------------------


def test_lag_chart_renders_the_samples_with_the_threshold() -> None:
    png = lag_chart(lag_drill(12.0).ops(), title="lag", threshold_s=5.0)
    assert png is not None
    assert png_size(png) == expected("lag")


def test_lag_chart_renders_samples_with_bytes_and_without_bounds() -> None:
    b = HistoryBuilder().fault("link cut", 0.0)
    for n in range(1, 6):
        b.observe("replication", float(n), region=WEST, lag_s=n * 0.5, lag_bytes=4096 * n,
                  lag_upper_s=None if n == 3 else n * 0.8, alarm="OK")  # fmt: skip
    png = lag_chart(b.ops(), title="lag with bytes")
    assert png is not None
    assert png_size(png) == expected("lag")


def test_lag_chart_is_none_without_lag_samples() -> None:
    assert lag_chart(failover(2.0).ops(), title="no samples") is None


# -- 3. RTO waterfall ---------------------------------------------------------------------


def test_waterfall_renders_the_phases_of_a_failover() -> None:
    png = rto_waterfall(region_outage(), title="RTO", objective_s=900.0, budget_s=6.5)
    assert png is not None
    assert png_size(png) == expected("waterfall")


def test_waterfall_renders_from_phases_and_from_the_rto_verdict() -> None:
    ops = region_outage()
    phases = measure_rto(ops).phases
    assert phases[-1].name == "client_convergence"
    from_phases = rto_waterfall(phases, title="RTO", error_bar_s=PERIOD)
    from_dicts = rto_waterfall([vars(p) for p in phases], title="RTO")
    from_verdict = rto_waterfall(check_rto(ops), title="RTO", budget_s=3.0)
    for png in (from_phases, from_dicts, from_verdict):
        assert png is not None
        assert png_size(png) == expected("waterfall")


def test_waterfall_is_none_when_there_was_no_failover() -> None:
    steady = HistoryBuilder().writes([f"d{n}" for n in range(50)], 0.0, PERIOD).ops()
    unrecovered = HistoryBuilder().fault("us-east-1 cut off", 1.0, disaster=True).ops()
    assert rto_waterfall(steady, title="no disaster") is None
    assert rto_waterfall(unrecovered, title="no recovery") is None
    assert rto_waterfall([], title="nothing") is None
    assert rto_waterfall(check_rto(steady), title="unknown verdict") is None


# -- 4. trend across runs -----------------------------------------------------------------

DRILL = "test_the_primary_database_in_useast1_crashes_and_the_watcher_fails_over"


def verdict(checker: str, value: float | None, valid: bool | str = True, **kw: object) -> dict:
    return {"checker": checker, "valid": valid, "reason": "r", "value": value,
            "objective": kw.get("objective"), "unit": "s", "error_bar": kw.get("error_bar"),
            "details": {}}  # fmt: skip


def write_run(runs: Path, run_id: str, name: str, verdicts: list[dict] | None) -> None:
    """A run folder with the drill's verdict file, or only its history when `verdicts` is None."""
    stem = name.replace("_", "-") + "-0123abcd"
    if verdicts is None:
        history = runs / run_id / "histories" / f"{stem}.jsonl"
        history.parent.mkdir(parents=True)
        history.write_text(json.dumps({"prev": "0" * 64, "event": "header", "name": name}) + "\n")
        return
    path = runs / run_id / "verdicts" / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": name, "verdicts": verdicts}))


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    passing = [
        verdict("rto", 2.5, objective=900.0, error_bar=0.05),
        verdict("budget", 2.5, objective=6.5),
        verdict("rpo", 0.0, objective=3600.0),
    ]
    write_run(tmp_path, "20261126T090114Z-81eb", DRILL, passing)
    write_run(tmp_path, "20261126T080000Z-0001", DRILL, None)  # an older run, no verdict file
    write_run(tmp_path, "20261126T091547Z-c577", DRILL, [verdict("latency", 800.0, False)])
    write_run(tmp_path, "20261126T092532Z-aafa", DRILL, [verdict("rto", 2.2, error_bar=0.05),
                                                         verdict("rpo", 1.5, False)])  # fmt: skip
    write_run(tmp_path, "20261126T092532Z-aafa", "test_another_drill", [verdict("rto", 9.0)])
    write_run(tmp_path, "20261126T093000Z-ffff", "test_another_drill", [verdict("rto", 9.0)])
    return tmp_path


def test_load_trend_reads_the_drills_verdicts_in_run_order(runs: Path) -> None:
    points = load_trend(runs, DRILL)
    assert [p.run_id[-4:] for p in points] == ["0001", "81eb", "c577", "aafa"]
    old, passed, failed, lossy = points
    assert (old.rto_s, old.rpo_s, old.verdict) == (None, None, NO_VERDICTS)
    assert (passed.rto_s, passed.rpo_s, passed.rto_error_s, passed.verdict) == (
        2.5, 0.0, 0.05, "pass",
    )  # fmt: skip
    assert (passed.rto_objective_s, passed.rto_budget_s, passed.rpo_objective_s) == (
        900.0, 6.5, 3600.0,
    )  # fmt: skip
    assert (failed.rto_s, failed.rpo_s, failed.verdict) == (None, None, "fail")
    assert (lossy.rto_s, lossy.rpo_s, lossy.verdict) == (2.2, 1.5, "fail")
    assert passed.started_at.isoformat() == "2026-11-26T09:01:14+00:00"  # type: ignore[union-attr]


def test_load_trend_keeps_the_last_runs_and_matches_the_file_stem(runs: Path) -> None:
    assert [p.run_id[-4:] for p in load_trend(runs, DRILL, last=2)] == ["c577", "aafa"]
    stem = "test-another-drill-0123abcd"
    assert [p.rto_s for p in load_trend(runs, stem)] == [9.0, 9.0]
    assert load_trend(runs, "test_never_ran") == []


def test_trend_chart_renders_runs_with_gaps(runs: Path) -> None:
    points = load_trend(runs, DRILL)
    png = trend_chart(points, title="primary crash")
    assert png_size(png) == expected("trend")


def test_trend_chart_draws_given_objectives_and_renders_with_no_runs() -> None:
    points = [
        TrendPoint(f"2026112{n}T000000Z-000{n}", f"run {n}", 3.0 + n, 0.0, 0.05, "pass")
        for n in range(3)
    ]
    png = trend_chart(points, title="t", rto_objective_s=10.0, rpo_objective_s=5.0)
    assert png_size(png) == expected("trend")
    assert png_size(trend_chart([], title="no runs")) == expected("trend")


def test_importing_the_charts_module_does_not_import_matplotlib() -> None:
    code = "import sys, drkit.evidence.charts; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
