"""The small utilities every lab container answers, with busybox's wording for their errors
(the curl and sleep samples are Alpine images, so that is what people see there)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from pytest_meshcheck.lab.shell.files import FileError
from pytest_meshcheck.lab.shell.interpreter import BuiltinCommand, Shell, ShellExit, Streams

#: ``sleep`` never waits longer than this; exec sessions are not meant to park forever.
MAX_SLEEP_SECONDS = 600.0


def _out(streams: Streams, text: str) -> None:
    streams.stdout.write(text.encode())


def _err(streams: Streams, text: str) -> None:
    streams.stderr.write(text.encode())


def _read_inputs(shell: Shell, name: str, paths: list[str], streams: Streams) -> tuple[bytes, int]:
    """Concatenate files (``-`` or none: stdin), reporting missing ones like busybox."""
    if not paths:
        return (streams.stdin.read() if streams.stdin is not None else b""), 0
    chunks: list[bytes] = []
    status = 0
    for path in paths:
        if path == "-":
            chunks.append(streams.stdin.read() if streams.stdin is not None else b"")
            continue
        try:
            chunks.append(shell.files.read(shell.path(path)))
        except FileError as error:
            _err(streams, f"{name}: can't open '{path}': {error}\n")
            status = 1
    return b"".join(chunks), status


def cmd_true(shell: Shell, argv: list[str], streams: Streams) -> int:
    return 0


def cmd_false(shell: Shell, argv: list[str], streams: Streams) -> int:
    return 1


def cmd_echo(shell: Shell, argv: list[str], streams: Streams) -> int:
    words = argv[1:]
    newline = True
    escapes = False
    while words and re.fullmatch(r"-[neE]+", words[0]):
        flags = words.pop(0)
        newline = newline and "n" not in flags
        escapes = "e" in flags or (escapes and "E" not in flags)
    text = " ".join(words)
    if escapes:
        text = _unescape(text)
    _out(streams, text + ("\n" if newline else ""))
    return 0


def _unescape(text: str) -> str:
    table = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "a": "\a", "b": "\b", "0": "\0"}
    return re.sub(r"\\([ntr\\ab0])", lambda match: table[match.group(1)], text)


_PRINTF_SPEC = re.compile(r"%%|%-?\d*(?:\.\d+)?[sdf]")


def _printf_once(fmt: str, args: list[str]) -> tuple[str, int]:
    """One pass of ``fmt`` over ``args``; returns the text and how many arguments it used."""
    pieces: list[str] = []
    used = 0
    position = 0
    for match in _PRINTF_SPEC.finditer(fmt):
        pieces.append(fmt[position : match.start()])
        position = match.end()
        spec = match.group(0)
        if spec == "%%":
            pieces.append("%")
            continue
        value = args[used] if used < len(args) else ""
        used += 1
        try:
            if spec.endswith("d"):
                pieces.append(spec % int(value or "0"))
            elif spec.endswith("f"):
                pieces.append(spec % float(value or "0"))
            else:
                pieces.append(spec % value)
        except ValueError:
            pieces.append(value)
    pieces.append(fmt[position:])
    return "".join(pieces), used


def cmd_printf(shell: Shell, argv: list[str], streams: Streams) -> int:
    if len(argv) < 2:
        _err(streams, "printf: usage: printf FORMAT [ARGUMENT]...\n")
        return 1
    fmt = _unescape(argv[1])
    args = list(argv[2:])
    while True:
        text, used = _printf_once(fmt, args)
        _out(streams, text)
        args = args[used:]
        if not args or not used:
            return 0


def cmd_cat(shell: Shell, argv: list[str], streams: Streams) -> int:
    data, status = _read_inputs(shell, "cat", argv[1:], streams)
    streams.stdout.write(data)
    return status


def _count_option(argv: list[str], default: int) -> tuple[int, list[str]]:
    """``-n N``, ``-nN``, ``-N`` as head and tail take them."""
    count = default
    rest: list[str] = []
    words = list(argv[1:])
    while words:
        word = words.pop(0)
        if word == "-n" and words:
            count = int(words.pop(0).lstrip("+-") or "0")
        elif word.startswith("-n") and word[2:].lstrip("+-").isdigit():
            count = int(word[2:].lstrip("+-"))
        elif re.fullmatch(r"-\d+", word):
            count = int(word[1:])
        else:
            rest.append(word)
    return count, rest


def cmd_head(shell: Shell, argv: list[str], streams: Streams) -> int:
    try:
        count, paths = _count_option(argv, 10)
    except ValueError:
        _err(streams, "head: invalid number\n")
        return 1
    data, status = _read_inputs(shell, "head", paths, streams)
    streams.stdout.write(b"".join(data.splitlines(keepends=True)[:count]))
    return status


def cmd_tail(shell: Shell, argv: list[str], streams: Streams) -> int:
    try:
        count, paths = _count_option(argv, 10)
    except ValueError:
        _err(streams, "tail: invalid number\n")
        return 1
    data, status = _read_inputs(shell, "tail", paths, streams)
    lines = data.splitlines(keepends=True)
    streams.stdout.write(b"".join(lines[-count:] if count else []))
    return status


def cmd_grep(shell: Shell, argv: list[str], streams: Streams) -> int:
    options: set[str] = set()
    patterns: list[str] = []
    paths: list[str] = []
    words = list(argv[1:])
    while words:
        word = words.pop(0)
        if word == "-e" and words:
            patterns.append(words.pop(0))
        elif word.startswith("-") and len(word) > 1 and not paths and word != "--":
            options.update(word[1:])
        elif not patterns:
            patterns.append(word)
        else:
            paths.append(word)
    if not patterns:
        _err(streams, "BusyBox grep: usage: grep [-EFiovcq] PATTERN [FILE]...\n")
        return 2
    flags = re.IGNORECASE if "i" in options else 0
    sources = [
        re.escape(pattern) if "F" in options else _basic_regex(pattern, "E" in options)
        for pattern in patterns
    ]
    try:
        regex = re.compile("|".join(f"(?:{source})" for source in sources), flags)
    except re.error:
        _err(streams, "grep: bad regex\n")
        return 2
    data, status = _read_inputs(shell, "grep", paths, streams)
    matched = 0
    output: list[str] = []
    for line in data.decode("utf-8", "replace").splitlines():
        hits = list(regex.finditer(line))
        if bool(hits) == ("v" in options):
            continue
        matched += 1
        if "o" in options and "v" not in options:
            output.extend(f"{hit.group(0)}\n" for hit in hits if hit.group(0))
        else:
            output.append(f"{line}\n")
    if "q" not in options:
        _out(streams, f"{matched}\n" if "c" in options else "".join(output))
    if status:
        return 2
    return 0 if matched else 1


def _basic_regex(pattern: str, extended: bool) -> str:
    """POSIX basic regexes treat ``+ ? | ( ) { }`` literally unless escaped; Python's are extended."""
    if extended:
        return pattern
    converted: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern) and pattern[index + 1] in "+?|(){}":
            converted.append(pattern[index + 1])
            index += 2
            continue
        converted.append("\\" + char if char in "+?|(){}" else char)
        index += 1
    return "".join(converted)


