"""The API checks use to leave evidence and numbers behind: ``attach_evidence``, ``record_figure``,
``record_version``, ``record_load_figures``, ``record_upgrade_result``, ``record_benchmark_result``.

Evidence is always written to ``<reports-dir>/evidence/`` (so it survives without Allure and the
summary can point at it) and, when allure-pytest is writing results, also attached to the running
test. Everything recorded during a test travels on that test's report (``meshcheck_facts``), which
is how an xdist worker's evidence and figures reach the controller that writes the summary.
Text is redacted before it is written; binary evidence that contains a secret is refused.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pytest_meshcheck.errors import HarnessError
from pytest_meshcheck.report.redact import REGISTRY, redact

EvidenceKind = Literal["json", "text", "png", "csv", "html"]

#: kind -> (file extension, name of the allure.attachment_type member)
KINDS: Mapping[str, tuple[str, str]] = {
    "json": ("json", "JSON"),
    "text": ("txt", "TEXT"),
    "png": ("png", "PNG"),
    "csv": ("csv", "CSV"),
    "html": ("html", "HTML"),
}

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Where run-level evidence (recorded outside any test) goes, under ``evidence/``.
RUN_EVIDENCE_DIR = "_run"


@dataclass(frozen=True, kw_only=True)
class EvidenceRecord:
    """One piece of evidence: ``path`` is relative to the reports dir ("" when no run is active)."""

    name: str
    kind: str
    path: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "path": self.path, "size": self.size}


@dataclass(kw_only=True)
class FactSheet:
    """What was recorded during one test phase, or outside any test. JSON-ready via ``to_json``."""

    evidence: list[EvidenceRecord] = field(default_factory=list)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    load: dict[str, Any] | None = None
    upgrade: dict[str, Any] | None = None
    benchmark: dict[str, Any] | None = None

    def is_empty(self) -> bool:
        return not (
            self.evidence or self.figures or self.versions or self.load or self.upgrade or self.benchmark
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "evidence": [record.to_json() for record in self.evidence],
            "figures": dict(self.figures),
            "versions": dict(self.versions),
            "load": self.load,
            "upgrade": self.upgrade,
            "benchmark": self.benchmark,
        }


def _slug(text: str, limit: int = 80) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return (slug or "item")[:limit]


class Recorder:
    """Process-wide recorder; the report plugin tells it where files go and which test runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reports_dir: Path | None = None
        self.allure_active = False
        self.writer_id = "main"
        self._current_test: str | None = None
        self._test_facts = FactSheet()
        self._run_facts = FactSheet()
        self._counters: dict[str, int] = {}

    def configure(self, *, reports_dir: Path | None, allure_active: bool, writer_id: str) -> None:
        with self._lock:
            self.reports_dir = reports_dir
            self.allure_active = allure_active
            self.writer_id = writer_id
            self._current_test = None
            self._test_facts = FactSheet()
            self._run_facts = FactSheet()
            self._counters = {}

    def begin_test(self, nodeid: str) -> None:
        with self._lock:
            self._current_test = nodeid
            self._test_facts = FactSheet()

    def end_test(self) -> None:
        with self._lock:
            self._current_test = None

    @property
    def in_test(self) -> bool:
        return self._current_test is not None

    def take_test_facts(self) -> FactSheet:
        """Facts recorded for the running test since the last take (one take per report)."""
        with self._lock:
            facts, self._test_facts = self._test_facts, FactSheet()
            return facts

    def take_run_facts(self) -> FactSheet:
        with self._lock:
            facts, self._run_facts = self._run_facts, FactSheet()
            return facts

    def _sheet(self) -> FactSheet:
        return self._test_facts if self._current_test is not None else self._run_facts

    # ----------------------------------------------------------------------------------------

    def _target(self, name: str, extension: str) -> tuple[Path, str] | None:
        if self.reports_dir is None:
            return None
        folder = _slug(self._current_test) if self._current_test else f"{RUN_EVIDENCE_DIR}/{self.writer_id}"
        index = self._counters.get(folder, 0) + 1
        self._counters[folder] = index
        relative = f"evidence/{folder}/{index:02d}-{_slug(name, 60)}.{extension}"
        return self.reports_dir / relative, relative

    def attach(self, name: str, content: Any, kind: str) -> EvidenceRecord:
        if not name.strip():
            raise HarnessError("attach_evidence needs a non-empty name")
        if kind not in KINDS:
            raise HarnessError(f"attach_evidence: unknown kind {kind!r}; accepted: {', '.join(KINDS)}")
        name = redact(name)
        data = _encode(name, content, kind)
        extension, _ = KINDS[kind]
        with self._lock:
            target = self._target(name, extension)
            in_test = self._current_test is not None
            path = ""
            if target is not None:
                file, path = target
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_bytes(data)
            record = EvidenceRecord(name=name, kind=kind, path=path, size=len(data))
            self._sheet().evidence.append(record)
        if target is not None and in_test and self.allure_active:
            _attach_to_allure(target[0], name, kind)
        return record

    def figure(self, name: str, value: float, unit: str) -> None:
        with self._lock:
            self._sheet().figures[name] = {"value": value, "unit": unit}

    def version(self, component: str, version: str) -> None:
        with self._lock:
            self._sheet().versions[component] = redact(version)

    def load(self, figures: Mapping[str, Any]) -> None:
        with self._lock:
            self._sheet().load = _json_ready(figures)

    def upgrade(self, result: Mapping[str, Any]) -> None:
        with self._lock:
            self._sheet().upgrade = _json_ready(result)

    def benchmark(self, result: Mapping[str, Any]) -> None:
        with self._lock:
            self._sheet().benchmark = _json_ready(result)


