"""How many requests per second the load engine makes, per Locust process, beside wrk.

Two targets, in the same run:
  * a trivial HTTP server on 127.0.0.1 (its own process, keep-alive, a fixed 2-byte body);
  * the lab's ingress gateway (``meshcheck lab up --mesh`` plus Bookinfo installed by the
    harness's installer), ``/productpage``: gateway -> productpage -> details, reviews -> ratings,
    all with mTLS, so a request costs the lab four proxied hops (``--no-lab`` skips it);
each driven with closed-loop load, no think time, from:
  * Locust standalone (one process), then a master with 1 and with 2 worker processes;
  * wrk with 1 and 2 threads, when it is installed (Debian package ``wrk``).
It prints one table and how throughput scales from 1 to 2 workers; nothing is asserted. The
generators and the targets share this machine's cores, so the trivial server's CPU share is
printed too: when it nears one core, the server, not the generator, is what limits a row.

    python benchmarks/load_engine.py [--duration 10] [--users 20] [--no-lab]

Measured (2-core VM, 10 s per row, 20 users/connections; timings are noisy, read the ratios):
see docs/load.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pytest_meshcheck.load.cpu import CpuSample, busy_share, read_proc_cpu_seconds
from pytest_meshcheck.load.runner import LoadRun
from pytest_meshcheck.load.spec import ENV_URLS, LoadSpec, shipped_locustfile

_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            writer.write(_RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(port: int) -> None:
    server = await asyncio.start_server(_answer, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


@dataclass(frozen=True, kw_only=True)
class Row:
    target: str
    engine: str
    generating_processes: int
    concurrency: int
    requests: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    generator_busy: str
    server_busy: float | None

    @property
    def rps_per_process(self) -> float:
        return self.rps / self.generating_processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def trivial_server() -> Iterator[tuple[str, int]]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the trivial server did not start") from None
                time.sleep(0.05)  # polling a port that is not open yet: nothing to await on
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


class ServerMeter:
    """Samples the server's CPU time, to tell its share of a core over any window afterwards."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[CpuSample] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.2):
            cpu = read_proc_cpu_seconds(self.pid)
            if cpu is not None:
                self.samples.append(CpuSample(at=time.time(), cpu_s=cpu))

    def share(self, start: float | None, end: float | None) -> float | None:
        if start is None or end is None:
            return None
        cpu = read_proc_cpu_seconds(self.pid)
        now = [] if cpu is None else [CpuSample(at=time.time(), cpu_s=cpu)]
        return busy_share([*self.samples, *now], start, end)

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)


def locust_row(
    target: str, url: str, meter: ServerMeter | None, *, workers: int, users: int, duration: float, out: Path
) -> Row:
    base, _, path = url.partition("://")
    host, slash, rest = path.partition("/")
    spec = LoadSpec(
        target_url=f"{base}://{host}",
        users=users,
        spawn_rate=float(users),
        duration_s=duration,
        workers=workers,
        locustfile=shipped_locustfile("http_get.py"),
        output_dir=out / f"locust-{target}-{workers}",
        env={ENV_URLS: slash + rest or "/"},
    )
    run = LoadRun(spec).start()
    if not run.wait():
        run.stop()
    result = run.result()
    server_busy = None if meter is None else meter.share(result.first_request_at, result.last_request_at)
    generating = [g for g in result.generators if g.role != "master"]
    busy = ", ".join("?" if g.busy is None else f"{g.busy:.0%}" for g in generating)
    label = "locust standalone" if workers == 0 else f"locust master + {workers} worker(s)"
    return Row(
        target=target,
        engine=label,
        generating_processes=len(generating),
        concurrency=users,
        requests=result.requests,
        rps=result.rps,
        p50_ms=result.latency.p50_ms,
        p99_ms=result.latency.p99_ms,
        generator_busy=busy + (" SATURATED" if result.generator_saturated else ""),
        server_busy=server_busy,
    )


_WRK_RPS = re.compile(r"Requests/sec:\s*([\d.]+)")
_WRK_TOTAL = re.compile(r"(\d+) requests in")
_WRK_LATENCY = re.compile(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)


