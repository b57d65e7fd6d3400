from __future__ import annotations

import contextlib
import datetime
import io
import json
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.shell import run_command
from pytest_meshcheck.lab.workloads.httpbin import go_httpbin_factory

from .conftest import PodNet

Curl = Callable[..., tuple[int, str, str]]


class RawServer:
    """A TCP listener with a scripted misbehaviour, for curl's failure paths."""

    def __init__(
        self, ip: str, behaviour: str, tls: ssl.SSLContext | None = None, *, reply: bytes = b""
    ) -> None:
        self.behaviour = behaviour
        self.tls = tls
        self.reply = reply
        self.listener = socket.create_server((ip, 0))
        self.port = self.listener.getsockname()[1]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.accepted: list[socket.socket] = []
        if behaviour != "never-accept":
            self.thread.start()

    def serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self.done.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)
            if self.behaviour == "tls":
                assert self.tls is not None
                try:
                    with self.tls.wrap_socket(conn, server_side=True) as wrapped:
                        wrapped.recv(65536)
                        body = b"secure"
                        wrapped.sendall(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\n" + body
                        )
                except (ssl.SSLError, OSError):
                    pass
                continue
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                conn.recv(65536)
            if self.behaviour == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            elif self.behaviour == "empty":
                conn.close()
            elif self.behaviour == "short":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-this")
                conn.close()
            elif self.behaviour in ("send-and-close", "send-and-stay"):
                with contextlib.suppress(OSError):
                    conn.sendall(self.reply)
                    if self.behaviour == "send-and-stay":  # open until the client hangs up
                        while conn.recv(65536):
                            pass
                conn.close()

    def close(self) -> None:
        self.done.set()
        self.listener.close()
        if self.thread.is_alive():
            self.thread.join(5)
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def raw_server(podnet: PodNet) -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def build(behaviour: str, tls: ssl.SSLContext | None = None, *, reply: bytes = b"") -> RawServer:
        server = RawServer(podnet.address(), behaviour, tls, reply=reply)
        servers.append(server)
        return server

    yield build
    for server in servers:
        server.close()


@pytest.fixture
def httpbin(podnet: PodNet) -> str:
    podnet.start(
        go_httpbin_factory, name="httpbin", image="docker.io/mccutchen/go-httpbin:v2.15.0", service="httpbin"
    )
    return "httpbin:8080"


@pytest.fixture
def ctx(make_context: Callable[..., WorkloadContext]) -> WorkloadContext:
    return make_context(name="curl", image="docker.io/curlimages/curl:8.16.0")


