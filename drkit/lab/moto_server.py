"""The lab's AWS: one moto server (Route 53, EC2, CloudWatch, S3, RDS) on loopback.

`python -m drkit.lab.moto_server --host H --port P` loads the backends the lab seeds before it
listens, so "healthy" means "answers at once" (moto otherwise loads EC2 on the first call,
about a second). moto keeps everything in memory: a restarted server is empty until the lab
seeds it again (`drkit lab up` and `drkit lab reset` do).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from drkit.lab.component import PythonService

MODULE = "drkit.lab.moto_server"
HOST = "127.0.0.1"
WARM_SERVICES = ("ec2", "route53", "cloudwatch", "s3")
LAB_ACCOUNT = "123456789012"  # moto's default account


def moto_url(port: int) -> str:
    return f"http://{HOST}:{port}"


def moto_answers(port: int, timeout_s: float = 0.5) -> bool:
    """moto's own config endpoint answers (cheap: it dumps no state)."""
    try:
        response = httpx.get(f"{moto_url(port)}/moto-api/config", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return response.is_success  # moto answers this GET with 201


def moto_service(state: Path, port: int) -> PythonService:
    return PythonService(
        name="moto",
        state=state,
        module=MODULE,
        args=["--host", HOST, "--port", str(port)],
        healthy=lambda: moto_answers(port),
        binds=[(HOST, port)],
        start_budget_s=20.0,
    )


def _share_region_lists() -> None:
    """moto builds a fresh boto3 Session about twenty times while it imports, each re-parsing
    botocore's endpoint data to list regions (about 0.5 s in all); the answer is the same
    every time, so compute it once per argument list."""
    import boto3.session

    shared = boto3.session.Session()
    original = boto3.session.Session.get_available_regions

    @functools.cache
    def regions(service: str, partition: str, non_regional: bool) -> tuple[str, ...]:
        return tuple(original(shared, service, partition, non_regional))

    def get_available_regions(
        self: object,
        service_name: str,
        partition_name: str = "aws",
        allow_non_regional: bool = False,
    ) -> list[str]:
        return list(regions(service_name, partition_name, allow_non_regional))

    boto3.session.Session.get_available_regions = get_available_regions  # type: ignore[method-assign]


def _warm(regions: Sequence[str]) -> None:
    _share_region_lists()
    from moto.backends import get_backend

    for service in WARM_SERVICES:
        backend = get_backend(service)  # type: ignore[call-overload]
        for region in (*regions, "aws"):  # "aws": the partition key of global services
            with contextlib.suppress(KeyError):
                backend[LAB_ACCOUNT][region]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="moto server for the drkit lab")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    from drkit.lab.topology import REGIONS

    _warm(REGIONS)
    # werkzeug logs every request at INFO: thousands of lines a minute from the reconciler
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.server import main as moto_main

    print(f"moto: serving on {moto_url(args.port)}", flush=True)
    moto_main(["-H", args.host, "-p", str(args.port)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
