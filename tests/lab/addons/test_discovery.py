"""Kubernetes discovery as Prometheus labels it, and the config translation around it."""

from __future__ import annotations

import pytest
import yaml
from addonlab_support import PROMETHEUS_IMAGE, app_pod, rendered

from pytest_meshcheck.lab.addons.discovery import endpoints_targets, pod_targets, sanitize, service_targets
from pytest_meshcheck.lab.addons.promconfig import SdSpec, UnsupportedDiscovery, translate
from pytest_meshcheck.lab.cluster import default_registry

VALUES = {"NAMESPACE": "istio-system", "PROMETHEUS_IMAGE": PROMETHEUS_IMAGE, "SCRAPE_INTERVAL": "1s"}


def test_label_names_are_sanitised_like_prometheus() -> None:
    assert sanitize("prometheus.io/scrape") == "prometheus_io_scrape"
    assert sanitize("app.kubernetes.io/name") == "app_kubernetes_io_name"
    assert sanitize("security.istio.io/tlsMode") == "security_istio_io_tlsMode"


def test_pod_role_one_target_per_port_and_one_per_portless_container() -> None:
    pod = app_pod("reviews-v2-xyz", "bookinfo", "127.9.9.9", {"app": "reviews", "version": "v2"})
    pod["spec"]["containers"].append({"name": "sleeper", "image": "busybox"})
    pod["spec"]["initContainers"] = [{"name": "istio-init", "image": "istio/proxyv2:1.27.1"}]
    pod["metadata"]["uid"] = "u-1"
    groups = pod_targets([pod])
    targets = {(g["labels"]["__meta_kubernetes_pod_container_name"], g["targets"][0]) for g in groups}
    assert targets == {
        ("app", "127.9.9.9:9080"),
        ("istio-proxy", "127.9.9.9:15090"),
        ("sleeper", "127.9.9.9"),
        ("istio-init", "127.9.9.9"),
    }
    app = next(g["labels"] for g in groups if g["targets"] == ["127.9.9.9:9080"])
    assert app["__meta_kubernetes_namespace"] == "bookinfo"
    assert app["__meta_kubernetes_pod_name"] == "reviews-v2-xyz"
    assert app["__meta_kubernetes_pod_ip"] == "127.9.9.9"
    assert app["__meta_kubernetes_pod_uid"] == "u-1"
    assert app["__meta_kubernetes_pod_ready"] == "true"
    assert app["__meta_kubernetes_pod_phase"] == "Running"
    assert app["__meta_kubernetes_pod_node_name"] == "lab-control-plane"
    assert app["__meta_kubernetes_pod_label_version"] == "v2"
    assert app["__meta_kubernetes_pod_labelpresent_app"] == "true"
    assert app["__meta_kubernetes_pod_annotation_prometheus_io_path"] == "/stats/prometheus"
    assert app["__meta_kubernetes_pod_container_port_number"] == "9080"
    assert app["__meta_kubernetes_pod_container_port_protocol"] == "TCP"
    assert app["__meta_kubernetes_pod_container_init"] == "false"
    init = next(
        g["labels"] for g in groups if g["labels"]["__meta_kubernetes_pod_container_name"] == "istio-init"
    )
    assert init["__meta_kubernetes_pod_container_init"] == "true"
    assert "__meta_kubernetes_pod_container_port_number" not in init


def test_pods_without_an_ip_are_not_targets() -> None:
    pod = app_pod("pending-1", "bookinfo", "", {"app": "x"}, phase="Pending")
    assert pod_targets([pod]) == []


def test_service_and_endpoints_roles() -> None:
    service = {
        "metadata": {"name": "ratings", "namespace": "bookinfo", "labels": {"app": "ratings"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.7", "ports": [{"name": "http", "port": 9080}]},
    }
    pod = app_pod("ratings-v1-1", "bookinfo", "127.9.9.1", {"app": "ratings", "version": "v1"})
    endpoints = {
        "metadata": {"name": "ratings", "namespace": "bookinfo"},
        "subsets": [
            {
                "addresses": [{"ip": "127.9.9.1", "targetRef": {"kind": "Pod", "name": "ratings-v1-1"}}],
                "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}],
            }
        ],
    }
    [svc] = service_targets([service])
    assert svc["targets"] == ["ratings.bookinfo.svc:9080"]
    assert svc["labels"]["__meta_kubernetes_service_cluster_ip"] == "10.96.0.7"
    assert svc["labels"]["__meta_kubernetes_service_port_name"] == "http"
    [ep] = endpoints_targets(
        [endpoints], {("bookinfo", "ratings"): service}, {("bookinfo", "ratings-v1-1"): pod}
    )
    assert ep["targets"] == ["127.9.9.1:9080"]
    labels = ep["labels"]
    assert labels["__meta_kubernetes_endpoints_name"] == "ratings"
    assert labels["__meta_kubernetes_endpoint_ready"] == "true"
    assert labels["__meta_kubernetes_endpoint_port_name"] == "http"
    assert labels["__meta_kubernetes_service_name"] == "ratings"
    assert labels["__meta_kubernetes_pod_name"] == "ratings-v1-1"
    assert labels["__meta_kubernetes_endpoint_address_target_kind"] == "Pod"


def test_translation_keeps_relabel_rules_and_points_discovery_at_the_lab() -> None:
    configmap = rendered("prometheus.yaml", "ConfigMap", **VALUES)
    original = yaml.safe_load(configmap["data"]["prometheus.yml"])
    result = translate(
        configmap["data"]["prometheus.yml"],
        sd_base_url="http://127.5.5.5:41000",
        pod_ip="127.5.5.5",
        own_namespace="istio-system",
    )
    translated = yaml.safe_load(result.text)
    pods_job, self_job = translated["scrape_configs"]
    assert "kubernetes_sd_configs" not in pods_job
    assert pods_job["http_sd_configs"][0]["url"] == "http://127.5.5.5:41000/sd/0"
    assert pods_job["relabel_configs"] == original["scrape_configs"][0]["relabel_configs"]
    assert result.discoveries == (SdSpec(role="pod"),)
    assert self_job["static_configs"][0]["targets"] == ["127.5.5.5:9090"]
    assert translated["global"]["scrape_interval"] == "1s"


def test_translation_refuses_unknown_roles_and_honours_namespaces() -> None:
    config = {
        "scrape_configs": [
            {
                "job_name": "x",
                "kubernetes_sd_configs": [
                    {"role": "pod", "namespaces": {"names": ["bookinfo"], "own_namespace": True}}
                ],
            }
        ]
    }
    result = translate(
        yaml.safe_dump(config), sd_base_url="http://h:1", pod_ip="127.1.1.1", own_namespace="obs"
    )
    assert result.discoveries == (SdSpec(role="pod", namespaces=("bookinfo", "obs")),)
    config["scrape_configs"][0]["kubernetes_sd_configs"] = [{"role": "ingress"}]
    with pytest.raises(UnsupportedDiscovery, match="ingress"):
        translate(yaml.safe_dump(config), sd_base_url="http://h:1", pod_ip="127.1.1.1", own_namespace="obs")


@pytest.mark.parametrize(
    "image",
    ["prom/prometheus:v3.4.2", "docker.io/prom/prometheus:v2.55.1", "quay.io/prometheus/prometheus:v3.0.0"],
)
def test_default_registry_serves_prometheus_images(image: str) -> None:
    _, factory = default_registry().lookup(image)
    assert factory.__name__ == "prometheus_factory"