@pytest.fixture
def curl(ctx: WorkloadContext) -> Curl:
    def execute(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
        out, err = io.BytesIO(), io.BytesIO()
        code = run_command(["curl", *args], ctx, io.BytesIO(stdin), out, err)
        return code, out.getvalue().decode(), err.getvalue().decode()

    return execute


def test_get_prints_body(curl: Curl, httpbin: str) -> None:
    code, out, err = curl("-sS", f"{httpbin}/headers")
    assert (code, err) == (0, "")
    headers = json.loads(out)["headers"]
    assert headers["User-Agent"] == ["curl/8.16.0"]
    assert headers["Host"] == [httpbin]
    assert headers["Accept"] == ["*/*"]


def test_write_out_and_output_file(curl: Curl, httpbin: str, ctx: WorkloadContext) -> None:
    code, out, _ = curl("-s", "-o", "/dev/null", "-w", "%{http_code}\\n", f"http://{httpbin}/status/418")
    assert (code, out) == (0, "418\n")
    code, out, _ = curl(
        "-so", "/tmp/ip.json", "-w", "%{http_code} %{content_type} %{method}", f"{httpbin}/ip"
    )
    assert (code, out) == (0, "200 application/json; charset=utf-8 GET")
    body = io.BytesIO()
    run_command(["cat", "/tmp/ip.json"], ctx, None, body, io.BytesIO())
    assert json.loads(body.getvalue())["origin"] == ctx.pod_ip


def test_write_out_variables(curl: Curl, httpbin: str, podnet: PodNet) -> None:
    fmt = (
        "%{remote_ip}:%{remote_port} v%{http_version} %{url_effective} %{num_redirects} "
        "%{size_download} %{nope}"
    )
    code, out, err = curl("-s", "-o", "/dev/null", "-w", fmt, f"{httpbin}/uuid")
    assert code == 0
    ip = podnet.resolver.names["httpbin"]
    remote, version, url, redirects, size = out.split(" ")[:5]
    assert (remote, version, url, redirects) == (f"{ip}:8080", "v1.1", f"http://{httpbin}/uuid", "0")
    assert int(size) > 0
    assert "unknown --write-out variable: 'nope'" in err


def test_head_include_headers_method_and_data(curl: Curl, httpbin: str) -> None:
    code, out, _ = curl("-sSI", f"{httpbin}/status/503")
    assert code == 0
    assert out.startswith("HTTP/1.1 503 Service Unavailable\r\n")
    assert out.endswith("\r\n\r\n")
    code, out, _ = curl("-si", "-H", "X-Probe: one", "-H", "User-Agent: probe/1", f"{httpbin}/headers")
    head, _, body = out.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 OK")
    sent = json.loads(body)["headers"]
    assert sent["X-Probe"] == ["one"]
    assert sent["User-Agent"] == ["probe/1"]
    code, out, _ = curl("-s", "-X", "PUT", "-d", "a=1", "-d", "b=2", f"{httpbin}/anything")
    echo = json.loads(out)
    assert (echo["method"], echo["data"]) == ("PUT", "a=1&b=2")
    assert echo["headers"]["Content-Type"] == ["application/x-www-form-urlencoded"]
    code, out, _ = curl("-s", "--data", '{"k": 1}', "-H", "Content-Type: application/json", f"{httpbin}/post")
    assert json.loads(out)["json"] == {"k": 1}


def test_fail_and_verbose(curl: Curl, httpbin: str) -> None:
    code, out, err = curl("-sSf", "-w", "%{http_code}", f"{httpbin}/status/404")
    assert (code, out) == (22, "404")
    assert err == "curl: (22) The requested URL returned error: 404\n"
    code, _, err = curl("-v", "-o", "/dev/null", f"{httpbin}/get")
    assert code == 0
    assert "> GET /get HTTP/1.1\n" in err
    assert f"> Host: {httpbin}\n" in err
    assert "< HTTP/1.1 200 OK\n" in err


def test_follow_redirects(curl: Curl, httpbin: str) -> None:
    code, out, _ = curl(
        "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", f"{httpbin}/status/302"
    )
    assert (code, out) == (0, f"302 http://{httpbin}/redirect/1")
    code, out, _ = curl(
        "-sL", "-o", "/dev/null", "-w", "%{http_code} %{num_redirects}", f"{httpbin}/status/302"
    )
    assert (code, out) == (0, "404 1")


def test_reset_prints_000_and_exits_56(curl: Curl, raw_server: Callable[..., RawServer]) -> None:
    server = raw_server("reset")
    url = f"http://{server.listener.getsockname()[0]}:{server.port}/ip"
    code, out, err = curl("-s", "-o", "/dev/null", "-w", "sleep.legacy to httpbin.foo: %{http_code}\\n", url)
    assert (code, out, err) == (56, "sleep.legacy to httpbin.foo: 000\n", "")
    code, _, err = curl("-sS", url)
    assert (code, err) == (56, "curl: (56) Recv failure: Connection reset by peer\n")


def test_refused_exits_7(curl: Curl, podnet: PodNet) -> None:
    address = podnet.address()
    code, out, err = curl("-sS", "-w", "%{http_code}", f"http://{address}:9/")
    assert (code, out) == (7, "000")
    assert err.startswith(f"curl: (7) Failed to connect to {address} port 9 after ")
    assert err.endswith(" ms: Couldn't connect to server\n")


def test_unresponsive_server_times_out_with_28(curl: Curl, raw_server: Callable[..., RawServer]) -> None:
    server = raw_server("never-accept")
    url = f"http://{server.listener.getsockname()[0]}:{server.port}/"
    code, out, err = curl("-sS", "-m", "0.3", "-w", "%{http_code}", url)
    assert (code, out) == (28, "000")
    assert err.startswith("curl: (28) Operation timed out after ")
    assert err.endswith(" milliseconds with 0 bytes received\n")


def test_unresolvable_host_exits_6(curl: Curl) -> None:
    assert curl("-sS", "http://nosuchservice.default.svc.cluster.local/") == (
        6,
        "",
        "curl: (6) Could not resolve host: nosuchservice.default.svc.cluster.local\n",
    )


def test_empty_reply_and_short_body(curl: Curl, raw_server: Callable[..., RawServer]) -> None:
    empty = raw_server("empty")
    code, out, err = curl("-sS", "-w", "%{http_code}", f"{empty.listener.getsockname()[0]}:{empty.port}")
    assert (code, out, err) == (52, "000", "curl: (52) Empty reply from server\n")
    short = raw_server("short")
    code, out, err = curl("-sS", f"{short.listener.getsockname()[0]}:{short.port}")
    assert (code, out) == (18, "only-this")
    assert err == "curl: (18) transfer closed with 91 bytes remaining to read\n"


def test_usage_errors(curl: Curl) -> None:
    assert curl("-s")[0] == 2
    code, _, err = curl("--frobnicate", "x")
    assert code == 2
    assert "option --frobnicate: is unknown" in err
    assert curl("-s", "ftp://host/")[0] == 1


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


def test_https(curl: Curl, raw_server: Callable[..., RawServer], tmp_path: Path) -> None:
    server = raw_server("tls", _self_signed(tmp_path))
    url = f"https://{server.listener.getsockname()[0]}:{server.port}/"
    assert curl("-sk", "-w", " %{http_code}", url) == (0, "secure 200", "")
    code, out, err = curl("-sS", "-w", "%{http_code}", url)
    assert (code, out) == (60, "000")
    assert err.startswith("curl: (60) SSL certificate problem: ")
    reset = raw_server("reset")
    code, _, err = curl("-sS", "-k", f"https://{reset.listener.getsockname()[0]}:{reset.port}/")
    assert code == 35
    assert err.startswith("curl: (35) ")


def test_more_options(curl: Curl, httpbin: str, ctx: WorkloadContext, podnet: PodNet) -> None:
    ip = podnet.resolver.names["httpbin"]
    code, out, _ = curl("-s", "--resolve", f"example.test:8080:{ip}", "http://example.test:8080/headers")
    assert code == 0
    assert json.loads(out)["headers"]["Host"] == ["example.test:8080"]
    code, out, _ = curl("-s", "-G", "-d", "q=1", "-u", "me:pw", "-H", "Accept:", f"{httpbin}/get")
    echo = json.loads(out)
    assert echo["args"] == {"q": ["1"]}
    assert echo["headers"]["Authorization"] == ["Basic bWU6cHc="]
    assert "Accept" not in echo["headers"]
    run_command(["sh", "-c", "echo 'from-file' > /tmp/body"], ctx, None, io.BytesIO(), io.BytesIO())
    code, out, _ = curl("-s", "--data-binary", "@/tmp/body", f"{httpbin}/post")
    assert json.loads(out)["data"] == "from-file\n"
    code, out, _ = curl("-s", "-D", "/tmp/head", "-o", "/dev/null", f"{httpbin}/uuid")
    head = io.BytesIO()
    run_command(["cat", "/tmp/head"], ctx, None, head, io.BytesIO())
    assert head.getvalue().startswith(b"HTTP/1.1 200 OK\r\n")


def test_write_out_specials(curl: Curl, httpbin: str) -> None:
    fmt = "%{header{content-type}}|%{stderr}to-err%{stdout}|%%|%{json}"
    code, out, err = curl("-s", "-o", "/dev/null", "-w", fmt, f"{httpbin}/ip")
    assert code == 0
    assert err == "to-err"
    content_type, rest, percent, as_json = out.split("|", 3)
    assert (content_type, rest, percent) == ("application/json; charset=utf-8", "", "%")
    assert json.loads(as_json)["http_code"] == "200"
    code, out, _ = curl("-s", "-o", "/dev/null", "-w", "ok%{onerror} failed %{exitcode}", f"{httpbin}/ip")
    assert out == "ok"


def test_retry_repeats_on_503(curl: Curl, podnet: PodNet) -> None:
    from pytest_meshcheck.lab.workloads.ratings import ratings_factory

    podnet.start(
        ratings_factory,
        name="ratings-v1",
        image="docker.io/istio/examples-bookinfo-ratings-v1:1.20.3",
        service="ratings",
        env={"SERVICE_VERSION": "v-unavailable"},
    )
    argv = ("-sS", "--retry", "1", "--retry-delay", "1", "-w", " %{http_code}", "ratings:9080/ratings/0")
    code, out, err = curl(*argv)
    assert (code, out, err) == (0, '{"error": "Service unavailable"} 503', "")
    assert podnet.logs["ratings-v1"].text().count("GET /ratings/0") == 2


def test_verbose_failure_and_silent_show_error(curl: Curl, podnet: PodNet) -> None:
    address = podnet.address()
    code, _, err = curl("-v", f"http://{address}:9/")
    assert code == 7
    assert f"*   Trying {address}:9...\n" in err
    assert f"* connect to {address} port 9 failed: Connection refused\n" in err
    assert err.endswith("Couldn't connect to server\n")
    assert curl("-s", f"http://{address}:9/") == (7, "", "")


def _url(server: RawServer) -> str:
    return f"http://{server.listener.getsockname()[0]}:{server.port}/"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
            (0, "abcde 200", ""),
            id="chunked",
        ),
        pytest.param(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", (0, "until the end 200", ""), id="until-close"),
        pytest.param(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            (0, "ok 201", ""),
            id="interim-100-skipped",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n5\r\nde",
            (18, "abcde 200", "curl: (18) transfer closed with outstanding read data remaining\n"),
            id="chunked-cut-short",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
            (56, "abc 200", "curl: (56) Illegal or missing hexadecimal sequence in chunked-encoding\n"),
            id="bad-chunk-size",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\nsome body",
            (8, " 200", "curl: (8) Invalid Content-Length: ten\n"),
            id="bad-content-length",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            (8, " 000", "curl: (8) Weird server reply\n"),
            id="malformed-header",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (80 * 1024) + b"\r\nContent-Length: 2\r\n\r\nok",
            (0, "ok 200", ""),
            id="head-larger-than-a-servers-limit",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (300 * 1024) + b"\r\n\r\n",
            (100, " 000", "curl: (100) A value or data field grew larger than allowed\n"),
            id="head-too-large",
        ),
    ],
)
def test_response_framing(
    curl: Curl, raw_server: Callable[..., RawServer], reply: bytes, expected: tuple[int, str, str]
) -> None:
    server = raw_server("send-and-close", reply=reply)
    assert curl("-sS", "-m", "10", "-w", " %{http_code}", _url(server)) == expected


