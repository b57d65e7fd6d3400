"""The Prometheus workload: the real server, configured from the addon's ConfigMap, discovering
lab pods through the translated Kubernetes discovery and scraping them over loopback."""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from addonlab_support import (
    CONFIGMAPS,
    PODS,
    PROMETHEUS_IMAGE,
    MetricsServer,
    address,
    app_pod,
    ensure_namespace,
    pod_context,
    pod_from_template,
    poll,
    rendered,
)
from istio_series import Peer, exposition, key, request_labels

from pytest_meshcheck.lab.addons.prometheus import PrometheusBinaryMissing, PrometheusWorkload
from pytest_meshcheck.lab.store import Store

needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None, reason="no prometheus binary")
VALUES = {"NAMESPACE": "istio-system", "PROMETHEUS_IMAGE": PROMETHEUS_IMAGE, "SCRAPE_INTERVAL": "1s"}


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.load(reply)


def prometheus_store() -> tuple[Store, dict[str, Any]]:
    store = Store()
    ensure_namespace(store, "istio-system")
    ensure_namespace(store, "bookinfo")
    store.create(CONFIGMAPS, rendered("prometheus.yaml", "ConfigMap", **VALUES))
    deployment = rendered("prometheus.yaml", "Deployment", **VALUES)
    return store, deployment


@pytest.fixture
def prometheus() -> Iterator[tuple[PrometheusWorkload, Store]]:
    store, deployment = prometheus_store()
    ip = address()
    pod = pod_from_template(deployment, "prometheus-5d8f6c9b7-abcde", ip)
    store.create(PODS, pod)
    workload = PrometheusWorkload(
        pod_context(pod, container="prometheus-server", ip=ip, services={"store": store})
    )
    workload.start()
    try:
        yield workload, store
    finally:
        workload.stop()


@needs_prometheus
def test_scrapes_annotated_pods_with_relabelled_labels(prometheus: tuple[PrometheusWorkload, Store]) -> None:
    workload, store = prometheus
    productpage = Peer("productpage-v1", "bookinfo", "productpage", "v1")
    details = Peer("details-v1", "bookinfo", "details", "v1")
    series = {key(request_labels(productpage, details, "details", reporter="source")): 7.0}
    ips = {"details-v1-aaa": address(), "ratings-v1-bbb": address()}
    servers = [MetricsServer(ip, lambda: exposition("istio_requests_total", series)) for ip in ips.values()]
    for server in servers:
        server.start()
    try:
        store.create(
            PODS,
            app_pod("details-v1-aaa", "bookinfo", ips["details-v1-aaa"], {"app": "details", "version": "v1"}),
        )
        store.create(
            PODS,
            app_pod("ratings-v1-bbb", "bookinfo", ips["ratings-v1-bbb"], {"app": "ratings", "version": "v1"}),
        )
        # not annotated for scraping: must not become a target
        plain = app_pod("plain-ccc", "bookinfo", address(), {"app": "plain"})
        plain["metadata"]["annotations"] = {}
        store.create(PODS, plain)
        base = f"http://{workload.address}"

        def active_pod_targets() -> list[dict[str, Any]] | None:
            targets = get_json(f"{base}/api/v1/targets?state=active")["data"]["activeTargets"]
            pods = [t for t in targets if t["labels"].get("job") == "kubernetes-pods"]
            return pods if len(pods) == 2 and all(t["health"] == "up" for t in pods) else None

        targets = poll(active_pod_targets, timeout=30, what="both pod targets up")
        by_pod = {t["labels"]["pod"]: t for t in targets}
        assert set(by_pod) == {"details-v1-aaa", "ratings-v1-bbb"}
        details_target = by_pod["details-v1-aaa"]["labels"]
        assert details_target["namespace"] == "bookinfo"
        assert details_target["app"] == "details"
        assert details_target["version"] == "v1"
        assert details_target["instance"] == f"{ips['details-v1-aaa']}:15020"
        discovered = by_pod["ratings-v1-bbb"]["discoveredLabels"]
        assert discovered["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
        assert discovered["__meta_kubernetes_pod_annotationpresent_prometheus_io_port"] == "true"
        assert discovered["__meta_kubernetes_pod_phase"] == "Running"

        query = urllib.parse.quote('istio_requests_total{reporter="source",destination_app="details"}')

        def series_found() -> list[dict[str, Any]] | None:
            result = get_json(f"{base}/api/v1/query?query={query}")["data"]["result"]
            return result if len(result) == 2 else None

        result = poll(series_found, timeout=30, what="istio_requests_total from both pods")
        assert {r["metric"]["pod"] for r in result} == set(ips)
        assert all(r["value"][1] == "7" for r in result)
        assert all(r["metric"]["connection_security_policy"] == "mutual_tls" for r in result)
    finally:
        for server in servers:
            server.stop()


@needs_prometheus
def test_self_scrape_and_readiness_endpoint(prometheus: tuple[PrometheusWorkload, Store]) -> None:
    workload, _ = prometheus
    base = f"http://{workload.address}"
    poll(
        lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=5).status == 200,
        timeout=30,
        what="/-/ready",
    )

    def self_target_up() -> bool:
        targets = get_json(f"{base}/api/v1/targets")["data"]["activeTargets"]
        return any(t["labels"]["job"] == "prometheus" and t["health"] == "up" for t in targets)

    poll(self_target_up, timeout=30, what="prometheus scraping itself on the pod address")


@needs_prometheus
def test_stop_leaves_no_process_behind() -> None:
    store, deployment = prometheus_store()
    ip = address()
    pod = pod_from_template(deployment, "prometheus-5d8f6c9b7-stop1", ip)
    workload = PrometheusWorkload(
        pod_context(pod, container="prometheus-server", ip=ip, services={"store": store})
    )
    workload.start()
    pid = workload.pid
    assert pid is not None
    os.kill(pid, 0)  # running
    workload.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_missing_binary_fails_the_start_with_a_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    store, deployment = prometheus_store()
    ip = address()
    pod = pod_from_template(deployment, "prometheus-5d8f6c9b7-nobin", ip)
    workload = PrometheusWorkload(
        pod_context(pod, container="prometheus-server", ip=ip, services={"store": store})
    )
    with pytest.raises(PrometheusBinaryMissing, match="executable file not found in \\$PATH"):
        workload.start()


@needs_prometheus
def test_missing_configmap_fails_the_start() -> None:
    store, deployment = prometheus_store()
    store.delete(CONFIGMAPS, "istio-system", "prometheus")
    ip = address()
    pod = pod_from_template(deployment, "prometheus-5d8f6c9b7-nocm", ip)
    workload = PrometheusWorkload(
        pod_context(pod, container="prometheus-server", ip=ip, services={"store": store})
    )
    with pytest.raises(FileNotFoundError, match=r"/etc/config/prometheus\.yml"):
        workload.start()
