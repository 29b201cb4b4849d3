"""The lab's control plane: moto as AWS, enforced security groups, lab DNS, evaluated alarms.

Four processes (lab components, started side by side by `drkit lab up`, stopped by
`drkit lab down`): `moto`, `sg-reconciler`, `lab-dns` and `evaluator`. This module seeds
moto with the AWS pieces a drill touches and gives the engine one handle on them,
`LabControlPlane`:

* per region a VPC with a modelled CIDR and a security group `drkit-lab-services` whose
  ingress rules admit the db, index and api ports from both regions and from the public
  source (203.0.113.0/24); revoking a rule blackholes that path within about 0.2 s;
* the hosted zone `lab.drkit.test.` with `rag.lab.drkit.test` A -> us-east-1's public
  address, TTL from the timing profile, served by the lab DNS server;
* an S3 bucket with Object Lock for evidence (`drkit-lab-evidence`);
* no alarms or health checks: drills create them and `lab reset` deletes them.

Seeding is idempotent and `lab reset` restores the seed exactly (rules, records, alarms,
health checks), which also re-seeds a moto that restarted empty.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drkit.clients.aws import AwsClients, AwsEndpoint, AwsRequestError, aws_errors
from drkit.clients.resolver import DnsResolver, exchange
from drkit.config import LabSettings
from drkit.errors import ConfigError, LabError, PortInUse
from drkit.lab import evaluators
from drkit.lab.component import Component, PythonService
from drkit.lab.dns_server import dns_answers, find_zone_id, fqdn, list_record_sets
from drkit.lab.moto_server import moto_service
from drkit.lab.process import wait_until
from drkit.lab.sg_reconciler import (
    ALLOWED,
    BLACKHOLED,
    GROUP_NAME,
    QUARANTINE_GROUP_NAME,
    SOURCE_CIDRS,
    STATUS_FILE,
    UP_STATES,
    IngressRule,
    db_instance_name,
    find_db_instance,
    find_group,
    has_blackhole_toxic,
    is_blackholed,
    read_status,
    rules_from_permissions,
    unenforceable_reason,
)
from drkit.lab.topology import PUBLIC, REGIONS, SOURCES, ingress_address, proxy_name

if TYPE_CHECKING:
    from drkit.lab.lab import Lab

ZONE_NAME = "lab.drkit.test."
PUBLIC_NAME = "rag.lab.drkit.test"
HOME_REGION = REGIONS[0]  # the public record points here initially
EVIDENCE_BUCKET = "drkit-lab-evidence"
SEEDED_ALARMS: tuple[str, ...] = ()  # none: every alarm is a drill's, and reset deletes it
DNS_HOST = "127.0.0.1"


def vpc_name(region: str) -> str:
    return f"drkit-lab-{region}"


# -- the seed ---------------------------------------------------------------------------------
def seeded_rules(service_ports: dict[str, int]) -> list[IngressRule]:
    """Every lab service port, from both regions' VPCs and from the public source."""
    return [
        IngressRule("tcp", port, port, SOURCE_CIDRS[source])
        for port in sorted(set(service_ports.values()))
        for source in SOURCES
    ]


def ensure_vpc(clients: AwsClients, region: str) -> str:
    ec2 = clients.ec2(region)
    with aws_errors(f"find or create VPC {vpc_name(region)}", "moto"):
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [vpc_name(region)]}])
        if vpcs["Vpcs"]:
            return vpcs["Vpcs"][0]["VpcId"]
        return ec2.create_vpc(
            CidrBlock=SOURCE_CIDRS[region],
            TagSpecifications=[
                {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": vpc_name(region)}]}
            ],
        )["Vpc"]["VpcId"]


def ensure_group(clients: AwsClients, region: str, vpc_id: str) -> str:
    group = find_group(clients, region)
    if group is not None:
        return str(group["GroupId"])
    with aws_errors(f"create security group {GROUP_NAME} in {region}", "moto"):
        return clients.ec2(region).create_security_group(
            GroupName=GROUP_NAME,
            Description=f"drkit lab: the services of {region} (db, index, api)",
            VpcId=vpc_id,
        )["GroupId"]


def quarantine_group_id(clients: AwsClients, region: str, vpc_id: str | None = None) -> str:
    """The region's quarantine group (no ingress rule; what a fence attaches to an old
    primary's instance instead of its own groups), created when `vpc_id` is given."""
    ec2 = clients.ec2(region)
    with aws_errors(f"find or create security group {QUARANTINE_GROUP_NAME} in {region}", "moto"):
        groups = ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [QUARANTINE_GROUP_NAME]}]
        )["SecurityGroups"]
        if groups:
            return str(groups[0]["GroupId"])
        if vpc_id is None:
            raise LabError(
                f"no security group {QUARANTINE_GROUP_NAME} in {region}; run `drkit lab reset`"
            )
        return ec2.create_security_group(
            GroupName=QUARANTINE_GROUP_NAME,
            Description=f"drkit lab: quarantine for a fenced instance in {region} (no ingress)",
            VpcId=vpc_id,
        )["GroupId"]


