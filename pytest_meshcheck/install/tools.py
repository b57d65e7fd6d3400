"""Running installer command-line tools (istioctl, helm) with timeouts and useful failures."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_meshcheck.errors import InstallError


@dataclass(frozen=True, kw_only=True)
class ToolResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run_tool(
    argv: Sequence[str | Path],
    *,
    kubeconfig: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
    what: str = "",
) -> ToolResult:
    """Run a tool to completion; a non-zero exit or a timeout is an ``InstallError`` whose
    evidence holds the command line and the output tails."""
    command = tuple(str(part) for part in argv)
    description = what or " ".join(command[:3])
    environment = dict(os.environ)
    environment.update(env or {})
    if kubeconfig is not None:
        environment["KUBECONFIG"] = str(kubeconfig)
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=environment,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise InstallError(f"{description}: {command[0]} was not found") from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise InstallError(
            f"{description}: still running after {timeout:g}s",
            evidence={"command": " ".join(command), "stdout": tail(out), "stderr": tail(err)},
        ) from exc
    result = ToolResult(
        argv=command, returncode=completed.returncode, stdout=completed.stdout, stderr=completed.stderr
    )
    if completed.returncode != 0:
        raise InstallError(
            f"{description} failed with exit code {completed.returncode}: "
            f"{tail(completed.stderr or completed.stdout, 3)}",
            evidence={
                "command": " ".join(command),
                "stdout": tail(completed.stdout),
                "stderr": tail(completed.stderr),
            },
        )
    return result
