"""Read-your-writes, stale reads and split brain after promotion, on hand-built histories."""

from __future__ import annotations

import pytest

from drkit.measure.builder import HistoryBuilder
from drkit.measure.reads import check_read_your_writes, check_stale_reads
from drkit.measure.rpo import check_split_brain

pytestmark = pytest.mark.unit

EAST, WEST = "us-east-1", "us-west-2"


def _promoted() -> HistoryBuilder:
    """East primary until the disaster at 1.0 s, west promoted at 1.5 s, writes w0..w4 on west."""
    b = HistoryBuilder(latency=0.01)
    b.writes(["e0", "e1", "e2"], 0.0, 0.1, region=EAST)
    b.fault("us-east-1 down", 1.0, disaster=True)
    b.phase("promotion", 1.5)
    b.writes([f"w{n}" for n in range(5)], 2.0, 0.1, region=WEST)  # acked at 2.01 .. 2.41
    return b


def test_reads_that_see_their_writes_hold() -> None:
    b = _promoted()
    b.read(2.05, region=WEST, expect=["w0"], ids=["w0"])
    b.read(2.45, region=WEST, expect=["w3", "w4"], ids=["w3", "w4"])
    verdict = check_read_your_writes(b.ops())
    assert verdict.valid is True and verdict.details["checked"] == 2


def test_a_read_missing_an_acknowledged_write_breaks_read_your_writes() -> None:
    b = _promoted()
    b.read(2.25, region=WEST, expect=["w1", "w2"], ids=["w1"])
    verdict = check_read_your_writes(b.ops())
    assert verdict.valid is False and verdict.value == 1
    assert verdict.details["anomalies"][0]["missing"] == ("w2",)
    assert "did not see writes acknowledged before it" in verdict.reason


def test_writes_lost_in_the_failover_are_rpo_not_read_your_writes() -> None:
    b = _promoted()
    b.read(2.05, region=WEST, expect=["e2", "w0"], ids=["w0"])  # e2 acked before promotion
    assert check_read_your_writes(b.ops()).valid is True


def test_an_expectation_not_yet_acknowledged_when_the_read_began_is_not_judged() -> None:
    b = _promoted()
    b.read(2.005, region=WEST, expect=["w0"], ids=[])  # w0 is acked at 2.01
    assert check_read_your_writes(b.ops()).valid == "unknown"


def test_without_expectations_read_your_writes_is_unknown_not_pass() -> None:
    b = _promoted().read(2.0, region=WEST)
    verdict = check_read_your_writes(b.ops())
    assert verdict.valid == "unknown" and "nothing was shown" in verdict.reason


def test_a_read_served_by_the_demoted_region_after_promotion_is_stale() -> None:
    b = _promoted()
    b.read(1.2, region=EAST, ids=["e2"])  # before promotion: not judged
    b.read(1.7, region=EAST, ids=["e2"])  # stale: a client still on the old primary
    b.read(2.5, region=WEST, ids=["w0"])
    verdict = check_stale_reads(b.ops())
    assert verdict.valid is False and verdict.value == 1
    assert "answered by the demoted region us-east-1" in verdict.reason


def test_a_read_that_loses_an_id_an_earlier_read_saw_is_stale() -> None:
    b = _promoted()
    b.read(2.2, region=WEST, expect=["w1"], ids=["w1"])
    b.read(2.3, region=WEST, expect=["w1"], ids=[])  # went back in time
    verdict = check_stale_reads(b.ops())
    assert verdict.valid is False
    assert verdict.details["anomalies"][0]["missing"] == ("w1",)


def test_an_id_seen_only_on_the_old_primary_and_lost_is_not_a_stale_read() -> None:
    b = _promoted()
    b.read(0.3, region=EAST, expect=["e2"], ids=["e2"])  # seen before the disaster
    b.read(2.0, region=WEST, expect=["e2"], ids=[])  # lost in the failover: RPO's business
    assert check_stale_reads(b.ops()).valid is True


def test_fresh_reads_after_promotion_hold() -> None:
    b = _promoted()
    for n in range(5):
        b.read(2.05 + n * 0.1, region=WEST, expect=[f"w{n}"], ids=[f"w{n}"])
    assert check_stale_reads(b.ops()).valid is True


def test_stale_reads_need_a_promotion_mark() -> None:
    b = HistoryBuilder().read(0.0, ids=["a"])
    verdict = check_stale_reads(b.ops())
    assert verdict.valid == "unknown" and "promotion" in verdict.reason


def test_two_regions_acknowledging_after_promotion_is_split_brain() -> None:
    b = _promoted()
    b.write("late", 2.2, region=EAST)  # the old primary came back unfenced
    verdict = check_split_brain(b.ops())
    assert verdict.valid is False and verdict.value == 2
    assert "us-east-1: 1 (late)" in verdict.reason


def test_one_writer_after_promotion_is_not_split_brain() -> None:
    assert check_split_brain(_promoted().ops()).valid is True
