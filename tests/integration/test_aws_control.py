"""The aws target's control plane and faults against a moto server, as a user runs them on AWS.

Every test builds its own small AWS world on one moto server (a VPC, a security group with
ingress and egress rules, a network ACL, a Route 53 zone and record, an RDS primary and a
cross-region read replica, an EC2 instance, a CloudWatch alarm, an FIS template, an Aurora
global cluster), points drkit's boto3 clients at it with `endpoint_url`, and reads state back.
Every AWS call drkit makes is recorded and checked against docs/iam-policy.json.
Credentials are dummies; they must appear in no output and no fault params.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import httpx
import psycopg
import pytest

from drkit.aws.clients import AwsClients
from drkit.aws.config import (
    SERVICES,
    AwsConfig,
    DatabaseConfig,
    NetworkConfig,
    Objectives,
    RegionConfig,
    Route53Config,
    SecretRef,
)
from drkit.aws.control import AwsControlPlane, AwsFeatureUnavailable, Rule
from drkit.aws.faults import (
    AwsFisExperiment,
    AwsInstanceStop,
    AwsNetworkAclIsolation,
    AwsRdsReboot,
    AwsSecurityGroupBlock,
)
from drkit.aws.interlocks import InterlockRefused
from drkit.aws.recorder import OperationLog, record_operations
from drkit.aws.waiters import WaitTimedOut
from drkit.errors import ConfigError
from drkit.faults.base import FAULTS
from drkit.lab.moto_server import HOST, MODULE, moto_answers, moto_url
from drkit.targets.aws import AwsQuarantine, AwsTarget, NotFenced

pytestmark = pytest.mark.integration

PRIMARY, DR = "us-east-1", "us-west-2"
LAB_PORTS = range(25400, 29701)  # the lab's and the test lab's port ranges: keep out
POLICY = Path(__file__).resolve().parents[2] / "docs" / "iam-policy.json"
DUMMY_KEY_ID = "AKIADRKITDUMMYKEYID0"
DUMMY_SECRET = "drkit-dummy-secret-access-key-not-real"
DUMMY_DB_PASSWORD = "drkit-dummy-db-password-not-real"
# in the policy, called by code this test cannot reach (see docs/iam-policy.md)
NOT_RECORDABLE = {
    "s3:GetBucketObjectLockConfiguration": "drkit evidence archive makes its own clients",
    "s3:PutObject": "drkit evidence archive makes its own clients",
    "s3:PutObjectRetention": "drkit evidence archive makes its own clients",
    "s3:GetObjectVersion": "drkit evidence archive makes its own clients",
    "s3:GetObjectRetention": "drkit evidence archive makes its own clients",
    "fis:TagResource": "authorised with StartExperiment's tags; never a call of its own",
}


# one session for drkit's clients, as in one drkit process (a fresh one per world would parse
# botocore's service models again each time); rebuilt faults still make their own
DRKIT_SESSION = boto3.session.Session()


def free_port() -> int:
    """A free loopback port from the kernel, outside the lab's ranges."""
    while True:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in LAB_PORTS:
            return port


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Our own moto server (the lab's launcher), on a free loopback port."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", MODULE, "--host", HOST, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not moto_answers(port):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto did not start on {port}: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        yield moto_url(port)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


@pytest.fixture(autouse=True)
def dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials in boto3's chain; nothing from ~/.aws, no proxy for loopback."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", PRIMARY)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


# -- the world --------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    url: str
    config: AwsConfig
    group_id: str
    app_group_id: str
    acl_id: str
    subnet_id: str
    instance_id: str
    zone_id: str
    primary_db: str
    replica_db: str
    alarm: str
    fis_template: str
    global_cluster: str
    health_checks: tuple[str, str]
    secret_id: str

    def setup(self, service: str, region: str = PRIMARY) -> Any:
        """A plain boto3 client for building fixtures (not drkit's, not recorded)."""
        return setup_client(self.url, service, region)


@functools.cache
def setup_client(url: str, service: str, region: str = PRIMARY) -> Any:
    return boto3.session.Session().client(service, region_name=region, endpoint_url=url)


@functools.cache
def moto_image(url: str) -> str:
    """One of moto's stock AMIs (listing all 1,300 of them takes most of a second)."""
    images = setup_client(url, "ec2").describe_images(Owners=["amazon"])["Images"]
    return str(images[0]["ImageId"])


def build_world(url: str) -> World:
    tag = uuid.uuid4().hex[:8]
    ec2 = setup_client(url, "ec2")
    network = _network(ec2, tag)
    instance_id = _instance(ec2, moto_image(url), network["subnet_id"])
    zone_id, health_checks = _route53(url, tag)
    primary_db, replica_db = _rds(url, tag)
    ids = {
        **network,
        "instance_id": instance_id,
        "zone_id": zone_id,
        "health_checks": health_checks,
        "primary_db": primary_db,
        "replica_db": replica_db,
        "alarm": _alarm(url, tag),
        "fis_template": _fis_template(url, instance_id),
        "global_cluster": _aurora_global(url, tag),
        "secret_id": _secret(url, tag),
    }
    return World(url=url, config=_config(url, ids), **ids)


def _network(ec2: Any, tag: str) -> dict[str, str]:
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.1.0/24")["Subnet"]["SubnetId"]
    app = ec2.create_security_group(GroupName=f"app-{tag}", Description="app", VpcId=vpc)
    group = ec2.create_security_group(GroupName=f"db-{tag}", Description="db", VpcId=vpc)
    group_id, app_id = group["GroupId"], app["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
         "IpRanges": [{"CidrIp": "10.2.0.0/16", "Description": "DR replication"}],
         "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/64"}]},
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
         "UserIdGroupPairs": [{"GroupId": app_id, "Description": "app tier"}]},
        {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8100,
         "PrefixListIds": [{"PrefixListId": "pl-0123456789abcdef0"}]},
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.1.0.0/16"}]},
    ])  # fmt: skip
    ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
         "IpRanges": [{"CidrIp": "10.2.0.0/16", "Description": "to DR"}]},
    ])  # fmt: skip
    acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
    for egress in (False, True):
        for number, block in ((100, {"CidrBlock": "0.0.0.0/0"}), (101, {"Ipv6CidrBlock": "::/0"})):
            ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=number, Protocol="-1",
                                         RuleAction="allow", Egress=egress, **block)  # fmt: skip
    current = ec2.describe_network_acls(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
    )["NetworkAcls"][0]
    association = next(a for a in current["Associations"] if a["SubnetId"] == subnet)
    ec2.replace_network_acl_association(
        AssociationId=association["NetworkAclAssociationId"], NetworkAclId=acl
    )
    return {"group_id": group_id, "app_group_id": app_id, "acl_id": acl, "subnet_id": subnet}


