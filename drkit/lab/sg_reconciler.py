"""Security groups, enforced: the lab's ingress rules in moto decide which proxies carry traffic.

Each region's services sit in one security group (`drkit-lab-services`). Every traffic source
has a modelled CIDR (the regions' VPCs and a public block). Proxy `<region>.<service>.from-
<source>` is allowed iff the region's group has an ingress rule whose ports cover the service
port and whose CIDR contains the source's CIDR; otherwise it is blackholed with two `timeout`
toxics of timeout 0 (Toxiproxy then accepts connections but passes no byte and never closes,
as a dropped packet does on AWS). The reconciler only ever touches those two toxics.

Run as a lab component: `python -m drkit.lab.sg_reconciler --state DIR --port-base N`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from drkit.clients.aws import AwsClients, AwsEndpoint, aws_errors
from drkit.clients.toxiproxy import Proxy, Toxic, ToxiproxyClient
from drkit.config import LabPorts
from drkit.errors import DrillError
from drkit.lab.topology import PUBLIC, ProxySpec

GROUP_NAME = "drkit-lab-services"
QUARANTINE_GROUP_NAME = "drkit-lab-quarantine"  # no ingress rule: what a fence swaps in
DB_INSTANCE_TAG = "drkit-lab-db"  # Name tag prefix of the EC2 instance "running" each database
DB_SERVICE = "db"
UP_STATES = ("pending", "running")
PUBLIC_CIDR = "203.0.113.0/24"  # TEST-NET-3: the harness, probes and clients on "the internet"
SOURCE_CIDRS: Mapping[str, str] = {
    "us-east-1": "10.1.0.0/16",
    "us-west-2": "10.2.0.0/16",
    PUBLIC: PUBLIC_CIDR,
}
BLACKHOLE_TOXICS: tuple[Toxic, ...] = (
    Toxic("sg-blackhole-up", "timeout", "upstream", 1.0, {"timeout": 0}),
    Toxic("sg-blackhole-down", "timeout", "downstream", 1.0, {"timeout": 0}),
)
ALLOWED, BLACKHOLED, UNKNOWN = "allowed", "blackholed", "unknown"
STATUS_FILE = "sg-reconciler.json"


# -- rules --------------------------------------------------------------------------------
@dataclass(frozen=True)
class IngressRule:
    """One flattened ingress rule: a protocol, a port range and one source."""

    protocol: str  # "tcp", "udp", "icmp", ... or "-1" for all
    from_port: int
    to_port: int
    source: str  # a CIDR, a security group id or a prefix list id
    source_kind: str = "cidr"  # "cidr", "cidr6", "group", "prefix-list"

    def covers(self, port: int) -> bool:
        """Whether TCP traffic to `port` matches this rule's protocol and ports."""
        if self.protocol == "-1":
            return True
        return self.protocol in ("tcp", "6") and self.from_port <= port <= self.to_port

    def describe(self) -> str:
        proto = "all traffic" if self.protocol == "-1" else self.protocol
        ports = "" if self.protocol == "-1" else f" port {self._ports()}"
        return f"{proto}{ports} from {self.source}"

    def _ports(self) -> str:
        if self.from_port == self.to_port:
            return str(self.from_port)
        return f"{self.from_port}-{self.to_port}"

    def to_permission(self) -> dict[str, Any]:
        """The rule as one boto3 `IpPermissions` entry."""
        perm: dict[str, Any] = {"IpProtocol": self.protocol}
        if self.protocol != "-1":
            perm |= {"FromPort": self.from_port, "ToPort": self.to_port}
        key, field = {
            "cidr": ("IpRanges", "CidrIp"),
            "cidr6": ("Ipv6Ranges", "CidrIpv6"),
            "group": ("UserIdGroupPairs", "GroupId"),
            "prefix-list": ("PrefixListIds", "PrefixListId"),
        }[self.source_kind]
        return perm | {key: [{field: self.source}]}


