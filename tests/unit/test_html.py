"""The offline patch of the Allure report: what is stripped, what the static scan flags, and
the errors that say what to install. Rendering and the browser proof are integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from drkit.errors import ConfigError
from drkit.evidence import html
from drkit.evidence.html import (
    ReportError,
    ReportToolMissing,
    make_offline,
    remote_references,
    render_report,
    strip_analytics,
)

pytestmark = pytest.mark.unit

# The tail of the page @allurereport/plugin-awesome 3.18.0 writes (analytics block verbatim).
ALLURE_PAGE = """<!DOCTYPE html>
<html dir="ltr" lang="en">
<head>
    <meta charset="utf-8">
    <title> drkit drill report </title>
    <link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'%3E">
    <link rel="stylesheet" type="text/css" href="data:text/css;base64,Ym9keXt9">
</head>
<body>
    <div id="app"></div>
    <svg xmlns="http://www.w3.org/2000/svg"><use href="#allure-loader"/></svg>
    <script>
      window.allure = window.allure || {};
    </script>
    <script   src="app-b3323b2606f19801ef1b.js"></script>
    <script async src="https://www.googletagmanager.com/gtag/js?id=G-LNDJ3J7WT0"></script>
    <script>
        window.dataLayer = window.dataLayer || [];
        function gtag(){dataLayer.push(arguments);}
        gtag('js', new Date());
        gtag('config', 'G-LNDJ3J7WT0', {
          "report": "awesome",
          "allureVersion": "3.18.0",
          "reportUuid": "28579919-c75e-4381-a214-bcc1cded6003",
          "single_file": ""
        });
    </script>
    <script async>
        window.allureReportDataReady = true;
    </script>
    <a href="https://allurereport.org">Powered by Allure Report</a>
</body>
</html>
"""


def test_strip_analytics_removes_the_gtag_loader_and_its_bootstrap_and_keeps_the_report() -> None:
    page = strip_analytics(ALLURE_PAGE)

    assert "googletagmanager" not in page
    assert "gtag(" not in page and "G-LNDJ3J7WT0" not in page
    assert '<script   src="app-b3323b2606f19801ef1b.js"></script>' in page
    assert "window.allureReportDataReady = true;" in page
    assert "window.allure = window.allure || {};" in page
    assert 'href="data:text/css;base64,Ym9keXt9"' in page
    assert remote_references(page) == []


def test_the_unpatched_allure_page_is_flagged_by_the_static_scan() -> None:
    assert remote_references(ALLURE_PAGE) == [
        "https://www.googletagmanager.com/gtag/js?id=G-LNDJ3J7WT0"
    ]


def test_remote_references_lists_what_the_page_loads_and_not_links_or_namespaces() -> None:
    page = """
    <link rel="preconnect" href="https://fonts.gstatic.com">
    <link rel="stylesheet" href="//cdn.example.com/x.css">
    <img alt="logo" src='http://img.example.com/logo.png'>
    <style>@font-face { src: url( "https://fonts.example.com/inter.woff2" ) }</style>
    <style>@import "https://css.example.com/theme.css";</style>
    <a href="https://allurereport.org">docs</a>
    <p>see https://example.org/not-a-load for details</p>
    <svg xmlns="http://www.w3.org/2000/svg"></svg>
    <script src="data:text/javascript;base64,Ly8gaHR0cHM6Ly94"></script>
    """

    assert remote_references(page) == [
        "https://fonts.gstatic.com",
        "//cdn.example.com/x.css",
        "http://img.example.com/logo.png",
        "https://fonts.example.com/inter.woff2",
        "https://css.example.com/theme.css",
    ]


def test_make_offline_rewrites_the_report_without_its_analytics(tmp_path: Path) -> None:
    index = tmp_path / "index.html"
    index.write_text(ALLURE_PAGE, encoding="utf-8")

    make_offline(index)

    assert index.read_text(encoding="utf-8") == strip_analytics(ALLURE_PAGE)


def test_make_offline_refuses_a_page_that_still_loads_from_outside(tmp_path: Path) -> None:
    index = tmp_path / "index.html"
    index.write_text(ALLURE_PAGE.replace("<body>", '<body><img src="https://x.example/p.gif">'))

    with pytest.raises(ReportError, match=r"https://x\.example/p\.gif.*strip_analytics"):
        make_offline(index)
    assert "googletagmanager" in index.read_text(), "a refused page is left as Allure wrote it"


def test_render_report_refuses_an_output_folder_that_already_holds_a_report(
    tmp_path: Path,
) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "index.html").write_text("old report")

    with pytest.raises(ConfigError, match=r"already holds files.*choose a new folder"):
        render_report(tmp_path / "results", tmp_path / "out")


def test_render_report_says_to_run_the_drills_when_the_results_folder_is_missing(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="does not exist; run the drills first"):
        render_report(tmp_path / "no-results", tmp_path / "out")


def test_render_report_names_make_setup_when_the_allure_cli_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "results").mkdir()
    monkeypatch.setattr(html, "ALLURE_CLI", tmp_path / "node_modules" / "allure" / "cli.js")

    with pytest.raises(ReportToolMissing, match=r"cli\.js is missing.*make setup"):
        render_report(tmp_path / "results", tmp_path / "out")


def test_render_report_names_make_setup_when_node_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "results").mkdir()
    monkeypatch.setattr(html.shutil, "which", lambda name: None)

    with pytest.raises(ReportToolMissing, match=r"Node\.js is not installed.*make setup"):
        render_report(tmp_path / "results", tmp_path / "out")