@pytest.mark.parametrize(
    ("args", "reply", "expected"),
    [
        pytest.param(
            ("-I",),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            (0, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n 200", ""),
            id="head-with-content-length",
        ),
        pytest.param(
            (),
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            (0, " 304", ""),
            id="304-with-content-length",
        ),
        pytest.param((), b"HTTP/1.1 204 No Content\r\n\r\n", (0, " 204", ""), id="204"),
        pytest.param(
            (),
            b"HTTP/1.1 200 OK\r\nContent-Length: 67108865\r\n\r\n",
            (63, " 200", "curl: (63) Exceeded the maximum allowed file size\n"),
            id="content-length-over-the-limit",
        ),
        pytest.param(
            (),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4000001\r\n",
            (63, " 200", "curl: (63) Exceeded the maximum allowed file size\n"),
            id="chunk-over-the-limit",
        ),
        pytest.param(
            (),
            b"SSH-2.0-OpenSSH_9.6\r\n",
            (1, " 000", "curl: (1) Received HTTP/0.9 when not allowed\n"),
            id="not-http",
        ),
    ],
)
def test_curl_answers_without_waiting_for_bytes_that_will_not_come(
    curl: Curl,
    raw_server: Callable[..., RawServer],
    args: tuple[str, ...],
    reply: bytes,
    expected: tuple[int, str, str],
) -> None:
    """The server keeps the connection open: a curl that waited for a body would time out (28)."""
    server = raw_server("send-and-stay", reply=reply)
    assert curl("-sS", "-m", "3", *args, "-w", " %{http_code}", _url(server)) == expected


def test_downloads_larger_than_a_servers_body_limit(curl: Curl, raw_server: Callable[..., RawServer]) -> None:
    size = 20 * 1024 * 1024  # over the lab servers' 16 MiB, under curl's limit
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size
    server = raw_server("send-and-close", reply=reply)
    assert curl("-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", _url(server)) == (
        0,
        f"200 {size}",
        "",
    )


def test_timeout_inside_the_body_keeps_what_arrived(curl: Curl, raw_server: Callable[..., RawServer]) -> None:
    server = raw_server("send-and-stay", reply=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    code, out, err = curl("-sS", "-m", "0.5", "-w", " %{http_code} %{size_download}", _url(server))
    assert (code, out) == (28, "abc 200 3")
    assert err.startswith("curl: (28) Operation timed out after ")
    assert err.endswith(" milliseconds with 3 bytes received\n")
