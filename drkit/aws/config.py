"""The aws target's configuration (`--dr-config PATH`, TOML): the data model.

Loading and validation (`load_config`) turn a TOML file into these frozen dataclasses, or
raise ConfigError naming the file, the key (dotted path, e.g. `regions.us-east-1.database.host`),
the value and the fix. Secrets are never in the file: passwords and API keys are named by the
environment variable (or AWS Secrets Manager secret id) that holds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from pathlib import Path

ENVIRONMENTS = ("production", "staging")
PROMOTIONS = ("rds", "aurora-global", "self-managed")
ROUTE53_MODES = ("upsert", "failover-routing")
AUTOMATIONS = ("drkit-watcher", "external")
SERVICES = ("route53", "ec2", "rds", "cloudwatch", "s3", "fis", "secretsmanager", "sts")


@dataclass(frozen=True)
class SecretRef:
    """Where a secret comes from: an environment variable, or a Secrets Manager secret id."""

    env: str | None = None
    secrets_manager: str | None = None


@dataclass(frozen=True)
class DatabaseConfig:
    host: str
    port: int
    name: str
    user: str
    password: SecretRef
    # RDS instance id, Aurora global-cluster id, or None for self-managed PostgreSQL on EC2
    identifier: str | None = None
    ec2_instance_id: str | None = None  # self-managed: the instance a crash fault stops


@dataclass(frozen=True)
class NetworkConfig:
    """What a drill may touch in a region: security groups (with the ports a block may cut)
    and network ACLs of subnets (to isolate a region the way security groups cannot)."""

    security_groups: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    network_acls: tuple[str, ...] = ()
    subnets: tuple[str, ...] = ()


@dataclass(frozen=True)
class IndexConfig:
    host: str  # the Pinecone index host
    api_key: SecretRef


@dataclass(frozen=True)
class RegionConfig:
    name: str  # e.g. us-east-1
    database: DatabaseConfig
    service_url: str  # the region's own public service URL
    network: NetworkConfig
    index: IndexConfig | None = None


@dataclass(frozen=True)
class Route53Config:
    zone_id: str
    record: str  # the public name, e.g. rag.example.com.
    mode: str  # upsert | failover-routing
    ttl: int = 60
    health_check_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Window:
    """A blackout window in a time zone on the given weekdays (0 = Monday)."""

    start: time
    end: time
    timezone: str = "America/New_York"
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    exchange_holidays: bool = True  # NYSE holidays are not trading days: no blackout then


@dataclass(frozen=True)
class StopCondition:
    """Watched during the fault window: a CloudWatch alarm in ALARM, or a guard probe URL
    that stops answering 2xx, aborts the drill (everything healed, reported as aborted)."""

    name: str
    alarm: str | None = None
    region: str | None = None
    probe_url: str | None = None


@dataclass(frozen=True)
class Objectives:
    rto_minutes: float = 15.0
    rpo_minutes: float = 60.0


@dataclass(frozen=True)
class AwsConfig:
    path: Path
    environment: str  # production | staging
    primary_region: str
    dr_region: str
    regions: dict[str, RegionConfig]
    route53: Route53Config
    promotion: str  # rds | aurora-global | self-managed
    automation: str  # drkit-watcher | external (Route 53 failover routing, Lambda, ARC)
    cloudwatch_namespace: str
    evidence_bucket: str
    timing_profile: str  # lab | production, or a name from drkit.config
    objectives: Objectives
    approver: str | None
    stop_conditions: tuple[StopCondition, ...] = ()
    blackout_windows: tuple[Window, ...] = ()
    endpoint_urls: dict[str, str] = field(default_factory=dict)  # service -> URL (moto, VPC)
    fis_templates: dict[str, str] = field(default_factory=dict)  # fault name -> template id

    def region(self, name: str) -> RegionConfig:
        return self.regions[name]

    def endpoint_url(self, service: str) -> str | None:
        return self.endpoint_urls.get(service)