def cmd_wc(shell: Shell, argv: list[str], streams: Streams) -> int:
    options = {char for word in argv[1:] if word.startswith("-") for char in word[1:]}
    paths = [word for word in argv[1:] if not word.startswith("-")]
    data, status = _read_inputs(shell, "wc", paths, streams)
    counts = {"l": data.count(b"\n"), "w": len(data.split()), "c": len(data)}
    chosen = [key for key in "lwc" if key in options] or ["l", "w", "c"]
    values = [str(counts[key]) for key in chosen]
    if len(values) == 1:
        _out(streams, f"{values[0]}\n")
    else:
        _out(streams, " ".join(value.rjust(7) for value in values) + "\n")
    return status


def cmd_sleep(shell: Shell, argv: list[str], streams: Streams) -> int:
    if len(argv) < 2:
        _err(streams, "sleep: missing operand\n")
        return 1
    total = 0.0
    for word in argv[1:]:
        if word == "infinity":
            total = MAX_SLEEP_SECONDS
            continue
        match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", word)
        if match is None:
            _err(streams, f"sleep: invalid number '{word}'\n")
            return 1
        scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        total += float(match.group(1)) * scale
    completed = shell.wait(min(total, MAX_SLEEP_SECONDS))
    return 0 if completed else 130


def cmd_env(shell: Shell, argv: list[str], streams: Streams) -> int:
    words = argv[1:]
    overrides: dict[str, str] = {}
    while words and "=" in words[0] and not words[0].startswith("="):
        name, _, value = words.pop(0).partition("=")
        overrides[name] = value
    if words:
        saved = dict(shell.variables)
        shell.variables.update(overrides)
        try:
            return shell.run_argv(words, streams)
        finally:
            shell.variables = saved
    variables = {**shell.variables, **overrides}
    _out(streams, "".join(f"{name}={value}\n" for name, value in variables.items()))
    return 0


def cmd_printenv(shell: Shell, argv: list[str], streams: Streams) -> int:
    if len(argv) == 1:
        _out(streams, "".join(f"{name}={value}\n" for name, value in shell.variables.items()))
        return 0
    status = 0
    for name in argv[1:]:
        if name in shell.variables:
            _out(streams, f"{shell.variables[name]}\n")
        else:
            status = 1
    return status


