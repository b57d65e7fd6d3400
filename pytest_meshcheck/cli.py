"""The ``meshcheck`` console script.

Subcommands are contributed by the modules that own them (``lab``, ``eks``, ``report``,
``images``); this module only builds the parser, dispatches, and turns our errors into one-line
messages with exit code 2 instead of tracebacks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pytest_meshcheck import __version__
from pytest_meshcheck.errors import MeshcheckError
from pytest_meshcheck.settings import OPTIONS

Handler = Callable[[argparse.Namespace], int]


def options_table_markdown() -> str:
    """The options table as Markdown (README.md embeds it; a test keeps the two in sync)."""
    rows = [
        "| option | env | ini | default | what it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for opt in OPTIONS:
        default = opt.default if opt.default != "" else "(unset)"
        rows.append(f"| `{opt.cli}` | `{opt.env}` | `{opt.ini}` | `{default}` | {opt.help} |")
    return "\n".join(rows) + "\n"


def _cmd_options(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(options_table_markdown())
        return 0
    for opt in OPTIONS:
        default = opt.default if opt.default != "" else "(unset)"
        sys.stdout.write(f"{opt.cli:34} {opt.env:32} default {default}\n    {opt.help}\n")
    return 0


def install_mesh_on_lab(kubeconfig: Path, istio_version: str) -> None:
    """``meshcheck lab up --mesh``: the harness's own installers, from the manifests a run applies."""
    from pytest_meshcheck.install.addons import install_addons
    from pytest_meshcheck.install.istio import IstioInstaller, istio_manifest_text
    from pytest_meshcheck.kube.client import connect
    from pytest_meshcheck.settings import default_settings

    settings = default_settings(istio_version=istio_version, timeout="300s")

    last: list[str] = [""]

    def progress(message: str, elapsed: float) -> None:
        if message != last[0]:  # say what is awaited when it changes, not at every poll
            last[0] = message
            sys.stderr.write(f"meshcheck: {message} ({elapsed:.0f}s)\n")

    kube = connect(kubeconfig)
    try:
        sys.stderr.write(f"meshcheck: installing Istio {settings.istio_version} from the shipped manifests\n")
        IstioInstaller(
            kube, settings, kubeconfig=kubeconfig, manifest_text=istio_manifest_text, progress=progress
        ).install()
        sys.stderr.write("meshcheck: installing Prometheus and Kiali\n")
        install_addons(kube, settings, progress)
    finally:
        kube.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshcheck",
        description="Companion commands for pytest-meshcheck (the gate itself runs as `pytest --meshcheck`).",
    )
    parser.add_argument("--version", action="version", version=f"pytest-meshcheck {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    options = commands.add_parser(
        "options", help="list every --meshcheck-* option with its env and ini names"
    )
    options.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    options.set_defaults(handler=_cmd_options)
    from pytest_meshcheck.lab.commands import add_lab_commands
    from pytest_meshcheck.settings import DEFAULT_ISTIO_VERSION

    add_lab_commands(commands, install_mesh=install_mesh_on_lab, default_istio_version=DEFAULT_ISTIO_VERSION)
    from pytest_meshcheck.providers.eks.commands import add_eks_commands

    add_eks_commands(commands)
    from pytest_meshcheck.report.commands import add_report_commands

    add_report_commands(commands)
    from pytest_meshcheck.install.commands import add_images_command

    add_images_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except MeshcheckError as exc:
        sys.stderr.write(f"meshcheck: error: {exc.message}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("meshcheck: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
