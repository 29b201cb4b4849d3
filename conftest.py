"""Registers drkit's step and fixture modules with pytest (steps/, fixtures/)."""

from steps import STEP_MODULES

pytest_plugins: list[str] = ["pytester", "fixtures.plugin", "fixtures.drill", *STEP_MODULES]
