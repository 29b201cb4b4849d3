"""Archiving a sealed package to a real moto server (server mode, HTTP on loopback).

The moto server is this module's own, started the way the lab starts its moto on a free
port outside the lab's range, so these tests never touch the session lab or its ports.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from drkit.cli import main
from drkit.clients.aws import AwsClients, AwsEndpoint
from drkit.errors import ConfigError
from drkit.evidence.seal import ArchiveRefused, _years_after, archive, seal
from drkit.lab.control_plane import EVIDENCE_BUCKET
from drkit.lab.moto_server import moto_service, moto_url
from tests.unit.test_seal import RUN_ID, build_package, make_key, meta_for

pytestmark = pytest.mark.integration

LAB_PORTS = range(25400, 29701)  # other labs' port ranges: never use these


def free_port() -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in LAB_PORTS:
            return port


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    service = moto_service(tmp_path_factory.mktemp("moto-state"), port)
    service.start()
    try:
        yield port
    finally:
        service.stop()


@pytest.fixture
def s3(moto: int) -> Any:
    return AwsClients(AwsEndpoint.lab(moto)).s3("us-east-1")


@pytest.fixture
def package_zip(tmp_path: Path) -> Path:
    key, _ = make_key(tmp_path / "vault", "signer")
    folder = build_package(tmp_path / "out")
    return seal(folder, meta=meta_for(folder), key=key)


def new_bucket(s3: Any, *, locked: bool) -> str:
    name = f"evidence-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=locked)
    return name


def keys_in(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.mark.parametrize("years", [7, 10])
def test_archive_locks_the_zip_in_compliance_mode(
    moto: int, s3: Any, package_zip: Path, years: int
) -> None:
    bucket = new_bucket(s3, locked=True)
    floor = _years_after(datetime.now(UTC).replace(microsecond=0), years)
    receipt = archive(
        package_zip, bucket=bucket, endpoint_url=moto_url(moto), retention_years=years
    )
    assert receipt.mode == "COMPLIANCE" and receipt.retain_until >= floor
    assert receipt.key.endswith(package_zip.name) and receipt.version_id
    head = s3.head_object(Bucket=bucket, Key=receipt.key, VersionId=receipt.version_id)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"].astimezone(UTC) >= floor
    stored = s3.get_object(Bucket=bucket, Key=receipt.key, VersionId=receipt.version_id)
    assert stored["Body"].read() == package_zip.read_bytes()
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=bucket, Key=receipt.key, VersionId=receipt.version_id)


def test_retention_under_seven_years_is_refused(moto: int, s3: Any, package_zip: Path) -> None:
    bucket = new_bucket(s3, locked=True)
    with pytest.raises(ConfigError, match="retention of 6 years is too short"):
        archive(package_zip, bucket=bucket, endpoint_url=moto_url(moto), retention_years=6)
    assert keys_in(s3, bucket) == []


def test_a_bucket_without_object_lock_is_refused(moto: int, s3: Any, package_zip: Path) -> None:
    bucket = new_bucket(s3, locked=False)
    with pytest.raises(ArchiveRefused, match=f"bucket {bucket} .* has no Object Lock"):
        archive(package_zip, bucket=bucket, endpoint_url=moto_url(moto))
    assert keys_in(s3, bucket) == []


def test_a_missing_bucket_is_refused_not_created(moto: int, s3: Any, package_zip: Path) -> None:
    with pytest.raises(ArchiveRefused, match=r"does not exist .*object-lock-enabled-for-bucket"):
        archive(package_zip, bucket="no-such-evidence", endpoint_url=moto_url(moto))
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "no-such-evidence" not in names


def test_cli_archive_prints_what_it_read_back(
    moto: int, s3: Any, package_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = new_bucket(s3, locked=True)
    args = ["evidence", "archive", str(package_zip), "--bucket", bucket]
    code = main([*args, "--endpoint-url", moto_url(moto), "--retention-years", "8"])
    out, err = capsys.readouterr()
    assert code == 0, err
    for label in ("version id:", "mode:         COMPLIANCE", "retain until:", "read back by:"):
        assert label in out, out
    assert keys_in(s3, bucket) == [f"evidence/{RUN_ID}/{package_zip.name}"]


def test_cli_archive_defaults_to_the_labs_bucket_and_makes_it_locked(
    moto: int,
    s3: Any,
    package_zip: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DRKIT_LAB_PORT_BASE", str(moto - 50))  # the lab's moto is base + 50
    code = main(["evidence", "archive", str(package_zip.parent / package_zip.stem), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    receipt = json.loads(out)
    assert (receipt["bucket"], receipt["mode"]) == (EVIDENCE_BUCKET, "COMPLIANCE")
    assert receipt["endpoint"] == moto_url(moto) and receipt["retention_years"] == 7
    lock = s3.get_object_lock_configuration(Bucket=EVIDENCE_BUCKET)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