_SOURCE_FIELDS = (
    ("IpRanges", "CidrIp", "cidr"),
    ("Ipv6Ranges", "CidrIpv6", "cidr6"),
    ("UserIdGroupPairs", "GroupId", "group"),
    ("PrefixListIds", "PrefixListId", "prefix-list"),
)


_KIND_NAMES = {
    "cidr6": "an IPv6 range",
    "group": "another security group",
    "prefix-list": "a prefix list",
}


def rules_from_permissions(permissions: Iterable[Mapping[str, Any]]) -> list[IngressRule]:
    """Flatten boto3 `IpPermissions` into one IngressRule per source."""
    rules = []
    for perm in permissions:
        protocol = str(perm.get("IpProtocol", "-1"))
        low, high = int(perm.get("FromPort", -1)), int(perm.get("ToPort", -1))
        for key, field, kind in _SOURCE_FIELDS:
            for entry in perm.get(key) or ():
                rules.append(IngressRule(protocol, low, high, str(entry[field]), kind))
    return rules


def unenforceable_reason(rule: IngressRule, source_cidrs: Mapping[str, str]) -> str | None:
    """Why the lab cannot enforce `rule` faithfully, or None when it can.

    The lab enforces a rule whose CIDR contains whole modelled sources. A rule naming no
    modelled source, part of one, another security group, an IPv6 range or a prefix list
    would mean something on AWS that loopback cannot reproduce.
    """
    if rule.source_kind != "cidr":
        return (
            f"its source is {_KIND_NAMES[rule.source_kind]} ({rule.source}); the lab "
            f"enforces only IPv4 CIDRs of its modelled sources ({_modelled(source_cidrs)})"
        )
    try:
        network = ipaddress.ip_network(rule.source, strict=False)
    except ValueError:
        return f"its source {rule.source!r} is not a CIDR"
    modelled = {name: ipaddress.ip_network(cidr) for name, cidr in source_cidrs.items()}
    partial = [n for n, m in modelled.items() if _strict_subnet(network, m)]
    if partial:
        return (
            f"{rule.source} covers only part of {partial[0]}'s modelled {source_cidrs[partial[0]]}"
            "; the lab has one address per source, so allow the whole block"
        )
    if not any(_contains(network, m) for m in modelled.values()):
        return (
            f"{rule.source} matches no modelled source ({_modelled(source_cidrs)}); the lab "
            "cannot tell that traffic apart"
        )
    return None


def _strict_subnet(inner: Any, outer: Any) -> bool:
    return bool(inner.version == outer.version and inner != outer and inner.subnet_of(outer))


def _contains(outer: Any, inner: Any) -> bool:
    return bool(outer.version == inner.version and inner.subnet_of(outer))


