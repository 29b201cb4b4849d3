"""What each consequential step would do, for the registered plan (`drkit plan`, `--dr-plan`).

Keyed by the step's keyword and pattern. A step not listed here is planned from its keyword and
docstring (setup, action, check): it injects nothing and changes nothing an approver must see.
Every step that injects a fault, takes a recovery action or sets an objective is listed; a test
checks that each step calling `drill.inject` or a recovery action is.
"""

from __future__ import annotations

from steps.registry import Planned

SG = "security group of {region} (lab EC2 on moto)"
DB = "PostgreSQL in {region}"
RECORD = "public DNS record (lab Route 53 on moto)"
FENCE = "fence on {region}'s service"
LINK = "replication link {standby}->{primary} (Toxiproxy path {primary}.db.from-{standby})"


def _minutes(args: dict[str, int]) -> float:
    return args["minutes"] * 60.0


PLANS: dict[tuple[str, str], Planned] = {
    # objectives
    ("Given", "the RTO objective is {minutes:d} minutes"): Planned(
        "objective", "RTO objective {minutes} minutes", sets=(("rto_s", _minutes),)
    ),
    ("Given", "the RPO objective is {minutes:d} minutes"): Planned(
        "objective", "RPO objective {minutes} minutes", sets=(("rpo_s", _minutes),)
    ),
    ("Given", "the RPO objective is {seconds:d} seconds"): Planned(
        "objective",
        "RPO objective {seconds} seconds (a negative control that must see it breached)",
        sets=(("rpo_s", lambda a: float(a["seconds"])),),
    ),
    ("Given", "the planned switchover's lag threshold is {seconds:d} seconds"): Planned(
        "objective", "pre-flight lag threshold {seconds} s"
    ),
    # the automation under test and the workload
    ("Given", "the watcher is on"): Planned(
        "setup", "failover watcher started", ("failover watcher (lab process)",)
    ),
    ("Given", "the watcher is off"): Planned(
        "setup", "failover watcher stopped (negative control)", ("failover watcher (lab process)",)
    ),
    ("Given", "a writer and a probe run through the public name"): Planned(
        "workload", "20 writes and 20 reads a second through the public name", (RECORD,)
    ),
    ("Given", "{count:d} clients read through the public name, each with its own DNS cache"): (
        Planned("workload", "{count} clients reading through their own DNS caches", (RECORD,))
    ),
    ("Given", "the public name's TTL is {ttl:d} seconds"): Planned(
        "setup", "public record TTL set to {ttl} s (restored by the lab reset)", (RECORD,)
    ),
    ("Given", "a base backup of {region} is taken"): Planned(
        "setup", "pg_basebackup of {region} into a scratch folder", (DB,)
    ),
    # faults
    ("When", "{region} is cut off by its security group"): Planned(
        "fault",
        "region outage: every ingress rule of {region}'s security group revoked",
        (SG,),
        destructive=True,
    ),
    (
        "When",
        "{region} is cut off by its security group for {ms:d} milliseconds, "
        "{times:d} times, {gap:d} seconds apart",
    ): Planned(
        "fault",
        "{times} outages of {region} of {ms} ms, {gap} s apart (security group)",
        (SG,),
        destructive=True,
    ),
    ("When", "{region}'s security group stops admitting {service} traffic from {source}"): (
        Planned("fault", "{region}: {service} ingress from {source} revoked", (SG,))
    ),
    ("When", "the replication link from {primary} to {standby} is cut"): Planned(
        "fault", "replication link {primary}->{standby} blackholed", (LINK,)
    ),
    (
        "When",
        "the replication link from {primary} to {standby} gets {latency:d} ms of latency "
        "with {jitter:d} ms of jitter",
    ): Planned("fault", "latency {latency} ms +-{jitter} on the WAL stream", (LINK,)),
    ("When", "the replication link from {primary} to {standby} is limited to {rate:d} KB/s"): (
        Planned("fault", "bandwidth {rate} KB/s on the WAL stream", (LINK,))
    ),
    (
        "When",
        "the path {proxy} is blackholed for {ms:d} milliseconds, {times:d} times, "
        "{gap:d} seconds apart",
    ): Planned(
        "fault", "{times} blackholes of {ms} ms, {gap} s apart", ("Toxiproxy path {proxy}",)
    ),
    (
        "When",
        r"the path (?P<proxy>\S+) gets a (?P<toxic>\w+) toxic on its (?P<stream>\w+) stream "
        r"with (?P<attributes>.+)",
    ): Planned("fault", "{toxic} toxic ({attributes}) on {stream}", ("Toxiproxy path {proxy}",)),
    ("When", "the primary database in {region} crashes"): Planned(
        "fault", "{region}'s PostgreSQL killed (SIGKILL, no checkpoint)", (DB,), destructive=True
    ),
    ("When", "WAL replay is paused on {region}"): Planned(
        "fault", "WAL replay paused on {region}", (DB,)
    ),
    ("When", "{percent:d} % of {region}'s index vectors are {mode}"): Planned(
        "fault", "{percent} % of {region}'s index vectors made {mode}", ("index of {region}",)
    ),
    ("When", "a bulk delete removes {percent:d} % of the documents on {region}"): Planned(
        "fault", "bulk delete of {percent} % of the documents", (DB,), destructive=True
    ),
    ("When", "the primary in {region} writes {mb:d} MB of WAL"): Planned(
        "fault", "{mb} MB of WAL written on {region} (a long cut's backlog)", (DB,)
    ),
    ("When", "the faults heal"): Planned("heal", "every open fault healed and read back"),
    # recovery actions
    ("When", "the operator forces a failover to {region}"): Planned(
        "recovery",
        "forced failover to {region}: fence, promote, switch the public record",
        ("PostgreSQL in us-east-1 and {region}", RECORD, "fence on us-east-1's service"),
        destructive=True,
    ),
    ("When", "the operator forces a failover to {region} without fencing {old}"): Planned(
        "recovery",
        "failover to {region} leaving {old} unfenced (negative control)",
        ("PostgreSQL in {region}", RECORD),
        destructive=True,
    ),
    ("When", "the operator runs a planned switchover to {region}"): Planned(
        "recovery",
        "planned switchover to {region}: pre-flight, fence, promote, switch",
        ("PostgreSQL in both regions", RECORD, "fence on the old primary's service"),
        destructive=True,
    ),
    ("When", "the operator fails back from {frm} to {to}"): Planned(
        "recovery",
        "failback from {frm} to {to}: pre-flight, fence, promote, switch",
        ("PostgreSQL in {frm} and {to}", RECORD, "fence on {frm}'s service"),
        destructive=True,
    ),
    ("When", "the watcher fails over within {seconds:d} seconds"): Planned(
        "recovery",
        "the watcher's own failover awaited for up to {seconds} s",
        ("PostgreSQL in both regions", RECORD, "fence on the old primary's service"),
        destructive=True,
    ),
    ("When", "the fence on {region} is lifted"): Planned("recovery", "fence lifted", (FENCE,)),
    ("When", "{old} is rewound to follow {new}"): Planned(
        "recovery", "pg_rewind of {old} against {new}", ("PostgreSQL in {old}",), destructive=True
    ),
    ("When", "the standby in us-west-2 is rebuilt from us-east-1"): Planned(
        "recovery",
        "standby rebuilt from a fresh base backup",
        ("PostgreSQL in us-west-2",),
        destructive=True,
    ),
    ("When", "the {region} index is reconciled with its database"): Planned(
        "recovery", "index of {region} reconciled with its database", ("index of {region}",)
    ),
    ("When", "the deleted documents are copied back to {region}"): Planned(
        "recovery", "deleted rows copied back from the restored cluster", (DB,)
    ),
    ("When", "writes are sent straight to {region}'s service for {seconds:d} seconds"): Planned(
        "workload", "writes sent to {region}'s own address for {seconds} s (past DNS)"
    ),
}
