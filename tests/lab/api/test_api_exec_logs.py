"""pods/exec over WebSocket and pods/log, through a fake runtime, with kubectl and the Python client."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import time

import pytest
from kubernetes import client
from kubernetes.stream import stream
from lab_api_support import Lab

from pytest_meshcheck.lab.store import GVR


@pytest.fixture
def pod(lab: Lab, ns: str) -> str:
    spec = {"containers": [{"name": "app", "image": "img:1"}]}
    lab.store.create(GVR.core("pods"), {"metadata": {"name": "runner"}, "spec": spec}, namespace=ns)
    running = lab.store.get(GVR.core("pods"), ns, "runner")
    running["status"] = {"phase": "Running", "podIP": "127.0.0.1"}
    lab.store.update(GVR.core("pods"), running, subresource="status")
    return "runner"


def test_kubectl_exec_stdout_exit_code_and_stdin(lab: Lab, ns: str, pod: str) -> None:
    echoed = lab.kubectl("-n", ns, "exec", pod, "--", "echo", "hello", "world")
    assert echoed.stdout == "hello world\n"
    failed = lab.kubectl("-n", ns, "exec", pod, "--", "fail", "7", check=False)
    assert failed.returncode == 7 and "failing on purpose" in failed.stderr
    copied = lab.kubectl("-n", ns, "exec", "-i", pod, "--", "cat", input="from stdin\n")
    assert copied.stdout == "from stdin\n"
    missing = lab.kubectl("-n", ns, "exec", pod, "--", "nosuchcommand", check=False)
    assert missing.returncode != 0 and "executable file not found" in missing.stderr
    assert lab.kubectl("-n", ns, "exec", pod, "-c", "app", "--", "whoami").stdout == f"{ns}/{pod}/app\n"


def test_python_stream_exec(api_client: client.ApiClient, ns: str, pod: str) -> None:
    core = client.CoreV1Api(api_client)
    output = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        ns,
        command=["echo", "py"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert output == "py\n"
    session = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        ns,
        command=["fail", "3"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    session.run_forever(timeout=10)
    assert session.returncode == 3
    assert "failing on purpose" in session.read_stderr()


def test_exec_errors_before_upgrade(lab: Lab, ns: str, pod: str) -> None:
    result = lab.kubectl("-n", ns, "exec", "ghost", "--", "echo", check=False)
    assert result.returncode != 0 and 'pods "ghost" not found' in result.stderr
    result = lab.kubectl("-n", ns, "exec", pod, "-c", "nope", "--", "echo", check=False)
    assert result.returncode != 0 and "container nope is not valid" in result.stderr


def _raw_tls(lab: Lab) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(lab.ca_file))
    raw = socket.create_connection(("127.0.0.1", lab.server.port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_server_survives_client_vanishing_mid_exec(lab: Lab, ns: str, pod: str) -> None:
    lab.runtime.exec_finished.clear()
    conn = _raw_tls(lab)
    key = base64.b64encode(os.urandom(16)).decode()
    conn.sendall(
        (
            f"GET /api/v1/namespaces/{ns}/pods/{pod}/exec?command=wait-stdin&stdin=true&stdout=true "
            "HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {lab.server.token}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
        ).encode()
    )
    assert conn.recv(4096).startswith(b"HTTP/1.1 101")
    conn.close()
    assert lab.runtime.exec_finished.wait(10), "the exec did not end when its client went away"
    assert lab.kubectl("-n", ns, "exec", pod, "--", "echo", "still-up").stdout == "still-up\n"


def test_logs_tail_container_previous_and_follow(
    lab: Lab, api_client: client.ApiClient, ns: str, pod: str
) -> None:
    all_lines = lab.kubectl("-n", ns, "logs", pod).stdout.splitlines()
    assert all_lines == [f"app:line-{i}" for i in range(5)]
    assert lab.kubectl("-n", ns, "logs", pod, "--tail=2", "-c", "app").stdout.splitlines() == [
        "app:line-3",
        "app:line-4",
    ]
    previous = lab.kubectl("-n", ns, "logs", pod, "--previous", check=False)
    assert previous.returncode != 0 and "previous terminated container" in previous.stderr
    core = client.CoreV1Api(api_client)
    assert core.read_namespaced_pod_log(pod, ns, tail_lines=1) == "app:line-4\n"
    lab.runtime.follow_stopped.clear()
    followed = core.read_namespaced_pod_log(pod, ns, follow=True, _preload_content=False)
    received = b""
    deadline = time.monotonic() + 10
    while b"tick-2" not in received and time.monotonic() < deadline:
        received += followed.read(64, decode_content=False) or b""
    followed.close()  # closes the connection itself: the server must notice and stop following
    assert b"app:line-0" in received and b"tick-2" in received
    assert lab.runtime.follow_stopped.wait(10), "the follow did not stop when the client disconnected"


def test_exec_status_json_on_v4_error_channel(lab: Lab, ns: str, pod: str) -> None:
    conn = _raw_tls(lab)
    key = base64.b64encode(os.urandom(16)).decode()
    conn.sendall(
        (
            f"GET /api/v1/namespaces/{ns}/pods/{pod}/exec?command=fail&command=4&stdout=true&stderr=true "
            "HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {lab.server.token}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: v5.channel.k8s.io, v4.channel.k8s.io\r\n\r\n"
        ).encode()
    )
    data = b""
    while b"NonZeroExitCode" not in data or not data.rstrip().endswith(b"}"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    conn.close()
    head, _, frames = data.partition(b"\r\n\r\n")
    assert b"Sec-WebSocket-Protocol: v5.channel.k8s.io" in head
    messages = []
    while len(frames) >= 2:
        length, start = frames[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(frames[2:4], "big"), 4
        messages.append(frames[start : start + length])
        frames = frames[start + length :]
    error = next(m for m in messages if m[:1] == b"\x03")
    status = json.loads(error[1:])
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "4"}]


def test_exec_streams_a_megabyte_through_stdin_and_stdout(lab: Lab, ns: str, pod: str) -> None:
    payload = "".join(f"{i:07d}\n" for i in range(128 * 1024))  # 1 MiB, line-numbered
    copied = lab.kubectl("-n", ns, "exec", "-i", pod, "--", "cat", input=payload, timeout=60)
    assert copied.stdout == payload


def test_silent_follow_ends_when_the_client_hangs_up(
    lab: Lab, api_client: client.ApiClient, ns: str, pod: str
) -> None:
    lab.runtime.follow_stopped.clear()
    lab.runtime.follow_ticks = False
    try:
        core = client.CoreV1Api(api_client)
        followed = core.read_namespaced_pod_log(pod, ns, follow=True, tail_lines=0, _preload_content=False)
        assert followed.status == 200
        followed.close()
        assert lab.runtime.follow_stopped.wait(10), "a silent follow outlived its client"
    finally:
        lab.runtime.follow_ticks = True


def test_python_client_port_forward(lab: Lab, api_client: client.ApiClient, ns: str) -> None:
    import http.server
    import threading

    from kubernetes.stream import portforward

    class Hello(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            body = f"hello from {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    backend = http.server.ThreadingHTTPServer(("127.0.0.4", 0), Hello)
    thread = threading.Thread(target=backend.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    port = int(backend.server_address[1])
    try:
        lab.store.create(
            GVR.core("pods"),
            {"metadata": {"name": "pf"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
            namespace=ns,
        )
        running = lab.store.get(GVR.core("pods"), ns, "pf")
        running["status"] = {"phase": "Running", "podIP": "127.0.0.4"}
        lab.store.update(GVR.core("pods"), running, subresource="status")
        core = client.CoreV1Api(api_client)
        forward = portforward(core.connect_get_namespaced_pod_portforward, "pf", ns, ports=str(port))
        sock = forward.socket(port)
        sock.settimeout(10)
        sock.sendall(b"GET /pf HTTP/1.0\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        sock.close()
        assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(b"hello from /pf")
        assert forward.error(port) is None
    finally:
        backend.shutdown()
        backend.server_close()
        thread.join(5)


@pytest.mark.parametrize("websockets", ["true", "false"], ids=["spdy-over-websocket", "spdy"])
def test_kubectl_port_forward(lab: Lab, ns: str, websockets: str) -> None:
    import http.client
    import http.server
    import re
    import select
    import subprocess
    import threading

    from lab_api_support import KUBECTL

    class Hello(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            body = f"forwarded {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    backend = http.server.ThreadingHTTPServer(("127.0.0.6", 0), Hello)
    thread = threading.Thread(target=backend.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    remote = int(backend.server_address[1])
    spec = {"containers": [{"name": "c", "image": "i"}]}
    lab.store.create(GVR.core("pods"), {"metadata": {"name": "fwd"}, "spec": spec}, namespace=ns)
    running = lab.store.get(GVR.core("pods"), ns, "fwd")
    running["status"] = {"phase": "Running", "podIP": "127.0.0.6"}
    lab.store.update(GVR.core("pods"), running, subresource="status")
    process = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(lab.kubeconfig), "-n", ns, "port-forward", "pod/fwd", f":{remote}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "KUBECTL_PORT_FORWARD_WEBSOCKETS": websockets},
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, "kubectl port-forward did not report its local port"
        line = process.stdout.readline().decode()
        match = re.search(r"127\.0\.0\.1:(\d+) -> ", line)
        assert match, line
        for attempt in range(2):  # two connections: one SPDY stream pair each
            connection = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=10)
            connection.request("GET", f"/try-{attempt}")
            response = connection.getresponse()
            assert response.status == 200 and response.read() == f"forwarded /try-{attempt}".encode()
            connection.close()
    finally:
        process.terminate()
        process.wait(10)
        backend.shutdown()
        backend.server_close()
        thread.join(5)


def test_log_errors_from_the_runtime_are_status_even_when_following(lab: Lab, ns: str, pod: str) -> None:
    lab.runtime.waiting = True
    try:
        for args in ((), ("-f",)):
            result = lab.kubectl("-n", ns, "logs", pod, *args, check=False, timeout=30)
            assert result.returncode != 0 and "is waiting to start: ContainerCreating" in result.stderr
    finally:
        lab.runtime.waiting = False
