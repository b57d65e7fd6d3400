"""httpbin, in its two common images: go-httpbin (Istio's current sample) and kennethreitz/httpbin.

The two differ in what clients see: go-httpbin listens on 8080 (``PORT`` env or ``-port`` arg
overrides it) and reports every header and query value as a list; kennethreitz/httpbin listens on
80 and joins repeated values into one string. Istio's docs show both shapes (``/headers`` with
``X-Forwarded-Client-Cert`` is how the mTLS tasks prove identities), so both are kept.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from typing import Any

from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.httpframing import reason_phrase
from pytest_meshcheck.lab.httpserve import Request, Response
from pytest_meshcheck.lab.workloads.base import HttpWorkload, json_response, text_response

GO_HTTPBIN_PORT = 8080
KENNETHREITZ_PORT = 80
#: go-httpbin's upper bound for ``/delay/N``.
MAX_DELAY_SECONDS = 10.0
_STATUS_PATH = re.compile(r"^/status/([^/]+)$")
_DELAY_PATH = re.compile(r"^/delay/([^/]+)$")
_REDIRECT_STATUSES = {301, 302, 303, 305, 307, 308}
#: Hop-by-hop or connection headers servers do not echo.
_NOT_ECHOED = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}


def canonical_header_name(name: str) -> str:
    """Go's textproto canonical form: ``x-forwarded-client-cert`` -> ``X-Forwarded-Client-Cert``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class Httpbin(HttpWorkload):
    server_name = "httpbin"

    def __init__(self, ctx: WorkloadContext, ports: tuple[int, ...], *, go_style: bool) -> None:
        super().__init__(ctx, ports)
        self.go_style = go_style
        self._random = random.Random()

    def handle(self, request: Request) -> Response:
        path = request.path
        if path == "/":
            return text_response(
                "<!DOCTYPE html><html><head><title>httpbin</title></head>"
                "<body><h1>httpbin</h1><p>A simple HTTP Request &amp; Response Service.</p></body></html>\n",
                content_type="text/html; charset=utf-8",
            )
        if path == "/headers":
            return self._json({"headers": self._headers(request)})
        if path == "/ip":
            return self._json({"origin": _origin(request)})
        if path == "/user-agent":
            return self._json({"user-agent": request.headers.get("User-Agent", "")})
        if path == "/uuid":
            return self._json({"uuid": str(uuid.uuid4())})
        if path == "/get":
            if request.method not in ("GET", "HEAD"):
                return self._method_not_allowed()
            return self._json(self._echo(request, with_body=False))
        if path in ("/post", "/put", "/patch", "/delete"):
            if request.method != path[1:].upper():
                return self._method_not_allowed()
            return self._json(self._echo(request, with_body=True))
        if path == "/anything" or path.startswith("/anything/"):
            return self._json(self._echo(request, with_body=True))
        if path == "/response-headers":
            return self._response_headers(request)
        match = _STATUS_PATH.match(path)
        if match is not None:
            return self._status(match.group(1))
        match = _DELAY_PATH.match(path)
        if match is not None:
            return self._delay(request, match.group(1))
        return text_response("404 page not found\n", 404)

    def _json(self, payload: Any, status: int = 200) -> Response:
        response = json_response(payload, status, indent=2)
        if self.go_style:
            response.headers = [("Content-Type", "application/json; charset=utf-8")]
        return response

    def _method_not_allowed(self) -> Response:
        return text_response("Method Not Allowed\n", 405)

    def _headers(self, request: Request) -> dict[str, Any]:
        collected: dict[str, list[str]] = {}
        for name, value in request.headers:
            if name.lower() in _NOT_ECHOED:
                continue
            collected.setdefault(canonical_header_name(name), []).append(value)
        if self.go_style:
            return dict(sorted(collected.items()))
        return {name: ",".join(values) for name, values in sorted(collected.items())}

    def _args(self, request: Request) -> dict[str, Any]:
        query = request.query
        if self.go_style:
            return query
        return {name: values[0] if len(values) == 1 else values for name, values in query.items()}

    def _echo(self, request: Request, *, with_body: bool) -> dict[str, Any]:
        scheme = "https" if (request.headers.get("X-Forwarded-Proto") or "") == "https" else "http"
        echo: dict[str, Any] = {
            "args": self._args(request),
            "headers": self._headers(request),
            "method": request.method,
            "origin": _origin(request),
            "url": f"{scheme}://{request.host}{request.target}",
        }
        if with_body:
            text = request.body.decode("utf-8", "replace")
            echo["data"] = text
            echo["files"] = {}
            echo["form"] = {}
            try:
                echo["json"] = json.loads(text) if text else None
            except ValueError:
                echo["json"] = None
        return echo

    def _response_headers(self, request: Request) -> Response:
        values = request.query
        response = self._json(values if self.go_style else self._args(request))
        for name, entries in values.items():
            for value in entries:
                response.headers.append((canonical_header_name(name), value))
        return response

    def _status(self, spec: str) -> Response:
        try:
            code = self._choose_status(spec)
        except ValueError:
            return text_response("invalid status code\n", 400)
        headers: list[tuple[str, str]] = []
        body = b""
        if code in _REDIRECT_STATUSES:
            headers.append(("Location", "/redirect/1"))
        if code == 401:
            headers.append(("WWW-Authenticate", 'Basic realm="Fake Realm"'))
        if code == 418:
            body = b"I'm a teapot!\n"
        return Response(status=code, headers=headers, body=body, reason=reason_phrase(code))

    def _choose_status(self, spec: str) -> int:
        """``/status/503`` or go-httpbin's weighted choice ``/status/200:0.9,503:0.1``."""
        choices: list[tuple[int, float]] = []
        for item in spec.split(","):
            code_text, _, weight_text = item.partition(":")
            code = int(code_text)
            if not 100 <= code <= 599:
                raise ValueError(code)
            choices.append((code, float(weight_text) if weight_text else 1.0))
        if len(choices) == 1:
            return choices[0][0]
        codes = [code for code, _ in choices]
        weights = [weight for _, weight in choices]
        return self._random.choices(codes, weights=weights)[0]

    def _delay(self, request: Request, spec: str) -> Response:
        try:
            seconds = float(spec)
        except ValueError:
            return text_response("invalid duration\n", 400)
        if seconds < 0:
            return text_response("invalid duration\n", 400)
        request.cancelled.wait(min(seconds, MAX_DELAY_SECONDS))
        if request.cancelled.is_set():
            return text_response("server shutting down\n", 503)
        return self._json(self._echo(request, with_body=False))


def _origin(request: Request) -> str:
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded:
        return forwarded.split(",")[0].strip()
    return request.client_ip


def _go_httpbin_port(ctx: WorkloadContext) -> int:
    words = [*ctx.command, *ctx.args]
    for index, word in enumerate(words):
        if word in ("-port", "--port") and index + 1 < len(words) and words[index + 1].isdigit():
            return int(words[index + 1])
        for prefix in ("-port=", "--port="):
            if word.startswith(prefix) and word[len(prefix) :].isdigit():
                return int(word[len(prefix) :])
    port = ctx.env.get("PORT", "")
    return int(port) if port.isdigit() else GO_HTTPBIN_PORT


def go_httpbin_factory(ctx: WorkloadContext) -> Httpbin:
    return Httpbin(ctx, (_go_httpbin_port(ctx),), go_style=True)


def kennethreitz_httpbin_factory(ctx: WorkloadContext) -> Httpbin:
    return Httpbin(ctx, (KENNETHREITZ_PORT,), go_style=False)
