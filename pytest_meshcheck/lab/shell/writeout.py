"""curl's ``-w/--write-out`` language, rendered from one transfer's facts.

The output formats follow curl's: ``%{http_code}`` is three digits and ``000`` when no response
arrived, times are seconds with six decimals, unknown variables print nothing and a warning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class Transfer:
    """What curl knows about one URL's transfer when it writes ``-w`` output."""

    url: str
    url_effective: str
    urlnum: int = 0
    method: str = "GET"
    scheme: str = ""
    http_code: int = 0
    http_version: str = "0"
    remote_ip: str = ""
    remote_port: int = 0
    local_ip: str = ""
    local_port: int = 0
    size_download: int = 0
    size_header: int = 0
    size_request: int = 0
    size_upload: int = 0
    content_type: str = ""
    redirect_url: str = ""
    num_redirects: int = 0
    num_connects: int = 0
    num_headers: int = 0
    time_namelookup: float = 0.0
    time_connect: float = 0.0
    time_appconnect: float = 0.0
    time_pretransfer: float = 0.0
    time_starttransfer: float = 0.0
    time_redirect: float = 0.0
    time_total: float = 0.0
    exitcode: int = 0
    errormsg: str = ""
    filename_effective: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)

    def variables(self) -> dict[str, str]:
        speed = int(self.size_download / self.time_total) if self.time_total > 0 else 0
        values = {
            "http_code": f"{self.http_code:03d}",
            "response_code": f"{self.http_code:03d}",
            "http_connect": "000",
            "http_version": self.http_version,
            "remote_ip": self.remote_ip,
            "remote_port": str(self.remote_port),
            "local_ip": self.local_ip,
            "local_port": str(self.local_port),
            "size_download": str(self.size_download),
            "size_header": str(self.size_header),
            "size_request": str(self.size_request),
            "size_upload": str(self.size_upload),
            "speed_download": str(speed),
            "speed_upload": "0",
            "content_type": self.content_type,
            "redirect_url": self.redirect_url,
            "num_redirects": str(self.num_redirects),
            "num_connects": str(self.num_connects),
            "num_headers": str(self.num_headers),
            "url": self.url,
            "url_effective": self.url_effective,
            "urlnum": str(self.urlnum),
            "method": self.method,
            "scheme": self.scheme,
            "exitcode": str(self.exitcode),
            "errormsg": self.errormsg,
            "ssl_verify_result": "0",
            "proxy_ssl_verify_result": "0",
            "filename_effective": self.filename_effective,
        }
        for name in (
            "time_namelookup",
            "time_connect",
            "time_appconnect",
            "time_pretransfer",
            "time_starttransfer",
            "time_redirect",
            "time_total",
        ):
            values[name] = f"{getattr(self, name):.6f}"
        return values


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}


def render(fmt: str, transfer: Transfer) -> tuple[list[tuple[str, str]], list[str]]:
    """The pieces to write as (stream, text) and the warnings curl prints for unknown variables."""
    pieces: list[tuple[str, str]] = []
    warnings: list[str] = []
    stream = "stdout"
    variables = transfer.variables()
    index = 0
    text: list[str] = []

    def flush() -> None:
        if text:
            pieces.append((stream, "".join(text)))
            text.clear()

    while index < len(fmt):
        char = fmt[index]
        if char == "\\" and index + 1 < len(fmt) and fmt[index + 1] in _ESCAPES:
            text.append(_ESCAPES[fmt[index + 1]])
            index += 2
            continue
        if char == "%" and fmt.startswith("%%", index):
            text.append("%")
            index += 2
            continue
        if char == "%" and fmt.startswith("%{", index):
            end = _closing_brace(fmt, index + 2)
            if end < 0:
                text.append(fmt[index:])
                break
            name = fmt[index + 2 : end]
            index = end + 1
            if name in ("stdout", "stderr"):
                flush()
                stream = name
            elif name == "onerror":
                if transfer.exitcode == 0:
                    break
            elif name == "json":
                text.append(json.dumps(_typed(variables), separators=(",", ":")))
            elif name == "header_json":
                text.append(json.dumps(_headers_json(transfer.headers), separators=(",", ":")))
            elif name.startswith("header{") and name.endswith("}"):
                wanted = name[7:-1].lower()
                text.append(", ".join(value for key, value in transfer.headers if key.lower() == wanted))
            elif name in variables:
                text.append(variables[name])
            else:
                warnings.append(f"curl: unknown --write-out variable: '{name}'\n")
            continue
        text.append(char)
        index += 1
    flush()
    return pieces, warnings


def _closing_brace(fmt: str, start: int) -> int:
    """The ``}`` that ends ``%{...}``, allowing one nested ``{...}`` (``%{header{name}}``)."""
    depth = 0
    for index in range(start, len(fmt)):
        if fmt[index] == "{":
            depth += 1
        elif fmt[index] == "}":
            if depth == 0:
                return index
            depth -= 1
    return -1


def _typed(variables: dict[str, str]) -> dict[str, object]:
    typed: dict[str, object] = {}
    for name, value in variables.items():
        if name.startswith(("time_", "size_", "speed_", "num_")) or name in ("exitcode", "urlnum"):
            typed[name] = float(value) if "." in value else int(value)
        elif name in ("remote_port", "local_port"):
            typed[name] = int(value)
        else:
            typed[name] = value
    return typed


def _headers_json(headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name.lower(), []).append(value)
    return grouped
