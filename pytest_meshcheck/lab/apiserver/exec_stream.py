"""``pods/exec`` over WebSocket: the Kubernetes channel protocols v4 and v5.

Every message is one binary frame whose first byte is the channel: 0 stdin, 1 stdout, 2 stderr,
3 error (a ``Status`` JSON when the command ends), 4 resize. v5 adds channel 255, with which the
client says it has closed one of its streams (stdin: ``[255, 0]``). The error channel carries
``Success`` or a ``NonZeroExitCode`` failure whose ``ExitCode`` cause kubectl and the Python client
turn into their own exit codes.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import threading
from typing import Any

from pytest_meshcheck.lab.apiserver.runtime_api import PodRuntime
from pytest_meshcheck.lab.apiserver.websocket import OP_TEXT, ConnectionClosed, WebSocket
from pytest_meshcheck.lab.errors import StoreError

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
SUPPORTED_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
_READER_GRACE_SECONDS = 2.0


def choose_protocol(offered: str) -> str | None:
    """The best protocol of the ``Sec-WebSocket-Protocol`` list the client offered."""
    names = [p.strip() for p in offered.split(",") if p.strip()]
    for supported in SUPPORTED_PROTOCOLS:
        if supported in names:
            return supported
    return None


class StdinPipe:
    """The command's stdin: bytes from channel 0 until the client closes it."""

    def __init__(self) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._eof = False

    def feed(self, data: bytes) -> None:
        with self._cond:
            self._chunks.append(data)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def read(self, size: int = -1) -> bytes:
        with self._cond:
            while not self._chunks and not self._eof:
                self._cond.wait()
            if size < 0:
                if not self._eof:
                    while not self._eof:
                        self._cond.wait()
                data = b"".join(self._chunks)
                self._chunks.clear()
                return data
            out = b""
            while self._chunks and len(out) < size:
                chunk = self._chunks.popleft()
                take = size - len(out)
                out += chunk[:take]
                if len(chunk) > take:
                    self._chunks.appendleft(chunk[take:])
            return out

    def readline(self, size: int = -1) -> bytes:
        line = b""
        while not line.endswith(b"\n") and (size < 0 or len(line) < size):
            char = self.read(1)
            if not char:
                break
            line += char
        return line

    def readable(self) -> bool:
        return True


class ChannelWriter:
    """One output channel as a binary file-like object."""

    def __init__(self, socket: WebSocket, channel: int) -> None:
        self._socket = socket
        self._channel = channel

    def write(self, data: bytes, /) -> int:
        if data:
            try:
                self._socket.send(bytes([self._channel]) + bytes(data))
            except ConnectionClosed as exc:
                raise BrokenPipeError(str(exc)) from exc
        return len(data)

    def flush(self) -> None:
        return None


def exit_status(code: int, command: list[str]) -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            f"command terminated with non-zero exit code: error executing command {command}, exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def run_exec(
    socket: WebSocket,
    protocol: str,
    runtime: PodRuntime,
    *,
    namespace: str,
    pod: str,
    container: str,
    command: list[str],
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> None:
    """Serve one exec session to the end; never raises for client misbehaviour."""
    stdin_pipe = StdinPipe() if stdin else None
    # As the kubelet does: an empty message on the lowest writable channel says "connected".
    first_channel = STDOUT if stdout else STDERR if stderr else ERROR
    try:
        socket.send(bytes([first_channel]))
    except ConnectionClosed:
        return
    reader = threading.Thread(
        target=_pump_input, args=(socket, stdin_pipe, protocol), daemon=True, name="exec-stdin"
    )
    reader.start()
    out = ChannelWriter(socket, STDOUT)
    err = ChannelWriter(socket, STDERR)
    status: dict[str, Any]
    try:
        code = runtime.exec(
            namespace,
            pod,
            container,
            command,
            stdin=stdin_pipe,  # type: ignore[arg-type]
            stdout=out if stdout else _Discard(),
            stderr=err if stderr else _Discard(),
            tty=tty,
        )
        status = exit_status(code, command)
    except StoreError as exc:
        status = {**exc.to_status(), "metadata": {}}
        status.pop("kind", None)
        status.pop("apiVersion", None)
    except BrokenPipeError:
        return
    except Exception as exc:
        log.exception("exec in %s/%s failed", namespace, pod)
        status = {
            "metadata": {},
            "status": "Failure",
            "message": f"exec failed: {exc}",
            "reason": "InternalError",
        }
    with contextlib.suppress(ConnectionClosed):
        socket.send(bytes([ERROR]) + json.dumps(status).encode())
    socket.close()
    if stdin_pipe is not None:
        stdin_pipe.close()
    # The connection closes when the handler returns: let the reader see the end first.
    reader.join(_READER_GRACE_SECONDS)


class _Discard:
    def write(self, data: bytes, /) -> int:
        return len(data)

    def flush(self) -> None:
        return None


def _pump_input(socket: WebSocket, stdin_pipe: StdinPipe | None, protocol: str) -> None:
    try:
        while True:
            opcode, message = socket.receive()
            if opcode == OP_TEXT or not message:
                continue
            channel, data = message[0], message[1:]
            if channel == STDIN and stdin_pipe is not None:
                if data:
                    stdin_pipe.feed(data)
            elif channel == CLOSE and protocol.startswith("v5") and data[:1] == bytes([STDIN]) and stdin_pipe:
                stdin_pipe.close()
    except (ConnectionClosed, OSError):
        pass  # the session ended: the exec's main thread closed the socket under this reader
    finally:
        if stdin_pipe is not None:
            stdin_pipe.close()