def cmd_export(shell: Shell, argv: list[str], streams: Streams) -> int:
    for word in argv[1:]:
        name, sep, value = word.partition("=")
        if sep:
            shell.variables[name] = value
    return 0


def cmd_hostname(shell: Shell, argv: list[str], streams: Streams) -> int:
    if "-i" in argv[1:]:
        _out(streams, f"{shell.ctx.pod_ip}\n")
    else:
        _out(streams, f"{shell.ctx.hostname}\n")
    return 0


def cmd_pwd(shell: Shell, argv: list[str], streams: Streams) -> int:
    _out(streams, f"{shell.cwd}\n")
    return 0


def cmd_cd(shell: Shell, argv: list[str], streams: Streams) -> int:
    target = shell.path(argv[1] if len(argv) > 1 else shell.variables.get("HOME", "/"))
    if not shell.files.is_dir(target):
        _err(
            streams,
            f"sh: cd: can't cd to {argv[1] if len(argv) > 1 else target}: No such file or directory\n",
        )
        return 2
    shell.cwd = target
    shell.variables["PWD"] = target
    return 0


def cmd_ls(shell: Shell, argv: list[str], streams: Streams) -> int:
    options = {char for word in argv[1:] if word.startswith("-") for char in word[1:]}
    paths = [word for word in argv[1:] if not word.startswith("-")] or [shell.cwd]
    status = 0
    for path in paths:
        try:
            names = shell.files.list_dir(shell.path(path))
        except FileError as error:
            _err(streams, f"ls: {path}: {error}\n")
            status = 1
            continue
        if "a" in options:
            names = [".", "..", *names]
        if len(paths) > 1:
            _out(streams, f"{path}:\n")
        _out(streams, "".join(f"{name}\n" for name in names))
    return status


def cmd_mkdir(shell: Shell, argv: list[str], streams: Streams) -> int:
    parents = "-p" in argv[1:]
    status = 0
    for path in (word for word in argv[1:] if not word.startswith("-")):
        full = shell.path(path)
        steps = [full] if not parents else _ancestors(full)
        for step in steps:
            if parents and shell.files.is_dir(step):
                continue
            try:
                shell.files.make_dir(step)
            except FileError as error:
                _err(streams, f"mkdir: can't create directory '{path}': {error}\n")
                status = 1
                break
    return status


def _ancestors(path: str) -> list[str]:
    pieces = [piece for piece in path.split("/") if piece]
    return ["/" + "/".join(pieces[: index + 1]) for index in range(len(pieces))]


def cmd_rm(shell: Shell, argv: list[str], streams: Streams) -> int:
    force = any(word.startswith("-") and "f" in word for word in argv[1:])
    status = 0
    for path in (word for word in argv[1:] if not word.startswith("-")):
        try:
            shell.files.remove(shell.path(path))
        except FileError as error:
            if not force:
                _err(streams, f"rm: can't remove '{path}': {error}\n")
                status = 1
    return status


def cmd_touch(shell: Shell, argv: list[str], streams: Streams) -> int:
    status = 0
    for path in argv[1:]:
        try:
            shell.files.write(shell.path(path), b"", append=True)
        except FileError as error:
            _err(streams, f"touch: {path}: {error}\n")
            status = 1
    return status


def cmd_exit(shell: Shell, argv: list[str], streams: Streams) -> int:
    code = shell.status
    if len(argv) > 1:
        try:
            code = int(argv[1]) & 0xFF
        except ValueError:
            _err(streams, f"sh: exit: Illegal number: {argv[1]}\n")
            code = 2
    raise ShellExit(code)


def cmd_seq(shell: Shell, argv: list[str], streams: Streams) -> int:
    try:
        numbers = [int(word) for word in argv[1:]]
    except ValueError:
        _err(streams, "seq: invalid number\n")
        return 1
    if len(numbers) == 1:
        first, step, last = 1, 1, numbers[0]
    elif len(numbers) == 2:
        first, step, last = numbers[0], 1, numbers[1]
    elif len(numbers) == 3:
        first, step, last = numbers
    else:
        _err(streams, "Usage: seq [-w] [-s SEP] [FIRST [INC]] LAST\n")
        return 1
    if step == 0:
        return 1
    values = range(first, last + (1 if step > 0 else -1), step)
    _out(streams, "".join(f"{value}\n" for value in list(values)[:100_000]))
    return 0