def db_instance_id(clients: AwsClients, region: str) -> str:
    found = find_db_instance(clients, region)
    return _seeded(found, "InstanceId", f"EC2 instance {db_instance_name(region)}", region)


def _seeded(found: dict[str, Any] | None, key: str, what: str, region: str) -> str:
    """The id of a seeded resource moto described, or a LabError saying how to seed it."""
    if found is None:
        raise LabError(
            f"no {what} in {region} (moto restarted empty?); run `drkit lab reset` to seed it again"
        )
    return str(found[key])


def ensure_db_instance(clients: AwsClients, region: str, vpc_id: str) -> list[str]:
    """The EC2 instance the region's database "runs on" (the reconciler makes its state and
    groups decide the database's paths): created, running, in the services group only.
    Returns what was changed."""
    ec2 = clients.ec2(region)
    services = group_id_of(clients, region)
    instance = find_db_instance(clients, region)
    name = db_instance_name(region)
    with aws_errors(f"seed instance {name} in {region}", "moto"):
        if instance is None:
            subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock=SOURCE_CIDRS[region].replace(
                ".0.0/16", ".0.0/24"
            ))["Subnet"]["SubnetId"]  # fmt: skip
            image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
            ec2.run_instances(
                ImageId=image,
                MinCount=1,
                MaxCount=1,
                SubnetId=subnet,
                SecurityGroupIds=[services],
                TagSpecifications=[
                    {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}
                ],
            )
            return [f"created instance {name} in {region}"]
        changes = []
        instance_id = str(instance["InstanceId"])
        if [g["GroupId"] for g in instance.get("SecurityGroups", [])] != [services]:
            ec2.modify_instance_attribute(InstanceId=instance_id, Groups=[services])
            changes.append(f"{name}: groups back to {GROUP_NAME}")
        if instance["State"]["Name"] not in UP_STATES:
            ec2.start_instances(InstanceIds=[instance_id])
            changes.append(f"{name}: started")
        return changes


def db_instance_stopped(clients: AwsClients, region: str) -> list[str]:
    """The region's database instance absent or not running (a fault's trace)."""
    instance = find_db_instance(clients, region)
    if instance is None:
        return [f"{region} has no database instance {db_instance_name(region)}"]
    if (state := instance["State"]["Name"]) not in UP_STATES:
        return [f"{region} database instance is {state}"]
    return []


def db_instance_moved(clients: AwsClients, region: str) -> list[str]:
    """The region's database instance in other groups than its seed's (a fence's trace: a
    recovery action, which `reset` ends)."""
    instance = find_db_instance(clients, region)
    if instance is None:
        return []
    groups = [g["GroupId"] for g in instance.get("SecurityGroups", [])]
    if groups != [group_id_of(clients, region)]:
        return [f"{region} database instance is in groups {groups}, not {GROUP_NAME}"]
    return []


def current_rules(clients: AwsClients, region: str) -> list[IngressRule]:
    group = find_group(clients, region)
    if group is None:
        raise LabError(f"no security group {GROUP_NAME} in {region}; run `drkit lab reset`")
    return rules_from_permissions(group["IpPermissions"])


