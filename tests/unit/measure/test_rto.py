"""RTO on hand-built histories: start at the disaster, end at the first lasting write."""

from __future__ import annotations

import pytest

from drkit.measure.builder import HistoryBuilder
from drkit.measure.rto import check_rto, measure_rto

pytestmark = pytest.mark.unit

EAST, WEST = "us-east-1", "us-west-2"
PERIOD = 0.05
LATENCY = 0.01


def _failover(builder: HistoryBuilder | None = None, recover_at: float = 3.0) -> HistoryBuilder:
    """East serves until 1.0 s, the disaster at 1.0 s, failed writes, west from ``recover_at``."""
    b = builder or HistoryBuilder(latency=LATENCY)
    b.writes([f"e{n}" for n in range(20)], 0.0, PERIOD, region=EAST)
    b.fault("replication link cut", 0.5)
    b.fault("us-east-1 down", 1.0, disaster=True)
    down = int((recover_at - 1.0) / PERIOD)
    b.writes([f"x{n}" for n in range(down)], 1.0, PERIOD, result="fail")
    b.writes([f"w{n}" for n in range(20)], recover_at, PERIOD, region=WEST)
    return b


def test_rto_runs_from_the_disaster_to_the_first_lasting_write_ack() -> None:
    verdict = check_rto(_failover().ops())
    assert verdict.valid is True
    assert verdict.value == pytest.approx(3.0 + LATENCY - 1.0)
    assert verdict.error_bar == pytest.approx(PERIOD)
    assert verdict.details["new_writer"] == WEST and verdict.details["old_primary"] == EAST


def test_an_earlier_fault_is_not_the_disaster() -> None:
    m = measure_rto(_failover().ops())
    assert m.disaster is not None and m.disaster.fault == "us-east-1 down"
    assert m.disaster.mono == pytest.approx(1.0)


def test_a_success_that_does_not_last_n_writes_does_not_end_the_rto() -> None:
    b = HistoryBuilder(latency=LATENCY)
    b.fault("down", 0.0, disaster=True)
    b.writes(["w0", "w1", "w2"], 1.0, PERIOD, region=WEST)  # three oks...
    b.write("f0", 1.15, result="fail")  # ...then a failure
    b.writes([f"v{n}" for n in range(6)], 2.0, PERIOD, region=WEST)
    m = measure_rto(b.ops(), n=5)
    assert m.rto == pytest.approx(2.0 + LATENCY)
    assert measure_rto(b.ops(), n=2).rto == pytest.approx(1.0 + LATENCY)


def test_writes_acknowledged_by_the_old_primary_after_the_disaster_do_not_count() -> None:
    b = HistoryBuilder(latency=LATENCY)
    b.writes([f"e{n}" for n in range(10)], 0.0, PERIOD, region=EAST)
    b.fault("partition east", 0.5, disaster=True)
    b.writes([f"z{n}" for n in range(10)], 0.6, PERIOD, region=EAST)  # split brain on east
    b.writes([f"w{n}" for n in range(10)], 2.0, PERIOD, region=WEST)
    assert measure_rto(b.ops()).rto == pytest.approx(1.5 + LATENCY)


def test_a_pinned_new_writer_allows_recovery_in_place() -> None:
    b = HistoryBuilder(latency=LATENCY)
    b.writes([f"e{n}" for n in range(5)], 0.0, PERIOD, region=EAST)
    b.fault("primary process crash", 0.3, disaster=True)
    b.writes([f"r{n}" for n in range(10)], 1.3, PERIOD, region=EAST)
    assert measure_rto(b.ops()).rto is None  # east was the old primary: not a new writer
    assert measure_rto(b.ops(), new_writer=EAST).rto == pytest.approx(1.0 + LATENCY)


def test_a_wall_clock_step_does_not_change_the_rto() -> None:
    steady = _failover().ops()
    stepped = _failover(HistoryBuilder(latency=LATENCY).step_wall(at=2.0, delta=-3600.0)).ops()
    assert [op.wall for op in stepped] != [op.wall for op in steady]
    assert check_rto(stepped).value == check_rto(steady).value
    assert check_rto(stepped).error_bar == check_rto(steady).error_bar


