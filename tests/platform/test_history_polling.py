"""The back history's wait for a stage's runs (eodrisk.history.wait_for_runs): every run of
the stage polled together, at intervals growing from POLL_FIRST_S to POLL_MAX_S, each run
returned once its life cycle has ended (a fake Jobs API: no emulator)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from databricks.sdk.service.jobs import RunLifeCycleState

from eodrisk.history import (
    POLL_FIRST_S,
    POLL_GROWTH,
    POLL_MAX_S,
    HistoryError,
    wait_for_runs,
)


class FakeJobs:
    """``get_run``: a run is RUNNING for its first ``polls[run_id]`` looks, then TERMINATED."""

    def __init__(self, polls: dict[int, int]) -> None:
        self.polls = dict(polls)
        self.looks: list[int] = []

    def get_run(self, run_id: int) -> SimpleNamespace:
        self.looks.append(run_id)
        left = self.polls[run_id]
        self.polls[run_id] = left - 1
        state = RunLifeCycleState.RUNNING if left > 0 else RunLifeCycleState.TERMINATED
        return SimpleNamespace(run_id=run_id, state=SimpleNamespace(life_cycle_state=state))


def test_the_runs_of_a_stage_are_polled_together_at_growing_intervals():
    jobs, slept = FakeJobs({7: 12, 8: 1}), []
    ended = wait_for_runs(jobs, [7, 8], sleep=slept.append)
    assert list(ended) == [7, 8] and all(r.run_id == k for k, r in ended.items())
    assert jobs.looks[:2] == [7, 8] and jobs.looks[2:4] == [7, 8]  # together while both run
    assert jobs.looks.count(7) == 13 and jobs.looks.count(8) == 2  # none after its end
    expected = [min(POLL_FIRST_S * POLL_GROWTH**i, POLL_MAX_S) for i in range(12)]
    assert slept == pytest.approx(expected)
    assert slept[0] == POLL_FIRST_S and slept[-1] == POLL_MAX_S


def test_a_run_that_ends_before_the_first_look_costs_no_sleep():
    slept: list[float] = []
    wait_for_runs(FakeJobs({3: 0}), [3], sleep=slept.append)
    assert slept == []


def test_a_stage_still_running_after_the_timeout_names_its_runs():
    with pytest.raises(HistoryError, match=r"runs \[5\] still running after 0 s"):
        wait_for_runs(FakeJobs({5: 10**6}), [5], timeout_s=0.0, sleep=lambda s: None)
