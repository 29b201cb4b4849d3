"""Then steps: verdicts computed from the drill's history, each able to fail."""

from __future__ import annotations

from pytest_bdd import parsers

from drkit.drill import Drill
from drkit.lab.topology import check_region
from steps.registry import then


@then("the RTO is within its objective", example="Then the RTO is within its objective")
def rto_within_objective(drill: Drill) -> None:
    """Disaster to the first write on the new writer followed by 5 more, against the objective."""
    drill.check_rto()


@then(
    "the RTO is within the timing profile's budget",
    example="Then the RTO is within the timing profile's budget",
)
def rto_within_budget(drill: Drill) -> None:
    """Detection interval x threshold + promotion + TTL + slack, against the measured RTO."""
    drill.check_budget()


@then(
    parsers.parse("the RPO measured on {region} is within its objective"),
    example="Then the RPO measured on us-west-2 is within its objective",
)
def rpo_within_objective(drill: Drill, region: str) -> None:
    """Acknowledged writes absent from the surviving database, against the objective."""
    drill.stop_workload()
    drill.check_rpo(check_region(region))


@then(
    parsers.parse("the RPO is reported as a breach of about the cut's length on {region}"),
    example="Then the RPO is reported as a breach of about the cut's length on us-west-2",
)
def rpo_breach_reported(drill: Drill, region: str) -> None:
    """Negative control: the loss the drill caused must be measured as a breach of about the
    link cut's length (cut to disaster, +-1.5 s), with the lost writes listed."""
    drill.stop_workload()
    drill.check_rpo_breach(check_region(region), slack_s=1.5)


@then(
    parsers.parse("no write sent straight to {region} was acknowledged"),
    example="Then no write sent straight to us-east-1 was acknowledged",
)
def fencing_held(drill: Drill, region: str) -> None:
    """Fencing held: the old region's service refused every direct write (and some were sent)."""
    drill.check_direct_writes_refused(check_region(region))


@then(
    parsers.parse("no acknowledged write exists outside {region}'s database"),
    example="Then no acknowledged write exists outside us-west-2's database",
)
def no_split_brain(drill: Drill, region: str) -> None:
    """Every acknowledged write found in any region's database is also in `region`'s."""
    drill.stop_workload()
    drill.check_no_writes_outside(check_region(region))


@then(
    parsers.parse("no acknowledged write was lost on {region}"),
    example="Then no acknowledged write was lost on us-west-2",
)
def no_lost_writes(drill: Drill, region: str) -> None:
    """Every write the writer saw acknowledged is in the region's database with its content
    (judged from the writer's history, not from replication lag)."""
    drill.stop_workload()
    drill.check_no_lost_writes(check_region(region))


@then(
    "the watcher rode out every blip shorter than its detection window",
    example="Then the watcher rode out every blip shorter than its detection window",
)
def blips_ridden_out(drill: Drill) -> None:
    """Every blip was shorter than health interval x failure threshold, and the watcher,
    observed throughout, never failed over."""
    drill.check_blips_ridden_out()


@then(
    parsers.parse(
        "reads reached {old} for at most the TTL plus {slack:d} seconds after the DNS switch"
    ),
    example="Then reads reached us-east-1 for at most the TTL plus 1 seconds after the DNS switch",
)
def stale_reads_bounded(drill: Drill, old: str, slack: int) -> None:
    """The last read the old region answered came at most TTL + slack after the switch (and
    at least half a TTL after it: otherwise no cached answer was exercised)."""
    drill.stop_workload()
    drill.check_stale_reads_bounded(check_region(old), float(slack))


@then(
    parsers.parse("every read after the TTL plus {slack:d} seconds was answered by {new}"),
    example="Then every read after the TTL plus 1 seconds was answered by us-west-2",
)
def converged(drill: Drill, slack: int, new: str) -> None:
    """Clients converged: once TTL + slack had passed since the switch, only `new` answered."""
    drill.stop_workload()
    drill.check_converged(check_region(new), float(slack))


@then(
    "every read after the promotion saw the writes acknowledged before it",
    example="Then every read after the promotion saw the writes acknowledged before it",
)
def read_your_writes(drill: Drill) -> None:
    """Read-your-writes: each read after the promotion returned every write acknowledged
    (after the promotion) before the read began."""
    drill.stop_workload()
    drill.check_read_your_writes()


@then(
    "no read after the promotion was stale",
    example="Then no read after the promotion was stale",
)
def no_stale_reads(drill: Drill) -> None:
    """No read after the promotion was answered by the demoted region, or lost an id that an
    earlier read had already returned."""
    drill.stop_workload()
    drill.check_stale_reads()


@then(
    parsers.parse("errors stopped within {seconds:d} seconds of the new primary's first answer"),
    example="Then errors stopped within 3 seconds of the new primary's first answer",
)
def error_tail(drill: Drill, seconds: int) -> None:
    """The connection-pool tail: failed reads and writes after the new primary first answered
    end within the bound (latency in its first second is reported beside it)."""
    drill.stop_workload()
    drill.check_error_tail(float(seconds))
