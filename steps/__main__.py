"""`python -m steps`: write docs/steps.md from the registered steps."""

from __future__ import annotations

from pathlib import Path

import steps.lab
import steps.measure  # noqa: F401 - registers its steps
from steps.registry import render_markdown

DOC = Path(__file__).resolve().parent.parent / "docs" / "steps.md"

if __name__ == "__main__":
    DOC.write_text(render_markdown())
    print(f"wrote {DOC}")
