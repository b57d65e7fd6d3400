"""The kubelet's per-pod state machine, on its own thread.

Sandbox (the pod's addresses) -> init containers one by one (native sidecars start and stay) ->
app containers -> probes and restarts, until the pod is deleted; then containers are stopped in
reverse order within the grace period and the pod object is removed. After each step the pod's
status is recomputed and written when it changed, so clients see the same progression of
``ContainerCreating`` / ``Running`` / ``ErrImagePull`` / ``CrashLoopBackOff`` a node shows.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.controllers.events import EventRecorder
from pytest_meshcheck.lab.errors import NotFound, StoreError
from pytest_meshcheck.lab.runtime.addresses import AddressPlan
from pytest_meshcheck.lab.runtime.containers import ContainerSlot, Instance, new_container_id
from pytest_meshcheck.lab.runtime.dialers import CaptureDialer, PlainDialer
from pytest_meshcheck.lab.runtime.dns import ClusterDNS, ContainerResolver
from pytest_meshcheck.lab.runtime.images import ImageNotFound, ImageRegistry
from pytest_meshcheck.lab.runtime.logs import LogBuffer
from pytest_meshcheck.lab.runtime.probes import ProbeTracker, earliest, run_probe
from pytest_meshcheck.lab.runtime.timefmt import rfc3339
from pytest_meshcheck.lab.runtime.volumes import MountError, PodVolumes
from pytest_meshcheck.lab.store import GVR, Store

log = logging.getLogger(__name__)

PODS = GVR.core("pods")

#: Runs a command in a container: (slot, argv, stdin, stdout, stderr) -> exit code.
ExecDispatch = Callable[[ContainerSlot, list[str], Any, Any, Any], int]


@dataclass(frozen=True, kw_only=True)
class KubeletConfig:
    node_name: str
    node_ip: str
    #: First back-off after a failed pull or a crash; doubles up to ``max_backoff`` (10s/300s on
    #: a real node; tests shorten them).
    base_backoff: float = 10.0
    max_backoff: float = 300.0
    #: Lab-wide services handed to control-plane workloads (see ``WorkloadContext.services``).
    services: Mapping[str, Any] | None = None


def capture_active(pod: Mapping[str, Any]) -> bool:
    """Whether the pod's outbound traffic goes through its sidecar (istio-iptables ran)."""
    spec = pod.get("spec", {})
    annotations = pod.get("metadata", {}).get("annotations") or {}
    if str(annotations.get("sidecar.istio.io/inject", "")).lower() == "false":
        return False
    containers = spec.get("containers") or []
    inits = spec.get("initContainers") or []
    proxy = any(c.get("name") == "istio-proxy" for c in containers) or any(
        c.get("name") == "istio-proxy" and c.get("restartPolicy") == "Always" for c in inits
    )
    if not proxy:
        return False
    return any(c.get("name") == "istio-init" for c in inits) or (
        "sidecar.istio.io/interceptionMode" in annotations
    )