def restore_rules(clients: AwsClients, region: str, wanted: Sequence[IngressRule]) -> list[str]:
    """Make the region's group hold exactly `wanted`; returns what was changed."""
    group_id = group_id_of(clients, region)
    current = current_rules(clients, region)
    extra = [r for r in current if r not in wanted]
    missing = [r for r in wanted if r not in current]
    ec2: Any = clients.ec2(region)  # permissions are built as plain dicts
    with aws_errors(f"restore the ingress rules of {GROUP_NAME} in {region}", "moto"):
        if extra:
            ec2.revoke_security_group_ingress(
                GroupId=group_id, IpPermissions=[r.to_permission() for r in extra]
            )
        if missing:
            ec2.authorize_security_group_ingress(
                GroupId=group_id, IpPermissions=[_described(r) for r in missing]
            )
    revoked = [f"revoked {r.describe()}" for r in extra]
    return [*revoked, *(f"authorized {r.describe()}" for r in missing)]


def _described(rule: IngressRule) -> dict[str, Any]:
    perm = rule.to_permission()
    names = [s for s, cidr in SOURCE_CIDRS.items() if cidr == rule.source]
    if names and "IpRanges" in perm:
        perm["IpRanges"][0]["Description"] = f"drkit lab seed: from {names[0]}"
    return perm


def group_id_of(clients: AwsClients, region: str) -> str:
    return _seeded(find_group(clients, region), "GroupId", f"security group {GROUP_NAME}", region)


def ensure_zone(clients: AwsClients) -> str:
    try:
        return find_zone_id(clients, ZONE_NAME)
    except LabError:
        pass
    with aws_errors(f"create hosted zone {ZONE_NAME}", "moto"):
        zone = clients.route53().create_hosted_zone(
            Name=ZONE_NAME, CallerReference=f"drkit-lab-{uuid.uuid4()}"
        )
    return zone["HostedZone"]["Id"]


def upsert_a_record(clients: AwsClients, zone_id: str, name: str, address: str, ttl: int) -> None:
    change = {
        "Action": "UPSERT",
        "ResourceRecordSet": {
            "Name": name,
            "Type": "A",
            "TTL": ttl,
            "ResourceRecords": [{"Value": address}],
        },
    }
    route53: Any = clients.route53()  # the change is built as a plain dict
    with aws_errors(f"UPSERT {name} A {address} (TTL {ttl})", "moto"):
        route53.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Comment": "drkit lab", "Changes": [change]}
        )


def restore_records(clients: AwsClients, zone_id: str, settings: LabSettings) -> list[str]:
    """Delete every record set a drill added (NS and SOA stay), then UPSERT the seeded one."""
    route53: Any = clients.route53()  # record sets go back as they came: plain dicts
    with aws_errors(f"list record sets of {ZONE_NAME}", "moto"):
        pages = route53.get_paginator("list_resource_record_sets")
        raw = [r for p in pages.paginate(HostedZoneId=zone_id) for r in p["ResourceRecordSets"]]
    extra = [r for r in raw if r["Type"] not in ("NS", "SOA") and not _is_seeded(r)]
    if extra:
        changes = [{"Action": "DELETE", "ResourceRecordSet": r} for r in extra]
        with aws_errors(f"delete drill records in {ZONE_NAME}", "moto"):
            route53.change_resource_record_sets(
                HostedZoneId=zone_id, ChangeBatch={"Changes": changes}
            )
    address = ingress_address(HOME_REGION, PUBLIC)
    upsert_a_record(clients, zone_id, PUBLIC_NAME, address, settings.profile.dns_ttl_s)
    return [f"deleted {r['Name']} {r['Type']}" for r in extra]


def _is_seeded(record: dict[str, Any]) -> bool:
    return (
        fqdn(record["Name"]) == fqdn(PUBLIC_NAME)
        and record["Type"] == "A"
        and "SetIdentifier" not in record
    )


def ensure_bucket(clients: AwsClients, region: str = HOME_REGION) -> None:
    s3 = clients.s3(region)
    with aws_errors(f"find or create bucket {EVIDENCE_BUCKET}", "moto"):
        names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if EVIDENCE_BUCKET not in names:
            s3.create_bucket(Bucket=EVIDENCE_BUCKET, ObjectLockEnabledForBucket=True)