def test_phases_follow_the_recovery_marks_and_add_up_to_the_rto() -> None:
    b = _failover()
    b.phase("detection", 0.2)  # before the disaster: belongs to nothing
    for name, at in [
        ("detection", 1.5),
        ("decision", 1.6),
        ("promotion", 2.1),
        ("dns_switch", 2.2),
    ]:
        b.phase(name, at)
    m = measure_rto(b.ops())
    names = [p.name for p in m.phases]
    assert names == ["detection", "decision", "promotion", "dns_switch", "client_convergence"]
    durations = [p.duration for p in m.phases]
    assert durations == pytest.approx([0.5, 0.1, 0.5, 0.1, 0.8 + LATENCY])
    assert sum(durations) == pytest.approx(m.rto)


def test_a_phase_mark_after_recovery_is_clipped_to_the_rto() -> None:
    b = _failover()
    b.phase("dns_switch", 9.0)  # recorded late by a slow orchestrator
    m = measure_rto(b.ops())
    assert m.rto is not None
    assert sum(p.duration for p in m.phases) == pytest.approx(m.rto)
    assert all(p.duration >= 0 for p in m.phases)


def test_breaching_the_objective_fails() -> None:
    verdict = check_rto(_failover().ops(), objective=1.0)
    assert verdict.valid is False
    assert "exceeds the 1s objective" in verdict.reason


def test_no_disaster_mark_is_unknown_and_says_how_to_mark_it() -> None:
    b = HistoryBuilder().writes(["a", "b"], 0.0, PERIOD)
    verdict = check_rto(b.ops())
    assert verdict.valid == "unknown"
    assert "disaster=True" in verdict.reason


def test_a_history_cut_before_recovery_is_unknown() -> None:
    b = HistoryBuilder(latency=LATENCY)
    b.writes([f"e{n}" for n in range(5)], 0.0, PERIOD, region=EAST)
    b.fault("down", 0.3, disaster=True)
    b.writes(["w0", "w1"], 1.0, PERIOD, region=WEST)
    b.write("w2", 1.1, region=WEST, result="pending")  # the run was killed mid-write
    verdict = check_rto(b.ops())
    assert verdict.valid == "unknown" and verdict.value is None
    assert "recovery was not observed" in verdict.reason


def test_no_recovery_for_longer_than_the_objective_fails() -> None:
    b = HistoryBuilder(latency=LATENCY)
    b.fault("down", 0.0, disaster=True)
    b.writes([f"f{n}" for n in range(40)], 0.0, PERIOD, result="fail")
    verdict = check_rto(b.ops(), objective=1.0)
    assert verdict.valid is False
    assert verdict.value == pytest.approx(39 * PERIOD + LATENCY)


def test_an_empty_history_is_unknown() -> None:
    assert check_rto(()).valid == "unknown"


def test_a_malformed_history_yields_unknown_not_an_exception() -> None:
    verdict = check_rto([object()])  # type: ignore[list-item]
    assert verdict.valid == "unknown" and "crashed" in verdict.reason


def test_a_write_sent_before_recovery_that_times_out_later_does_not_break_the_streak() -> None:
    b = HistoryBuilder(latency=LATENCY)
    b.fault("down", 0.0, disaster=True)
    b.write("stuck", 0.95, region=EAST, result="fail", latency=0.1)  # to the old region
    b.writes([f"w{n}" for n in range(8)], 1.0, PERIOD, region=WEST)  # its timeout lands among these
    assert measure_rto(b.ops()).rto == pytest.approx(1.0 + LATENCY)


def test_a_write_sent_after_recovery_that_fails_does_break_the_streak() -> None:
    b = HistoryBuilder(latency=LATENCY)
    b.fault("down", 0.0, disaster=True)
    b.writes([f"w{n}" for n in range(3)], 1.0, PERIOD, region=WEST)
    b.write("late-fail", 1.0 + 3 * PERIOD, region=WEST, result="fail")
    b.writes([f"v{n}" for n in range(6)], 2.0, PERIOD, region=WEST)
    assert measure_rto(b.ops()).rto == pytest.approx(2.0 + LATENCY)
