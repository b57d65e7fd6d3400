"""``meshcheck lab ...``: start, inspect and stop background labs (see ``lab/daemon.py``).

The lead wires ``add_lab_commands`` into ``cli.py``; handlers return a process exit code and print
errors themselves, so this module needs nothing from the harness.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_meshcheck.lab import daemon


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


def add_lab_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = subparsers.add_parser("lab", help="run the embedded lab cluster in the background")
    commands = lab.add_subparsers(dest="lab_command", metavar="COMMAND", required=True)

    up = commands.add_parser("up", help="start a lab and print its kubeconfig path once the API answers")
    up.add_argument("--name", default="lab", help="lab name (several labs can run at once)")
    up.add_argument("--kubeconfig", default="", help="also write the kubeconfig here")
    up.add_argument("--nodes", type=int, default=1, help="number of nodes (default 1)")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the API")
    up.set_defaults(handler=_up)

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
