"""Requests per second of the lab API server (create / get / list / patch over HTTPS with a
keep-alive connection, as the Python client and kubectl use it) next to the same operations on
the in-process store, so the cost of the HTTP layer is visible.

Run: ``python benchmarks/lab_api.py [--seconds N] [--objects N]``. Prints numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from pytest_meshcheck.lab.apiserver import ApiServer
from pytest_meshcheck.lab.store import GVR, Store

CONFIGMAPS = GVR.core("configmaps")


def _rate(label: str, operation: Callable[[int], object], seconds: float) -> None:
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        operation(count)
        count += 1
    elapsed = time.perf_counter() - start
    print(f"{label:<34} {count / elapsed:>10.0f} /s   ({count} in {elapsed:.2f}s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per operation")
    parser.add_argument("--objects", type=int, default=200, help="configmaps present while listing")
    args = parser.parse_args()

    store = Store()
    with tempfile.TemporaryDirectory() as state:
        server = ApiServer(store, state_dir=Path(state))
        server.start()
        try:
            for i in range(args.objects):
                store.create(
                    CONFIGMAPS,
                    {"metadata": {"name": f"seed-{i}"}, "data": {"i": str(i)}},
                    namespace="default",
                )
            ca_file = Path(state) / "ca.crt"
            ca_file.write_bytes(server.ca_pem)
            session = requests.Session()
            session.trust_env = False  # REQUESTS_CA_BUNDLE would override the lab CA
            session.verify = str(ca_file)
            session.headers["Authorization"] = f"Bearer {server.token}"
            base = f"{server.url}/api/v1/namespaces/default/configmaps"
            # Creations go to their own namespaces so that "list" always lists the seeded objects.
            for namespace in ("bench-http", "bench-store"):
                store.create(GVR.core("namespaces"), {"metadata": {"name": namespace}})
            creations = f"{server.url}/api/v1/namespaces/bench-http/configmaps"

            print(f"lab API server at {server.url}, {args.objects} configmaps stored")
            print("-- HTTPS (keep-alive session) --")
            _rate(
                "create",
                lambda i: session.post(creations, json={"metadata": {"name": f"h-{i}"}}).raise_for_status(),
                args.seconds,
            )
            _rate(
                "get",
                lambda i: session.get(f"{base}/seed-{i % args.objects}").raise_for_status(),
                args.seconds,
            )
            _rate(
                f"list ({args.objects} items)", lambda i: session.get(base).raise_for_status(), args.seconds
            )
            _rate(
                "patch (merge)",
                lambda i: session.patch(
                    f"{base}/seed-{i % args.objects}",
                    data=f'{{"data":{{"n":"{i}"}}}}',
                    headers={"Content-Type": "application/merge-patch+json"},
                ).raise_for_status(),
                args.seconds,
            )
            print("-- in-process store --")
            _rate(
                "create",
                lambda i: store.create(CONFIGMAPS, {"metadata": {"name": f"s-{i}"}}, namespace="bench-store"),
                args.seconds,
            )
            _rate("get", lambda i: store.get(CONFIGMAPS, "default", f"seed-{i % args.objects}"), args.seconds)
            _rate(f"list ({args.objects} items)", lambda i: store.list(CONFIGMAPS, "default"), args.seconds)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
