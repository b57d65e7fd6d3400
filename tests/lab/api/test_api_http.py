"""The HTTP surface: authentication, health, discovery documents, proxies and bad input."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client
from lab_api_support import Lab

from pytest_meshcheck.lab.apiserver import ApiServer
from pytest_meshcheck.lab.httpframing import read_body, read_response_head
from pytest_meshcheck.lab.store import GVR, Store


def _url(lab: Lab, path: str) -> str:
    return f"{lab.server.url}{path}"


def _auth(lab: Lab) -> dict[str, str]:
    return {"Authorization": f"Bearer {lab.server.token}"}


def test_token_required_and_health_is_public(lab: Lab) -> None:
    unauthenticated = requests.get(_url(lab, "/api/v1/namespaces"), verify=lab.ca_file, timeout=10)
    assert unauthenticated.status_code == 401 and unauthenticated.json()["reason"] == "Unauthorized"
    wrong = requests.get(
        _url(lab, "/api"), headers={"Authorization": "Bearer nope"}, verify=lab.ca_file, timeout=10
    )
    assert wrong.status_code == 401
    for path in ("/healthz", "/readyz", "/livez"):
        assert requests.get(_url(lab, path), verify=lab.ca_file, timeout=10).text == "ok"
    assert requests.get(_url(lab, "/version"), verify=lab.ca_file, timeout=10).json()["major"] == "1"


def test_serving_certificate_names_loopback_and_localhost(lab: Lab) -> None:
    context = ssl.create_default_context(cafile=str(lab.ca_file))
    for name in ("127.0.0.1", "localhost"):
        with (
            socket.create_connection(("127.0.0.1", lab.server.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.version() is not None


def test_openapi_v3_declares_field_validation(lab: Lab) -> None:
    root = requests.get(_url(lab, "/openapi/v3"), headers=_auth(lab), verify=lab.ca_file, timeout=10).json()
    apps = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
    document = requests.get(_url(lab, apps), headers=_auth(lab), verify=lab.ca_file, timeout=10).json()
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "version": "v1",
        "kind": "Deployment",
    }
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}


def test_accept_negotiation(lab: Lab) -> None:
    only_protobuf = {**_auth(lab), "Accept": "application/vnd.kubernetes.protobuf"}
    answer = requests.get(
        _url(lab, "/api/v1/namespaces/default"), headers=only_protobuf, verify=lab.ca_file, timeout=10
    )
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    assert answer.json()["kind"] == "Namespace"
    html = {**_auth(lab), "Accept": "text/html"}
    refused = requests.get(_url(lab, "/api/v1/namespaces"), headers=html, verify=lab.ca_file, timeout=10)
    assert refused.status_code == 406 and refused.json()["reason"] == "NotAcceptable"


@pytest.mark.parametrize(
    "case",
    [
        (b'{"metadata": {"name": ', "application/json", 400, "BadRequest"),
        (b"metadata: [unclosed", "application/yaml", 400, "BadRequest"),
        (b'["not", "an", "object"]', "application/json", 400, "BadRequest"),
        (b'{"metadata": {"name": "UPPER"}}', "application/json", 422, "Invalid"),
        (b'{"metadata": {"name": "x"}}', "text/html", 415, "UnsupportedMediaType"),
        (b"k8s\x00garbage", "application/vnd.kubernetes.protobuf", 400, "BadRequest"),
    ],
)
def test_bad_bodies_get_status_errors(lab: Lab, ns: str, case: tuple[bytes, str, int, str]) -> None:
    body, content_type, status, reason = case
    headers = {**_auth(lab), "Content-Type": content_type}
    answer = requests.post(
        _url(lab, f"/api/v1/namespaces/{ns}/configmaps"),
        data=body,
        headers=headers,
        verify=lab.ca_file,
        timeout=10,
    )
    assert answer.status_code == status
    assert answer.json()["kind"] == "Status" and answer.json()["reason"] == reason


def test_strict_and_warn_field_validation(lab: Lab, ns: str) -> None:
    body = json.dumps({"metadata": {"name": "fv", "colour": "red"}, "data": {}}).encode()
    headers = {**_auth(lab), "Content-Type": "application/json"}
    strict = requests.post(
        _url(lab, f"/api/v1/namespaces/{ns}/configmaps?fieldValidation=Strict"),
        data=body,
        headers=headers,
        verify=lab.ca_file,
        timeout=10,
    )
    assert strict.status_code == 400 and 'unknown field "metadata.colour"' in strict.json()["message"]
    warned = requests.post(
        _url(lab, f"/api/v1/namespaces/{ns}/configmaps?fieldValidation=Warn"),
        data=body,
        headers=headers,
        verify=lab.ca_file,
        timeout=10,
    )
    assert warned.status_code == 201 and "metadata.colour" in warned.headers["Warning"]


def test_oversize_body_is_413_and_server_stays_up(lab: Lab, ns: str) -> None:
    huge = b'{"metadata":{"name":"big"},"data":{"a":"' + b"x" * (3 * 1024 * 1024 + 10) + b'"}}'
    headers = {**_auth(lab), "Content-Type": "application/json"}
    try:
        answer = requests.post(
            _url(lab, f"/api/v1/namespaces/{ns}/configmaps"),
            data=huge,
            headers=headers,
            verify=lab.ca_file,
            timeout=30,
        )
        assert answer.status_code == 413 and answer.json()["reason"] == "RequestEntityTooLarge"
    except requests.exceptions.ConnectionError:
        pass  # the server may close the connection before the client finished sending, as real ones do
    assert requests.get(_url(lab, "/healthz"), verify=lab.ca_file, timeout=10).text == "ok"
    assert not [c for c in lab.store.list(GVR.core("configmaps"), ns)[0] if c["metadata"]["name"] == "big"]


class RawClient:
    """One kept-alive TLS connection to the API server, for request framings HTTP libraries do
    not send on purpose."""

    def __init__(self, lab: Lab) -> None:
        context = ssl.create_default_context(cafile=str(lab.ca_file))
        raw = socket.create_connection(("127.0.0.1", lab.server.port), timeout=10)
        self.tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.reader = self.tls.makefile("rb")
        self.token = lab.server.token

    def send(self, method: str, path: str, framing: str, body: bytes = b"") -> None:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: lab\r\nAuthorization: Bearer {self.token}\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n"
        )
        self.tls.sendall(head.encode() + body)

    def answer(self) -> tuple[int, dict[str, Any]]:
        _, status, _, headers = read_response_head(self.reader)
        return status, json.loads(read_body(self.reader, headers, until_close=True))

    def closed_by_server(self) -> bool:
        return self.reader.read(1) == b""

    def close(self) -> None:
        self.reader.close()
        self.tls.close()


@pytest.fixture
def raw_client(lab: Lab) -> Iterator[RawClient]:
    connection = RawClient(lab)
    try:
        yield connection
    finally:
        connection.close()


def _chunked(data: bytes, size: int = 7) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def test_chunked_request_bodies_are_read_and_the_connection_kept(
    lab: Lab, ns: str, raw_client: RawClient
) -> None:
    configmap = json.dumps({"metadata": {"name": "chunked"}, "data": {"a": "b"}}).encode()
    raw_client.send(
        "POST", f"/api/v1/namespaces/{ns}/configmaps", "Transfer-Encoding: chunked\r\n", _chunked(configmap)
    )
    status, created = raw_client.answer()
    assert (status, created["data"]) == (201, {"a": "b"})
    # a body the route does not read (GET) is dropped, not taken for the next request
    raw_client.send(
        "GET",
        f"/api/v1/namespaces/{ns}/configmaps/chunked",
        "Transfer-Encoding: chunked\r\n",
        _chunked(b"ignored"),
    )
    status, fetched = raw_client.answer()
    assert (status, fetched["metadata"]["name"]) == (200, "chunked")
    raw_client.send("GET", f"/api/v1/namespaces/{ns}/configmaps/chunked", "")
    assert raw_client.answer()[0] == 200


@pytest.mark.parametrize(
    ("framing", "body", "refusal"),
    [
        ("Transfer-Encoding: chunked\r\n", b"%x\r\n" % (3 * 1024 * 1024 + 1), (413, "RequestEntityTooLarge")),
        ("Transfer-Encoding: chunked\r\n", b"zz\r\n", (400, "BadRequest")),
        ("Content-Length: ten\r\n", b"{}", (400, "BadRequest")),
        ("Content-Length: -1\r\n", b"{}", (400, "BadRequest")),
    ],
    ids=["chunked-over-3MiB", "bad-chunk-size", "bad-content-length", "negative-content-length"],
)
def test_unreadable_or_oversize_bodies_are_status_errors_that_end_the_connection(
    ns: str, raw_client: RawClient, framing: str, body: bytes, refusal: tuple[int, str]
) -> None:
    raw_client.send("POST", f"/api/v1/namespaces/{ns}/configmaps", framing, body)
    code, reason = refusal
    status, answer = raw_client.answer()
    assert (status, answer["kind"], answer["code"], answer["reason"]) == (code, "Status", code, reason)
    assert raw_client.closed_by_server()


def test_garbage_clients_do_not_wedge_the_server(lab: Lab) -> None:
    silent = socket.create_connection(("127.0.0.1", lab.server.port), timeout=10)
    plain = socket.create_connection(("127.0.0.1", lab.server.port), timeout=10)
    plain.sendall(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n")
    context = ssl.create_default_context(cafile=str(lab.ca_file))
    with (
        socket.create_connection(("127.0.0.1", lab.server.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        assert b"400" in tls.recv(4096)  # a Bad Request page, then the connection ends
    assert requests.get(_url(lab, "/healthz"), verify=lab.ca_file, timeout=10).text == "ok"
    silent.close()
    plain.close()


def test_server_survives_client_vanishing_mid_watch(lab: Lab, ns: str) -> None:
    context = ssl.create_default_context(cafile=str(lab.ca_file))
    raw = socket.create_connection(("127.0.0.1", lab.server.port), timeout=10)
    tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
    tls.sendall(
        f"GET /api/v1/namespaces/{ns}/configmaps?watch=true HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {lab.server.token}\r\n\r\n".encode()
    )
    assert tls.recv(200).startswith(b"HTTP/1.1 200")
    lab.wait_until(lambda: len(lab.store._watches) >= 2, message="the watch to open")
    watches_before = len(lab.store._watches)
    tls.close()
    lab.wait_until(
        lambda: len(lab.store._watches) < watches_before, message="the abandoned watch to be closed"
    )
    assert requests.get(_url(lab, "/healthz"), verify=lab.ca_file, timeout=10).text == "ok"


class _Backend(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps(
            {"method": self.command, "path": self.path, "body": self.rfile.read(length).decode()}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@pytest.fixture
def backend() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.3", 0), _Backend)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_service_and_pod_proxy(
    lab: Lab, ns: str, api_client: client.ApiClient, backend: http.server.ThreadingHTTPServer
) -> None:
    port = int(backend.server_address[1])
    lab.store.create(
        GVR.core("services"),
        {"metadata": {"name": "web"}, "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}},
        namespace=ns,
    )
    lab.store.create(
        GVR.core("endpoints"),
        {
            "metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "127.0.0.3"}], "ports": [{"name": "http", "port": port}]}],
        },
        namespace=ns,
    )
    raw = lab.kubectl(
        "get", "--raw", f"/api/v1/namespaces/{ns}/services/web:http/proxy/api/v1/query?query=up"
    ).stdout
    assert json.loads(raw) == {"method": "GET", "path": "/api/v1/query?query=up", "body": ""}
    core = client.CoreV1Api(api_client)
    answer = core.connect_get_namespaced_service_proxy_with_path(
        "web", ns, "status/200", _preload_content=False
    )
    assert json.loads(answer.data)["path"] == "/status/200"
    posted = requests.post(
        _url(lab, f"/api/v1/namespaces/{ns}/services/web/proxy/submit"),
        data=b"payload",
        headers=_auth(lab),
        verify=lab.ca_file,
        timeout=10,
    )
    assert posted.json() == {"method": "POST", "path": "/submit", "body": "payload"}
    lab.store.create(
        GVR.core("pods"),
        {
            "metadata": {"name": "pp"},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": port}]}]},
        },
        namespace=ns,
    )
    pod = lab.store.get(GVR.core("pods"), ns, "pp")
    pod["status"] = {"phase": "Running", "podIP": "127.0.0.3"}
    lab.store.update(GVR.core("pods"), pod, subresource="status")
    via_pod = requests.get(
        _url(lab, f"/api/v1/namespaces/{ns}/pods/pp/proxy/x"),
        headers=_auth(lab),
        verify=lab.ca_file,
        timeout=10,
    )
    assert via_pod.json()["path"] == "/x"
    lab.store.create(
        GVR.core("services"), {"metadata": {"name": "empty"}, "spec": {"ports": [{"port": 80}]}}, namespace=ns
    )
    missing = requests.get(
        _url(lab, f"/api/v1/namespaces/{ns}/services/empty/proxy/"),
        headers=_auth(lab),
        verify=lab.ca_file,
        timeout=10,
    )
    assert missing.status_code == 503 and "no endpoints available" in missing.json()["message"]


def _watch_events(lab: Lab, path: str, count: int) -> list[dict[str, object]]:
    response = requests.get(_url(lab, path), headers=_auth(lab), verify=lab.ca_file, stream=True, timeout=20)
    assert response.status_code == 200
    events = []
    for line in response.iter_lines():
        if line:
            events.append(json.loads(line))
        if len(events) == count:
            break
    response.close()
    return events


def test_watch_bookmarks_and_initial_events(lab: Lab, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_meshcheck.lab.apiserver import watching

    monkeypatch.setattr(watching, "BOOKMARK_INTERVAL_SECONDS", 0.1)
    lab.store.create(GVR.core("configmaps"), {"metadata": {"name": "present"}}, namespace=ns)
    base = f"/api/v1/namespaces/{ns}/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=10"
    initial = _watch_events(lab, base + "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan", 2)
    assert initial[0]["type"] == "ADDED"
    assert initial[1]["type"] == "BOOKMARK"
    bookmark = initial[1]["object"]
    assert isinstance(bookmark, dict) and bookmark["metadata"]["annotations"] == {
        "k8s.io/initial-events-end": "true"
    }
    idle = _watch_events(lab, base + f"&resourceVersion={lab.store.resource_version}", 1)
    assert idle[0]["type"] == "BOOKMARK"


def test_aggregated_discovery_when_asked(lab: Lab) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    answer = requests.get(
        _url(lab, "/apis"), headers={**_auth(lab), "Accept": accept}, verify=lab.ca_file, timeout=10
    )
    assert (
        answer.headers["Content-Type"]
        == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    )
    groups = {item["metadata"]["name"]: item for item in answer.json()["items"]}
    deployments = next(
        r for r in groups["apps"]["versions"][0]["resources"] if r["resource"] == "deployments"
    )
    assert (
        deployments["scope"] == "Namespaced"
        and {"subresource": "scale"}.items() <= deployments["subresources"][1].items()
    )
    core = requests.get(
        _url(lab, "/api"), headers={**_auth(lab), "Accept": accept}, verify=lab.ca_file, timeout=10
    ).json()
    assert [item["metadata"]["name"] for item in core["items"]] == [""]
    legacy = requests.get(_url(lab, "/apis"), headers=_auth(lab), verify=lab.ca_file, timeout=10).json()
    assert legacy["kind"] == "APIGroupList"


def test_stop_ends_streams_and_frees_the_port(tmp_path: Path) -> None:
    store = Store()
    server = ApiServer(store, state_dir=tmp_path)
    server.start()
    port = server.port
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(server.ca_pem)
    context = ssl.create_default_context(cafile=str(ca_file))
    tls = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1"
    )
    tls.sendall(
        f"GET /api/v1/configmaps?watch=1 HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {server.token}\r\n\r\n".encode()
    )
    received = tls.recv(4096)
    assert received.startswith(b"HTTP/1.1 200")
    server.stop()
    while not received.endswith(b"0\r\n\r\n"):
        chunk = tls.recv(4096)  # the socket timeout (10 s) bounds this wait
        if not chunk:
            break
        received += chunk
    tls.close()
    with socket.create_server(("127.0.0.1", port)):
        pass  # the listening port is free again
