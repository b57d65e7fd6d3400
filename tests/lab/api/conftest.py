"""Fixtures for the lab API server tests: one server over a fresh store per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, config
from lab_api_support import FakeRuntime, Lab

from pytest_meshcheck.lab.apiserver import ApiServer
from pytest_meshcheck.lab.gc import GarbageCollector
from pytest_meshcheck.lab.store import Store


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    state = tmp_path_factory.mktemp("lab-api")
    store = Store()
    runtime = FakeRuntime()
    server = ApiServer(store, runtime=runtime, state_dir=state)
    server.start()
    collector = GarbageCollector(store)
    collector.start()
    kubeconfig = server.write_kubeconfig(state / "kubeconfig", "lab-test")
    ca_file = state / "ca.crt"
    ca_file.write_bytes(server.ca_pem)
    try:
        yield Lab(store, server, runtime, kubeconfig, ca_file)
    finally:
        collector.stop()
        server.stop()


@pytest.fixture(scope="module")
def api_client(lab: Lab) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(lab.kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def ns(lab: Lab) -> str:
    return lab.namespace()
