"""How every drkit command's help reads: one format, one exit-status line, one `--json` help.

The command modules (`drkit.cli`, `drkit.evidence.cli`, `drkit.aws.abort_cli`) share it, so
the wording stays the same across them; tests/unit/test_cli.py walks the tree to hold it.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

EXIT_STATUS = (
    "exit status: 0 done; 1 failed (a check did not pass, or the work could not be finished); "
    "2 usage error (a bad option, argument, input file or config); 130 interrupted"
)
STATE_FOLDER = "the state folder (DRKIT_HOME, default .drkit/)"


class HelpFormatter(argparse.HelpFormatter):
    """Paragraphs are wrapped, example lines (indented) kept as written; options with a real
    default say it."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            if line.startswith("  ") or not line.strip():
                lines.append(indent + line)
            else:
                lines.append(
                    textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
                )
        return "\n".join(lines)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


class DrkitParser(argparse.ArgumentParser):
    """drkit's parser (its sub-command parsers inherit the class): drkit's help format."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def examples(*lines: str, exit_status: str = EXIT_STATUS) -> str:
    """An epilog: example command lines, then the exit status."""
    shown = ["examples:", *(f"  {line}" for line in lines), ""] if lines else []
    return "\n".join([*shown, exit_status])


def json_help(what: str) -> str:
    """The `--json` option's help, the same on every command."""
    return f"print {what} as JSON, alone on stdout (progress and errors go to stderr)"
