"""Whose problem an outcome is, and the verdict a set of outcomes adds up to.

The rules match Allure's (an ``AssertionError`` fails a test, any other exception breaks it) and
refine them with our exception tree, so the Allure categories, the summary and the CI verdict all
tell the same story: a mesh regression fails the gate, an environment problem or a harness bug
makes the gate unable to decide (``error``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pytest_meshcheck.errors import CheckFailed, ConfigError, EnvironmentProblem, HarnessError

Status = Literal["passed", "failed", "broken", "skipped"]
Verdict = Literal["pass", "fail", "error"]
#: A suite can also be ``skipped``: every check skipped, so nothing verified but nothing wrong.
SuiteVerdict = Literal["pass", "fail", "error", "skipped"]

#: Category ids; ``categories.json`` and the summary use the same names.
MESH_REGRESSION = "mesh regression"
ASSERTION_FAILED = "check assertion failed"
ENVIRONMENT_PROBLEM = "environment problem"
CONFIGURATION_ERROR = "configuration error"
HARNESS_ERROR = "harness error"
UNEXPECTED_ERROR = "unexpected error"

STATUS_ORDER: tuple[Status, ...] = ("passed", "failed", "broken", "skipped")


def classify_exception(exc: BaseException) -> tuple[Status, str]:
    """(status, category) of an exception raised by a check or its fixtures."""
    import pytest

    if isinstance(exc, pytest.skip.Exception):
        return "skipped", ""
    if isinstance(exc, CheckFailed):
        return "failed", MESH_REGRESSION
    if isinstance(exc, AssertionError | pytest.fail.Exception):
        return "failed", ASSERTION_FAILED
    if isinstance(exc, EnvironmentProblem):
        return "broken", ENVIRONMENT_PROBLEM
    if isinstance(exc, ConfigError):
        return "broken", CONFIGURATION_ERROR
    if isinstance(exc, HarnessError):
        return "broken", HARNESS_ERROR
    return "broken", UNEXPECTED_ERROR


def worse(current: Status, new: Status) -> Status:
    """Combine the phases of one test: a failure or break in any phase wins over a pass."""
    rank = {"passed": 0, "skipped": 1, "failed": 2, "broken": 3}
    return new if rank[new] > rank[current] else current


@dataclass(frozen=True, kw_only=True)
class Counts:
    passed: int = 0
    failed: int = 0
    broken: int = 0
    skipped: int = 0

    @classmethod
    def of(cls, statuses: Iterable[str]) -> Counts:
        values = list(statuses)
        return cls(
            passed=values.count("passed"),
            failed=values.count("failed"),
            broken=values.count("broken"),
            skipped=values.count("skipped"),
        )

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.broken + self.skipped

    def to_json(self) -> dict[str, int]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "broken": self.broken,
            "skipped": self.skipped,
            "total": self.total,
        }


def verdict_of(counts: Counts, *, run_errors: int = 0) -> tuple[Verdict, str]:
    """The gate's verdict and why.

    ``error`` wins over ``fail``: when the environment broke, the failures seen may be its
    consequence and the mesh was not fully checked. A run in which no check passed (all skipped,
    or nothing collected) is ``error`` too, not ``pass``: nothing was verified, and a gate that
    passes on no evidence would let any change through. It is not ``fail`` either, because no
    regression was found.
    """
    if run_errors:
        return "error", f"{run_errors} collection or session error(s): the gate could not run"
    if counts.broken:
        return "error", f"{counts.broken} check(s) broken by the environment or the harness"
    if counts.failed:
        return "fail", f"{counts.failed} check(s) failed: mesh regression"
    if counts.passed == 0:
        if counts.skipped:
            return "error", f"no check passed ({counts.skipped} skipped): nothing was verified"
        return "error", "no checks ran: nothing was verified"
    return "pass", f"{counts.passed} check(s) passed"


def suite_verdict_of(counts: Counts) -> tuple[SuiteVerdict, str]:
    """One suite's verdict: the run's rules, except that a suite whose checks all skipped is
    ``skipped`` rather than ``error``. Such a suite verified nothing, but nothing went wrong in it
    either (a placeholder, or a check whose precondition is absent, such as no upgrade target);
    calling it an error would point a reader at a problem that does not exist. The run's verdict
    still counts it as nothing verified when no other suite passed.
    """
    if counts.total and counts.skipped == counts.total:
        return "skipped", f"all {counts.skipped} check(s) skipped: nothing verified, nothing wrong"
    verdict, reason = verdict_of(counts)
    return verdict, reason
