"""Running a parsed command line: expansion, redirections, pipelines, control flow, dispatch.

Pipelines run their stages one after the other, each stage's output buffered as the next one's
input. That is enough for what people pipe inside ``kubectl exec`` (``curl ... | grep ...``,
``| head -n 1``, ``| wc -l``), and keeps every exec on the caller's thread.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.shell.arithmetic import ArithmeticSyntaxError, evaluate_arithmetic
from pytest_meshcheck.lab.shell.files import ContainerFiles, FileError, files_for, normalise
from pytest_meshcheck.lab.shell.syntax import (
    AndOr,
    Arithmetic,
    Command,
    CommandSubstitution,
    ForLoop,
    IfClause,
    Literal,
    Parameter,
    Pipeline,
    Redirect,
    Sequence,
    ShellSyntaxError,
    Simple,
    WhileLoop,
    Word,
    parse,
    parse_quoted,
)

#: Directories whose programs are found by bare name (``/usr/bin/curl`` is ``curl``).
BIN_DIRS = ("/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Loops stop after this many rounds; a real shell would spin until the exec is killed.
MAX_LOOP_ROUNDS = 100_000


@dataclass
class Streams:
    stdin: BinaryIO | None
    stdout: BinaryIO
    stderr: BinaryIO


class ShellExit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


BuiltinCommand = Callable[["Shell", list[str], Streams], int]


class Shell:
    """One exec's shell state: variables, working directory, last status, the container's files."""

    def __init__(
        self,
        ctx: WorkloadContext,
        builtins: Mapping[str, BuiltinCommand],
        *,
        extra: Mapping[str, Callable[[list[str], Any, Any, Any], int]] | None = None,
        cancelled: threading.Event | None = None,
    ) -> None:
        self.ctx = ctx
        self.files: ContainerFiles = files_for(ctx)
        self.builtins = builtins
        self.extra = dict(extra or {})
        self.cancelled = cancelled or threading.Event()
        self.cwd = "/"
        self.status = 0
        self.variables: dict[str, str] = {
            "PATH": DEFAULT_PATH,
            "HOME": "/root",
            "HOSTNAME": ctx.hostname,
            **ctx.env,
        }
        self.variables["PWD"] = self.cwd

    # --- lookup ---------------------------------------------------------------------------------

    def stop_requested(self) -> bool:
        return self.cancelled.is_set() or self.ctx.stopping.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; ``False`` when interrupted by a stop or cancel."""
        step = 0.05
        remaining = seconds
        while remaining > 0:
            if self.ctx.stopping.wait(min(step, remaining)) or self.cancelled.is_set():
                return False
            remaining -= step
        return True

    def command_name(self, name: str) -> str | None:
        """The builtin or extra command ``name`` names (``/usr/bin/curl`` -> ``curl``)."""
        if name in self.extra or name in self.builtins:
            return name
        if "/" in name:
            directory, _, base = normalise(name).rpartition("/")
            if (directory or "/") in BIN_DIRS and (base in self.builtins or base in self.extra):
                return base
        return None

    def path(self, name: str) -> str:
        if name.startswith("/"):
            return normalise(name)
        return normalise(f"{self.cwd}/{name}")

    # --- running --------------------------------------------------------------------------------

    def run_argv(self, argv: list[str], streams: Streams) -> int:
        resolved = self.command_name(argv[0])
        if resolved is None:
            streams.stderr.write(f"sh: {argv[0]}: not found\n".encode())
            return 127
        if resolved in self.extra:
            return self.extra[resolved]([resolved, *argv[1:]], streams.stdin, streams.stdout, streams.stderr)
        return self.builtins[resolved](self, [resolved, *argv[1:]], streams)

    def run_script(self, source: str, streams: Streams, *, name: str = "sh") -> int:
        try:
            tree = parse(source)
        except ShellSyntaxError as error:
            streams.stderr.write(f"{name}: {error}\n".encode())
            return 2
        try:
            self.status = self.sequence(tree, streams)
        except ShellExit as leave:
            self.status = leave.status
        return self.status

    def sequence(self, tree: Sequence, streams: Streams) -> int:
        status = self.status
        for item in tree.items:
            if self.stop_requested():
                return 130
            status = self.and_or(item, streams)
            self.status = status
        return status

    def and_or(self, node: AndOr, streams: Streams) -> int:
        status = self.pipeline(node.first, streams)
        for operator, pipeline in node.rest:
            self.status = status
            if (operator == "&&") == (status == 0):
                status = self.pipeline(pipeline, streams)
        return status

    def pipeline(self, node: Pipeline, streams: Streams) -> int:
        feed = streams.stdin
        status = 0
        for index, command in enumerate(node.commands):
            last = index == len(node.commands) - 1
            out: BinaryIO = streams.stdout if last else io.BytesIO()
            status = self.command(command, Streams(feed, out, streams.stderr))
            if not last:
                assert isinstance(out, io.BytesIO)
                feed = io.BytesIO(out.getvalue())
        if node.negated:
            return 0 if status else 1
        return status

    def command(self, node: Command, streams: Streams) -> int:
        if isinstance(node, Simple):
            return self.simple(node, streams)
        if isinstance(node, ForLoop):
            status = 0
            items = [field for word in node.items for field in self.expand(word, streams)]
            for item in items[:MAX_LOOP_ROUNDS]:
                if self.stop_requested():
                    return 130
                self.variables[node.name] = item
                status = self.sequence(node.body, streams)
            return status
        if isinstance(node, IfClause):
            for condition, body in node.branches:
                if self.sequence(condition, streams) == 0:
                    return self.sequence(body, streams)
            return self.sequence(node.otherwise, streams) if node.otherwise is not None else 0
        return self.while_loop(node, streams)

    def while_loop(self, node: WhileLoop, streams: Streams) -> int:
        status = 0
        for _ in range(MAX_LOOP_ROUNDS):
            if self.stop_requested():
                return 130
            passed = self.sequence(node.condition, streams) == 0
            if passed == node.until:
                break
            status = self.sequence(node.body, streams)
        return status

    def simple(self, node: Simple, streams: Streams) -> int:
        argv = [field for word in node.words for field in self.expand(word, streams)]
        values = {name: self.expand_joined(word, streams) for name, word in node.assignments}
        if not argv:
            self.variables.update(values)
            return self.with_redirects(node.redirects, streams, lambda _streams: 0)
        saved = {name: self.variables.get(name) for name in values}
        self.variables.update(values)
        try:
            return self.with_redirects(node.redirects, streams, lambda io_: self.run_argv(argv, io_))
        finally:
            for name, value in saved.items():
                if value is None:
                    self.variables.pop(name, None)
                else:
                    self.variables[name] = value

    def with_redirects(
        self, redirects: list[Redirect], streams: Streams, run: Callable[[Streams], int]
    ) -> int:
        targets: dict[int, BinaryIO] = {1: streams.stdout, 2: streams.stderr}
        stdin = streams.stdin
        sinks: list[tuple[str, io.BytesIO, bool]] = []
        for redirect in redirects:
            target = self.expand_joined(redirect.target, streams)
            if redirect.op == ">&":
                if target in ("1", "2"):
                    targets[redirect.fd] = targets[int(target)]
                    continue
                streams.stderr.write(f"sh: {target}: bad file descriptor\n".encode())
                return 1
            if redirect.op == "<":
                try:
                    stdin = io.BytesIO(self.files.read(self.path(target)))
                except FileError as error:
                    streams.stderr.write(f"sh: can't open {target}: {error}\n".encode())
                    return 1
                continue
            path = self.path(target)
            try:
                self.files.write(path, b"", append=True)
            except FileError as error:
                streams.stderr.write(f"sh: can't create {target}: {error}\n".encode())
                return 1
            sink = io.BytesIO()
            sinks.append((path, sink, redirect.op == ">>"))
            targets[redirect.fd] = sink
        status = run(Streams(stdin, targets[1], targets[2]))
        for path, sink, append in sinks:
            try:
                self.files.write(path, sink.getvalue(), append=append)
            except FileError as error:
                streams.stderr.write(f"sh: write error: {error}\n".encode())
                status = status or 1
        return status

    # --- expansion ------------------------------------------------------------------------------

    def parameter(self, part: Parameter, streams: Streams) -> str:
        if part.name == "?":
            return str(self.status)
        if part.name == "$":
            return "1"
        if part.name == "#":
            return "0"
        value = self.variables.get(part.name, "")
        if not value and part.default is not None:
            return self.expand_joined(parse_quoted(part.default), streams)
        return value

    def expansion(self, part: Parameter | CommandSubstitution | Arithmetic, streams: Streams) -> str:
        if isinstance(part, Parameter):
            return self.parameter(part, streams)
        if isinstance(part, Arithmetic):
            return self.arithmetic(part, streams)
        return self.substitute(part, streams)

    def arithmetic(self, part: Arithmetic, streams: Streams) -> str:
        try:
            return str(evaluate_arithmetic(part.expression, self.variables))
        except ArithmeticSyntaxError as error:
            streams.stderr.write(f"sh: arithmetic syntax error: {error}\n".encode())
            return "0"

    def substitute(self, part: CommandSubstitution, streams: Streams) -> str:
        child = Shell(self.ctx, self.builtins, extra=self.extra, cancelled=self.cancelled)
        child.variables = dict(self.variables)
        child.cwd = self.cwd
        child.status = self.status
        captured = io.BytesIO()
        child.run_script(part.source, Streams(None, captured, streams.stderr))
        self.status = child.status
        return captured.getvalue().decode("utf-8", "replace").rstrip("\n")

    def expand(self, word: Word, streams: Streams) -> list[str]:
        """The fields a word expands to: unquoted expansions split on whitespace."""
        fields: list[str] = []
        current = ""
        started = False
        for part in word.parts:
            if isinstance(part, Literal):
                current += part.text
                started = started or part.quoted or bool(part.text)
                continue
            value = self.expansion(part, streams)
            if part.quoted:
                current += value
                started = True
                continue
            pieces = value.split()
            if not pieces:
                continue
            if value[:1].isspace() and started:
                fields.append(current)
                current = ""
            for index, piece in enumerate(pieces):
                if index:
                    fields.append(current)
                    current = ""
                current += piece
            started = True
            if value[-1:].isspace():
                fields.append(current)
                current = ""
                started = False
        if started:
            fields.append(current)
        return fields

    def expand_joined(self, word: Word, streams: Streams) -> str:
        return " ".join(self.expand(word, streams)) if word.parts else ""
