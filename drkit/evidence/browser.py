"""Opens an HTML file in headless Chromium and records every request the page attempts.

Each request is held by the DevTools Fetch domain before it leaves the browser: `file://`
URLs inside the page's folder (and in-document `data:`/`blob:` URLs) are let through, anything
else is recorded as an outside request and failed. This proves a report is self-contained
without relying on the machine being offline.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from websockets.sync.client import ClientConnection, connect

from drkit.errors import DrillError

CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_START_TIMEOUT_S = 20.0
PAGE_LOAD_TIMEOUT_S = 60.0
WINDOW_SIZE = (1440, 900)

# Flags that keep the browser itself quiet and contained: no background traffic, no DNS (every
# host name resolves to nothing) and a dead proxy on loopback for every URL, loopback included,
# so that even a request the Fetch domain never sees (a preconnect, a browser service) cannot
# leave the machine. The interception does not rely on them: it fails requests before they go.
# A report folder reads its JSON with fetch(), which Chromium refuses between file:// URLs unless
# allowed; the page would then sit on its spinner and never attempt what a rendered report loads.
CHROMIUM_FLAGS = (
    "--allow-file-access-from-files",
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-extensions",
    "--disable-sync",
    "--disable-breakpad",
    "--disable-client-side-phishing-detection",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--metrics-recording-only",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--mute-audio",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
)

ALL_REQUESTS = {"urlPattern": "*", "requestStage": "Request"}
AUTO_ATTACH = {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}


class BrowserError(DrillError):
    """Chromium is missing, did not start, or the page could not be opened."""


@dataclass(frozen=True)
class BrowserVisit:
    """What a page attempted to load while it was open."""

    html: Path
    outside_requests: list[str]
    inside_requests: list[str]
    title: str
    text: str  # the rendered page's visible text, to tell a report from a blank page
    page_errors: list[str]
    screenshot: Path | None = None


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError(
        "Chromium is not installed (looked for `chromium` and `chromium-browser` on PATH); "
        "install it with `apt-get install -y chromium` or run `make setup`"
    )


def is_inside(url: str, folder: Path) -> bool:
    """Whether a request stays within the page: a file in `folder`, or in-document data."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return False
    return Path(unquote(parts.path)).resolve().is_relative_to(folder.resolve())


def record_requests(
    html: Path, *, settle_s: float = 2.0, screenshot: Path | None = None
) -> BrowserVisit:
    """Open `html` in headless Chromium, fail every outside request, and report them all.

    After the load event the page gets `settle_s` seconds without a new request before the
    visit ends, so late scripts (analytics loaded `async`) have had their chance to ask.
    """
    html = html.resolve()
    if not html.is_file():
        raise BrowserError(f"record_requests: {html} is not a file; render the report first")
    with _chromium() as ws_url, connect(ws_url, max_size=None, open_timeout=10) as ws:
        page = _Page(ws, html)
        page.open()
        page.settle(settle_s)
        if screenshot is not None:
            page.capture(screenshot)
        return page.visit(screenshot)


