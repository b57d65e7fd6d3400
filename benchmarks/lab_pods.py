"""Pod start latency on the lab: from ``create`` of a Deployment's pods to their Ready condition.

Runs the lab's store, controllers, kubelet and network in-process (no API server, so the numbers
are the runtime's own: scheduling, the kubelet's sandbox and container start, status writes) and
prints percentiles for a cold batch and for a rolling restart.

    python benchmarks/lab_pods.py [--pods 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from pytest_meshcheck.lab.cluster import LabCore
from pytest_meshcheck.lab.store import GVR, Store

PODS = GVR.core("pods")
DEPLOYMENTS = GVR.parse("apps/v1/deployments")
IMAGE = "docker.io/curlimages/curl:8.11.1"


def _deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bench"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "main", "image": IMAGE, "command": ["sleep", "infinity"]}]},
            },
        },
    }


def _ready_latencies(store: Store, count: int, started: float, timeout: float) -> list[float]:
    """Seconds from ``started`` until each pod that did not exist before turned Ready."""
    existing = {pod["metadata"]["name"] for pod in store.list(PODS, "default")[0]}
    watch = store.watch(PODS, "default", label_selector="app=bench")
    ready: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(ready) < count and time.monotonic() < deadline:
            event = watch.next(timeout=1.0)
            if event is None:
                continue
            name = event.object["metadata"]["name"]
            conditions = (event.object.get("status") or {}).get("conditions") or []
            is_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            if is_ready and name not in existing and name not in ready:
                ready[name] = time.monotonic() - started
    finally:
        watch.close()
    if len(ready) < count:
        raise SystemExit(f"only {len(ready)}/{count} pods became Ready within {timeout:g}s")
    return sorted(ready.values())


def _report(label: str, values: list[float]) -> None:
    def pct(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    print(
        f"{label:<28} n={len(values):<4} p50={pct(0.5):8.1f} ms  p90={pct(0.9):8.1f} ms  "
        f"max={values[-1] * 1000:8.1f} ms  mean={statistics.mean(values) * 1000:8.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    lab = LabCore("bench")
    lab.start()
    try:
        if not lab.registry.knows(IMAGE):
            raise SystemExit(f"{IMAGE} is not registered in this tree; nothing to measure")
        started = time.monotonic()
        lab.store.create(DEPLOYMENTS, _deployment(args.pods))
        _report("cold start (create -> Ready)", _ready_latencies(lab.store, args.pods, started, args.timeout))
        deployment = lab.store.get(DEPLOYMENTS, "default", "bench")
        deployment["spec"]["template"]["metadata"]["annotations"] = {
            "kubectl.kubernetes.io/restartedAt": "now"
        }
        started = time.monotonic()
        lab.store.update(DEPLOYMENTS, deployment)
        _report("rolling restart (new pods)", _ready_latencies(lab.store, args.pods, started, args.timeout))
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
