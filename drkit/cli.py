"""The `drkit` command line: the lab, rollback, abort, plan, evidence, the control API, cost.

Every command prints a short human account on stdout, or with `--json` only JSON there;
progress and errors go to stderr. Exit status: 0 done, 1 failed (a check did not pass or the
work could not be finished), 2 usage error (a bad option, argument, input file or config),
130 interrupted. Errors are one line, `drkit: error: ...`, saying what to do next.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drkit.aws.abort_cli import register_abort
from drkit.cli_help import STATE_FOLDER, DrkitParser, examples, json_help
from drkit.errors import ConfigError, DrillError, LabError
from drkit.evidence.cli import evidence_subcommands
from drkit.evidence.cli import register as register_evidence
from drkit.lab.lab import Lab
from drkit.lab.lock import lab_lock
from drkit.paths import new_run_id
from drkit.progress import Progress, elapsed


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


# -- lab -------------------------------------------------------------------------------------


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


def _healthy(component: dict[str, Any]) -> bool:
    if "regions" in component:
        return all(n["health"] == "healthy" for n in component["regions"].values())
    return component.get("health") in ("healthy", "off")  # the watcher is off by default


def _unhealthy(status: dict[str, Any]) -> list[str]:
    return [c["component"] for c in status["components"] if not _healthy(c)]


def _addresses(status: dict[str, Any]) -> dict[str, str]:
    """Component (postgres per region) -> address, for the components that listen."""
    found: dict[str, str] = {}
    for component in status["components"]:
        for region, node in component.get("regions", {}).items():
            found[f"{component['component']} {region}"] = str(node.get("address"))
        if component.get("address"):
            found[component["component"]] = str(component["address"])
    return found


def _pids(lab: Lab) -> dict[str, int | None]:
    """Each lab process's pid from its pid file (cheap: no health checks)."""
    pids: dict[str, int | None] = {"toxiproxy": lab.toxiproxy.pid()}
    if not lab.meta():
        return pids
    pids |= {f"postgres {r}": c.pid() for r, c in lab.database.clusters.items()}
    for component in [*lab.services(), lab.watcher]:
        process = getattr(component, "service", component)  # the control plane wraps its own
        pid = getattr(process, "pid", None)  # the document store is no process
        if callable(pid):
            pids[component.name] = pid()
    return pids


def cmd_lab_up(args: argparse.Namespace) -> int:
    from drkit.lab.process import observing_waits

    lab = Lab()
    started = time.monotonic()
    with lab_lock(lab.state, f"cli-{new_run_id()}"):
        before = _pids(lab)
        with Progress("lab up") as progress, observing_waits(progress.waiting):
            status = lab.up(progress=progress)
        after = _pids(lab)
    new = [name for name, pid in after.items() if pid is not None and pid != before.get(name)]
    healthy = len(status["components"]) - len(_unhealthy(status))
    if args.json:
        _print_json(
            {
                "command": "lab up",
                "elapsed_s": round(time.monotonic() - started, 3),
                "state": str(lab.state),
                "healthy": healthy == len(status["components"]),
                "started": new,
                "already_running": [n for n, p in after.items() if p is not None and n not in new],
                "addresses": _addresses(status),
                "status": status,
            }
        )
        return 0
    what = f"started {len(new)} processes" if new else "already running"
    print(
        f"lab up in {elapsed(started)}: {what}, {healthy} components healthy "
        f"(state {lab.state}); addresses: `drkit lab status`"
    )
    if status.get("data_root_outside_state"):
        print(f"database files: {status['data_root']} (the state folder is closed to postgres)")
    return 0


def cmd_lab_status(args: argparse.Namespace) -> int:
    status = Lab().status()
    unhealthy = _unhealthy(status)
    if args.json:
        _print_json({**status, "healthy": not unhealthy})
    else:
        print("\n".join(_endpoints(status)))
        if unhealthy:
            print(
                f"not healthy: {', '.join(unhealthy)}; start what is missing with `drkit lab up`"
                ", or see its log in the state folder's logs/",
                file=sys.stderr,
            )
    return 1 if unhealthy else 0


