"""The harness core's acceptance runs: a user's own tests on the fixtures, an existing cluster
through a kubeconfig, and the istioctl and Helm installers driven through stand-in executables
(the real binaries cannot be downloaded here) that record their argv and install the lab's
manifests the way the real tools would install Istio's."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_meshcheck import cli
from pytest_meshcheck.install.istio import MANIFEST_FILES

USER_TESTS = """
import requests

def test_gateway_serves_bookinfo(meshcheck_gateway_url, meshcheck_bookinfo):
    page = requests.get(meshcheck_gateway_url + "/productpage", timeout=10)
    assert page.status_code == 200
    assert "Simple Bookstore App" in page.text

def test_bookinfo_pods_via_kube(meshcheck_kube, meshcheck_bookinfo):
    pods = meshcheck_kube.core.list_namespaced_pod(meshcheck_bookinfo.namespace).items
    assert len(pods) == 6
    assert {p.metadata.labels["app"] for p in pods} == {"productpage", "details", "reviews", "ratings"}
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--meshcheck", "--meshcheck-timeout=120s", "-p", "no:cacheprovider", *args, timeout=900
    )


def test_a_users_own_tests_on_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine=USER_TESTS)
    result = run(pytester, "--meshcheck-suites=none")
    result.assert_outcomes(passed=2)


@pytest.fixture
def bare_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MESHCHECK_HOME", str(tmp_path / "home"))
    assert cli.main(["lab", "up", "--name", "existing"]) == 0
    try:
        yield tmp_path / "home" / "labs" / "existing" / "kubeconfig"
    finally:
        cli.main(["lab", "down", "--name", "existing"])


def _namespaces(kubeconfig: Path) -> set[str]:
    from pytest_meshcheck.kube.client import connect

    kube = connect(kubeconfig)
    try:
        return {n.metadata.name for n in kube.core.list_namespace().items}
    finally:
        kube.close()


def test_an_existing_cluster_through_its_kubeconfig(pytester: pytest.Pytester, bare_lab: Path) -> None:
    pytester.makepyfile(test_mine=USER_TESTS)
    result = run(
        pytester,
        "--meshcheck-cluster=kubeconfig",
        f"--meshcheck-kubeconfig={bare_lab}",
        "--meshcheck-install=manifest",
        "--meshcheck-suites=gateway",
    )
    result.assert_outcomes(passed=6)
    # The cluster is not ours: what the run installed is removed, the cluster keeps running.
    remaining = _namespaces(bare_lab)
    assert "bookinfo" not in remaining
    assert "meshcheck-probe-in" not in remaining


STANDIN = """#!{python}
# A stand-in for {tool}: records its argv, then installs what the real tool would, from the
# shipped manifests, with kubectl (server-side apply).
import json, os, subprocess, sys
from string import Template
from pathlib import Path

argv = sys.argv[1:]
with open(os.environ["STANDIN_JOURNAL"], "a") as fh:
    fh.write(json.dumps({{"tool": "{tool}", "version": "{version}", "argv": argv}}) + "\\n")
if argv[:2] == ["version", "--remote=false"]:
    print("{version}")
    sys.exit(0)

def value(flag):
    return argv[argv.index(flag) + 1] if flag in argv else ""

sets = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--set")
revision = sets.get("revision", "")
removing = argv[:1] == ["uninstall"] and ("--revision" in argv or argv[1:2] != ["istio-base"])
if removing and "--revision" in argv:  # istioctl uninstall --revision R: that control plane only
    revision = "" if value("--revision") == "default" else value("--revision")
elif removing:  # helm uninstall istiod[-R]: the istiod release of that revision
    if not argv[1].startswith("istiod"):
        sys.exit(0)
    revision = argv[1][len("istiod-"):] if argv[1].startswith("istiod-") else ""
values = {{"VERSION": value("--version") or "{version}", "HUB": "docker.io/istio",
          "REVISION": revision or "default", "REVISION_SUFFIX": "-" + revision if revision else "",
          "NATIVE_SIDECARS": "false"}}
files = {files}
if "{tool}" == "helm" and not removing:
    if argv[:1] != ["upgrade"]:
        sys.exit(0)
    chart = argv[3]
    webhook = "injector-webhook-revision.yaml" if revision else "injector-webhook.yaml"
    files = {{"base": ["namespace.yaml", "crds.yaml"], "istiod": ["istiod.yaml", webhook],
             "gateway": ["ingressgateway.yaml"]}}[chart]
elif removing:
    files = ["istiod.yaml", "injector-webhook-revision.yaml" if revision else "injector-webhook.yaml"]
elif argv[:1] != ["install"]:
    sys.exit(0)
elif revision:
    files = [name.replace("injector-webhook.yaml", "injector-webhook-revision.yaml") for name in files]
text = "---\\n".join(Template(Path("{data}", name).read_text()).substitute(values) for name in files)
kubeconfig = value("--kubeconfig") or os.environ["KUBECONFIG"]
if removing:
    command = ["delete", "--ignore-not-found", "-f", "-"]
else:
    command = ["apply", "--server-side", "--force-conflicts", "-f", "-"]
subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *command], input=text.encode(), check=True,
               capture_output=True)
"""