def remove_drill_alarms(clients: AwsClients) -> list[str]:
    removed = []
    for region in REGIONS:
        cloudwatch = clients.cloudwatch(region)
        with aws_errors(f"delete drill alarms in {region}", "moto"):
            names = [a.name for a in evaluators.describe_alarms(clients, region)]
            drills = [n for n in names if n not in SEEDED_ALARMS]
            for start in range(0, len(drills), 100):  # the API takes 100 names a call
                cloudwatch.delete_alarms(AlarmNames=drills[start : start + 100])
        removed += [f"deleted alarm {region}/{n}" for n in drills]
    return removed


def remove_drill_health_checks(clients: AwsClients) -> list[str]:
    checks = evaluators.list_health_checks(clients)
    with aws_errors("delete drill health checks", "moto"):
        for check in checks:
            clients.route53().delete_health_check(HealthCheckId=check.id)
    return [f"deleted health check {c.id}" for c in checks]


def seed(clients: AwsClients, settings: LabSettings, service_ports: dict[str, int]) -> list[str]:
    """Create what is missing and put the seeded rules and record back; returns the changes.

    Alarms and health checks are left alone: `restore_seed` (lab reset) removes drill ones.
    """
    changes: list[str] = []
    for region in REGIONS:
        vpc_id = ensure_vpc(clients, region)
        ensure_group(clients, region, vpc_id)
        quarantine_group_id(clients, region, vpc_id)
        changes += restore_rules(clients, region, seeded_rules(service_ports))
        changes += ensure_db_instance(clients, region, vpc_id)
    zone_id = ensure_zone(clients)
    changes += restore_records(clients, zone_id, settings)
    ensure_bucket(clients)
    return changes


def restore_seed(
    clients: AwsClients, settings: LabSettings, service_ports: dict[str, int]
) -> list[str]:
    """`lab reset`: the seed exactly, with every drill alarm and health check deleted."""
    changes = seed(clients, settings, service_ports)
    return changes + remove_drill_alarms(clients) + remove_drill_health_checks(clients)


# -- the engine's handle --------------------------------------------------------------------
@dataclass(frozen=True)
class PublicRecord:
    name: str
    address: str
    ttl: int
    region: str | None  # the region whose public address it is, if any


def region_of(address: str) -> str | None:
    return next((r for r in REGIONS if ingress_address(r, PUBLIC) == address), None)


