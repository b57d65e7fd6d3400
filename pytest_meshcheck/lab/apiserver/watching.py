"""Watch responses: a store ``Watch`` streamed as chunked JSON lines, with bookmarks, the
initial-events-end marker of ``sendInitialEvents``, Table-wrapped events for kubectl, a bounded
lifetime, and an end as soon as the client hangs up or the server stops."""

from __future__ import annotations

import json
import ssl
import time
from typing import TYPE_CHECKING, Any

from pytest_meshcheck.lab.apiserver import tables
from pytest_meshcheck.lab.apiserver.connio import LockedSocket
from pytest_meshcheck.lab.errors import BadRequest
from pytest_meshcheck.lab.resources import ResourceKind
from pytest_meshcheck.lab.store import Store

if TYPE_CHECKING:
    from pytest_meshcheck.lab.apiserver.handler import ApiHandler

#: A watch without ``timeoutSeconds`` ends after this long (real servers pick 30-60 minutes).
DEFAULT_WATCH_SECONDS = 1800
BOOKMARK_INTERVAL_SECONDS = 5.0


def serve_watch(
    handler: ApiHandler, kind: ResourceKind, namespace: str | None, store: Store, *, name: str | None
) -> None:
    field_selector = handler._param("fieldSelector")
    if name is not None:
        field_selector = ",".join(s for s in (field_selector, f"metadata.name={name}") if s)
    resource_version = handler._param("resourceVersion") or None
    send_initial = handler._flag("sendInitialEvents")
    watch = store.watch(
        kind.gvr,
        namespace,
        resource_version=None if send_initial else resource_version,
        label_selector=handler._param("labelSelector"),
        field_selector=field_selector,
    )
    try:
        timeout_text = handler._param("timeoutSeconds")
        try:
            timeout = float(timeout_text) if timeout_text else DEFAULT_WATCH_SECONDS
        except ValueError as exc:
            raise BadRequest(f"invalid timeoutSeconds {timeout_text!r}") from exc
        _stream_watch(handler, kind, store, watch, timeout=timeout, send_initial=send_initial)
    finally:
        watch.close()


def _stream_watch(
    handler: ApiHandler, kind: ResourceKind, store: Store, watch: Any, *, timeout: float, send_initial: bool
) -> None:
    as_table = handler._wants_table()
    include = handler._param("includeObject", "Metadata")
    bookmarks = handler._flag("allowWatchBookmarks")
    sock = handler._start_stream("application/json")
    deadline = time.monotonic() + timeout
    last_sent = time.monotonic()
    first_table = True
    initial_left = watch.initial_events if send_initial else -1
    stopping = handler.server.api.stopping
    try:
        if initial_left == 0:
            _send_bookmark(handler, sock, kind, store, initial_end=True)
        while not stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            event = watch.next(min(1.0, remaining))
            if event is None:
                if watch.closed or sock.peer_closed():
                    return
                if bookmarks and time.monotonic() - last_sent >= BOOKMARK_INTERVAL_SECONDS:
                    _send_bookmark(handler, sock, kind, store, initial_end=False)
                    last_sent = time.monotonic()
                continue
            obj: Any = event.object
            if as_table:
                obj = tables.table(
                    kind,
                    [obj],
                    resource_version=obj["metadata"].get("resourceVersion", ""),
                    include_object=include,
                    with_headers=first_table,
                )
                first_table = False
            sock.sendall(
                handler._chunk(
                    json.dumps({"type": event.type, "object": obj}, separators=(",", ":")).encode() + b"\n"
                )
            )
            last_sent = time.monotonic()
            if initial_left > 0:
                initial_left -= 1
                if initial_left == 0:
                    _send_bookmark(handler, sock, kind, store, initial_end=True)
        sock.sendall(b"0\r\n\r\n")
    except (OSError, ssl.SSLError):
        return


def _send_bookmark(
    handler: ApiHandler, sock: LockedSocket, kind: ResourceKind, store: Store, *, initial_end: bool
) -> None:
    metadata: dict[str, Any] = {"resourceVersion": store.resource_version}
    if initial_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    event = {
        "type": "BOOKMARK",
        "object": {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": metadata},
    }
    sock.sendall(handler._chunk(json.dumps(event).encode() + b"\n"))
