"""curl's command line, as far as Istio's docs and everyday debugging use it.

Short options combine (``-sS``, ``-sSI``, ``-so /dev/null``, ``-o/dev/null``) and an option that
takes a value takes the rest of its cluster or the next word, as in curl. Options curl has but the
lab does not implement are reported as unknown rather than silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

USAGE_HINT = "curl: try 'curl --help' or 'curl --manual' for more information\n"


class CurlUsageError(Exception):
    """A command-line problem; curl exits 2 for these."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class CurlOptions:
    urls: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    remote_name: bool = False
    method: str | None = None
    headers: list[str] = field(default_factory=list)
    #: (kind, value): kind is "data", "raw", "binary", "urlencode" or "json".
    data: list[tuple[str, str]] = field(default_factory=list)
    write_out: str | None = None
    dump_header: str | None = None
    silent: bool = False
    show_error: bool = False
    verbose: bool = False
    include: bool = False
    head: bool = False
    follow: bool = False
    insecure: bool = False
    fail: bool = False
    fail_with_body: bool = False
    get: bool = False
    compressed: bool = False
    max_time: float | None = None
    connect_timeout: float | None = None
    max_redirs: int = 50
    resolve: list[str] = field(default_factory=list)
    user: str | None = None
    user_agent: str | None = None
    referer: str | None = None
    cookie: str | None = None
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    retry: int = 0
    retry_delay: float | None = None
    retry_connrefused: bool = False
    retry_all_errors: bool = False


_FLAGS: dict[str, str] = {
    "silent": "silent",
    "show-error": "show_error",
    "verbose": "verbose",
    "include": "include",
    "head": "head",
    "location": "follow",
    "location-trusted": "follow",
    "insecure": "insecure",
    "fail": "fail",
    "fail-with-body": "fail_with_body",
    "get": "get",
    "remote-name": "remote_name",
    "compressed": "compressed",
    "retry-connrefused": "retry_connrefused",
    "retry-all-errors": "retry_all_errors",
}
#: Accepted and without effect in the lab (output buffering, progress, IP family, HTTP version).
_IGNORED_FLAGS = {
    "no-buffer",
    "no-progress-meter",
    "progress-bar",
    "ipv4",
    "ipv6",
    "http1.1",
    "http1.0",
    "http2",
    "tlsv1.2",
    "tlsv1.3",
    "disable",
}
_WITH_VALUE = {
    "output",
    "write-out",
    "header",
    "request",
    "data",
    "data-raw",
    "data-binary",
    "data-ascii",
    "data-urlencode",
    "json",
    "max-time",
    "connect-timeout",
    "max-redirs",
    "resolve",
    "user",
    "user-agent",
    "referer",
    "cookie",
    "dump-header",
    "cert",
    "key",
    "cacert",
    "capath",
    "retry",
    "retry-delay",
    "retry-max-time",
    "url",
    "noproxy",
}
_SHORT: dict[str, str] = {
    "s": "silent",
    "S": "show-error",
    "v": "verbose",
    "i": "include",
    "I": "head",
    "L": "location",
    "k": "insecure",
    "f": "fail",
    "G": "get",
    "O": "remote-name",
    "N": "no-buffer",
    "4": "ipv4",
    "6": "ipv6",
    "#": "progress-bar",
    "q": "disable",
    "o": "output",
    "w": "write-out",
    "H": "header",
    "X": "request",
    "d": "data",
    "m": "max-time",
    "u": "user",
    "A": "user-agent",
    "e": "referer",
    "b": "cookie",
    "D": "dump-header",
    "E": "cert",
}


def parse_curl_args(args: list[str]) -> CurlOptions:
    options = CurlOptions()
    words = list(args)
    while words:
        word = words.pop(0)
        if word.startswith("--") and len(word) > 2:
            name = word[2:]
            if name in _WITH_VALUE:
                if not words:
                    raise CurlUsageError(f"curl: option {word}: requires parameter\n{USAGE_HINT}")
                _apply(options, name, words.pop(0), word)
            elif name in _FLAGS or name in _IGNORED_FLAGS:
                _apply(options, name, None, word)
            elif name.startswith("no-") and name[3:] in _FLAGS:
                setattr(options, _FLAGS[name[3:]], False)
            else:
                raise CurlUsageError(f"curl: option {word}: is unknown\n{USAGE_HINT}")
            continue
        if word.startswith("-") and len(word) > 1:
            index = 1
            while index < len(word):
                letter = word[index]
                name = _SHORT.get(letter, "")
                if not name:
                    raise CurlUsageError(f"curl: option -{letter}: is unknown\n{USAGE_HINT}")
                if name in _WITH_VALUE:
                    rest = word[index + 1 :]
                    if rest:
                        value = rest
                    elif words:
                        value = words.pop(0)
                    else:
                        raise CurlUsageError(f"curl: option -{letter}: requires parameter\n{USAGE_HINT}")
                    _apply(options, name, value, f"-{letter}")
                    break
                _apply(options, name, None, f"-{letter}")
                index += 1
            continue
        options.urls.append(word)
    if options.head and options.data:
        raise CurlUsageError(
            "Warning: You can only select one HTTP request method! You asked for both POST \n"
            "Warning: (-d, --data) and HEAD (-I, --head).\n"
        )
    if not options.urls:
        raise CurlUsageError(f"curl: no URL specified!\n{USAGE_HINT}")
    return options


def _number(value: str, option: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise CurlUsageError(
            f"curl: option {option}: expected a proper numerical parameter\n{USAGE_HINT}"
        ) from None
    if number < 0:
        raise CurlUsageError(f"curl: option {option}: expected a proper numerical parameter\n{USAGE_HINT}")
    return number


def _apply(options: CurlOptions, name: str, value: str | None, option: str) -> None:
    if value is None:
        if name in _FLAGS:
            setattr(options, _FLAGS[name], True)
        return
    simple = {
        "write-out": "write_out",
        "request": "method",
        "user": "user",
        "user-agent": "user_agent",
        "referer": "referer",
        "cookie": "cookie",
        "dump-header": "dump_header",
        "cert": "cert",
        "key": "key",
        "cacert": "cacert",
    }
    if name in simple:
        setattr(options, simple[name], value)
    elif name == "output":
        options.outputs.append(value)
    elif name == "header":
        options.headers.append(value)
    elif name == "url":
        options.urls.append(value)
    elif name == "resolve":
        options.resolve.append(value)
    elif name in ("data", "data-ascii"):
        options.data.append(("data", value))
    elif name == "data-raw":
        options.data.append(("raw", value))
    elif name == "data-binary":
        options.data.append(("binary", value))
    elif name == "data-urlencode":
        options.data.append(("urlencode", value))
    elif name == "json":
        options.data.append(("json", value))
    elif name == "max-time":
        options.max_time = _number(value, option)
    elif name == "connect-timeout":
        options.connect_timeout = _number(value, option)
    elif name == "max-redirs":
        options.max_redirs = int(_number(value, option))
    elif name == "retry":
        options.retry = int(_number(value, option))
    elif name == "retry-delay":
        options.retry_delay = _number(value, option)
    # capath, retry-max-time, noproxy: accepted; the lab has no proxies and no CA directories.