@contextlib.contextmanager
def _chromium() -> Iterator[str]:
    """Start Chromium in a throw-away profile; yield its DevTools WebSocket URL; always kill it.

    It runs in its own process group so that killing the group also ends its renderer, GPU
    and zygote processes; its log goes to a file, where it cannot fill a pipe and stall it.
    """
    scratch = Path(tempfile.mkdtemp(prefix="drkit-chromium-"))
    profile, log_path = scratch / "profile", scratch / "chromium.log"
    try:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        try:
            yield _devtools_url(proc, profile, log_path)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _devtools_url(proc: subprocess.Popen[bytes], profile: Path, log_path: Path) -> str:
    """Read the port Chromium chose from the `DevToolsActivePort` file it writes."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + CHROMIUM_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrowserError(
                f"Chromium exited with code {proc.returncode} before DevTools was up: "
                f"{log_path.read_text(errors='replace').strip()[-2000:]}"
            )
        lines = port_file.read_text().split() if port_file.exists() else []
        if len(lines) == 2:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.05)
    raise BrowserError(
        f"Chromium did not open its DevTools port within {CHROMIUM_START_TIMEOUT_S:.0f} s "
        f"(no {port_file}); is the machine overloaded?"
    )


class _Page:
    """One tab driven over the browser's DevTools connection (flat sessions).

    Frames in other processes and shared or service workers are separate targets: each is
    attached paused, given the same Fetch interception, and only then let run, so none of their
    requests slips past.
    """

    def __init__(self, ws: ClientConnection, html: Path) -> None:
        self.ws = ws
        self.html = html
        self.folder = html.parent
        self.ids = itertools.count(1)
        self.session = ""
        self.unanswered: dict[int, str] = {}
        self.loaded = False
        self.outside: list[str] = []
        self.inside: list[str] = []
        self.errors: list[str] = []
        self.last_request = time.monotonic()

    def open(self) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        attached = self.call("Target.attachToTarget", targetId=target, flatten=True)
        self.session = attached["sessionId"]
        self.call("Fetch.enable", patterns=[ALL_REQUESTS])
        self.call("Target.setAutoAttach", **AUTO_ATTACH)
        self.call("Page.enable")
        self.call("Runtime.enable")
        navigated = self.call("Page.navigate", url=self.html.as_uri())
        if navigated.get("errorText"):
            raise BrowserError(f"Chromium could not open {self.html}: {navigated['errorText']}")
        deadline = time.monotonic() + PAGE_LOAD_TIMEOUT_S
        while not self.loaded:
            if time.monotonic() > deadline:
                raise BrowserError(f"{self.html} did not finish loading in {PAGE_LOAD_TIMEOUT_S} s")
            self.pump(deadline - time.monotonic())

    def settle(self, settle_s: float) -> None:
        """Keep serving the page until no request has been attempted for `settle_s` seconds."""
        deadline = time.monotonic() + PAGE_LOAD_TIMEOUT_S
        while time.monotonic() < deadline:
            quiet_until = self.last_request + settle_s
            if time.monotonic() >= quiet_until:
                return
            self.pump(quiet_until - time.monotonic())

    def capture(self, path: Path) -> None:
        shot = self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def visit(self, screenshot: Path | None) -> BrowserVisit:
        return BrowserVisit(
            html=self.html,
            outside_requests=list(self.outside),
            inside_requests=list(self.inside),
            title=self.evaluate("document.title").strip(),
            text=self.evaluate("document.body ? document.body.innerText : ''"),
            page_errors=list(self.errors),
            screenshot=screenshot,
        )

    def evaluate(self, expression: str) -> str:
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return str(answer.get("result", {}).get("value", ""))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command (to the page once attached) and serve events until it is answered."""
        msg_id = self.send(method, self.session, **params)
        while True:
            reply = self.receive(PAGE_LOAD_TIMEOUT_S)
            if reply is None:
                raise BrowserError(f"Chromium did not answer {method} in {PAGE_LOAD_TIMEOUT_S} s")
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise BrowserError(f"DevTools {method} failed: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.handle(reply)

    def send(self, method: str, session: str, **params: Any) -> int:
        msg_id = next(self.ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        return msg_id

    def send_nowait(self, method: str, session: str, **params: Any) -> None:
        """Send a command whose answer is only read to catch an error."""
        self.unanswered[self.send(method, session, **params)] = f"{method} on {session}"

    def pump(self, timeout_s: float) -> None:
        event = self.receive(max(timeout_s, 0.01))
        if event is not None:
            self.handle(event)

    def receive(self, timeout_s: float) -> dict[str, Any] | None:
        try:
            raw = self.ws.recv(timeout=timeout_s)
        except TimeoutError:
            return None
        message: dict[str, Any] = json.loads(raw)
        return message

    def handle(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if "id" in event:
            sent = self.unanswered.pop(event["id"], "")
            if "error" in event:
                self.errors.append(f"DevTools {sent} failed: {event['error']}")
        elif method == "Fetch.requestPaused":
            self.on_request(event.get("sessionId", ""), params)
        elif method == "Target.attachedToTarget":
            self.on_attached(params["sessionId"], params["targetInfo"]["type"])
        elif method == "Page.loadEventFired" and event.get("sessionId") == self.session:
            self.loaded = True
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(str(details.get("exception", {}).get("description", details)))

    def on_attached(self, session: str, target_type: str) -> None:
        """A worker or out-of-process frame: intercept its requests too, then let it start.

        A dedicated worker has no Fetch domain; its requests already pause in its page's.
        """
        if target_type != "worker":
            self.send_nowait("Fetch.enable", session, patterns=[ALL_REQUESTS])
        self.send_nowait("Target.setAutoAttach", session, **AUTO_ATTACH)
        self.send_nowait("Runtime.runIfWaitingForDebugger", session)

    def on_request(self, session: str, params: dict[str, Any]) -> None:
        url: str = params["request"]["url"]
        self.last_request = time.monotonic()
        if is_inside(url, self.folder):
            self.inside.append(url if not url.startswith("data:") else url[:40] + "…")
            self.send_nowait("Fetch.continueRequest", session, requestId=params["requestId"])
        else:
            self.outside.append(url)
            self.send_nowait(
                "Fetch.failRequest",
                session,
                requestId=params["requestId"],
                errorReason="BlockedByClient",
            )
