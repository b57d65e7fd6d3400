"""``meshcheck lab up --mesh`` and ``meshcheck lab fault add|clear|list`` as a user drives them.

The lab is started meshed (Istio, gateway, Prometheus, Kiali), Bookinfo is installed with the
harness's installer, and a fault toggled on and off shows in curl through the gateway.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from pytest_meshcheck import cli
from pytest_meshcheck.install.bookinfo import install_bookinfo
from pytest_meshcheck.install.istio import GATEWAY_NAME, ISTIO_NAMESPACE
from pytest_meshcheck.kube.client import Kube, connect
from pytest_meshcheck.kube.services import reach_service
from pytest_meshcheck.settings import default_settings

LAB = "fault-cmd"


@pytest.fixture(scope="module")
def meshed_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kube, str]]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("MESHCHECK_HOME", str(home))
    # `lab up --mesh` installs Istio, the gateway, Prometheus and Kiali with the harness's installers.
    assert cli.main(["lab", "up", "--name", LAB, "--mesh"]) == 0
    try:
        kube = connect(home / "labs" / LAB / "kubeconfig", "")
        deployments = {d.metadata.name for d in kube.apps.list_namespaced_deployment(ISTIO_NAMESPACE).items}
        assert deployments == {"istiod", GATEWAY_NAME, "prometheus", "kiali"}
        install_bookinfo(kube, default_settings(timeout="120s"))
        gateway = reach_service(kube, ISTIO_NAMESPACE, GATEWAY_NAME, "http2", lb_timeout=60)
        yield kube, gateway.url
        kube.close()
    finally:
        cli.main(["lab", "down", "--name", LAB])
        monkeypatch.undo()


def status_becomes(url: str, wanted: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    status = requests.get(url, timeout=10).status_code
    while status != wanted and time.monotonic() < deadline:
        time.sleep(0.5)
        status = requests.get(url, timeout=10).status_code
    return status


def test_gateway_404_toggles_on_and_off(
    meshed_lab: tuple[Kube, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, gateway = meshed_lab
    page = f"{gateway}/productpage"
    assert status_becomes(page, 200) == 200
    assert cli.main(["lab", "fault", "add", "--name", LAB, "gateway-404"]) == 0
    assert "active faults: gateway-404" in capsys.readouterr().out
    assert status_becomes(page, 404) == 404
    assert cli.main(["lab", "fault", "list", "--name", LAB]) == 0
    assert "on   gateway-404" in capsys.readouterr().out
    assert cli.main(["lab", "fault", "clear", "--name", LAB]) == 0
    assert "active faults: none" in capsys.readouterr().out
    assert status_becomes(page, 200) == 200


def test_unknown_fault_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lab", "fault", "add", "--name", LAB, "no-such-fault"]) == 2
    assert "unknown fault(s) no-such-fault" in capsys.readouterr().err


RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"


def pages_mentioning(url: str, text: str, count: int = 12) -> int:
    return sum(text in requests.get(url, timeout=10).text for _ in range(count))


def test_ratings_5xx_toggles_on_and_off(meshed_lab: tuple[Kube, str]) -> None:
    _, gateway = meshed_lab
    page = f"{gateway}/productpage"
    assert status_becomes(page, 200) == 200
    assert pages_mentioning(page, RATINGS_UNAVAILABLE) == 0
    assert cli.main(["lab", "fault", "add", "--name", LAB, "ratings-5xx"]) == 0
    deadline = time.monotonic() + 30
    while pages_mentioning(page, RATINGS_UNAVAILABLE) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    # reviews v2 and v3 call ratings: with ratings answering 503 their pages say so, but still 200.
    assert pages_mentioning(page, RATINGS_UNAVAILABLE) > 0
    assert requests.get(page, timeout=10).status_code == 200
    assert cli.main(["lab", "fault", "clear", "--name", LAB, "ratings-5xx"]) == 0
    deadline = time.monotonic() + 30
    while pages_mentioning(page, RATINGS_UNAVAILABLE) > 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert pages_mentioning(page, RATINGS_UNAVAILABLE) == 0
