"""``pods/log`` and ``pods/exec``: validating the pod and container, then handing the stream to
the node runtime (``runtime_api.PodRuntime``) and noticing when the client goes away."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pytest_meshcheck.lab.apiserver import exec_stream
from pytest_meshcheck.lab.apiserver.connio import LockedSocket
from pytest_meshcheck.lab.apiserver.websocket import WebSocket, accept_key
from pytest_meshcheck.lab.errors import BadRequest, StoreError
from pytest_meshcheck.lab.resources import GVR
from pytest_meshcheck.lab.store import Store

if TYPE_CHECKING:
    from pytest_meshcheck.lab.apiserver.handler import ApiHandler

PODS = GVR.core("pods")


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
    runtime = _runtime(
        handler,
    )
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
    # Without follow the first read happens before the headers, so errors (no previous
    # instance, unknown container ...) still become a Status; a follow may wait for output.
    first = None if handler._flag("follow") else next(chunks, None)
    sock = handler._start_stream("text/plain")
    watcher = threading.Thread(
        target=_watch_hangup, args=(handler, sock, stop), daemon=True, name="log-hangup"
    )
    watcher.start()
    try:
        if first:
            sock.sendall(handler._chunk(first))
        for chunk in chunks:
            if stop.is_set():
                break
            if chunk:
                sock.sendall(handler._chunk(chunk))
        sock.sendall(b"0\r\n\r\n")
    except (OSError, ssl.SSLError):
        pass
    finally:
        stop.set()
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _watch_hangup(handler: ApiHandler, sock: LockedSocket, stop: threading.Event) -> None:
    stopping = handler.server.api.stopping
    while not stop.is_set():
        if stopping.is_set() or sock.peer_closed():
            stop.set()
            return
        stop.wait(0.3)


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
