"""``pods/log`` and ``pods/exec``: validating the pod and container, then handing the stream to
the node runtime (``runtime_api.PodRuntime``) and noticing when the client goes away."""

from __future__ import annotations

import contextlib
import queue
import socket as net
import ssl
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pytest_meshcheck.lab.apiserver import exec_stream, spdy
from pytest_meshcheck.lab.apiserver.connio import LockedSocket
from pytest_meshcheck.lab.apiserver.websocket import ConnectionClosed, WebSocket, accept_key
from pytest_meshcheck.lab.errors import BadRequest, StoreError
from pytest_meshcheck.lab.resources import GVR
from pytest_meshcheck.lab.store import Store

if TYPE_CHECKING:
    from pytest_meshcheck.lab.apiserver.handler import ApiHandler

PODS = GVR.core("pods")
#: How long a log request waits for the runtime's first word before the response starts.
_FIRST_OUTPUT_SECONDS = 1.0
_HANGUP_POLL_SECONDS = 0.3


def _container_of(handler: ApiHandler, pod: dict[str, Any], requested: str) -> str:
    spec = pod.get("spec") or {}
    names = [c.get("name", "") for c in (spec.get("containers") or [])]
    all_names = names + [c.get("name", "") for c in (spec.get("initContainers") or [])]
    pod_name = pod["metadata"]["name"]
    if requested:
        if requested not in all_names:
            raise BadRequest(f"container {requested} is not valid for pod {pod_name}")
        return requested
    if len(names) == 1:
        return str(names[0])
    raise BadRequest(
        f"a container name must be specified for pod {pod_name}, choose one of: [{' '.join(names)}]"
    )


def _runtime(handler: ApiHandler) -> Any:
    runtime = handler.server.api.runtime
    if runtime is None:
        raise StoreError("no container runtime is attached to this API server")
    return runtime


def serve_logs(handler: ApiHandler, store: Store, namespace: str, name: str) -> None:
    pod = store.get(PODS, namespace, name)
    container = _container_of(handler, pod, handler._param("container"))
    tail_text = handler._param("tailLines")
    try:
        tail = int(tail_text) if tail_text else None
    except ValueError as exc:
        raise BadRequest(f"invalid tailLines {tail_text!r}") from exc
    runtime = _runtime(handler)
    stop = threading.Event()
    chunks: Iterator[bytes] = runtime.logs(
        namespace,
        name,
        container,
        follow=handler._flag("follow"),
        tail_lines=tail,
        previous=handler._flag("previous"),
        timestamps=handler._flag("timestamps"),
        stop=stop,
    )
    # The runtime's iterator runs on its own thread, so the handler can wait for it and for the
    # client at once. Whatever the runtime says before the first output (or within a moment of
    # asking) still becomes a Status: no previous instance, a container waiting to start ...
    pending: queue.Queue[bytes | BaseException | None] = queue.Queue()
    producer = threading.Thread(target=_produce, args=(chunks, pending, stop), daemon=True, name="log-reader")
    producer.start()
    try:
        first = pending.get(timeout=_FIRST_OUTPUT_SECONDS)
    except queue.Empty:
        first = b""
    if isinstance(first, BaseException):
        stop.set()
        raise first
    sock = handler._start_stream("text/plain")
    try:
        item: bytes | BaseException | None = first
        while item is not None and not stop.is_set():
            if isinstance(item, BaseException):
                sock.sendall(handler._chunk(f"error reading the log: {item}\n".encode()))
                break
            if item:
                sock.sendall(handler._chunk(item))
            try:
                item = pending.get(timeout=_HANGUP_POLL_SECONDS)
            except queue.Empty:
                item = b""
                if handler.server.api.stopping.is_set() or sock.peer_closed():
                    break
        sock.sendall(b"0\r\n\r\n")
    except (OSError, ssl.SSLError):
        pass
    finally:
        stop.set()
        producer.join(_HANGUP_POLL_SECONDS * 4)


def _produce(
    chunks: Iterator[bytes], pending: queue.Queue[bytes | BaseException | None], stop: threading.Event
) -> None:
    try:
        for chunk in chunks:
            pending.put(chunk)
            if stop.is_set():
                break
    except Exception as exc:  # handed to the request thread, which reports it
        pending.put(exc)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        pending.put(None)


def serve_exec(handler: ApiHandler, store: Store, namespace: str, name: str, sub: str) -> None:
    if sub == "attach":
        raise BadRequest("pods/attach is not supported by the lab")
    pod = store.get(PODS, namespace, name)
    container = _container_of(handler, pod, handler._param("container"))
    command = handler._query.get("command") or []
    if not command:
        raise BadRequest("you must specify at least 1 command")
    if handler.headers.get("Upgrade", "").lower() != "websocket":
        raise BadRequest(
            "Upgrade request required: pods/exec is served over WebSocket (v4/v5.channel.k8s.io)"
        )
    protocol = exec_stream.choose_protocol(handler.headers.get("Sec-WebSocket-Protocol", ""))
    if protocol is None:
        raise BadRequest(
            "unable to upgrade connection: requested protocol(s) are not supported: "
            f"{handler.headers.get('Sec-WebSocket-Protocol', '')}; "
            f"supports {list(exec_stream.SUPPORTED_PROTOCOLS)}"
        )
    runtime = _runtime(
        handler,
    )
    key = handler.headers.get("Sec-WebSocket-Key", "")
    handler._started = True
    handler.close_connection = True
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept_key(key))
    handler.send_header("Sec-WebSocket-Protocol", protocol)
    handler.end_headers()
    handler.wfile.flush()
    socket = WebSocket(LockedSocket(handler.connection))
    exec_stream.run_exec(
        socket,
        protocol,
        runtime,
        namespace=namespace,
        pod=name,
        container=container,
        command=list(command),
        stdin=handler._flag("stdin"),
        stdout=handler._flag("stdout") or "stdout" not in handler._query,
        stderr=handler._flag("stderr") or "stderr" not in handler._query,
        tty=handler._flag("tty"),
    )


