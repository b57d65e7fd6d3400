"""The lab's kubelet: runs the pods bound to the lab's nodes, and answers ``logs`` and ``exec``
for the API server (its ``PodRuntime``).

It watches pods, starts a ``PodWorker`` per pod bound to one of its nodes, hands each worker the
newest version of its pod, and stops workers whose pods are gone.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from pytest_meshcheck.lab.controllers.events import EventRecorder
from pytest_meshcheck.lab.errors import BadRequest, NotFound
from pytest_meshcheck.lab.runtime.addresses import AddressPlan
from pytest_meshcheck.lab.runtime.containers import ContainerSlot
from pytest_meshcheck.lab.runtime.dns import ClusterDNS
from pytest_meshcheck.lab.runtime.images import ImageRegistry
from pytest_meshcheck.lab.runtime.logs import LogLine
from pytest_meshcheck.lab.runtime.podworker import KubeletConfig, PodWorker
from pytest_meshcheck.lab.store import GVR, Store

if TYPE_CHECKING:
    from pytest_meshcheck.lab.apiserver.runtime_api import Writer

log = logging.getLogger(__name__)

PODS = GVR.core("pods")


class Kubelet:
    """One kubelet serving every node of the lab (their pods differ only in ``hostIP``)."""

    def __init__(
        self,
        store: Store,
        *,
        nodes: Mapping[str, str],
        registry: ImageRegistry,
        dns: ClusterDNS,
        addresses: AddressPlan,
        base_backoff: float = 10.0,
        max_backoff: float = 300.0,
        services: Mapping[str, Any] | None = None,
    ) -> None:
        self._store = store
        self._nodes = dict(nodes)
        self._registry = registry
        self._dns = dns
        self._addresses = addresses
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self.services: dict[str, Any] = dict(services or {})
        self._workers: dict[str, PodWorker] = {}
        self._by_name: dict[tuple[str, str], PodWorker] = {}
        self._lock = threading.Lock()
        self._pulled: dict[str, set[str]] = {name: set() for name in self._nodes}
        self._recorders = {name: EventRecorder(store, "kubelet", host=name) for name in self._nodes}
        self._stop = threading.Event()
        self._watch: Any = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._watch = self._store.watch(PODS)
        self._thread = threading.Thread(target=self._loop, daemon=True, name="kubelet")
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        with self._lock:
            workers = list(self._workers.values())
        # All pods stop at once, as on a node shutting down; the wait is bounded as a whole.
        for worker in workers:
            worker.shutdown()
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(timeout=max(deadline - time.monotonic(), 0.1))

    def _loop(self) -> None:
        while not self._stop.is_set():
            event = self._watch.next(timeout=1.0)
            if event is None:
                if self._watch.closed:
                    return
                continue
            try:
                self._handle(event.type, event.object)
            except Exception:
                log.exception("kubelet: handling a pod %s event failed", event.type)

    def _handle(self, event_type: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata", {})
        uid = str(meta.get("uid", ""))
        with self._lock:
            worker = self._workers.get(uid)
        if event_type == "DELETED":
            if worker is not None:
                worker.removed()
            return
        if worker is not None:
            worker.update(pod)
            return
        node = pod.get("spec", {}).get("nodeName")
        if node not in self._nodes or meta.get("deletionTimestamp"):
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        config = KubeletConfig(
            node_name=node,
            node_ip=self._nodes[node],
            base_backoff=self._base_backoff,
            max_backoff=self._max_backoff,
            services=self.services,
        )
        worker = PodWorker(
            pod,
            store=self._store,
            config=config,
            registry=self._registry,
            dns=self._dns,
            addresses=self._addresses,
            recorder=self._recorders[node],
            exec_dispatch=self._dispatch,
            pulled_images=self._pulled[node],
            on_exit=self._forget,
        )
        with self._lock:
            if self._stop.is_set():
                return
            self._workers[uid] = worker
            self._by_name[(worker.namespace, worker.name)] = worker
        worker.start()

    def _forget(self, worker: PodWorker) -> None:
        with self._lock:
            if self._workers.get(worker.uid) is worker:
                del self._workers[worker.uid]
            if self._by_name.get((worker.namespace, worker.name)) is worker:
                del self._by_name[(worker.namespace, worker.name)]

    def running_pods(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._by_name)

    # -- PodRuntime ------------------------------------------------------------------------
    def _slot(self, namespace: str, pod: str, container: str) -> tuple[PodWorker, ContainerSlot]:
        with self._lock:
            worker = self._by_name.get((namespace, pod))
        if worker is None:
            raise NotFound(f'pods "{pod}" not found', kind="pods", name=pod)
        slot = worker.slot(container)
        if slot is None:
            raise BadRequest(f"container {container} is not valid for pod {pod}")
        return worker, slot

    def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        follow: bool,
        tail_lines: int | None,
        previous: bool,
        timestamps: bool,
        stop: threading.Event,
    ) -> Iterator[bytes]:
        _, slot = self._slot(namespace, pod, container)
        with slot.lock:
            current = slot.current.logs if slot.current else None
            buffer = slot.previous_logs if previous else (current or slot.previous_logs)
        if buffer is None:
            if previous:
                raise BadRequest(f'previous terminated container "{slot.name}" in pod "{pod}" not found')
            reason = str(slot.state.get("waiting", {}).get("reason", "ContainerCreating"))
            raise BadRequest(f'container "{slot.name}" in pod "{pod}" is waiting to start: {reason}')
        if follow and not previous:
            lines: Iterator[LogLine] = buffer.follow(tail=tail_lines, stop=stop, poll=0.25)
        else:
            lines = iter(buffer.snapshot(tail=tail_lines))
        for line in lines:
            yield line.render(timestamps=timestamps).encode("utf-8", "replace")

    def exec(
        self,
        namespace: str,
        pod: str,
        container: str,
        command: list[str],
        *,
        stdin: BinaryIO | None,
        stdout: Writer,
        stderr: Writer,
        tty: bool,
    ) -> int:
        _, slot = self._slot(namespace, pod, container)
        if slot.current is None:
            raise BadRequest(f'container "{slot.name}" in pod "{pod}" is not running')
        source = stdin if stdin is not None else io.BytesIO()
        return self._dispatch(slot, list(command), source, stdout, stderr)

    @staticmethod
    def _dispatch(slot: ContainerSlot, argv: list[str], stdin: Any, stdout: Any, stderr: Any) -> int:
        instance = slot.current
        if instance is None:
            raise BadRequest(f'container "{slot.name}" is not running')
        if not argv:
            return 0
        commands = getattr(instance.workload, "exec_commands", None)
        handlers: Mapping[str, Any] = {}
        if callable(commands):
            handlers = commands()
            handler = handlers.get(argv[0]) or handlers.get(os.path.basename(argv[0]))
            if handler is not None:
                return int(handler(argv, stdin, stdout, stderr))
        from pytest_meshcheck.lab import shell

        run_command: Any = getattr(shell, "run_command", None)
        if run_command is None:
            stderr.write(f"{argv[0]}: command not found\n".encode())
            return 127
        # The workload's own executables stay reachable from a shell (``sh -c 'kill -TERM 1'``).
        return int(run_command(argv, instance.context, stdin, stdout, stderr, commands=handlers))
