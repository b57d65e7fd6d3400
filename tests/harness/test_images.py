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
