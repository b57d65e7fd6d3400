"""Getting an istioctl of the requested version: the user's binary, the cache, or a verified download.

Istio publishes ``istioctl-<version>-<platform>.tar.gz`` with a ``.sha256`` file beside it on its
release page. The archive is only unpacked after its SHA-256 matches, into a per-version cache
directory, so repeated runs and xdist workers do not download again.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import tarfile
import tempfile
from pathlib import Path

from pytest_meshcheck.errors import InstallError
from pytest_meshcheck.install.tools import run_tool

DOWNLOAD_TIMEOUT_S = 300.0


def platform_suffix(system: str | None = None, machine: str | None = None) -> str:
    """Istio's name for this platform in release file names."""
    system = (system or platform.system()).lower()
    machine = (machine or platform.machine()).lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if arch is None:
        raise InstallError(f"Istio publishes no istioctl for the {machine} architecture")
    if system == "linux":
        return f"linux-{arch}"
    if system == "darwin":
        return "osx" if arch == "amd64" else "osx-arm64"
    raise InstallError(f"Istio publishes no istioctl for {system}; pass --meshcheck-istioctl PATH")


def archive_name(version: str, suffix: str | None = None) -> str:
    return f"istioctl-{version}-{suffix or platform_suffix()}.tar.gz"


def archive_url(base_url: str, version: str, suffix: str | None = None) -> str:
    return f"{base_url.rstrip('/')}/{version}/{archive_name(version, suffix)}"


def parse_checksum(text: str, expected_name: str) -> str:
    """The hex digest from a ``sha256sum``-style file (``<hex>  <name>`` or just ``<hex>``)."""
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        digest = parts[0].lower()
        name = parts[-1].lstrip("*") if len(parts) > 1 else expected_name
        if name == expected_name and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
            return digest
    raise InstallError(f"the checksum file for {expected_name} has no SHA-256 for it")


def _fetch(url: str) -> bytes:
    import requests

    try:
        response = requests.get(url, timeout=DOWNLOAD_TIMEOUT_S)
    except requests.RequestException as exc:
        raise InstallError(f"downloading {url} failed: {exc}") from exc
    if response.status_code != 200:
        raise InstallError(f"downloading {url} failed: HTTP {response.status_code}")
    return response.content


def download_istioctl(version: str, *, base_url: str, cache_dir: Path, suffix: str | None = None) -> Path:
    """Download, verify and unpack istioctl into ``cache_dir/<version>/``; return the binary's path."""
    target_dir = cache_dir / version
    binary = target_dir / "istioctl"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    name = archive_name(version, suffix)
    url = archive_url(base_url, version, suffix)
    payload = _fetch(url)
    expected = parse_checksum(_fetch(url + ".sha256").decode("utf-8", errors="replace"), name)
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected:
        raise InstallError(
            f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}; refusing to run it"
        )
    target_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as archive:
            member = next(
                (m for m in archive.getmembers() if Path(m.name).name == "istioctl" and m.isfile()), None
            )
            if member is None:
                raise InstallError(f"{url} does not contain istioctl")
            extracted = archive.extractfile(member)
            assert extracted is not None
            data = extracted.read()
    except tarfile.TarError as exc:
        raise InstallError(f"{url} is not a readable tar.gz archive: {exc}") from exc
    # Write beside the target and rename, so a concurrent run never sees half a binary.
    with tempfile.NamedTemporaryFile(dir=target_dir, delete=False) as partial:
        partial.write(data)
    os.chmod(partial.name, 0o755)
    os.replace(partial.name, binary)
    return binary


def resolve_istioctl(
    version: str,
    *,
    explicit: Path | None,
    base_url: str,
    cache_dir: Path,
) -> Path:
    """The istioctl to use: ``--meshcheck-istioctl`` if given, else the cached or downloaded release."""
    if explicit is not None:
        if not explicit.is_file() or not os.access(explicit, os.X_OK):
            raise InstallError(f"--meshcheck-istioctl {explicit} is not an executable file")
        return explicit
    return download_istioctl(version, base_url=base_url, cache_dir=cache_dir)


def istioctl_client_version(istioctl: Path) -> str:
    """The version istioctl reports for itself (``istioctl version --remote=false --short``)."""
    result = run_tool([istioctl, "version", "--remote=false", "--short"], what="istioctl version", timeout=60)
    return result.stdout.strip().splitlines()[-1].strip() if result.stdout.strip() else ""
