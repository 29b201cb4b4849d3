"""An aws-target configuration for the running lab: the hybrid set-up.

Its control plane (Route 53, EC2 security groups, RDS, CloudWatch, S3) is the lab's moto
server, reached through `endpoint_urls` exactly as a user reaches AWS; its data plane is the
lab (PostgreSQL, the services, the Toxiproxy links that enforce the security groups). Drills
run with `--dr-target aws --dr-config` on it go through the aws target's code: boto3 calls,
interlocks, snapshots restored by difference.

The database password and the index key are references (`DRKIT_LAB_DB_PASSWORD`,
`PINECONE_API_KEY`), never in the file.
"""

from __future__ import annotations

from drkit.aws.config import SERVICES
from drkit.lab.control_plane import (
    EVIDENCE_BUCKET,
    PUBLIC_NAME,
    LabControlPlane,
    db_instance_id,
    group_id_of,
    quarantine_group_id,
)
from drkit.lab.lab import Lab
from drkit.lab.moto_server import moto_url
from drkit.lab.sut import api_url, index_url
from drkit.lab.topology import PUBLIC, REGIONS, ingress_address
from drkit.targets.lab import METRIC_NAMESPACE

PASSWORD_ENV = "DRKIT_LAB_DB_PASSWORD"
INDEX_KEY_ENV = "PINECONE_API_KEY"


def _list(values: list[str] | list[int]) -> str:
    return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in values) + "]"


def lab_aws_config(lab: Lab) -> str:
    """The TOML text of an aws-target config for `lab` (which must be running)."""
    control = LabControlPlane.of(lab)
    settings = lab.settings
    ports = control.service_ports()
    moto = moto_url(settings.ports.moto)
    primary, dr = REGIONS
    host, port = control.dns_server()
    lines = [
        "# The aws target against the running lab (`drkit lab aws-config`): control plane =",
        "# the lab's moto server (via endpoint_urls), data plane = the lab. Before a drill:",
        f"#   export {PASSWORD_ENV}=\"$(python3 -c 'import json; print(json.load(open(",
        f'#     "{lab.state / "secrets.json"}"))["operator"])\')"',
        f"#   export {INDEX_KEY_ENV}=lab   # any value: the lab's index checks no key",
        'environment = "staging"',
        f'primary_region = "{primary}"',
        f'dr_region = "{dr}"',
        'promotion = "self-managed"',
        'automation = "drkit-watcher"',
        'timing_profile = "lab"',
        "# the data plane is this lab (its toxics, consistency reads, reset between drills);",
        "# delete this line and the drill reaches everything through this file alone",
        'data_plane = "lab"',
        f'cloudwatch_namespace = "{METRIC_NAMESPACE}"',
        f'evidence_bucket = "{EVIDENCE_BUCKET}"',
        "",
        "[route53]",
        f'zone_id = "{control.zone_id().split("/")[-1]}"',
        f'record = "{PUBLIC_NAME}."',
        'mode = "upsert"',
        f"ttl = {settings.profile.dns_ttl_s}",
        "# the lab's DNS server, which answers from moto's hosted zone (on AWS: the VPC's)",
        f'resolvers = ["{host}:{port}"]',
    ]
    for region in REGIONS:
        lines += [
            "",
            f"[regions.{region}]",
            f'service_url = "{api_url(settings, region)}"',
            "",
            f"[regions.{region}.database]",
            f'host = "{ingress_address(region, PUBLIC)}"',
            f"port = {settings.ports.postgres}",
            f'name = "{settings.database}"',
            f'user = "{lab.db_config(region)["user"]}"',
            f'password = {{ env = "{PASSWORD_ENV}" }}',
            "# the EC2 instance the lab's database runs on: stopped, the database answers nothing",
            f'ec2_instance_id = "{db_instance_id(control.clients, region)}"',
            "",
            f"[regions.{region}.index]",
            f'host = "{index_url(settings, region, PUBLIC)}"',
            f'api_key = {{ env = "{INDEX_KEY_ENV}" }}  # the lab\'s index takes any key',
            "",
            f"[regions.{region}.network]",
            f"security_groups = {_list([group_id_of(control.clients, region)])}",
            f"ports = {_list(sorted(set(ports.values())))}",
            "# fencing moves the old primary's instance into this group (no ingress rule)",
            f'quarantine_group = "{quarantine_group_id(control.clients, region)}"',
        ]
    lines += ["", "[endpoint_urls]"]
    lines += [f'{service} = "{moto}"' for service in SERVICES]
    return "\n".join(lines) + "\n"
