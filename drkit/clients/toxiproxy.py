"""A small typed client for Toxiproxy's REST API: a timeout on every call, read-back checks.

toxiproxy-python has no timeouts, keeps its host in a class-level global and returns normally
on HTTP 5xx; this client raises instead, and every change is read back before it returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from drkit.errors import DrillError, TargetUnreachable

TOXIC_TYPES = (
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
)
STREAMS = ("upstream", "downstream")
TOXIC_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "latency": ("latency", "jitter"),  # ms
    "bandwidth": ("rate",),  # KB/s
    "slow_close": ("delay",),  # ms
    "timeout": ("timeout",),  # ms; 0 holds the data forever (a blackhole)
    "reset_peer": ("timeout",),  # ms
    "slicer": ("average_size", "size_variation", "delay"),  # bytes, bytes, microseconds
    "limit_data": ("bytes",),
}


class ToxiproxyRequestError(DrillError):
    """Toxiproxy answered, but refused or did not apply the request."""


@dataclass(frozen=True)
class Toxic:
    name: str
    type: str
    stream: str = "downstream"
    toxicity: float = 1.0
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Toxic:
        return cls(
            name=data["name"],
            type=data["type"],
            stream=data.get("stream", "downstream"),
            toxicity=float(data.get("toxicity", 1.0)),
            attributes=dict(data.get("attributes") or {}),
        )


@dataclass(frozen=True)
class Proxy:
    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[Toxic, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Proxy:
        return cls(
            name=data["name"],
            listen=data["listen"],
            upstream=data["upstream"],
            enabled=bool(data["enabled"]),
            toxics=tuple(Toxic.from_json(t) for t in data.get("toxics") or ()),
        )

    def toxic(self, name: str) -> Toxic | None:
        return next((t for t in self.toxics if t.name == name), None)


class ToxiproxyClient:
    """Talks to one Toxiproxy server; safe to share between threads."""

    def __init__(
        self, base_url: str, timeout: float = 3.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise TargetUnreachable(
                f"Toxiproxy at {self.base_url} did not answer {method} {path}: {exc}; "
                "check `drkit lab status` or start the lab with `drkit lab up`"
            ) from exc
        if response.status_code >= 400:
            raise ToxiproxyRequestError(
                f"Toxiproxy at {self.base_url} refused {method} {path} "
                f"(HTTP {response.status_code}): {response.text.strip()}"
            )
        return response

    def version(self) -> str:
        response = self._request("GET", "/version")
        try:
            return str(response.json()["version"])
        except (ValueError, KeyError, TypeError):
            return response.text.strip()

    def is_up(self) -> bool:
        try:
            self.version()
        except DrillError:
            return False
        return True

    def proxies(self) -> dict[str, Proxy]:
        data = self._request("GET", "/proxies").json()
        return {name: Proxy.from_json(p) for name, p in data.items()}

    def proxy(self, name: str) -> Proxy:
        return Proxy.from_json(self._request("GET", f"/proxies/{name}").json())

    def find_proxy(self, name: str) -> Proxy | None:
        """The proxy, or None when the server has none of that name (e.g. a restarted server
        before the lab lays its proxies out again: no proxy, so no toxic either)."""
        return self.proxies().get(name)

    def ensure_proxy(self, name: str, listen: str, upstream: str) -> Proxy:
        """Create the proxy, or fix its addresses, and return it as read back."""
        existing = self.proxies().get(name)
        if existing is None:
            body = {"name": name, "listen": listen, "upstream": upstream, "enabled": True}
            self._request("POST", "/proxies", json=body)
        elif existing.listen != listen or existing.upstream != upstream:
            self._request("POST", f"/proxies/{name}", json={"listen": listen, "upstream": upstream})
        proxy = self.proxy(name)
        if proxy.upstream != upstream or not _same_listen(proxy.listen, listen):
            raise ToxiproxyRequestError(
                f"proxy {name} reads back as {proxy.listen} -> {proxy.upstream}, "
                f"expected {listen} -> {upstream}"
            )
        return proxy

    def set_enabled(self, name: str, enabled: bool) -> Proxy:
        self._request("POST", f"/proxies/{name}", json={"enabled": enabled})
        proxy = self.proxy(name)
        if proxy.enabled != enabled:
            raise ToxiproxyRequestError(
                f"proxy {name} reads back enabled={proxy.enabled} after setting {enabled}"
            )
        return proxy

    def add_toxic(self, proxy_name: str, toxic: Toxic) -> Toxic:
        """Add a toxic and read it back; an existing toxic of the same name is replaced."""
        if toxic.type not in TOXIC_TYPES:
            raise ToxiproxyRequestError(
                f"unknown toxic type {toxic.type!r}; Toxiproxy has {', '.join(TOXIC_TYPES)}"
            )
        if self.proxy(proxy_name).toxic(toxic.name) is not None:
            self.remove_toxic(proxy_name, toxic.name)
        self._request("POST", f"/proxies/{proxy_name}/toxics", json=toxic.to_json())
        applied = self.proxy(proxy_name).toxic(toxic.name)
        if applied is None or applied.type != toxic.type or applied.stream != toxic.stream:
            raise ToxiproxyRequestError(
                f"toxic {toxic.name} on proxy {proxy_name} did not read back after adding it"
            )
        return applied

    def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        """Remove a toxic; removing one that is absent (or whose proxy is) is not an error.
        Read back."""
        if _has_toxic(self.find_proxy(proxy_name), toxic_name):
            self._request("DELETE", f"/proxies/{proxy_name}/toxics/{toxic_name}")
        if _has_toxic(self.find_proxy(proxy_name), toxic_name):
            raise ToxiproxyRequestError(
                f"toxic {toxic_name} is still on proxy {proxy_name} after removing it"
            )

    def reset(self) -> None:
        """Enable every proxy and remove every toxic, then check that it is so."""
        self._request("POST", "/reset")
        dirty = [p.name for p in self.proxies().values() if p.toxics or not p.enabled]
        if dirty:
            raise ToxiproxyRequestError(
                f"after reset these proxies still have toxics or are disabled: {dirty}"
            )


def _has_toxic(proxy: Proxy | None, toxic_name: str) -> bool:
    return proxy is not None and proxy.toxic(toxic_name) is not None


def _same_listen(actual: str, wanted: str) -> bool:
    return actual == wanted or (
        actual.rsplit(":", 1)[-1] == wanted.rsplit(":", 1)[-1]
        and (actual.startswith("[::]") or actual.startswith("0.0.0.0"))
    )
