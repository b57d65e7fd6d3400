"""What every kind of load run must do when the check it accompanies fails: stop, and still report."""

from __future__ import annotations

import pytest

from pytest_meshcheck.load.results import LoadResult
from pytest_meshcheck.load.start import LoadHandle
from tests.load.target import Target

#: Requests the target must have served before the check fails.
REQUESTS_BEFORE_FAILING = 20


def stopped_by_a_failing_check(
    run: LoadHandle, target: Target, *, load_arrives_within_s: float
) -> LoadResult:
    """Run ``run`` (a long one) as the context of a check that fails once load arrived; the run must
    stop with the check and its result count what the target served up to then."""

    def check_under_load() -> None:
        with run:
            assert target.wait_for_requests(REQUESTS_BEFORE_FAILING, timeout=load_arrives_within_s), (
                "no load arrived"
            )
            raise RuntimeError("check failed while load was running")

    with pytest.raises(RuntimeError, match="check failed"):
        check_under_load()

    assert not run.running
    result = run.result()
    assert result.stopped_early
    # Locust drops the requests in flight when interrupted: at most one per user.
    assert REQUESTS_BEFORE_FAILING - run.spec.users <= result.requests <= target.total
    assert result.measured_s < run.spec.duration_s / 2
    return result
