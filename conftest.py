"""Registers drkit's step and fixture modules with pytest (steps/, fixtures/)."""

pytest_plugins: list[str] = [
    "pytester",
    "fixtures.plugin",
    "fixtures.drill",
    "steps.lab",
    "steps.measure",
]
