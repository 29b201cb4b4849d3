"""`drkit lab up | status | reset | down`: the embedded lab as one object.

Everything the lab owns lives under the state folder (`.drkit/`, or DRKIT_HOME): pid files,
logs, secrets and, when the PostgreSQL user can reach it, the database files. When a parent
folder is closed to that user, the database files go to a folder it owns under /var/tmp and
`lab status` says where.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drkit.config import LabSettings
from drkit.errors import LabError
from drkit.lab.component import Component, PythonService
from drkit.lab.control_plane import control_plane_components, restore_security_groups
from drkit.lab.database import DatabaseTier
from drkit.lab.fence import FENCE_FILE, clear_fences
from drkit.lab.postgres import (
    APP_USER,
    OPERATOR_USER,
    Passwords,
    PgTools,
    find_pg_bindir,
    service_user,
)
from drkit.lab.seed import seed_count_from_env
from drkit.lab.sut import sut_components
from drkit.lab.topology import PUBLIC, REGIONS, SOURCES, ProxySpec, ingress_address, proxy_spec
from drkit.lab.toxiproxy_server import ToxiproxyServer
from drkit.lab.watcher_component import WatcherComponent
from drkit.paths import state_dir

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def _starting(component: Component) -> str:
    """What `up` says it is doing while a component starts."""
    if component.name == "documents":
        count = seed_count_from_env()
        return f"documents: schema, {count:,} seed documents (loaded once), index check"
    return f"{component.name}: starting"


class Lab:
    """The lab in one state folder. Construct it cheaply; nothing starts until `up()`."""

    def __init__(self, state: Path | None = None, settings: LabSettings | None = None) -> None:
        self.state = (state or state_dir()).resolve()
        self.settings = settings or LabSettings.from_env()
        self.toxiproxy = ToxiproxyServer(self.state, self.settings.ports.toxiproxy_api)
        self._database: DatabaseTier | None = None
        self.watcher = WatcherComponent(self.state)

    # -- state folder --------------------------------------------------------------------
    def _prepare_state(self) -> None:
        try:
            for sub in ("run", "logs"):
                (self.state / sub).mkdir(parents=True, exist_ok=True)
            probe = self.state / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise LabError(
                f"the state folder {self.state} is not writable ({exc.strerror}); point "
                "DRKIT_HOME at a folder you can write, or fix its permissions"
            ) from None

    def _meta_path(self) -> Path:
        return self.state / "lab.json"

    def meta(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._meta_path().read_text()))
        except (OSError, ValueError):
            return {}

    def _passwords(self) -> Passwords:
        path = self.state / "secrets.json"
        if not path.exists():
            values = {k: secrets.token_urlsafe(18) for k in ("replication", "operator", "app")}
            path.touch(mode=0o600)
            path.write_text(json.dumps(values))
        return Passwords(**json.loads(path.read_text()))

    def _data_root(self, tools: PgTools) -> Path:
        recorded = self.meta().get("data_root")
        if recorded:
            return Path(recorded)
        if tools.can_traverse(self.state):
            return self.state / "pg"
        digest = hashlib.sha256(str(self.state).encode()).hexdigest()[:10]
        return Path("/var/tmp") / f"drkit-pg-{digest}"

    @property
    def database(self) -> DatabaseTier:
        if self._database is None:
            tools = PgTools(find_pg_bindir(), service_user())
            root = self._data_root(tools)
            if not root.exists():
                root.mkdir(parents=True, mode=0o700)
                tools.own(root)
            self._database = DatabaseTier(self.settings, root, tools, self._passwords())
        return self._database

    def _write_meta(self) -> None:
        meta = {
            "state": str(self.state),
            "data_root": str(self.database.east.node.root.parent),
            "data_root_outside_state": not str(self.database.east.node.root).startswith(
                str(self.state)
            ),
            "port_base": self.settings.ports.base,
            "profile": self.settings.profile.name,
            "pg_bindir": str(self.database.tools.bindir),
        }
        self._meta_path().write_text(json.dumps(meta, indent=2))

    def db_config(
        self, region: str, source: str = PUBLIC, user: str = OPERATOR_USER
    ) -> dict[str, Any]:
        """Connection settings for `region`'s database as reached from `source` (a proxy)."""
        passwords = self._passwords()
        password = {OPERATOR_USER: passwords.operator, APP_USER: passwords.app}[user]
        return {
            "host": ingress_address(region, source),
            "port": self.settings.ports.postgres,
            "database": self.settings.database,
            "user": user,
            "password": password,
        }

    def service_ports(self) -> dict[str, int]:
        ports = self.settings.ports
        return {"db": ports.postgres, "index": ports.index, "api": ports.api}

    def proxies(self) -> list[ProxySpec]:
        """One proxy per (destination region, service, traffic source)."""
        return [
            proxy_spec(region, service, source, port)
            for service, port in self.service_ports().items()
            for region in REGIONS
            for source in SOURCES
        ]

    def services(self) -> list[Component]:
        """Components that run above the database tier, in start order."""
        return [*control_plane_components(self), *sut_components(self)]

    # -- commands ------------------------------------------------------------------------
    def up(self, progress: Progress = _quiet) -> dict[str, Any]:
        """Start what is not running and return when every component is healthy."""
        self._prepare_state()
        was_running = self._any_running()
        try:
            progress("toxiproxy: starting")
            self.toxiproxy.start()
            self.toxiproxy.ensure_proxies(self.proxies())
            progress("postgres: starting us-east-1 and us-west-2")
            self.database.start()
            self._write_meta()
            services = self.services()
            for component in services:  # independent processes boot side by side
                if isinstance(component, PythonService) and component.prelaunch:
                    component.launch()
            for component in services:
                progress(_starting(component))
                component.start()
        except BaseException:
            if not was_running:
                self._stop_quietly()  # a start that fails leaves no process behind
            raise
        return self.status()

    def _any_running(self) -> bool:
        if self.toxiproxy.pid() is not None:
            return True
        if not self.meta():
            return False
        return any(c.pid() is not None for c in self.database.clusters.values())

    def _stop_quietly(self) -> None:
        with contextlib.suppress(Exception):  # the original error is the one to report
            self.down()

    def reset(self, progress: Progress = _quiet) -> dict[str, Any]:
        """Back to the initial topology: no toxics, us-east-1 primary streaming to us-west-2."""
        self._prepare_state()
        if self.toxiproxy.pid() is None:
            raise LabError(f"the lab in {self.state} is not running; start it with `drkit lab up`")
        self.watcher.reset()  # the initial lab has the watcher off
        clear_fences(self.state / FENCE_FILE)  # recovery actions end with the reset
        progress("toxiproxy: removing toxics, enabling every proxy")
        with self.toxiproxy.client() as client:
            client.reset()
        self.toxiproxy.ensure_proxies(self.proxies())
        progress("security groups: restoring the seeded rules")
        restore_security_groups(self)  # before the database: a revoked link stalls replication
        progress("postgres: restoring us-east-1 -> us-west-2 replication")
        self.database.reset()
        for component in self.services():
            progress(f"{component.name}: resetting")
            component.reset()
        return self.status()

    def down(self, purge: bool = False) -> None:
        """Stop every process the lab started; `purge` also deletes its data."""
        errors: list[str] = []
        for component in [self.watcher, *reversed(self.services())]:
            try:
                component.stop()
            except LabError as exc:
                errors.append(str(exc))
        try:
            self.database.stop()
        except LabError as exc:
            errors.append(str(exc))
        self.toxiproxy.stop()
        if purge:
            for component in self.services():  # components that keep data of their own
                getattr(component, "purge", lambda: None)()
            root = Path(self.meta().get("data_root", self.state / "pg"))
            shutil.rmtree(root, ignore_errors=True)
            for name in ("lab.json", "secrets.json"):
                (self.state / name).unlink(missing_ok=True)
        if errors:
            raise LabError("; ".join(errors))

    def status(self) -> dict[str, Any]:
        meta = self.meta()
        components = [self.toxiproxy.status()]
        if meta:
            components.append(self.database.status())
            components += [c.status() for c in self.services()]
            components.append(self.watcher.status())
        return {
            "state": str(self.state),
            "data_root": meta.get("data_root"),
            "data_root_outside_state": meta.get("data_root_outside_state", False),
            "ports": {
                "base": self.settings.ports.base,
                **self.service_ports(),
                "toxiproxy_api": self.settings.ports.toxiproxy_api,
            },
            "profile": self.settings.profile.name,
            "components": components,
            "measured_at": time.time(),
            "pid": os.getpid(),
        }
