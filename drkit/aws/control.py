"""The aws target's control-plane operations: DNS, promotion, security groups, network ACLs,
CloudWatch and FIS, each read back from the API after it is made.

Security groups and network ACLs must be declared in the config (`[regions.<name>.network]`
security_groups, network_acls); anything else is refused by the blast-radius interlock
(InterlockRefused, an UnsafeDrillRefused).
Errors from boto3 are mapped at the seam (`drkit.clients.aws.aws_errors`); an API the endpoint
does not offer (Aurora global failover on moto, FIS where it does not exist) raises
AwsFeatureUnavailable naming the IAM action and the endpoint.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from botocore.parsers import ResponseParserError

from drkit.aws.clients import AwsClients
from drkit.aws.config import AwsConfig, DatabaseConfig, RegionConfig, SecretRef, resolve_secret
from drkit.aws.interlocks import check_destructive
from drkit.aws.waiters import (
    Waited,
    describe_db_instance,
    wait_db_available,
    wait_route53_insync,
    wait_until,
)
from drkit.clients.aws import AwsRequestError, aws_errors
from drkit.errors import ConfigError, DrillError, TargetUnreachable

# answers meaning "this endpoint has no such API", as opposed to "you may not" or "not now"
UNSUPPORTED_CODES = frozenset(
    {"NotImplemented", "InvalidAction", "UnknownOperationException", "UnsupportedOperation"}
)
# Route 53 deems an endpoint healthy when more than 18% of its health checkers report it so
ROUTE53_HEALTHY_SHARE = 0.18
# config key -> the resource kind the blast-radius interlock names
RESOURCE_KINDS = {"security_groups": "security group", "network_acls": "network ACL"}
# drkit's network-ACL deny entries live here (both directions), ahead of the usual 100+
ACL_RESERVED_RULES = range(1, 10)
FIS_TERMINAL = frozenset({"completed", "stopped", "failed", "cancelled"})


class AwsFeatureUnavailable(AwsRequestError):
    """The endpoint does not offer an API drkit needs (it answered, but not with AWS's API)."""


class ControlActionFailed(DrillError):
    """A control-plane change was refused, or reading it back shows it did not take."""


# -- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordSet:
    name: str
    type: str
    values: tuple[str, ...]
    ttl: int | None


@dataclass(frozen=True)
class RecordChange:
    """A Route 53 UPSERT of the public name, confirmed INSYNC and read back."""

    record: RecordSet
    previous: RecordSet | None
    change_id: str
    elapsed_s: float
    polls: int
    throttled: int


@dataclass(frozen=True)
class HealthCheckStatus:
    id: str
    healthy: bool
    healthy_checkers: int
    checkers: int
    observations: tuple[str, ...]  # "region: status report"


@dataclass(frozen=True)
class FailoverRecord:
    set_identifier: str
    role: str  # PRIMARY | SECONDARY
    values: tuple[str, ...]
    health_check_id: str | None


@dataclass(frozen=True)
class FailoverState:
    """Route 53 failover routing as observed: the records and their health checks. Route 53
    does not say which record it answers with; `expected_role` derives it from the checks."""

    records: tuple[FailoverRecord, ...]
    health_checks: tuple[HealthCheckStatus, ...]

    def healthy(self, record: FailoverRecord) -> bool:
        if record.health_check_id is None:
            return True  # a record without a health check counts as healthy
        return any(h.healthy for h in self.health_checks if h.id == record.health_check_id)

    @property
    def expected_role(self) -> str | None:
        roles = {r.role: r for r in self.records}
        primary, secondary = roles.get("PRIMARY"), roles.get("SECONDARY")
        if primary is None:
            return "SECONDARY" if secondary else None
        if self.healthy(primary) or secondary is None or not self.healthy(secondary):
            return "PRIMARY"  # when every record is unhealthy Route 53 answers the primary
        return "SECONDARY"


@dataclass(frozen=True)
class Promotion:
    """A database promoted in `region` (or found already writable: `already_primary`)."""

    region: str
    mechanism: str  # rds | aurora-global | self-managed
    target: str
    api: str
    already_primary: bool
    elapsed_s: float
    detail: str = ""


@dataclass(frozen=True, order=True)
class Rule:
    """One security-group permission for one peer (a CIDR, prefix list or group)."""

    protocol: str
    from_port: int | None
    to_port: int | None
    peer_kind: str  # ipv4 | ipv6 | prefix-list | group
    peer: str
    description: str = ""
    user_id: str = ""  # only for a group in another account

    def permission(self) -> dict[str, Any]:
        list_key, id_key = PEER_KEYS[self.peer_kind]
        peer = {id_key: self.peer}
        if self.description:
            peer["Description"] = self.description
        if self.user_id:
            peer["UserId"] = self.user_id
        ports = (
            {} if self.from_port is None else {"FromPort": self.from_port, "ToPort": self.to_port}
        )
        return {"IpProtocol": self.protocol, **ports, list_key: [peer]}

    def covers(self, port: int) -> bool:
        if self.protocol == "-1":
            return True
        if self.protocol not in ("tcp", "udp", "6", "17") or self.from_port is None:
            return False
        return self.from_port <= port <= (self.to_port if self.to_port is not None else port)

    def label(self) -> str:
        ports = "all" if self.from_port is None else f"{self.from_port}-{self.to_port}"
        return f"{self.protocol} {ports} {self.peer_kind} {self.peer}"


PEER_KEYS = {
    "ipv4": ("IpRanges", "CidrIp"),
    "ipv6": ("Ipv6Ranges", "CidrIpv6"),
    "prefix-list": ("PrefixListIds", "PrefixListId"),
    "group": ("UserIdGroupPairs", "GroupId"),
}
DIRECTIONS = ("ingress", "egress")


@dataclass(frozen=True)
class SecurityGroupSnapshot:
    """Every rule of a group, ingress and egress; JSON-able for a fault's ledger params."""

    group_id: str
    region: str
    ingress: frozenset[Rule]
    egress: frozenset[Rule]

    def rules(self, direction: str) -> frozenset[Rule]:
        return self.ingress if direction == "ingress" else self.egress

    def differences(self, other: SecurityGroupSnapshot) -> list[str]:
        """What ``other`` lacks or has in excess, one line per rule."""
        lines = []
        for direction in DIRECTIONS:
            mine, theirs = self.rules(direction), other.rules(direction)
            lines += [f"{direction} {r.label()} missing" for r in sorted(mine - theirs)]
            lines += [f"{direction} {r.label()} extra" for r in sorted(theirs - mine)]
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "region": self.region,
            **{d: [asdict(r) for r in sorted(self.rules(d))] for d in DIRECTIONS},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SecurityGroupSnapshot:
        try:
            rules = {d: frozenset(Rule(**r) for r in data[d]) for d in DIRECTIONS}
            return cls(
                str(data["group_id"]), str(data["region"]), rules["ingress"], rules["egress"]
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"security-group snapshot is malformed ({exc!r}): {data}") from exc


@dataclass(frozen=True, order=True)
class AclEntry:
    rule_number: int
    egress: bool
    cidr: str
    action: str = "deny"
    protocol: str = "-1"

    def request(self) -> dict[str, Any]:
        block = "Ipv6CidrBlock" if ":" in self.cidr else "CidrBlock"
        return {
            "RuleNumber": self.rule_number,
            "Egress": self.egress,
            "Protocol": self.protocol,
            "RuleAction": self.action,
            block: self.cidr,
        }

    def label(self) -> str:
        direction = "egress" if self.egress else "ingress"
        return f"{direction} rule {self.rule_number} {self.action} {self.cidr}"


@dataclass(frozen=True)
class AclIsolation:
    network_acl_id: str
    region: str
    entries: tuple[AclEntry, ...]  # drkit's entries present after the change
    subnets: tuple[str, ...]  # every subnet the ACL covers: all of them are cut


@dataclass(frozen=True)
class AlarmState:
    name: str
    region: str
    state: str  # OK | ALARM | INSUFFICIENT_DATA
    reason: str
    updated: str


@dataclass(frozen=True)
class FisExperiment:
    id: str
    template_id: str
    region: str
    status: str
    reason: str

    @property
    def finished(self) -> bool:
        return self.status in FIS_TERMINAL


# -- security groups on one EC2 client ------------------------------------------------------


def read_security_group(ec2: Any, group_id: str, region: str) -> SecurityGroupSnapshot:
    with aws_errors(f"describe security group {group_id}", _where(ec2)):
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    owner = str(group.get("OwnerId", ""))
    return SecurityGroupSnapshot(
        group_id,
        region,
        frozenset(_rules(group.get("IpPermissions", []), owner)),
        frozenset(_rules(group.get("IpPermissionsEgress", []), owner)),
    )


def _rules(permissions: Iterable[Mapping[str, Any]], owner: str) -> Iterator[Rule]:
    for perm in permissions:
        protocol = str(perm["IpProtocol"])
        from_port = None if protocol == "-1" else perm.get("FromPort")
        to_port = None if protocol == "-1" else perm.get("ToPort")
        for kind, (list_key, id_key) in PEER_KEYS.items():
            for peer in perm.get(list_key, []):
                user = str(peer.get("UserId", "")) if kind == "group" else ""
                yield Rule(
                    protocol,
                    from_port,
                    to_port,
                    kind,
                    str(peer[id_key]),
                    str(peer.get("Description", "")),
                    "" if user == owner else user,
                )


def change_rules(ec2: Any, group_id: str, direction: str, verb: str, rules: Iterable[Rule]) -> None:
    """``verb`` (authorize | revoke) ``rules`` of one direction, in one call."""
    permissions = [r.permission() for r in sorted(rules)]
    if not permissions:
        return
    method = getattr(ec2, f"{verb}_security_group_{direction}")
    with aws_errors(f"{verb} {len(permissions)} {direction} rule(s) of {group_id}", _where(ec2)):
        method(GroupId=group_id, IpPermissions=permissions)


def restore_rules(ec2: Any, snapshot: SecurityGroupSnapshot) -> SecurityGroupSnapshot:
    """Bring the group back to ``snapshot`` by difference (revoke the extra, then authorize
    the missing: a rule whose description changed is both) and read it back."""
    current = read_security_group(ec2, snapshot.group_id, snapshot.region)
    for direction in DIRECTIONS:
        wanted, have = snapshot.rules(direction), current.rules(direction)
        change_rules(ec2, snapshot.group_id, direction, "revoke", have - wanted)
        change_rules(ec2, snapshot.group_id, direction, "authorize", wanted - have)
    after = read_security_group(ec2, snapshot.group_id, snapshot.region)
    if problems := snapshot.differences(after):
        raise ControlActionFailed(
            f"security group {snapshot.group_id} ({snapshot.region}) does not read back as "
            f"its snapshot after the restore: {'; '.join(problems)}; compare it by hand"
        )
    return after


# -- network ACL entries on one EC2 client --------------------------------------------------


def isolation_entries(cidrs: Sequence[str]) -> tuple[AclEntry, ...]:
    """Deny-all entries for ``cidrs``, in both directions, numbered from the reserved range."""
    if not cidrs or len(cidrs) > len(ACL_RESERVED_RULES):
        raise ConfigError(
            f"network-ACL isolation takes 1 to {len(ACL_RESERVED_RULES)} CIDRs (rule numbers "
            f"{ACL_RESERVED_RULES.start}-{ACL_RESERVED_RULES.stop - 1}), got {cidrs!r}"
        )
    for cidr in cidrs:
        _check_cidr(cidr)
    return tuple(
        AclEntry(number, egress, cidr)
        for number, cidr in zip(ACL_RESERVED_RULES, cidrs, strict=False)
        for egress in (False, True)
    )


def _check_cidr(cidr: str) -> None:
    try:
        ipaddress.ip_network(cidr)
    except ValueError:
        raise ConfigError(f"{cidr!r} is not a CIDR block (e.g. 0.0.0.0/0 or 10.2.0.0/16)") from None


def read_network_acl(ec2: Any, acl_id: str) -> dict[str, Any]:
    with aws_errors(f"describe network ACL {acl_id}", _where(ec2)):
        return dict(ec2.describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"][0])


def acl_entries(acl: Mapping[str, Any]) -> set[AclEntry]:
    return {
        AclEntry(
            int(e["RuleNumber"]),
            bool(e["Egress"]),
            str(e.get("CidrBlock") or e.get("Ipv6CidrBlock")),
            str(e["RuleAction"]),
            str(e["Protocol"]),
        )
        for e in acl.get("Entries", [])
    }


def add_acl_entries(ec2: Any, acl_id: str, entries: Sequence[AclEntry]) -> None:
    """Create ``entries`` unless present; refuse if a reserved number holds something else."""
    current = acl_entries(read_network_acl(ec2, acl_id))
    taken = {(e.rule_number, e.egress): e for e in current}
    for entry in entries:
        other = taken.get((entry.rule_number, entry.egress))
        if other is not None and other != entry:
            raise ConfigError(
                f"network ACL {acl_id} already has {other.label()}; drkit reserves rule numbers "
                f"{ACL_RESERVED_RULES.start}-{ACL_RESERVED_RULES.stop - 1} for its deny entries: "
                "renumber that entry (AWS's default entries start at 100)"
            )
    for entry in entries:
        if entry not in current:
            with aws_errors(f"add {entry.label()} to network ACL {acl_id}", _where(ec2)):
                ec2.create_network_acl_entry(NetworkAclId=acl_id, **entry.request())


def remove_acl_entries(ec2: Any, acl_id: str, entries: Sequence[AclEntry]) -> None:
    """Delete those of ``entries`` that are present exactly as drkit made them."""
    current = acl_entries(read_network_acl(ec2, acl_id))
    for entry in entries:
        if entry in current:
            with aws_errors(f"delete {entry.label()} from network ACL {acl_id}", _where(ec2)):
                ec2.delete_network_acl_entry(
                    NetworkAclId=acl_id, RuleNumber=entry.rule_number, Egress=entry.egress
                )


def drkit_entries(acl: Mapping[str, Any]) -> tuple[AclEntry, ...]:
    return tuple(
        sorted(
            e
            for e in acl_entries(acl)
            if e.rule_number in ACL_RESERVED_RULES and e.action == "deny" and e.protocol == "-1"
        )
    )


# -- the control plane ----------------------------------------------------------------------


class AwsControlPlane:
    """What the aws target does to AWS; every change is read back before it returns."""

    def __init__(self, config: AwsConfig, clients: AwsClients | None = None) -> None:
        self.config = config
        self.clients = clients or AwsClients(config)

    def __repr__(self) -> str:
        return f"AwsControlPlane({self.config.path}, {self.clients!r})"

    # -- where things are -------------------------------------------------------------------

    def region_config(self, region: str) -> RegionConfig:
        if region not in self.config.regions:
            raise ConfigError(
                f"region {region!r} is not in {self.config.path}; it has "
                f"{', '.join(self.config.regions)}"
            )
        return self.config.region(region)

    def listed_region(self, kind: str, resource_id: str, region: str | None = None) -> str:
        """The region whose `[regions.<name>.network] kind` (security_groups, network_acls)
        declares ``resource_id``; drkit touches nothing undeclared (InterlockRefused)."""
        regions = [region] if region else list(self.config.regions)
        for name in regions:
            if resource_id in getattr(self.region_config(name).network, kind):
                return name
        declared = {x for n in regions for x in getattr(self.config.region(n).network, kind)}
        check_destructive(
            resource_id, kind=RESOURCE_KINDS[kind], declared=declared, allowed=True, region=region
        )
        raise AssertionError("check_destructive refuses an undeclared resource")

    def database(self, region: str) -> DatabaseConfig:
        return self.region_config(region).database

    # -- Route 53 ---------------------------------------------------------------------------

    def read_record(self, record_type: str | None = None) -> RecordSet | None:
        """The public name's simple-routing record of ``record_type`` (default: the first of
        A, AAAA, CNAME), or None."""
        types = (record_type,) if record_type else ("A", "AAAA", "CNAME")
        for found in self._record_sets(_dns_name(self.config.route53.record)):
            if found.get("Type") in types and "SetIdentifier" not in found:
                return _record_set(found)
        return None

    def _record_sets(self, name: str) -> list[Any]:
        route53 = self.clients.route53()
        with aws_errors(f"list records {name} in {self.config.route53.zone_id}", _where(route53)):
            answer = route53.list_resource_record_sets(
                HostedZoneId=self.config.route53.zone_id, StartRecordName=name, MaxItems="20"
            )
        return [r for r in answer["ResourceRecordSets"] if _dns_name(r["Name"]) == name]

    def upsert_record(
        self, address_or_target: str, ttl: int | None = None, *, budget_s: float = 300.0
    ) -> RecordChange:
        """Point the public name at an address (A/AAAA) or a host name (CNAME) with one UPSERT,
        wait until Route 53 reports it INSYNC, and read it back."""
        r53 = self.config.route53
        if r53.mode != "upsert":
            raise ConfigError(
                f"route53.mode is {r53.mode!r} in {self.config.path}: Route 53 moves the name "
                "itself by its health checks and drkit only observes it (failover_state()); "
                "set mode = 'upsert' to let drkit switch the record"
            )
        wanted = RecordSet(
            _dns_name(r53.record),
            _record_type(address_or_target),
            (address_or_target,),
            r53.ttl if ttl is None else ttl,
        )
        previous = self.read_record(wanted.type)
        route53 = self.clients.route53()
        with aws_errors(f"UPSERT {wanted.name} -> {address_or_target}", _where(route53)):
            answer = route53.change_resource_record_sets(
                HostedZoneId=r53.zone_id,
                ChangeBatch={"Comment": "drkit DR drill", "Changes": [_upsert(wanted)]},
            )
        waited = wait_route53_insync(route53, answer["ChangeInfo"]["Id"], budget_s)
        self._check_record(wanted)
        return RecordChange(
            wanted,
            previous,
            str(answer["ChangeInfo"]["Id"]),
            waited.elapsed_s,
            waited.polls,
            waited.throttled,
        )

    def _check_record(self, wanted: RecordSet) -> None:
        seen = self.read_record(wanted.type)
        if seen != wanted:
            raise ControlActionFailed(
                f"Route 53 reports the change INSYNC but {wanted.name} reads back as {seen}, "
                f"not {wanted}; another change may have raced this one: look at zone "
                f"{self.config.route53.zone_id}"
            )

    def failover_state(self) -> FailoverState:
        """Observe failover routing: the public name's PRIMARY/SECONDARY records and the state
        of every health check they (or the config) name. Changes nothing."""
        records = tuple(
            FailoverRecord(
                str(r.get("SetIdentifier")),
                str(r["Failover"]),
                tuple(v["Value"] for v in r.get("ResourceRecords", [])),
                r.get("HealthCheckId"),
            )
            for r in self._record_sets(_dns_name(self.config.route53.record))
            if r.get("Failover")
        )
        ids = dict.fromkeys(
            [*self.config.route53.health_check_ids, *(r.health_check_id for r in records)]
        )
        checks = tuple(self.health_check(i) for i in ids if i)
        return FailoverState(records, checks)

    def health_check(self, health_check_id: str) -> HealthCheckStatus:
        route53 = self.clients.route53()
        with aws_errors(f"get health check status {health_check_id}", _where(route53)):
            answer = route53.get_health_check_status(HealthCheckId=health_check_id)
        observations = [
            (str(o.get("Region")), str(o.get("StatusReport", {}).get("Status", "")))
            for o in answer.get("HealthCheckObservations", [])
        ]
        healthy = sum(1 for _, status in observations if status.startswith("Success"))
        share = healthy / len(observations) if observations else 0.0
        return HealthCheckStatus(
            health_check_id,
            share > ROUTE53_HEALTHY_SHARE,
            healthy,
            len(observations),
            tuple(f"{region}: {status}" for region, status in observations),
        )

    # -- promotion --------------------------------------------------------------------------

    def promote(
        self,
        region: str,
        *,
        planned: bool = False,
        password: str | None = None,
        budget_s: float | None = None,
        interval_s: float = 10.0,
    ) -> Promotion:
        """Make ``region``'s database the writer, by the config's `promotion`: an RDS read
        replica promoted, an Aurora global failover (``planned``: a switchover, no data loss),
        or `pg_promote()` on self-managed PostgreSQL. Already writable: nothing is done."""
        budget = self.config.objectives.rto_minutes * 60 if budget_s is None else budget_s
        mechanism = self.config.promotion
        if mechanism == "rds":
            return self._promote_rds(region, budget, interval_s)
        if mechanism == "aurora-global":
            return self._promote_aurora(region, planned, budget, interval_s)
        if mechanism == "self-managed":
            return self._promote_self_managed(region, password, budget)
        raise ConfigError(
            f"promotion {mechanism!r} in {self.config.path} is unknown; use rds, "
            "aurora-global or self-managed"
        )

    def _identifier(self, region: str, what: str) -> str:
        identifier = self.database(region).identifier
        if not identifier:
            raise ConfigError(
                f"[regions.{region}.database] identifier is missing in {self.config.path}; "
                f"promotion = {self.config.promotion!r} needs the {what}"
            )
        return identifier

    def _promote_rds(self, region: str, budget_s: float, interval_s: float) -> Promotion:
        identifier = self._identifier(region, "RDS instance id of the read replica")
        rds = self.clients.rds(region)
        start = time.monotonic()
        source = describe_db_instance(rds, identifier).get("ReadReplicaSourceDBInstanceIdentifier")
        if not source:
            return Promotion(
                region,
                "rds",
                identifier,
                "rds:PromoteReadReplica",
                True,
                0.0,
                "not a read replica: already standalone",
            )
        with aws_errors(f"promote read replica {identifier}", _where(rds)):
            rds.promote_read_replica(DBInstanceIdentifier=identifier)
        waited = wait_db_available(
            rds, identifier, budget_s, standalone=True, interval_s=interval_s
        )
        return Promotion(
            region,
            "rds",
            identifier,
            "rds:PromoteReadReplica",
            False,
            time.monotonic() - start,
            f"was a replica of {source}; {_polls(waited)}",
        )

    def _promote_aurora(
        self, region: str, planned: bool, budget_s: float, interval_s: float
    ) -> Promotion:
        global_id = self._identifier(region, "Aurora global-cluster id")
        rds = self.clients.rds(region)
        start = time.monotonic()
        member = _member_in(self._global_cluster(rds, global_id), region, global_id)
        arn = str(member["DBClusterArn"])
        if member.get("IsWriter"):
            return Promotion(
                region,
                "aurora-global",
                arn,
                "rds:FailoverGlobalCluster",
                True,
                0.0,
                "already the writer of the global cluster",
            )
        mode = {"Switchover": True} if planned else {"AllowDataLoss": True}
        with feature_guard(
            "Aurora global failover",
            "rds:FailoverGlobalCluster",
            _where(rds),
            "use promotion = 'rds' on this endpoint, or run against AWS",
        ):
            rds.failover_global_cluster(
                GlobalClusterIdentifier=global_id, TargetDbClusterIdentifier=arn, **mode
            )
        waited = wait_until(
            lambda: self._global_cluster(rds, global_id),
            lambda g: (
                g.get("Status") == "available"
                and bool(_member_in(g, region, global_id).get("IsWriter"))
            ),
            what=f"Aurora global cluster {global_id} to make {arn} its writer",
            budget_s=budget_s,
            interval_s=interval_s,
            state=lambda g: str(g.get("Status")),
        )
        return Promotion(
            region,
            "aurora-global",
            arn,
            "rds:FailoverGlobalCluster",
            False,
            time.monotonic() - start,
            _polls(waited),
        )

    def _global_cluster(self, rds: Any, global_id: str) -> dict[str, Any]:
        with aws_errors(f"describe global cluster {global_id}", _where(rds)):
            answer = rds.describe_global_clusters(GlobalClusterIdentifier=global_id)
        # filter here too: moto 5.2.5 ignores the identifier and lists every global cluster
        for cluster in answer.get("GlobalClusters", []):
            if cluster.get("GlobalClusterIdentifier") == global_id:
                return dict(cluster)
        raise ConfigError(f"Aurora global cluster {global_id!r} not found at {_where(rds)}")

    def _promote_self_managed(
        self, region: str, password: str | None, budget_s: float
    ) -> Promotion:
        import psycopg

        db = self.database(region)
        secret = password if password is not None else self._password(db, region)
        start = time.monotonic()
        try:
            with psycopg.connect(
                host=db.host,
                port=db.port,
                dbname=db.name,
                user=db.user,
                password=secret,
                connect_timeout=10,
                autocommit=True,
            ) as conn:
                return self._pg_promote(conn, region, db, max(1, int(budget_s)), start)
        except psycopg.OperationalError as exc:
            raise TargetUnreachable(
                f"{region} database {db.host}:{db.port}/{db.name} did not accept a connection "
                f"for pg_promote(): {str(exc).splitlines()[0] if str(exc) else exc!r}"
            ) from exc

    def _pg_promote(
        self, conn: Any, region: str, db: DatabaseConfig, wait_s: int, start: float
    ) -> Promotion:
        import psycopg

        target = f"{db.host}:{db.port}/{db.name}"
        if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
            return Promotion(
                region,
                "self-managed",
                target,
                "pg_promote()",
                True,
                0.0,
                "not in recovery: already a primary",
            )
        try:
            promoted = conn.execute("SELECT pg_promote(true, %s)", (wait_s,)).fetchone()[0]
        except psycopg.Error as exc:
            raise ControlActionFailed(f"pg_promote() on {target} refused: {exc}") from exc
        if not promoted or conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
            raise ControlActionFailed(
                f"pg_promote() on {target} did not finish within {wait_s}s: the server is "
                "still in recovery; look at its log"
            )
        return Promotion(
            region, "self-managed", target, "pg_promote()", False, time.monotonic() - start
        )

    def database_role(self, region: str) -> str | None:
        """'primary' or 'standby' as the region's database says now (self-managed:
        pg_is_in_recovery() over the config's connection; RDS: whether it still replicates
        from a source); None when it cannot be read. Changes nothing."""
        db = self.database(region)
        if self.config.promotion == "self-managed":
            import psycopg

            from drkit.clients.postgres import PgEndpoint

            endpoint = PgEndpoint(
                region, db.host, db.port, db.name, db.user, self._password(db, region)
            )
            try:
                with endpoint.connect(2) as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            except (TargetUnreachable, psycopg.Error):
                return None
            return None if row is None else ("standby" if row[0] else "primary")
        if self.config.promotion == "rds" and db.identifier:
            rds = self.clients.rds(region)
            with aws_errors(f"describe DB instance {db.identifier}", _where(rds)):
                found = rds.describe_db_instances(DBInstanceIdentifier=db.identifier)
            instance = found["DBInstances"][0]
            return "standby" if instance.get("ReadReplicaSourceDBInstanceIdentifier") else "primary"
        if self.config.promotion == "aurora-global" and db.identifier:
            rds = self.clients.rds(region)
            member = _member_in(self._global_cluster(rds, db.identifier), region, db.identifier)
            return "primary" if member.get("IsWriter") else "standby"
        return None

    # -- fencing: the old primary's database moved into a quarantine group ------------------

    def database_groups(self, region: str) -> tuple[str, ...]:
        """The security groups attached to `region`'s database now: its EC2 instance's
        (self-managed) or its RDS instance's (those being removed aside), sorted."""
        return self._database_groups(region)[0]

    def _database_groups(self, region: str) -> tuple[tuple[str, ...], bool]:
        """The database's groups, and whether they are settled (RDS: every one `active`)."""
        db = self.database(region)
        if self.config.promotion == "self-managed" and db.ec2_instance_id:
            from drkit.aws.waiters import describe_instance

            found = describe_instance(self.clients.ec2(region), db.ec2_instance_id)
            groups = tuple(sorted(str(g["GroupId"]) for g in found.get("SecurityGroups", [])))
            return groups, True
        if self.config.promotion == "rds" and db.identifier:
            found = describe_db_instance(self.clients.rds(region), db.identifier)
            attached = [
                g for g in found.get("VpcSecurityGroups", []) if g.get("Status") != "removing"
            ]
            groups = tuple(sorted(str(g["VpcSecurityGroupId"]) for g in attached))
            return groups, all(g.get("Status", "active") == "active" for g in attached)
        raise ConfigError(
            f"[regions.{region}] has no database instance whose groups drkit can change "
            f"(promotion {self.config.promotion!r}) in {self.config.path}"
        )

    def set_database_groups(
        self,
        region: str,
        groups: Sequence[str],
        *,
        budget_s: float = 300.0,
        interval_s: float = 2.0,
    ) -> Waited[tuple[str, ...]]:
        """Attach exactly `groups` to `region`'s database, and wait until it reads back so
        (RDS applies it immediately but asynchronously: its groups turn `active`)."""
        db = self.database(region)
        wanted = tuple(sorted(groups))
        if self.config.promotion == "self-managed" and db.ec2_instance_id:
            ec2 = self.clients.ec2(region)
            with aws_errors(f"set the groups of {db.ec2_instance_id} to {wanted}", _where(ec2)):
                ec2.modify_instance_attribute(InstanceId=db.ec2_instance_id, Groups=list(wanted))
            what = f"EC2 instance {db.ec2_instance_id} in groups {', '.join(wanted)}"
        elif self.config.promotion == "rds" and db.identifier:
            rds = self.clients.rds(region)
            with aws_errors(f"set the groups of {db.identifier} to {wanted}", _where(rds)):
                rds.modify_db_instance(
                    DBInstanceIdentifier=db.identifier,
                    VpcSecurityGroupIds=list(wanted),
                    ApplyImmediately=True,
                )
            what = f"RDS instance {db.identifier} in groups {', '.join(wanted)}"
        else:
            self.database_groups(region)  # raises the ConfigError naming what is missing
            raise AssertionError("unreachable")
        waited = wait_until(
            lambda: self._database_groups(region),
            lambda seen: seen == (wanted, True),
            what=what,
            budget_s=budget_s,
            interval_s=interval_s,
            state=lambda seen: (
                "groups "
                + (", ".join(seen[0]) or "none")
                + ("" if seen[1] else " (not all active yet)")
            ),
        )
        return Waited(
            waited.value[0], waited.state, waited.polls, waited.throttled, waited.elapsed_s
        )

    def database_password(self, region: str) -> str:
        """`region`'s database password, from the config's reference."""
        return self._password(self.database(region), region)

    def _password(self, db: DatabaseConfig, region: str) -> str:
        return self.secret(db.password, region)

    def secret(self, ref: SecretRef, region: str) -> str:
        """A secret from the config's reference: the environment, or Secrets Manager through
        drkit's own client (in the ARN's region)."""
        client = None
        if ref.secrets_manager is not None:
            arn = ref.secrets_manager.split(":")
            client = self.clients.secretsmanager(arn[3] if len(arn) > 3 else region)
        return resolve_secret(ref, secrets_client=client, config=self.config, region=region)

    # -- security groups --------------------------------------------------------------------

    def security_group_snapshot(
        self, group_id: str, region: str | None = None
    ) -> SecurityGroupSnapshot:
        """Every ingress and egress rule of a listed group."""
        region = self.listed_region("security_groups", group_id, region)
        return read_security_group(self.clients.ec2(region), group_id, region)

    def restore_security_group(
        self, group_id: str, snapshot: SecurityGroupSnapshot
    ) -> SecurityGroupSnapshot:
        """Restore by difference and read back equality (ControlActionFailed otherwise)."""
        if snapshot.group_id != group_id:
            raise ConfigError(f"the snapshot is of {snapshot.group_id}, not of {group_id}")
        region = self.listed_region("security_groups", group_id, snapshot.region)
        return restore_rules(self.clients.ec2(region), snapshot)

    # -- network ACLs -----------------------------------------------------------------------

    def network_acls_of(self, subnets: Sequence[str], region: str) -> tuple[str, ...]:
        """The network ACLs associated with ``subnets`` (each subnet has exactly one)."""
        ec2 = self.clients.ec2(region)
        with aws_errors(f"find the network ACLs of {', '.join(subnets)}", _where(ec2)):
            answer = ec2.describe_network_acls(
                Filters=[{"Name": "association.subnet-id", "Values": list(subnets)}]
            )
        return tuple(sorted({str(a["NetworkAclId"]) for a in answer["NetworkAcls"]}))

    def isolation_cidrs(self, acl_id: str, region: str | None = None) -> tuple[str, ...]:
        """0.0.0.0/0, and ::/0 when the ACL allows any IPv6 (else IPv6 is already denied)."""
        region = self.listed_region("network_acls", acl_id, region)
        acl = read_network_acl(self.clients.ec2(region), acl_id)
        ipv6 = any(":" in e.cidr and e.action == "allow" for e in acl_entries(acl))
        return ("0.0.0.0/0", "::/0") if ipv6 else ("0.0.0.0/0",)

    def isolate_subnets(
        self, acl_id: str, region: str | None = None, cidrs: Sequence[str] | None = None
    ) -> AclIsolation:
        """Deny all traffic through a listed network ACL (both directions, reserved rule
        numbers ahead of every allow entry). Every subnet the ACL covers is cut."""
        region = self.listed_region("network_acls", acl_id, region)
        entries = isolation_entries(cidrs or self.isolation_cidrs(acl_id, region))
        add_acl_entries(self.clients.ec2(region), acl_id, entries)
        isolation = self.isolation(acl_id, region)
        if missing := set(entries) - set(isolation.entries):
            raise ControlActionFailed(
                f"network ACL {acl_id} ({region}) lacks {sorted(e.label() for e in missing)} "
                "after they were added; look at the ACL"
            )
        return isolation

    def remove_isolation(
        self, acl_id: str, region: str | None = None, cidrs: Sequence[str] | None = None
    ) -> AclIsolation:
        """Delete drkit's deny entries (only those exactly as drkit makes them)."""
        region = self.listed_region("network_acls", acl_id, region)
        entries = isolation_entries(cidrs or self.isolation_cidrs(acl_id, region))
        remove_acl_entries(self.clients.ec2(region), acl_id, entries)
        isolation = self.isolation(acl_id, region)
        if left := set(entries) & set(isolation.entries):
            raise ControlActionFailed(
                f"network ACL {acl_id} ({region}) still has {sorted(e.label() for e in left)} "
                "after they were deleted; delete them by hand"
            )
        return isolation

    def isolation(self, acl_id: str, region: str | None = None) -> AclIsolation:
        """drkit's deny entries on the ACL now, and the subnets it covers."""
        region = self.listed_region("network_acls", acl_id, region)
        acl = read_network_acl(self.clients.ec2(region), acl_id)
        subnets = tuple(sorted(str(a["SubnetId"]) for a in acl.get("Associations", [])))
        return AclIsolation(acl_id, region, drkit_entries(acl), subnets)

    # -- CloudWatch -------------------------------------------------------------------------

    def put_metric(
        self,
        name: str,
        value: float,
        *,
        unit: str = "None",
        region: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        high_resolution: bool = False,
    ) -> None:
        """One data point in the config's namespace (default region: the primary);
        `high_resolution`: stored per second, as a 10-second alarm period needs."""
        cloudwatch = self.clients.cloudwatch(region or self.config.primary_region)
        datum = {
            "MetricName": name,
            "Value": float(value),
            "Unit": unit,
            "Dimensions": [{"Name": k, "Value": v} for k, v in (dimensions or {}).items()],
        }
        if high_resolution:
            datum["StorageResolution"] = 1
        with aws_errors(
            f"put metric {self.config.cloudwatch_namespace}/{name}", _where(cloudwatch)
        ):
            cloudwatch.put_metric_data(
                Namespace=self.config.cloudwatch_namespace,
                MetricData=[datum],  # type: ignore[list-item]
            )

    def put_lag_alarm(
        self, name: str, region: str, dimensions: Mapping[str, str], threshold_s: float
    ) -> None:
        """The replication-lag alarm on the monitor's ReplicationLagSeconds, in the config's
        namespace."""
        cloudwatch = self.clients.cloudwatch(region)
        request = lag_alarm_request(name, self.config.cloudwatch_namespace, dimensions, threshold_s)
        with aws_errors(f"put alarm {name} in {region}", _where(cloudwatch)):
            cloudwatch.put_metric_alarm(**request)

    def alarm_state(self, name: str, region: str) -> AlarmState:
        cloudwatch = self.clients.cloudwatch(region)
        with aws_errors(f"describe alarm {name} in {region}", _where(cloudwatch)):
            alarms = cloudwatch.describe_alarms(AlarmNames=[name])
        found = [*alarms.get("MetricAlarms", []), *alarms.get("CompositeAlarms", [])]
        if not found:
            raise ConfigError(
                f"CloudWatch alarm {name!r} does not exist in {region} "
                f"({_where(cloudwatch)}); check the stop conditions in {self.config.path}"
            )
        alarm: Mapping[str, Any] = found[0]
        return AlarmState(
            name,
            region,
            str(alarm["StateValue"]),
            str(alarm.get("StateReason", "")),
            str(alarm.get("StateUpdatedTimestamp", "")),
        )

    # -- AWS FIS ----------------------------------------------------------------------------

    def start_fis_experiment(self, template: str, region: str | None = None) -> FisExperiment:
        """Start an experiment from a template id (or a fault name in `fis_templates`).
        FIS reports its own state only: read the effect back from the resources it targets."""
        template_id = self.config.fis_templates.get(template, template)
        region = region or self.config.primary_region
        fis = self.clients.fis(region)
        with feature_guard("AWS FIS", "fis:StartExperiment", _where(fis), _FIS_FIX):
            answer = fis.start_experiment(
                experimentTemplateId=template_id,
                clientToken=str(uuid.uuid4()),
                tags={"drkit": "drill"},
            )
        experiment = _experiment(answer["experiment"], region)
        if experiment.status == "failed":
            raise ControlActionFailed(
                f"FIS experiment {experiment.id} from template {template_id} failed at once: "
                f"{experiment.reason}"
            )
        return experiment

    def fis_experiment(self, experiment_id: str, region: str | None = None) -> FisExperiment:
        region = region or self.config.primary_region
        fis = self.clients.fis(region)
        with feature_guard("AWS FIS", "fis:GetExperiment", _where(fis), _FIS_FIX):
            answer = fis.get_experiment(id=experiment_id)
        return _experiment(answer["experiment"], region)

    def stop_fis_experiment(self, experiment_id: str, region: str | None = None) -> FisExperiment:
        """Stop an experiment (a finished one is left as it is) and read its state back."""
        current = self.fis_experiment(experiment_id, region)
        if current.finished:
            return current
        fis = self.clients.fis(current.region)
        with feature_guard("AWS FIS", "fis:StopExperiment", _where(fis), _FIS_FIX):
            answer = fis.stop_experiment(id=experiment_id)
        return _experiment(answer["experiment"], current.region)


_FIS_FIX = "use drkit's own faults (security groups, network ACLs, instance stop) instead"


# -- helpers --------------------------------------------------------------------------------


@contextlib.contextmanager
def feature_guard(feature: str, action: str, where: str, fix: str) -> Iterator[None]:
    """Like aws_errors, but an answer meaning "no such API here" (an error code for it, or a
    page that is not AWS's protocol, as moto gives for what it lacks) is AwsFeatureUnavailable."""
    try:
        with aws_errors(action, where):
            yield
    except ResponseParserError as exc:  # botocore raises it unwrapped: not a BotoCoreError
        answer = f"something that is not AWS's protocol ({str(exc).splitlines()[0]})"
        raise _unavailable(feature, action, where, answer, fix) from exc
    except AwsRequestError as exc:
        if exc.code not in UNSUPPORTED_CODES:
            raise
        raise _unavailable(feature, action, where, exc.code, fix) from exc


def _unavailable(
    feature: str, action: str, where: str, answer: str, fix: str
) -> AwsFeatureUnavailable:
    return AwsFeatureUnavailable(
        f"{feature} is not available on this endpoint ({where}): {action} answered {answer}; {fix}",
        "NotImplemented",
    )


def _where(client: Any) -> str:
    return str(client.meta.endpoint_url)


def _dns_name(name: str) -> str:
    return name.lower().rstrip(".") + "."


def _record_type(value: str) -> str:
    try:
        return "A" if ipaddress.ip_address(value).version == 4 else "AAAA"
    except ValueError:
        return "CNAME"


def _record_set(found: Mapping[str, Any]) -> RecordSet:
    values = tuple(str(v["Value"]) for v in found.get("ResourceRecords", []))
    ttl = found.get("TTL")
    return RecordSet(
        _dns_name(found["Name"]), str(found["Type"]), values, None if ttl is None else int(ttl)
    )


def _upsert(record: RecordSet) -> Any:
    return {
        "Action": "UPSERT",
        "ResourceRecordSet": {
            "Name": record.name,
            "Type": record.type,
            "TTL": record.ttl,
            "ResourceRecords": [{"Value": v} for v in record.values],
        },
    }


LAG_ALARM_PERIOD_S = 10  # CloudWatch's high-resolution alarm period (its data: StorageResolution=1)


def lag_alarm_request(
    name: str, namespace: str, dimensions: Mapping[str, str], threshold_s: float
) -> dict[str, Any]:
    """The put_metric_alarm request of the replication-lag alarm (lab and aws targets alike):
    the maximum ReplicationLagSeconds over one high-resolution period above the threshold."""
    return {
        "AlarmName": name,
        "Namespace": namespace,
        "MetricName": "ReplicationLagSeconds",
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
        "Statistic": "Maximum",
        "Period": LAG_ALARM_PERIOD_S,
        "EvaluationPeriods": 1,
        "Threshold": threshold_s,
        "ComparisonOperator": "GreaterThanThreshold",
        "AlarmDescription": "replication lag over the timing profile's alarm threshold",
    }


def _member_in(cluster: Mapping[str, Any], region: str, global_id: str) -> dict[str, Any]:
    for member in cluster.get("GlobalClusterMembers", []):
        if f":rds:{region}:" in str(member.get("DBClusterArn")):
            return dict(member)
    raise ConfigError(f"Aurora global cluster {global_id} has no member cluster in {region}")


def _experiment(data: Mapping[str, Any], region: str) -> FisExperiment:
    state = data.get("state", {})
    return FisExperiment(
        str(data["id"]),
        str(data.get("experimentTemplateId", "")),
        region,
        str(state.get("status", "")),
        str(state.get("reason", "")),
    )


def _polls(waited: Waited[Any]) -> str:
    return f"{waited.polls} polls, {waited.throttled} throttled, {waited.elapsed_s:.1f}s"