def _instance(ec2: Any, image: str, subnet: str) -> str:
    answer = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnet
    )
    return str(answer["Instances"][0]["InstanceId"])


def _route53(url: str, tag: str) -> tuple[str, tuple[str, str]]:
    r53 = setup_client(url, "route53")
    zone = r53.create_hosted_zone(Name="example.com.", CallerReference=tag)["HostedZone"]["Id"]
    checks = tuple(
        r53.create_health_check(
            CallerReference=f"{tag}-{side}",
            HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": f"{side}.example.com",
                               "Port": 443, "ResourcePath": "/health", "RequestInterval": 30,
                               "FailureThreshold": 3},
        )["HealthCheck"]["Id"]
        for side in ("use1", "usw2")
    )  # fmt: skip
    records = [
        {"Name": "rag.example.com.", "Type": "A", "TTL": 60,
         "ResourceRecords": [{"Value": "10.1.0.10"}]},
        {"Name": "failover.example.com.", "Type": "A", "TTL": 60, "SetIdentifier": "use1",
         "Failover": "PRIMARY", "HealthCheckId": checks[0],
         "ResourceRecords": [{"Value": "10.1.0.10"}]},
        {"Name": "failover.example.com.", "Type": "A", "TTL": 60, "SetIdentifier": "usw2",
         "Failover": "SECONDARY", "HealthCheckId": checks[1],
         "ResourceRecords": [{"Value": "10.2.0.10"}]},
    ]  # fmt: skip
    r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": r} for r in records]},
    )
    return zone, (checks[0], checks[1])


def _rds(url: str, tag: str) -> tuple[str, str]:
    east = setup_client(url, "rds")
    west = setup_client(url, "rds", DR)
    primary, replica = f"rag-db-use1-{tag}", f"rag-db-usw2-{tag}"
    arn = east.create_db_instance(
        DBInstanceIdentifier=primary, Engine="postgres", DBInstanceClass="db.t3.micro",
        MasterUsername="drkit", MasterUserPassword=DUMMY_DB_PASSWORD, AllocatedStorage=20,
    )["DBInstance"]["DBInstanceArn"]  # fmt: skip
    west.create_db_instance_read_replica(
        DBInstanceIdentifier=replica, SourceDBInstanceIdentifier=arn, SourceRegion=PRIMARY
    )
    return primary, replica


def _alarm(url: str, tag: str) -> str:
    name = f"order-gateway-5xx-{tag}"
    setup_client(url, "cloudwatch").put_metric_alarm(
        AlarmName=name, MetricName="5xx", Namespace="Gateway", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold",
    )  # fmt: skip
    return name


