"""In-cluster load: the manifests as data, and real runs as Jobs on a lab (no mesh needed).

The lab's Locust image runs the real Locust; the target is the counting server on 127.0.0.1,
which lab pods reach as they reach any IP, so what the Jobs report can be compared with what the
target served, exactly as for local runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_meshcheck.errors import LoadError
from pytest_meshcheck.kube.client import Kube, connect
from pytest_meshcheck.load.incluster import InClusterLoadRun
from pytest_meshcheck.load.manifests import MOUNT_PATH, ROLE_LABEL, locust_image, run_manifests
from pytest_meshcheck.load.spec import ENV_GENERATOR, ENV_URLS, LoadSpec, shipped_locustfile
from pytest_meshcheck.load.start import locust_version
from tests.load.stopping import stopped_by_a_failing_check
from tests.load.target import Target


def _spec(target_url: str, output_dir: Path, **overrides: Any) -> LoadSpec:
    values: dict[str, Any] = {
        "target_url": target_url,
        "users": 4,
        "spawn_rate": 100.0,
        "duration_s": 3.0,
        "locustfile": shipped_locustfile("http_get.py"),
        "output_dir": output_dir,
        "env": {ENV_URLS: "/ok,/fail"},
    }
    values.update(overrides)
    return LoadSpec(**values)


def _by_kind(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_a_distributed_run_is_a_master_job_a_service_and_a_worker_job(tmp_path: Path) -> None:
    spec = _spec("http://127.0.0.1:9", tmp_path, workers=3)
    docs = run_manifests(spec, namespace="ns", run_id="abc", image="img:1", target_url="http://gw.svc:80")
    kinds = _by_kind(docs)

    namespace = kinds["Namespace", "ns"]
    assert namespace["metadata"]["labels"]["istio-injection"] == "disabled"
    files = kinds["ConfigMap", "locustfiles"]["data"]
    assert set(files) == {"http_get.py", "_meshcheck_report.py", "_meshcheck_env.py"}
    workers = kinds["Job", "worker"]["spec"]
    assert workers["completions"] == workers["parallelism"] == 3
    assert workers["backoffLimit"] == 0 and workers["activeDeadlineSeconds"] > spec.run_time_s
    master = kinds["Job", "master"]["spec"]["template"]
    container = master["spec"]["containers"][0]
    assert container["image"] == "img:1"
    args = container["args"]
    assert args[args.index("-H") + 1] == "http://gw.svc:80"
    assert args[args.index("--expect-workers") + 1] == "3"
    assert args[args.index("-f") + 1] == f"{MOUNT_PATH}/http_get.py,{MOUNT_PATH}/_meshcheck_report.py"
    assert master["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    env = {e["name"]: e for e in container["env"]}
    assert env[ENV_GENERATOR]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env[ENV_URLS]["value"] == "/ok,/fail"
    worker_args = kinds["Job", "worker"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert worker_args[worker_args.index("--master-host") + 1] == "master.ns.svc.cluster.local"
    assert kinds["Service", "master"]["spec"]["selector"][ROLE_LABEL] == "master"


def test_a_standalone_run_is_one_job(tmp_path: Path) -> None:
    docs = run_manifests(
        _spec("http://127.0.0.1:9", tmp_path), namespace="n", run_id="r", image="i", target_url="u://x"
    )
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Namespace", "n"),
        ("ConfigMap", "locustfiles"),
        ("Job", "standalone"),
    ]


def test_the_image_is_the_installed_locust_version() -> None:
    # Never ``import locust`` here: it monkey-patches the whole pytest process with gevent, and
    # every later test that waits on a child process then blocks all of its threads.
    from importlib import metadata

    assert locust_image(locust_version()) == f"docker.io/locustio/locust:{metadata.version('locust')}"


# -- real runs on a lab -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    from pytest_meshcheck.lab.cluster import Lab

    lab = Lab(tmp_path_factory.mktemp("lab"), name="load-tests")
    lab.start()
    client = connect(lab.kubeconfig, "")
    try:
        yield client
    finally:
        client.close()
        lab.stop()


def _run(kube: Kube, spec: LoadSpec) -> InClusterLoadRun:
    return InClusterLoadRun(spec, kube=kube, image=locust_image(locust_version()), target_url=spec.target_url)


def _namespaces(kube: Kube) -> set[str]:
    return {
        ns.metadata.name
        for ns in kube.core.list_namespace().items
        if ns.metadata.name.startswith("meshcheck-load") and ns.status.phase != "Terminating"
    }


def test_distributed_in_cluster_run_aggregates_the_sum_of_its_worker_pods(
    kube: Kube, target: Target, output_dir: Path
) -> None:
    run = _run(kube, _spec(target.url, output_dir, workers=2))
    with run:
        assert run.wait(timeout=180), "the Jobs did not end"
    result = run.result()

    assert result.origin.startswith("in-cluster")
    workers = [g for g in result.generators if g.role == "worker"]
    assert len(workers) == 2 and all(g.generator.startswith("worker-") for g in workers)
    for worker in workers:
        assert worker.requests_made == target.by_generator[worker.generator] > 0
        assert worker.exit_code == 0
    assert result.requests == target.total == sum(g.requests_made or 0 for g in workers)
    assert result.aggregation_complete is True
    assert result.failures == target.by_path["/fail"] > 0
    assert result.timeline_requests == result.requests
    assert len(result.failure_events) == result.failures
    assert not result.stopped_early
    assert result.artifacts.json is not None and result.artifacts.json.exists()
    assert len(result.artifacts.logs) == 3
    # The master's stats history, as a local run reads it from Locust's CSV.
    assert result.artifacts.history_csv is not None and result.artifacts.history_csv.exists()
    assert max(p.users for p in result.history) == run.spec.users
    totals = [p.total_requests for p in result.history]
    assert totals == sorted(totals) and 0 < totals[-1] <= result.requests
    # Each pod's CPU time, as reported by the process itself, over the request window.
    for generator in result.generators:
        assert generator.cpu_s is not None and generator.cpu_s > 0, generator
        assert generator.busy is not None, generator
    assert all(g.busy for g in workers), "a worker that sent requests used no CPU"
    assert run.namespace not in _namespaces(kube), "the run's namespace was not deleted"


def test_in_cluster_run_stopped_early_still_reports(kube: Kube, target: Target, output_dir: Path) -> None:
    run = _run(
        kube, _spec(target.url, output_dir, duration_s=120.0, think_time_s=0.01, env={ENV_URLS: "/ok"})
    )

    stopped_by_a_failing_check(run, target, load_arrives_within_s=120)

    assert run.namespace not in _namespaces(kube)


def test_an_unknown_image_is_a_load_error_with_evidence(kube: Kube, target: Target, output_dir: Path) -> None:
    spec = _spec(target.url, output_dir)
    run = InClusterLoadRun(spec, kube=kube, image="example.invalid/no-such-locust:1", target_url=target.url)
    with run:
        assert not run.wait(timeout=5)
    with pytest.raises(LoadError, match="standalone") as caught:
        run.result()
    assert caught.value.evidence
