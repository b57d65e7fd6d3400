"""What ``kubectl exec`` runs in a lab container: a minimal shell and its utilities, and curl.

``run_command`` is the entry point for the runtime. ``argv`` is the exec's command as given:
``["curl", "-sS", "productpage:9080/productpage"]`` runs curl directly; ``["sh", "-c", "..."]``
parses and runs a command line. An executable that no container in the lab provides behaves like
the container runtime's refusal (the message runc prints, exit code 126, as ``kubectl exec``
reports it: ``command terminated with exit code 126``); inside ``sh -c`` an unknown command is
``sh: X: not found`` with 127, as in a shell. ``is_executable`` lets the runtime check a command
before it starts streaming, if it prefers to answer with an API error instead.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import BinaryIO

from pytest_meshcheck.lab.contract import ExecHandler, WorkloadContext
from pytest_meshcheck.lab.shell.commands import BUILTINS
from pytest_meshcheck.lab.shell.curl import cmd_curl
from pytest_meshcheck.lab.shell.interpreter import BuiltinCommand, Shell, Streams

#: Exit code of an exec whose executable does not exist (runc: "executable file not found").
EXEC_NOT_FOUND = 126

COMMANDS: dict[str, BuiltinCommand] = {**BUILTINS, "curl": cmd_curl}


def not_found_message(name: str) -> str:
    return (
        "OCI runtime exec failed: exec failed: unable to start container process: "
        f'exec: "{name}": executable file not found in $PATH: unknown'
    )


def is_executable(name: str, ctx: WorkloadContext, commands: Mapping[str, ExecHandler] | None = None) -> bool:
    """Whether ``name`` (bare or an absolute path in a bin directory) exists in the container."""
    return Shell(ctx, COMMANDS, extra=commands).command_name(name) is not None


def run_command(
    argv: list[str],
    ctx: WorkloadContext,
    stdin: BinaryIO | None,
    stdout: BinaryIO,
    stderr: BinaryIO,
    *,
    commands: Mapping[str, ExecHandler] | None = None,
    cancelled: threading.Event | None = None,
) -> int:
    """Run one exec. ``commands`` are the workload's own executables (they win over the shell's);
    setting ``cancelled`` (the client went away) interrupts sleeps, loops and transfers."""
    shell = Shell(ctx, COMMANDS, extra=commands, cancelled=cancelled)
    if not argv or shell.command_name(argv[0]) is None:
        name = argv[0] if argv else ""
        stderr.write(f"{not_found_message(name)}\n".encode())
        return EXEC_NOT_FOUND
    return shell.run_argv(list(argv), Streams(stdin, stdout, stderr))


__all__ = ["EXEC_NOT_FOUND", "is_executable", "not_found_message", "run_command"]
