"""Addon manifests render with pinned images for every known Istio minor."""

from __future__ import annotations

import pytest

from pytest_meshcheck.install.addons import ADDON_IMAGES, addon_documents, addon_pins, render_addons
from pytest_meshcheck.install.images import images_in
from pytest_meshcheck.settings import default_settings


@pytest.mark.parametrize("minor", sorted(ADDON_IMAGES))
def test_every_known_minor_renders_with_its_pins(minor: tuple[int, int]) -> None:
    version = f"{minor[0]}.{minor[1]}.0"
    docs = addon_documents(default_settings(istio_version=version))
    assert images_in(docs) == list(ADDON_IMAGES[minor])
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}  # type: ignore[index]
    assert ("Deployment", "prometheus") in kinds
    assert ("Deployment", "kiali") in kinds
    assert ("Service", "kiali") in kinds


def test_prometheus_config_keeps_its_relabel_dollars() -> None:
    text = render_addons(default_settings())
    assert "replacement: $2:$1" in text
    assert "scrape_interval: 5s" in text
    assert "scrape_interval: 15s" in render_addons(default_settings(cluster="kubeconfig"))


def test_unknown_minor_uses_nearest_pins_and_says_so() -> None:
    newer = addon_pins("1.99.0")
    assert not newer.exact
    assert (newer.prometheus_image, newer.kiali_image) == ADDON_IMAGES[max(ADDON_IMAGES)]
    assert addon_pins("1.27.1").exact


def test_mirror_registry_applies_to_addons() -> None:
    docs = addon_documents(default_settings(image_registry="mirror.local:5000"))
    assert all(image.startswith("mirror.local:5000/") for image in images_in(docs))
