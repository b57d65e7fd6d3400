"""Everything meshcheck adds to allure-pytest's results: the run-level files Allure reads
(``environment.properties``, ``executor.json``, ``categories.json``), the labels that group checks
by suite, and the redaction of every result and container allure-pytest writes.

allure-pytest itself is only imported inside functions: this module is loaded by every run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pluggy
import pytest

from pytest_meshcheck import errors
from pytest_meshcheck.providers.base import ClusterHandle
from pytest_meshcheck.report.naming import OTHER_SUITE, SEVERITY_BY_SUITE, check_name, suite_of
from pytest_meshcheck.report.outcomes import (
    ASSERTION_FAILED,
    CONFIGURATION_ERROR,
    ENVIRONMENT_PROBLEM,
    HARNESS_ERROR,
    MESH_REGRESSION,
    UNEXPECTED_ERROR,
)
from pytest_meshcheck.report.redact import redact
from pytest_meshcheck.settings import Settings

EPIC = "meshcheck"

# --------------------------------------------------------------------------------------------
# environment.properties
# --------------------------------------------------------------------------------------------


def _escape_property(text: str, *, key: bool) -> str:
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif key and char in " =:#!":
            out.append("\\" + char)
        elif ord(char) > 126 or ord(char) < 32:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def format_properties(entries: Mapping[str, str]) -> str:
    """Java properties text (the format Allure reads), keys in the given order, redacted."""
    lines = [
        f"{_escape_property(key, key=True)}={_escape_property(redact(value), key=False)}"
        for key, value in entries.items()
        if value != ""
    ]
    return "\n".join(lines) + "\n"


def write_environment(results_dir: Path, entries: Mapping[str, str]) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "environment.properties"
    path.write_text(format_properties(entries), encoding="latin-1")
    return path


# --------------------------------------------------------------------------------------------
# executor.json and categories.json
# --------------------------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(json.dumps(data, indent=2)) + "\n", encoding="utf-8")
    return path


def _subclass_names(root: type[BaseException]) -> list[str]:
    names = []
    pending: list[type[BaseException]] = [root]
    while pending:
        cls = pending.pop()
        names.append(cls.__name__)
        pending.extend(cls.__subclasses__())
    return sorted(set(names))


def _message_naming(classes: Iterable[str]) -> str:
    # ``[\s\S]`` instead of ``.`` so multi-line messages match in Java (Allure 2) and JS (Allure 3).
    return r"[\s\S]*\b(" + "|".join(classes) + r")\b[\s\S]*"


def categories() -> list[dict[str, Any]]:
    """Allure categories, first match wins: a check's finding is a mesh regression; failures of
    the environment and of the harness are *broken*, each in its own bucket, never failed."""
    return [
        {
            "name": MESH_REGRESSION,
            "description": "A conformance check found the mesh misbehaving: the change under test is bad.",
            "matchedStatuses": ["failed"],
            "messageRegex": _message_naming(_subclass_names(errors.CheckFailed)),
        },
        {
            "name": ASSERTION_FAILED,
            "description": "A check's assertion failed without a meshcheck finding (a plain assert).",
            "matchedStatuses": ["failed"],
        },
        {
            "name": ENVIRONMENT_PROBLEM,
            "description": "Cluster unreachable, install failed, wait timed out: the gate could not decide.",
            "matchedStatuses": ["broken"],
            "messageRegex": _message_naming(_subclass_names(errors.EnvironmentProblem)),
        },
        {
            "name": CONFIGURATION_ERROR,
            "description": (
                "An option's value cannot be used (e.g. no saved benchmark of that name): fix the call."
            ),
            "matchedStatuses": ["broken"],
            "messageRegex": _message_naming(_subclass_names(errors.ConfigError)),
        },
        {
            "name": HARNESS_ERROR,
            "description": "A bug in pytest-meshcheck itself; please report it.",
            "matchedStatuses": ["broken"],
            "messageRegex": _message_naming(_subclass_names(errors.HarnessError)),
        },
        {
            "name": UNEXPECTED_ERROR,
            "description": "An exception outside meshcheck's error tree broke the check.",
            "matchedStatuses": ["broken"],
        },
    ]


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def add_labels(item: pytest.Item) -> None:
    """epic/feature/story/severity labels as allure-pytest markers, unless the test set its own."""
    existing = {
        mark.kwargs.get("label_type") for mark in item.iter_markers(name="allure_label")
    }
    suite = suite_of(item)
    wanted = {
        "epic": EPIC,
        "feature": suite,
        "story": check_name(item),
        "severity": SEVERITY_BY_SUITE.get(suite, SEVERITY_BY_SUITE[OTHER_SUITE]),
    }
    for label_type, value in wanted.items():
        if label_type not in existing:
            item.add_marker(pytest.mark.allure_label(value, label_type=label_type))


# --------------------------------------------------------------------------------------------
# Redaction of what allure-pytest writes
# --------------------------------------------------------------------------------------------


def _redact_attrs(obj: Any, seen: set[int]) -> None:
    """Redact every string held by an allure model object (results, steps, fixtures) in place."""
    if id(obj) in seen or not hasattr(obj, "__attrs_attrs__"):
        return
    seen.add(id(obj))
    for attribute in obj.__attrs_attrs__:
        value = getattr(obj, attribute.name)
        setattr(obj, attribute.name, _redacted_value(value, seen))


def _redacted_value(value: Any, seen: set[int]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redacted_value(element, seen) for element in value]
    if hasattr(value, "__attrs_attrs__"):
        _redact_attrs(value, seen)
    return value


#: allure-commons' hook project; the same marker as ``allure_commons.hookimpl`` without importing it.
allure_hookimpl = pluggy.HookimplMarker("allure")


class AllureResultRedactor:
    """Wraps allure-commons' ``report_result``/``report_container`` hooks: it scrubs the result
    objects before the file logger (a plain hook implementation) serialises them."""

    @allure_hookimpl(hookwrapper=True)
    def report_result(self, result: Any) -> Iterator[None]:
        _redact_attrs(result, set())
        yield

    @allure_hookimpl(hookwrapper=True)
    def report_container(self, container: Any) -> Iterator[None]:
        _redact_attrs(container, set())
        yield


def install_result_redaction(config: pytest.Config) -> None:
    """Register the redactor with allure-commons for this config's lifetime."""
    import allure_commons

    redactor = AllureResultRedactor()
    name = allure_commons.plugin_manager.register(redactor, "meshcheck-allure-redactor")

    def _unregister() -> None:
        allure_commons.plugin_manager.unregister(name=name)

    config.add_cleanup(_unregister)


