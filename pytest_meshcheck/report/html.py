"""Render the Allure HTML report from a run's results, keeping history for the trend charts.

Allure 3 (the npm package ``allure``, needs Node) is preferred: found on PATH, or installed once
with npm into ``$MESHCHECK_HOME/allure3`` (default ``~/.cache/meshcheck``). Allure 2 is used when
it is the ``allure`` on PATH and Java is there to run it. History lives next to the results
(``<reports-dir>/allure-history``) so successive runs in one workspace, or a CI cache of that
directory, grow the trend charts. Analytics are disabled: the Allure 2 way (an environment
variable) and, for Allure 3 whose report template always embeds a tracking snippet, by removing
that snippet from the generated pages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pytest_meshcheck.errors import EnvironmentProblem, InstallError

#: The Allure 3 release installed into the cache when none is on PATH.
ALLURE3_VERSION = "3.18.0"
INSTALL_TIMEOUT_S = 600.0
GENERATE_TIMEOUT_S = 600.0
VERSION_TIMEOUT_S = 60.0

HISTORY_DIR = "allure-history"
REPORT_DIR = "allure-report"
RESULTS_DIR = "allure-results"

NO_ALLURE = (
    "cannot render the HTML report: no Allure command line is available. Install Node.js 18+ "
    "(npm then installs Allure 3 into {cache} on first use), or put Allure 2 on PATH together "
    "with Java 8+. Neither `npm` nor `java` was found on PATH."
)

# The tracking snippet of Allure 3's templates: a loader tag for googletagmanager and an inline
# script configuring gtag.
_ANALYTICS = re.compile(
    r"<script[^>]*googletagmanager\.com[^>]*>\s*</script>\s*(<script>(?:(?!</script>).)*?gtag\((?:(?!</script>).)*?</script>)?",
    re.DOTALL,
)


@dataclass(frozen=True, kw_only=True)
class AllureTool:
    generation: Literal[2, 3]
    executable: Path
    version: str


def meshcheck_home(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    configured = env.get("MESHCHECK_HOME", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "meshcheck"


def _run(command: list[str], *, timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ALLURE_NO_ANALYTICS="true", NO_COLOR="1", npm_config_update_notifier="false")
    try:
        return subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise InstallError(f"`{' '.join(command[:3])} ...` did not finish within {timeout:g}s") from exc
    except OSError as exc:
        raise InstallError(f"cannot run {command[0]}: {exc}") from exc


def _version_of(executable: Path) -> str:
    result = _run([str(executable), "--version"], timeout=VERSION_TIMEOUT_S)
    match = re.search(r"\b(\d+\.\d+\.\d+)\b", result.stdout + result.stderr)
    return match.group(1) if result.returncode == 0 and match else ""


def _cached_allure3(home: Path) -> Path:
    return home / "allure3" / "node_modules" / ".bin" / "allure"


def install_allure3(home: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise EnvironmentProblem(NO_ALLURE.format(cache=home / "allure3"))
    prefix = home / "allure3"
    prefix.mkdir(parents=True, exist_ok=True)
    result = _run(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", f"allure@{ALLURE3_VERSION}"],
        timeout=INSTALL_TIMEOUT_S,
    )
    executable = _cached_allure3(home)
    if result.returncode != 0 or not executable.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise InstallError(f"npm could not install allure@{ALLURE3_VERSION}: " + " | ".join(tail))
    return executable


def find_allure(home: Path | None = None, *, install: bool = True) -> AllureTool:
    """The Allure command line to use, installing Allure 3 with npm when that is the only way."""
    home = meshcheck_home() if home is None else home
    on_path = shutil.which("allure")
    if on_path is not None:
        version = _version_of(Path(on_path))
        if version.startswith("3."):
            return AllureTool(generation=3, executable=Path(on_path), version=version)
        if version.startswith("2.") and shutil.which("java") is not None:
            return AllureTool(generation=2, executable=Path(on_path), version=version)
    cached = _cached_allure3(home)
    if cached.exists() and shutil.which("node") is not None:
        version = _version_of(cached)
        if version.startswith("3."):
            return AllureTool(generation=3, executable=cached, version=version)
    if install and shutil.which("npm") is not None and shutil.which("node") is not None:
        executable = install_allure3(home)
        return AllureTool(generation=3, executable=executable, version=_version_of(executable))
    raise EnvironmentProblem(NO_ALLURE.format(cache=home / "allure3"))


def strip_analytics(report_dir: Path) -> int:
    """Remove the tracking snippet from every HTML page of a report; returns pages changed."""
    changed = 0
    for page in report_dir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        clean = _ANALYTICS.sub("", text)
        if clean != text:
            page.write_text(clean, encoding="utf-8")
            changed += 1
    return changed


@dataclass(frozen=True, kw_only=True)
class RenderedReport:
    report_dir: Path
    index: Path
    tool: AllureTool


def render_html(
    reports_dir: Path, *, single_file: bool = False, tool: AllureTool | None = None, name: str = "meshcheck"
) -> RenderedReport:
    results = reports_dir / RESULTS_DIR
    if not results.is_dir() or not any(results.glob("*-result.json")):
        raise EnvironmentProblem(
            f"no Allure results in {results}: run `pytest --meshcheck` first "
            "(or pass --reports-dir pointing at the run's reports directory)"
        )
    tool = find_allure() if tool is None else tool
    output = reports_dir / REPORT_DIR
    history = reports_dir / HISTORY_DIR
    history.mkdir(parents=True, exist_ok=True)
    if tool.generation == 3:
        command = _allure3_command(
            tool,
            reports_dir=reports_dir,
            results=results,
            output=output,
            history=history,
            single_file=single_file,
            name=name,
        )
    else:
        command = _allure2_command(
            tool, results=results, output=output, history=history, single_file=single_file
        )
    result = _run(command, timeout=GENERATE_TIMEOUT_S, cwd=reports_dir)
    index = output / "index.html"
    if result.returncode != 0 or not index.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-8:]
        raise InstallError(f"allure {tool.version} could not generate the report: " + " | ".join(tail))
    if tool.generation == 2:
        _keep_allure2_history(output, history)
    strip_analytics(output)
    return RenderedReport(report_dir=output, index=index, tool=tool)


def _allure3_command(
    tool: AllureTool,
    *,
    reports_dir: Path,
    results: Path,
    output: Path,
    history: Path,
    single_file: bool,
    name: str,
) -> list[str]:
    config = {
        "name": name,
        "output": str(output),
        "historyPath": str(history / "history.jsonl"),
        "plugins": {"awesome": {"options": {"singleFile": single_file, "reportName": name}}},
    }
    config_path = reports_dir / ".allurerc.json"
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(output, ignore_errors=True)
    return [str(tool.executable), "generate", "--config", str(config_path), str(results)]


def _allure2_command(
    tool: AllureTool, *, results: Path, output: Path, history: Path, single_file: bool
) -> list[str]:
    # Allure 2 reads history from <results>/history and writes the new one into <report>/history.
    if any(history.iterdir()):
        shutil.copytree(history, results / "history", dirs_exist_ok=True)
    command = [str(tool.executable), "generate", str(results), "-o", str(output), "--clean"]
    return [*command, "--single-file"] if single_file else command


def _keep_allure2_history(output: Path, history: Path) -> None:
    produced = output / "history"
    if produced.is_dir():
        shutil.copytree(produced, history, dirs_exist_ok=True)