def standin(directory: Path, tool: str, version: str) -> Path:
    from pytest_meshcheck.resources import data_dir

    files = [name.format(webhook="injector-webhook.yaml") for name in MANIFEST_FILES]
    path = directory / tool
    path.write_text(
        STANDIN.format(
            python=sys.executable, tool=tool, version=version, files=files, data=data_dir() / "istio"
        )
    )
    path.chmod(0o755)
    return path


def journal(pytester: pytest.Pytester) -> list[dict[str, object]]:
    path = Path(pytester.path) / "standin.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class ReleaseServer:
    """Serves ``/<version>/istioctl-<version>-linux-amd64.tar.gz`` and its ``.sha256``."""

    def __init__(self, archive: bytes, name: str, version: str, *, checksum: str | None = None) -> None:
        digest = checksum or hashlib.sha256(archive).hexdigest()
        files = {f"/{version}/{name}": archive, f"/{version}/{name}.sha256": f"{digest}  {name}\n".encode()}
        self.files = files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, archive: bytes, name: str, version: str) -> None:
        """Serve another release beside the first (an upgrade downloads the target's istioctl)."""
        digest = hashlib.sha256(archive).hexdigest()
        self.files[f"/{version}/{name}"] = archive
        self.files[f"/{version}/{name}.sha256"] = f"{digest}  {name}\n".encode()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def archive_of(executable: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(executable, arcname="istioctl")
    return buffer.getvalue()


@pytest.mark.parametrize("good_checksum", [True, False], ids=["verified", "bad-checksum"])
def test_istioctl_installer_downloads_verifies_and_installs(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, good_checksum: bool
) -> None:
    from pytest_meshcheck.install.istioctl import archive_name

    version = "1.27.1"
    monkeypatch.setenv("STANDIN_JOURNAL", str(Path(pytester.path) / "standin.jsonl"))
    monkeypatch.setenv("MESHCHECK_HOME", str(tmp_path / "home"))
    name = archive_name(version)
    server = ReleaseServer(
        archive_of(standin(tmp_path, "istioctl", version)),
        name,
        version,
        checksum=None if good_checksum else "0" * 64,
    )
    try:
        result = run(
            pytester,
            "--meshcheck-install=istioctl",
            f"--meshcheck-istio-version={version}",
            f"--meshcheck-istio-download-url={server.url}",
            "--meshcheck-suites=gateway",
        )
    finally:
        server.close()
    if not good_checksum:
        result.assert_outcomes(errors=4)
        result.stdout.fnmatch_lines(["*checksum mismatch*refusing to run it*"])
        assert journal(pytester) == [], "an unverified istioctl must never run"
        return
    result.assert_outcomes(passed=4)
    installs = [entry["argv"] for entry in journal(pytester) if entry["argv"][:1] == ["install"]]
    assert len(installs) == 1
    assert installs[0][:2] == ["install", "-y"]
    assert "profile=default" in installs[0]


def test_canary_upgrade_with_istioctl_uses_each_versions_istioctl(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The upgrade gate with --meshcheck-install=istioctl: the target's istioctl is downloaded and
    verified, installs the new revision beside the old, and the old revision is removed with
    ``istioctl uninstall --revision default``."""
    from pytest_meshcheck.install.istioctl import archive_name

    old, new = "1.26.3", "1.27.1"
    monkeypatch.setenv("STANDIN_JOURNAL", str(Path(pytester.path) / "standin.jsonl"))
    monkeypatch.setenv("MESHCHECK_HOME", str(tmp_path / "home"))
    for version in (old, new):
        (tmp_path / version).mkdir()
    server = ReleaseServer(archive_of(standin(tmp_path / old, "istioctl", old)), archive_name(old), old)
    server.add(archive_of(standin(tmp_path / new, "istioctl", new)), archive_name(new), new)
    try:
        result = run(
            pytester,
            "--meshcheck-install=istioctl",
            f"--meshcheck-istio-version={old}",
            f"--meshcheck-upgrade-to={new}",
            f"--meshcheck-istio-download-url={server.url}",
            "--meshcheck-suites=upgrade",
            "--meshcheck-load-duration=5s",
        )
    finally:
        server.close()
    result.assert_outcomes(passed=1)
    calls = [(entry["version"], entry["argv"]) for entry in journal(pytester)]
    installs = [(version, argv) for version, argv in calls if argv[:1] == ["install"]]
    assert [version for version, _ in installs] == [old, new]
    assert "revision=1-27-1" in installs[1][1] and not any("revision=" in a for a in installs[0][1])
    removals = [(version, argv) for version, argv in calls if argv[:1] == ["uninstall"]]
    assert removals[0][0] == old
    assert removals[0][1][removals[0][1].index("--revision") + 1] == "default"


def test_helm_installer_installs_base_istiod_and_gateway(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    version = "1.27.1"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    standin(bin_dir, "helm", version)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_JOURNAL", str(Path(pytester.path) / "standin.jsonl"))
    result = run(
        pytester,
        "--meshcheck-install=helm",
        f"--meshcheck-istio-version={version}",
        "--meshcheck-suites=gateway",
    )
    result.assert_outcomes(passed=4)
    charts = [entry["argv"][2:4] for entry in journal(pytester) if entry["argv"][:1] == ["upgrade"]]
    assert charts == [["istio-base", "base"], ["istiod", "istiod"], ["istio-ingressgateway", "gateway"]]


def test_canary_upgrade_with_helm_installs_and_uninstalls_the_istiod_releases(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old, new = "1.26.3", "1.27.1"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    standin(bin_dir, "helm", old)  # renders what --version asks for: see the argv below
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_JOURNAL", str(Path(pytester.path) / "standin.jsonl"))
    result = run(
        pytester,
        "--meshcheck-install=helm",
        f"--meshcheck-istio-version={old}",
        f"--meshcheck-upgrade-to={new}",
        "--meshcheck-suites=upgrade",
        "--meshcheck-load-duration=5s",
    )
    result.assert_outcomes(passed=1)
    calls = [entry["argv"] for entry in journal(pytester)]
    upgrades = [(argv[2], argv[argv.index("--version") + 1]) for argv in calls if argv[:1] == ["upgrade"]]
    assert upgrades == [
        ("istio-base", old),
        ("istiod", old),
        ("istio-ingressgateway", old),
        ("istio-base", new),
        ("istiod-1-27-1", new),
        ("istio-ingressgateway", new),
    ]
    assert [argv[1] for argv in calls if argv[:1] == ["uninstall"]] == ["istiod"]


def _istio_leftovers(kubeconfig: Path) -> list[str]:
    """Cluster-scoped Istio objects and istio-system workloads still in the cluster."""
    from pytest_meshcheck.kube.client import connect

    kube = connect(kubeconfig)
    try:
        webhooks = kube.dynamic.resources.get(
            api_version="admissionregistration.k8s.io/v1", kind="MutatingWebhookConfiguration"
        )
        roles = kube.dynamic.resources.get(api_version="rbac.authorization.k8s.io/v1", kind="ClusterRole")
        left = [f"webhook {w.metadata.name}" for w in webhooks.get().items if "istio" in w.metadata.name]
        left += [f"clusterrole {r.metadata.name}" for r in roles.get().items if "istio" in r.metadata.name]
        if "istio-system" in {n.metadata.name for n in kube.core.list_namespace().items}:
            left += [
                f"deployment {d.metadata.name}"
                for d in kube.apps.list_namespaced_deployment("istio-system").items
            ]
        return left
    finally:
        kube.close()


def test_an_upgraded_mesh_is_removed_from_an_existing_cluster(
    pytester: pytest.Pytester, bare_lab: Path
) -> None:
    """After a canary upgrade through a revision tag, teardown removes the new revision, the tag and
    everything shared; the old revision was removed by the upgrade itself."""
    result = run(
        pytester,
        "--meshcheck-cluster=kubeconfig",
        f"--meshcheck-kubeconfig={bare_lab}",
        "--meshcheck-install=manifest",
        "--meshcheck-suites=upgrade",
        "--meshcheck-istio-version=1.26.3",
        "--meshcheck-upgrade-to=1.27.1",
        "--meshcheck-revision-tag=prod",
        "--meshcheck-load-duration=5s",
    )
    result.assert_outcomes(passed=1)
    assert _istio_leftovers(bare_lab) == []
    assert not {"bookinfo", "meshcheck-probe-in", "istio-system"} & _namespaces(bare_lab)
