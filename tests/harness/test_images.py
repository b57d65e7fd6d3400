"""Image listing and registry rewriting for air-gapped mirrors."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_meshcheck.install.images import images_in, rewrite_documents, rewrite_image
from pytest_meshcheck.kube.apply import load_documents
from pytest_meshcheck.resources import data_file


@pytest.mark.parametrize(
    ("image", "rewritten"),
    [
        ("docker.io/istio/proxyv2:1.27.1", "mirror.example/istio/istio/proxyv2:1.27.1"),
        ("istio/pilot:1.27.1", "mirror.example/istio/istio/pilot:1.27.1"),
        ("busybox", "mirror.example/istio/library/busybox"),
        ("quay.io/kiali/kiali:v2.15", "mirror.example/istio/kiali/kiali:v2.15"),
        ("localhost:5000/app:1", "mirror.example/istio/app:1"),
    ],
)
def test_rewrite_keeps_path_and_tag(image: str, rewritten: str) -> None:
    assert rewrite_image(image, "mirror.example/istio/") == rewritten
    assert rewrite_image(image, "") == image


def test_bookinfo_images_are_listed_and_rewritten() -> None:
    docs = load_documents(data_file("bookinfo", "bookinfo.yaml").read_text())
    images = images_in(docs)
    assert len(images) == 6
    assert "docker.io/istio/examples-bookinfo-reviews-v3:1.20.3" in images
    moved = rewrite_documents(docs, "123456789012.dkr.ecr.eu-west-1.amazonaws.com")
    assert all(i.startswith("123456789012.dkr.ecr.eu-west-1.amazonaws.com/istio/") for i in images_in(moved))
    assert images_in(docs) == images, "the originals are not modified"


def test_init_containers_and_cronjobs_count() -> None:
    doc: dict[str, Any] = {
        "kind": "CronJob",
        "spec": {
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {"initContainers": [{"image": "a:1"}], "containers": [{"image": "b:2"}]}
                    }
                }
            }
        },
    }
    assert images_in([doc]) == ["a:1", "b:2"]


def test_meshcheck_images_lists_everything_a_run_pulls(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_meshcheck import cli

    assert cli.main(["images", "--istio-version", "1.27.1", "--upgrade-to", "1.28.0"]) == 0
    listed = capsys.readouterr().out.split()
    assert "docker.io/istio/pilot:1.27.1" in listed
    assert "docker.io/istio/proxyv2:1.28.0" in listed
    assert "docker.io/prom/prometheus:v3.4.2" in listed
    assert "quay.io/kiali/kiali:v2.12.0" in listed
    assert "docker.io/mccutchen/go-httpbin:v2.15.0" in listed
    assert len([i for i in listed if "examples-bookinfo" in i]) == 6
    assert len(listed) == len(set(listed))
    assert (
        cli.main(["images", "--istio-version", "1.27.1", "--image-registry", "ecr.local/m", "--pairs"]) == 0
    )
    pairs = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert all(target == "ecr.local/m/" + source.split("/", 1)[1] for source, target in pairs)


def test_meshcheck_images_rejects_a_bad_version(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_meshcheck import cli

    with pytest.raises(SystemExit) as info:
        cli.main(["images", "--istio-version", "latest"])
    assert info.value.code == 2
    assert "major.minor.patch" in capsys.readouterr().err
