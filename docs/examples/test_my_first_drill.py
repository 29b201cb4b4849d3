"""Binds the worked example of docs/writing-a-drill.md to pytest."""

from pathlib import Path

from pytest_bdd import scenarios

scenarios(str(Path(__file__).parent / "my_first_drill.feature"))
