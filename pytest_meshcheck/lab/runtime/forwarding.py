"""TCP forwarding between two sockets, the data path shared by kube-proxy's listeners.

A connection is two pump threads, one per direction. When one side finishes sending, the other
side gets a half-close (``shutdown(SHUT_WR)``) rather than a full close, so request/response
protocols that signal "done" by half-closing keep working through the proxy.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

_CHUNK = 65536


def reset(sock: socket.socket) -> None:
    """Close with RST, so the peer sees "connection reset" as it would from a REJECT rule."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _pump(source: socket.socket, sink: socket.socket, done: threading.Event) -> None:
    try:
        while True:
            data = source.recv(_CHUNK)
            if not data:
                break
            sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
    except ConnectionResetError:
        # The source reset the connection: pass the reset on (as NAT would, which forwards the
        # RST), so a client of a ClusterIP sees "connection reset" (curl exit 56), not a clean end.
        with contextlib.suppress(OSError):
            sink.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RD)  # wakes the other pump without sending a FIN
        with contextlib.suppress(OSError):
            source.shutdown(socket.SHUT_RDWR)
    except OSError:
        # One side broke: tear both down so the other pump unblocks too.
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
    finally:
        done.set()


def splice(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until both directions end, then close both sockets (returns at once)."""
    there, back = threading.Event(), threading.Event()

    def closer() -> None:
        there.wait()
        back.wait()
        for end in (client, upstream):
            with contextlib.suppress(OSError):
                end.close()

    threading.Thread(target=_pump, args=(client, upstream, there), daemon=True, name="fwd-up").start()
    threading.Thread(target=_pump, args=(upstream, client, back), daemon=True, name="fwd-down").start()
    threading.Thread(target=closer, daemon=True, name="fwd-close").start()
