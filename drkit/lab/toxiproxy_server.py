"""The lab's one Toxiproxy server: finding the binary, running it, and laying out its proxies."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from drkit.clients.toxiproxy import ToxiproxyClient
from drkit.errors import LabError, MissingBinary
from drkit.lab.process import check_port_free, read_pidfile, spawn, terminate, wait_until
from drkit.lab.topology import ProxySpec
from drkit.paths import PROJECT_ROOT

API_HOST = "127.0.0.1"


def find_toxiproxy_server() -> Path:
    """DRKIT_TOXIPROXY_BIN, then `toxiproxy-server` on PATH, then the one `make setup` built."""
    env = os.environ.get("DRKIT_TOXIPROXY_BIN")
    if env:
        if Path(env).is_file() and os.access(env, os.X_OK):
            return Path(env)
        raise MissingBinary(
            f"DRKIT_TOXIPROXY_BIN={env} is not an executable file; point it at toxiproxy-server "
            "or unset it to use the one `make setup` builds"
        )
    on_path = shutil.which("toxiproxy-server")
    candidates = [Path(on_path)] if on_path else []
    candidates.append(PROJECT_ROOT / ".tools" / "bin" / "toxiproxy-server")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise MissingBinary(
        "toxiproxy-server was not found (looked at DRKIT_TOXIPROXY_BIN, PATH and "
        f"{PROJECT_ROOT / '.tools/bin'}); run `make setup`, which builds it with "
        "`go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0`"
    )


class ToxiproxyServer:
    """Process management for the lab's Toxiproxy server."""

    name = "toxiproxy"

    def __init__(self, state: Path, port: int) -> None:
        self.port = port
        self.pid_file = state / "run" / "toxiproxy.pid"
        self.log_file = state / "logs" / "toxiproxy.log"
        self.url = f"http://{API_HOST}:{port}"

    def client(self, timeout: float = 3.0) -> ToxiproxyClient:
        return ToxiproxyClient(self.url, timeout=timeout)

    def pid(self) -> int | None:
        return read_pidfile(self.pid_file, "toxiproxy")

    def healthy(self) -> bool:
        with self.client(timeout=1.0) as client:
            return client.is_up()

    def start(self) -> None:
        if self.pid() is not None and self.healthy():
            return
        binary = find_toxiproxy_server()
        check_port_free(API_HOST, self.port, "Toxiproxy API", wait_s=5.0)
        pid = spawn(
            [str(binary), "-host", API_HOST, "-port", str(self.port)],
            self.log_file,
            self.pid_file,
            env={**os.environ, "LOG_LEVEL": "info"},  # debug logs every API call
        )
        try:
            wait_until(self.healthy, 10, f"Toxiproxy API on {self.url} (log: {self.log_file})")
        except LabError:
            terminate(pid)
            raise

    def ensure_proxies(self, specs: list[ProxySpec]) -> None:
        """Create every proxy of the topology; one whose listen port is taken is a clear error."""
        with self.client() as client:
            existing = client.proxies()
            for spec in specs:
                if spec.name not in existing:
                    host, port = spec.listen.rsplit(":", 1)
                    check_port_free(host, int(port), f"Toxiproxy proxy {spec.name}", wait_s=5.0)
                client.ensure_proxy(spec.name, spec.listen, spec.upstream)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid)
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        pid = self.pid()
        info: dict[str, Any] = {"component": self.name, "pid": pid, "address": self.url}
        if pid is None:
            return {**info, "health": "stopped"}
        try:
            with self.client(timeout=1.0) as client:
                proxies = client.proxies()
                version = client.version()
        except Exception as exc:  # a status report shows the failure instead of raising
            return {**info, "health": "unhealthy", "error": str(exc)}
        return {
            **info,
            "health": "healthy",
            "version": version,
            "proxies": {
                p.name: {
                    "listen": p.listen,
                    "upstream": p.upstream,
                    "enabled": p.enabled,
                    "toxics": [t.to_json() for t in p.toxics],
                }
                for p in sorted(proxies.values(), key=lambda p: p.name)
            },
        }
