"""boto3 clients for the lab's moto server or for real AWS, and the seam that maps their errors.

On the lab every client gets the moto `endpoint_url`, dummy credentials and no HTTP proxy, so
nothing in `~/.aws` or the environment can send a lab call to real AWS. On AWS the endpoint is
left to boto3 and credentials come from the usual chain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
from botocore.config import Config

from drkit.errors import ConfigError, DrillError, TargetUnreachable

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_s3 import S3Client

LAB_ACCESS_KEY = "drkit-lab"
LAB_SECRET_KEY = "drkit-lab-secret"
GLOBAL_REGION = "us-east-1"  # Route 53 is global; boto3 still wants a region to sign with


class AwsRequestError(DrillError):
    """AWS (or moto) answered, but refused the request; the message carries its error code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AwsEndpoint:
    """Where AWS calls go: `endpoint_url=None` is real AWS, anything else a local emulator."""

    endpoint_url: str | None = None
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 10.0
    max_attempts: int = 3

    @classmethod
    def lab(cls, moto_port: int, host: str = "127.0.0.1", max_attempts: int = 3) -> AwsEndpoint:
        """The lab's moto. Its own polling processes pass `max_attempts=1`: their loop is the
        retry, and botocore's backoff would hold a pass for seconds while moto starts."""
        return cls(
            f"http://{host}:{moto_port}",
            connect_timeout_s=1.0,
            read_timeout_s=5.0,
            max_attempts=max_attempts,
        )

    @property
    def is_lab(self) -> bool:
        return self.endpoint_url is not None


class AwsClients:
    """Typed boto3 clients for one endpoint; create once and share (boto3 clients are
    thread-safe, sessions are not, so each client is created under this object's session)."""

    def __init__(self, endpoint: AwsEndpoint) -> None:
        self.endpoint = endpoint
        self._config = Config(
            connect_timeout=endpoint.connect_timeout_s,
            read_timeout=endpoint.read_timeout_s,
            retries={"max_attempts": endpoint.max_attempts, "mode": "standard"},
            proxies={} if endpoint.is_lab else None,
        )
        self._session = (
            boto3.session.Session(
                aws_access_key_id=LAB_ACCESS_KEY, aws_secret_access_key=LAB_SECRET_KEY
            )
            if endpoint.is_lab
            else boto3.session.Session()
        )
        self._cache: dict[tuple[str, str], Any] = {}

    def _client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._cache:
            self._cache[key] = self._session.client(
                service,  # type: ignore[call-overload]
                region_name=region,
                endpoint_url=self.endpoint.endpoint_url,
                config=self._config,
            )
        return self._cache[key]

    def ec2(self, region: str) -> EC2Client:
        return self._client("ec2", region)

    def route53(self) -> Route53Client:
        return self._client("route53", GLOBAL_REGION)

    def cloudwatch(self, region: str) -> CloudWatchClient:
        return self._client("cloudwatch", region)

    def s3(self, region: str) -> S3Client:
        return self._client("s3", region)

    def rds(self, region: str) -> RDSClient:
        return self._client("rds", region)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError (`InvalidPermission.NotFound`), else ''."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


@contextlib.contextmanager
def aws_errors(what: str, where: str) -> Iterator[None]:
    """Map botocore's errors to drkit's: no answer is TargetUnreachable, a refusal is
    AwsRequestError (with its code), both naming the call and the endpoint."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        code = error_code(exc)
        raise AwsRequestError(f"{what} refused by {where}: {exc}", code) from exc
    except botocore.exceptions.NoCredentialsError as exc:
        raise ConfigError(
            f"{what}: no AWS credentials found for {where}; set AWS_PROFILE (or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run from a role); against the lab's "
            "moto any value works, e.g. AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing"
        ) from exc
    except (botocore.exceptions.BotoCoreError, OSError) as exc:
        raise TargetUnreachable(
            f"{what}: {where} did not answer ({exc}); on the lab check `drkit lab status` "
            "(the moto component) or start it with `drkit lab up`"
        ) from exc