def cmd_lab_reset(args: argparse.Namespace) -> int:
    from drkit.lab.process import observing_waits

    lab = Lab()
    started = time.monotonic()
    with (
        lab_lock(lab.state, f"cli-{new_run_id()}"),
        Progress("lab reset") as progress,
        observing_waits(progress.waiting),
    ):
        status = lab.reset(progress=progress)
    unhealthy = _unhealthy(status)
    if args.json:
        _print_json(
            {
                "command": "lab reset",
                "elapsed_s": round(time.monotonic() - started, 3),
                "state": str(lab.state),
                "healthy": not unhealthy,
                "status": status,
            }
        )
    elif unhealthy:
        print(f"lab reset in {elapsed(started)}, but not healthy: {', '.join(unhealthy)}")
    else:
        print(
            f"lab reset in {elapsed(started)}: us-east-1 primary streaming to us-west-2, "
            "no toxics, seeded security groups, watcher off"
        )
    return 1 if unhealthy else 0


def cmd_lab_down(args: argparse.Namespace) -> int:
    lab = Lab()
    started = time.monotonic()
    with lab_lock(lab.state, f"cli-{new_run_id()}"):
        lab.down(purge=args.purge)
    if args.json:
        _print_json({"command": "lab down", "state": str(lab.state), "purged": args.purge})
    else:
        purged = ", data purged" if args.purge else ""
        print(f"lab down in {elapsed(started)} (state {lab.state}{purged})")
    return 0


def _running_lab() -> Lab:
    lab = Lab()
    if lab.toxiproxy.pid() is None:
        raise LabError(f"the lab in {lab.state} is not running; start it with `drkit lab up`")
    return lab


def cmd_lab_watcher(args: argparse.Namespace) -> int:
    lab = _running_lab() if args.switch == "on" else Lab()
    with lab_lock(lab.state, f"cli-{new_run_id()}"):
        if args.switch == "on":
            lab.watcher.start()
        else:
            lab.watcher.stop()
    status = lab.watcher.status()
    if args.json:
        _print_json({"command": f"lab watcher {args.switch}", "watcher": status})
    else:
        print(f"watcher {args.switch}: {status['health']}")
    return 0


def cmd_lab_aws_config(args: argparse.Namespace) -> int:
    from drkit.aws.hybrid import lab_aws_config

    out: Path | None = args.out
    if out is not None and not out.parent.is_dir():
        raise ConfigError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    text = lab_aws_config(_running_lab())
    if out is not None:
        out.write_text(text)
    if args.json:
        _print_json({"path": str(out) if out else None, "config": None if out else text})
    elif out is None:
        print(text, end="")
    else:
        print(f"wrote {out}; run drills with --dr-target aws --dr-config {out}")
    return 0


# -- rollback, cost, plan, serve ---------------------------------------------------------------


def cmd_rollback(args: argparse.Namespace) -> int:
    from drkit.faults.rollback import rollback

    report = rollback(force=args.force)
    if args.json:
        _print_json(report.to_json())
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
        _print_json(result.to_dict())
    else:
        print(result.statement())
        print(f"break-even: {result.break_even_years:.1f} years")
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
    with Progress("plan") as progress:
        progress("collecting the drills (pytest --dr-plan; nothing runs)")
        done = subprocess.run(argv + selection, capture_output=True, text=True)
    plan_line = next((line for line in done.stdout.splitlines() if line.startswith("plan: ")), None)
    if "no drill selected: nothing to plan" in done.stdout:
        raise ConfigError(f"no drill matches {' '.join(selection)}; check the selection")
    if done.returncode != 0 or plan_line is None:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines() or ["no output"]
        error = ConfigError if done.returncode in (2, 4, 5) else DrillError  # pytest's codes
        raise error(f"the plan could not be made: {said[-1]}")
    path = Path(plan_line.split()[1])
    if args.json:
        print(path.read_text(), end="")
    else:
        from drkit.evidence.plan import render_text

        print(render_text(json.loads(path.read_text())))
        print(plan_line)
    return 0


