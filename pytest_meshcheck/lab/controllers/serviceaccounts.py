"""Every namespace gets a ``default`` ServiceAccount, as kube-controller-manager's service account
controller makes one, so pods that name no account (and ``kubectl get sa``) find it."""

from __future__ import annotations

import contextlib
from typing import Any

from pytest_meshcheck.lab.controllers.base import Controller, Key, KeyMapper
from pytest_meshcheck.lab.errors import AlreadyExists, NotFound
from pytest_meshcheck.lab.store import GVR

NAMESPACES = GVR.core("namespaces")
SERVICE_ACCOUNTS = GVR.core("serviceaccounts")


def _namespace_key(_event: str, obj: dict[str, Any]) -> list[Key]:
    return [("", str(obj.get("metadata", {}).get("name", "")))]


def _account_key(event: str, obj: dict[str, Any]) -> list[Key]:
    meta = obj.get("metadata", {})
    if event == "DELETED" and meta.get("name") == "default":
        return [("", str(meta.get("namespace", "")))]
    return []


class ServiceAccountController(Controller):
    name = "serviceaccount-controller"
    primary = NAMESPACES

    def watches(self) -> list[tuple[GVR, KeyMapper]]:
        return [(NAMESPACES, _namespace_key), (SERVICE_ACCOUNTS, _account_key)]

    def reconcile(self, key: Key) -> float | None:
        namespace = key[1] or key[0]
        try:
            ns = self.store.get(NAMESPACES, None, namespace)
        except NotFound:
            return None
        if ns["metadata"].get("deletionTimestamp"):
            return None
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": namespace},
        }
        with contextlib.suppress(AlreadyExists):
            self.store.create(SERVICE_ACCOUNTS, account, namespace=namespace)
        return None
