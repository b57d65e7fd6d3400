"""Throughput and latency through the lab's mesh, side by side with the same app outside it.

Brings up a meshed lab (``meshcheck lab up --mesh``), installs Bookinfo twice with the harness's
installer: once injected (reached through the ingress gateway, so a request crosses gateway ->
productpage -> details, reviews (-> ratings for v2/v3) with mTLS on every hop), and once in a
namespace without injection (reached on productpage's NodePort, no proxies at all). A closed-loop
client with a fixed number of concurrent connections drives each for the same time, in
alternation, and the script prints requests/s, p50/p90/p99, and the mesh's added latency per hop
(the p50 difference divided by the proxied hops a request takes on average).

Numbers are whole-machine figures on whatever this machine is doing: compare the two columns of
one run, not runs of different days.

    python benchmarks/lab_mesh.py [--seconds 10] [--concurrency 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from pytest_meshcheck import cli
from pytest_meshcheck.install.bookinfo import install_app
from pytest_meshcheck.install.istio import GATEWAY_NAME, ISTIO_NAMESPACE
from pytest_meshcheck.kube.client import connect
from pytest_meshcheck.kube.services import reach_service
from pytest_meshcheck.resources import data_file
from pytest_meshcheck.settings import default_settings

#: Proxied hops per product page through the mesh: gateway->productpage, productpage->details,
#: productpage->reviews, and reviews->ratings for two of the three reviews versions.
HOPS_PER_REQUEST = 3 + 2 / 3


def drive(url: str, *, seconds: float, concurrency: int) -> tuple[int, int, list[float]]:
    """Closed loop: each worker sends its next request when the last one answered."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        nonlocal errors
        session = requests.Session()
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                ok = session.get(url, timeout=10).status_code == 200
            except requests.RequestException:
                ok = False
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                errors += not ok

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies), errors, latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="meshcheck-bench-"))
    os.environ["MESHCHECK_HOME"] = str(home)
    lab = "bench-mesh"
    if cli.main(["lab", "up", "--name", lab, "--mesh"]) != 0:
        return 1
    try:
        kube = connect(home / "labs" / lab / "kubeconfig")
        settings = default_settings(timeout="180s")
        manifests = [data_file("bookinfo", "bookinfo.yaml")]
        install_app(
            kube,
            settings,
            namespace="bookinfo",
            manifests=[*manifests, data_file("bookinfo", "bookinfo-gateway.yaml")],
            injected=True,
        )
        install_app(kube, settings, namespace="bookinfo-plain", manifests=manifests, injected=False)
        kube.core.patch_namespaced_service("productpage", "bookinfo-plain", {"spec": {"type": "NodePort"}})
        gateway = reach_service(kube, ISTIO_NAMESPACE, GATEWAY_NAME, "http2", lb_timeout=60).url
        plain = reach_service(kube, "bookinfo-plain", "productpage", 9080).url
        targets = {
            "mesh (gateway, mTLS)": f"{gateway}/productpage",
            "no mesh (NodePort)": f"{plain}/productpage",
        }
        for url in targets.values():  # warm-up, discarded
            drive(url, seconds=2, concurrency=args.concurrency)
        results: dict[str, list[tuple[int, int, list[float]]]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, url in targets.items():
                results[name].append(drive(url, seconds=args.seconds, concurrency=args.concurrency))
        print(f"{args.rounds} rounds x {args.seconds:g}s, {args.concurrency} connections, closed loop")
        print(f"{'path':<22} {'req/s':>8} {'errors':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
        p50s = {}
        for name, rounds in results.items():
            latencies = [value for _, _, values in rounds for value in values]
            requests_total = sum(count for count, _, _ in rounds)
            errors = sum(err for _, err, _ in rounds)
            rps = requests_total / (args.seconds * args.rounds)
            p50s[name] = statistics.median(latencies)
            print(
                f"{name:<22} {rps:>8.1f} {errors:>7} {p50s[name]:>8.1f} "
                f"{percentile(latencies, 0.9):>8.1f} {percentile(latencies, 0.99):>8.1f}"
            )
        mesh, bare = p50s["mesh (gateway, mTLS)"], p50s["no mesh (NodePort)"]
        per_hop = (mesh - bare) / HOPS_PER_REQUEST
        print(f"added by the mesh: {mesh - bare:.1f} ms at p50, {per_hop:.1f} ms per proxied hop")
        kube.close()
    finally:
        cli.main(["lab", "down", "--name", lab])
    return 0


if __name__ == "__main__":
    sys.exit(main())