def _modelled(source_cidrs: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {cidr}" for name, cidr in source_cidrs.items())


def rule_allows(rule: IngressRule, port: int, source_cidr: str) -> bool:
    """Whether an enforceable rule admits TCP traffic to `port` from the source's CIDR."""
    if rule.source_kind != "cidr" or not rule.covers(port):
        return False
    try:
        network = ipaddress.ip_network(rule.source, strict=False)
    except ValueError:
        return False
    return _contains(network, ipaddress.ip_network(source_cidr))


# -- the plan -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ProxyVerdict:
    proxy: str
    region: str
    service: str
    source: str
    state: str  # ALLOWED, BLACKHOLED or UNKNOWN
    reason: str


@dataclass(frozen=True)
class UnenforceableRule:
    region: str
    rule: str
    reason: str


@dataclass(frozen=True)
class EnforcementPlan:
    proxies: tuple[ProxyVerdict, ...]
    unenforceable: tuple[UnenforceableRule, ...]

    def state_of(self, proxy: str) -> str:
        return next((v.state for v in self.proxies if v.proxy == proxy), UNKNOWN)


@dataclass(frozen=True)
class DbInstance:
    """The EC2 instance a region's database runs on, as moto describes it: its state and the
    ingress rules of the groups attached to it (None: one of them could not be read)."""

    instance_id: str
    state: str
    groups: tuple[str, ...]
    rules: tuple[IngressRule, ...] | None


def plan_enforcement(
    rules_by_region: Mapping[str, Sequence[IngressRule] | None],
    proxies: Sequence[ProxySpec],
    source_cidrs: Mapping[str, str] = SOURCE_CIDRS,
    db_instances: Mapping[str, DbInstance] | None = None,
) -> EnforcementPlan:
    """Rules (None: the region's group could not be read) + proxies -> what each proxy does.

    A region's database paths follow the EC2 instance it runs on, when the seed has one: a
    stopped instance answers nothing (every path blackholed, as a powered-off host), and a
    running one admits what the groups attached to it admit (a fence that swaps in a
    quarantine group cuts every path to it)."""
    instances = db_instances or {}
    verdicts = tuple(
        _instance_verdict(instances[p.region], p, source_cidrs)
        if p.service == DB_SERVICE and p.region in instances
        else _verdict(rules_by_region.get(p.region), p, source_cidrs)
        for p in proxies
    )
    unenforceable = tuple(
        UnenforceableRule(region, rule.describe(), reason)
        for region, rules in sorted(rules_by_region.items())
        for rule in rules or ()
        if (reason := unenforceable_reason(rule, source_cidrs)) is not None
    )
    return EnforcementPlan(verdicts, unenforceable)


def _instance_verdict(
    instance: DbInstance, proxy: ProxySpec, source_cidrs: Mapping[str, str]
) -> ProxyVerdict:
    if instance.state not in UP_STATES:
        return ProxyVerdict(
            proxy.name, proxy.region, proxy.service, proxy.source, BLACKHOLED,
            f"instance {instance.instance_id} is {instance.state}: it answers nothing",
        )  # fmt: skip
    groups = ", ".join(instance.groups) or "no group"
    verdict = _verdict(
        None if instance.rules is None else list(instance.rules), proxy, source_cidrs
    )
    return replace(verdict, reason=f"{verdict.reason} (instance {instance.instance_id}: {groups})")


def _verdict(
    rules: Sequence[IngressRule] | None, proxy: ProxySpec, source_cidrs: Mapping[str, str]
) -> ProxyVerdict:
    def verdict(state: str, reason: str) -> ProxyVerdict:
        return ProxyVerdict(proxy.name, proxy.region, proxy.service, proxy.source, state, reason)

    if rules is None:
        return verdict(UNKNOWN, f"{proxy.region}'s group {GROUP_NAME} could not be read")
    port = int(proxy.upstream.rsplit(":", 1)[1])
    cidr = source_cidrs[proxy.source]
    allowing = next((r for r in rules if rule_allows(r, port, cidr)), None)
    if allowing is not None:
        return verdict(ALLOWED, f"allowed by {allowing.describe()}")
    return verdict(BLACKHOLED, f"no ingress rule admits tcp port {port} from {cidr}")


# -- applying it to Toxiproxy ---------------------------------------------------------------
def is_blackholed(proxy: Proxy) -> bool:
    """Both of the reconciler's toxics are on the proxy, as the reconciler sets them."""
    return all(_matches(proxy.toxic(t.name), t) for t in BLACKHOLE_TOXICS)


def _matches(actual: Toxic | None, wanted: Toxic) -> bool:
    return (
        actual is not None
        and actual.type == wanted.type
        and actual.stream == wanted.stream
        and actual.toxicity == wanted.toxicity
        and int(actual.attributes.get("timeout", -1)) == 0
    )


def has_blackhole_toxic(proxy: Proxy) -> bool:
    return any(proxy.toxic(t.name) is not None for t in BLACKHOLE_TOXICS)


def apply_plan(client: ToxiproxyClient, plan: EnforcementPlan) -> list[str]:
    """Make every proxy match its verdict; returns what changed. UNKNOWN proxies are left."""
    current = client.proxies()
    changes = []
    for verdict in plan.proxies:
        proxy = current.get(verdict.proxy)
        if proxy is None or verdict.state == UNKNOWN:
            continue
        if verdict.state == BLACKHOLED and not is_blackholed(proxy):
            for toxic in BLACKHOLE_TOXICS:
                if not _matches(proxy.toxic(toxic.name), toxic):
                    client.add_toxic(proxy.name, toxic)
            changes.append(f"{proxy.name}: blackholed ({verdict.reason})")
        elif verdict.state == ALLOWED and has_blackhole_toxic(proxy):
            for toxic in BLACKHOLE_TOXICS:
                client.remove_toxic(proxy.name, toxic.name)
            changes.append(f"{proxy.name}: allowed ({verdict.reason})")
    return changes


# -- the process ----------------------------------------------------------------------------
def find_group(clients: AwsClients, region: str) -> dict[str, Any] | None:
    """The region's services group as boto3 describes it, or None when it is absent."""
    with aws_errors(f"describe security group {GROUP_NAME} in {region}", "moto"):
        groups = clients.ec2(region).describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [GROUP_NAME]}]
        )["SecurityGroups"]
    return dict(groups[0]) if len(groups) == 1 else None


