"""botocore Stubber clients for what moto lacks, with one log of calls across all clients so a
test can check the *order* of operations between services, not just within one."""

from __future__ import annotations

from typing import Any

import botocore.session
from botocore.stub import Stubber

from pytest_meshcheck.providers.eks.aws import Aws


class StubbedAws(Aws):
    def __init__(self, region: str = "us-east-1") -> None:
        super().__init__(region=region)
        self.calls: list[str] = []
        self.stubbers: dict[str, Stubber] = {}
        self._botocore = botocore.session.get_session()

    def client(self, service: str) -> Any:
        if service not in self._clients:
            made = self._botocore.create_client(
                service,
                region_name=self.region,
                aws_access_key_id="AKIDEXAMPLE",
                aws_secret_access_key="secret",
                endpoint_url=f"https://{service}.invalid",
            )
            made.meta.events.register(
                "before-call.*.*", lambda model, **kw: self.calls.append(f"{service}.{model.name}")
            )
            stubber = Stubber(made)
            stubber.activate()
            self._clients[service] = made
            self.stubbers[service] = stubber
        return self._clients[service]

    def stub(self, service: str) -> Stubber:
        self.client(service)
        return self.stubbers[service]

    def ok(
        self,
        service: str,
        operation: str,
        response: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.stub(service).add_response(operation, response or {}, params)

    def fail(
        self,
        service: str,
        operation: str,
        code: str,
        message: str = "",
        *,
        params: dict[str, Any] | None = None,
        status: int = 400,
        **modeled: Any,
    ) -> None:
        self.stub(service).add_client_error(
            operation,
            service_error_code=code,
            service_message=message or code,
            http_status_code=status,
            expected_params=params,
            modeled_fields=modeled or None,
        )

    def assert_done(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()
