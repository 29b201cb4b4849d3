"""The typed Toxiproxy client raises where toxiproxy-python stays silent."""

from __future__ import annotations

import httpx
import pytest

from drkit.clients.toxiproxy import Toxic, ToxiproxyClient, ToxiproxyRequestError
from drkit.errors import TargetUnreachable

pytestmark = pytest.mark.unit

PROXY = {"name": "p", "listen": "127.0.0.1:1", "upstream": "127.0.0.1:2", "enabled": True}


def client_for(handler: object) -> ToxiproxyClient:
    return ToxiproxyClient("http://toxiproxy.test", transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def test_a_server_error_raises_and_names_the_request() -> None:
    client = client_for(lambda request: httpx.Response(500, text="boom"))
    with pytest.raises(
        ToxiproxyRequestError, match=r"refused POST /proxies/p/toxics \(HTTP 500\): boom"
    ):
        client._request("POST", "/proxies/p/toxics")


def test_an_unreachable_server_says_how_to_start_the_lab() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(TargetUnreachable, match="drkit lab up"):
        client_for(refuse).proxies()


def test_a_toxic_that_does_not_read_back_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={})
        return httpx.Response(200, json={**PROXY, "toxics": []})  # the toxic never appears

    with pytest.raises(ToxiproxyRequestError, match="did not read back"):
        client_for(handler).add_toxic("p", Toxic("lat", "latency", attributes={"latency": 10}))


def test_an_unknown_toxic_type_is_refused_before_any_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    with pytest.raises(ToxiproxyRequestError, match="unknown toxic type 'lag'"):
        client_for(handler).add_toxic("p", Toxic("x", "lag"))


def test_a_proxy_left_disabled_after_reset_is_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/reset":
            return httpx.Response(204)
        return httpx.Response(200, json={"p": {**PROXY, "enabled": False, "toxics": []}})

    with pytest.raises(ToxiproxyRequestError, match=r"still have toxics or are disabled: \['p'\]"):
        client_for(handler).reset()
