"""Locust as Jobs in the cluster, next to the gateway: the same handle as ``LoadRun``.

``start`` creates the run's own namespace, ConfigMap and Jobs (see ``manifests.py``) and returns;
``wait`` polls the Jobs; ``stop`` asks the master (or standalone) process to quit the way a
terminal would, by ``kill -TERM 1`` in its container, so it still prints its final report; the
run then ends as a completed Job. Results are read over the Kubernetes API only: each pod's log
carries its process's final report between markers (``_meshcheck_report.py``: on the master also
Locust's final stats and stats history, on every process its CPU time), which survives the pod's
exit until the namespace is deleted. The stats and history are kept as the files a local run
writes (``locust.json``, ``locust_stats_history.csv``) and the result is built from them by the
same ``assemble.build_result``. The namespace is deleted once the logs are read,
also when the run failed or the harness is interrupted, and each Job has an
``activeDeadlineSeconds`` so a generator never outlives a harness that died.

Waits have timeouts; a timeout or a failed Job raises ``LoadError`` naming what was awaited, with
the namespace's events, pod states and logs attached.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pytest_meshcheck.errors import LoadError, MeshcheckError
from pytest_meshcheck.kube.apply import apply_documents
from pytest_meshcheck.kube.client import Kube, is_not_found
from pytest_meshcheck.kube.diagnostics import collect
from pytest_meshcheck.kube.exec import exec_in_pod
from pytest_meshcheck.load.assemble import ProcessOutcome, build_result
from pytest_meshcheck.load.command import OutputFiles
from pytest_meshcheck.load.locust_output import (
    account_from_report,
    reports_in_log,
    stats_from_entries,
    write_history_csv,
)
from pytest_meshcheck.load.manifests import CONTAINER, ROLE_LABEL, RUN_LABEL, run_manifests
from pytest_meshcheck.load.results import LoadArtifacts, LoadResult
from pytest_meshcheck.load.spec import LoadSpec

#: Seconds for the pods to be scheduled, pull the image and start Locust, beyond the run itself.
STARTUP_ALLOWANCE_S = 120.0
#: Seconds the master gets after ``kill -TERM`` to report and end its Job.
STOP_GRACE_S = 30.0
POLL_S = 1.0


@dataclass(frozen=True, kw_only=True)
class PodOutcome:
    """One generator pod as it ended: its role, exit code and log."""

    name: str
    role: str
    exit_code: int | None
    log: str


def _job_state(job: dict[str, Any]) -> str:
    """``Complete``, ``Failed`` or ``running``."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return str(condition["type"])
    return "running"


