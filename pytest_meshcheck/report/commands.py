"""``meshcheck report html``: the report command, added to the console script by ``cli.py``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from pytest_meshcheck.report.html import render_html


def _default_reports_dir() -> Path:
    # The same precedence as the plugin's option (env over default) so the command finds the run.
    return Path(os.environ.get("MESHCHECK_REPORTS_DIR", "").strip() or "reports").expanduser()


def _cmd_html(args: argparse.Namespace) -> int:
    rendered = render_html(Path(args.reports_dir).resolve(), single_file=args.single_file)
    sys.stdout.write(
        f"meshcheck: report written to {rendered.index} (Allure {rendered.tool.version}; "
        f"history kept in {rendered.report_dir.parent / 'allure-history'})\n"
    )
    return 0


def add_report_commands(subparsers: Any) -> None:
    """Add ``report html`` to the ``meshcheck`` console script's subcommands."""
    report = subparsers.add_parser("report", help="render a run's reports")
    commands = report.add_subparsers(dest="report_command", metavar="COMMAND")
    html = commands.add_parser(
        "html",
        help="render the Allure HTML report (Allure 3 via npm, or Allure 2 with Java), with trend history",
    )
    html.add_argument(
        "--reports-dir",
        default=str(_default_reports_dir()),
        help="the run's reports directory (default: $MESHCHECK_REPORTS_DIR or ./reports)",
    )
    html.add_argument(
        "--single-file", action="store_true", help="one self-contained index.html (for mail or artifacts)"
    )
    html.set_defaults(handler=_cmd_html)
    report.set_defaults(handler=lambda _args: _usage(report))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