def _fis_template(url: str, instance_id: str) -> str:
    fis = setup_client(url, "fis")
    arn = f"arn:aws:ec2:{PRIMARY}:123456789012:instance/{instance_id}"
    template = fis.create_experiment_template(
        clientToken=uuid.uuid4().hex, description="stop the primary's database host",
        roleArn="arn:aws:iam::123456789012:role/drkit-fis", stopConditions=[{"source": "none"}],
        actions={"stop": {"actionId": "aws:ec2:stop-instances", "targets": {"Instances": "db"}}},
        targets={"db": {"resourceType": "aws:ec2:instance", "selectionMode": "ALL",
                        "resourceArns": [arn]}},
    )  # fmt: skip
    return str(template["experimentTemplate"]["id"])


def _aurora_global(url: str, tag: str) -> str:
    east = setup_client(url, "rds")
    west = setup_client(url, "rds", DR)
    global_id = f"rag-global-{tag}"
    east.create_global_cluster(
        GlobalClusterIdentifier=global_id, Engine="aurora-postgresql", EngineVersion="15.4"
    )
    east.create_db_cluster(
        DBClusterIdentifier=f"rag-aurora-use1-{tag}", Engine="aurora-postgresql",
        EngineVersion="15.4", MasterUsername="drkit", MasterUserPassword=DUMMY_DB_PASSWORD,
        GlobalClusterIdentifier=global_id,
    )  # fmt: skip
    west.create_db_cluster(
        DBClusterIdentifier=f"rag-aurora-usw2-{tag}", Engine="aurora-postgresql",
        EngineVersion="15.4", GlobalClusterIdentifier=global_id,
    )  # fmt: skip
    return global_id


def _secret(url: str, tag: str) -> str:
    sm = setup_client(url, "secretsmanager", DR)
    return str(sm.create_secret(Name=f"drill/{tag}/db", SecretString=DUMMY_DB_PASSWORD)["ARN"])


def _config(url: str, ids: dict[str, Any]) -> AwsConfig:
    def region(name: str, identifier: str, network: NetworkConfig) -> RegionConfig:
        database = DatabaseConfig(
            host=f"db.{name}.example.invalid", port=5432, name="ragdb", user="drkit",
            password=SecretRef(secrets_manager=ids["secret_id"]), identifier=identifier,
            ec2_instance_id=ids["instance_id"] if name == PRIMARY else None,
        )  # fmt: skip
        return RegionConfig(name, database, f"https://rag-{name}.example.invalid", network)

    east_network = NetworkConfig(
        security_groups=(ids["group_id"],),
        network_acls=(ids["acl_id"],),
        subnets=(ids["subnet_id"],),
    )
    return AwsConfig(
        path=Path("test-aws-control.toml"),
        environment="staging",
        primary_region=PRIMARY,
        dr_region=DR,
        regions={
            PRIMARY: region(PRIMARY, ids["primary_db"], east_network),
            DR: region(DR, ids["replica_db"], NetworkConfig()),
        },
        route53=Route53Config(ids["zone_id"], "rag.example.com.", "upsert", ttl=60),
        promotion="rds",
        automation="drkit-watcher",
        cloudwatch_namespace="Drkit/Test",
        evidence_bucket="drkit-test-evidence",
        timing_profile="lab",
        objectives=Objectives(),
        approver=None,
        endpoint_urls={service: url for service in SERVICES},
        fis_templates={"primary_crash": ids["fis_template"]},
    )


# -- recording --------------------------------------------------------------------------------


def policy_actions() -> set[str]:
    policy = json.loads(POLICY.read_text())
    assert policy["Version"] == "2012-10-17"
    actions: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and "*" not in "".join(statement["Action"])
        actions.update(statement["Action"])
    return actions


@dataclass
class Drill:
    """A world, drkit's control plane on it, and the log of every AWS call drkit makes."""

    world: World
    control: AwsControlPlane
    log: OperationLog
    _recordings: contextlib.ExitStack

    def rebuild(self, fault: Any) -> Any:
        """The fault as `drkit rollback` rebuilds it in a fresh process: from its JSON params
        alone, with its own clients (recorded into this drill's log)."""
        params = json.loads(json.dumps(fault.params()))
        assert_no_credentials(json.dumps(params), fault.describe())
        rebuilt = FAULTS.build(fault.kind, params, "drkit.aws.faults")
        assert rebuilt.clients is not self.control.clients
        self._recordings.enter_context(record_operations(rebuilt.clients, into=self.log))
        return rebuilt

    def control_for(self, **changes: Any) -> AwsControlPlane:
        """The same clients (so, recorded) under a changed config."""
        return AwsControlPlane(replace(self.world.config, **changes), self.control.clients)