def _json_ready(data: Mapping[str, Any]) -> dict[str, Any]:
    """A redacted deep copy that survives JSON (and so the xdist hand-over) unchanged."""
    loaded: dict[str, Any] = json.loads(redact(json.dumps(dict(data), default=str)))
    return loaded


def _encode(name: str, content: Any, kind: str) -> bytes:
    if kind == "png":
        if not isinstance(content, bytes | bytearray) or not bytes(content).startswith(PNG_SIGNATURE):
            raise HarnessError(f"attach_evidence {name!r}: kind png needs the bytes of a PNG image")
        data = bytes(content)
        leaked = REGISTRY.found_in(data)
        if leaked:
            raise HarnessError(
                f"attach_evidence {name!r}: the image contains a secret ({', '.join(leaked)}) and "
                "binary data cannot be redacted; render it without the secret"
            )
        return data
    if kind == "json" and not isinstance(content, str | bytes | bytearray):
        text = json.dumps(content, indent=2, sort_keys=True, default=str)
    elif isinstance(content, bytes | bytearray):
        text = bytes(content).decode("utf-8", errors="replace")
    elif isinstance(content, str):
        text = content
    else:
        raise HarnessError(f"attach_evidence {name!r}: kind {kind} needs str or bytes, got {type(content)}")
    return redact(text).encode("utf-8")


def _attach_to_allure(file: Path, name: str, kind: str) -> None:
    import allure

    attachment_type = getattr(allure.attachment_type, KINDS[kind][1])
    allure.attach.file(str(file), name=name, attachment_type=attachment_type)  # type: ignore[no-untyped-call]


RECORDER = Recorder()


def attach_evidence(name: str, content: Any, kind: EvidenceKind = "text") -> EvidenceRecord:
    """Attach evidence to the running check (or to the run, outside a check).

    ``content``: for ``json`` any JSON-serialisable object (or its text); for ``text``, ``csv`` and
    ``html`` a str or UTF-8 bytes; for ``png`` the image bytes (see ``report.plots``).
    """
    return RECORDER.attach(name, content, kind)


def record_figure(name: str, value: float, unit: str = "") -> None:
    """A measured number for the summary and the terminal table (never an Allure parameter:
    parameters are part of a test's identity, and a changing number would break its history)."""
    RECORDER.figure(name, float(value), unit)


def record_version(component: str, version: str) -> None:
    """A version seen on the cluster (istio, proxy, kiali, prometheus ...) for the environment."""
    RECORDER.version(component, version)


def record_load_figures(figures: Mapping[str, Any]) -> None:
    """The load run's headline figures (requests, failures, RPS, percentiles) for the summary."""
    RECORDER.load(figures)


def record_upgrade_result(result: Mapping[str, Any]) -> None:
    """The upgrade suite's outcome (from/to versions, errors during the upgrade) for the summary."""
    RECORDER.upgrade(result)


def record_benchmark_result(result: Mapping[str, Any]) -> None:
    """The benchmark suite's outcome (metrics, load shape, saved name, comparison) for the summary."""
    RECORDER.benchmark(result)


def reports_dir() -> Path | None:
    """The run's reports directory as the report layer resolved it (None outside a gate run), for
    output that must sit beside the reports, such as saved benchmark baselines."""
    return RECORDER.reports_dir


def describe_check(html: str) -> None:
    """Replace the running check's Allure description (its docstring by default) with ``html``,
    the first thing a reader sees on the check's page: for a check whose result is a table of
    numbers, the table itself. Redacted first; a no-op when Allure is not writing results."""
    if not (RECORDER.allure_active and RECORDER.in_test):
        return
    import allure

    allure.dynamic.description_html(redact(html))  # type: ignore[no-untyped-call]