class LabControlPlane:
    """What a drill does to the lab's AWS: security groups, the public record, the resolver,
    alarm and health-check state. Cheap to construct; every call goes to the running lab."""

    def __init__(self, state: Path, settings: LabSettings) -> None:
        self.state = state
        self.settings = settings
        self.ports = settings.ports
        self.clients = AwsClients(AwsEndpoint.lab(settings.ports.moto))

    @classmethod
    def of(cls, lab: Lab) -> LabControlPlane:
        return cls(lab.state, lab.settings)

    def service_ports(self) -> dict[str, int]:
        p = self.ports
        return {"db": p.postgres, "index": p.index, "api": p.api}

    # security groups
    def service_rule(self, service: str, source: str) -> IngressRule:
        """The seeded rule that admits `source` to `service` (in any region's group)."""
        ports = self.service_ports()
        if service not in ports:
            raise ConfigError(f"unknown service {service!r}; the lab has {', '.join(ports)}")
        if source not in SOURCE_CIDRS:
            raise ConfigError(f"unknown source {source!r}; the lab has {', '.join(SOURCES)}")
        return IngressRule("tcp", ports[service], ports[service], SOURCE_CIDRS[source])

    def ingress_rules(self, region: str) -> list[IngressRule]:
        return current_rules(self.clients, region)

    def authorize_ingress(self, region: str, rules: Sequence[IngressRule]) -> None:
        """Add ingress rules to the region's group; refuses (ConfigError) any rule the lab
        cannot enforce, naming it. A rule already present is not an error."""
        for rule in rules:
            reason = unenforceable_reason(rule, SOURCE_CIDRS)
            if reason is not None:
                raise ConfigError(
                    f"refusing to authorize {rule.describe()} in {region}'s {GROUP_NAME}: "
                    f"the lab cannot enforce it because {reason}; use a modelled source "
                    "(drkit.lab.sg_reconciler.SOURCE_CIDRS) or run the drill with --dr-target=aws"
                )
        for rule in rules:
            self._call_group(region, "authorize", rule, tolerated="InvalidPermission.Duplicate")

    def revoke_ingress(self, region: str, rules: Sequence[IngressRule]) -> None:
        """Remove ingress rules; a rule already absent is not an error (healing is safe twice)."""
        for rule in rules:
            self._call_group(region, "revoke", rule, tolerated="InvalidPermission.NotFound")

    def _call_group(self, region: str, verb: str, rule: IngressRule, tolerated: str) -> None:
        ec2 = self.clients.ec2(region)
        call = getattr(ec2, f"{verb}_security_group_ingress")
        group_id = group_id_of(self.clients, region)
        try:
            with aws_errors(f"{verb} {rule.describe()} in {region}'s {GROUP_NAME}", "moto"):
                call(GroupId=group_id, IpPermissions=[rule.to_permission()])
        except AwsRequestError as exc:
            if exc.code != tolerated:
                raise

    def revoke_service(self, region: str, service: str, sources: Sequence[str] = SOURCES) -> None:
        """Revoke the seeded rules admitting `sources` to `region`'s `service`."""
        self.revoke_ingress(region, [self.service_rule(service, s) for s in sources])

    def authorize_service(
        self, region: str, service: str, sources: Sequence[str] = SOURCES
    ) -> None:
        self.authorize_ingress(region, [self.service_rule(service, s) for s in sources])

    def enforcement(self, region: str, service: str, source: str) -> str:
        """What the proxy does right now, read from Toxiproxy: 'allowed' or 'blackholed'
        (a half-applied blackhole reads as 'partial')."""
        from drkit.clients.toxiproxy import ToxiproxyClient

        url = f"http://127.0.0.1:{self.ports.toxiproxy_api}"
        with ToxiproxyClient(url, timeout=2.0) as client:
            proxy = client.proxy(proxy_name(region, service, source))
        if is_blackholed(proxy):
            return BLACKHOLED
        return "partial" if has_blackhole_toxic(proxy) else ALLOWED

    def wait_enforced(
        self, region: str, service: str, source: str, state: str, budget_s: float = 2.0
    ) -> float:
        """Wait until the reconciler has made the proxy `state`; returns the seconds waited."""
        return wait_until(
            lambda: self.enforcement(region, service, source) == state,
            budget_s,
            f"proxy {proxy_name(region, service, source)} to be {state} "
            f"(reconciler status: {self.state / 'run' / STATUS_FILE})",
            interval_s=0.02,
        )

    def reconciler_status(self) -> dict[str, Any] | None:
        return read_status(self.state / "run" / STATUS_FILE)

    # DNS
    def zone_id(self) -> str:
        return find_zone_id(self.clients, ZONE_NAME)

    def public_record(self) -> PublicRecord:
        """The public name's A record as Route 53 (moto) holds it."""
        for record in list_record_sets(self.clients, self.zone_id()):
            if record.name == fqdn(PUBLIC_NAME) and record.type == "A" and record.values:
                address = record.values[0]
                return PublicRecord(PUBLIC_NAME, address, record.ttl, region_of(address))
        raise LabError(f"no A record {PUBLIC_NAME} in {ZONE_NAME}; run `drkit lab reset`")

    def point_public_name(self, region: str, ttl: int | None = None) -> None:
        """UPSERT the public name to `region`'s public address (the DNS switch)."""
        address = ingress_address(region, PUBLIC)
        self.set_public_record(address, ttl)

    def set_public_record(self, address: str, ttl: int | None = None) -> None:
        ttl = self.settings.profile.dns_ttl_s if ttl is None else ttl
        upsert_a_record(self.clients, self.zone_id(), PUBLIC_NAME, address, ttl)

    def dns_server(self) -> tuple[str, int]:
        return (DNS_HOST, self.ports.dns)

    def resolver(self, timeout_s: float = 1.0) -> DnsResolver:
        """A fresh TTL-honouring resolver pointed at the lab DNS (one per client)."""
        return DnsResolver([self.dns_server()], timeout_s=timeout_s)

    # alarms and health checks
    def alarm_state(self, name: str, region: str = HOME_REGION) -> str:
        return evaluators.alarm_state(self.clients, name, region)

    def health_check_status(self, check_id: str) -> evaluators.HealthCheckStatus:
        return evaluators.health_check_status(self.state / "run" / evaluators.STATUS_FILE, check_id)