@contextlib.contextmanager
def drill_on(url: str) -> Iterator[Drill]:
    """A fresh world, drkit's control plane on it, every call recorded until the end."""
    world = build_world(url)
    clients = AwsClients(world.config, session=DRKIT_SESSION)
    with contextlib.ExitStack() as recordings:
        log = recordings.enter_context(record_operations(clients))
        yield Drill(world, AwsControlPlane(world.config, clients), log, recordings)


@pytest.fixture
def drill(moto: str) -> Iterator[Drill]:
    with drill_on(moto) as drill:
        yield drill
    log = drill.log
    unknown = log.actions() - policy_actions()
    assert not unknown, f"drkit called actions missing from {POLICY.name}: {sorted(unknown)}"


def assert_no_credentials(*texts: str) -> None:
    for text in texts:
        for secret in (DUMMY_KEY_ID, DUMMY_SECRET, DUMMY_DB_PASSWORD):
            assert secret not in text


# -- scenarios (each test runs one; the policy test runs them all) ----------------------------


def security_group_snapshot_and_restore(d: Drill) -> None:
    control, world = d.control, d.world
    before = control.security_group_snapshot(world.group_id)
    assert before.region == PRIMARY
    assert Rule("tcp", 5432, 5432, "ipv4", "10.2.0.0/16", "DR replication") in before.ingress
    assert Rule("tcp", 5432, 5432, "ipv6", "2001:db8::/64") in before.ingress
    assert Rule("tcp", 443, 443, "group", world.app_group_id, "app tier") in before.ingress
    assert Rule("tcp", 8000, 8100, "prefix-list", "pl-0123456789abcdef0") in before.ingress
    assert Rule("-1", None, None, "ipv4", "10.1.0.0/16") in before.ingress
    assert before.egress == {
        Rule("-1", None, None, "ipv4", "0.0.0.0/0"),
        Rule("tcp", 5432, 5432, "ipv4", "10.2.0.0/16", "to DR"),
    }
    # drift: one rule gone, one added, one description changed, egress emptied
    ec2 = world.setup("ec2")

    def change(verb: str, rule: Rule, direction: str = "ingress") -> None:
        call = getattr(ec2, f"{verb}_security_group_{direction}")
        call(GroupId=world.group_id, IpPermissions=[rule.permission()])

    change("revoke", Rule("tcp", 443, 443, "group", world.app_group_id, "app tier"))
    change("authorize", Rule("udp", 53, 53, "ipv4", "0.0.0.0/0"))
    change("revoke", Rule("tcp", 5432, 5432, "ipv4", "10.2.0.0/16", "DR replication"))
    change("authorize", Rule("tcp", 5432, 5432, "ipv4", "10.2.0.0/16", "edited"))
    for rule in before.egress:
        change("revoke", rule, "egress")
    drifted = control.security_group_snapshot(world.group_id)
    assert len(before.differences(drifted)) == 6
    after = control.restore_security_group(world.group_id, before)
    assert after == before  # ingress and egress, descriptions included
    assert control.security_group_snapshot(world.group_id) == before


def security_group_block_fault(d: Drill) -> None:
    control, world = d.control, d.world
    before = control.security_group_snapshot(world.group_id)
    fault = AwsSecurityGroupBlock.for_target(control, world.group_id)
    assert fault.verify_healed() and not fault.verify_injected()
    fault.inject()
    assert fault.verify_injected() and not fault.verify_healed()
    cut = control.security_group_snapshot(world.group_id)
    assert cut.ingress == frozenset() and cut.egress == frozenset()
    with pytest.raises(ConfigError, match="blocking it would change nothing"):
        AwsSecurityGroupBlock.for_target(control, world.group_id)  # the group is empty now
    # the run dies here: rollback rebuilds the fault from its ledger params alone
    rebuilt = d.rebuild(fault)
    rebuilt.heal()
    rebuilt.heal()  # idempotent
    assert rebuilt.verify_healed()
    assert control.security_group_snapshot(world.group_id) == before


def security_group_port_block(d: Drill) -> None:
    control, world = d.control, d.world
    before = control.security_group_snapshot(world.group_id)
    fault = AwsSecurityGroupBlock.for_target(control, world.group_id, ports=[5432])
    fault.heal()  # safe before inject
    fault.inject()
    assert fault.verify_injected()
    during = control.security_group_snapshot(world.group_id)
    # every rule covering 5432 is gone (the all-traffic rule too, whole); the rest stays
    assert not any(r.covers(5432) for r in during.ingress | during.egress)
    assert Rule("tcp", 443, 443, "group", world.app_group_id, "app tier") in during.ingress
    fault.heal()
    assert fault.verify_healed()
    assert control.security_group_snapshot(world.group_id) == before
    east = world.config.regions[PRIMARY]
    declared = replace(east, network=replace(east.network, ports=(5432,)))
    narrow = d.control_for(regions={**world.config.regions, PRIMARY: declared})
    with pytest.raises(ConfigError, match=r"ports \[22\] are not among the ports"):
        AwsSecurityGroupBlock.for_target(narrow, world.group_id, ports=[22])
    assert AwsSecurityGroupBlock.for_target(narrow, world.group_id).ports == (5432,)