def _check_port_free(host: str, port: int) -> None:
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"--host {host} --port {port}: cannot listen there ({exc.strerror}); "
                "choose another --port, or stop what holds it"
            ) from None


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from drkit.api import create_app

    _check_port_free(args.host, args.port)
    print(f"drkit control API on http://{args.host}:{args.port} (docs at /docs)", flush=True)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    return 0


# -- evidence build ----------------------------------------------------------------------------


def cmd_evidence_build(args: argparse.Namespace) -> int:
    from drkit.evidence.package import build_package
    from drkit.evidence.seal import load_signing_key

    with Progress("evidence build") as progress:
        package = build_package(
            args.results,
            quarter=args.quarter,
            out=args.out,
            key=load_signing_key(args.key),
            firm=args.firm,
            progress=progress,
        )
    if args.json:
        _print_json(package.to_json())
        return 0
    print(f"evidence package: {package.zip} ({package.status})")
    print(f"  folder:            {package.folder}")
    print(f"  HTML report:       {package.report}")
    print(f"  one-file report:   {package.single_file}")
    print(f"  compliance report: {package.compliance}")
    if package.key_kind == "lab":
        print("  signed with this machine's lab key: not fit for production evidence")
    return 0


def _add_evidence_build(evidence: argparse.ArgumentParser) -> None:
    build = evidence_subcommands(evidence).add_parser(
        "build",
        help="build the sealed evidence package of a drill run (Allure results, HTML report, "
        "compliance report, histories, ledger, signed manifest) as a folder and a zip",
        epilog=examples(
            "drkit evidence build --results reports/runs/<run-id> --quarter 2026-Q4 "
            "--out reports/evidence",
            "drkit evidence build --results reports/runs/<run-id> --quarter 2026-Q4 "
            "--out reports/evidence --key keys/evidence.pem --json",
        ),
    )
    build.add_argument(
        "--results",
        required=True,
        type=Path,
        metavar="RUN_FOLDER",
        help="the run folder (reports/runs/<run-id>)",
    )
    build.add_argument("--quarter", required=True, help="the quarter, YYYY-Qn (e.g. 2026-Q4)")
    build.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="FOLDER",
        help="the folder the package is written into (as drkit-evidence-<quarter>-<run-id>/ "
        "and .zip; never overwritten)",
    )
    build.add_argument(
        "--key",
        type=Path,
        default=None,
        metavar="PRIVATE_KEY",
        help="Ed25519 private key (PEM); default DRKIT_SIGNING_KEY or DRKIT_SIGNING_KEY_FILE, "
        "else this machine's lab key (marked unfit for production)",
    )
    build.add_argument("--firm", default="the firm", help="the firm named in the report")
    build.add_argument("--json", action="store_true", help=json_help("the package's paths"))
    build.set_defaults(func=cmd_evidence_build)


# -- the parser --------------------------------------------------------------------------------