def serve_portforward(handler: ApiHandler, store: Store, namespace: str, name: str) -> None:
    """``pods/portforward`` in its three forms: kubectl's SPDY tunnelled through a WebSocket, plain
    SPDY (kubectl's fallback), and the WebSocket channel protocol the Python client speaks: per
    requested port a data channel (2i) and an error channel (2i+1), each opened with the port
    number as two little-endian bytes, and one TCP connection to the pod per port."""
    pod = store.get(PODS, namespace, name)
    pod_ip = (pod.get("status") or {}).get("podIP")
    if not pod_ip:
        raise BadRequest(f'pod "{name}" has no IP address yet')
    offered = [p.strip() for p in handler.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if handler.headers.get("Upgrade", "").lower() == "websocket" and spdy.WEBSOCKET_PROTOCOL in offered:
        _serve_spdy(_websocket_stream(_upgrade(handler, spdy.WEBSOCKET_PROTOCOL)), str(pod_ip))
        return
    if handler.headers.get("Upgrade", "").lower().startswith("spdy/3.1"):
        _serve_spdy(_raw_spdy_stream(handler), str(pod_ip))
        return
    ports: list[int] = []
    for value in handler._query.get("ports") or []:
        for part in value.split(","):
            if not part.strip().isdigit() or not 0 < int(part) < 65536:
                raise BadRequest(f"invalid port {part!r}")
            ports.append(int(part))
    if not ports:
        raise BadRequest("at least one port must be specified")
    if handler.headers.get("Upgrade", "").lower() != "websocket":
        raise BadRequest("Upgrade request required: pods/portforward is served over WebSocket")
    protocol = exec_stream.choose_protocol(handler.headers.get("Sec-WebSocket-Protocol", ""))
    if protocol is None:
        raise BadRequest("unable to upgrade connection: requested protocol(s) are not supported")
    socket = _upgrade(handler, protocol)
    forward_ports(socket, str(pod_ip), ports)


def _upgrade(handler: ApiHandler, protocol: str) -> WebSocket:
    handler._started = True
    handler.close_connection = True
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept_key(handler.headers.get("Sec-WebSocket-Key", "")))
    handler.send_header("Sec-WebSocket-Protocol", protocol)
    handler.end_headers()
    handler.wfile.flush()
    return WebSocket(LockedSocket(handler.connection))


def forward_ports(socket: WebSocket, host: str, ports: list[int]) -> None:
    """Relay until the client closes the WebSocket or every pod connection has ended."""
    connections: dict[int, net.socket] = {}
    pumps = []
    for index, port in enumerate(ports):
        prefix = port.to_bytes(2, "little")
        try:
            socket.send(bytes([2 * index]) + prefix)
            socket.send(bytes([2 * index + 1]) + prefix)
        except ConnectionClosed:
            return
        try:
            connection = net.create_connection((host, port), timeout=10)
        except OSError as exc:
            with contextlib.suppress(ConnectionClosed):
                socket.send(bytes([2 * index + 1]) + f"error forwarding port {port} to pod: {exc}".encode())
            continue
        connection.settimeout(None)
        connections[index] = connection
        pump = threading.Thread(target=_pod_to_client, args=(socket, connection, 2 * index), daemon=True)
        pump.start()
        pumps.append(pump)
    try:
        while connections and any(p.is_alive() for p in pumps):
            _opcode, message = socket.receive()
            if not message:
                continue
            channel, data = message[0], message[1:]
            target = connections.get(channel // 2)
            if channel % 2 == 0 and target is not None and data:
                try:
                    target.sendall(data)
                except OSError:
                    connections.pop(channel // 2, None)
    except ConnectionClosed:
        pass
    finally:
        for connection in connections.values():
            with contextlib.suppress(OSError):
                connection.close()
        socket.close()
        for pump in pumps:
            pump.join(2.0)


def _pod_to_client(socket: WebSocket, connection: net.socket, channel: int) -> None:
    try:
        while True:
            data = connection.recv(65536)
            if not data:
                break
            socket.send(bytes([channel]) + data)
    except (OSError, ConnectionClosed):
        pass
    finally:
        socket.close()


def _serve_spdy(stream: spdy.ByteStream, pod_ip: str) -> None:
    spdy.PortForwardSession(stream, pod_ip).serve()


def _websocket_stream(socket: WebSocket) -> spdy.ByteStream:
    """SPDY bytes carried in WebSocket binary messages, as kubectl's tunnelling dialer sends them."""
    buffer = bytearray()

    def read(count: int) -> bytes:
        while not buffer:
            try:
                _opcode, message = socket.receive()
            except ConnectionClosed:
                return b""
            buffer.extend(message)
        data = bytes(buffer[:count])
        del buffer[:count]
        return data

    def write(data: bytes) -> None:
        socket.send(data)

    return spdy.ByteStream(read, write)


def _raw_spdy_stream(handler: ApiHandler) -> spdy.ByteStream:
    """The HTTP/1.1 ``Upgrade: SPDY/3.1`` form: SPDY straight over the TLS connection."""
    handler._started = True
    handler.close_connection = True
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Upgrade", "SPDY/3.1")
    handler.send_header("X-Stream-Protocol-Version", "portforward.k8s.io")
    handler.end_headers()
    handler.wfile.flush()
    sock = LockedSocket(handler.connection)

    def read(count: int) -> bytes:
        while True:
            data = sock.recv_some(1.0, count)
            if data is not None:
                return data

    return spdy.ByteStream(read, sock.sendall)
