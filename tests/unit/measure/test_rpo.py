"""RPO on hand-built histories: lost, changed and indeterminate writes against a final read."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drkit.measure.builder import HistoryBuilder, payload_hash
from drkit.measure.rpo import check_rpo, measure_rpo

pytestmark = pytest.mark.unit

EAST, WEST = "us-east-1", "us-west-2"
LATENCY = 0.01


def _final(*ids: str) -> dict[str, str | None]:
    return {i: payload_hash(i) for i in ids}


def _ten_writes_then_disaster(at: float = 1.0) -> HistoryBuilder:
    b = HistoryBuilder(latency=LATENCY)
    b.writes([f"d{n}" for n in range(10)], 0.0, 0.1, region=EAST)  # acked at n/10 + 0.01
    b.fault("us-east-1 down", at, disaster=True)
    return b


def test_rpo_is_zero_when_every_acknowledged_write_survives() -> None:
    ops = _ten_writes_then_disaster().ops()
    verdict = check_rpo(ops, _final(*(f"d{n}" for n in range(10))))
    assert (verdict.valid, verdict.value) == (True, 0.0)
    assert verdict.details["lost_ids"] == []


def test_lost_writes_are_listed_exactly_and_rpo_reaches_back_to_the_oldest() -> None:
    ops = _ten_writes_then_disaster().ops()
    verdict = check_rpo(ops, _final(*(f"d{n}" for n in range(7))))
    assert verdict.details["lost_ids"] == ["d7", "d8", "d9"]
    assert verdict.details["lost_count"] == 3
    assert verdict.value == pytest.approx(1.0 - (0.7 + LATENCY))
    assert verdict.valid is True and verdict.error_bar == pytest.approx(0.1)


def test_a_write_whose_content_changed_counts_as_lost() -> None:
    ops = _ten_writes_then_disaster().ops()
    final = _final(*(f"d{n}" for n in range(10)))
    final["d4"] = "0" * 64
    m = measure_rpo(ops, final)
    assert [(w.id, w.why) for w in m.lost] == [("d4", "content differs")]


def test_indeterminate_writes_are_apart_and_never_lost() -> None:
    b = _ten_writes_then_disaster(at=2.0)
    b.write("u1", 1.2, result="info")  # answer lost, committed
    b.write("u2", 1.3, result="info")  # answer lost, never committed
    b.write("u3", 1.9, result="pending")  # the history ends before it answered
    b.write("f1", 1.4, result="fail")  # refused, yet present: reported
    final = _final(*(f"d{n}" for n in range(10)), "u1", "f1")
    m = measure_rpo(b.ops(), final)
    assert m.lost == ()
    assert m.indeterminate_present == ("u1",)
    assert set(m.indeterminate_absent) == {"u2", "u3"}
    assert m.failed_but_present == ("f1",)
    verdict = check_rpo(b.ops(), final)
    assert verdict.value == 0.0 and "3 writes of unknown outcome apart (2 absent)" in verdict.reason


def test_a_write_acknowledged_by_the_old_primary_after_promotion_is_lost_and_flagged() -> None:
    b = _ten_writes_then_disaster(at=1.0)
    b.phase("promotion", 1.5)
    b.write("late", 2.0, region=EAST)  # the partitioned old primary still acknowledges
    final = _final(*(f"d{n}" for n in range(10)))
    m = measure_rpo(b.ops(), final)
    assert [w.id for w in m.lost] == ["late"] and m.lost[0].after_disaster
    verdict = check_rpo(b.ops(), final)
    assert "after the disaster" in verdict.reason
    assert verdict.value == pytest.approx(0.0)  # one lost write: the span is a single point


def test_rpo_spans_to_a_lost_write_acknowledged_after_the_disaster() -> None:
    b = _ten_writes_then_disaster(at=1.0)
    b.write("late", 2.0, region=EAST)
    m = measure_rpo(b.ops(), _final(*(f"d{n}" for n in range(8))))
    assert [w.id for w in m.lost] == ["d8", "d9", "late"]
    assert m.rpo == pytest.approx((2.0 + LATENCY) - (0.8 + LATENCY))


def test_breaching_the_objective_fails() -> None:
    ops = _ten_writes_then_disaster().ops()
    verdict = check_rpo(ops, _final("d0"), objective=0.5)
    assert verdict.valid is False and "exceeds the 0.5s objective" in verdict.reason


def test_without_a_final_read_rpo_is_unknown() -> None:
    verdict = check_rpo(_ten_writes_then_disaster().ops(), None)
    assert verdict.valid == "unknown" and "final read" in verdict.reason


def test_lost_writes_without_a_disaster_mark_are_unknown_but_listed() -> None:
    b = HistoryBuilder().writes(["a", "b"], 0.0, 0.1)
    verdict = check_rpo(b.ops(), _final("a"))
    assert verdict.valid == "unknown" and verdict.details["lost_ids"] == ["b"]


def test_a_wall_clock_step_does_not_change_the_rpo() -> None:
    stepped = HistoryBuilder(latency=LATENCY).step_wall(at=0.45, delta=+7200.0)
    stepped.writes([f"d{n}" for n in range(10)], 0.0, 0.1, region=EAST)
    stepped.fault("down", 1.0, disaster=True)
    final = _final(*(f"d{n}" for n in range(3)))
    plain = check_rpo(_ten_writes_then_disaster().ops(), final)
    assert check_rpo(stepped.ops(), final).value == pytest.approx(plain.value)


def test_an_empty_history_loses_nothing() -> None:
    verdict = check_rpo((), {})
    assert verdict.value == 0.0 and "none of 0 acknowledged" in verdict.reason


ack_times = st.lists(
    st.floats(min_value=0.0, max_value=500.0, allow_nan=False), min_size=1, max_size=30
)


@settings(max_examples=200, deadline=None)
@given(times=ack_times, disaster=st.floats(min_value=0.0, max_value=600.0), data=st.data())
def test_rpo_property(times: list[float], disaster: float, data: st.DataObject) -> None:
    """RPO is 0 exactly when nothing acknowledged is lost; else it covers every lost write."""
    lost = data.draw(st.sets(st.integers(0, len(times) - 1)), label="lost indexes")
    b = HistoryBuilder(latency=LATENCY)
    for n, at in enumerate(times):
        b.write(f"d{n}", at, region=EAST)
    b.fault("down", disaster, disaster=True)
    final = _final(*(f"d{n}" for n in range(len(times)) if n not in lost))
    m = measure_rpo(b.ops(), final)
    assert {w.id for w in m.lost} == {f"d{n}" for n in lost}
    assert m.rpo is not None
    if not lost:
        assert m.rpo == 0.0
    else:
        acks = [times[n] + LATENCY for n in lost]
        assert m.rpo >= max(acks) - min(acks) - 1e-9
        assert m.rpo >= disaster - min(acks) - 1e-9
