"""drkit's step library, grouped by domain; STEP_MODULES lists every module that registers steps."""

STEP_MODULES: tuple[str, ...] = (
    "steps.lab",
    "steps.measure",
    "steps.replication",
    "steps.preflight",
    "steps.restore",
    "steps.quarterly",
)
