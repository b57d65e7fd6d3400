from __future__ import annotations

import threading

import pytest

from pytest_meshcheck.lab.runtime.addresses import AddressPlan, BlockClaim
from pytest_meshcheck.lab.runtime.dns import ClusterDNS, ContainerResolver, ServiceRecord
from pytest_meshcheck.lab.runtime.images import ImageNotFound, ImageRef, ImageRegistry
from pytest_meshcheck.lab.runtime.logs import LogBuffer
from pytest_meshcheck.lab.runtime.podworker import capture_active, go_duration
from pytest_meshcheck.lab.runtime.probes import ProbeTracker


@pytest.mark.parametrize(
    ("reference", "repository", "tag"),
    [
        ("nginx", "docker.io/library/nginx", "latest"),
        ("istio/proxyv2:1.27.1", "docker.io/istio/proxyv2", "1.27.1"),
        (
            "docker.io/istio/examples-bookinfo-ratings-v1:1.20.3",
            "docker.io/istio/examples-bookinfo-ratings-v1",
            "1.20.3",
        ),
        ("localhost:5000/app:v2", "localhost:5000/app", "v2"),
        ("gcr.io/x/y@sha256:abc", "gcr.io/x/y", ""),
    ],
)
def test_image_references_normalise_like_containerd(reference: str, repository: str, tag: str) -> None:
    ref = ImageRef.parse(reference)
    assert (ref.repository, ref.tag) == (repository, tag)


def test_registry_matches_by_repository_any_tag_and_patterns() -> None:
    registry = ImageRegistry()

    def factory(ctx: object) -> object:
        raise AssertionError("not called")

    registry.register("istio/examples-bookinfo-*", factory)  # type: ignore[arg-type]
    registry.register("*/go-httpbin", factory)  # type: ignore[arg-type]
    assert registry.knows("docker.io/istio/examples-bookinfo-details-v1:1.20.3")
    assert registry.knows("istio/examples-bookinfo-details-v1")
    assert registry.knows("docker.io/mccutchen/go-httpbin:v2.15.0")
    assert not registry.knows("registry.istio.io/release/examples-bookinfo-details-v1:1.20.3")
    with pytest.raises(ImageNotFound):
        registry.lookup("docker.io/library/nginx:1.27")
    assert (
        ImageRef.parse("a/b:1").image_id
        == ImageRef.parse("a/b:1").image_id
        != ImageRef.parse("a/b:2").image_id
    )


def test_two_claims_get_different_blocks_and_a_released_block_is_reusable() -> None:
    first = BlockClaim.acquire()
    second = BlockClaim.acquire()
    try:
        assert first.block != second.block
        plan = AddressPlan(first.block)
        pod_ip = plan.pod_ip()
        assert pod_ip.startswith(f"127.{first.block}.")
        assert plan.local_ip_for(pod_ip) != pod_ip
        assert plan.cluster_ip() != plan.cluster_ip()
        assert plan.owns_service_ip(plan.cluster_ip()) and not plan.owns_service_ip(pod_ip)
        block = first.block
        first.release()
        again = BlockClaim.acquire(preferred=block)
        assert again.block == block
        again.release()
    finally:
        first.release()
        second.release()


def test_cluster_dns_answers_the_search_path_names() -> None:
    dns = ClusterDNS()
    dns.set_service("shop", "reviews", ServiceRecord(cluster_ip="127.1.200.5"))
    dns.set_service("shop", "db", ServiceRecord(ready_ips=("127.1.1.7",), hostnames={"db-0": "127.1.1.7"}))
    dns.set_service("shop", "ext", ServiceRecord(external_name="reviews.shop.svc.cluster.local"))
    for name in ("reviews", "reviews.shop", "reviews.shop.svc", "reviews.shop.svc.cluster.local."):
        assert dns.resolve(name, "shop") == "127.1.200.5"
    assert dns.resolve("reviews.shop", "other") == "127.1.200.5"
    with pytest.raises(LookupError):
        dns.resolve("reviews", "other")
    assert dns.resolve("db", "shop") == "127.1.1.7"
    assert dns.resolve("db-0.db.shop.svc.cluster.local", "x") == "127.1.1.7"
    assert dns.resolve("ext", "shop") == "127.1.200.5"
    assert dns.resolve("10.0.0.1", "shop") == "10.0.0.1"
    resolver = ContainerResolver(dns, localhost_ip="127.1.101.3", hostname="web-1", pod_ip="127.1.1.3")
    assert resolver.resolve("localhost", "shop") == "127.1.101.3"
    assert resolver.resolve("web-1", "shop") == "127.1.1.3"


def test_capture_needs_a_proxy_and_an_init_or_the_interception_annotation() -> None:
    proxy = {"name": "istio-proxy", "image": "istio/proxyv2"}
    init = {"name": "istio-init", "image": "istio/proxyv2"}
    app = {"name": "app", "image": "x"}
    assert capture_active({"spec": {"containers": [app, proxy], "initContainers": [init]}})
    assert capture_active(
        {
            "metadata": {"annotations": {"sidecar.istio.io/interceptionMode": "REDIRECT"}},
            "spec": {"containers": [app], "initContainers": [{**proxy, "restartPolicy": "Always"}]},
        }
    )
    assert not capture_active({"spec": {"containers": [app], "initContainers": [init]}})
    assert not capture_active({"spec": {"containers": [app, proxy]}})
    assert not capture_active(
        {
            "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
            "spec": {"containers": [app, proxy], "initContainers": [init]},
        }
    )


def test_probe_tracker_flips_only_after_its_thresholds() -> None:
    tracker = ProbeTracker(
        {"periodSeconds": 2, "failureThreshold": 2, "successThreshold": 2, "initialDelaySeconds": 5},
        100.0,
        result=True,
    )
    steps = [(False, 105.0), (False, 107.0), (True, 109.0), (True, 111.0)]
    assert not tracker.due(104.9) and tracker.due(105.0)
    outcomes = [(tracker.record(ok, now), tracker.result) for ok, now in steps]
    assert outcomes == [(False, True), (True, False), (False, False), (True, True)]
    assert tracker.next_due == 113.0


def test_log_buffer_tails_and_follows_until_closed() -> None:
    buffer = LogBuffer()
    buffer.write("one\ntwo")
    buffer.write("three")
    assert [line.text for line in buffer.snapshot(tail=2)] == ["two", "three"]
    follower = buffer.follow(tail=1)
    first = next(follower)  # the generator has taken its snapshot: later lines arrive live
    seen = [first.text]

    def follow() -> None:
        seen.extend(line.text for line in follower)

    reader = threading.Thread(target=follow)
    reader.start()
    buffer.write("four")
    buffer.close()
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert seen == ["three", "four"]


def test_go_durations() -> None:
    assert [go_duration(s) for s in (10, 80, 300, 0.5)] == ["10s", "1m20s", "5m0s", "0.5s"]