# --------------------------------------------------------------------------------------------
# What goes into environment.properties
# --------------------------------------------------------------------------------------------


def environment_entries(
    settings: Settings, handle: ClusterHandle | None, versions: Mapping[str, str]
) -> dict[str, str]:
    """The facts a reader of the report needs to reproduce the run, in a stable order."""
    entries: dict[str, str] = {"meshcheck.cluster": settings.cluster}
    if handle is not None:
        entries["cluster.provider"] = handle.provider
        entries["cluster.name"] = handle.name
        entries["cluster.context"] = handle.context
        for key, value in sorted(handle.details.items()):
            entries[f"cluster.{key}"] = value
    entries["istio.requested_version"] = settings.istio_version
    entries["istio.install_method"] = settings.install_method
    entries["mesh.mtls_mode"] = settings.mtls_mode
    entries["bookinfo.namespace"] = settings.namespace
    for component, version in sorted(versions.items()):
        entries[f"{component}.version"] = version
    entries["meshcheck.suites"] = ",".join(settings.suites) or "none"
    entries["meshcheck.lab_faults"] = ",".join(settings.lab_faults)
    entries["load.users"] = str(settings.load_users)
    entries["load.spawn_rate"] = f"{settings.load_spawn_rate:g}"
    entries["load.duration_s"] = f"{settings.load_duration:g}"
    entries["load.workers"] = str(settings.load_workers)
    entries["load.rps"] = "closed loop" if settings.load_rps is None else f"{settings.load_rps:g}"
    entries["load.max_error_rate"] = f"{settings.max_error_rate:g}"
    entries["load.p95_budget_ms"] = f"{settings.p95_ms:g}"
    return entries
