"""Steps for the cross-region link: toxics on any path, watching replication lag and its alarm."""

from __future__ import annotations

from pytest_bdd import parsers

from drkit.drill import Drill
from drkit.errors import ConfigError
from drkit.faults.lab import ProxyToxic, lab_params
from drkit.lab.topology import check_region, other_region, replication_link
from steps.registry import then, when

MAX_WATCH_S = 600


def _link(drill: Drill, primary: str, standby: str) -> str:
    ports = drill.lab.settings.ports
    return replication_link(check_region(primary), check_region(standby), ports.postgres).name


def _toxic(drill: Drill, proxy: str, toxic: str, stream: str, attributes: dict[str, int]) -> None:
    name = f"drill-{toxic}-{stream}"
    drill.inject(
        ProxyToxic(
            **lab_params(drill.lab),
            proxy=proxy,
            name=name,
            toxic_type=toxic,
            stream=stream,
            attributes=attributes,
        )
    )


@when(
    parsers.parse(
        "the replication link from {primary} to {standby} gets {latency:d} ms of latency "
        "with {jitter:d} ms of jitter"
    ),
    example="When the replication link from us-east-1 to us-west-2 gets 300 ms of latency "
    "with 50 ms of jitter",
)
def replication_latency(
    drill: Drill, primary: str, standby: str, latency: int, jitter: int
) -> None:
    """A latency toxic on the WAL stream (the primary's answers to the standby). On the aws
    target with `fis_templates.replication_latency`: that AWS FIS experiment instead."""
    if _fis(drill, "replication_latency", primary, latency_ms=latency, jitter_ms=jitter):
        return
    _toxic(
        drill, _link(drill, primary, standby), "latency", "downstream",
        {"latency": latency, "jitter": jitter},
    )  # fmt: skip


@when(
    parsers.parse("the replication link from {primary} to {standby} is limited to {rate:d} KB/s"),
    example="When the replication link from us-east-1 to us-west-2 is limited to 32 KB/s",
)
def replication_bandwidth(drill: Drill, primary: str, standby: str, rate: int) -> None:
    """A bandwidth toxic on the WAL stream: at most `rate` kilobytes a second pass. On the
    aws target with `fis_templates.replication_bandwidth`: that AWS FIS experiment instead."""
    if rate <= 0:
        raise ConfigError(f"bandwidth {rate} KB/s: use a positive rate (a cut is its own step)")
    if _fis(drill, "replication_bandwidth", primary, rate_kb_s=rate):
        return
    _toxic(drill, _link(drill, primary, standby), "bandwidth", "downstream", {"rate": rate})


def _fis(drill: Drill, fault: str, region: str, **expected: int) -> bool:
    """On the aws target, the config's FIS experiment for `fault`, if it maps one."""
    if drill.aws is None:
        return False
    experiment = drill.aws.fis_fault(fault, check_region(region), **expected)
    if experiment is None:
        return False
    drill.inject(experiment)
    return True


@when(
    parsers.re(
        r"the path (?P<proxy>\S+) gets a (?P<toxic>\w+) toxic on its (?P<stream>\w+) stream "
        r"with (?P<attributes>.+)"
    ),
    example="When the path us-east-1.api.from-public gets a latency toxic on its downstream "
    "stream with latency=200, jitter=20",
)
def any_toxic(drill: Drill, proxy: str, toxic: str, stream: str, attributes: str) -> None:
    """Any Toxiproxy toxic on any path (`<region>.<service>.from-<source>`), attributes as
    `name=value` pairs; the path, toxic, stream and attributes are checked before injection."""
    parsed: dict[str, int] = {}
    for pair in attributes.split(","):
        key, sep, value = pair.strip().partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise ConfigError(
                f"toxic attribute {pair.strip()!r}: write name=whole number, e.g. latency=200"
            )
        parsed[key.strip()] = int(value)
    _toxic(drill, proxy, toxic, stream, parsed)


@when(
    parsers.parse("{kb:d} KB of documents are written through the public name"),
    example="When 256 KB of documents are written through the public name",
)
def bulk_write(drill: Drill, kb: int) -> None:
    """A burst of 8 KB documents, acknowledged by the service, recorded like any write."""
    if not 0 < kb <= 65_536:
        raise ConfigError(f"{kb} KB of documents: use 1 to 65536 KB")
    drill.write_bulk(kb)


@when(
    parsers.parse(
        "the replication lag is watched until its alarm fires, for up to {seconds:d} seconds"
    ),
    example="When the replication lag is watched until its alarm fires, for up to 40 seconds",
)
def watch_until_alarm(drill: Drill, seconds: int) -> None:
    """Sample replication every health interval (each sample published to CloudWatch) until
    the lag alarm is in ALARM; running out of budget is not a failure here, the Then is."""
    _watch(drill, seconds, lambda s: s["alarm"] == "ALARM", "the replication lag alarm")


@when(
    parsers.parse(
        "the replication lag is watched until it exceeds {lag:d} seconds, for up to "
        "{seconds:d} seconds"
    ),
    example="When the replication lag is watched until it exceeds 5 seconds, for up to 40 seconds",
)
def watch_until_lag(drill: Drill, lag: int, seconds: int) -> None:
    """Sample replication every health interval until the measured lag exceeds `lag` s."""
    if lag <= 0:
        raise ConfigError(f"lag {lag} seconds: use a positive number of seconds")
    _watch(drill, seconds, lambda s: s["lag_s"] > lag, f"the replication lag to exceed {lag}s")