def undeclared_resources_refused(d: Drill) -> None:
    with pytest.raises(InterlockRefused, match="not declared in the config"):
        d.control.security_group_snapshot(d.world.app_group_id)
    with pytest.raises(InterlockRefused, match="network ACL"):
        d.control.isolate_subnets("acl-0123456789abcdef0")


def network_acl_isolation(d: Drill) -> None:
    control, world = d.control, d.world
    assert control.network_acls_of([world.subnet_id], PRIMARY) == (world.acl_id,)
    assert control.isolation_cidrs(world.acl_id) == ("0.0.0.0/0", "::/0")  # it allows IPv6
    isolation = control.isolate_subnets(world.acl_id)
    assert isolation.subnets == (world.subnet_id,)
    assert [e.label() for e in isolation.entries] == [
        "ingress rule 1 deny 0.0.0.0/0", "egress rule 1 deny 0.0.0.0/0",
        "ingress rule 2 deny ::/0", "egress rule 2 deny ::/0",
    ]  # fmt: skip
    assert control.remove_isolation(world.acl_id).entries == ()

    fault = AwsNetworkAclIsolation.for_target(control, world.acl_id)
    fault.inject()
    fault.inject()  # already there: nothing added twice
    assert fault.verify_injected()
    rebuilt = d.rebuild(fault)
    rebuilt.heal()
    assert rebuilt.verify_healed() and fault.verify_healed()
    assert control.isolation(world.acl_id).entries == ()
    acl = world.setup("ec2").describe_network_acls(NetworkAclIds=[world.acl_id])["NetworkAcls"][0]
    # the ACL's own allow entries were never touched
    assert sorted((e["RuleNumber"], e["Egress"]) for e in acl["Entries"]) == [
        (100, False), (100, True), (101, False), (101, True),
    ]  # fmt: skip


def network_acl_conflict_refused(d: Drill) -> None:
    world = d.world
    world.setup("ec2").create_network_acl_entry(
        NetworkAclId=world.acl_id, RuleNumber=1, Protocol="6", RuleAction="allow",
        Egress=False, CidrBlock="10.9.0.0/16", PortRange={"From": 22, "To": 22},
    )  # fmt: skip
    with pytest.raises(ConfigError, match="drkit reserves rule numbers 1-9"):
        d.control.isolate_subnets(world.acl_id)


def instance_stop_fault(d: Drill) -> None:
    control, world = d.control, d.world
    fault = AwsInstanceStop.for_target(control, PRIMARY, budget_s=10)
    assert fault.verify_healed()
    fault.inject()
    assert fault.verify_injected()
    with pytest.raises(ConfigError, match="not running"):
        AwsInstanceStop.for_target(control, PRIMARY)  # a stopped instance is not a target
    rebuilt = d.rebuild(fault)
    rebuilt.heal()
    assert rebuilt.verify_healed()
    state = world.setup("ec2").describe_instances(InstanceIds=[world.instance_id])
    assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"
    assert_no_credentials(json.dumps(fault.params()))


def rds_reboot_fault(d: Drill) -> None:
    fault = AwsRdsReboot.for_target(d.control, PRIMARY, budget_s=5)
    fault.inject()
    # moto's reboot_db_instance returns the instance untouched: it never reads `rebooting`,
    # so a drill on moto reports this fault as not injected (not_exercised), as it should
    assert fault.verify_injected() is False
    fault.heal()
    assert fault.verify_healed()


def rds_promotion(d: Drill) -> None:
    control, world = d.control, d.world
    already = control.promote(PRIMARY, budget_s=1)
    assert already.already_primary and already.target == world.primary_db
    # moto 5.2.5 flips an internal flag only: the replica still reads back as a replica, so
    # drkit's read-back (available AND no replica source) rightly never confirms it
    with pytest.raises(WaitTimedOut, match="still a read replica of arn:aws:rds:us-east-1"):
        control.promote(DR, budget_s=0.5, interval_s=0.1)
    calls = d.log.operations()
    assert "rds:PromoteReadReplica" in calls


def aurora_global_failover_unavailable(d: Drill) -> None:
    world = d.world
    regions = {
        name: replace(region, database=replace(region.database, identifier=world.global_cluster))
        for name, region in world.config.regions.items()
    }
    control = d.control_for(promotion="aurora-global", regions=regions)
    already = control.promote(PRIMARY)
    assert already.already_primary and "rag-aurora-use1" in already.target
    with pytest.raises(AwsFeatureUnavailable) as caught:
        control.promote(DR)
    message = str(caught.value)
    assert message.startswith("Aurora global failover is not available on this endpoint")
    assert "rds:FailoverGlobalCluster" in message and world.url in message


