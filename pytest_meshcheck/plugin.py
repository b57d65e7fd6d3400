"""pytest hook wiring for pytest-meshcheck: options, markers, suite collection, xdist hand-off.

This module is loaded through the ``pytest11`` entry point by every pytest run in every
environment that has the plugin installed, so it only wires: without ``--meshcheck`` it adds
options and fixtures and nothing else, and it imports no heavy dependency at load time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_meshcheck import hookspecs
from pytest_meshcheck.errors import ConfigError
from pytest_meshcheck.fixtures import (  # noqa: F401  (fixtures are registered by being here)
    meshcheck_bookinfo,
    meshcheck_cluster,
    meshcheck_gateway_url,
    meshcheck_kiali,
    meshcheck_kube,
    meshcheck_mesh,
    meshcheck_namespace,
    meshcheck_probe,
    meshcheck_prometheus,
    meshcheck_settings,
)
from pytest_meshcheck.providers.base import Provider
from pytest_meshcheck.resources import suites_dir
from pytest_meshcheck.session import SESSION_PLUGIN_NAME, WORKERINPUT_SETTINGS, MeshcheckSession
from pytest_meshcheck.settings import OPTIONS, SUITES, Settings, resolve

SUITE_HELP: dict[str, str] = {
    "injection": "sidecar injection: every meshed pod has istio-proxy, new pods get injected",
    "mtls": "mTLS enforcement: plaintext refused under STRICT, SPIFFE identities, mTLS telemetry",
    "gateway": "ingress gateway: reachable, routes Bookinfo, 404 for unknown paths",
    "graph": "Kiali service graph: the expected edges, with traffic and mTLS",
    "versions": "control-plane and proxy versions, skew and connectivity",
    "load": "Locust load through the gateway within the error-rate and latency budget",
    "upgrade": "traffic survives an Istio upgrade within the error budget",
    "benchmark": "mesh latency, throughput and observability lag, saved and compared",
}


def _dest(field_name: str) -> str:
    return f"meshcheck_opt_{field_name}"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("meshcheck", "service-mesh conformance gate (pytest-meshcheck)")
    for opt in OPTIONS:
        shown_default = opt.default if opt.default != "" else "unset"
        help_text = f"{opt.help} [env {opt.env}, ini {opt.ini}; default: {shown_default}]"
        help_text = help_text.replace("%", "%%")
        if opt.flag:
            group.addoption(
                opt.cli,
                action="store_const",
                const="true",
                default=None,
                dest=_dest(opt.field),
                help=help_text,
            )
        else:
            group.addoption(
                opt.cli,
                action="store",
                default=None,
                dest=_dest(opt.field),
                metavar=opt.metavar or "VALUE",
                help=help_text,
            )
        parser.addini(opt.ini, help=opt.help, type="string", default=None)


def _ini_values(config: pytest.Config) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for opt in OPTIONS:
        value = config.getini(opt.ini)
        values[opt.field] = None if value is None else str(value)
    return values


def _resolve_settings(config: pytest.Config) -> Settings:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and WORKERINPUT_SETTINGS in workerinput:
        return Settings.from_json(workerinput[WORKERINPUT_SETTINGS])
    cli = {opt.field: config.getoption(_dest(opt.field)) for opt in OPTIONS}
    return resolve(cli=cli, env=os.environ, ini=_ini_values(config))


def _usage_error(message: str) -> pytest.UsageError:
    return pytest.UsageError(f"meshcheck: {message}")


def _validate_lab_faults(settings: Settings) -> None:
    if not settings.lab_faults:
        return
    opt = "--meshcheck-lab-faults (env MESHCHECK_LAB_FAULTS, ini meshcheck_lab_faults)"
    if settings.cluster != "lab":
        raise _usage_error(
            f"{opt}: faults can only be injected into the lab, but --meshcheck-cluster is "
            f"{settings.cluster!r}; drop the faults or use --meshcheck-cluster=lab"
        )
    from pytest_meshcheck.providers.registry import lab_fault_names

    known = lab_fault_names()
    unknown = [name for name in settings.lab_faults if name not in known]
    if unknown:
        raise _usage_error(f"{opt}: unknown fault(s) {', '.join(unknown)}; accepted: {', '.join(known)}")


def _validate_upgrade_under_xdist(config: pytest.Config, settings: Settings) -> None:
    """The upgrade changes the mesh every other suite looks at; serially it runs after them (see
    ``pytest_collection_modifyitems``), but pytest-xdist would run it beside them."""
    if not settings.upgrade_to or "upgrade" not in settings.suites or len(settings.suites) == 1:
        return
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    if getattr(config.option, "dist", "no") == "no":
        return
    others = ", ".join(s for s in settings.suites if s != "upgrade")
    raise _usage_error(
        "--meshcheck-upgrade-to with pytest-xdist: the upgrade would change the mesh while "
        f"{others} run beside it on other workers; run the upgrade gate on its own "
        "(--meshcheck-suites=upgrade), or the suites without -n"
    )


def _cli_given(config: pytest.Config) -> set[str]:
    return {opt.cli for opt in OPTIONS if config.getoption(_dest(opt.field)) is not None}


def _enabled_requested(config: pytest.Config) -> bool:
    """Whether --meshcheck is asked for from any source, without resolving the rest.

    A switch value that is not clearly "off" counts as asked for, so ``MESHCHECK=maybe`` surfaces
    as a usage error instead of silently running nothing.
    """
    switch = OPTIONS[0]
    for raw in (config.getoption(_dest(switch.field)), os.environ.get(switch.env), config.getini(switch.ini)):
        if raw is not None:
            return str(raw).strip().lower() not in {"0", "false", "no", "off", ""}
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for suite in SUITES:
        config.addinivalue_line("markers", f"meshcheck_{suite}: {SUITE_HELP[suite]}")
    try:
        settings = _resolve_settings(config)
    except ConfigError as exc:
        if _enabled_requested(config) or exc.option in _cli_given(config):
            raise _usage_error(exc.message) from None
        return  # inert run: a bad meshcheck value in the environment must not break other tests
    if not settings.enabled:
        return
    _validate_lab_faults(settings)
    _validate_upgrade_under_xdist(config, settings)
    session = MeshcheckSession(config, settings)
    config.pluginmanager.register(session, SESSION_PLUGIN_NAME)
    from pytest_meshcheck.report.setup import configure_reports

    configure_reports(config, session)
    if settings.suites:
        shipped = str(suites_dir())
        if shipped not in config.args:
            config.args.append(shipped)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect only the shipped suites that ``--meshcheck-suites`` selects."""
    session = config.pluginmanager.get_plugin(SESSION_PLUGIN_NAME)
    if session is None or collection_path.parent != suites_dir():
        return None
    name = collection_path.name
    if name.startswith("test_") and name.endswith(".py"):
        return name[len("test_") : -len(".py")] not in session.settings.suites
    return None