def _add_lab(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = sub.add_parser(
        "lab",
        help="manage the embedded lab: two loopback regions with PostgreSQL, Toxiproxy, "
        "the RAG services and moto",
        epilog=examples("drkit lab up", "drkit lab status --json", "drkit lab down --purge")
        + f"\n\nthe lab lives in {STATE_FOLDER}; its ports start at DRKIT_LAB_PORT_BASE "
        "(default 25400)",
    )
    lab_sub = lab.add_subparsers(dest="lab_command", required=True, metavar="COMMAND")
    up = lab_sub.add_parser(
        "up",
        help="start every lab component that is not running; return when all are healthy",
        epilog=examples("drkit lab up", "drkit lab up --json | jq .addresses"),
    )
    up.add_argument(
        "--json", action="store_true", help=json_help("what started, the addresses and the status")
    )
    up.set_defaults(func=cmd_lab_up)
    status = lab_sub.add_parser(
        "status",
        help="show each lab component: pid, address, health, replication state and lag",
        epilog=examples(
            "drkit lab status",
            "drkit lab status --json | jq '.components[] | {component, health}'",
            exit_status="exit status: 0 every component healthy (the watcher may be off); "
            "1 a component is not; 2 usage error",
        ),
    )
    status.add_argument("--json", action="store_true", help=json_help("the full status"))
    status.set_defaults(func=cmd_lab_status)
    reset = lab_sub.add_parser(
        "reset",
        help="reset the running lab to its initial state: us-east-1 primary streaming to "
        "us-west-2, no toxics, seeded security groups, watcher off",
        epilog=examples("drkit lab reset", "drkit lab reset --json"),
    )
    reset.add_argument("--json", action="store_true", help=json_help("the status after reset"))
    reset.set_defaults(func=cmd_lab_reset)
    down = lab_sub.add_parser(
        "down",
        help="stop every lab process",
        epilog=examples("drkit lab down", "drkit lab down --purge"),
    )
    down.add_argument(
        "--purge", action="store_true", help="also delete the lab's data (databases, secrets)"
    )
    down.add_argument("--json", action="store_true", help=json_help("what was done"))
    down.set_defaults(func=cmd_lab_down)
    _add_lab_watcher(lab_sub)
    _add_lab_aws_config(lab_sub)


def _add_lab_watcher(lab_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    watcher = lab_sub.add_parser(
        "watcher",
        help="switch the failover watcher (the automation under test) on or off",
        epilog=examples("drkit lab watcher on", "drkit lab watcher off"),
    )
    watcher.add_argument(
        "switch", choices=["on", "off"], help="on: start it (the lab must run); off: stop it"
    )
    watcher.add_argument("--json", action="store_true", help=json_help("the watcher's status"))
    watcher.set_defaults(func=cmd_lab_watcher)


def _add_lab_aws_config(lab_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    aws_config = lab_sub.add_parser(
        "aws-config",
        help="write an aws-target config for the running lab (control plane: the lab's moto "
        "server; data plane: the lab), to run drills with --dr-target aws without AWS",
        epilog=examples(
            "drkit lab aws-config --out lab-aws.toml",
            "pytest drills --dr-target aws --dr-config lab-aws.toml",
        ),
    )
    aws_config.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="the file to write (default: print it on stdout)",
    )
    aws_config.add_argument(
        "--json",
        action="store_true",
        help=json_help("the path written (without --out: the config itself)"),
    )
    aws_config.set_defaults(func=cmd_lab_aws_config)


def _add_rollback(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rollback = sub.add_parser(
        "rollback",
        help="heal every fault a killed run left open (never undoes recovery actions)",
        description="Heal every fault the open-faults pointer in the state folder lists "
        "(a run killed before its teardown leaves it); recovery actions (a promotion, a "
        "fence) are left in place, as the ledgers list them: `drkit lab reset` clears them.",
        epilog=examples(
            "drkit rollback",
            "drkit rollback --json",
            exit_status="exit status: 0 nothing left applied; 1 a fault is still applied (the "
            "report says which and why) or its run still runs (see --force); 2 usage error",
        ),
    )
    rollback.add_argument(
        "--force",
        action="store_true",
        help="heal even though the run that owns the faults still runs",
    )
    rollback.add_argument(
        "--json", action="store_true", help=json_help("the report (healed, still open)")
    )
    rollback.set_defaults(func=cmd_rollback)


def _add_plan(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plan = sub.add_parser(
        "plan",
        help="print the registered plan of the selected drills (faults, resources, objectives, "
        "expected duration); changes nothing",
        description="Print the registered plan of the selected drills: faults, resources, "
        "objectives, expected duration. Only collects (pytest --dr-plan); changes nothing. "
        "Arguments after `--` go to pytest.",
        epilog=examples(
            "drkit plan",
            "drkit plan -- -k outage",
            "drkit plan --approver 'J. Doe' --change-ticket CHG-42 --quarter 2026-Q4 --json",
        ),
    )
    plan.add_argument("--approver", default=None, help="who approves the run")
    plan.add_argument("--change-ticket", default=None, help="the change ticket, e.g. CHG-42")
    plan.add_argument("--quarter", default=None, help="the quarter, YYYY-Qn (e.g. 2026-Q4)")
    plan.add_argument("--json", action="store_true", help=json_help("the plan (plan.json)"))
    plan.add_argument(
        "pytest_args",
        nargs="*",
        metavar="PYTEST_ARG",
        help="pytest selection after `--`: paths, -k, -m (default: every drill in drills/)",
    )
    plan.set_defaults(func=cmd_plan)


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the DR control API (FastAPI; interactive docs at /docs) until Ctrl-C",
        epilog=examples("drkit serve", "drkit serve --port 8100"),
    )
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="the port to listen on")
    serve.set_defaults(func=cmd_serve)


def _add_cost(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cost = sub.add_parser(
        "cost",
        help="compute the break-even of a hot DR region against outage costs",
        epilog=examples("drkit cost", "drkit cost --outage-hours 8 --currency USD --json"),
    )
    cost.add_argument(
        "--monthly-dr-cost", type=float, default=250_000.0, help="what hot DR costs a month"
    )
    cost.add_argument(
        "--outage-cost-per-hour", type=float, default=30_000.0, help="direct cost of an outage hour"
    )
    cost.add_argument(
        "--outage-hours", type=float, default=4.0, help="how long the avoided outage lasts"
    )
    cost.add_argument(
        "--indirect-multiplier",
        type=float,
        default=100.0,
        help="indirect costs (fines, clients, reputation) as a multiple of the direct cost",
    )
    cost.add_argument("--currency", default="INR", help="the currency the amounts are in")
    cost.add_argument("--json", action="store_true", help=json_help("inputs and break-even"))
    cost.set_defaults(func=cmd_cost)


def _describe(parser: argparse.ArgumentParser) -> None:
    """Give each sub-command without a description its one-line help as one."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for choice in action._choices_actions:
            child = action.choices[choice.dest]
            if child.description is None and choice.help:
                child.description = choice.help[0].upper() + choice.help[1:] + "."
            _describe(child)


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = DrkitParser(
        prog="drkit",
        description="Disaster-recovery drills with measured RTO and RPO: the embedded lab, "
        "plans, evidence packages, and the safety switches of a running drill. Drills "
        "themselves run with pytest (`pytest drills`).",
        epilog=examples(
            "drkit lab up",
            "pytest drills --dr-approver 'J. Doe' --dr-change-ticket CHG-42 --dr-quarter 2026-Q4",
            "drkit evidence build --results reports/runs/<run-id> --quarter 2026-Q4 "
            "--out reports/evidence",
        )
        + "\n\n`drkit COMMAND --help` tells more; --json prints JSON alone on stdout "
        "(progress and errors go to stderr).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_lab(sub)
    _add_rollback(sub)
    _add_evidence_build(register_evidence(sub))
    register_abort(sub)
    _add_plan(sub)
    _add_serve(sub)
    _add_cost(sub)
    _describe(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"drkit: error: {exc}", file=sys.stderr)
        return 2
    except DrillError as exc:
        print(f"drkit: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `drkit ... --json | head`: the reader left; say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as the shell reports a SIGPIPE
    except OSError as exc:  # a path the user gave that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"drkit: error: {where}{exc.strerror or exc}; check the path", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("drkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
