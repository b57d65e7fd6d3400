from __future__ import annotations

import io
import threading
from collections.abc import Callable

import pytest

from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.shell import EXEC_NOT_FOUND, is_executable, run_command

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def ctx(make_context: Callable[..., WorkloadContext]) -> WorkloadContext:
    return make_context(name="sleep", env={"GREETING": "hello world", "TARGET": "httpbin"})


@pytest.fixture
def run(ctx: WorkloadContext) -> Run:
    def execute(
        *argv: str, stdin: bytes = b"", context: WorkloadContext | None = None
    ) -> tuple[int, str, str]:
        out, err = io.BytesIO(), io.BytesIO()
        code = run_command(list(argv), context or ctx, io.BytesIO(stdin), out, err)
        return code, out.getvalue().decode(), err.getvalue().decode()

    return execute


def sh(run: Run, script: str) -> tuple[int, str, str]:
    return run("sh", "-c", script)


def test_echo_and_variable_expansion(run: Run) -> None:
    assert sh(run, 'echo "$GREETING" from ${TARGET}') == (0, "hello world from httpbin\n", "")
    assert sh(run, "echo $GREETING") == (0, "hello world\n", "")
    assert sh(run, "echo '$GREETING'") == (0, "$GREETING\n", "")
    assert sh(run, 'echo ${MISSING:-fallback} "${MISSING}"x') == (0, "fallback x\n", "")
    assert sh(run, "echo -n no-newline") == (0, "no-newline", "")


def test_sequences_and_conditionals(run: Run) -> None:
    assert sh(run, "true && echo yes || echo no") == (0, "yes\n", "")
    assert sh(run, "false && echo yes || echo no") == (0, "no\n", "")
    assert sh(run, "false; echo $?") == (0, "1\n", "")
    assert sh(run, "echo a; exit 3; echo b") == (3, "a\n", "")
    assert sh(run, 'if [ "$TARGET" = httpbin ]; then echo match; else echo miss; fi') == (0, "match\n", "")
    assert sh(run, "for i in 1 2 3; do echo n$i; done") == (0, "n1\nn2\nn3\n", "")
    assert sh(run, "for i in $(seq 1 3); do printf '%s,' $i; done") == (0, "1,2,3,", "")
    assert sh(run, "! false") == (0, "", "")


def test_arithmetic_and_while_loops(run: Run) -> None:
    assert sh(run, "i=0; while [ $i -lt 3 ]; do i=$((i+1)); echo $i; done") == (0, "1\n2\n3\n", "")
    assert sh(run, "echo $((2*3+1)) $((-7/2)) $((7%3)) $(( (1+2)*3 ))") == (0, "7 -3 1 9\n", "")
    code, out, err = sh(run, "echo $((1/0))")
    assert (code, out) == (0, "0\n")
    assert "division by zero" in err


def test_quoting_and_fields(run: Run) -> None:
    assert sh(run, 'echo "a b"c') == (0, "a bc\n", "")
    assert sh(run, "echo a\\ b") == (0, "a b\n", "")
    assert sh(run, "echo $(echo nested $(echo deep))") == (0, "nested deep\n", "")
    assert sh(run, "echo 2 > /tmp/two; cat /tmp/two") == (0, "2\n", "")
    assert sh(run, "X=1 env | grep ^X=; echo ${X:-unset}") == (0, "X=1\nunset\n", "")
    assert sh(run, "echo hi >&2") == (0, "", "hi\n")


def test_pipes_to_grep_head_and_wc(run: Run) -> None:
    assert sh(run, "printf 'a\\nbb\\nccc\\n' | wc -l") == (0, "3\n", "")
    assert sh(run, "printf 'a\\nbb\\nccc\\n' | head -n 2") == (0, "a\nbb\n", "")
    assert sh(run, "printf 'a\\nbb\\nccc\\n' | grep -c b") == (0, "1\n", "")
    assert sh(run, "echo 'Reviews served by: x' | grep -o 'served by'") == (0, "served by\n", "")
    assert sh(run, "echo abc | grep -q zzz")[0] == 1


