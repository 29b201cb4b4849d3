"""`drkit evidence keygen | verify | archive`: the evidence package's keys and its checks.

`register` adds the `evidence` command to drkit's parser; `evidence_subcommands` hands back
its sub-commands so `build` can sit beside these three.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from drkit.cli_help import examples, json_help
from drkit.errors import ConfigError
from drkit.evidence import seal
from drkit.progress import Progress

SubParsers = argparse._SubParsersAction  # argparse's own type for `add_subparsers()`


def register(sub: SubParsers[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `evidence` with keygen, verify and archive to drkit's sub-commands."""
    evidence = sub.add_parser(
        "evidence",
        help="build, sign, verify and archive evidence packages",
        epilog=examples(
            "drkit evidence build --results reports/runs/<run-id> --quarter 2026-Q4 "
            "--out reports/evidence",
            "drkit evidence verify PACKAGE.zip --public-key keys/evidence.pub.pem",
            "drkit evidence archive PACKAGE.zip",
        )
        + "\n\nthe auditor's guide: docs/evidence.md",
    )
    commands = evidence.add_subparsers(dest="evidence_command", required=True, metavar="COMMAND")
    _add_keygen(commands)
    _add_verify(commands)
    _add_archive(commands)
    return evidence


def evidence_subcommands(
    evidence: argparse.ArgumentParser,
) -> SubParsers[argparse.ArgumentParser]:
    """The sub-command action of the parser `register` returned, to add more (`build`)."""
    for action in evidence._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise ValueError("not the parser drkit.evidence.cli.register returned")


def _add_keygen(commands: SubParsers[argparse.ArgumentParser]) -> None:
    keygen = commands.add_parser(
        "keygen",
        help="make an Ed25519 key pair for signing packages (private key mode 0600)",
        epilog=examples(
            "drkit evidence keygen keys/evidence.pem",
            "DRKIT_SIGNING_KEY_FILE=keys/evidence.pem pytest drills ...",
        ),
    )
    keygen.add_argument(
        "private_key",
        type=Path,
        metavar="PRIVATE_KEY",
        help="where to write the private key (PEM; never overwritten)",
    )
    keygen.add_argument(
        "--public-key",
        type=Path,
        metavar="PUBLIC_KEY",
        help="where to write the public key (default: beside it, NAME.pub.pem)",
    )
    keygen.add_argument("--json", action="store_true", help=json_help("the paths and fingerprint"))
    keygen.set_defaults(func=cmd_keygen)


def _add_verify(commands: SubParsers[argparse.ArgumentParser]) -> None:
    verify = commands.add_parser(
        "verify",
        help="check a package folder or zip against its signed manifest",
        epilog=examples(
            "drkit evidence verify PACKAGE.zip --public-key keys/evidence.pub.pem",
            "drkit evidence verify PACKAGE/ --public-key keys/evidence.pub.pem --json",
            exit_status="exit status: 0 intact; 1 NOT intact (the report lists what changed, "
            "is missing or was added); 2 usage error (no such package, not a public key)",
        ),
    )
    verify.add_argument("path", type=Path, metavar="PACKAGE", help="the package folder or its .zip")
    verify.add_argument(
        "--public-key",
        type=Path,
        required=True,
        metavar="PUBLIC_KEY",
        help="the signer's public key PEM, held outside the package",
    )
    verify.add_argument("--json", action="store_true", help=json_help("the verification report"))
    verify.set_defaults(func=cmd_verify)


