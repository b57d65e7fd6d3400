"""``meshcheck report html`` renders a report a browser can show, with trends after a second run."""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_meshcheck.errors import EnvironmentProblem
from pytest_meshcheck.report.commands import add_report_commands
from pytest_meshcheck.report.html import find_allure, strip_analytics

from .meshproject import MeshProject
from .test_run_files import HEALTHY_CHECKS

BROWSER_TIMEOUT_S = 120

# Allure 3 expands the groups of the tree that hold a problem and folds all-green ones, so a
# failing check makes the overview list a test by name next to the folded passing group.
FAILING_CHECK = '''
import pytest

from pytest_meshcheck.errors import CheckFailed


@pytest.mark.meshcheck_gateway
def test_unknown_path_is_404():
    raise CheckFailed("GET /nope answered 200, expected 404")
'''


def _meshcheck(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="meshcheck")
    add_report_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served_dir() -> Iterator[functools.partial[str]]:
    """Serve a directory on loopback, as a report is published; yields url(dir, path)."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def url(directory: Path, path: str) -> str:
        handler = functools.partial(QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}/{path}"

    yield functools.partial(url)
    for server in servers:
        server.shutdown()
        server.server_close()


def _page_text(url: str, profile: Path) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("the rendered report is checked in headless Chromium: install Debian package chromium")
    completed = subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", url,
        ],
        capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", completed.stdout, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def _status_dynamics_points(report: Path) -> int:
    charts = json.loads((report / "widgets" / "charts.json").read_text())
    dynamics = [chart for chart in charts["general"].values() if chart["type"] == "statusDynamics"]
    return len(dynamics[0]["data"])


def test_report_html_renders_in_chromium_with_trends_after_a_second_run(
    mesh_project: MeshProject, served_dir: functools.partial[str], tmp_path: Path
) -> None:
    if shutil.which("npm") is None and shutil.which("java") is None:
        pytest.skip("neither npm (Allure 3) nor java (Allure 2) is installed")
    mesh_project.pytester.makepyfile(test_checks=HEALTHY_CHECKS, test_gate=FAILING_CHECK)
    mesh_project.run().assert_outcomes(passed=2, failed=1)
    reports = mesh_project.reports
    assert _meshcheck("report", "html", "--reports-dir", str(reports)) == 0
    report = reports / "allure-report"
    assert "googletagmanager" not in (report / "index.html").read_text()

    overview = _page_text(served_dir(report, "index.html"), tmp_path / "profile-1")
    assert "Total 3" in overview
    assert "test_unknown_path_is_404" in overview
    assert re.search(r"test_checks\.py 2\b", overview), overview[:2000]
    assert _status_dynamics_points(report) == 1

    mesh_project.run().assert_outcomes(passed=2, failed=1)
    assert _meshcheck("report", "html", "--reports-dir", str(reports)) == 0
    assert len((reports / "allure-history" / "history.jsonl").read_text().splitlines()) == 2
    assert _status_dynamics_points(report) == 2
    charts = _page_text(served_dir(report, "index.html#/charts"), tmp_path / "profile-2")
    assert "Status dynamics" in charts


def test_single_file_report_needs_no_server(mesh_project: MeshProject, tmp_path: Path) -> None:
    if shutil.which("npm") is None and shutil.which("java") is None:
        pytest.skip("neither npm (Allure 3) nor java (Allure 2) is installed")
    mesh_project.pytester.makepyfile(test_gate=FAILING_CHECK)
    mesh_project.run().assert_outcomes(failed=1)
    reports = mesh_project.reports
    assert _meshcheck("report", "html", "--reports-dir", str(reports), "--single-file") == 0
    report = reports / "allure-report"
    assert (report / "index.html").is_file()
    assert not list(report.rglob("*.js")), "the single-file report must inline its scripts"
    assert not (report / "data").exists()
    overview = _page_text((reports / "allure-report" / "index.html").as_uri(), tmp_path / "profile")
    assert "test_unknown_path_is_404" in overview


def test_without_node_or_java_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(EnvironmentProblem, match=r"Install Node\.js.*Java") as caught:
        find_allure(tmp_path / "home")
    assert "Neither `npm` nor `java` was found" in caught.value.message


def test_analytics_snippet_is_removed(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text(
        '<body><div id="app"></div>\n'
        '<script async src="https://www.googletagmanager.com/gtag/js?id=G-X"></script>\n'
        "<script>\n window.dataLayer = []; function gtag(){} gtag('js', new Date());\n</script>\n"
        "<script>window.report = 1;</script></body>"
    )
    assert strip_analytics(tmp_path) == 1
    text = page.read_text()
    assert "googletagmanager" not in text
    assert "gtag" not in text
    assert "window.report = 1" in text