def test_redirections_and_files(run: Run) -> None:
    assert sh(run, "echo first > /tmp/out.txt; echo second >> /tmp/out.txt") == (0, "", "")
    assert run("cat", "/tmp/out.txt") == (0, "first\nsecond\n", "")
    assert sh(run, "cat /nope 2>/dev/null; echo $?") == (0, "1\n", "")
    assert sh(run, "cat /nope 2>&1") == (1, "cat: can't open '/nope': No such file or directory\n", "")
    assert sh(run, "ls /tmp") == (0, "out.txt\n", "")
    assert sh(run, "cd /tmp && pwd && cat out.txt | head -1") == (0, "/tmp\nfirst\n", "")


def test_files_persist_per_container(run: Run, make_context: Callable[..., WorkloadContext]) -> None:
    sh(run, "echo kept > /tmp/state")
    other = make_context(name="other")
    assert run("cat", "/tmp/state")[1] == "kept\n"
    assert run("cat", "/tmp/state", context=other)[0] == 1


def test_pod_files(run: Run, ctx: WorkloadContext) -> None:
    assert run("cat", "/etc/hostname") == (0, f"{ctx.hostname}\n", "")
    code, hosts, _ = run("cat", "/etc/hosts")
    assert code == 0
    assert f"{ctx.pod_ip}\t{ctx.hostname}" in hosts
    code, resolv, _ = run("cat", "/etc/resolv.conf")
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert run("hostname") == (0, f"{ctx.hostname}\n", "")
    assert run("pwd") == (0, "/\n", "")


def test_env_and_printenv(run: Run, ctx: WorkloadContext) -> None:
    code, out, _ = run("env")
    assert code == 0
    assert "GREETING=hello world\n" in out
    assert f"HOSTNAME={ctx.hostname}\n" in out
    assert run("printenv", "TARGET") == (0, "httpbin\n", "")
    assert run("printenv", "NOPE") == (1, "", "")


def test_true_false_and_absolute_paths(run: Run) -> None:
    assert run("true") == (0, "", "")
    assert run("/bin/false") == (1, "", "")
    assert run("/bin/sh", "-c", "echo via-path") == (0, "via-path\n", "")


def test_unknown_commands(run: Run, ctx: WorkloadContext) -> None:
    assert sh(run, "nosuchtool --flag") == (127, "", "sh: nosuchtool: not found\n")
    code, out, err = run("nosuchtool")
    assert out == ""
    assert code == EXEC_NOT_FOUND
    assert 'exec: "nosuchtool": executable file not found in $PATH' in err
    assert not is_executable("nosuchtool", ctx)
    assert is_executable("/usr/bin/curl", ctx)


def test_syntax_errors_are_reported(run: Run) -> None:
    code, _, err = sh(run, "echo 'unterminated")
    assert code == 2
    assert "Unterminated quoted string" in err
    code, _, err = sh(run, "if true; then echo x")
    assert code == 2
    assert "expecting" in err


def test_workload_commands_take_precedence(ctx: WorkloadContext) -> None:
    calls: list[list[str]] = []

    def pilot_agent(argv: list[str], stdin: object, stdout: io.BytesIO, stderr: object) -> int:
        calls.append(argv)
        stdout.write(b"ok\n")
        return 0

    out = io.BytesIO()
    code = run_command(
        ["sh", "-c", "pilot-agent request GET stats | wc -l"],
        ctx,
        None,
        out,
        io.BytesIO(),
        commands={"pilot-agent": pilot_agent},
    )
    assert (code, out.getvalue()) == (0, b"1\n")
    assert calls == [["pilot-agent", "request", "GET", "stats"]]


def test_sleep_is_interrupted_by_cancel(ctx: WorkloadContext) -> None:
    cancelled = threading.Event()
    result: list[int] = []

    def sleeper() -> None:
        result.append(
            run_command(["sleep", "30"], ctx, None, io.BytesIO(), io.BytesIO(), cancelled=cancelled)
        )

    thread = threading.Thread(target=sleeper)
    thread.start()
    cancelled.set()
    thread.join(10)
    assert not thread.is_alive()
    assert result == [130]


def test_sleep_is_interrupted_by_container_stop(run: Run, ctx: WorkloadContext) -> None:
    ctx.stopping.set()
    assert run("sleep", "30") == (130, "", "")
    assert run("sleep", "abc")[0] == 1
