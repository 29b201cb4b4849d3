"""Steps around the failover pre-flight: its thresholds, running it, index drift and repair."""

from __future__ import annotations

from pytest_bdd import parsers

from drkit.drill import Drill
from drkit.errors import ConfigError
from drkit.faults.lab import IndexDrift, lab_params
from drkit.lab.topology import check_region
from steps.registry import given, then, when

DRIFT_MODES = ("missing", "stale")


@given(
    parsers.parse("the planned switchover's lag threshold is {seconds:d} seconds"),
    example="Given the planned switchover's lag threshold is 2 seconds",
)
def lag_threshold(drill: Drill, seconds: int) -> None:
    """The replication lag past which the pre-flight refuses a failover (default 600 s)."""
    if seconds <= 0:
        raise ConfigError(f"lag threshold {seconds} seconds: use a positive number of seconds")
    drill.lag_threshold_s = float(seconds)


@when(
    parsers.parse("the {mode} pre-flight runs"),
    example="When the planned pre-flight runs",
)
def preflight_runs(drill: Drill, mode: str) -> None:
    """The failover pre-flight, checked now and kept in the history (it changes nothing)."""
    if mode not in ("planned", "unplanned"):
        raise ConfigError(f"pre-flight {mode!r}: use planned or unplanned")
    drill.preflight(mode)


@when(
    parsers.parse("{percent:d} % of {region}'s index vectors are {mode}"),
    example="When 5 % of us-west-2's index vectors are missing",
)
def index_drift(drill: Drill, percent: int, region: str, mode: str) -> None:
    """Index drift: a share of the region's vectors deleted (missing) or given a wrong content
    hash (stale); the drift is then read back and its count kept."""
    if mode not in DRIFT_MODES:
        raise ConfigError(f"index vectors {mode!r}: use {' or '.join(DRIFT_MODES)}")
    if not 0 < percent <= 100:
        raise ConfigError(f"{percent} % of the index: use 1 to 100")
    region = check_region(region)
    drill.inject(IndexDrift(**lab_params(drill.lab), region=region, share=percent / 100, mode=mode))
    drill.observe_index_drift(region, mode)


@when(
    parsers.parse("the {region} index is reconciled with its database"),
    example="When the us-west-2 index is reconciled with its database",
)
def reconcile(drill: Drill, region: str) -> None:
    """The repair runbook: upsert missing and stale vectors, delete extra ones, from the
    region's own database; what it changed is kept in the history."""
    drill.reconcile_index(check_region(region))


@then(
    parsers.parse("the pre-flight refused because of {reason}"),
    example="Then the pre-flight refused because of replication lag",
)
def preflight_refused(drill: Drill, reason: str) -> None:
    """The last pre-flight was not ready, and one of its reasons names `reason`."""
    drill.check_preflight_refused(reason)


@then("the pre-flight was ready", example="Then the pre-flight was ready")
def preflight_ready(drill: Drill) -> None:
    """The last pre-flight passed every check."""
    drill.check_preflight_ready()


@then(
    "the pre-flight refused and named the drifted vectors",
    example="Then the pre-flight refused and named the drifted vectors",
)
def drift_named(drill: Drill) -> None:
    """The last pre-flight refused and reported exactly as many missing (or stale) vectors as
    the drift's read-back counted."""
    drill.check_drift_named()


@when(
    parsers.parse("the database and index of {region} are compared"),
    example="When the database and index of us-west-2 are compared",
)
def compare_one(drill: Drill, region: str) -> None:
    """Ids and content hashes of the region's database and index, compared; kept."""
    drill.compare_regions([check_region(region)])


@when(
    "both regions' databases and indexes are compared",
    example="When both regions' databases and indexes are compared",
)
def compare_both(drill: Drill) -> None:
    """Ids and content hashes of both databases and both indexes, compared pairwise; kept."""
    drill.compare_regions(["us-east-1", "us-west-2"])


@then(
    "the compared databases and indexes held the same ids and content hashes",
    example="Then the compared databases and indexes held the same ids and content hashes",
)
def regions_agree(drill: Drill) -> None:
    """The last comparison found no missing, extra or stale record in any pair."""
    drill.check_regions_agree()