def db_instance_name(region: str) -> str:
    return f"{DB_INSTANCE_TAG}-{region}"


def find_db_instance(clients: AwsClients, region: str) -> dict[str, Any] | None:
    """The region's database instance as boto3 describes it (terminated ones aside), or None."""
    ec2 = clients.ec2(region)
    with aws_errors(f"describe instance {db_instance_name(region)} in {region}", "moto"):
        reservations = ec2.describe_instances(
            Filters=[{"Name": "tag:Name", "Values": [db_instance_name(region)]}]
        )["Reservations"]
    found = [
        dict(i)
        for r in reservations
        for i in r["Instances"]
        if i["State"]["Name"] not in ("terminated", "shutting-down")
    ]
    return found[0] if len(found) == 1 else None


def read_db_instance(clients: AwsClients, region: str) -> DbInstance | None:
    """The region's database instance with its attached groups' rules, or None (no such
    instance: an older seed, whose database paths follow the region's group)."""
    instance = find_db_instance(clients, region)
    if instance is None:
        return None
    ids = tuple(sorted(str(g["GroupId"]) for g in instance.get("SecurityGroups", [])))
    rules: tuple[IngressRule, ...] | None = ()
    if ids:
        with aws_errors(f"describe the groups of {instance['InstanceId']}", "moto"):
            groups = clients.ec2(region).describe_security_groups(GroupIds=list(ids))
        described = groups["SecurityGroups"]
        rules = (
            None
            if len(described) != len(ids)
            else tuple(r for g in described for r in rules_from_permissions(g["IpPermissions"]))
        )
    return DbInstance(str(instance["InstanceId"]), str(instance["State"]["Name"]), ids, rules)


