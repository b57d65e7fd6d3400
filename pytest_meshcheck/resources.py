"""Where the shipped suites and data files are.

In a source checkout they sit at the top of the repository (``suites/``, ``fixtures/``); in the
wheel they are shipped inside the package as ``pytest_meshcheck/suites`` and
``pytest_meshcheck/data`` (see pyproject.toml). Everything finds them through this module.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def suites_dir() -> Path:
    """The directory holding ``test_<suite>.py`` files."""
    installed = _PACKAGE / "suites"
    return installed if installed.is_dir() else _PACKAGE.parent / "suites"


def data_dir() -> Path:
    """The directory of data files: manifests, locustfiles, expected graphs."""
    installed = _PACKAGE / "data"
    return installed if installed.is_dir() else _PACKAGE.parent / "fixtures"


def data_file(*parts: str) -> Path:
    return data_dir().joinpath(*parts)


def home_dir() -> Path:
    """Per-user state and caches (downloaded istioctl, Allure, lab state): ``$MESHCHECK_HOME``,
    else ``$XDG_CACHE_HOME/meshcheck``, else ``~/.cache/meshcheck``."""
    import os

    explicit = os.environ.get("MESHCHECK_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "meshcheck"
