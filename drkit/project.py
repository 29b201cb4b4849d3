"""A drill project in a folder of its own: one feature file bound to drkit's steps and
fixtures, with the pytest configuration that finds them. Tests, benchmarks and the
worked example run nested drills this way."""

from __future__ import annotations

from pathlib import Path

from drkit.paths import PROJECT_ROOT

CONFTEST = (
    "from steps import STEP_MODULES\n\n"
    'pytest_plugins = ["fixtures.plugin", "fixtures.drill", *STEP_MODULES]\n'
)


def write_drill_project(folder: Path, feature: str, name: str = "drill") -> Path:
    """`<name>.feature` holding `feature`, its binding `test_<name>.py`, a conftest that
    loads drkit's plugin, fixtures and steps, and a pytest.ini (Allure's plain pytest plugin
    off, no cache, drkit on the path). Returns the feature file."""
    path = folder / f"{name}.feature"
    path.write_text(feature)
    (folder / f"test_{name}.py").write_text(
        f'from pytest_bdd import scenarios\n\nscenarios("{name}.feature")\n'
    )
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:allure_pytest -p no:cacheprovider\n"
        f"pythonpath = {PROJECT_ROOT}\n"
    )
    return path
