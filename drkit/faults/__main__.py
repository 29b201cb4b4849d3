"""``python -m drkit.faults rollback [--force] [--state-dir DIR]``: heal what a killed run left.

The ``drkit rollback`` command does the same, with the same exit statuses (0 healed or nothing
to heal, 1 not finished, 2 the user's input to fix, 130 interrupted); this entry point works
without the CLI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drkit.errors import ConfigError, DrillError
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
    except ConfigError as exc:  # the user's to fix (a damaged pointer, a bad folder): usage
        print(f"rollback: {exc}", file=sys.stderr)
        return 2
    except DrillError as exc:  # could not finish (the run still alive, a target unreachable)
        print(f"rollback: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rollback: interrupted; run it again to finish", file=sys.stderr)
        return 130
    print(report.summary())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