class PodWorker:
    """Runs one pod on one node."""

    def __init__(
        self,
        pod: Mapping[str, Any],
        *,
        store: Store,
        config: KubeletConfig,
        registry: ImageRegistry,
        dns: ClusterDNS,
        addresses: AddressPlan,
        recorder: EventRecorder,
        exec_dispatch: ExecDispatch,
        pulled_images: set[str],
        on_exit: Callable[[PodWorker], None],
    ) -> None:
        self.pod: dict[str, Any] = copy.deepcopy(dict(pod))
        meta = self.pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta.get("uid", "")
        self._store = store
        self._config = config
        self._registry = registry
        self._dns = dns
        self._addresses = addresses
        self._recorder = recorder
        self._exec = exec_dispatch
        self._pulled = pulled_images
        self._on_exit = on_exit
        spec = self.pod.get("spec", {})
        self.inits = [
            ContainerSlot(c, kind="sidecar" if c.get("restartPolicy") == "Always" else "init")
            for c in spec.get("initContainers") or []
        ]
        self.apps = [ContainerSlot(c, kind="app") for c in spec.get("containers") or []]
        self.pod_ip = ""
        self.local_ip = ""
        self.capture = capture_active(self.pod)
        self.initialized = not any(slot.kind == "init" for slot in self.inits) and not self.inits
        self.start_time = ""
        self.failed = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._removed = threading.Event()
        self._last_status: dict[str, Any] | None = None
        self._volumes = PodVolumes(self.pod, store)
        self._thread = threading.Thread(
            target=self._run, daemon=True, name=f"pod {self.namespace}/{self.name}"
        )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def update(self, pod: Mapping[str, Any]) -> None:
        """A newer version of the pod. Only deletion and spec changes need the worker now; the
        echo of its own status writes must not cut short a displayed waiting reason."""
        before = self.pod
        self.pod = copy.deepcopy(dict(pod))
        if self.pod["metadata"].get("deletionTimestamp") or self.pod.get("spec") != before.get("spec"):
            self._wake.set()

    def removed(self) -> None:
        """The pod object is gone from the store: stop at once."""
        self._removed.set()
        self._wake.set()

    def shutdown(self) -> None:
        """Begin stopping every container (the lab is stopping); the pod object stays. ``join``
        waits for it."""
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout=timeout)

    def slot(self, container: str) -> ContainerSlot | None:
        slots = self.apps + self.inits
        if not container:
            return slots[0] if slots else None
        return next((slot for slot in slots if slot.name == container), None)

    @property
    def all_slots(self) -> list[ContainerSlot]:
        return self.inits + self.apps

    # -- main loop -------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._sandbox()
            while not self._stop.is_set() and not self._removed.is_set():
                if self.pod["metadata"].get("deletionTimestamp"):
                    self._terminate(announce=True)
                    self._delete_object()
                    return
                self._wake.clear()
                now = time.monotonic()
                self._step(now)
                self._write_status()
                self._wake.wait(timeout=self._next_wakeup(time.monotonic()))
            self._terminate(announce=self._removed.is_set())
        except Exception:
            log.exception("pod worker %s/%s crashed", self.namespace, self.name)
            self._terminate(announce=False)
        finally:
            if self.pod_ip:
                self._addresses.release_pod_ip(self.pod_ip)
            self._volumes.cleanup()
            self._on_exit(self)

    def _next_wakeup(self, now: float) -> float:
        deadlines: list[float] = []
        for slot in self.all_slots:
            if slot.backoff_until > now:
                deadlines.append(slot.backoff_until)
            if slot.pending_backoff_reason:
                deadlines.append(max(slot.pending_at, now))
            if slot.running:
                deadlines.append(earliest([slot.readiness, slot.liveness, slot.startup], now + 5.0))
        target = min(deadlines, default=now + 5.0)
        return max(0.02, min(target - now, 5.0))

    def _sandbox(self) -> None:
        status = self.pod.get("status") or {}
        self.pod_ip = self._addresses.pod_ip()
        self.local_ip = self._addresses.local_ip_for(self.pod_ip)
        self.start_time = status.get("startTime") or rfc3339()

    def _step(self, now: float) -> None:
        if not self.initialized:
            self._step_init(now)
        for slot in self.inits:
            if slot.kind == "sidecar" and slot.completed is False and self.initialized:
                self._keep_running(slot, now)
        if self.initialized and not self.failed:
            for slot in self.apps:
                self._keep_running(slot, now)
        for slot in self.all_slots:
            if slot.running and slot.kind != "init":
                self._probe(slot, now)

    def _step_init(self, now: float) -> None:
        for slot in self.inits:
            if slot.kind == "sidecar":
                self._keep_running(slot, now)
                if not (slot.running and slot.started):
                    return
                continue
            if slot.completed:
                continue
            if not slot.running:
                self._start(slot, now)
            instance = slot.current
            if instance is None:
                return
            if not instance.exited.is_set():
                return
            self._finish(slot, instance)
            if not slot.completed:
                return
        self.initialized = True

    def _keep_running(self, slot: ContainerSlot, now: float) -> None:
        instance = slot.current
        if instance is not None and instance.exited.is_set():
            self._finish(slot, instance)
        if slot.running or slot.completed or self.failed:
            return
        self._start(slot, now)

    # -- container start / stop ------------------------------------------------------------
    @property
    def _reason_delay(self) -> float:
        """How long a failure shows (ErrImagePull, Error) before the back-off reason replaces it."""
        return min(1.0, self._config.base_backoff / 2)

    def _ref(self, slot: ContainerSlot) -> dict[str, Any]:
        return self.pod

    def _field_path(self, slot: ContainerSlot) -> str:
        if slot.kind == "app":
            index = self.apps.index(slot)
            return f"spec.containers{{{slot.name}}}" if index >= 0 else ""
        return f"spec.initContainers{{{slot.name}}}"

    def _backoff(self, current: float) -> float:
        if current <= 0:
            return self._config.base_backoff
        return min(current * 2, self._config.max_backoff)

    def _start(self, slot: ContainerSlot, now: float) -> None:
        if now < slot.backoff_until or slot.pending_backoff_reason:
            if slot.pending_backoff_reason and now >= slot.pending_at:
                reason = slot.pending_backoff_reason
                slot.pending_backoff_reason = ""
                if reason == "ImagePullBackOff":
                    message = f'Back-off pulling image "{slot.image}"'
                    self._recorder.normal(self.pod, "BackOff", message, field_path=self._field_path(slot))
                else:
                    message = (
                        f"back-off {go_duration(slot.crash_delay)} restarting failed container={slot.name} "
                        f"pod={self.name}_{self.namespace}({self.uid})"
                    )
                    self._recorder.warning(
                        self.pod,
                        "BackOff",
                        "Back-off restarting failed container "
                        + slot.name
                        + f" in pod {self.name}_{self.namespace}({self.uid})",
                        field_path=self._field_path(slot),
                    )
                slot.waiting(reason, message)
                if reason == "ImagePullBackOff":
                    self._recorder.warning(
                        self.pod, "Failed", "Error: ImagePullBackOff", field_path=self._field_path(slot)
                    )
            return
        path = self._field_path(slot)
        policy = slot.spec.get("imagePullPolicy") or (
            "Always"
            if slot.image.endswith(":latest") or ":" not in slot.image.rsplit("/", 1)[-1]
            else "IfNotPresent"
        )
        try:
            ref, factory = self._registry.lookup(slot.image)
        except ImageNotFound:
            self._recorder.normal(self.pod, "Pulling", f'Pulling image "{slot.image}"', field_path=path)
            full = slot.image if "/" in slot.image else f"docker.io/library/{slot.image}"
            detail = (
                f'failed to pull and unpack image "{full}": failed to resolve reference "{full}": '
                f"{full}: not found"
            )
            message = f'Failed to pull image "{slot.image}": rpc error: code = NotFound desc = {detail}'
            self._recorder.warning(self.pod, "Failed", message, field_path=path)
            self._recorder.warning(self.pod, "Failed", "Error: ErrImagePull", field_path=path)
            slot.waiting("ErrImagePull", message)
            slot.pull_delay = self._backoff(slot.pull_delay)
            slot.backoff_until = now + slot.pull_delay
            slot.pending_backoff_reason = "ImagePullBackOff"
            slot.pending_at = now + self._reason_delay
            return
        slot.pull_delay = 0.0
        slot.image_full = ref.full
        slot.image_id = ref.image_id
        if policy != "Always" and ref.full in self._pulled:
            self._recorder.normal(
                self.pod,
                "Pulled",
                f'Container image "{slot.image}" already present on machine',
                field_path=path,
            )
        else:
            self._recorder.normal(self.pod, "Pulling", f'Pulling image "{slot.image}"', field_path=path)
            self._recorder.normal(
                self.pod,
                "Pulled",
                f'Successfully pulled image "{slot.image}" in 1ms (1ms including waiting). '
                "Image size: 0 bytes.",
                field_path=path,
            )
            self._pulled.add(ref.full)
        try:
            mounts = self._volumes.mounts(slot.spec)
        except MountError as exc:
            # As the kubelet: the container waits in ContainerCreating and the mount is retried.
            self._recorder.warning(self.pod, "FailedMount", f"MountVolume.SetUp failed: {exc}")
            slot.waiting("ContainerCreating")
            slot.backoff_until = now + 2.0
            return
        context = self._context(slot, ref.tag)
        context.volumes = mounts
        logs = LogBuffer()
        context.log = logs
        try:
            workload = factory(context)
        except Exception as exc:
            self._crashed(slot, now, f"{type(exc).__name__}: {exc}", logs)
            return
        self._recorder.normal(self.pod, "Created", f"Created container: {slot.name}", field_path=path)
        instance = Instance(
            workload=workload,
            context=context,
            logs=logs,
            container_id=new_container_id(),
            started_epoch=time.time(),
            started_mono=now,
        )
        # An init container whose workload cannot run to completion (istio-init's
        # ``istio-iptables`` on the proxy image, a shell loop waiting for a service) has nothing
        # to do on the lab: it completes without starting the image's long-running server.
        runner = getattr(workload, "run", None)
        one_shot = slot.kind == "init" and not callable(runner)
        try:
            if not one_shot:
                workload.start()
        except Exception as exc:
            logs.write("".join(traceback.format_exception(exc)).rstrip(), stream="stderr")
            self._recorder.warning(self.pod, "Failed", f"Error: {exc}", field_path=path)
            self._crashed(slot, now, f"{type(exc).__name__}: {exc}", logs)
            return
        with slot.lock:
            if slot.current is not None and slot.previous_logs is None:
                slot.previous_logs = slot.current.logs
            slot.current = instance
        self._recorder.normal(self.pod, "Started", f"Started container {slot.name}", field_path=path)
        slot.state = {"running": {"startedAt": rfc3339(instance.started_epoch)}}
        slot.pending_backoff_reason = ""
        self._arm_probes(slot, now)
        if one_shot:
            instance.started_workload = False
            instance.exit_code = 0
            instance.exited.set()
        elif callable(runner):
            threading.Thread(
                target=self._run_to_completion,
                args=(runner, instance),
                daemon=True,
                name=f"run {self.name}/{slot.name}",
            ).start()

    def _run_to_completion(self, runner: Callable[[], Any], instance: Instance) -> None:
        try:
            result = runner()
            instance.exit_code = int(result) if isinstance(result, int) else 0
        except Exception as exc:
            instance.logs.write(f"{type(exc).__name__}: {exc}", stream="stderr")
            instance.exit_code = 1
        instance.exited.set()
        self._wake.set()

    def _crashed(self, slot: ContainerSlot, now: float, message: str, logs: LogBuffer) -> None:
        """A container that failed to start counts as one that exited with status 1."""
        logs.close()
        started = time.time()
        slot.last_state = {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "message": message,
                "startedAt": rfc3339(started),
                "finishedAt": rfc3339(started),
                "containerID": new_container_id(),
            }
        }
        slot.previous_logs = logs
        self._schedule_restart(slot, now, exit_code=1)

    def _schedule_restart(self, slot: ContainerSlot, now: float, *, exit_code: int) -> None:
        policy = self._restart_policy(slot)
        if policy == "Never" or (policy == "OnFailure" and exit_code == 0):
            slot.state = slot.last_state or {"terminated": {"exitCode": exit_code, "reason": "Error"}}
            slot.last_state = {}
            if slot.kind != "app":
                self.failed = exit_code != 0
            slot.completed = True
            return
        slot.restart_count += 1
        slot.crash_delay = self._backoff(slot.crash_delay)
        slot.backoff_until = now + slot.crash_delay
        slot.pending_backoff_reason = "CrashLoopBackOff"
        slot.pending_at = now + self._reason_delay
        slot.state = slot.last_state or {"terminated": {"exitCode": exit_code, "reason": "Error"}}

    def _restart_policy(self, slot: ContainerSlot) -> str:
        if slot.kind == "sidecar":
            return "Always"
        policy = str(self.pod.get("spec", {}).get("restartPolicy") or "Always")
        if slot.kind == "init" and policy == "Always":
            return "OnFailure"
        return policy

    def _finish(self, slot: ContainerSlot, instance: Instance) -> None:
        """A run-to-completion container exited."""
        code = instance.exit_code if instance.exit_code is not None else 0
        reason = "Completed" if code == 0 else "Error"
        terminated = slot.terminated(exit_code=code, reason=reason, started=instance.started_epoch)
        self._stop_instance(slot, instance, grace=1.0)
        slot.ready = False
        slot.started = False
        if code == 0 and slot.kind == "init":
            slot.state = terminated
            slot.completed = True
            return
        slot.last_state = terminated
        policy = self._restart_policy(slot)
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            slot.state = terminated
            slot.last_state = {}
            slot.completed = True
            if slot.kind == "init" and code != 0:
                self.failed = True
            return
        self._schedule_restart(slot, time.monotonic(), exit_code=code)

    def _stop_instance(self, slot: ContainerSlot, instance: Instance, *, grace: float) -> None:
        instance.context.stopping.set()
        if instance.started_workload:
            stopper = threading.Thread(target=self._call_stop, args=(instance,), daemon=True)
            stopper.start()
            stopper.join(timeout=max(grace, 0.1))
        instance.logs.close()
        with slot.lock:
            slot.previous_logs = instance.logs
            slot.current = None
        slot.readiness = slot.liveness = slot.startup = None

    @staticmethod
    def _call_stop(instance: Instance) -> None:
        try:
            instance.workload.stop()
        except Exception:
            log.exception("workload stop failed")

    def _context(self, slot: ContainerSlot, tag: str) -> WorkloadContext:
        spec = self.pod.get("spec", {})
        meta = self.pod.get("metadata", {})
        captured = self.capture and slot.name != "istio-proxy"
        localhost_ip = self.local_ip if self.capture else self.pod_ip
        hostname = str(spec.get("hostname") or self.name)
        resolver = ContainerResolver(
            self._dns, localhost_ip=localhost_ip, hostname=hostname, pod_ip=self.pod_ip
        )
        dialer: CaptureDialer | PlainDialer
        if captured:
            dialer = CaptureDialer(
                resolver, namespace=self.namespace, pod_ip=self.pod_ip, local_ip=self.local_ip
            )
        else:
            dialer = PlainDialer(resolver, namespace=self.namespace, source_ip=self.pod_ip)
        return WorkloadContext(
            namespace=self.namespace,
            pod_name=self.name,
            pod_uid=self.uid,
            container_name=slot.name,
            image=slot.image,
            image_tag=tag,
            pod_ip=self.pod_ip,
            local_ip=self.local_ip,
            bind_ip=self.local_ip if captured else self.pod_ip,
            hostname=hostname,
            service_account=str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"),
            node_name=self._config.node_name,
            env=self._env(slot),
            args=tuple(str(arg) for arg in slot.spec.get("args") or []),
            command=tuple(str(arg) for arg in slot.spec.get("command") or []),
            ports=tuple(
                int(p["containerPort"]) for p in slot.spec.get("ports") or [] if "containerPort" in p
            ),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            dialer=dialer,
            resolver=resolver,
            log=LogBuffer(),
            stopping=threading.Event(),
            pod=copy.deepcopy(self.pod),
            services=dict(self._config.services or {}),
        )

    def _env(self, slot: ContainerSlot) -> dict[str, str]:
        from pytest_meshcheck.lab.runtime.envvars import container_env

        env = container_env(
            self.pod,
            slot.spec,
            store=self._store,
            pod_ip=self.pod_ip,
            node_name=self._config.node_name,
            node_ip=self._config.node_ip,
        )
        # Every container learns where the API is, as in-cluster clients expect.
        try:
            api_ip = self._dns.resolve("kubernetes", "default")
        except LookupError:
            return env
        defaults = {
            "KUBERNETES_SERVICE_HOST": api_ip,
            "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443",
            "KUBERNETES_PORT": f"tcp://{api_ip}:443",
        }
        return {**defaults, **env}

    # -- probes ----------------------------------------------------------------------------
    def _arm_probes(self, slot: ContainerSlot, now: float) -> None:
        spec = slot.spec
        slot.startup = (
            ProbeTracker(spec["startupProbe"], now, result=False) if spec.get("startupProbe") else None
        )
        slot.liveness = (
            ProbeTracker(spec["livenessProbe"], now, result=True) if spec.get("livenessProbe") else None
        )
        slot.readiness = (
            ProbeTracker(spec["readinessProbe"], now, result=False) if spec.get("readinessProbe") else None
        )
        slot.started = slot.startup is None
        slot.ready = slot.started and slot.readiness is None

    def _probe(self, slot: ContainerSlot, now: float) -> None:
        instance = slot.current
        if instance is None:
            return
        if slot.startup is not None and not slot.started:
            if slot.startup.due(now):
                failure = self._attempt(slot, slot.startup.spec)
                slot.startup.record(not failure, now)
                if failure:
                    self._unhealthy(slot, "Startup", failure)
                if slot.startup.result:
                    slot.started = True
                    if slot.readiness is None:
                        slot.ready = True
                elif slot.startup.failures >= int(slot.startup.spec.get("failureThreshold", 3) or 3):
                    self._kill_for_probe(slot, instance, "startup", now)
            return
        if slot.liveness is not None and slot.liveness.due(now):
            failure = self._attempt(slot, slot.liveness.spec)
            slot.liveness.record(not failure, now)
            if failure:
                self._unhealthy(slot, "Liveness", failure)
            if not slot.liveness.result:
                self._kill_for_probe(slot, instance, "liveness", now)
                return
        if slot.readiness is not None and slot.readiness.due(now):
            failure = self._attempt(slot, slot.readiness.spec)
            slot.readiness.record(not failure, now)
            if failure:
                self._unhealthy(slot, "Readiness", failure)
            slot.ready = slot.readiness.result

    def _unhealthy(self, slot: ContainerSlot, which: str, failure: str) -> None:
        self._recorder.warning(
            self.pod, "Unhealthy", f"{which} probe failed: {failure}", field_path=self._field_path(slot)
        )

    def _attempt(self, slot: ContainerSlot, probe: Mapping[str, Any]) -> str:
        def exec_runner(argv: list[str], timeout: float) -> int:
            return self._exec_with_timeout(slot, argv, timeout)

        return run_probe(
            probe,
            pod_ip=self.pod_ip,
            source_ip=self._config.node_ip,
            container_ports=slot.container_ports(),
            exec_runner=exec_runner,
        )

    def _exec_with_timeout(self, slot: ContainerSlot, argv: list[str], timeout: float) -> int:
        import io

        result: list[int] = []

        def target() -> None:
            try:
                result.append(self._exec(slot, argv, io.BytesIO(), io.BytesIO(), io.BytesIO()))
            except Exception:
                result.append(1)

        runner = threading.Thread(target=target, daemon=True)
        runner.start()
        runner.join(timeout=timeout)
        return result[0] if result else 1

    def _kill_for_probe(self, slot: ContainerSlot, instance: Instance, which: str, now: float) -> None:
        self._recorder.normal(
            self.pod,
            "Killing",
            f"Container {slot.name} failed {which} probe, will be restarted",
            field_path=self._field_path(slot),
        )
        slot.last_state = slot.terminated(exit_code=137, reason="Error", started=instance.started_epoch)
        self._stop_instance(
            slot,
            instance,
            grace=float(self.pod.get("spec", {}).get("terminationGracePeriodSeconds", 30) or 30),
        )
        slot.ready = False
        slot.started = False
        slot.restart_count += 1
        slot.backoff_until = now
        slot.waiting("ContainerCreating")

    # -- termination -----------------------------------------------------------------------
    def _terminate(self, *, announce: bool) -> None:
        """Stop every container, apps first, native sidecars last. ``announce`` (a pod being
        deleted, not the whole lab stopping) records the kubelet's Killing events."""
        meta = self.pod.get("metadata", {})
        grace = float(
            meta.get("deletionGracePeriodSeconds")
            or self.pod.get("spec", {}).get("terminationGracePeriodSeconds")
            or 30
        )
        # As the kubelet does: every regular container is told to stop at once (each drains in
        # its own time), and native sidecars only after them, last started first.
        sidecars = list(reversed([slot for slot in self.inits if slot.kind == "sidecar"]))
        self._stop_together(self.apps, grace=min(grace, 10.0), announce=announce)
        for slot in sidecars:
            self._stop_together([slot], grace=min(grace, 10.0), announce=announce)
        if announce and not self._removed.is_set():
            with contextlib.suppress(StoreError):
                self._write_status()

    def _stop_together(self, slots: list[ContainerSlot], *, grace: float, announce: bool) -> None:
        stoppers = []
        for slot in slots:
            instance = slot.current
            if instance is None:
                continue
            if announce:
                self._recorder.normal(
                    self.pod, "Killing", f"Stopping container {slot.name}", field_path=self._field_path(slot)
                )
            slot.state = slot.terminated(exit_code=0, reason="Completed", started=instance.started_epoch)
            stopper = threading.Thread(
                target=self._stop_instance, args=(slot, instance), kwargs={"grace": grace}, daemon=True
            )
            stopper.start()
            stoppers.append((slot, stopper))
        for slot, stopper in stoppers:
            stopper.join()
            slot.ready = False

    def _delete_object(self) -> None:
        """The kubelet's final delete of a terminated pod (grace period 0)."""
        try:
            self._final_delete()
        except NotFound:
            pass
        except StoreError as exc:
            log.warning("final delete of pod %s/%s failed: %s", self.namespace, self.name, exc)

    def _final_delete(self) -> None:
        """Delete with grace period 0 where the store knows graceful pod deletion; a plain
        delete where it does not (the object then goes at once, which is what 0 means)."""
        delete: Any = self._store.delete
        try:
            delete(PODS, self.namespace, self.name, preconditions_uid=self.uid, grace_period_seconds=0)
        except TypeError:
            delete(PODS, self.namespace, self.name, preconditions_uid=self.uid)

    # -- status ----------------------------------------------------------------------------
    def compute_status(self) -> dict[str, Any]:
        previous = self.pod.get("status") or {}
        kept = [
            c
            for c in previous.get("conditions") or []
            if c.get("type") not in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
        ]
        old = {c.get("type"): c for c in previous.get("conditions") or []}

        def condition(kind: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
            status = "True" if ok else "False"
            before = old.get(kind)
            stamp = (
                before.get("lastTransitionTime") if before and before.get("status") == status else rfc3339()
            )
            entry: dict[str, Any] = {
                "type": kind,
                "status": status,
                "lastProbeTime": None,
                "lastTransitionTime": stamp,
            }
            if not ok and reason:
                entry["reason"] = reason
                entry["message"] = message
            return entry

        incomplete = [s.name for s in self.inits if not (s.completed or (s.kind == "sidecar" and s.running))]
        unready = [s.name for s in self.apps if not s.ready]
        unready += [s.name for s in self.inits if s.kind == "sidecar" and not s.ready]
        initialized = self.initialized
        conditions = [
            condition("PodReadyToStartContainers", bool(self.pod_ip)),
            condition(
                "Initialized",
                initialized,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(incomplete)}]",
            ),
            condition(
                "Ready",
                not unready and initialized,
                "ContainersNotReady",
                f"containers with unready status: [{' '.join(unready)}]",
            ),
            condition(
                "ContainersReady",
                not unready and initialized,
                "ContainersNotReady",
                f"containers with unready status: [{' '.join(unready)}]",
            ),
            *kept,
        ]
        status: dict[str, Any] = {
            "phase": self._phase(),
            "conditions": conditions,
            "hostIP": self._config.node_ip,
            "hostIPs": [{"ip": self._config.node_ip}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.start_time,
            "containerStatuses": [slot.status() for slot in self.apps],
            "qosClass": previous.get("qosClass") or _qos_class(self.pod),
        }
        if self.inits:
            status["initContainerStatuses"] = [slot.status() for slot in self.inits]
        return status

    def _phase(self) -> str:
        if self.failed:
            return "Failed"
        if not self.initialized:
            return "Pending"
        if any(slot.running for slot in self.apps):
            return "Running"
        if self.apps and all(slot.completed for slot in self.apps):
            codes = [slot.state.get("terminated", {}).get("exitCode", 0) for slot in self.apps]
            return "Succeeded" if all(code == 0 for code in codes) else "Failed"
        return "Pending" if all(slot.restart_count == 0 for slot in self.apps) else "Running"

    def _write_status(self) -> None:
        status = self.compute_status()
        if status == self._last_status:
            return
        try:
            updated = self._store.patch(
                PODS, self.namespace, self.name, {"status": status}, patch_type="merge", subresource="status"
            )
        except NotFound:
            self._removed.set()
            return
        except StoreError as exc:
            log.debug("status of %s/%s not written: %s", self.namespace, self.name, exc)
            return
        self._last_status = status
        if isinstance(updated, dict):
            self.pod = (
                copy.deepcopy(updated) if not self.pod["metadata"].get("deletionTimestamp") else self.pod
            )


def _qos_class(pod: Mapping[str, Any]) -> str:
    containers = list(pod.get("spec", {}).get("containers") or [])
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits")
        and all(
            r.get("limits", {}).get(k) == r.get("requests", r.get("limits", {})).get(k)
            for k in ("cpu", "memory")
        )
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration.String`` prints it (``10s``, ``1m20s``, ``5m0s``)."""
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{rest}s"