def route53_upsert(d: Drill) -> None:
    control = d.control
    change = control.upsert_record("10.2.0.10", ttl=30)
    assert change.previous is not None and change.previous.values == ("10.1.0.10",)
    assert change.record.values == ("10.2.0.10",) and change.record.ttl == 30
    assert control.read_record("A") == change.record
    ipv6 = control.upsert_record("2001:db8::10")
    assert (ipv6.record.type, ipv6.previous) == ("AAAA", None)
    assert control.read_record("A") == change.record  # an AAAA beside the A, not instead
    observe_only = d.control_for(route53=replace(d.world.config.route53, mode="failover-routing"))
    with pytest.raises(ConfigError, match="drkit only observes it"):
        observe_only.upsert_record("10.2.0.10")


def route53_failover_state(d: Drill) -> None:
    world = d.world
    route53 = replace(world.config.route53, record="failover.example.com.",
                      mode="failover-routing", health_check_ids=world.health_checks)  # fmt: skip
    state = d.control_for(route53=route53).failover_state()
    assert {(r.role, r.values) for r in state.records} == {
        ("PRIMARY", ("10.1.0.10",)),
        ("SECONDARY", ("10.2.0.10",)),
    }
    assert {h.id for h in state.health_checks} == set(world.health_checks)
    # moto never evaluates health checks: every checker it reports says Success
    assert all(h.healthy and h.checkers >= 1 for h in state.health_checks)
    assert state.expected_role == "PRIMARY"


def cloudwatch_metric_and_alarm(d: Drill) -> None:
    control, world = d.control, d.world
    control.put_metric("rto_seconds", 42.5, unit="Seconds", dimensions={"drill": "region-outage"})
    listed = world.setup("cloudwatch").list_metrics(Namespace="Drkit/Test")["Metrics"]
    assert {m["MetricName"] for m in listed} == {"rto_seconds"}
    assert control.alarm_state(world.alarm, PRIMARY).state == "OK"
    world.setup("cloudwatch").set_alarm_state(
        AlarmName=world.alarm, StateValue="ALARM", StateReason="test breach"
    )
    alarm = control.alarm_state(world.alarm, PRIMARY)
    assert (alarm.state, alarm.reason) == ("ALARM", "test breach")
    with pytest.raises(ConfigError, match="does not exist in us-east-1"):
        control.alarm_state("no-such-alarm", PRIMARY)


def replication_lag_alarm(d: Drill) -> None:
    """The aws target's replication monitor: its lag alarm created in the config's namespace,
    in the DR region, and read back."""
    control, world = d.control, d.world
    control.put_lag_alarm("drkit-replication-lag", DR, {"ReplicationPair": "a->b"}, 5.0)
    alarms = world.setup("cloudwatch", DR).describe_alarms(AlarmNames=["drkit-replication-lag"])
    (alarm,) = alarms["MetricAlarms"]
    assert (alarm["Namespace"], alarm["Threshold"]) == ("Drkit/Test", 5.0)
    assert control.alarm_state("drkit-replication-lag", DR).state in ("OK", "INSUFFICIENT_DATA")


def quarantine_fence(d: Drill) -> None:
    """Fencing on the aws target: the old primary's database, as an RDS instance and as a
    self-managed EC2 instance, moved into the quarantine group and back, each read back."""
    world = d.world
    ec2 = world.setup("ec2")
    vpc = ec2.describe_security_groups(GroupIds=[world.group_id])["SecurityGroups"][0]["VpcId"]
    quarantine = ec2.create_security_group(
        GroupName=f"quarantine-{uuid.uuid4().hex[:8]}", Description="no ingress", VpcId=vpc
    )["GroupId"]
    east = world.config.region(PRIMARY)
    fenced = replace(east, network=replace(east.network, quarantine_group=quarantine))
    regions = {**world.config.regions, PRIMARY: fenced}
    world.setup("rds").modify_db_instance(  # its groups before the failover
        DBInstanceIdentifier=world.primary_db,
        VpcSecurityGroupIds=[world.app_group_id],
        ApplyImmediately=True,
    )
    ec2.modify_instance_attribute(InstanceId=world.instance_id, Groups=[world.app_group_id])
    for promotion in ("rds", "self-managed"):
        control = d.control_for(regions=regions, promotion=promotion)
        assert isinstance(AwsTarget(control.config).fence(PRIMARY), AwsQuarantine)
        fence = AwsQuarantine(control, PRIMARY)  # on this drill's recorded clients
        before = control.database_groups(PRIMARY)
        assert before and quarantine not in before, (promotion, before)
        fence.apply()
        assert fence.verify_applied() and control.database_groups(PRIMARY) == (quarantine,)
        assert fence.params()["previous_groups"] == list(before)
        fence.undo()
        assert fence.verify_undone() and control.database_groups(PRIMARY) == before
    unfenced = AwsTarget(world.config).fence(PRIMARY)  # no quarantine_group: said so
    assert isinstance(unfenced, NotFenced) and "NOT fenced" in unfenced.describe()


