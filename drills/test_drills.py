"""Binds the drill catalog (drills/*.feature) to pytest."""

from pytest_bdd import scenarios

scenarios("region_outage.feature", "rpo_breach.feature")