# -- the components ---------------------------------------------------------------------------
class _Prestart:
    """Boots the control plane's processes side by side, so `lab up` waits for the slowest
    (moto, about 1.3 s) rather than for the sum of four Python start-ups."""

    def __init__(self) -> None:
        self._threads: dict[str, tuple[threading.Thread, list[BaseException]]] = {}

    def launch(self, boots: dict[str, Callable[[], None]]) -> None:
        for name, boot in boots.items():
            errors: list[BaseException] = []
            thread = threading.Thread(target=_capture(boot, errors), name=f"start-{name}")
            thread.start()
            self._threads[name] = (thread, errors)

    def join(self, name: str) -> bool:
        """Wait for a launched boot; False when none was launched. Re-raises its error."""
        entry = self._threads.pop(name, None)
        if entry is None:
            return False
        entry[0].join()
        if entry[1]:
            raise entry[1][0]
        return True


def _capture(boot: Callable[[], None], errors: list[BaseException]) -> Callable[[], None]:
    def run() -> None:
        try:
            boot()
        except BaseException as exc:  # handed to the thread that joins
            errors.append(exc)

    return run


class _Process:
    """A control-plane process: a PythonService plus what `status` shows about it."""

    def __init__(self, service: PythonService, prestart: _Prestart) -> None:
        self.service = service
        self.name = service.name
        self.prestart = prestart

    def boot(self) -> None:
        """Start the process; a start that times out is retried once from scratch (an
        intermittent boot stall seen about once in 20 cold starts, not yet explained), and
        both reasons are reported if the retry fails too."""
        try:
            self.service.start()
        except LabError as first:
            try:
                self.service.start()
            except LabError as second:
                raise LabError(f"{second} (a first start failed too: {first})") from None

    def start(self) -> None:
        if not self.prestart.join(self.name):
            self.boot()

    def stop(self) -> None:
        self.service.stop()

    def reset(self) -> None:
        self.service.start()

    def status(self) -> dict[str, Any]:
        info = self.service.status()
        try:
            return {**info, **self.details()}
        except Exception as exc:  # status reports, it never raises
            return {**info, "error": f"{type(exc).__name__}: {exc}"}

    def details(self) -> dict[str, Any]:
        return {}


class MotoProcess(_Process):
    """moto, seeded after every start and restored to the seed on reset. Its start also
    launches the other control-plane processes, which boot while moto loads."""

    def __init__(self, plane: LabControlPlane, prestart: _Prestart, others: list[_Process]):
        super().__init__(moto_service(plane.state, plane.ports.moto), prestart)
        self.plane = plane
        self.others = others

    def start(self) -> None:
        self.prestart.launch({p.name: p.boot for p in self.others})
        self.service.start()
        seed(self.plane.clients, self.plane.settings, self.plane.service_ports())

    def reset(self) -> None:
        self.service.start()
        restore_seed(self.plane.clients, self.plane.settings, self.plane.service_ports())

    def details(self) -> dict[str, Any]:
        if self.service.pid() is None:
            return {}
        groups = {}
        for region in REGIONS:
            group = find_group(self.plane.clients, region)
            groups[region] = None if group is None else _group_view(region, group)
        record = self.plane.public_record()
        return {
            "endpoint": self.plane.clients.endpoint.endpoint_url,
            "security_groups": groups,
            "public_record": {
                "name": record.name,
                "address": record.address,
                "ttl": record.ttl,
                "region": record.region,
            },
        }