@pytest.hookimpl(trylast=True)
def pytest_meshcheck_make_provider(config: pytest.Config, settings: Settings) -> Provider:
    from pytest_meshcheck.providers.registry import make_builtin_provider

    return make_builtin_provider(settings)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    session = config.pluginmanager.get_plugin(SESSION_PLUGIN_NAME)
    if session is None:
        return None
    lines = ["meshcheck: on (settings: value and where it came from)"]
    for label, value, source in session.settings.describe():
        if label == "meshcheck":
            continue
        lines.append(f"  {label}: {value} (from {source})")
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the shipped suites in their canonical order (injection first, upgrade and benchmark
    last) after the user's own tests; the order within each file is kept."""
    session = config.pluginmanager.get_plugin(SESSION_PLUGIN_NAME)
    if session is None:
        return
    shipped = suites_dir()
    rank = {f"test_{suite}.py": index for index, suite in enumerate(SUITES)}

    def key(item: pytest.Item) -> tuple[int, int]:
        path = item.path
        if path.parent == shipped and path.name in rank:
            return (1, rank[path.name])
        return (0, 0)

    items.sort(key=key)
    if not session.settings.upgrade_to:
        # Skip before any fixture runs: without a target there is nothing to provision for.
        skip = pytest.mark.skip(
            reason="no --meshcheck-upgrade-to: the upgrade gate has nothing to upgrade to"
        )
        for item in items:
            if item.path.parent == shipped and item.path.name == "test_upgrade.py":
                item.add_marker(skip)
