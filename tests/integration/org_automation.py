"""A stand-in for an organisation's own failover automation (a Lambda behind a health alarm).

It shares no code with drkit's watcher: it reads the aws-target config as plain TOML, watches
the primary region's service URL, and after three failed health checks in a row promotes the
DR database with `pg_promote()` and UPSERTs the public record to the DR service through
boto3, as such a Lambda would. It writes what it did, with times, to the file given, and
exits. Run: `python org_automation.py CONFIG OUT` (the database password from the environment
variable the config names).
"""

from __future__ import annotations

import json
import os
import sys
import time
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import boto3
import httpx
import psycopg


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=0.5).is_success
    except httpx.HTTPError:
        return False


def main(config_path: str, out: str) -> int:
    config = tomllib.loads(Path(config_path).read_text())
    primary, dr = config["primary_region"], config["dr_region"]
    primary_url = config["regions"][primary]["service_url"]
    db = config["regions"][dr]["database"]
    actions: dict[str, float] = {"started_at": time.time()}
    failures = 0
    while failures < 3:
        failures = 0 if healthy(primary_url) else failures + 1
        time.sleep(0.25)
    actions["detected_at"] = time.time()
    with psycopg.connect(
        host=db["host"],
        port=db["port"],
        dbname=db["name"],
        user=db["user"],
        password=os.environ[db["password"]["env"]],
        autocommit=True,
    ) as conn:
        conn.execute("SELECT pg_promote(true, 30)")
    actions["promoted_at"] = time.time()
    route53 = boto3.client(
        "route53", endpoint_url=config["endpoint_urls"]["route53"], region_name="us-east-1"
    )
    record = config["route53"]
    route53.change_resource_record_sets(
        HostedZoneId=record["zone_id"],
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": record["record"],
                        "Type": "A",
                        "TTL": record["ttl"],
                        "ResourceRecords": [
                            {"Value": urlparse(config["regions"][dr]["service_url"]).hostname}
                        ],
                    },
                }
            ]
        },
    )
    actions["switched_at"] = time.time()
    Path(out).write_text(json.dumps(actions))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
