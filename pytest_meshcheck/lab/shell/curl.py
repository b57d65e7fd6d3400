"""``curl`` inside a lab container: real HTTP/1.1 over the container's dialer, curl's exit codes.

What callers rely on, and this keeps as curl does it: ``-w "%{http_code}"`` prints ``000`` when no
response arrived; the exit code names the failure (6 unresolvable host, 7 refused, 28 timeout,
35 TLS handshake, 52 empty reply, 55 send failure, 56 reset while receiving, 18 short body,
8 malformed response head, 63 body over ``MAX_BODY_BYTES``, 100 head over ``MAX_HEAD_BYTES``,
22 ``-f`` on a status >= 400, 47 too many redirects, 23 output not writable); error messages go to
stderr as ``curl: (N) ...`` unless ``-s`` hides them (``-S`` shows them again). Body data that
arrived before a failure is still written out, as curl writes bodies while they arrive. No
progress meter is drawn: it would only be noise on a non-terminal stderr. Responses are read with
the lab's one HTTP/1.1 framing (``httpframing``), with curl's own limits.

Cluster names are resolved by the pod's resolver, then the address is dialled through the pod's
dialer, so a captured pod's request leaves through its sidecar exactly as the app's would.
``localhost`` is the pod's own loopback (``local_ip``); the dialer leaves such connections
uncaptured, as istio-iptables leaves loopback traffic alone on a real node.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import os
import re
import socket
import ssl
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote_plus, urljoin, urlsplit

from pytest_meshcheck.lab.httpframing import (
    Headers,
    ProtocolError,
    read_body,
    read_response_head,
    response_has_body,
)
from pytest_meshcheck.lab.shell.curl_options import CurlOptions, CurlUsageError, parse_curl_args
from pytest_meshcheck.lab.shell.files import FileError
from pytest_meshcheck.lab.shell.interpreter import Shell, Streams
from pytest_meshcheck.lab.shell.writeout import Transfer, render

#: The curl the samples' current images ship, used when the image tag does not say.
DEFAULT_CURL_VERSION = "8.11.1"
#: Without ``-m`` curl could wait forever; in the lab no transfer outlives this.
MAX_TRANSFER_SECONDS = 600.0
#: curl's default connect timeout.
DEFAULT_CONNECT_TIMEOUT = 300.0
#: Sockets are read in slices this long so a stop or cancel is noticed promptly.
READ_SLICE = 0.2
#: A response head (all its lines) longer than this fails with exit code 100, like curl's header limit.
MAX_HEAD_BYTES = 256 * 1024
#: A body longer than this fails with exit code 63 ("Exceeded the maximum allowed file size"), as
#: a download over ``--max-filesize`` does; a Content-Length over it fails before anything is read.
MAX_BODY_BYTES = 64 * 1024 * 1024
LOCAL_NAMES = ("localhost", "127.0.0.1", "localhost.localdomain")
_REDIRECTS = {301, 302, 303, 307, 308}
_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
#: ``%{http_version}`` as curl prints it.
_HTTP_VERSIONS = {"HTTP/1.1": "1.1", "HTTP/1.0": "1"}


class CurlError(Exception):
    def __init__(self, code: int, message: str, *, partial: bytes = b"") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        #: Body bytes that did arrive before the failure (curl has written them out by then).
        self.partial = partial
        #: The response whose body failed, when its head had arrived.
        self.reply: Reply | None = None


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    userinfo: str
    url: str

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def parse_url(raw: str) -> Target:
    text = raw if "://" in raw else f"http://{raw}"
    split = urlsplit(text)
    scheme = split.scheme.lower()
    if scheme not in ("http", "https"):
        raise CurlError(1, f'Protocol "{scheme}" not supported or disabled in libcurl')
    try:
        port = split.port
    except ValueError:
        raise CurlError(3, "URL using bad/illegal format or missing URL") from None
    host = split.hostname or ""
    if not host:
        raise CurlError(3, "URL using bad/illegal format or missing URL")
    path = split.path or "/"
    if split.query:
        path += f"?{split.query}"
    userinfo = split.netloc.rpartition("@")[0] if "@" in split.netloc else ""
    port = port or (443 if scheme == "https" else 80)
    netloc = split.netloc.rpartition("@")[2]
    return Target(scheme, host, port, path, userinfo, f"{scheme}://{netloc}{path}")


@dataclass
class Reply:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    raw_head: bytes
    body: bytes = b""

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


class Wire:
    """The socket as ``httpframing`` reads it (``readline``/``read``), in short slices against the
    deadline, with failures translated into curl's. It keeps what curl shows of a transfer: the
    head's bytes as they arrived (``head``, for ``-i``/``-D``), the body data handed out so far
    (``body``, written out even when the transfer then fails) and whether the peer closed."""

    def __init__(
        self, sock: socket.socket, *, deadline: float, started: float, cancelled: Callable[[], bool]
    ):
        self.sock = sock
        self.deadline = deadline
        self.started = started
        self.cancelled = cancelled
        self.buffer = bytearray()
        self.head = bytearray()
        self.body = bytearray()
        self.closed = False
        self.first_byte_at: float | None = None

    def fill(self) -> bool:
        """Read more; ``False`` at end of stream."""
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                elapsed = int((time.monotonic() - self.started) * 1000)
                received = len(self.body) + len(self.buffer)
                raise CurlError(
                    28, f"Operation timed out after {elapsed} milliseconds with {received} bytes received"
                )
            if self.cancelled():
                raise CurlError(42, "Operation was aborted by an application callback")
            self.sock.settimeout(min(remaining, READ_SLICE))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                raise CurlError(56, "Recv failure: Connection reset by peer") from None
            except ssl.SSLError as error:
                raise CurlError(56, f"OpenSSL SSL_read: {error.reason or error}, errno 0") from None
            except OSError as error:
                raise CurlError(56, f"Recv failure: {error.strerror or error}") from None
            if not data:
                self.closed = True
                return False
            if self.first_byte_at is None:
                self.first_byte_at = time.monotonic()
            self.buffer += data
            return True

    def peek(self, size: int) -> bytes:
        """The first ``size`` bytes not yet read, or fewer if a line or the stream ends first."""
        while len(self.buffer) < size and b"\n" not in self.buffer and self.fill():
            pass
        return bytes(self.buffer[:size])

    def readline(self, size: int = -1, /) -> bytes:
        """Up to and including the next ``\\n``, at most ``size`` bytes; short only at EOF."""
        while b"\n" not in self.buffer and not 0 <= size <= len(self.buffer):
            if not self.fill():
                break
        end = self.buffer.find(b"\n") + 1 or len(self.buffer)
        if size >= 0:
            end = min(end, size)
        line = bytes(self.buffer[:end])
        del self.buffer[:end]
        self.head += line
        return line

    def read(self, size: int = -1, /) -> bytes:
        """``size`` bytes (all up to EOF when negative); short only at EOF. Only body data is read
        this way (chunk-size lines come through ``readline``), so what arrived of it is kept in
        ``body`` even when the deadline or a reset cuts the read short."""
        try:
            while (size < 0 or len(self.buffer) < size) and self.fill():
                pass
        finally:
            end = len(self.buffer) if size < 0 else min(size, len(self.buffer))
            data = bytes(self.buffer[:end])
            del self.buffer[:end]
            self.body += data
        return data


@dataclass
class Attempt:
    transfer: Transfer
    document: bytearray = field(default_factory=bytearray)
    dumped_headers: bytearray = field(default_factory=bytearray)
    responded: bool = False


class Curl:
    def __init__(self, shell: Shell, options: CurlOptions, streams: Streams) -> None:
        self.shell = shell
        self.ctx = shell.ctx
        self.options = options
        self.streams = streams

    # --- top level ------------------------------------------------------------------------------

    def run(self) -> int:
        status = 0
        for number, url in enumerate(self.options.urls):
            status = self.transfer(url, number)
        return status

    def transfer(self, url: str, number: int) -> int:
        options = self.options
        attempt = self.attempt(url, number)
        for left in range(options.retry, 0, -1):
            if not self.should_retry(attempt):
                break
            # curl's default backoff (1 s, doubling) also applies when --retry-delay is 0.
            delay = options.retry_delay or float(2 ** (options.retry - left))
            if not options.silent:
                self.err(
                    f"Warning: Problem : {self.problem(attempt)}. Will retry in {delay:g} seconds. "
                    f"{left} retr{'y' if left == 1 else 'ies'} left.\n"
                )
            if not self.shell.wait(delay):
                break
            attempt = self.attempt(url, number)
        return self.finish(attempt, number)

    def should_retry(self, attempt: Attempt) -> bool:
        code = attempt.transfer.exitcode
        if self.options.retry_all_errors:
            return code != 0
        if code == 28 or (code == 7 and self.options.retry_connrefused):
            return True
        return code in (0, 22) and attempt.transfer.http_code in _RETRYABLE_STATUS

    def problem(self, attempt: Attempt) -> str:
        if attempt.transfer.exitcode == 28:
            return "timeout"
        if attempt.transfer.http_code:
            return f"HTTP error {attempt.transfer.http_code}"
        return "connection problem"

    def finish(self, attempt: Attempt, number: int) -> int:
        transfer = attempt.transfer
        destination = self.destination(number, transfer)
        transfer.filename_effective = destination or ""
        if attempt.responded or attempt.document:
            try:
                self.write_to(destination, bytes(attempt.document))
                if self.options.dump_header is not None:
                    self.write_to(self.options.dump_header, bytes(attempt.dumped_headers))
            except CurlError as error:
                transfer.exitcode, transfer.errormsg = error.code, error.message
        if self.options.write_out is not None:
            self.write_out(transfer)
        if transfer.exitcode and (not self.options.silent or self.options.show_error):
            self.err(f"curl: ({transfer.exitcode}) {transfer.errormsg}\n")
        return transfer.exitcode

    def destination(self, number: int, transfer: Transfer) -> str | None:
        if number < len(self.options.outputs):
            return self.options.outputs[number]
        if self.options.remote_name:
            name = urlsplit(transfer.url_effective).path.rsplit("/", 1)[-1]
            return name or None
        return None

    def write_to(self, destination: str | None, data: bytes) -> None:
        if destination in (None, "-", "/dev/stdout"):
            self.streams.stdout.write(data)
            return
        if destination == "/dev/stderr":
            self.streams.stderr.write(data)
            return
        assert destination is not None
        try:
            self.shell.files.write(self.shell.path(destination), data)
        except FileError as error:
            self.err(f"Warning: Failed to open the file {destination}: {error}\n")
            raise CurlError(23, "Failure writing output to destination") from None

    def write_out(self, transfer: Transfer) -> None:
        fmt = self.options.write_out or ""
        if fmt.startswith("@"):
            name = fmt[1:]
            try:
                raw = self.streams.stdin.read() if name == "-" and self.streams.stdin else b""
                if name != "-":
                    raw = self.shell.files.read(self.shell.path(name))
            except FileError:
                raw = b""
            fmt = raw.decode("utf-8", "replace")
        pieces, warnings = render(fmt, transfer)
        for warning in warnings:
            self.err(warning)
        for stream, text in pieces:
            target = self.streams.stdout if stream == "stdout" else self.streams.stderr
            target.write(text.encode())

    def err(self, text: str) -> None:
        self.streams.stderr.write(text.encode())

    def verbose(self, text: str) -> None:
        if self.options.verbose:
            self.err(text)

    # --- one attempt ----------------------------------------------------------------------------

    def attempt(self, url: str, number: int) -> Attempt:
        options = self.options
        started = time.monotonic()
        deadline = started + min(options.max_time or MAX_TRANSFER_SECONDS, MAX_TRANSFER_SECONDS)
        transfer = Transfer(url=url, url_effective=url, urlnum=number)
        attempt = Attempt(transfer)
        try:
            method, body, url = self.method_and_body(url)
            transfer.url_effective = parse_url(url).url
            transfer.method = method
            self.follow(attempt, url, method, body, started=started, deadline=deadline)
        except CurlError as error:
            transfer.exitcode, transfer.errormsg = error.code, error.message
            self.verbose(f"* {error.message}\n* Closing connection\n")
        transfer.time_total = time.monotonic() - started
        return attempt

    def follow(
        self, attempt: Attempt, url: str, method: str, body: bytes | None, *, started: float, deadline: float
    ) -> None:
        options = self.options
        transfer = attempt.transfer
        while True:
            target = parse_url(url)
            transfer.url_effective = target.url
            transfer.method = method
            try:
                reply = self.exchange(target, method, body, transfer, started=started, deadline=deadline)
            except CurlError as error:
                if error.reply is not None:
                    self.record(attempt, error.reply)
                    if options.include:
                        attempt.document += error.reply.raw_head
                    attempt.document += error.reply.body
                raise
            self.record(attempt, reply)
            location = reply.header("Location")
            if location and reply.status in _REDIRECTS:
                transfer.redirect_url = urljoin(target.url, location)
            if options.include or options.head:
                attempt.document += reply.raw_head
            if options.follow and location and reply.status in _REDIRECTS:
                if transfer.num_redirects >= options.max_redirs:
                    raise CurlError(47, f"Maximum ({options.max_redirs}) redirects followed")
                transfer.num_redirects += 1
                transfer.time_redirect = time.monotonic() - started
                url = urljoin(target.url, location)
                transfer.redirect_url = ""
                if reply.status == 303 or (reply.status in (301, 302) and method == "POST"):
                    method = "HEAD" if method == "HEAD" else "GET"
                    body = None
                self.verbose(f"* Issue another request to this URL: '{url}'\n")
                continue
            failing = (options.fail or options.fail_with_body) and reply.status >= 400
            if failing and not options.fail_with_body:
                attempt.document.clear()
                raise CurlError(22, f"The requested URL returned error: {reply.status}")
            if not options.head:
                attempt.document += reply.body
            if failing:
                raise CurlError(22, f"The requested URL returned error: {reply.status}")
            return

    def record(self, attempt: Attempt, reply: Reply) -> None:
        transfer = attempt.transfer
        attempt.responded = True
        transfer.http_code = reply.status
        transfer.http_version = reply.version
        transfer.headers = reply.headers
        transfer.num_headers = len(reply.headers)
        transfer.content_type = reply.header("Content-Type") or ""
        transfer.size_header += len(reply.raw_head)
        transfer.size_download += len(reply.body)
        attempt.dumped_headers += reply.raw_head

    def method_and_body(self, url: str) -> tuple[str, bytes | None, str]:
        options = self.options
        body = self.request_body()
        method = "HEAD" if options.head else ("POST" if body is not None else "GET")
        if options.get and body is not None:
            separator = "&" if "?" in url else "?"
            url = f"{url}{separator}{body.decode('latin-1')}"
            body = None
            method = "HEAD" if options.head else "GET"
        return options.method or method, body, url

    def request_body(self) -> bytes | None:
        if not self.options.data:
            return None
        parts: list[bytes] = []
        for kind, value in self.options.data:
            if kind == "raw":
                parts.append(value.encode())
            elif kind == "urlencode":
                parts.append(self.urlencoded(value))
            elif value.startswith("@"):
                content = self.read_input(value[1:])
                if kind == "data":
                    content = content.replace(b"\r", b"").replace(b"\n", b"")
                parts.append(content)
            else:
                parts.append(value.encode())
        return b"&".join(parts)

    def urlencoded(self, value: str) -> bytes:
        name, sep, content = value.partition("=")
        if sep:
            encoded = quote_plus(content)
            return f"{name}={encoded}".encode() if name else encoded.encode()
        name, sep, path = value.partition("@")
        if sep:
            encoded = quote_plus(self.read_input(path).decode("utf-8", "replace"))
            return f"{name}={encoded}".encode() if name else encoded.encode()
        return quote_plus(value).encode()

    def read_input(self, name: str) -> bytes:
        if name == "-":
            return self.streams.stdin.read() if self.streams.stdin is not None else b""
        try:
            return self.shell.files.read(self.shell.path(name))
        except FileError:
            self.err(f'Warning: Couldn\'t read data from file "{name}", this makes an empty POST.\n')
            return b""

    # --- the wire -------------------------------------------------------------------------------

    def exchange(
        self,
        target: Target,
        method: str,
        body: bytes | None,
        transfer: Transfer,
        *,
        started: float,
        deadline: float,
    ) -> Reply:
        ip = self.resolve(target)
        transfer.time_namelookup = time.monotonic() - started
        self.verbose(f"*   Trying {ip}:{target.port}...\n")
        sock = self.connect(target, ip, started=started, deadline=deadline)
        try:
            transfer.num_connects += 1
            transfer.scheme = target.scheme.upper()
            transfer.remote_ip, transfer.remote_port = sock.getpeername()[:2]
            transfer.local_ip, transfer.local_port = sock.getsockname()[:2]
            transfer.time_connect = time.monotonic() - started
            self.verbose(f"* Connected to {target.host} ({ip}) port {target.port}\n")
            if target.scheme == "https":
                sock = self.handshake(sock, target, deadline)
            transfer.time_appconnect = time.monotonic() - started if target.scheme == "https" else 0.0
            transfer.time_pretransfer = time.monotonic() - started
            request = self.encode_request(target, method, body)
            self.verbose(
                "".join(
                    f"> {line}\n" for line in request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
                )
            )
            self.verbose("> \n")
            try:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                sock.sendall(request)
            except TimeoutError:
                elapsed = int((time.monotonic() - started) * 1000)
                raise CurlError(
                    28, f"Operation timed out after {elapsed} milliseconds with 0 bytes received"
                ) from None
            except OSError as error:
                raise CurlError(55, f"Send failure: {error.strerror or 'Connection reset by peer'}") from None
            transfer.size_request += len(request) - len(body or b"")
            transfer.size_upload += len(body or b"")
            wire = Wire(sock, deadline=deadline, started=started, cancelled=self.shell.stop_requested)
            reply = self.read_reply(wire, method)
            if wire.first_byte_at is not None:
                transfer.time_starttransfer = wire.first_byte_at - started
            self.verbose(f"* Connection #0 to host {target.host} left intact\n")
            return reply
        finally:
            sock.close()

    def resolve(self, target: Target) -> str:
        """The address to dial: ``--resolve`` first, then the pod's loopback, then cluster DNS."""
        for entry in self.options.resolve:
            host, _, rest = entry.partition(":")
            port, _, addresses = rest.partition(":")
            if host.lower() == target.host and port == str(target.port) and addresses:
                return addresses.split(",")[0].strip("[]")
        if target.host in LOCAL_NAMES:
            return self.ctx.local_ip
        try:
            return self.ctx.resolver.resolve(target.host, self.ctx.namespace)
        except (LookupError, OSError):
            raise CurlError(6, f"Could not resolve host: {target.host}") from None

    def connect(self, target: Target, ip: str, *, started: float, deadline: float) -> socket.socket:
        limit = min(self.options.connect_timeout or DEFAULT_CONNECT_TIMEOUT, deadline - time.monotonic())
        try:
            try:
                return self.ctx.dialer.connect(ip, target.port, timeout=max(limit, 0.001))
            except ConnectionRefusedError:
                # ``localhost`` reaches a server on any of the pod's addresses, as one bound to
                # 0.0.0.0 would be: an uncaptured pod's apps listen on the pod IP, not the loopback.
                if target.host not in LOCAL_NAMES or ip == self.ctx.pod_ip:
                    raise
                return self.ctx.dialer.connect(self.ctx.pod_ip, target.port, timeout=max(limit, 0.001))
        except TimeoutError:
            elapsed = int((time.monotonic() - started) * 1000)
            raise CurlError(28, f"Connection timed out after {elapsed} milliseconds") from None
        except (LookupError, socket.gaierror):
            raise CurlError(6, f"Could not resolve host: {target.host}") from None
        except OSError as error:
            elapsed = int((time.monotonic() - started) * 1000)
            self.verbose(f"* connect to {ip} port {target.port} failed: {error.strerror or error}\n")
            raise CurlError(
                7,
                f"Failed to connect to {target.host} port {target.port} after {elapsed} ms: "
                "Couldn't connect to server",
            ) from None

    def handshake(self, sock: socket.socket, target: Target, deadline: float) -> socket.socket:
        context = self.tls_context()
        where = f"in connection to {target.host}:{target.port} "
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            wrapped = context.wrap_socket(sock, server_hostname=target.host)
        except ssl.SSLCertVerificationError as error:
            raise CurlError(60, f"SSL certificate problem: {error.verify_message}") from None
        except TimeoutError:
            raise CurlError(28, "SSL connection timeout") from None
        except ConnectionResetError:
            raise CurlError(35, f"OpenSSL SSL_connect: Connection reset by peer {where}") from None
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            raise CurlError(35, f"OpenSSL SSL_connect: SSL_ERROR_SYSCALL {where}") from None
        except ssl.SSLError as error:
            raise CurlError(35, f"OpenSSL SSL_connect: {error.reason or error} {where}") from None
        except OSError as error:
            raise CurlError(35, f"OpenSSL SSL_connect: {error.strerror or error} {where}") from None
        self.verbose(f"* SSL connection using {wrapped.version()} / {(wrapped.cipher() or ('',))[0]}\n")
        return wrapped

    def tls_context(self) -> ssl.SSLContext:
        options = self.options
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if options.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif options.cacert:
            try:
                context.load_verify_locations(
                    cadata=self.read_file(options.cacert).decode("ascii", "replace")
                )
            except (FileError, ssl.SSLError, ValueError):
                raise CurlError(77, f"error setting certificate file: {options.cacert}") from None
        else:
            context.load_default_certs()
        if options.cert:
            self.load_client_certificate(context, options.cert, options.key)
        return context

    def load_client_certificate(self, context: ssl.SSLContext, cert: str, key: str | None) -> None:
        """``ssl`` loads client certificates only from files: stage them in a private temp dir."""
        try:
            cert_pem = self.read_file(cert)
            key_pem = self.read_file(key) if key else None
        except FileError:
            raise CurlError(58, "could not load PEM client certificate") from None
        with tempfile.TemporaryDirectory(prefix="lab-curl-") as scratch:
            cert_path = os.path.join(scratch, "cert.pem")
            with open(cert_path, "wb") as handle:
                handle.write(cert_pem)
            key_path = None
            if key_pem is not None:
                key_path = os.path.join(scratch, "key.pem")
                with open(key_path, "wb") as handle:
                    handle.write(key_pem)
            try:
                context.load_cert_chain(cert_path, key_path)
            except (ssl.SSLError, OSError):
                raise CurlError(58, "could not load PEM client certificate") from None

    def read_file(self, path: str) -> bytes:
        return self.shell.files.read(self.shell.path(path))

    def encode_request(self, target: Target, method: str, body: bytes | None) -> bytes:
        options = self.options
        headers: list[tuple[str, str]] = [("Host", target.authority)]
        credentials = options.user or (target.userinfo or None)
        if credentials is not None:
            token = base64.b64encode(credentials.encode()).decode()
            headers.append(("Authorization", f"Basic {token}"))
        headers.append(("User-Agent", options.user_agent or self.user_agent()))
        is_json = any(kind == "json" for kind, _ in options.data)
        headers.append(("Accept", "application/json" if is_json else "*/*"))
        if options.referer:
            headers.append(("Referer", options.referer))
        if options.cookie and "=" in options.cookie:
            headers.append(("Cookie", options.cookie))
        if options.compressed:
            headers.append(("Accept-Encoding", "deflate, gzip"))
        if body is not None:
            content_type = "application/json" if is_json else "application/x-www-form-urlencoded"
            headers.append(("Content-Type", content_type))
            headers.append(("Content-Length", str(len(body))))
        headers = _apply_custom_headers(headers, options.headers)
        lines = [f"{method} {target.path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

    def user_agent(self) -> str:
        tag = self.ctx.image_tag
        if "curl" in self.ctx.image and re.fullmatch(r"\d+\.\d+\.\d+", tag):
            return f"curl/{tag}"
        return f"curl/{DEFAULT_CURL_VERSION}"

    def read_reply(self, wire: Wire, method: str) -> Reply:
        while True:
            start = wire.peek(5)
            if not start:
                raise CurlError(52, "Empty reply from server")
            if start != b"HTTP/":
                raise CurlError(1, "Received HTTP/0.9 when not allowed")
            wire.head.clear()
            try:
                version, status, reason, headers = read_response_head(wire, max_bytes=MAX_HEAD_BYTES)
            except ProtocolError as error:
                if error.status == 431:
                    raise CurlError(100, "A value or data field grew larger than allowed") from None
                raise CurlError(8, "Weird server reply") from None
            raw_head = bytes(wire.head)
            for line in raw_head.decode("latin-1").splitlines():
                self.verbose(f"< {line}\n")
            if 100 <= status < 200 and status != 101:
                continue
            reply = Reply(_HTTP_VERSIONS.get(version, "1.1"), status, reason, list(headers), raw_head)
            if not self.options.head and response_has_body(method, status):
                try:
                    reply.body = self.read_body(wire, headers)
                except CurlError as error:
                    reply.body = error.partial
                    error.reply = reply
                    raise
                if reply.body:
                    self.verbose(f"{{ [{len(reply.body)} bytes data]\n")
            return reply

    def read_body(self, wire: Wire, headers: Headers) -> bytes:
        wire.body.clear()
        try:
            body = read_body(wire, headers, until_close=True, max_bytes=MAX_BODY_BYTES)
        except ProtocolError as error:
            raise _body_failure(error, headers, wire) from None
        except CurlError as error:
            error.partial = bytes(wire.body)
            raise
        coding = (headers.get("Content-Encoding") or "").lower()
        if self.options.compressed and coding in ("gzip", "deflate"):
            try:
                body = gzip.decompress(body) if coding == "gzip" else zlib.decompress(body)
            except (OSError, zlib.error):
                raise CurlError(61, "Error while processing content unencoding") from None
        return body


def _body_failure(error: ProtocolError, headers: Headers, wire: Wire) -> CurlError:
    """curl's exit code for a body ``httpframing`` could not read (the data before the failure has
    already reached the output, as curl writes bodies while they arrive)."""
    partial = bytes(wire.body)
    if error.status == 413:
        return CurlError(63, "Exceeded the maximum allowed file size", partial=partial)
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        if wire.closed:
            return CurlError(18, "transfer closed with outstanding read data remaining", partial=partial)
        return CurlError(56, "Illegal or missing hexadecimal sequence in chunked-encoding", partial=partial)
    length = headers.get("Content-Length") or ""
    if length.isdigit() and wire.closed:
        missing = int(length) - len(partial)
        return CurlError(18, f"transfer closed with {missing} bytes remaining to read", partial=partial)
    return CurlError(8, f"Invalid Content-Length: {length}")


def _apply_custom_headers(defaults: list[tuple[str, str]], custom: list[str]) -> list[tuple[str, str]]:
    """curl's -H rules: replace a default in place, ``Name:`` removes it, ``Name;`` sends it empty."""
    headers = list(defaults)
    for entry in custom:
        if ":" in entry:
            name, _, value = entry.partition(":")
            value = value.strip()
            name = name.strip()
            position = next((i for i, (key, _) in enumerate(headers) if key.lower() == name.lower()), None)
            if not value:
                headers = [(key, val) for key, val in headers if key.lower() != name.lower()]
            elif position is not None and name.lower() in {key.lower() for key, _ in defaults}:
                headers[position] = (name, value)
            else:
                headers.append((name, value))
        elif entry.endswith(";"):
            headers.append((entry[:-1].strip(), ""))
    return headers


def cmd_curl(shell: Shell, argv: list[str], streams: Streams) -> int:
    try:
        options = parse_curl_args(argv[1:])
    except CurlUsageError as error:
        streams.stderr.write(str(error).encode())
        return error.code
    except ValueError:
        streams.stderr.write(b"curl: bad argument\n")
        return 2
    with contextlib.suppress(BrokenPipeError):
        return Curl(shell, options, streams).run()
    return 23
