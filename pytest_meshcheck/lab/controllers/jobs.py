"""The Job controller: runs a pod template to ``completions`` successes, ``parallelism`` at a time.

The subset of kube-controller-manager's Job controller that run-to-completion work needs (load
generators, one-off probes): non-indexed completions, ``parallelism``, ``backoffLimit`` (failed
pods beyond it fail the Job), ``activeDeadlineSeconds`` (active pods are deleted when it passes),
and the status clients wait on: ``active``/``ready``/``succeeded``/``failed`` counts, ``startTime``,
``completionTime`` and the ``Complete``/``Failed`` conditions. Pods carry the ``job-name`` and
``controller-uid`` labels (both spellings) so ``kubectl logs job/NAME`` and selectors find them.
Not modelled: indexed completions, pod failure policies, suspend, ``ttlSecondsAfterFinished``.
"""

from __future__ import annotations

import copy
import secrets
import time
from typing import Any

from pytest_meshcheck.lab.controllers.base import (
    Controller,
    Key,
    KeyMapper,
    controlled_by,
    own_key,
    owner_keys,
)
from pytest_meshcheck.lab.controllers.events import EventRecorder
from pytest_meshcheck.lab.controllers.pods import is_ready
from pytest_meshcheck.lab.errors import AlreadyExists, NotFound, StoreError
from pytest_meshcheck.lab.runtime.timefmt import parse_rfc3339, rfc3339
from pytest_meshcheck.lab.store import GVR, Store

JOBS = GVR.parse("batch/v1/jobs")
PODS = GVR.core("pods")
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
#: The API server's default ``backoffLimit``.
DEFAULT_BACKOFF_LIMIT = 6


def _phase(pod: dict[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _finished(job: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


class JobController(Controller):
    name = "job-controller"
    primary = JOBS

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.events = EventRecorder(store, "job-controller")

    def watches(self) -> list[tuple[GVR, KeyMapper]]:
        return [(JOBS, own_key), (PODS, owner_keys("Job"))]

    def reconcile(self, key: Key) -> float | None:
        job = self.live(key)
        if job is None:
            return None
        everything, _ = self.store.list(PODS, job["metadata"]["namespace"])
        pods = controlled_by(job, everything)
        active = [
            p
            for p in pods
            if not p["metadata"].get("deletionTimestamp") and _phase(p) not in ("Succeeded", "Failed")
        ]
        succeeded = sum(1 for p in pods if _phase(p) == "Succeeded")
        failed = sum(1 for p in pods if _phase(p) == "Failed")
        spec = job.get("spec") or {}
        completions = int(spec.get("completions") or 1)
        parallelism = int(spec["parallelism"]) if spec.get("parallelism") is not None else 1
        backoff_limit = int(spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT))
        status = dict(job.get("status") or {})
        start = status.get("startTime") or rfc3339()
        condition: tuple[str, str, str] | None = None
        recheck: float | None = None
        if _finished(job):
            pass
        elif failed > backoff_limit:
            condition = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif succeeded >= completions:
            condition = ("Complete", "", "")
        else:
            deadline = spec.get("activeDeadlineSeconds")
            elapsed = time.time() - parse_rfc3339(start)
            if deadline is not None and elapsed >= float(deadline):
                condition = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
            else:
                missing = min(parallelism, completions - succeeded) - len(active)
                for _ in range(max(0, missing)):
                    created = self._create_pod(job)
                    if created is not None:
                        active.append(created)
                if deadline is not None:
                    recheck = max(0.1, float(deadline) - elapsed)
        if condition is not None and condition[0] == "Failed":
            for pod in active:
                self._delete_pod(job, pod)
            active = []
            self.events.warning(job, condition[1], condition[2])
        elif condition is not None:
            self.events.normal(job, "Completed", "Job completed")
        self._write_status(
            job, status, start=start, active=active, succeeded=succeeded, failed=failed, condition=condition
        )
        return recheck

    def _create_pod(self, job: dict[str, Any]) -> dict[str, Any] | None:
        meta = job["metadata"]
        template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        pod_meta = dict(template.get("metadata") or {})
        pod_meta.pop("name", None)
        labels = dict(pod_meta.get("labels") or {})
        for prefix in ("", "batch.kubernetes.io/"):
            labels[f"{prefix}job-name"] = meta["name"]
            labels[f"{prefix}controller-uid"] = meta.get("uid", "")
        pod_meta.update(
            labels=labels,
            namespace=meta["namespace"],
            ownerReferences=[
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        )
        for _ in range(5):
            suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
            pod_meta["name"] = f"{meta['name']}-{suffix}"
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": dict(pod_meta),
                "spec": template.get("spec") or {},
            }
            try:
                created = self.store.create(PODS, pod, namespace=meta["namespace"])
            except AlreadyExists:
                continue
            except StoreError as exc:
                self.events.warning(job, "FailedCreate", f"Error creating: {exc}")
                return None
            self.events.normal(job, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
            return created
        return None

    def _delete_pod(self, job: dict[str, Any], pod: dict[str, Any]) -> None:
        try:
            self.store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        except NotFound:
            return
        self.events.normal(job, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")

    def _write_status(
        self,
        job: dict[str, Any],
        previous: dict[str, Any],
        *,
        start: str,
        active: list[dict[str, Any]],
        succeeded: int,
        failed: int,
        condition: tuple[str, str, str] | None,
    ) -> None:
        status: dict[str, Any] = {
            **previous,
            "startTime": start,
            "active": len(active),
            "ready": sum(1 for pod in active if is_ready(pod)),
            "succeeded": succeeded,
            "failed": failed,
        }
        status = {k: v for k, v in status.items() if v or k in ("startTime", "conditions", "completionTime")}
        if condition is not None:
            kind, reason, message = condition
            now = rfc3339()
            entry: dict[str, Any] = {
                "type": kind,
                "status": "True",
                "lastProbeTime": now,
                "lastTransitionTime": now,
            }
            if reason:
                entry.update(reason=reason, message=message)
            status["conditions"] = [*(previous.get("conditions") or []), entry]
            if kind == "Complete":
                status["completionTime"] = now
        if status == previous:
            return
        latest = self.store.get(JOBS, job["metadata"]["namespace"], job["metadata"]["name"])
        latest["status"] = status
        self.store.update(JOBS, latest, subresource="status")