def fis_experiment(d: Drill) -> None:
    control = d.control
    started = control.start_fis_experiment("primary_crash")  # a fault name from fis_templates
    assert started.template_id == d.world.fis_template and not started.finished
    # moto's FIS moves an experiment along its states as it is read, and touches nothing
    seen = control.fis_experiment(started.id)
    assert seen.status in ("initiating", "running", "completed")
    stopped = control.stop_fis_experiment(started.id)
    assert stopped.status in ("stopping", "stopped", "completed")
    assert control.stop_fis_experiment(started.id).finished  # stopping twice is harmless
    state = d.world.setup("ec2").describe_instances(InstanceIds=[d.world.instance_id])
    assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"


def fis_experiment_fault(d: Drill) -> None:
    """The aws.fis_experiment fault: started from the template its fault name maps to, waited
    until running, healed by a fault rebuilt from its ledger params alone (it finds the
    experiment by its token tag, not by an id the dead run never recorded)."""
    moto_api = f"{d.world.url}/moto-api/state-manager"
    # FIS experiments on moto jump to `completed` when read; make them move every 3 s instead
    # (pending, initiating, running, ...), as a real experiment takes its time
    httpx.post(f"{moto_api}/set-transition", json={
        "model_name": "fis::experiment", "transition": {"progression": "time", "seconds": 3}
    }).raise_for_status()  # fmt: skip
    try:
        fault = AwsFisExperiment.for_target(d.control, "primary_crash", PRIMARY, budget_s=30)
        assert fault.verify_healed() and not fault.verify_injected()  # none started yet
        fault.inject()
        assert fault.verify_injected() and not fault.verify_healed()
        rebuilt = d.rebuild(fault)
        rebuilt.heal()
        assert rebuilt.verify_healed() and not rebuilt.verify_injected()
        (experiment,) = rebuilt._experiments()
        assert d.control.fis_experiment(experiment["id"]).status == "stopped"
        with pytest.raises(ConfigError, match=r"fis_templates\.replication_latency: not set"):
            AwsFisExperiment.for_target(d.control, "replication_latency", PRIMARY)
    finally:
        httpx.post(f"{moto_api}/unset-transition", json={"model_name": "fis::experiment"})


