"""Record which AWS API operations drkit calls, as IAM action names.

`record_operations(...)` hooks botocore's `before-call` event on a session and on clients,
so every call made inside the block (refused ones too: they still need the permission) is
logged as `service:OperationName`; `actions()` turns that into IAM actions such as
`ec2:RevokeSecurityGroupIngress`, to check the least-privilege policy against what runs.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3

from drkit.aws.clients import AwsClients

# botocore's service name -> the IAM prefix of its actions (they differ for some services,
# e.g. "monitoring" is CloudWatch's endpoint prefix, not its IAM prefix)
IAM_PREFIXES = {
    "route53": "route53",
    "ec2": "ec2",
    "rds": "rds",
    "cloudwatch": "cloudwatch",
    "s3": "s3",
    "fis": "fis",
    "secretsmanager": "secretsmanager",
    "sts": "sts",
}

# API operations authorised by an IAM action of another name
IAM_ACTION_OF_OPERATION = {
    ("s3", "HeadObject"): "GetObject",
    ("s3", "HeadBucket"): "ListBucket",
    ("s3", "ListObjectsV2"): "ListBucket",
    ("s3", "ListObjectVersions"): "ListBucketVersions",
    ("s3", "GetObjectLockConfiguration"): "GetBucketObjectLockConfiguration",
    ("s3", "PutObjectLockConfiguration"): "PutBucketObjectLockConfiguration",
}

VERSIONED_READS = {("s3", "GetObject"), ("s3", "HeadObject")}

EVENT = "before-call"  # botocore's emitter is hierarchical: this covers before-call.*.*

_ids = itertools.count()


@dataclass
class OperationLog:
    """The calls seen, in call order, and the IAM actions they need."""

    calls: list[str] = field(default_factory=list)  # service:Operation, repeats included
    needed: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, service: str, operation: str, versioned: bool = False) -> None:
        with self._lock:
            self.calls.append(f"{service}:{operation}")
            self.needed.add(iam_action(service, operation, versioned))

    def operations(self) -> list[str]:
        """`service:Operation`, in call order, repeats included."""
        return list(self.calls)

    def actions(self) -> set[str]:
        """The IAM actions these calls need."""
        return set(self.needed)


def iam_action(service: str, operation: str, versioned: bool = False) -> str:
    """The IAM action of one call; ``versioned``: an S3 read of one object version."""
    prefix = IAM_PREFIXES.get(service, service)
    if versioned and (service, operation) in VERSIONED_READS:
        return f"{prefix}:GetObjectVersion"
    return f"{prefix}:{IAM_ACTION_OF_OPERATION.get((service, operation), operation)}"


Source = AwsClients | boto3.session.Session | Any  # Any: a single botocore client


@contextlib.contextmanager
def record_operations(*sources: Source, into: OperationLog | None = None) -> Iterator[OperationLog]:
    """Log every AWS call made through ``sources`` (AwsClients, boto3 sessions, clients)
    inside the block, in a new log or ``into`` an existing one. Clients a session creates
    inside the block are covered too."""
    log = OperationLog() if into is None else into
    unique_id = f"drkit-recorder-{next(_ids)}"
    recording = [True]

    def handler(model: Any, params: Any = None, **_kwargs: Any) -> None:
        if not recording[0]:
            return
        query = params.get("query_string") if isinstance(params, dict) else None
        versioned = isinstance(query, dict) and "versionId" in query
        log.add(model.service_model.service_name, model.name, versioned)

    for emitter in _emitters(sources):
        emitter.register(EVENT, handler, unique_id=unique_id)
    try:
        yield log
    finally:
        recording[0] = False  # clients copied from a session keep the handler: make it inert
        for emitter in _emitters(sources):
            emitter.unregister(EVENT, handler, unique_id=unique_id)


def _emitters(sources: tuple[Source, ...]) -> list[Any]:
    emitters = []
    for source in sources:
        if isinstance(source, AwsClients):
            emitters += [source.session.events, *(c.meta.events for c in source.created())]
        elif isinstance(source, boto3.session.Session):
            emitters.append(source.events)
        else:
            emitters.append(source.meta.events)
    return emitters
