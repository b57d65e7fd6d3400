"""``meshcheck lab ...``: start, inspect and stop background labs (see ``lab/daemon.py``).

The lead wires ``add_lab_commands`` into ``cli.py``; handlers return a process exit code and print
errors themselves, so this module needs nothing from the harness.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_meshcheck.lab import daemon

#: Installs Istio, the ingress gateway, Prometheus and Kiali on a lab (kubeconfig, Istio version).
#: Handed in by the console script, which owns the harness's installers; the lab imports none.
MeshInstaller = Callable[[Path, str], None]


def _up(args: argparse.Namespace) -> int:
    try:
        state = daemon.up(
            args.name,
            kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
            timeout=args.timeout,
            nodes=args.nodes,
        )
    except daemon.LabDaemonError as exc:
        sys.stderr.write(f"meshcheck: error: {exc}\n")
        return 1
    installer: MeshInstaller | None = getattr(args, "install_mesh", None)
    if args.mesh and installer is not None:
        installer(Path(state.kubeconfig), args.istio_version)
    print(state.kubeconfig)
    return 0


def _kubeconfig(args: argparse.Namespace) -> int:
    state = daemon.running(args.name)
    if state is None:
        sys.stderr.write(
            f"meshcheck: error: lab {args.name!r} is not running; start it with "
            f"`meshcheck lab up --name {args.name}`\n"
        )
        return 1
    print(state.kubeconfig)
    return 0


def _status(args: argparse.Namespace) -> int:
    labs = daemon.status()
    if args.name:
        labs = [(name, state) for name, state in labs if name == args.name]
    if not labs:
        print("no labs")
        return 0 if not args.name else 1
    print(f"{'NAME':<20} {'STATUS':<10} {'PID':<8} {'API':<28} KUBECONFIG")
    for name, state in labs:
        if state is None:
            print(f"{name:<20} {'stopped':<10} {'-':<8} {'-':<28} -")
            continue
        health = "running" if daemon.api_answers(state.kubeconfig) else "unhealthy"
        print(f"{name:<20} {health:<10} {state.pid:<8} {state.url:<28} {state.kubeconfig}")
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = daemon.down(args.name, timeout=args.timeout)
    print(f"lab {args.name!r} {'stopped' if stopped else 'was not running'}")
    return 0


def _fault_client(name: str) -> tuple[object, str] | None:
    state = daemon.running(name)
    if state is None:
        sys.stderr.write(
            f"meshcheck: error: lab {name!r} is not running; start it with `meshcheck lab up --name {name}`\n"
        )
        return None
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=str(state.kubeconfig)))  # type: ignore[no-untyped-call]
    return api, str(state.kubeconfig)


def _active_faults(api: Any) -> list[str]:
    from kubernetes.client.exceptions import ApiException

    from pytest_meshcheck.lab.controllers.faults import FAULTS_CONFIGMAP, FAULTS_NAMESPACE

    try:
        configmap = api.read_namespaced_config_map(FAULTS_CONFIGMAP, FAULTS_NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise
    raw = (configmap.data or {}).get("faults", "")
    return [part.strip() for part in raw.split(",") if part.strip()]


def _set_faults(api: Any, names: list[str]) -> None:
    from pytest_meshcheck.lab.controllers.faults import FAULTS_CONFIGMAP, FAULTS_NAMESPACE

    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": FAULTS_CONFIGMAP, "namespace": FAULTS_NAMESPACE},
        "data": {"faults": ",".join(names)},
    }
    from kubernetes.client.exceptions import ApiException

    try:
        api.replace_namespaced_config_map(FAULTS_CONFIGMAP, FAULTS_NAMESPACE, body)
    except ApiException as exc:
        if exc.status != 404:
            raise
        api.create_namespaced_config_map(FAULTS_NAMESPACE, body)


def _fault(args: argparse.Namespace) -> int:
    from pytest_meshcheck.lab.faults import FAULTS, unknown_faults

    unknown = unknown_faults(args.faults)
    if unknown:
        sys.stderr.write(
            f"meshcheck: error: unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}\n"
        )
        return 2
    connection = _fault_client(args.name)
    if connection is None:
        return 1
    api, _ = connection
    active = _active_faults(api)
    if args.fault_command == "add":
        _set_faults(api, list(dict.fromkeys([*active, *args.faults])))
    elif args.fault_command == "clear":
        remaining = [name for name in active if args.faults and name not in args.faults]
        _set_faults(api, remaining)
    active = _active_faults(api)
    if args.fault_command == "list":
        for name, what in FAULTS.items():
            mark = "on " if name in active else "off"
            print(f"{mark}  {name:<18} {what}")
    else:
        print("active faults: " + (", ".join(active) if active else "none"))
    return 0


def add_lab_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    install_mesh: MeshInstaller | None = None,
    default_istio_version: str = "",
) -> None:
    lab = subparsers.add_parser("lab", help="run the embedded lab cluster in the background")
    commands = lab.add_subparsers(dest="lab_command", metavar="COMMAND", required=True)

    up = commands.add_parser("up", help="start a lab and print its kubeconfig path once the API answers")
    up.add_argument("--name", default="lab", help="lab name (several labs can run at once)")
    up.add_argument("--kubeconfig", default="", help="also write the kubeconfig here")
    up.add_argument("--nodes", type=int, default=1, help="number of nodes (default 1)")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the API")
    if install_mesh is not None:
        up.add_argument(
            "--mesh",
            action="store_true",
            help="also install Istio, the ingress gateway, Prometheus and Kiali",
        )
        up.add_argument("--istio-version", default=default_istio_version, help="Istio version for --mesh")
    up.set_defaults(handler=_up, install_mesh=install_mesh, mesh=False)

    kubeconfig = commands.add_parser("kubeconfig", help="print the kubeconfig path of a running lab")
    kubeconfig.add_argument("--name", default="lab")
    kubeconfig.set_defaults(handler=_kubeconfig)

    status = commands.add_parser("status", help="list labs and whether they answer")
    status.add_argument("--name", default="", help="only this lab")
    status.set_defaults(handler=_status)

    down = commands.add_parser("down", help="stop a lab and free its ports")
    down.add_argument("--name", default="lab")
    down.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL")
    down.set_defaults(handler=_down)

    fault = commands.add_parser("fault", help="inject, clear and list the lab's named regressions")
    fault_commands = fault.add_subparsers(dest="fault_command", metavar="ACTION", required=True)
    for action, text in (
        ("add", "turn faults on"),
        ("clear", "turn the named faults off (all of them when none is named)"),
        ("list", "show every known fault and whether it is on"),
    ):
        parser = fault_commands.add_parser(action, help=text)
        parser.add_argument("--name", default="lab", help="lab name")
        parser.add_argument("faults", nargs="+" if action == "add" else "*", metavar="FAULT")
        parser.set_defaults(handler=_fault)
