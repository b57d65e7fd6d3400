"""istioctl download: verified against the published SHA-256, cached, and refused when it mismatches.

A local HTTP server stands in for Istio's release page, serving a fake archive whose istioctl is a
shell script, so the whole path (URL layout, checksum file, unpacking, cache) runs for real.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_meshcheck.errors import InstallError
from pytest_meshcheck.install.istioctl import (
    archive_name,
    download_istioctl,
    istioctl_client_version,
    parse_checksum,
    platform_suffix,
    resolve_istioctl,
)

VERSION = "1.27.1"
SUFFIX = "linux-amd64"
SCRIPT = b"#!/bin/sh\necho 1.27.1\n"


def make_archive(script: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("istioctl")
        info.size = len(script)
        info.mode = 0o755
        archive.addfile(info, io.BytesIO(script))
    return buffer.getvalue()


class ReleaseServer:
    """Serves ``/<version>/<file>`` from a dict and counts requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def publish(self, archive: bytes, *, checksum: str | None = None) -> None:
        name = archive_name(VERSION, SUFFIX)
        digest = checksum or hashlib.sha256(archive).hexdigest()
        self.files[f"/{VERSION}/{name}"] = archive
        self.files[f"/{VERSION}/{name}.sha256"] = f"{digest}  {name}\n".encode()


@pytest.fixture
def release_server() -> Iterator[ReleaseServer]:
    server = ReleaseServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def test_download_verifies_unpacks_and_caches(release_server: ReleaseServer, tmp_path: Path) -> None:
    release_server.publish(make_archive(SCRIPT))
    binary = download_istioctl(VERSION, base_url=release_server.url, cache_dir=tmp_path, suffix=SUFFIX)
    assert binary == tmp_path / VERSION / "istioctl"
    assert istioctl_client_version(binary) == "1.27.1"
    fetched = len(release_server.requests)
    assert (
        download_istioctl(VERSION, base_url=release_server.url, cache_dir=tmp_path, suffix=SUFFIX) == binary
    )
    assert len(release_server.requests) == fetched, "a cached istioctl is not downloaded again"


def test_bad_checksum_is_refused_and_nothing_is_installed(
    release_server: ReleaseServer, tmp_path: Path
) -> None:
    release_server.publish(make_archive(SCRIPT), checksum="0" * 64)
    with pytest.raises(InstallError, match=r"checksum mismatch.*refusing to run it"):
        download_istioctl(VERSION, base_url=release_server.url, cache_dir=tmp_path, suffix=SUFFIX)
    assert not (tmp_path / VERSION / "istioctl").exists()


def test_missing_release_names_the_url(release_server: ReleaseServer, tmp_path: Path) -> None:
    with pytest.raises(
        InstallError, match=r"downloading .*istioctl-1\.27\.1-linux-amd64\.tar\.gz failed: HTTP 404"
    ):
        download_istioctl(VERSION, base_url=release_server.url, cache_dir=tmp_path, suffix=SUFFIX)


def test_archive_without_istioctl_is_refused(release_server: ReleaseServer, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("README")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"hi"))
    release_server.publish(buffer.getvalue())
    with pytest.raises(InstallError, match=r"does not contain istioctl"):
        download_istioctl(VERSION, base_url=release_server.url, cache_dir=tmp_path, suffix=SUFFIX)


def test_explicit_istioctl_must_be_executable(tmp_path: Path) -> None:
    plain = tmp_path / "istioctl"
    plain.write_text("not executable")
    with pytest.raises(InstallError, match="is not an executable file"):
        resolve_istioctl(VERSION, explicit=plain, base_url="http://127.0.0.1:9", cache_dir=tmp_path)
    plain.chmod(0o755)
    assert (
        resolve_istioctl(VERSION, explicit=plain, base_url="http://127.0.0.1:9", cache_dir=tmp_path) == plain
    )


@pytest.mark.parametrize(
    ("system", "machine", "suffix"),
    [
        ("Linux", "x86_64", "linux-amd64"),
        ("Linux", "aarch64", "linux-arm64"),
        ("Darwin", "arm64", "osx-arm64"),
    ],
)
def test_platform_suffixes(system: str, machine: str, suffix: str) -> None:
    assert platform_suffix(system, machine) == suffix


def test_checksum_file_formats() -> None:
    digest = "a" * 64
    assert parse_checksum(f"{digest}  istioctl.tar.gz\n", "istioctl.tar.gz") == digest
    assert parse_checksum(f"{digest} *istioctl.tar.gz\n", "istioctl.tar.gz") == digest
    assert parse_checksum(digest, "istioctl.tar.gz") == digest
    with pytest.raises(InstallError):
        parse_checksum(f"{digest}  other.tar.gz\n", "istioctl.tar.gz")
