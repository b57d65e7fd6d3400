"""What ships: the wheel carries the suites and data; README's options table matches the code."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pytest_meshcheck import cli
from pytest_meshcheck.settings import SUITES

REPO = Path(__file__).resolve().parents[2]


def test_readme_options_table_is_generated_from_the_settings_table() -> None:
    readme = (REPO / "README.md").read_text()
    begin, end = "<!-- options-table:begin -->\n", "<!-- options-table:end -->"
    assert begin in readme and end in readme, "README.md lost its options-table markers"
    embedded = readme.split(begin, 1)[1].split(end, 1)[0]
    assert embedded == cli.options_table_markdown(), (
        "README.md's options table is stale: regenerate it with `meshcheck options --markdown`"
    )


def test_cli_options_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["options"]) == 0
    out = capsys.readouterr().out
    assert "--meshcheck-istio-version" in out and "MESHCHECK_ISTIO_VERSION" in out


def test_cli_without_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "usage: meshcheck" in capsys.readouterr().out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
    )
    (built,) = out.glob("pytest_meshcheck-*.whl")
    return built


def test_wheel_ships_suites_data_entry_points_and_typing(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for suite in SUITES:
        assert f"pytest_meshcheck/suites/test_{suite}.py" in names
    assert "pytest_meshcheck/py.typed" in names
    assert any(name.startswith("pytest_meshcheck/data/") for name in names)
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[pytest11]" in text and "meshcheck = pytest_meshcheck.plugin" in text
    assert "meshcheck = pytest_meshcheck.cli:main" in text
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)