class InClusterLoadRun:
    """A load run whose Locust processes are pods of Jobs in the cluster."""

    def __init__(
        self, spec: LoadSpec, *, kube: Kube, image: str, target_url: str, namespace: str = ""
    ) -> None:
        self.spec = spec
        self.kube = kube
        self.image = image
        self.target_url = target_url.rstrip("/")
        self.run_id = secrets.token_hex(3)
        self.namespace = namespace or f"meshcheck-load-{self.run_id}"
        self.output_dir = spec.output_dir.resolve()
        self._files = OutputFiles(directory=self.output_dir)
        self._started = False
        self._ended = False
        self._stop_requested = False
        self._outcomes: tuple[PodOutcome, ...] = ()
        self._failure: LoadError | None = None
        self._result: LoadResult | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> InClusterLoadRun:
        if self._started:
            raise LoadError("this load run was already started; create a new run for another one")
        self._started = True
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._files.clear()
        docs = run_manifests(
            self.spec,
            namespace=self.namespace,
            run_id=self.run_id,
            image=self.image,
            target_url=self.target_url,
        )
        try:
            apply_documents(self.kube, docs)
        except BaseException:
            self._delete_namespace()
            raise
        return self

    @property
    def started(self) -> bool:
        return self._started

    @property
    def running(self) -> bool:
        return self._started and not self._ended

    def default_timeout(self) -> float:
        spec = self.spec
        connect = spec.workers_connect_timeout_s if spec.workers else 0.0
        return STARTUP_ALLOWANCE_S + connect + spec.run_time_s + spec.stop_timeout_s + STOP_GRACE_S

    def _jobs(self) -> dict[str, dict[str, Any]]:
        resource = self.kube.dynamic.resources.get(api_version="batch/v1", kind="Job")
        items = resource.get(namespace=self.namespace, label_selector=f"{RUN_LABEL}={self.run_id}").to_dict()
        return {str(job["metadata"]["name"]): job for job in items.get("items") or []}

    def _lead(self) -> str:
        return "master" if self.spec.workers else "standalone"

    def _done(self) -> tuple[bool, str]:
        jobs = self._jobs()
        states = {name: _job_state(job) for name, job in jobs.items()}
        summary = ", ".join(f"{name} {state}" for name, state in sorted(states.items())) or "no Jobs"
        if states.get(self._lead(), "running") == "running":
            failed = [name for name, state in states.items() if state == "Failed"]
            return bool(failed), summary
        return all(state != "running" for state in states.values()), summary

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the Jobs to end by themselves; False if they still run after ``timeout``."""
        if not self._started:
            raise LoadError("the load run has not been started")
        if self._ended:
            return True
        deadline = time.monotonic() + (self.default_timeout() if timeout is None else timeout)
        while True:
            done, _ = self._done()
            if done:
                self._end()
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)

    def stop(self) -> None:
        """Ask the lead process to quit (it reports first), wait for the Jobs, then clean up.

        Safe at any time and more than once; whatever happens, the namespace is deleted."""
        if not self._started or self._ended:
            return
        try:
            done, summary = self._done()
            if not done:
                self._stop_requested = True
                self._signal_lead()
                deadline = time.monotonic() + STOP_GRACE_S
                while not done and time.monotonic() < deadline:
                    time.sleep(POLL_S)
                    done, summary = self._done()
                if not done:
                    self._failure = LoadError(
                        f"in-cluster Locust did not end within {STOP_GRACE_S:.0f}s of being told to stop "
                        f"({summary})",
                        evidence=self._evidence(),
                    )
        except MeshcheckError as exc:
            self._failure = LoadError(
                f"stopping in-cluster Locust failed: {exc.message}", evidence=exc.evidence
            )
        finally:
            self._end()

    def _signal_lead(self) -> None:
        for pod in self._pods(role=self._lead()):
            if (pod.status.phase or "") in ("Running", "Pending"):
                with contextlib.suppress(MeshcheckError):
                    exec_in_pod(
                        self.kube,
                        self.namespace,
                        pod.metadata.name,
                        ["sh", "-c", "kill -TERM 1"],
                        container=CONTAINER,
                        timeout=30,
                    )

    def __enter__(self) -> InClusterLoadRun:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- collecting -----------------------------------------------------------------------------

    def _pods(self, role: str = "") -> list[Any]:
        selector = f"{RUN_LABEL}={self.run_id}" + (f",{ROLE_LABEL}={role}" if role else "")
        pods: list[Any] = self.kube.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        return pods

    def _end(self) -> None:
        """Read every pod's log and exit code, keep them as files, delete the namespace."""
        if self._ended:
            return
        try:
            self._outcomes = self._read_outcomes()
        except Exception as exc:
            self._failure = self._failure or LoadError(
                f"could not read the in-cluster Locust pods' logs: {type(exc).__name__}: {exc}",
                evidence=self._evidence(),
            )
        finally:
            self._ended = True
            self._delete_namespace()

    def _read_outcomes(self) -> tuple[PodOutcome, ...]:
        outcomes = []
        for pod in sorted(self._pods(), key=lambda p: p.metadata.name):
            name = pod.metadata.name
            role = (pod.metadata.labels or {}).get(ROLE_LABEL, "")
            code = None
            for status in pod.status.container_statuses or []:
                if status.name == CONTAINER and status.state and status.state.terminated:
                    code = status.state.terminated.exit_code
            try:
                log = self.kube.core.read_namespaced_pod_log(name, self.namespace, container=CONTAINER) or ""
            except Exception as exc:
                log = f"(no log: {type(exc).__name__}: {exc})"
            self._files.log(name).write_text(log)
            outcomes.append(PodOutcome(name=name, role=role, exit_code=code, log=log))
        return tuple(outcomes)

    def _evidence(self) -> dict[str, str]:
        try:
            return collect(self.kube, self.namespace, label_selector=f"{RUN_LABEL}={self.run_id}")
        except Exception as exc:
            return {"diagnostics-error": f"{type(exc).__name__}: {exc}"}

    def _delete_namespace(self) -> None:
        try:
            self.kube.core.delete_namespace(self.namespace)
        except Exception as exc:
            if not is_not_found(exc):
                raise LoadError(f"could not delete the load namespace {self.namespace}: {exc}") from exc

    # -- outcome --------------------------------------------------------------------------------

    def result(self) -> LoadResult:
        """What the run measured; ``LoadError`` when a generator failed or reported nothing."""
        if self._result is not None:
            return self._result
        if not self._ended:
            raise LoadError("the load run is still going: call wait() or stop() before result()")
        if self._failure is not None:
            raise self._failure
        evidence = {f"locust pod {o.name} log": o.log[-4000:] for o in self._outcomes}
        reports: dict[str, dict[str, Any]] = {}
        for outcome in self._outcomes:
            if outcome.exit_code not in (0, None) or not outcome.log:
                raise LoadError(
                    f"in-cluster Locust {outcome.role} pod {outcome.name} exited with code "
                    f"{outcome.exit_code}",
                    evidence=evidence,
                )
            found = reports_in_log(outcome.log, source=f"pod {outcome.name}")
            if found:
                reports[outcome.name] = found[-1]
        lead = [o for o in self._outcomes if o.role == self._lead()]
        if len(lead) != 1 or lead[0].name not in reports or "stats" not in reports[lead[0].name]:
            raise LoadError(
                f"in-cluster Locust {self._lead()} printed no final report in {self.namespace}",
                evidence=evidence,
            )
        lead_report = reports[lead[0].name]
        self._files.json.write_text(json.dumps(lead_report["stats"]))
        history = write_history_csv(lead_report, self._files.history_csv, source=f"pod {lead[0].name}")
        order = {"master": 0, "standalone": 0, "worker": 1}
        self._result = build_result(
            self.spec,
            target_url=self.target_url,
            table=stats_from_entries(lead_report["stats"], source=f"pod {lead[0].name}"),
            accounts={name: account_from_report(r, source=f"pod {name}") for name, r in reports.items()},
            processes=tuple(
                ProcessOutcome(role=o.role, generator=o.name, exit_code=o.exit_code)
                for o in sorted(self._outcomes, key=lambda o: (order.get(o.role, 2), o.name))
            ),
            artifacts=LoadArtifacts(
                stats_csv=None,
                history_csv=self._files.history_csv if history else None,
                failures_csv=None,
                exceptions_csv=None,
                json=self._files.json,
                html=None,
                logs=tuple(self._files.log(o.name) for o in self._outcomes),
            ),
            stopped_early=self._stop_requested,
            origin=f"in-cluster (Jobs in namespace {self.namespace}, image {self.image})",
        )
        return self._result