def cmd_test(shell: Shell, argv: list[str], streams: Streams) -> int:
    words = argv[1:]
    if argv[0] == "[":
        if not words or words[-1] != "]":
            _err(streams, "sh: missing ]\n")
            return 2
        words = words[:-1]
    negate = False
    if words and words[0] == "!":
        negate = True
        words = words[1:]
    result = _evaluate_test(shell, words)
    if result is None:
        _err(streams, "sh: test: syntax error\n")
        return 2
    return 0 if result != negate else 1


def _evaluate_test(shell: Shell, words: list[str]) -> bool | None:
    if not words:
        return False
    if len(words) == 1:
        return words[0] != ""
    if len(words) == 2:
        operator, operand = words
        checks: dict[str, Callable[[str], bool]] = {
            "-n": lambda value: value != "",
            "-z": lambda value: value == "",
            "-e": lambda value: shell.files.exists(shell.path(value)),
            "-f": lambda value: (
                shell.files.exists(shell.path(value)) and not shell.files.is_dir(shell.path(value))
            ),
            "-d": lambda value: shell.files.is_dir(shell.path(value)),
            "-s": lambda value: _nonempty(shell, value),
        }
        check = checks.get(operator)
        return check(operand) if check is not None else None
    if len(words) == 3:
        left, operator, right = words
        if operator in ("=", "=="):
            return left == right
        if operator == "!=":
            return left != right
        numeric = {"-eq": int.__eq__, "-ne": int.__ne__, "-lt": int.__lt__, "-le": int.__le__}
        numeric.update({"-gt": int.__gt__, "-ge": int.__ge__})
        if operator in numeric:
            try:
                return bool(numeric[operator](int(left), int(right)))
            except ValueError:
                return None
    return None


def _nonempty(shell: Shell, path: str) -> bool:
    try:
        return bool(shell.files.read(shell.path(path)))
    except FileError:
        return False


def cmd_sh(shell: Shell, argv: list[str], streams: Streams) -> int:
    """``sh -c 'SCRIPT' [NAME [ARGS]]``, or a script read from stdin."""
    words = argv[1:]
    if words and words[0] in ("-c", "-ec", "-ce", "-xc", "-cx", "-lc", "-ic"):
        if len(words) < 2:
            _err(streams, "sh: -c requires an argument\n")
            return 2
        child = Shell(shell.ctx, shell.builtins, extra=shell.extra, cancelled=shell.cancelled)
        child.variables = dict(shell.variables)
        child.cwd = shell.cwd
        return child.run_script(words[1], streams, name=argv[0])
    if words and not words[0].startswith("-"):
        try:
            source = shell.files.read(shell.path(words[0])).decode("utf-8", "replace")
        except FileError:
            _err(streams, f"sh: can't open '{words[0]}': No such file or directory\n")
            return 2
        return Shell(shell.ctx, shell.builtins, extra=shell.extra, cancelled=shell.cancelled).run_script(
            source, streams
        )
    source = streams.stdin.read().decode("utf-8", "replace") if streams.stdin is not None else ""
    return Shell(shell.ctx, shell.builtins, extra=shell.extra, cancelled=shell.cancelled).run_script(
        source, streams
    )


def cmd_date(shell: Shell, argv: list[str], streams: Streams) -> int:
    if len(argv) > 1 and argv[1].startswith("+"):
        _out(streams, time.strftime(argv[1][1:], time.gmtime()) + "\n")
    else:
        _out(streams, time.strftime("%a %b %e %H:%M:%S UTC %Y", time.gmtime()) + "\n")
    return 0


def cmd_uname(shell: Shell, argv: list[str], streams: Streams) -> int:
    _out(streams, ("Linux " + shell.ctx.hostname + " x86_64\n") if "-a" in argv else "Linux\n")
    return 0


BUILTINS: dict[str, BuiltinCommand] = {
    "true": cmd_true,
    ":": cmd_true,
    "false": cmd_false,
    "echo": cmd_echo,
    "printf": cmd_printf,
    "cat": cmd_cat,
    "head": cmd_head,
    "tail": cmd_tail,
    "grep": cmd_grep,
    "wc": cmd_wc,
    "sleep": cmd_sleep,
    "env": cmd_env,
    "printenv": cmd_printenv,
    "export": cmd_export,
    "hostname": cmd_hostname,
    "pwd": cmd_pwd,
    "cd": cmd_cd,
    "ls": cmd_ls,
    "mkdir": cmd_mkdir,
    "rm": cmd_rm,
    "touch": cmd_touch,
    "exit": cmd_exit,
    "seq": cmd_seq,
    "test": cmd_test,
    "[": cmd_test,
    "sh": cmd_sh,
    "ash": cmd_sh,
    "bash": cmd_sh,
    "date": cmd_date,
    "uname": cmd_uname,
}
