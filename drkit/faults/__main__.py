"""``python -m drkit.faults rollback [--force] [--state-dir DIR]``: heal what a killed run left.

The ``drkit rollback`` command does the same; this entry point works without the CLI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drkit.errors import DrillError
from drkit.faults.rollback import rollback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drkit.faults")
    parser.add_argument("command", choices=["rollback"])
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="default: DRKIT_HOME or .drkit/"
    )
    parser.add_argument("--force", action="store_true", help="heal even if the owning pid is alive")
    args = parser.parse_args(argv)
    try:
        report = rollback(args.state_dir, force=args.force)
    except DrillError as exc:
        print(f"rollback: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
