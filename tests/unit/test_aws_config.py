"""The aws target's TOML config: both examples load, and each bad config is refused with one
message naming the file, the dotted key, the value and the fix (secrets never echoed)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from datetime import time
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from drkit.aws.config import (
    DEFAULT_PRODUCTION_BLACKOUT,
    AwsConfig,
    SecretRef,
    Window,
    load_config,
    resolve_secret,
)
from drkit.errors import ConfigError

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
STAGING = EXAMPLES / "aws-staging.toml"
PRODUCTION = EXAMPLES / "aws-production.toml"
DELETE = object()
WINDOW = {"start": "09:30", "end": "16:00"}
SECRET = "hunter2-Xq9!zz"


def to_toml(data: dict[str, Any]) -> str:
    """A tiny TOML writer: every table inline, every key quoted (both valid TOML)."""
    return "".join(f"{json.dumps(key)} = {_value(value)}\n" for key, value in data.items())


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def edited(*edits: tuple[str, Any]) -> dict[str, Any]:
    """The staging example with `dotted.key` set (or DELETEd); numbers index arrays."""
    data = tomllib.loads(STAGING.read_text())
    for dotted, value in edits:
        *parents, leaf = dotted.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "drkit-aws.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


# --- the examples -----------------------------------------------------------------------


def test_staging_example_loads() -> None:
    config = load_config(STAGING)
    assert (config.environment, config.primary_region, config.dr_region) == (
        "staging",
        "us-east-1",
        "us-west-2",
    )
    assert config.promotion == "self-managed" and config.automation == "drkit-watcher"
    assert config.data_plane == "aws"  # a real account: the config alone
    assert config.region("us-east-1").network.quarantine_group == "sg-0aaaaaaaaaaaaaaa1"
    east = config.region("us-east-1")
    assert east.database.password == SecretRef(env="RAG_DB_PASSWORD_USE1")
    assert east.database.ec2_instance_id == "i-0123456789abcdef0"
    assert east.network.ports == (5432, 443)
    west = config.region("us-west-2")
    assert west.database.port == 5432  # the default
    assert west.database.password == SecretRef(secrets_manager="staging/rag-db-usw2/drkit")
    assert config.route53.mode == "upsert" and config.route53.ttl == 60
    assert config.blackout_windows == ()  # staging gets no default window
    assert config.endpoint_url("s3") is not None and config.endpoint_url("rds") is None


def test_production_example_loads() -> None:
    config = load_config(PRODUCTION)
    assert config.environment == "production" and config.promotion == "rds"
    assert config.route53.mode == "failover-routing"
    assert len(config.route53.health_check_ids) == 2
    assert config.region("us-west-2").database.identifier == "rag-db-usw2-replica"
    assert [c.name for c in config.stop_conditions] == ["order-gateway-errors", "market-data-feed"]
    assert config.stop_conditions[1].probe_url == "https://marketdata.example.com/health"
    assert config.blackout_windows[0] == Window(start=time(9, 0), end=time(16, 30))
    assert config.blackout_windows[1].exchange_holidays is False
    assert config.fis_templates == {"primary_crash": "EXT0123456789abcd"}


def test_the_test_writer_round_trips_the_example(tmp_path: Path) -> None:
    again = load_config(write(tmp_path, edited()))
    assert again == AwsConfig(**{**load_config(STAGING).__dict__, "path": again.path})


def test_production_without_windows_gets_us_market_hours(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, edited(("environment", "production"))))
    assert config.blackout_windows == (DEFAULT_PRODUCTION_BLACKOUT,)
    window = config.blackout_windows[0]
    assert (window.start, window.end, window.timezone) == (
        time(9, 30),
        time(16, 0),
        "America/New_York",
    )
    assert window.weekdays == (0, 1, 2, 3, 4) and window.exchange_holidays


def test_resolvers_are_read(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, edited(("route53.resolvers", ["10.0.0.2", "127.0.0.1:5353"])))
    )
    assert config.route53.resolvers == ("10.0.0.2", "127.0.0.1:5353")


def test_objectives_may_be_tightened(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, edited(("objectives", {"rto_minutes": 10}))))
    assert (config.objectives.rto_minutes, config.objectives.rpo_minutes) == (10.0, 60.0)


# --- the corpus of bad configs ----------------------------------------------------------

DB = "regions.us-east-1.database"
RDS_IDS = (
    ("promotion", "rds"),
    (f"{DB}.identifier", "rag-db-use1"),
    ("regions.us-west-2.database.identifier", "rag-db-usw2"),
    ("regions.us-west-2.database.ec2_instance_id", DELETE),
)

BAD_CONFIGS: list[tuple[str, tuple[tuple[str, Any], ...], str]] = [
    (
        "missing-environment",
        (("environment", DELETE),),
        'environment: missing required key; add environment = "staging"',
    ),
    (
        "environment-not-allowed",
        (("environment", "prod"),),
        "environment: not an allowed value (got 'prod'); did you mean 'production'? "
        "use one of 'production', 'staging'",
    ),
    (
        "misspelt-top-level-key",
        (("environment", DELETE), ("enviroment", "staging")),
        "enviroment: unknown key; did you mean 'environment'?",
    ),
    (
        "unknown-key-far-away",
        ((f"{DB}.hostname", "db.invalid"),),
        f"{DB}.hostname: unknown key; did you mean 'host'?",
    ),
    (
        "unknown-key-nothing-close",
        (("flux_capacitor", 1),),
        "flux_capacitor: unknown key; remove it (allowed here: environment, primary_region",
    ),
    (
        "missing-table",
        (("route53", DELETE),),
        "route53: missing required key; add a [route53] table with zone_id, record and mode",
    ),
    (
        "table-given-a-string",
        (("route53", "Z0123456789ABCDEFGHIJ"),),
        "route53: expected a table (got 'Z0123456789ABCDEFGHIJ'); write it as a table",
    ),
    (
        "port-as-string",
        ((f"{DB}.port", "5432"),),
        f"{DB}.port: expected an integer (got '5432'); write it as an integer, e.g. port = 5432",
    ),
    (
        "port-as-boolean",
        ((f"{DB}.port", True),),
        f"{DB}.port: expected an integer (got True)",
    ),
    (
        "port-out-of-range",
        ((f"{DB}.port", 70000),),
        f"{DB}.port: port out of range (got 70000); use a TCP port between 1 and 65535",
    ),
    (
        "network-port-zero",
        (("regions.us-east-1.network.ports", [5432, 0]),),
        "regions.us-east-1.network.ports[1]: port out of range (got 0)",
    ),
    (
        "ports-without-security-groups",
        (("regions.us-east-1.network.security_groups", DELETE),),
        "regions.us-east-1.network.ports: ports without security_groups (got [5432, 443])",
    ),
    (
        "security-group-not-an-id",
        (("regions.us-east-1.network.security_groups", ["default"]),),
        "regions.us-east-1.network.security_groups[0]: expected an array of strings "
        "starting \"sg-\" (got 'default')",
    ),
    (
        "empty-string",
        ((f"{DB}.user", "  "),),
        f"{DB}.user: expected a non-empty string (got '  ')",
    ),
    (
        "primary-equals-dr",
        (("dr_region", "us-east-1"),),
        "dr_region: is the same region as primary_region (got 'us-east-1'); "
        "a DR drill needs a second region",
    ),
    (
        "region-name-malformed",
        (("primary_region", "useast1"),),
        "primary_region: expected an AWS region name like \"us-east-1\" (got 'useast1')",
    ),
    (
        "dr-region-has-no-table",
        (("regions.us-west-2", DELETE),),
        "regions.us-west-2: missing: dr_region names it but there is no "
        "[regions.us-west-2] table; add [regions.us-west-2]",
    ),
    (
        "extra-region",
        (("regions.eu-west-1", {"service_url": "https://x.example.com"}),),
        "regions.eu-west-1: is neither primary_region nor dr_region",
    ),
    (
        "service-url-not-http",
        (("regions.us-east-1.service_url", "ftp://rag.example.com"),),
        "regions.us-east-1.service_url: expected an http(s) URL (got 'ftp://rag.example.com')",
    ),
    (
        "service-url-without-scheme",
        (("regions.us-east-1.service_url", "rag.example.com"),),
        "regions.us-east-1.service_url: expected an http(s) URL (got 'rag.example.com')",
    ),
    (
        "endpoint-url-unknown-service",
        (("endpoint_urls.s4", "http://127.0.0.1:5000"),),
        "endpoint_urls.s4: unknown key; did you mean 's3'? (allowed here: route53, ec2, rds",
    ),
    (
        "endpoint-url-not-a-url",
        (("endpoint_urls.s3", "localhost:5000"),),
        "endpoint_urls.s3: expected an http(s) URL (got 'localhost:5000')",
    ),
    (
        "promotion-not-allowed",
        (("promotion", "manual"),),
        "promotion: not an allowed value (got 'manual'); "
        "use one of 'rds', 'aurora-global', 'self-managed'",
    ),
    (
        "automation-not-allowed",
        (("automation", "lambda"),),
        "automation: not an allowed value (got 'lambda'); use one of 'drkit-watcher', 'external'",
    ),
    (
        "timing-profile-not-allowed",
        (("timing_profile", "fast"),),
        "timing_profile: not an allowed value (got 'fast'); use one of 'lab', 'production'",
    ),
    (
        "quarantine-group-not-a-group",
        (("regions.us-east-1.network.quarantine_group", "quarantine"),),
        "regions.us-east-1.network.quarantine_group: expected a security group id like "
        "\"sg-0123abcd\" (got 'quarantine')",
    ),
    (
        "quarantine-group-is-a-drilled-group",
        (("regions.us-east-1.network.quarantine_group", "sg-0123456789abcdef0"),),
        "regions.us-east-1.network.quarantine_group: is also one of security_groups "
        "(got 'sg-0123456789abcdef0'); name a group of its own with no ingress rule",
    ),
    (
        "quarantine-group-without-instance",
        ((f"{DB}.ec2_instance_id", DELETE),),
        "regions.us-east-1.network.quarantine_group: needs the database's instance: fencing "
        "moves it into the quarantine group (got 'sg-0aaaaaaaaaaaaaaa1'); add ec2_instance_id "
        "to [regions.us-east-1.database], or remove quarantine_group",
    ),
    (
        "data-plane-not-allowed",
        (("data_plane", "lba"),),
        "data_plane: not an allowed value (got 'lba'); did you mean 'lab'? use one of 'aws', 'lab'",
    ),
    (
        "rds-without-identifier",
        (("promotion", "rds"),),
        f'{DB}.identifier: missing: promotion = "rds" promotes the database by its identifier',
    ),
    (
        "aurora-without-identifier",
        (("promotion", "aurora-global"), (f"{DB}.ec2_instance_id", DELETE)),
        f'{DB}.identifier: missing: promotion = "aurora-global" promotes',
    ),
    (
        "self-managed-with-identifier",
        ((f"{DB}.identifier", "rag-db-use1"),),
        f'{DB}.identifier: only used with promotion = "rds" or "aurora-global" '
        "(got 'rag-db-use1')",
    ),
    (
        "rds-with-ec2-instance",
        RDS_IDS[:3],
        f'{DB}.ec2_instance_id: not used with promotion = "rds"',
    ),
    (
        "ec2-instance-id-malformed",
        ((f"{DB}.ec2_instance_id", "web-1"),),
        f"{DB}.ec2_instance_id: expected an EC2 instance id",
    ),
    (
        "host-given-as-url",
        ((f"{DB}.host", "postgres://db.invalid/ragdb"),),
        f"{DB}.host: expected a host name, not a URL or DSN (got 'postgres://db.invalid/ragdb')",
    ),
    (
        "route53-mode-not-allowed",
        (("route53.mode", "weighted"),),
        "route53.mode: not an allowed value (got 'weighted'); use one of 'upsert', "
        "'failover-routing'",
    ),
    (
        "failover-routing-without-health-checks",
        (("route53.mode", "failover-routing"),),
        'route53.health_check_ids: missing: mode = "failover-routing" needs the health checks',
    ),
    (
        "route53-ttl-zero",
        (("route53.ttl", 0),),
        "route53.ttl: must be a positive number of seconds (got 0)",
    ),
    (
        "resolver-with-a-scheme",
        (("route53.resolvers", ["udp://10.0.0.2"]),),
        "route53.resolvers[0]: expected a nameserver as host[:port] (got 'udp://10.0.0.2')",
    ),
    (
        "resolvers-not-an-array",
        (("route53.resolvers", "10.0.0.2"),),
        "route53.resolvers: expected an array of strings",
    ),
    (
        "zone-id-with-prefix",
        (("route53.zone_id", "/hostedzone/Z0123"),),
        "route53.zone_id: expected a hosted zone id (capital letters and digits, "
        "no /hostedzone/) (got '/hostedzone/Z0123')",
    ),
    (
        "objective-negative",
        (("objectives.rto_minutes", -5),),
        "objectives.rto_minutes: must be a positive number (got -5); give a value above 0",
    ),
    (
        "objective-as-string",
        (("objectives.rpo_minutes", "60"),),
        "objectives.rpo_minutes: expected a number (got '60'); "
        "write it as a number, e.g. rpo_minutes = 60",
    ),
    (
        "objective-looser-than-regulation",
        (("objectives.rto_minutes", 30),),
        "objectives.rto_minutes: looser than the regulatory objective of 15 minutes (got 30)",
    ),
    (
        "stop-condition-with-both",
        (("stop_conditions.0.probe_url", "https://orders.example.com/health"),),
        "stop_conditions[0]: needs exactly one of alarm or probe_url (both given)",
    ),
    (
        "stop-condition-with-neither",
        (("stop_conditions", [{"name": "x"}]),),
        "stop_conditions[0]: needs exactly one of alarm or probe_url (neither given)",
    ),
    (
        "stop-condition-in-other-region",
        (("stop_conditions.0.region", "eu-west-1"),),
        "stop_conditions[0].region: not one of the drill's regions (got 'eu-west-1'); "
        "use one of 'us-east-1', 'us-west-2'",
    ),
    (
        "stop-conditions-not-tables",
        (("stop_conditions", ["orders-5xx"]),),
        "stop_conditions[0]: expected an array of tables ([[stop_conditions]]) (got 'orders-5xx')",
    ),
    (
        "window-time-not-hh-mm",
        (("blackout_windows", [{**WINDOW, "start": "9:30"}]),),
        "blackout_windows[0].start: expected a 24-hour \"HH:MM\" time (got '9:30')",
    ),
    (
        "window-end-before-start",
        (("blackout_windows", [{"start": "16:00", "end": "09:30"}]),),
        "blackout_windows[0].end: not after start (16:00) (got '09:30'); a window runs "
        "within one day",
    ),
    (
        "window-time-zone-unknown",
        (("blackout_windows", [{**WINDOW, "timezone": "America/New_Yrok"}]),),
        "blackout_windows[0].timezone: not an IANA time zone (got 'America/New_Yrok'); "
        "did you mean 'America/New_York'?",
    ),
    (
        "window-weekday-unknown",
        (("blackout_windows", [{**WINDOW, "weekdays": ["mon", "Friday"]}]),),
        "blackout_windows[0].weekdays[1]: not a day name (got 'Friday')",
    ),
    (
        "window-missing-end",
        (("blackout_windows", [{"start": "09:30"}]),),
        'blackout_windows[0].end: missing required key; add end = "16:00"',
    ),
    (
        "evidence-bucket-as-uri",
        (("evidence_bucket", "s3://evidence"),),
        "evidence_bucket: expected an S3 bucket name (got 's3://evidence')",
    ),
    (
        "cloudwatch-namespace-reserved",
        (("cloudwatch_namespace", "AWS/RDS"),),
        "cloudwatch_namespace: the \"AWS/\" prefix is reserved for AWS services (got 'AWS/RDS')",
    ),
    (
        "secret-ref-with-both",
        ((f"{DB}.password", {"env": "A", "secrets_manager": "b"}),),
        f"{DB}.password: a secret reference needs exactly one of env or secrets_manager",
    ),
    (
        "secret-ref-with-unknown-key",
        ((f"{DB}.password", {"env": "A", "vault": "b"}),),
        f"{DB}.password.vault: unknown key; remove it (allowed here: env, secrets_manager)",
    ),
    (
        "index-missing-api-key",
        (("regions.us-west-2.index.api_key", DELETE),),
        "regions.us-west-2.index.api_key: missing required key; "
        'add api_key = { env = "PINECONE_API_KEY" }',
    ),
    (
        "fis-template-for-an-unknown-fault",
        (("fis_templates", {"primary-crash": "EXT0123456789abcd"}),),
        "fis_templates.primary-crash: not a fault the aws target can run through FIS; use one "
        "of primary_crash, replication_latency, replication_bandwidth",
    ),
    (
        "fis-template-id-malformed",
        (("fis_templates", {"primary_crash": "my-template"}),),
        "fis_templates.primary_crash: expected an FIS template id",
    ),
]


@pytest.mark.parametrize(
    ("edits", "expected"),
    [pytest.param(edits, expected, id=name) for name, edits, expected in BAD_CONFIGS],
)
def test_bad_config_is_refused_naming_key_value_and_fix(
    tmp_path: Path, edits: tuple[tuple[str, Any], ...], expected: str
) -> None:
    path = write(tmp_path, edited(*edits))
    message = refusal(path)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message
    assert "\n" not in message


def _huge(path: Path) -> None:
    path.write_text("# padding\n" * 110_000)


BAD_FILES: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "syntax-error",
        lambda p: p.write_text('environment = "staging"\n[route53\n'),
        "line 2, column 9: TOML syntax error: Expected ']' at the end of a table declaration",
    ),
    (
        "unterminated-string",
        lambda p: p.write_text('environment = "staging\n'),
        ": TOML syntax error: ",
    ),
    (
        "not-utf8",
        lambda p: p.write_bytes(b'environment = "staging"\napprover = "Ren\xe9"\n'),
        ": line 2: not UTF-8 text (byte 0xe9); save the file as UTF-8",
    ),
    (
        "binary",
        lambda p: p.write_bytes(b"\x7fELF\x02\x01\x00\x00"),
        ": a binary file (it contains NUL bytes), not TOML text",
    ),
    ("huge", _huge, ": larger than 1 MB, too big for a drkit config"),
    ("directory", lambda p: p.mkdir(), ": not a regular file (a directory?); pass --dr-config"),
    ("missing", lambda p: None, ": no such file; pass --dr-config PATH"),
]


@pytest.mark.parametrize(
    ("make", "expected"),
    [pytest.param(make, expected, id=name) for name, make, expected in BAD_FILES],
)
def test_unreadable_file_is_refused_naming_it(
    tmp_path: Path, make: Callable[[Path], None], expected: str
) -> None:
    path = tmp_path / "drkit-aws.toml"
    make(path)
    message = refusal(path)
    assert message.startswith(f"{path}: ") and expected in message, message


# --- secrets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        pytest.param(f"{DB}.password", SECRET, id="database-password"),
        pytest.param("regions.us-west-2.index.api_key", SECRET, id="index-api-key"),
        pytest.param(f"{DB}.password", {"value": SECRET}, id="password-as-other-table"),
        pytest.param(f"{DB}.password", [SECRET], id="password-in-array"),
        pytest.param("slack_token", SECRET, id="unknown-key-still-a-secret"),
        pytest.param("stop_conditions.0.client_secret", SECRET, id="in-array-of-tables"),
    ],
)
def test_literal_secret_is_refused_and_never_echoed(
    tmp_path: Path, dotted: str, value: Any
) -> None:
    message = refusal(write(tmp_path, edited((dotted, value))))
    key = dotted.replace("stop_conditions.0", "stop_conditions[0]")
    assert f"{key}: a literal secret in the config file" in message, message
    assert "secrets never go in the file" in message and '{ env = "VARIABLE_NAME" }' in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(
            ("regions.us-east-1.service_url", f"https://drkit:{SECRET}@rag.example.com"),
            "regions.us-east-1.service_url: credentials in a URL (it has an '@', value not shown)",
            id="url-userinfo",
        ),
        pytest.param(
            ("endpoint_urls.s3", f"http://drkit:{SECRET}@[::1"),
            "endpoint_urls.s3: credentials in a URL",
            id="malformed-url-with-userinfo",
        ),
        pytest.param(
            (f"{DB}.password", {"env": SECRET}),
            f"{DB}.password.env: not an environment variable name (not shown)",
            id="env-not-a-variable-name",
        ),
        pytest.param(
            (f"{DB}.host", f"drkit:{SECRET}@db.invalid"),
            f"{DB}.host: expected a host name, not a URL or DSN (it has an '@', value not shown)",
            id="dsn-in-host",
        ),
    ],
)
def test_secret_shaped_values_are_never_echoed(
    tmp_path: Path, edit: tuple[str, Any], expected: str
) -> None:
    message = refusal(write(tmp_path, edited(edit)))
    assert expected in message and SECRET not in message, message


def test_unquoted_secret_in_a_syntax_error_is_not_quoted_back(tmp_path: Path) -> None:
    path = tmp_path / "drkit-aws.toml"
    path.write_text(f'environment = "staging"\npassword = {SECRET}\n')
    message = refusal(path)
    assert "line 2, column 12: TOML syntax error: Invalid value" in message
    assert SECRET not in message


def test_resolve_secret_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRKIT_TEST_DB_PASSWORD", SECRET)
    assert resolve_secret(SecretRef(env="DRKIT_TEST_DB_PASSWORD")) == SECRET


@pytest.mark.parametrize(("value", "problem"), [(None, "is not set"), ("", "is set but empty")])
def test_resolve_secret_names_a_missing_variable(
    monkeypatch: pytest.MonkeyPatch, value: str | None, problem: str
) -> None:
    monkeypatch.delenv("DRKIT_TEST_DB_PASSWORD", raising=False)
    if value is not None:
        monkeypatch.setenv("DRKIT_TEST_DB_PASSWORD", value)
    with pytest.raises(ConfigError, match=f"environment variable DRKIT_TEST_DB_PASSWORD {problem}"):
        resolve_secret(SecretRef(env="DRKIT_TEST_DB_PASSWORD"))


class SecretsTwin:
    """Secrets Manager's get_secret_value, in memory."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets

    def get_secret_value(self, SecretId: str) -> dict[str, str]:  # boto3 spells it so
        if SecretId not in self.secrets:
            error = {"Error": {"Code": "ResourceNotFoundException", "Message": "not found"}}
            raise botocore.exceptions.ClientError(error, "GetSecretValue")  # type: ignore[arg-type]
        return {"SecretString": self.secrets[SecretId]}


def test_resolve_secret_reads_secrets_manager() -> None:
    twin = SecretsTwin({"staging/rag-db": SECRET})
    ref = SecretRef(secrets_manager="staging/rag-db")
    assert resolve_secret(ref, secrets_client=twin) == SECRET


def test_resolve_secret_names_an_unknown_secret() -> None:
    with pytest.raises(ConfigError, match=r"refused secret 'nope' \(ResourceNotFoundException\)"):
        resolve_secret(SecretRef(secrets_manager="nope"), secrets_client=SecretsTwin({}))


def test_resolve_secret_refuses_a_json_secret_without_echoing_it() -> None:
    twin = SecretsTwin({"rds!db": json.dumps({"username": "drkit", "password": SECRET})})
    with pytest.raises(ConfigError) as caught:
        resolve_secret(SecretRef(secrets_manager="rds!db"), secrets_client=twin)
    assert "holds a JSON object (keys: password, username)" in str(caught.value)
    assert SECRET not in str(caught.value)
