"""docs/steps.md lists exactly the registered steps (regenerate with `python -m steps`)."""

from __future__ import annotations

import pytest

from steps.__main__ import DOC, load_all
from steps.registry import render_markdown

pytestmark = pytest.mark.unit


def test_the_step_vocabulary_document_is_in_sync() -> None:
    load_all()
    assert DOC.read_text() == render_markdown(), (
        "docs/steps.md is out of date; run `.venv/bin/python -m steps` and commit it"
    )
