"""`python -m steps`: write docs/steps.md from the registered steps."""

from __future__ import annotations

import importlib
from pathlib import Path

from steps import STEP_MODULES
from steps.registry import render_markdown

DOC = Path(__file__).resolve().parent.parent / "docs" / "steps.md"


def load_all() -> None:
    """Import every step module, which registers its steps."""
    for module in STEP_MODULES:
        importlib.import_module(module)


if __name__ == "__main__":
    load_all()
    DOC.write_text(render_markdown())
    print(f"wrote {DOC}")