def _add_archive(commands: SubParsers[argparse.ArgumentParser]) -> None:
    archive = commands.add_parser(
        "archive",
        help="upload a sealed zip to S3 under Object Lock (COMPLIANCE) and read the lock back",
        epilog=examples(
            "drkit evidence archive PACKAGE.zip                  # the lab's bucket (moto)",
            "drkit evidence archive PACKAGE.zip --dr-config staging.toml",
            "drkit evidence archive PACKAGE.zip --bucket my-evidence --region eu-west-1 --json",
        ),
    )
    archive.add_argument(
        "path", type=Path, metavar="PACKAGE", help="the package's .zip (or its folder)"
    )
    archive.add_argument(
        "--bucket", help="an existing bucket with Object Lock (default: the lab's bucket)"
    )
    archive.add_argument(
        "--endpoint-url", help="an S3 endpoint other than AWS (default with no --bucket: the lab)"
    )
    archive.add_argument(
        "--retention-years",
        type=int,
        default=seal.MIN_RETENTION_YEARS,
        help=f"years the object stays locked; at least {seal.MIN_RETENTION_YEARS}",
    )
    archive.add_argument("--region", default="us-east-1", help="the bucket's AWS region")
    archive.add_argument(
        "--dr-config",
        type=Path,
        default=None,
        metavar="CONFIG",
        help="the aws target's config: its evidence_bucket, its s3 endpoint_url, its primary "
        "region (instead of --bucket, --endpoint-url, --region)",
    )
    archive.add_argument("--json", action="store_true", help=json_help("the archive receipt"))
    archive.set_defaults(func=cmd_archive)


def cmd_keygen(args: argparse.Namespace) -> int:
    private: Path = args.private_key
    public: Path = args.public_key or private.with_name(
        private.name.removesuffix(".pem") + ".pub.pem"
    )
    fingerprint = seal.generate_keypair(private, public)
    if args.json:
        print(
            json.dumps(
                {
                    "private_key": str(private),
                    "public_key": str(public),
                    "public_key_sha256": fingerprint,
                },
                indent=2,
            )
        )
        return 0
    print(f"private key: {private} (mode 0600; keep it secret, never in a package)")
    print(f"public key:  {public} (give it to whoever verifies packages)")
    print(f"public key sha256: {fingerprint}")
    print(f"sign with it:   {seal.KEY_FILE_ENV}={private} (or the PEM in {seal.KEY_ENV})")
    print(f"verify with it: drkit evidence verify PACKAGE --public-key {public}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    report = seal.verify(args.path, args.public_key)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.summary())
    return report.exit_code


def cmd_archive(args: argparse.Namespace) -> int:
    seal.check_retention(args.retention_years)  # before anything touches the network
    zip_path = _zip_of(args.path)
    if args.dr_config is not None:
        if args.bucket is not None or args.endpoint_url is not None:
            raise ConfigError(
                "--dr-config names the bucket and endpoint: drop --bucket/--endpoint-url"
            )
        from drkit.aws.config import load_config

        aws = load_config(args.dr_config)
        args.bucket, args.endpoint_url = aws.evidence_bucket, aws.endpoint_url("s3")
        args.region = aws.primary_region
    lab = args.bucket is None and args.endpoint_url is None
    if lab:
        bucket, endpoint_url = seal.lab_archive_target()
    elif args.bucket is None:
        raise ConfigError("--endpoint-url needs --bucket: name a bucket with Object Lock there")
    else:
        bucket, endpoint_url = args.bucket, args.endpoint_url
    with Progress("evidence archive") as progress:
        size_mb = zip_path.stat().st_size / 1e6
        progress(
            f"uploading {zip_path.name} ({size_mb:.1f} MB) to s3://{bucket}, then reading "
            "the lock back"
        )
        receipt = seal.archive(
            zip_path,
            bucket=bucket,
            endpoint_url=endpoint_url,
            retention_years=args.retention_years,
            region=args.region,
            create_bucket=lab,
        )
    print(json.dumps(receipt.to_json(), indent=2) if args.json else receipt.summary())
    return 0


def _zip_of(path: Path) -> Path:
    """The zip itself, or the zip `seal` wrote beside a package folder."""
    if path.is_dir():
        path = path.with_name(path.name + ".zip")
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; seal the package first (it writes FOLDER.zip)")
    return path
