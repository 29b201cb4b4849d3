"""`drkit abort [--reason TEXT] [--json]` and `drkit abort --clear`: the kill switch's command.

It writes (or removes) the STOP file in the state folder; a running drill's `KillSwitch`
sees it within its poll interval, heals its open faults and stops with the outcome `aborted`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from drkit import paths
from drkit.aws.interlocks import clear_abort, read_abort, request_abort, stop_file
from drkit.cli_help import examples, json_help
from drkit.faults.journal import read_pointer

SubParsers = argparse._SubParsersAction  # argparse's own type for `add_subparsers()`
DEFAULT_REASON = "requested with `drkit abort`"


def register_abort(sub: SubParsers[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `abort` to drkit's sub-commands."""
    abort = sub.add_parser(
        "abort",
        help="make the running drill heal its faults and stop (writes STOP in the state folder)",
        description="Write the STOP file in the state folder (DRKIT_HOME, default .drkit/). "
        "A running drill heals its open faults and stops within seconds, reported as aborted; "
        "while the file exists, a drill that starts is aborted at once. "
        "`drkit abort --clear` removes it.",
        epilog=examples(
            "drkit abort --reason 'trading desk asked to stop'",
            "drkit abort --clear",
            "drkit abort --json",
        ),
    )
    action = abort.add_mutually_exclusive_group()
    action.add_argument("--reason", default=DEFAULT_REASON, help="why (kept in the evidence)")
    action.add_argument("--clear", action="store_true", help="remove the STOP file")
    abort.add_argument("--json", action="store_true", help=json_help("what was written or removed"))
    abort.set_defaults(func=cmd_abort)
    return abort


def _open_faults_owner() -> dict[str, Any] | None:
    """The run whose faults are open now (the open-faults pointer), if there is one."""
    try:
        return read_pointer(paths.state_dir())
    except (OSError, ValueError):
        return None  # an unreadable pointer is rollback's business, not abort's


def cmd_abort(args: argparse.Namespace) -> int:
    state = paths.state_dir()
    if args.clear:
        return _clear(state, as_json=args.json)
    path = request_abort(state, args.reason.strip() or DEFAULT_REASON)
    report = {"action": "abort", "stop_file": str(path), **(read_abort(state) or {})}
    owner = _open_faults_owner()
    report["open_faults_run"] = owner.get("run_id") if owner else None
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"wrote {path}: {report['reason']}")
    print(
        "a running drill heals its open faults and stops within seconds (outcome: aborted); "
        "while this file exists, a drill that starts is aborted at once"
    )
    if owner:
        print(f"run {owner.get('run_id')} (pid {owner.get('pid')}) has faults open now")
    print("remove it with `drkit abort --clear` before the next drill")
    return 0


def _clear(state: Path, *, as_json: bool) -> int:
    path = stop_file(state)
    removed = clear_abort(state)
    if as_json:
        print(json.dumps({"action": "clear", "stop_file": str(path), "removed": removed}))
    elif removed:
        print(f"removed {path}: drills may run again")
    else:
        print(f"no STOP file in {state}: nothing to clear")
    return 0
