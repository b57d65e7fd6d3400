"""The command lines the istioctl and Helm installers run (the lab tests run them for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_meshcheck.install.istio import (
    helm_commands,
    image_tag,
    istioctl_install_args,
    istioctl_uninstall_args,
    istiod_name,
)
from pytest_meshcheck.settings import default_settings

KUBECONFIG = Path("/tmp/kc")


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("docker.io/istio/pilot:1.27.1", "1.27.1"),
        ("gcr.io/istio-release/proxyv2:1.26.3-distroless", "1.26.3"),
        ("localhost:5000/istio/pilot:1.27.1@sha256:" + "a" * 64, "1.27.1"),
        ("istio/pilot", ""),
    ],
)
def test_image_tag(image: str, tag: str) -> None:
    assert image_tag(image) == tag


def test_istioctl_default_revision() -> None:
    args = istioctl_install_args(default_settings(), Path("/bin/istioctl"), KUBECONFIG, "lab")
    assert args[:3] == ["/bin/istioctl", "install", "-y"]
    assert args[3:5] == ["--kubeconfig", "/tmp/kc"]
    assert args[5:7] == ["--context", "lab"]
    assert "profile=default" in args
    assert not any(a.startswith("revision=") for a in args)
    assert "--purge" in istioctl_uninstall_args(Path("/bin/istioctl"), KUBECONFIG, "", revision=None)


def test_istioctl_revision_profile_and_registry() -> None:
    settings = default_settings(
        istio_revision="canary", istio_profile="minimal", image_registry="123.dkr.ecr/mirror/"
    )
    args = istioctl_install_args(settings, Path("istioctl"), KUBECONFIG, "")
    assert "revision=canary" in args
    assert "profile=minimal" in args
    assert "hub=123.dkr.ecr/mirror" in args
    assert "--context" not in args
    uninstall = istioctl_uninstall_args(Path("istioctl"), KUBECONFIG, "", revision="canary")
    assert uninstall[-2:] == ["--revision", "canary"]
    assert "--purge" not in uninstall, "removing one revision must not purge the others"
    old_default = istioctl_uninstall_args(Path("istioctl"), KUBECONFIG, "lab", revision="")
    assert old_default[-4:] == ["--context", "lab", "--revision", "default"]


def test_helm_installs_base_istiod_gateway_in_order_at_the_version() -> None:
    settings = default_settings(istio_version="1.26.3", istio_revision="canary")
    commands = helm_commands(settings, "helm", KUBECONFIG, "lab")
    assert [c[3:5] for c in commands] == [
        ["istio-base", "base"],
        ["istiod-canary", "istiod"],
        ["istio-ingressgateway", "gateway"],
    ]
    for command in commands:
        assert command[:3] == ["helm", "upgrade", "--install"]
        assert command[command.index("--version") + 1] == "1.26.3"
        assert command[command.index("--kube-context") + 1] == "lab"
        assert "--wait" in command
    assert "revision=canary" in commands[1]


def test_istiod_names() -> None:
    assert istiod_name("") == "istiod"
    assert istiod_name("1-27-1") == "istiod-1-27-1"