def wrk_row(
    target: str,
    wrk: str,
    url: str,
    meter: ServerMeter | None,
    *,
    threads: int,
    connections: int,
    duration: float,
) -> Row:
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", url]
    started = time.time()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True)
    server_busy = None if meter is None else meter.share(started, time.time())
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    latency = {m.group(1): float(m.group(2)) * scale[m.group(3)] for m in _WRK_LATENCY.finditer(done.stdout)}
    rps = _WRK_RPS.search(done.stdout)
    total = _WRK_TOTAL.search(done.stdout)
    return Row(
        target=target,
        engine=f"wrk -t{threads}",
        generating_processes=threads,  # wrk threads, in one process
        concurrency=connections,
        requests=int(total.group(1)) if total else 0,
        rps=float(rps.group(1)) if rps else 0.0,
        p50_ms=latency.get("50"),
        p99_ms=latency.get("99"),
        generator_busy="(not measured)",
        server_busy=server_busy,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_table(rows: list[Row]) -> None:
    header = (
        "target",
        "engine",
        "procs",
        "conc",
        "requests",
        "req/s",
        "req/s/proc",
        "p50 ms",
        "p99 ms",
        "gen busy",
        "srv busy",
    )
    lines = [header]
    for row in rows:
        lines.append(
            (
                row.target,
                row.engine,
                str(row.generating_processes),
                str(row.concurrency),
                str(row.requests),
                f"{row.rps:.0f}",
                f"{row.rps_per_process:.0f}",
                _ms(row.p50_ms),
                _ms(row.p99_ms),
                row.generator_busy,
                "?" if row.server_busy is None else f"{row.server_busy:.0%}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


def measure(
    target: str, url: str, meter: ServerMeter | None, *, users: int, duration: float, out: Path
) -> list[Row]:
    """Every engine against one target: Locust standalone, master + 1 and + 2 workers, wrk."""
    rows = [
        locust_row(target, url, meter, workers=workers, users=users, duration=duration, out=out)
        for workers in (0, 1, 2)
    ]
    wrk = shutil.which("wrk")
    if wrk:
        for threads in (1, 2):
            rows.append(
                wrk_row(target, wrk, url, meter, threads=threads, connections=users, duration=duration)
            )
    return rows


@contextmanager
def lab_gateway() -> Iterator[str]:
    """A meshed lab with Bookinfo, through the project's own CLI and installer; yields the URL of
    the product page through the ingress gateway. The lab is taken down afterwards."""
    from pytest_meshcheck import cli
    from pytest_meshcheck.install.bookinfo import install_app
    from pytest_meshcheck.install.istio import GATEWAY_NAME, ISTIO_NAMESPACE
    from pytest_meshcheck.kube.client import connect
    from pytest_meshcheck.kube.services import reach_service
    from pytest_meshcheck.resources import data_file
    from pytest_meshcheck.settings import default_settings

    home = Path(tempfile.mkdtemp(prefix="meshcheck-bench-"))
    os.environ["MESHCHECK_HOME"] = str(home)
    lab = "bench-load-engine"
    if cli.main(["lab", "up", "--name", lab, "--mesh"]) != 0:
        raise RuntimeError("the lab did not come up")
    try:
        kube = connect(home / "labs" / lab / "kubeconfig")
        install_app(
            kube,
            default_settings(timeout="180s"),
            namespace="bookinfo",
            manifests=[
                data_file("bookinfo", "bookinfo.yaml"),
                data_file("bookinfo", "bookinfo-gateway.yaml"),
            ],
            injected=True,
        )
        gateway = reach_service(kube, ISTIO_NAMESPACE, GATEWAY_NAME, "http2", lb_timeout=60).url
        kube.close()
        yield f"{gateway}/productpage"
    finally:
        cli.main(["lab", "down", "--name", lab])


def scaling_note(rows: list[Row]) -> list[str]:
    notes = []
    for target in dict.fromkeys(row.target for row in rows):
        by_engine = {row.engine: row for row in rows if row.target == target}
        standalone = by_engine["locust standalone"]
        one, two = by_engine["locust master + 1 worker(s)"], by_engine["locust master + 2 worker(s)"]
        line = (
            f"{target}: 1 worker = {one.rps / standalone.rps:.2f}x standalone, "
            f"2 workers = {two.rps / one.rps:.2f}x 1 worker "
            f"({two.rps_per_process:.0f} vs {one.rps_per_process:.0f} req/s per worker process)"
        )
        wrk = by_engine.get("wrk -t2")
        if wrk is not None and wrk.rps:
            line += f"; Locust with 2 workers makes {two.rps / wrk.rps:.0%} of wrk -t2's rate"
        notes.append(line)
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    parser.add_argument("--users", type=int, default=20, help="Locust users / wrk connections (default 20)")
    parser.add_argument("--no-lab", action="store_true", help="skip the lab gateway target")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.serve))
        return 0

    print(f"cores: {os.cpu_count()}  duration: {args.duration:g}s per row  closed loop, no think time")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as scratch:
        with trivial_server() as (url, server_pid):
            meter = ServerMeter(server_pid)
            try:
                rows += measure(
                    "trivial", url + "/", meter, users=args.users, duration=args.duration, out=Path(scratch)
                )
            finally:
                meter.close()
        if not args.no_lab:
            with lab_gateway() as gateway:
                rows += measure(
                    "lab gateway", gateway, None, users=args.users, duration=args.duration, out=Path(scratch)
                )
    print_table(rows)
    if not shutil.which("wrk"):
        print("wrk is not installed (Debian: apt-get install wrk): no side-by-side rows")
    for line in scaling_note(rows):
        print(f"scaling: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