def _group_view(region: str, group: dict[str, Any]) -> dict[str, Any]:
    return {
        "group_id": group["GroupId"],
        "name": GROUP_NAME,
        "vpc_cidr": SOURCE_CIDRS[region],
        "ingress": [r.describe() for r in rules_from_permissions(group["IpPermissions"])],
    }


class _StatusFileProcess(_Process):
    """A process whose health is a fresh, successful status file written by that very pid."""

    def __init__(
        self, service: PythonService, prestart: _Prestart, status_file: Path, fresh_key: str
    ) -> None:
        super().__init__(service, prestart)
        self.status_file = status_file
        self.fresh_key = fresh_key
        service.healthy = self.healthy
        service.why_unhealthy = self.unhealthy_reason

    def healthy(self, after: float | None = None, max_age_s: float = 3.0) -> bool:
        return self.unhealthy_reason(after, max_age_s) is None

    def unhealthy_reason(self, after: float | None = None, max_age_s: float = 3.0) -> str | None:
        """Why the process does not count as healthy (None: it does)."""
        status, pid = read_status(self.status_file), self.service.pid()
        if not status:
            return f"no status file {self.status_file} yet"
        if status.get("pid") != pid:
            return f"the status file was written by pid {status.get('pid')}, not by {pid}"
        if not status.get("ok"):
            return f"its last pass failed: {status.get('error') or status.get('errors')}"
        stamp = float(status.get(self.fresh_key) or 0.0)
        since = after if after is not None else time.time() - max_age_s
        return None if stamp > since else f"no pass since {time.ctime(since)}"

    def reset(self) -> None:
        """Restart if needed, then wait for a pass that began after this call."""
        began = time.time()
        self.service.start()
        self.nudge()
        wait_until(
            lambda: self.healthy(after=began),
            10.0,
            f"{self.name} to complete a pass after the reset (log: {self.service.log_file})",
            interval_s=0.02,
        )

    def nudge(self) -> None:
        """Ask the process for a pass now (the reconciler runs one every 0.15 s anyway)."""

    def file_status(self) -> dict[str, Any]:
        status = read_status(self.status_file) or {}
        stamp = status.get(self.fresh_key)
        age = None if stamp is None else round(time.time() - float(stamp), 3)
        return {"status_file": str(self.status_file), "last_pass_age_s": age, **status}


class ReconcilerProcess(_StatusFileProcess):
    def details(self) -> dict[str, Any]:
        status = self.file_status()
        return {
            "status_file": status["status_file"],
            "last_reconciled_at": status.get("pass_finished_at"),
            "last_pass_age_s": status["last_pass_age_s"],
            "ok": status.get("ok"),
            "error": status.get("error"),
            "enforcement": {
                name: proxy["state"] for name, proxy in (status.get("proxies") or {}).items()
            },
            "unenforceable": status.get("unenforceable", []),
            "last_change": status.get("last_change"),
        }


class EvaluatorProcess(_StatusFileProcess):
    def nudge(self) -> None:
        evaluators.refresh_file(self.status_file).touch()  # a pass now, not within a second

    def details(self) -> dict[str, Any]:
        status = self.file_status()
        return {
            "status_file": status["status_file"],
            "last_evaluated_at": status.get("evaluated_at"),
            "ok": status.get("ok"),
            "errors": status.get("errors", []),
            "alarms": {
                key: {k: a.get(k) for k in ("state", "reason", "note")}
                for key, a in (status.get("alarms") or {}).items()
            },
            "health_checks": {
                i: {k: h.get(k) for k in ("status", "target", "last_observation", "probes")}
                for i, h in (status.get("health_checks") or {}).items()
            },
        }


class DnsProcess(_Process):
    def __init__(self, service: PythonService, prestart: _Prestart, port: int) -> None:
        super().__init__(service, prestart)
        self.port = port

    def boot(self) -> None:
        if self.service.pid() is None:
            check_udp_free(DNS_HOST, self.port, "lab DNS")
        super().boot()

    def details(self) -> dict[str, Any]:
        if self.service.pid() is None:
            return {}
        reply = exchange((DNS_HOST, self.port), PUBLIC_NAME, 0.5)
        answers = [(str(rr.rdata), int(rr.ttl)) for rr in reply.rr]
        return {
            "zone": ZONE_NAME,
            "answers": {
                PUBLIC_NAME: [
                    {"address": a, "ttl": ttl, "region": region_of(a)} for a, ttl in answers
                ]
            },
        }


