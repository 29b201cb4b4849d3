"""The PostgreSQL seam: connection settings from a user's dict, bounded connects, mapped errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from drkit.errors import ConfigError, TargetUnreachable

REQUIRED_KEYS = ("host", "port", "database", "user", "password")


@dataclass(frozen=True)
class PgEndpoint:
    """Where a database is and how to log in; `repr` never shows the password."""

    name: str
    host: str
    port: int
    database: str
    user: str
    password: str

    def __repr__(self) -> str:
        return f"PgEndpoint({self.name}: {self.user}@{self.host}:{self.port}/{self.database})"

    def describe(self) -> str:
        return f"{self.name} database {self.host}:{self.port}/{self.database}"

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> PgEndpoint:
        missing = [k for k in REQUIRED_KEYS if k not in config or config[k] in (None, "")]
        if missing:
            raise ConfigError(
                f"{name} database config is missing {', '.join(missing)}; give a dict with "
                f"{', '.join(REQUIRED_KEYS)}"
            )
        try:
            port = int(config["port"])
        except (TypeError, ValueError):
            raise ConfigError(
                f"{name} database config: port {config['port']!r} is not a number"
            ) from None
        return cls(
            name,
            str(config["host"]),
            port,
            str(config["database"]),
            str(config["user"]),
            str(config["password"]),
        )

    def connect(self, timeout_s: int = 2) -> psycopg.Connection[Any]:
        """An autocommit connection, or TargetUnreachable naming the endpoint and the cause."""
        try:
            return psycopg.connect(
                host=self.host,
                port=self.port,
                dbname=self.database,
                user=self.user,
                password=self.password,
                connect_timeout=timeout_s,
                autocommit=True,
                options=f"-c statement_timeout={timeout_s * 1000}",
            )
        except psycopg.OperationalError as exc:
            raise TargetUnreachable(
                f"{self.describe()} did not accept a connection within {timeout_s}s: "
                f"{_first_line(exc)}"
            ) from exc


def lsn_to_int(lsn: str | None) -> int | None:
    """A pg_lsn like '1/2A0' as a byte position; None stays None."""
    if not lsn:
        return None
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
