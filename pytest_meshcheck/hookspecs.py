"""Hooks that other repositories (and conftest files) can implement to extend meshcheck."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_meshcheck.providers.base import Provider
    from pytest_meshcheck.settings import Settings


@pytest.hookspec(firstresult=True)
def pytest_meshcheck_make_provider(config: pytest.Config, settings: Settings) -> Provider | None:
    """Return the provider that provisions the cluster for this run, or None to pass.

    The built-in implementation runs last and maps ``--meshcheck-cluster`` (lab, kubeconfig, eks)
    to the shipped providers, so a plugin can add its own kind (kind, k3d, GKE ...) or wrap one.
    It is called once per run, on the xdist controller only.
    """