def check_udp_free(address: str, port: int, component: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((address, port))
        except OSError:
            raise PortInUse(
                f"{component} needs udp {address}:{port}, which another process is using; stop "
                f"it (find it with `ss -lunp 'sport = :{port}'`) or move the lab's ports with "
                "DRKIT_LAB_PORT_BASE"
            ) from None


def control_plane_components(lab: Lab) -> list[Component]:
    """moto, the security-group reconciler, the lab DNS and the evaluator, in start order."""
    return list(_components(lab))


def restore_security_groups(lab: Lab) -> list[str]:
    """Put the seeded ingress rules back and wait until the reconciler enforces them.

    `Lab.reset` should call this before it restores replication: a drill that revoked the
    us-east-1 db rule for us-west-2 otherwise keeps the replication link blackholed (the
    reconciler re-applies it after Toxiproxy's reset) while the database reset waits for the
    standby to stream. Does nothing when moto is not running.
    """
    moto, reconciler, _, _ = _components(lab)
    if moto.service.pid() is None:
        return []
    changes = seed(moto.plane.clients, lab.settings, moto.plane.service_ports())
    if reconciler.service.pid() is not None:
        # Read the proxies back: a reconciler pass that began before the seed may still
        # report success with the old rules, so its status file proves nothing here.
        paths = [
            (r, svc, src) for r in REGIONS for svc in moto.plane.service_ports() for src in SOURCES
        ]
        wait_until(
            lambda: all(moto.plane.enforcement(*path) == ALLOWED for path in paths),
            5.0,
            f"the reconciler to enforce the seeded rules (log: {reconciler.service.log_file})",
            interval_s=0.05,
        )
    return changes


def _components(
    lab: Lab,
) -> tuple[MotoProcess, ReconcilerProcess, DnsProcess, EvaluatorProcess]:
    plane = LabControlPlane.of(lab)
    prestart = _Prestart()
    run = lab.state / "run"
    common = ["--state", str(lab.state), "--port-base", str(lab.settings.ports.base)]
    reconciler = ReconcilerProcess(
        _service(lab.state, "sg-reconciler", "drkit.lab.sg_reconciler", common),
        prestart,
        run / STATUS_FILE,
        fresh_key="pass_started_at",
    )
    dns = DnsProcess(
        _service(
            lab.state,
            "lab-dns",
            "drkit.lab.dns_server",
            [
                *("--port", str(plane.ports.dns), "--moto-port", str(plane.ports.moto)),
                *("--zone", ZONE_NAME, "--health", str(run / evaluators.STATUS_FILE)),
            ],
            healthy=lambda: _dns_answers(plane.ports.dns),
        ),
        prestart,
        plane.ports.dns,
    )
    evaluator = EvaluatorProcess(
        _service(lab.state, "evaluator", "drkit.lab.evaluators", common),
        prestart,
        run / evaluators.STATUS_FILE,
        fresh_key="evaluated_at",
    )
    moto = MotoProcess(plane, prestart, [reconciler, dns, evaluator])
    return moto, reconciler, dns, evaluator


def _dns_answers(port: int) -> bool:
    return dns_answers(port, PUBLIC_NAME)


def _service(
    state: Path,
    name: str,
    module: str,
    args: list[str],
    healthy: Callable[[], bool] = lambda: False,
) -> PythonService:
    return PythonService(name, state, module, args, healthy=healthy, start_budget_s=20.0)


def lab_control_plane(state: Path | None = None) -> LabControlPlane:
    """The control plane of the lab in DRKIT_HOME (or `state`), on DRKIT_LAB_PORT_BASE."""
    from drkit.paths import state_dir

    return LabControlPlane((state or state_dir()).resolve(), LabSettings.from_env())
