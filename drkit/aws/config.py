"""The aws target's configuration (`--dr-config PATH`, TOML): data model, loader, secrets.

Loading and validation (`load_config`) turn a TOML file into these frozen dataclasses, or
raise ConfigError naming the file, the key (dotted path, e.g. `regions.us-east-1.database.host`),
the value and the fix. Secrets are never in the file: passwords and API keys are named by the
environment variable (or AWS Secrets Manager secret id) that holds them, and `resolve_secret`
reads them when a drill needs them. docs/examples/aws-staging.toml is the commented layout.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import tomllib
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from drkit.config import (
    LAB_PROFILE,
    PRODUCTION_PROFILE,
    RPO_OBJECTIVE_SECONDS,
    RTO_OBJECTIVE_SECONDS,
)
from drkit.errors import ConfigError, TargetUnreachable

ENVIRONMENTS = ("production", "staging")
PROMOTIONS = ("rds", "aurora-global", "self-managed")
ROUTE53_MODES = ("upsert", "failover-routing")
AUTOMATIONS = ("drkit-watcher", "external")
# "aws": the drill reaches the system through the config alone (a real account); "lab": the
# hybrid set-up, whose data plane is the running lab beside it (`drkit lab aws-config`).
DATA_PLANES = ("aws", "lab")
# the faults a config may hand to AWS FIS (`[fis_templates]`), by the steps' names
FIS_FAULTS = ("primary_crash", "replication_latency", "replication_bandwidth")
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
    # a group with no ingress rule that fencing attaches to the old primary's database
    # (EC2 instance or RDS instance) in place of its own groups; None: not fenced
    quarantine_group: str | None = None


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
    # the nameservers the drill's clients resolve the record through, "host[:port]"; empty:
    # the harness host's own (/etc/resolv.conf), as the desk's clients would
    resolvers: tuple[str, ...] = ()


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
    data_plane: str = "aws"  # aws | lab (the hybrid set-up's)

    def region(self, name: str) -> RegionConfig:
        return self.regions[name]

    def endpoint_url(self, service: str) -> str | None:
        return self.endpoint_urls.get(service)


# --- Loading and validation -----------------------------------------------------------------
#
# Layout (docs/examples/aws-staging.toml is the commented reference):
#
#   environment, primary_region, dr_region, promotion, automation, timing_profile, data_plane,
#   cloudwatch_namespace, evidence_bucket, approver          top-level keys
#   [objectives]                                             rto_minutes, rpo_minutes
#   [route53]                                                zone_id, record, mode, ttl, ...
#   [regions.<name>]  service_url                            one table per region, then
#   [regions.<name>.database]  [regions.<name>.network]  [regions.<name>.index]
#   [[stop_conditions]]  [[blackout_windows]]                arrays of tables
#   [endpoint_urls]  [fis_templates]                         service -> URL, fault -> template

MAX_CONFIG_BYTES = 1024 * 1024
TIMING_PROFILES = (LAB_PROFILE.name, PRODUCTION_PROFILE.name)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
REGULATORY_RTO_MINUTES = RTO_OBJECTIVE_SECONDS / 60
REGULATORY_RPO_MINUTES = RPO_OBJECTIVE_SECONDS / 60

DEFAULT_PRODUCTION_BLACKOUT = Window(start=time(9, 30), end=time(16, 0))
"""A production config without blackout windows gets this one: US market hours, 09:30-16:00
America/New_York, Monday to Friday, lifted on NYSE holidays. Drilling production during market
hours takes `--dr-override-market-hours=REASON`, never an empty list in the file."""

_EXAMPLE_FILE = "docs/examples/aws-staging.toml"
_REGION_NAME = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_ZONE_ID = re.compile(r"[A-Z0-9]{1,32}")
_DNS_NAME = re.compile(r"(\*\.)?([A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?")
_NAMESERVER = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?")
_FIS_TEMPLATE = re.compile(r"[A-Za-z0-9]{8,64}")  # AWS: EXT + letters and digits
_SECRET_NAME = re.compile(r"(^|_)(password|passwd|secret|token|api_?key)(_|$)")
_ABSENT: Any = object()

_TOP_REQUIRED = (
    "environment",
    "primary_region",
    "dr_region",
    "promotion",
    "automation",
    "cloudwatch_namespace",
    "evidence_bucket",
    "route53",
    "regions",
)
_TOP_OPTIONAL = (
    "timing_profile",
    "approver",
    "objectives",
    "stop_conditions",
    "blackout_windows",
    "endpoint_urls",
    "fis_templates",
    "data_plane",
)

# What to write, by "<kind>.<key>" or "<key>": the fix part of a message shows it.
_EXAMPLES = {
    "environment": 'environment = "staging"',
    "primary_region": 'primary_region = "us-east-1"',
    "dr_region": 'dr_region = "us-west-2"',
    "promotion": 'promotion = "rds"',
    "automation": 'automation = "drkit-watcher"',
    "timing_profile": 'timing_profile = "production"',
    "data_plane": 'data_plane = "aws"',
    "cloudwatch_namespace": 'cloudwatch_namespace = "Drkit/Staging"',
    "evidence_bucket": 'evidence_bucket = "example-drkit-evidence"',
    "approver": 'approver = "Jane Doe (Head of Trading Technology)"',
    "route53": "a [route53] table with zone_id, record and mode",
    "regions": "a [regions.<region>] table per region with service_url, database and network",
    "objectives": "an [objectives] table with rto_minutes and rpo_minutes",
    "endpoint_urls": 'an [endpoint_urls] table such as s3 = "https://s3.us-east-1.amazonaws.com"',
    "fis_templates": 'an [fis_templates] table such as primary_crash = "EXT0123456789abcd"',
    "region.service_url": 'service_url = "https://rag-use1.example.com"',
    "region.database": "a [regions.<region>.database] table with host, name, user and password",
    "region.network": 'a [regions.<region>.network] table with security_groups = ["sg-0123..."]',
    "region.index": 'a [regions.<region>.index] table with host and api_key = { env = "..." }',
    "database.host": 'host = "rag-db.cluster-abc.us-east-1.rds.amazonaws.com"',
    "database.port": "port = 5432",
    "database.name": 'name = "ragdb"',
    "database.user": 'user = "drkit"',
    "database.identifier": 'identifier = "rag-db-use1"',
    "database.ec2_instance_id": 'ec2_instance_id = "i-0123456789abcdef0"',
    "password": 'password = { env = "RAG_DB_PASSWORD" }',
    "api_key": 'api_key = { env = "PINECONE_API_KEY" }',
    "network.security_groups": 'security_groups = ["sg-0123456789abcdef0"]',
    "network.ports": "ports = [5432, 443]",
    "network.network_acls": 'network_acls = ["acl-0123456789abcdef0"]',
    "network.subnets": 'subnets = ["subnet-0123456789abcdef0"]',
    "index.host": 'host = "rag-abc1234.svc.us-east-1-aws.pinecone.io"',
    "route53.zone_id": 'zone_id = "Z0123456789ABCDEFGHIJ"',
    "route53.record": 'record = "rag.example.com."',
    "route53.mode": 'mode = "upsert"',
    "route53.ttl": "ttl = 60",
    "route53.health_check_ids": 'health_check_ids = ["11111111-2222-3333-4444-555555555555"]',
    "route53.resolvers": 'resolvers = ["10.0.0.2"]',
    "objectives.rto_minutes": "rto_minutes = 15",
    "objectives.rpo_minutes": "rpo_minutes = 60",
    "stop_conditions": 'a [[stop_conditions]] table such as name = "orders-5xx"',
    "stop_conditions.name": 'name = "orders-5xx"',
    "stop_conditions.alarm": 'alarm = "orders-5xx-rate"',
    "stop_conditions.region": 'region = "us-east-1"',
    "stop_conditions.probe_url": 'probe_url = "https://orders.example.com/health"',
    "blackout_windows": 'a [[blackout_windows]] table such as start = "09:30"',
    "blackout_windows.start": 'start = "09:30"',
    "blackout_windows.end": 'end = "16:00"',
    "blackout_windows.timezone": 'timezone = "America/New_York"',
    "blackout_windows.weekdays": 'weekdays = ["mon", "tue", "wed", "thu", "fri"]',
    "blackout_windows.exchange_holidays": "exchange_holidays = true",
    **{f"endpoint_urls.{s}": f'{s} = "https://{s}.us-east-1.amazonaws.com"' for s in SERVICES},
}


def load_config(path: Path) -> AwsConfig:
    """Read and validate the aws target's TOML config; the first problem found raises
    ConfigError as `<file>: <dotted.key>: <what is wrong> (got <value>); <what to do>`."""
    path = Path(path)
    data = _parse_toml(path, _read_text(path))
    _refuse_literal_secrets(path, data, "")
    return _aws_config(_Table(path, "", "", data))


def _read_text(path: Path) -> str:
    hint = f"pass --dr-config PATH to the aws target's TOML config (example: {_EXAMPLE_FILE})"
    if not path.exists():
        raise ConfigError(f"{path}: no such file; {hint}")
    if not path.is_file():
        raise ConfigError(f"{path}: not a regular file (a directory?); {hint}")
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: larger than 1 MB, too big for a drkit config (a real one is a few KB); "
            "check that --dr-config names the TOML config and not a data file"
        )
    return _decode(path, raw)


def _decode(path: Path, raw: bytes) -> str:
    if b"\x00" in raw:
        raise ConfigError(
            f"{path}: a binary file (it contains NUL bytes), not TOML text; "
            "check that --dr-config names the TOML config"
        )
    try:
        return raw.decode("utf-8-sig")  # a BOM from a Windows editor is harmless
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
            "save the file as UTF-8"
        ) from None


def _parse_toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib says "<problem> (at line L, column C)"; the offending line itself is not
        # quoted back, since it may be a secret written without quotes.
        found = re.fullmatch(r"(.*) \(at (.*)\)", str(exc), re.DOTALL)
        problem, where = (found[1], found[2]) if found else (str(exc), "unknown position")
        raise ConfigError(
            f"{path}: {where}: TOML syntax error: {problem}; fix the syntax there "
            f'(strings need double quotes, e.g. host = "db.example.com"; '
            f"see {_EXAMPLE_FILE})"
        ) from None


def _refuse_literal_secrets(source: Path, data: Mapping[str, Any], key: str) -> None:
    """Refuse any password/api_key/secret/token given as a value rather than a reference,
    anywhere in the file (even under a misspelt key), without ever repeating the value."""
    for name, value in data.items():
        dotted = f"{key}.{name}" if key else name
        if _SECRET_NAME.search(name.lower()) and not _is_secret_reference(value):
            raise ConfigError(
                f"{source}: {dotted}: a literal secret in the config file (got a "
                f"{_type_name(value)}, not shown); secrets never go in the file: reference it "
                f'with {name} = {{ env = "VARIABLE_NAME" }} (an environment variable) or '
                f'{name} = {{ secrets_manager = "secret-id-or-arn" }} (AWS Secrets Manager), '
                "and rotate this secret if the file was shared or committed"
            )
        if isinstance(value, dict):
            _refuse_literal_secrets(source, value, dotted)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    _refuse_literal_secrets(source, item, f"{dotted}[{index}]")


def _is_secret_reference(value: Any) -> bool:
    """A table naming env or secrets_manager; its other keys are refused later as unknown."""
    return isinstance(value, dict) and bool(set(value) & {"env", "secrets_manager"})


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    return "table" if isinstance(value, dict) else names.get(type(value), type(value).__name__)


def _closest(word: str, options: Iterable[str]) -> str | None:
    """The option a typo most likely meant: same letters in another case, then one that is a
    prefix of the other ("prod", "hostname"), then the nearest by difflib."""
    options = tuple(options)
    for option in options:
        if option.lower() == word.lower():
            return option
    prefixed = [o for o in options if o.startswith(word) or word.startswith(o)]
    if prefixed:
        return max(prefixed, key=lambda o: min(len(o), len(word)))  # the longest shared part
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return close[0] if close else None


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


class _Table:
    """One TOML table being validated: its file, dotted key, kind (for examples) and values."""

    def __init__(self, source: Path, key: str, kind: str, data: dict[str, Any]) -> None:
        self.source = source
        self.key = key
        self.kind = kind
        self.data = data

    def dotted(self, name: str | None) -> str:
        if name is None:
            return self.key
        return f"{self.key}.{name}" if self.key else name

    def example(self, name: str) -> str | None:
        return _EXAMPLES.get(f"{self.kind}.{name}") or _EXAMPLES.get(name)

    def fail(self, name: str | None, problem: str, fix: str, got: Any = _ABSENT) -> NoReturn:
        where = self.dotted(name)
        shown = "" if got is _ABSENT else f" (got {_show(got)})"
        prefix = f"{self.source}: {where}: " if where else f"{self.source}: "
        raise ConfigError(f"{prefix}{problem}{shown}; {fix}")

    def wrong_type(self, name: str, expected: str, value: Any) -> NoReturn:
        example = self.example(name)
        fix = f"write it as {expected}" + (f", e.g. {example}" if example else "")
        self.fail(name, f"expected {expected}", fix, got=value)

    def expect_keys(self, required: Iterable[str], optional: Iterable[str] = ()) -> None:
        """Unknown keys first (a misspelt required key is reported as the typo it is)."""
        required = tuple(required)
        allowed = (*required, *optional)
        for name in self.data:
            if name not in allowed:
                self._unknown(name, allowed)
        for name in required:
            if name not in self.data:
                example = self.example(name) or f"{name} = ..."
                self.fail(name, "missing required key", f"add {example} (see {_EXAMPLE_FILE})")

    def _unknown(self, name: str, allowed: tuple[str, ...]) -> NoReturn:
        close = _closest(name, allowed)
        listing = f"allowed here: {', '.join(allowed)}" if allowed else "no keys are allowed here"
        fix = f"did you mean {close!r}? ({listing})" if close else f"remove it ({listing})"
        self.fail(name, "unknown key", fix)

    def get(self, name: str, kinds: tuple[type, ...], expected: str, default: Any) -> Any:
        value = self.data.get(name, _ABSENT)
        if value is _ABSENT:
            return default
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            self.wrong_type(name, expected, value)
        return value

    def opt_string(self, name: str) -> str | None:
        value = self.get(name, (str,), "a string", None)
        if value is not None and not value.strip():
            self.wrong_type(name, "a non-empty string", value)
        return value

    def string(self, name: str, default: str | None = None) -> str:
        value = self.opt_string(name)
        if value is None:
            if default is None:  # expect_keys lists it as required, so this is a bug
                raise AssertionError(f"{self.dotted(name)} checked as required")
            return default
        return value

    def choice(self, name: str, allowed: Iterable[str], default: str | None = None) -> str:
        value = self.string(name, default)
        allowed = tuple(allowed)
        if value not in allowed:
            listing = ", ".join(repr(a) for a in allowed)
            close = _closest(value, allowed)
            hint = f"did you mean {close!r}? " if close else ""
            self.fail(name, "not an allowed value", f"{hint}use one of {listing}", got=value)
        return value

    def matching(self, name: str, pattern: re.Pattern[str], what: str) -> str:
        value = self.string(name)
        if not pattern.fullmatch(value):
            self.wrong_type(name, what, value)
        return value

    def integer(self, name: str, default: int) -> int:
        value: int = self.get(name, (int,), "an integer", default)
        return value

    def number(self, name: str, default: float) -> float:
        value = self.get(name, (int, float), "a number", default)
        if not math.isfinite(value) or value <= 0:
            self.fail(name, "must be a positive number", "give a value above 0", got=value)
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value: bool = self.get(name, (bool,), "true or false", default)
        return value

    def array(self, name: str, expected: str) -> list[Any]:
        value: list[Any] = self.get(name, (list,), expected, [])
        return value

    def strings(self, name: str, prefix: str = "") -> tuple[str, ...]:
        expected = f'an array of strings starting "{prefix}"' if prefix else "an array of strings"
        values = self.array(name, expected)
        for index, item in enumerate(values):
            if not isinstance(item, str) or not item.startswith(prefix) or item == prefix:
                self.fail(f"{name}[{index}]", f"expected {expected}", _fix(self, name), got=item)
        return tuple(values)

    def url(self, name: str, default: str | None = None) -> str:
        value = self.string(name, default)
        _check_url(self, name, value)
        return value

    def opt_url(self, name: str) -> str | None:
        return None if name not in self.data else self.url(name)

    def table(self, name: str, kind: str | None = None) -> _Table:
        value = self.get(name, (dict,), "a table", _ABSENT)
        if value is _ABSENT:
            raise AssertionError(f"{self.dotted(name)} checked as required")
        return _Table(self.source, self.dotted(name), kind or name, value)

    def opt_table(self, name: str) -> _Table | None:
        return self.table(name) if name in self.data else None

    def tables(self, name: str) -> list[_Table]:
        """An array of tables (`[[name]]`), each with its index in its dotted key."""
        expected = f"an array of tables ([[{name}]])"
        items = self.array(name, expected)
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                self.fail(f"{name}[{index}]", f"expected {expected}", _fix(self, name), got=item)
        key = self.dotted(name)
        return [_Table(self.source, f"{key}[{i}]", name, item) for i, item in enumerate(items)]


def _fix(table: _Table, name: str) -> str:
    example = table.example(name)
    return f"write it as e.g. {example}" if example else f"see {_EXAMPLE_FILE}"


def _check_url(table: _Table, name: str, value: str) -> None:
    if "@" in value:  # checked first and never echoed: user:password@host
        table.fail(
            name,
            "credentials in a URL (it has an '@', value not shown)",
            "remove the user:password@ part; secrets never go in the file",
        )
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        table.wrong_type(name, "an http(s) URL", value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        table.wrong_type(name, "an http(s) URL", value)


def _aws_config(top: _Table) -> AwsConfig:
    top.expect_keys(_TOP_REQUIRED, _TOP_OPTIONAL)
    environment = top.choice("environment", ENVIRONMENTS)
    primary, dr = _region_pair(top)
    promotion = top.choice("promotion", PROMOTIONS)
    regions = _regions(top.table("regions"), primary, dr, promotion)
    return AwsConfig(
        path=top.source,
        environment=environment,
        primary_region=primary,
        dr_region=dr,
        regions=regions,
        route53=_route53(top.table("route53")),
        promotion=promotion,
        automation=top.choice("automation", AUTOMATIONS),
        cloudwatch_namespace=_namespace(top),
        evidence_bucket=top.matching("evidence_bucket", _BUCKET, "an S3 bucket name"),
        timing_profile=top.choice("timing_profile", TIMING_PROFILES, PRODUCTION_PROFILE.name),
        objectives=_objectives(top.opt_table("objectives")),
        approver=top.opt_string("approver"),
        stop_conditions=_stop_conditions(top, regions),
        blackout_windows=_blackout_windows(top, environment),
        endpoint_urls=_endpoint_urls(top.opt_table("endpoint_urls")),
        fis_templates=_fis_templates(top.opt_table("fis_templates")),
        data_plane=top.choice("data_plane", DATA_PLANES, "aws"),
    )


def _region_pair(top: _Table) -> tuple[str, str]:
    what = 'an AWS region name like "us-east-1"'
    primary = top.matching("primary_region", _REGION_NAME, what)
    dr = top.matching("dr_region", _REGION_NAME, what)
    if dr == primary:
        top.fail(
            "dr_region",
            "is the same region as primary_region",
            "a DR drill needs a second region: name another one, e.g. us-west-2",
            got=dr,
        )
    return primary, dr


def _namespace(top: _Table) -> str:
    value = top.string("cloudwatch_namespace")
    if value.startswith("AWS/"):
        top.fail(
            "cloudwatch_namespace",
            'the "AWS/" prefix is reserved for AWS services',
            'use your own, e.g. cloudwatch_namespace = "Drkit/Staging"',
            got=value,
        )
    return value


def _regions(table: _Table, primary: str, dr: str, promotion: str) -> dict[str, RegionConfig]:
    for role, name in (("primary_region", primary), ("dr_region", dr)):
        if name not in table.data:
            present = ", ".join(table.data) or "none"
            table.fail(
                name,
                f"missing: {role} names it but there is no [regions.{name}] table",
                f"add [regions.{name}] with service_url, database and network, "
                f"or correct {role} (regions present: {present})",
            )
    for name in table.data:
        if name not in (primary, dr):
            table.fail(
                name,
                "is neither primary_region nor dr_region",
                f"remove it or rename it; drkit drills {primary} (primary) and {dr} (DR)",
            )
    return {name: _region(table.table(name, "region"), name, promotion) for name in (primary, dr)}


def _region(table: _Table, name: str, promotion: str) -> RegionConfig:
    table.expect_keys(("service_url", "database"), ("network", "index"))
    network_table = table.opt_table("network")
    index = table.opt_table("index")
    database = _database(table.table("database"), promotion)
    network = _network(network_table) if network_table else NetworkConfig()
    if network_table and network.quarantine_group is not None:
        if promotion == "aurora-global":
            network_table.fail(
                "quarantine_group",
                'not used with promotion = "aurora-global" (an Aurora cluster\'s groups are '
                "its cluster's)",
                "remove it; fence the old cluster with your own automation",
                got=network.quarantine_group,
            )
        if promotion == "self-managed" and database.ec2_instance_id is None:
            network_table.fail(
                "quarantine_group",
                "needs the database's instance: fencing moves it into the quarantine group",
                f"add ec2_instance_id to [regions.{name}.database], or remove quarantine_group",
                got=network.quarantine_group,
            )
    return RegionConfig(
        name=name,
        database=database,
        service_url=table.url("service_url"),
        network=network,
        index=_index(index) if index else None,
    )


def _database(table: _Table, promotion: str) -> DatabaseConfig:
    table.expect_keys(
        ("host", "name", "user", "password"), ("port", "identifier", "ec2_instance_id")
    )
    identifier = table.opt_string("identifier")
    if promotion != "self-managed" and identifier is None:
        table.fail(
            "identifier",
            f'missing: promotion = "{promotion}" promotes the database by its identifier',
            f"add {table.example('identifier')} (the RDS instance or Aurora global-cluster id), "
            'or set promotion = "self-managed"',
        )
    if promotion == "self-managed" and identifier is not None:
        table.fail(
            "identifier",
            'only used with promotion = "rds" or "aurora-global"',
            "remove it, or set promotion to the service that promotes this database",
            got=identifier,
        )
    return DatabaseConfig(
        host=_host(table, "host"),
        port=_port(table, "port", table.integer("port", 5432)),
        name=table.string("name"),
        user=table.string("user"),
        password=_secret_ref(table, "password"),
        identifier=identifier,
        ec2_instance_id=_ec2_instance(table, promotion),
    )


def _ec2_instance(table: _Table, promotion: str) -> str | None:
    """Self-managed PostgreSQL may name its EC2 instance (the crash fault stops it); without
    one the crash fault is unavailable. RDS and Aurora have no instance of ours to stop."""
    value = table.opt_string("ec2_instance_id")
    if value is not None and promotion != "self-managed":
        table.fail(
            "ec2_instance_id",
            f'not used with promotion = "{promotion}" (AWS runs that database)',
            'remove it, or set promotion = "self-managed"',
            got=value,
        )
    if value is not None and not re.fullmatch(r"i-[0-9a-f]{8,17}", value):
        table.wrong_type("ec2_instance_id", 'an EC2 instance id ("i-" and hex digits)', value)
    return value


def _host(table: _Table, name: str) -> str:
    value = table.string(name)
    if "@" in value:  # not echoed: user:password@host
        problem = "expected a host name, not a URL or DSN (it has an '@', value not shown)"
        table.fail(name, problem, _fix(table, name))
    if "://" in value or "/" in value or any(c.isspace() for c in value):
        table.fail(name, "expected a host name, not a URL or DSN", _fix(table, name), got=value)
    return value


def _port(table: _Table, name: str, value: int) -> int:
    if not 1 <= value <= 65535:
        table.fail(name, "port out of range", "use a TCP port between 1 and 65535", got=value)
    return value


def _secret_ref(table: _Table, name: str) -> SecretRef:
    ref = table.table(name)
    ref.expect_keys((), ("env", "secrets_manager"))
    env = ref.opt_string("env")
    secret_id = ref.opt_string("secrets_manager")
    if (env is None) == (secret_id is None):
        ref.fail(
            None,
            "a secret reference needs exactly one of env or secrets_manager",
            f'write {table.example(name)} or {name} = {{ secrets_manager = "secret-id-or-arn" }}',
        )
    if env is not None and not _ENV_NAME.fullmatch(env):
        # not echoed: a value that is no variable name may be the secret itself
        ref.fail(
            "env",
            "not an environment variable name (not shown)",
            "give the name of the variable that holds the secret: letters, digits and "
            'underscores, e.g. env = "RAG_DB_PASSWORD"',
        )
    return SecretRef(env=env, secrets_manager=secret_id)


def _network(table: _Table) -> NetworkConfig:
    table.expect_keys(
        (), ("security_groups", "ports", "network_acls", "subnets", "quarantine_group")
    )
    groups = table.strings("security_groups", "sg-")
    quarantine = table.opt_string("quarantine_group")
    if quarantine is not None and not re.fullmatch(r"sg-[0-9a-z]+", quarantine):
        table.wrong_type("quarantine_group", 'a security group id like "sg-0123abcd"', quarantine)
    if quarantine is not None and quarantine in groups:
        table.fail(
            "quarantine_group",
            "is also one of security_groups",
            "name a group of its own with no ingress rule: fencing puts the old primary's "
            "database in it instead of its groups",
            got=quarantine,
        )
    ports = tuple(_ports(table))
    if ports and not groups:
        table.fail(
            "ports",
            "ports without security_groups",
            "ports are the ones a security-group block may cut: list the security_groups "
            "too, or remove ports",
            got=list(ports),
        )
    return NetworkConfig(
        security_groups=groups,
        ports=ports,
        network_acls=table.strings("network_acls", "acl-"),
        subnets=table.strings("subnets", "subnet-"),
        quarantine_group=quarantine,
    )


def _ports(table: _Table) -> Iterable[int]:
    for index, item in enumerate(table.array("ports", "an array of integers")):
        if not isinstance(item, int) or isinstance(item, bool):
            table.fail(f"ports[{index}]", "expected an integer", _fix(table, "ports"), got=item)
        yield _port(table, f"ports[{index}]", item)


def _index(table: _Table) -> IndexConfig:
    table.expect_keys(("host", "api_key"))
    host = table.string("host")
    if "://" in host:
        _check_url(table, "host", host)
    elif not _DNS_NAME.fullmatch(host.split(":")[0]):
        table.wrong_type("host", "a Pinecone index host name or http(s) URL", host)
    return IndexConfig(host=host, api_key=_secret_ref(table, "api_key"))


def _route53(table: _Table) -> Route53Config:
    table.expect_keys(("zone_id", "record", "mode"), ("ttl", "health_check_ids", "resolvers"))
    mode = table.choice("mode", ROUTE53_MODES)
    checks = table.strings("health_check_ids")
    if mode == "failover-routing" and not checks:
        table.fail(
            "health_check_ids",
            'missing: mode = "failover-routing" needs the health checks of its records',
            f"add {table.example('health_check_ids')} (the primary record's check), "
            'or use mode = "upsert"',
        )
    ttl = table.integer("ttl", 60)
    if ttl < 1:
        table.fail("ttl", "must be a positive number of seconds", "e.g. ttl = 60", got=ttl)
    resolvers = table.strings("resolvers")
    for index, item in enumerate(resolvers):
        if not _NAMESERVER.fullmatch(item):
            table.fail(
                f"resolvers[{index}]",
                "expected a nameserver as host[:port]",
                'e.g. resolvers = ["10.0.0.2"] (the VPC resolver) or ["127.0.0.1:5353"]',
                got=item,
            )
    return Route53Config(
        zone_id=table.matching(
            "zone_id", _ZONE_ID, "a hosted zone id (capital letters and digits, no /hostedzone/)"
        ),
        record=table.matching("record", _DNS_NAME, 'a DNS name like "rag.example.com."'),
        mode=mode,
        ttl=ttl,
        health_check_ids=checks,
        resolvers=resolvers,
    )


def _objectives(table: _Table | None) -> Objectives:
    """RTO 15 min and RPO 60 min are the regulatory objectives; a config may tighten them
    (an internal target) but never loosen them."""
    if table is None:
        return Objectives()
    table.expect_keys((), ("rto_minutes", "rpo_minutes"))
    rto = table.number("rto_minutes", REGULATORY_RTO_MINUTES)
    rpo = table.number("rpo_minutes", REGULATORY_RPO_MINUTES)
    for name, value, limit in (
        ("rto_minutes", rto, REGULATORY_RTO_MINUTES),
        ("rpo_minutes", rpo, REGULATORY_RPO_MINUTES),
    ):
        if value > limit:
            table.fail(
                name,
                f"looser than the regulatory objective of {limit:g} minutes",
                f"use {limit:g} or less; a config may tighten the objectives, never loosen them",
                got=table.data[name],
            )
    return Objectives(rto_minutes=rto, rpo_minutes=rpo)


def _stop_conditions(top: _Table, regions: Mapping[str, RegionConfig]) -> tuple[StopCondition, ...]:
    conditions: list[StopCondition] = []
    for table in top.tables("stop_conditions"):
        condition = _stop_condition(table, regions)
        if any(c.name == condition.name for c in conditions):
            table.fail(
                "name",
                "repeats an earlier stop condition's name",
                "give each its own",
                got=condition.name,
            )
        conditions.append(condition)
    return tuple(conditions)


def _stop_condition(table: _Table, regions: Mapping[str, RegionConfig]) -> StopCondition:
    table.expect_keys(("name",), ("alarm", "region", "probe_url"))
    alarm = table.opt_string("alarm")
    probe_url = table.opt_url("probe_url")
    if (alarm is None) == (probe_url is None):
        table.fail(
            None,
            f"needs exactly one of alarm or probe_url ({'both' if alarm else 'neither'} given)",
            f"write {_EXAMPLES['stop_conditions.alarm']} (a CloudWatch alarm) or "
            f"{_EXAMPLES['stop_conditions.probe_url']}, one per [[stop_conditions]]",
        )
    region = table.opt_string("region")
    if region is not None and region not in regions:
        table.fail(
            "region",
            "not one of the drill's regions",
            f"use one of {', '.join(map(repr, regions))}",
            got=region,
        )
    return StopCondition(name=table.string("name"), alarm=alarm, region=region, probe_url=probe_url)


def _blackout_windows(top: _Table, environment: str) -> tuple[Window, ...]:
    windows = tuple(_window(table) for table in top.tables("blackout_windows"))
    if not windows and environment == "production":
        return (DEFAULT_PRODUCTION_BLACKOUT,)
    return windows


def _window(table: _Table) -> Window:
    table.expect_keys(("start", "end"), ("timezone", "weekdays", "exchange_holidays"))
    start, end = _clock(table, "start"), _clock(table, "end")
    if not start < end:
        table.fail(
            "end",
            f"not after start ({start:%H:%M})",
            "a window runs within one day: split one that crosses midnight into two",
            got=f"{end:%H:%M}",
        )
    return Window(
        start=start,
        end=end,
        timezone=_timezone(table, "timezone"),
        weekdays=_weekdays(table, "weekdays"),
        exchange_holidays=table.boolean("exchange_holidays", True),
    )


def _clock(table: _Table, name: str) -> time:
    value = table.get(name, (str,), 'a "HH:MM" string', _ABSENT)
    found = _CLOCK.fullmatch(value)
    if found is None:
        table.wrong_type(name, 'a 24-hour "HH:MM" time', value)
    return time(int(found[1]), int(found[2]))


def _timezone(table: _Table, name: str) -> str:
    value = table.string(name, "America/New_York")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        table.fail(name, "not an IANA time zone", f'{hint}e.g. "America/New_York"', got=value)
    return value


def _weekdays(table: _Table, name: str) -> tuple[int, ...]:
    values = table.array(name, 'an array of day names ("mon" .. "sun")')
    if name not in table.data:
        return (0, 1, 2, 3, 4)
    if not values:
        table.fail(
            name,
            "empty",
            f"list the days, e.g. {_EXAMPLES['blackout_windows.weekdays']}",
            got=values,
        )
    days = set()
    for index, item in enumerate(values):
        if item not in WEEKDAYS:
            table.fail(
                f"{name}[{index}]",
                "not a day name",
                f"use {', '.join(map(repr, WEEKDAYS))}",
                got=item,
            )
        days.add(WEEKDAYS.index(item))
    return tuple(sorted(days))


def _endpoint_urls(table: _Table | None) -> dict[str, str]:
    """service -> endpoint URL: VPC interface endpoints, FIPS endpoints, or an emulator such
    as moto for a rehearsal; a service not listed goes to its public AWS endpoint."""
    if table is None:
        return {}
    table.expect_keys((), SERVICES)
    return {service: table.url(service) for service in table.data}


def _fis_templates(table: _Table | None) -> dict[str, str]:
    """fault name -> AWS FIS experiment template id; a fault without one is injected by drkit's
    own API calls."""
    if table is None:
        return {}
    templates: dict[str, str] = {}
    for name in table.data:
        if name not in FIS_FAULTS:
            table.fail(
                name,
                "not a fault the aws target can run through FIS",
                f"use one of {', '.join(FIS_FAULTS)}",
            )
        templates[name] = table.matching(
            name, _FIS_TEMPLATE, 'an FIS template id (letters and digits, e.g. "EXT0123456789abcd")'
        )
    return templates


# --- Secrets --------------------------------------------------------------------------------


def resolve_secret(
    ref: SecretRef,
    *,
    secrets_client: Any = None,
    config: AwsConfig | None = None,
    region: str | None = None,
) -> str:
    """The secret a reference names, from its environment variable or from AWS Secrets Manager.

    Secrets Manager is read through `secrets_client`, or a client made with the config's
    `endpoint_urls.secretsmanager` in the region the ARN names, else `region` (pass the region
    whose database or index the secret belongs to), else the config's primary region.
    The value is never logged nor put in a message."""
    if ref.env is not None:
        return _secret_from_env(ref.env)
    if ref.secrets_manager is not None:
        client = secrets_client or _secrets_client(ref.secrets_manager, config, region)
        return _secret_from_manager(ref.secrets_manager, client)
    raise ConfigError(
        "a secret reference names neither env nor secrets_manager; "
        'write { env = "NAME" } or { secrets_manager = "secret-id-or-arn" }'
    )


def _secret_from_env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(
            f"environment variable {name} is not set; the config reads a secret from it: "
            f"export {name} (e.g. from your vault) in the shell that runs the drill"
        )
    if not value.strip():
        raise ConfigError(
            f"environment variable {name} is set but empty; the config reads a secret from it: "
            f"export {name} with the secret's value"
        )
    return value


def _secrets_client(secret_id: str, config: AwsConfig | None, region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    arn = re.match(r"arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):", secret_id)
    region = (arn[1] if arn else None) or region or (config.primary_region if config else None)
    return boto3.session.Session().client(
        "secretsmanager",
        region_name=region,
        endpoint_url=config.endpoint_url("secretsmanager") if config else None,
        config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3}),
    )


def _secret_from_manager(secret_id: str, client: Any) -> str:
    import botocore.exceptions

    from drkit.clients.aws import error_code

    try:
        answer = client.get_secret_value(SecretId=secret_id)
    except botocore.exceptions.ClientError as exc:
        raise ConfigError(
            f"Secrets Manager refused secret {secret_id!r} ({error_code(exc) or exc}); check "
            "the id or ARN, its region, and that the drill's role may call "
            "secretsmanager:GetSecretValue on it"
        ) from exc
    except (botocore.exceptions.BotoCoreError, OSError) as exc:
        raise TargetUnreachable(
            f"Secrets Manager did not answer for secret {secret_id!r} ({exc}); check the "
            "network path to it, or endpoint_urls.secretsmanager in the config"
        ) from exc
    return _secret_string(secret_id, answer)


def _secret_string(secret_id: str, answer: Mapping[str, Any]) -> str:
    value = answer.get("SecretString")
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"Secrets Manager secret {secret_id!r} has no text value (a binary secret?); "
            "store the secret itself as its SecretString"
        )
    if value.lstrip().startswith("{"):
        try:
            keys = sorted(json.loads(value))
        except (ValueError, TypeError):
            return value  # a password may start with "{"
        raise ConfigError(
            f"Secrets Manager secret {secret_id!r} holds a JSON object (keys: "
            f"{', '.join(map(str, keys))}), not the secret itself; point the config at a "
            "secret whose value is the plain password or key"
        )
    return value
