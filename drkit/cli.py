"""The `drkit` command line: lab management now; rollback, plan, evidence, serve, cost later."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drkit.aws.abort_cli import register_abort
from drkit.errors import DrillError, LabError
from drkit.evidence.cli import evidence_subcommands
from drkit.evidence.cli import register as register_evidence
from drkit.lab.lab import Lab
from drkit.lab.lock import lab_lock
from drkit.paths import new_run_id


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _endpoints(status: dict[str, Any]) -> list[str]:
    lines = []
    for component in status["components"]:
        name = component["component"]
        if name == "postgres":
            for region, node in component["regions"].items():
                lines.append(
                    f"{'postgres ' + region:28} {node['address']:22} {node['role']:8} "
                    f"{node['health']}"
                )
            repl = component["replication"]
            if repl.get("primary"):
                lines.append(
                    f"{'replication':28} {repl['primary']} -> {repl['standby']} via "
                    f"{repl['link']}: {repl['state']}, byte lag {repl['byte_lag']}"
                )
        else:
            address = str(component.get("address") or "")
            lines.append(f"{name:28} {address:31} {component.get('health', '?')}")
    if status.get("data_root_outside_state"):
        lines.append(
            f"database files: {status['data_root']} "
            "(the state folder is closed to the postgres user)"
        )
    return lines


def cmd_lab_up(args: argparse.Namespace) -> int:
    lab = Lab()
    started = time.monotonic()
    with lab_lock(lab.state, f"cli-{new_run_id()}"):
        status = lab.up(progress=_progress)
    print(f"lab up in {time.monotonic() - started:.1f}s (state {lab.state})")
    print("\n".join(_endpoints(status)))
    return 0


def cmd_lab_status(args: argparse.Namespace) -> int:
    status = Lab().status()
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        print("\n".join(_endpoints(status)))
    healthy = all(_healthy(c) for c in status["components"])
    return 0 if healthy else 1


def _healthy(component: dict[str, Any]) -> bool:
    if "regions" in component:
        return all(n["health"] == "healthy" for n in component["regions"].values())
    return component.get("health") in ("healthy", "off")  # the watcher is off by default


def cmd_lab_reset(args: argparse.Namespace) -> int:
    lab = Lab()
    started = time.monotonic()
    with lab_lock(lab.state, f"cli-{new_run_id()}"):
        status = lab.reset(progress=_progress)
    print(f"lab reset in {time.monotonic() - started:.1f}s")
    print("\n".join(_endpoints(status)))
    return 0


def cmd_lab_down(args: argparse.Namespace) -> int:
    lab = Lab()
    with lab_lock(lab.state, f"cli-{new_run_id()}"):
        lab.down(purge=args.purge)
    print("lab down" + (" (data purged)" if args.purge else ""))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from drkit.faults.rollback import rollback

    report = rollback(force=args.force)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.summary())
    return report.exit_code


def cmd_cost(args: argparse.Namespace) -> int:
    from drkit.cost import CostInputs, break_even

    result = break_even(
        CostInputs(
            monthly_dr_cost=args.monthly_dr_cost,
            outage_cost_per_hour=args.outage_cost_per_hour,
            outage_hours=args.outage_hours,
            indirect_multiplier=args.indirect_multiplier,
            currency=args.currency,
        )
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.statement())
        print(f"break-even: {result.break_even_years:.1f} years")
    return 0


def cmd_lab_watcher(args: argparse.Namespace) -> int:
    lab = Lab()
    if args.switch == "on" and lab.toxiproxy.pid() is None:
        raise LabError(f"the lab in {lab.state} is not running; start it with `drkit lab up`")
    with lab_lock(lab.state, f"cli-{new_run_id()}"):
        if args.switch == "on":
            lab.watcher.start()
        else:
            lab.watcher.stop()
    status = lab.watcher.status()
    print(f"watcher {args.switch}: {status['health']}")
    return 0


def cmd_evidence_build(args: argparse.Namespace) -> int:
    from drkit.evidence.package import build_package
    from drkit.evidence.seal import load_signing_key

    package = build_package(
        args.results,
        quarter=args.quarter,
        out=args.out,
        key=load_signing_key(args.key),
        firm=args.firm,
    )
    if args.json:
        print(json.dumps(package.to_json(), indent=2))
        return 0
    print(f"evidence package: {package.zip} ({package.status})")
    print(f"  folder:            {package.folder}")
    print(f"  HTML report:       {package.report}")
    print(f"  one-file report:   {package.single_file}")
    print(f"  compliance report: {package.compliance}")
    if package.key_kind == "lab":
        print("  signed with this machine's lab key: not fit for production evidence")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """`pytest --dr-plan` in a child process: collection only, nothing runs."""
    import subprocess

    from drkit.paths import PROJECT_ROOT

    selection = list(args.pytest_args) or [str(PROJECT_ROOT / "drills")]
    argv = [sys.executable, "-m", "pytest", "--dr-plan", "-q", "-p", "no:cacheprovider"]
    for flag, value in (
        ("--dr-approver", args.approver),
        ("--dr-change-ticket", args.change_ticket),
        ("--dr-quarter", args.quarter),
    ):
        if value:
            argv += [flag, value]
    done = subprocess.run(argv + selection, capture_output=True, text=True)
    plan_line = next((line for line in done.stdout.splitlines() if line.startswith("plan: ")), None)
    if done.returncode != 0 or plan_line is None:
        raise DrillError(
            "the plan could not be made: "
            + (done.stderr.strip() or done.stdout.strip()).splitlines()[-1]
        )
    path = Path(plan_line.split()[1])
    if args.json:
        print(path.read_text(), end="")
    else:
        from drkit.evidence.plan import render_text

        print(render_text(json.loads(path.read_text())))
        print(plan_line)
    return 0


def cmd_lab_aws_config(args: argparse.Namespace) -> int:
    from drkit.aws.hybrid import lab_aws_config

    lab = Lab()
    if lab.toxiproxy.pid() is None:
        raise LabError(f"the lab in {lab.state} is not running; start it with `drkit lab up`")
    text = lab_aws_config(lab)
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text)
        print(f"wrote {args.out}; run drills with --dr-target aws --dr-config {args.out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from drkit.api import create_app

    print(f"drkit control API on http://{args.host}:{args.port} (docs at /docs)", flush=True)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drkit", description="Disaster-recovery drills with measured RTO and RPO."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    lab = sub.add_parser("lab", help="manage the embedded lab (two loopback regions)")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)
    up = lab_sub.add_parser("up", help="start every lab component; returns when all are healthy")
    up.set_defaults(func=cmd_lab_up)
    status = lab_sub.add_parser("status", help="show each component: pid, address, health, details")
    status.add_argument("--json", action="store_true", help="print machine-readable JSON")
    status.set_defaults(func=cmd_lab_status)
    reset = lab_sub.add_parser("reset", help="return to us-east-1 primary streaming to us-west-2")
    reset.set_defaults(func=cmd_lab_reset)
    down = lab_sub.add_parser("down", help="stop every lab process")
    down.add_argument("--purge", action="store_true", help="also delete the lab's data")
    down.set_defaults(func=cmd_lab_down)
    watcher = lab_sub.add_parser(
        "watcher", help="switch the failover watcher (the automation under test) on or off"
    )
    watcher.add_argument("switch", choices=["on", "off"])
    watcher.set_defaults(func=cmd_lab_watcher)
    aws_config = lab_sub.add_parser(
        "aws-config",
        help="print an aws-target config for the running lab (control plane: the lab's moto "
        "server; data plane: the lab), to run drills with --dr-target aws without AWS",
    )
    aws_config.add_argument("--out", type=Path, default=None, help="write it here instead")
    aws_config.set_defaults(func=cmd_lab_aws_config)

    rollback = sub.add_parser(
        "rollback", help="heal every fault a killed run left open (never undoes recovery actions)"
    )
    rollback.add_argument(
        "--force",
        action="store_true",
        help="heal even though the run that owns the faults still runs",
    )
    rollback.add_argument("--json", action="store_true", help="print machine-readable JSON")
    rollback.set_defaults(func=cmd_rollback)

    evidence = register_evidence(sub)
    build = evidence_subcommands(evidence).add_parser(
        "build",
        help="build the sealed evidence package of a drill run (Allure results, HTML report, "
        "compliance report, histories, ledger, signed manifest) as a folder and a zip",
    )
    build.add_argument(
        "--results", required=True, type=Path, help="the run folder (reports/runs/<run-id>)"
    )
    build.add_argument("--quarter", required=True, help="the quarter, e.g. 2026-Q4")
    build.add_argument("--out", required=True, type=Path, help="where the package is written")
    build.add_argument(
        "--key",
        type=Path,
        default=None,
        help="Ed25519 private key (PEM); default DRKIT_SIGNING_KEY or DRKIT_SIGNING_KEY_FILE, "
        "else this machine's lab key (marked unfit for production)",
    )
    build.add_argument("--firm", default="the firm", help="the firm named in the report")
    build.add_argument("--json", action="store_true", help="print machine-readable JSON")
    build.set_defaults(func=cmd_evidence_build)
    register_abort(sub)

    plan = sub.add_parser(
        "plan",
        help="print the registered plan of the selected drills (faults, resources, objectives, "
        "expected duration); changes nothing",
        description="Arguments after `--` go to pytest (e.g. `drkit plan -- -k outage`).",
    )
    plan.add_argument("--approver", default=None, help="who approves the run")
    plan.add_argument("--change-ticket", default=None, help="the change ticket")
    plan.add_argument("--quarter", default=None, help="the quarter, e.g. 2026-Q4")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument("pytest_args", nargs="*", help="pytest selection (paths, -k, -m)")
    plan.set_defaults(func=cmd_plan)

    serve = sub.add_parser("serve", help="run the DR control API (FastAPI, /docs)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    cost = sub.add_parser("cost", help="break-even of a hot DR region against outage costs")
    cost.add_argument("--monthly-dr-cost", type=float, default=250_000.0)
    cost.add_argument("--outage-cost-per-hour", type=float, default=30_000.0)
    cost.add_argument("--outage-hours", type=float, default=4.0)
    cost.add_argument("--indirect-multiplier", type=float, default=100.0)
    cost.add_argument("--currency", default="INR")
    cost.add_argument("--json", action="store_true", help="print machine-readable JSON")
    cost.set_defaults(func=cmd_cost)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except DrillError as exc:
        print(f"drkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("drkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