@when(
    parsers.parse("the replication lag is watched until it drains, for up to {seconds:d} seconds"),
    example="When the replication lag is watched until it drains, for up to 30 seconds",
)
def watch_until_drained(drill: Drill, seconds: int) -> None:
    """Sample replication until the standby has replayed everything (no lag in bytes)."""
    _watch(drill, seconds, lambda s: s["lag_bytes"] == 0 and s["lag_s"] == 0, "the lag to drain")


def _watch(drill: Drill, seconds: int, until: object, what: str) -> None:
    if not 0 < seconds <= MAX_WATCH_S:
        raise ConfigError(f"watching for {seconds} seconds: use 1 to {MAX_WATCH_S} seconds")
    try:
        drill.watch_replication(until, float(seconds), what)  # type: ignore[arg-type]
    except TimeoutError as exc:
        print(f"  {exc}; the samples are in the history for the Then steps")


@then(
    "the replication lag rose above the alarm threshold",
    example="Then the replication lag rose above the alarm threshold",
)
def lag_rose(drill: Drill) -> None:
    """Some sample after the first fault measured a lag above the timing profile's alarm
    threshold (5 s in the lab)."""
    drill.check_lag_rose()


@then("the replication lag alarm fired", example="Then the replication lag alarm fired")
def alarm_fired(drill: Drill) -> None:
    """The CloudWatch alarm on the published lag was seen in ALARM (the evaluator's verdict)."""
    drill.check_alarm_fired()


@then(
    parsers.parse("the replication lag fell back below {seconds:d} seconds"),
    example="Then the replication lag fell back below 2 seconds",
)
def lag_recovered(drill: Drill, seconds: int) -> None:
    """After the last heal, the lag fell below the bound and stayed below it to the last sample."""
    drill.check_lag_recovered(float(seconds))


@when(
    parsers.parse("the primary in {region} writes {mb:d} MB of WAL"),
    example="When the primary in us-east-1 writes 80 MB of WAL",
)
def wal_burst(drill: Drill, region: str, mb: int) -> None:
    """WAL volume fast (a row and a segment switch per MB, then a checkpoint): what a long cut
    under a busy desk accumulates, in seconds."""
    if not 0 < mb <= 4096:
        raise ConfigError(f"{mb} MB of WAL: use 1 to 4096 MB")
    drill.generate_wal(check_region(region), mb)


@when(
    parsers.parse("replication is watched for {seconds:d} seconds"),
    example="When replication is watched for 5 seconds",
)
def watch_for(drill: Drill, seconds: int) -> None:
    """Replication samples and the standby's slot, every health interval, for a while."""
    if not 0 < seconds <= MAX_WATCH_S:
        raise ConfigError(f"watching for {seconds} seconds: use 1 to {MAX_WATCH_S} seconds")
    drill.watch_replication_for(float(seconds))


@when(
    "the standby in us-west-2 is rebuilt from us-east-1",
    example="When the standby in us-west-2 is rebuilt from us-east-1",
)
def rebuild(drill: Drill) -> None:
    """The runbook's rebuild: a fresh base backup and slot through the link; timed."""
    drill.rebuild_standby()


@then(
    "the standby was reported as needing a rebuild",
    example="Then the standby was reported as needing a rebuild",
)
def rebuild_needed(drill: Drill) -> None:
    """After the heal the slot's WAL is gone and the standby never caught up: the drill
    reports a rebuild, not a slow catch-up."""
    drill.check_rebuild_needed()


@then(
    parsers.parse("the standby caught up within {seconds:d} seconds"),
    example="Then the standby caught up within 10 seconds",
)
def caught_up(drill: Drill, seconds: int) -> None:
    """No lag in bytes or seconds, at most `seconds` after the last heal (or rebuild)."""
    drill.check_caught_up(float(seconds))


@when(
    parsers.parse("the writes only {old} holds are exported into the evidence"),
    example="When the writes only us-east-1 holds are exported into the evidence",
)
def export_orphans(drill: Drill, old: str) -> None:
    """Before a rewind throws them away: every row the old primary holds that the new one
    lacks, to `evidence/orphaned-writes-*.json` in the run folder (books and records)."""
    old = check_region(old)
    drill.export_orphans(old, other_region(old))


@when(
    parsers.parse("{old} is rewound to follow {new}"),
    example="When us-east-1 is rewound to follow us-west-2",
)
def rewind(drill: Drill, old: str, new: str) -> None:
    """pg_rewind of the former primary against the new one, then streaming from it through
    the link, and its replay caught up; timed."""
    old, new = check_region(old), check_region(new)
    if old == new:
        raise ConfigError(f"{old} cannot follow itself; name the other region")
    drill.rewind(old, new)


@then(
    parsers.parse("the export held every acknowledged write {new} lacked"),
    example="Then the export held every acknowledged write us-west-2 lacked",
)
def orphans_exported(drill: Drill, new: str) -> None:
    """Every write the writer saw acknowledged and the new primary lacked is in the export."""
    check_region(new)
    drill.check_orphans_exported()
