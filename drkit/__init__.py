"""drkit: disaster-recovery drills that measure RTO and RPO on real systems."""

from __future__ import annotations

__version__ = "0.1.0"