class Reconciler:
    """One pass reads the groups and the proxies, applies the plan and writes the status."""

    def __init__(
        self,
        clients: AwsClients,
        toxiproxy: ToxiproxyClient,
        proxies: Sequence[ProxySpec],
        status_file: Path,
    ) -> None:
        self.clients = clients
        self.toxiproxy = toxiproxy
        self.proxies = list(proxies)
        self.status_file = status_file
        self.regions = sorted({p.region for p in self.proxies})
        self.passes = 0
        self.last_change: dict[str, Any] | None = None
        self.verify_every_s = 1.0
        self.verified_at: float | None = None  # when Toxiproxy was last read and fixed
        self._applied: EnforcementPlan | None = None
        self._next_verify = 0.0

    def _apply(self, plan: EnforcementPlan) -> list[str]:
        """Apply a new plan at once; re-check an unchanged one against Toxiproxy only every
        `verify_every_s` (to repair drift such as a Toxiproxy reset or restart)."""
        now = time.monotonic()
        if plan == self._applied and now < self._next_verify:
            return []
        changes = apply_plan(self.toxiproxy, plan)
        self._applied, self._next_verify = plan, now + self.verify_every_s
        self.verified_at = time.time()
        return changes

    def read_groups(self) -> dict[str, dict[str, Any] | None]:
        return {region: find_group(self.clients, region) for region in self.regions}

    def run_once(self) -> dict[str, Any]:
        started = time.time()
        self.passes += 1
        try:
            groups = self.read_groups()
            rules = {
                r: None if g is None else rules_from_permissions(g["IpPermissions"])
                for r, g in groups.items()
            }
            instances = {
                r: found
                for r in self.regions
                if (found := read_db_instance(self.clients, r)) is not None
            }
            plan = plan_enforcement(rules, self.proxies, db_instances=instances)
            changes = self._apply(plan)
        except DrillError as exc:
            status = self._status(started, error=str(exc))
        else:
            if changes:
                self.last_change = {"at": time.time(), "changes": changes}
            status = self._status(started, groups=groups, plan=plan)
        write_status(self.status_file, status)
        return status

    def _status(
        self,
        started: float,
        groups: Mapping[str, dict[str, Any] | None] | None = None,
        plan: EnforcementPlan | None = None,
        error: str | None = None,
    ) -> dict[str, Any]:
        missing = [r for r, g in (groups or {}).items() if g is None]
        if error is None and missing:
            error = (
                f"no security group {GROUP_NAME} in {', '.join(missing)} (moto restarted?); "
                "its proxies are left as they were; run `drkit lab reset` to seed it again"
            )
        return {
            "pid": os.getpid(),
            "pass_started_at": started,
            "pass_finished_at": time.time(),
            "passes": self.passes,
            "ok": error is None,
            "error": error,
            "groups": {r: _group_summary(g) for r, g in (groups or {}).items()},
            "proxies": {v.proxy: {"state": v.state, "reason": v.reason} for v in plan.proxies}
            if plan
            else {},
            "unenforceable": [asdict(u) for u in plan.unenforceable] if plan else [],
            "last_change": self.last_change,
            "toxiproxy_verified_at": self.verified_at,
        }


def _group_summary(group: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if group is None:
        return None
    rules = rules_from_permissions(group["IpPermissions"])
    return {
        "group_id": group["GroupId"],
        "vpc_id": group.get("VpcId"),
        "ingress": [r.describe() for r in rules],
    }


def write_status(path: Path, status: Mapping[str, Any]) -> None:
    """Replace the status file atomically, so a reader never sees half of it."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(status, indent=1, default=str))
    os.replace(tmp, path)


def log(message: str) -> None:
    """One line in the process's log, stamped with the UTC time."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    print(f"{stamp}.{int(time.time() % 1 * 1000):03d}Z {message}", flush=True)


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Enforce the lab's security groups on Toxiproxy")
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--port-base", type=int, required=True)
    parser.add_argument("--interval", type=float, default=0.15)
    args = parser.parse_args(argv)
    from drkit.config import LabSettings  # the lab's own layout, so proxies never drift
    from drkit.lab.lab import Lab

    ports = LabPorts(args.port_base)
    lab = Lab(args.state, LabSettings(ports=ports))
    reconciler = Reconciler(
        AwsClients(AwsEndpoint.lab(ports.moto, max_attempts=1)),
        ToxiproxyClient(f"http://127.0.0.1:{ports.toxiproxy_api}", timeout=2.0),
        lab.proxies(),
        args.state / "run" / STATUS_FILE,
    )
    log(f"sg-reconciler: {len(reconciler.proxies)} proxies, every {args.interval}s")
    logged: tuple[Any, Any] = (None, None)
    while True:
        status = reconciler.run_once()
        news = (status["error"], status["last_change"])
        if news != logged:  # log what changed, not every pass
            log(json.dumps({"error": news[0], "last_change": news[1]}))
            logged = news
        time.sleep(args.interval)  # the poll period: moto offers nothing to wait on


if __name__ == "__main__":
    sys.exit(main())