SCENARIOS: list[Callable[[Drill], None]] = [
    security_group_snapshot_and_restore,
    security_group_block_fault,
    security_group_port_block,
    undeclared_resources_refused,
    network_acl_isolation,
    network_acl_conflict_refused,
    instance_stop_fault,
    rds_reboot_fault,
    rds_promotion,
    aurora_global_failover_unavailable,
    route53_upsert,
    route53_failover_state,
    cloudwatch_metric_and_alarm,
    replication_lag_alarm,
    quarantine_fence,
    fis_experiment,
    fis_experiment_fault,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_operation(drill: Drill, scenario: Callable[[Drill], None]) -> None:
    scenario(drill)


def test_iam_policy_lists_exactly_what_drkit_calls(
    moto: str, pg_pair: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    recorded: set[str] = set()
    for scenario in [*SCENARIOS, lambda d: self_managed_promotion(d, pg_pair[1])]:
        with drill_on(moto) as drill:
            scenario(drill)
        recorded |= drill.log.actions()
    policy = policy_actions()
    unused = policy - recorded
    with capsys.disabled():
        print(f"\nrecorded {len(recorded)} IAM actions; in the policy but not recorded here:")
        for action in sorted(unused):
            print(f"  {action}: {NOT_RECORDABLE.get(action, 'NOT CALLED BY ANY CODE PATH')}")
    assert recorded <= policy, f"missing from the policy: {sorted(recorded - policy)}"
    assert unused == set(NOT_RECORDABLE), f"unused policy actions: {sorted(unused)}"


def test_no_credentials_in_output(drill: Drill, capsys: pytest.CaptureFixture[str]) -> None:
    for scenario in (security_group_block_fault, instance_stop_fault, rds_promotion):
        scenario(drill)
    for fault in (
        AwsSecurityGroupBlock.for_target(drill.control, drill.world.group_id),
        AwsNetworkAclIsolation.for_target(drill.control, drill.world.acl_id),
        AwsRdsReboot.for_target(drill.control, PRIMARY),
    ):
        assert_no_credentials(json.dumps(fault.params()), fault.describe(), repr(fault.clients))
    captured = capsys.readouterr()
    assert_no_credentials(captured.out, captured.err, repr(drill.control))


# -- self-managed PostgreSQL: pg_promote() with the password from Secrets Manager -------------


@pytest.fixture
def pg_pair() -> Iterator[tuple[int, int]]:
    """A primary and a streaming standby on loopback, run as the postgres user."""
    from drkit.errors import MissingBinary
    from drkit.lab.postgres import PgTools, find_pg_bindir, service_user

    try:
        tools = PgTools(find_pg_bindir(), service_user())
    except MissingBinary as exc:
        pytest.fail(f"no PostgreSQL server binaries ({exc}); `make setup` installs them")
    root = Path(tempfile.mkdtemp(prefix="drkit-aws-pg-", dir="/tmp"))
    root.chmod(0o755)
    ports = free_port(), free_port()
    try:
        yield _start_pair(tools, root, ports)
    finally:
        for name in ("standby", "primary"):
            if (root / name / "postmaster.pid").exists():
                tools.run("pg_ctl", "stop", "-D", str(root / name), "-m", "immediate", "-w")
        shutil.rmtree(root, ignore_errors=True)


def _start_pair(tools: Any, root: Path, ports: tuple[int, int]) -> tuple[int, int]:
    pwfile = root / "pw"
    pwfile.write_text(DUMMY_DB_PASSWORD + "\n")
    tools.own(root)
    primary, standby = root / "primary", root / "standby"
    tools.run("initdb", "-D", str(primary), "-U", "drkit", f"--pwfile={pwfile}",
              "--auth-local=trust", "--auth-host=scram-sha-256")  # fmt: skip
    pwfile.unlink()
    options = f"-c listen_addresses={HOST} -k {root} -c port="
    tools.run("pg_ctl", "start", "-D", str(primary), "-w", "-l", str(root / "primary.log"),
              "-o", options + str(ports[0]))  # fmt: skip
    tools.run("pg_basebackup", "-h", HOST, "-p", str(ports[0]), "-U", "drkit", "-D",
              str(standby), "-R", env={"PGPASSWORD": DUMMY_DB_PASSWORD})  # fmt: skip
    tools.run("pg_ctl", "start", "-D", str(standby), "-w", "-l", str(root / "standby.log"),
              "-o", options + str(ports[1]))  # fmt: skip
    return ports


def self_managed_promotion(d: Drill, standby_port: int) -> None:
    world = d.world
    regions = dict(world.config.regions)
    dr = regions[DR]
    regions[DR] = replace(dr, database=replace(dr.database, host=HOST, port=standby_port,
                                               name="postgres", identifier=None))  # fmt: skip
    control = d.control_for(promotion="self-managed", regions=regions)
    promotion = control.promote(DR, budget_s=30)
    assert not promotion.already_primary and promotion.api == "pg_promote()"
    with psycopg.connect(host=HOST, port=standby_port, dbname="postgres", user="drkit",
                         password=DUMMY_DB_PASSWORD) as conn:  # fmt: skip
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
    assert control.promote(DR).already_primary
    assert_no_credentials(repr(promotion))


def test_self_managed_promotion(drill: Drill, pg_pair: tuple[int, int]) -> None:
    self_managed_promotion(drill, pg_pair[1])
    assert "secretsmanager:GetSecretValue" in drill.log.actions()


# -- a killed run, healed by `drkit rollback` in a fresh process ------------------------------

KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from drkit.aws.faults import AwsSecurityGroupBlock
    from drkit.faults.ledger import Ledger

    run_dir, state_dir, region, group_id, endpoint_url = sys.argv[1:6]
    with Ledger(Path(run_dir), state_dir=Path(state_dir)) as ledger:
        ledger.inject(AwsSecurityGroupBlock(region, group_id, endpoint_url))
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_rollback_restores_a_security_group_after_the_run_was_killed(
    drill: Drill, tmp_path: Path
) -> None:
    world, control = drill.world, drill.control
    before = control.security_group_snapshot(world.group_id)
    state, run_dir = tmp_path / "state", tmp_path / "run-1"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(run_dir), str(state), PRIMARY, world.group_id,
         world.url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    cut = control.security_group_snapshot(world.group_id)
    assert not cut.ingress and not cut.egress
    rollback = subprocess.run(
        [sys.executable, "-m", "drkit.faults", "rollback", "--state-dir", str(state)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    output = rollback.stdout + rollback.stderr
    assert rollback.returncode == 0 and "healed [1] security group" in output, output
    assert control.security_group_snapshot(world.group_id) == before
    assert_no_credentials(
        output, killed.stdout + killed.stderr, (run_dir / "ledger.jsonl").read_text()
    )
