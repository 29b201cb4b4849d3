"""The drill's HTML report: Allure 3 (npm `allure`, no Java), as a folder or as one file.

Allure's report template always adds Google Analytics (`analyticsEnable: true` is hard-coded
in @allurereport/plugin-awesome 3.18.0; only the old allure2 plugin reads
`ALLURE_NO_ANALYTICS`), so the offline report has that markup stripped after generation and
is then scanned for anything else the page would fetch from outside.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from drkit.errors import ConfigError, DrillError

REPORTS_DIR = Path(__file__).resolve().parents[2] / "reports"
ALLURE_CLI = REPORTS_DIR / "node_modules" / "allure" / "cli.js"
ALLURE_CONFIG = REPORTS_DIR / "allurerc.mjs"
RENDER_TIMEOUT_S = 600

_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>\s*", re.IGNORECASE | re.DOTALL)
_LINK = re.compile(r"<link\b[^>]*>\s*", re.IGNORECASE)
_TAG = re.compile(r"<([a-zA-Z][\w:-]*)\b([^>]*)>")
# A URL the browser would fetch from another host: http(s) or protocol-relative.
_REMOTE = r"""(?:https?:)?//[^\s"'<>)]+"""
_LOADING_ATTR = re.compile(
    rf"""\b(src|href|srcset|poster|data|xlink:href)\s*=\s*["']?\s*({_REMOTE})""", re.IGNORECASE
)
_CSS_REMOTE = re.compile(rf"""(?:url\(\s*["']?|@import\s+["'])\s*({_REMOTE})""", re.IGNORECASE)
# Tags whose href is a link to follow, not something the page loads by itself.
_NAVIGATION_TAGS = {"a", "area"}


class ReportError(DrillError):
    """The HTML report could not be rendered, or it would load something from outside."""


class ReportToolMissing(ReportError):
    """Node.js or the Allure 3 CLI (reports/node_modules) is not installed."""


def render_report(
    results: Path,
    out: Path,
    *,
    single_file: bool = False,
    name: str = "drkit drill report",
    offline: bool = True,
) -> Path:
    """Render the Allure results in `results` into the empty folder `out`; return its index.html.

    With `single_file` the report is one self-contained HTML file. With `offline` (the default)
    Allure's analytics are stripped and the page is checked to fetch nothing from outside;
    `offline=False` leaves Allure's default page as it is (the positive control of the test).
    """
    _check_folders(results, out)
    output = _run_allure(results, out, single_file=single_file, name=name)
    index = out / "index.html"
    if not index.is_file():
        raise ReportError(f"Allure exited normally but wrote no {index}; it said: {output}")
    if offline:
        make_offline(index)
    return index


def make_offline(index: Path) -> None:
    """Strip the analytics from a rendered report; raise if anything outside is still loaded."""
    page = strip_analytics(index.read_text(encoding="utf-8"))
    remaining = remote_references(page)
    if remaining:
        raise ReportError(
            f"{index} would still load from outside after the analytics were stripped: "
            f"{', '.join(remaining[:5])}; Allure's template may have changed, extend "
            "strip_analytics in drkit/evidence/html.py"
        )
    index.write_text(page, encoding="utf-8")


def strip_analytics(page: str) -> str:
    """Remove scripts and links that load from another host, and the gtag bootstrap script."""
    page = _SCRIPT.sub(lambda m: "" if _is_analytics(m[1], m[2]) else m[0], page)
    return _LINK.sub(lambda m: "" if _LOADING_ATTR.search(m[0]) else m[0], page)


def _is_analytics(attributes: str, body: str) -> bool:
    return bool(_LOADING_ATTR.search(attributes)) or body.lstrip().startswith("window.dataLayer")


def remote_references(page: str) -> list[str]:
    """URLs on other hosts that the page would load by itself: tags' sources and CSS urls.

    A cheap static check (links to follow, such as `<a href>`, do not count); the browser test
    in tests/integration/test_offline_report.py is the proof.
    """
    found = [
        m[2]
        for tag in _TAG.finditer(page)
        if tag[1].lower() not in _NAVIGATION_TAGS
        for m in _LOADING_ATTR.finditer(tag[2])
    ]
    return found + [m[1] for m in _CSS_REMOTE.finditer(page)]


def _check_folders(results: Path, out: Path) -> None:
    if not results.is_dir():
        raise ConfigError(
            f"Allure results folder {results} does not exist; run the drills first "
            "(pytest writes it with --alluredir)"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"report folder {out} already holds files; Allure would nest the new report beside "
            "the old one. Remove it or choose a new folder"
        )


def _run_allure(results: Path, out: Path, *, single_file: bool, name: str) -> str:
    """Run `allure generate`; return the tail of what it printed."""
    command = [
        *_allure_command(),
        "generate",
        "--config",
        str(ALLURE_CONFIG),
        "--output",
        str(out.resolve()),
        "--name",
        name,
        str(results.resolve()),
    ]
    env = {**os.environ, "DRKIT_REPORT_SINGLE_FILE": "1" if single_file else "0", "NO_COLOR": "1"}
    env["ALLURE_NO_ANALYTICS"] = "true"  # honoured by the allure2 plugin only, should it be used
    env["DRKIT_REPORT_CATEGORIES"] = str((results / "categories.json").resolve())
    try:
        done = subprocess.run(
            command,
            cwd=REPORTS_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=RENDER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ReportError(
            f"Allure did not render {results} within {RENDER_TIMEOUT_S} s; is it stuck?"
        ) from exc
    said = (done.stderr + done.stdout).strip()[-2000:]
    if done.returncode != 0:
        raise ReportError(
            f"Allure could not render {results} into {out} (exit {done.returncode}): {said}"
        )
    return said


def _allure_command() -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise ReportToolMissing(
            "Node.js is not installed (no `node` on PATH); the HTML report needs it for Allure 3. "
            "Run `make setup` (it installs Node.js, Allure 3 and Chromium)"
        )
    if not ALLURE_CLI.is_file():
        raise ReportToolMissing(
            f"the Allure 3 CLI is not installed ({ALLURE_CLI} is missing); run `make setup` "
            "(or `npm ci --prefix reports`)"
        )
    return [node, str(ALLURE_CLI)]
