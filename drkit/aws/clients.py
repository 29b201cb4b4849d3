"""boto3 clients for the aws target: one per (service, region), at the configured endpoint.

Each client gets `endpoint_url` from the config (`[aws.endpoint_urls]`: a VPC endpoint, or a
moto server in tests), so tests reach moto exactly as a user reaches AWS. Credentials come
from boto3's usual chain (environment, profile, SSO, instance role); drkit never reads,
logs or stores them, and `repr` shows endpoints only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from drkit.aws.config import SERVICES, AwsConfig
from drkit.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_s3 import S3Client

GLOBAL_REGION = "us-east-1"  # Route 53 is global; boto3 still signs for a region
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 20.0
MAX_ATTEMPTS = 5  # botocore "standard" retries: throttling and 5xx, with jittered backoff


class AwsClients:
    """Shared boto3 clients (thread-safe once made) under one session (which is not)."""

    def __init__(
        self,
        config: AwsConfig | None = None,
        *,
        endpoint_urls: Mapping[str, str] | None = None,
        session: boto3.session.Session | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        """From the config, or from bare ``endpoint_urls`` (service -> URL) when a fault is
        rebuilt from its ledger params; with neither, every client goes to AWS itself."""
        urls = dict(config.endpoint_urls) if config is not None else {}
        urls.update(endpoint_urls or {})
        for service in urls:
            _check_service(service)
        self._endpoint_urls = urls
        self.session = session or boto3.session.Session()
        self._config = Config(
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            user_agent_extra="drkit",
        )
        self._cache: dict[tuple[str, str], Any] = {}

    def __repr__(self) -> str:
        return f"AwsClients(endpoints={self._endpoint_urls or 'AWS'})"

    def endpoint_url(self, service: str) -> str | None:
        return self._endpoint_urls.get(_check_service(service))

    def where(self, service: str, region: str) -> str:
        """The endpoint as messages name it."""
        return self.endpoint_url(service) or f"AWS {service} in {region}"

    def client(self, service: str, region: str) -> Any:
        key = (_check_service(service), region)
        if key not in self._cache:
            self._cache[key] = self.session.client(
                service,  # type: ignore[call-overload]
                region_name=region,
                endpoint_url=self._endpoint_urls.get(service),
                config=self._config,
            )
        return self._cache[key]

    def created(self) -> tuple[Any, ...]:
        """Every client made so far (the operation recorder hooks into each)."""
        return tuple(self._cache.values())

    def ec2(self, region: str) -> EC2Client:
        return self.client("ec2", region)

    def rds(self, region: str) -> RDSClient:
        return self.client("rds", region)

    def route53(self) -> Route53Client:
        return self.client("route53", GLOBAL_REGION)

    def cloudwatch(self, region: str) -> CloudWatchClient:
        return self.client("cloudwatch", region)

    def s3(self, region: str) -> S3Client:
        return self.client("s3", region)

    def fis(self, region: str) -> Any:
        return self.client("fis", region)

    def secretsmanager(self, region: str) -> Any:
        return self.client("secretsmanager", region)

    def sts(self, region: str) -> Any:
        return self.client("sts", region)


def _check_service(service: str) -> str:
    if service not in SERVICES:
        raise ConfigError(
            f"unknown AWS service {service!r} for the aws target; drkit uses {', '.join(SERVICES)}"
        )
    return service
