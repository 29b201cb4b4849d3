"""Steps of the quarterly FINRA Rule 4370 test: pre-test verification, baselines, the DR
verification after the failover, and the compliance report."""

from __future__ import annotations

from pytest_bdd import parsers

from drkit.drill import Drill
from drkit.errors import ConfigError
from drkit.lab.topology import check_region
from drkit.measure.observations import BASELINE, LATENCY
from steps.registry import given, then, when


@given(
    parsers.parse(
        "the primary in {region} is healthy and replication lag is under {seconds:d} seconds"
    ),
    example="Given the primary in us-east-1 is healthy and replication lag is under 5 seconds",
)
def pretest(drill: Drill, region: str, seconds: int) -> None:
    """Pre-test verification: the primary answers, its service is healthy, replication lag
    is under the bound; otherwise the test does not start (inconclusive)."""
    if seconds <= 0:
        raise ConfigError(f"lag bound {seconds} seconds: use a positive number of seconds")
    drill.pretest(check_region(region), float(seconds))


@given(
    "the baseline document count and query latency are recorded",
    example="Given the baseline document count and query latency are recorded",
)
def baseline(drill: Drill) -> None:
    """The primary's document count, and p50/p95 of 40 searches through the public name."""
    drill.measure_latency(BASELINE)


@when(
    "a test query is sent through the public name",
    example="When a test query is sent through the public name",
)
def test_query(drill: Drill) -> None:
    """One search through the public name: which region answers, and how fast."""
    drill.test_query()


@when("query latency is measured again", example="When query latency is measured again")
def latency_again(drill: Drill) -> None:
    """p50/p95 of 40 searches through the public name, now (after the failover)."""
    drill.measure_latency(LATENCY)


@when(
    "the quarterly compliance report is written",
    example="When the quarterly compliance report is written",
)
def report(drill: Drill) -> None:
    """The compliance report from this run (objectives, failover, the last replication sample
    before the failure, every verdict so far) into the run's evidence, Markdown and JSON."""
    drill.write_compliance_report()


@then(
    parsers.parse("the test query was answered by {region}"),
    example="Then the test query was answered by us-west-2",
)
def answered_by(drill: Drill, region: str) -> None:
    """The last test query was answered by the region (its X-DR-Region header)."""
    drill.check_test_query(check_region(region))


@then(
    parsers.parse("query latency stayed within {factor:d} times the baseline p95"),
    example="Then query latency stayed within 5 times the baseline p95",
)
def latency_within(drill: Drill, factor: int) -> None:
    """p95 after the failover at most `factor` x the baseline's p95 (the drill's slack)."""
    if factor <= 0:
        raise ConfigError(f"latency factor {factor}: use a positive whole number")
    drill.check_latency_within(float(factor))


@then(
    "the compliance report states the measured RTO and RPO",
    example="Then the compliance report states the measured RTO and RPO",
)
def report_states(drill: Drill) -> None:
    """The report's RTO and RPO are the drill's measured values, labelled as measured."""
    drill.check_report_states_measurements()
