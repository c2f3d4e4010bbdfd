"""Application-level retries: bounded, exponential with full jitter, logged, transient only."""

from __future__ import annotations

import logging
import random
from types import SimpleNamespace

import pytest
from deltalake.exceptions import CommitFailedError, SchemaMismatchError

from databricks_jobs.retry import RetryPolicy, call_with_retry, is_transient
from databricks_jobs.tables import spark_schema


def policy(sleeps: list[float], attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(
        attempts=attempts, base_delay_s=1.0, max_delay_s=5.0, sleep=sleeps.append,
        rng=random.Random(7),
    )  # fmt: skip


class Flaky:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "written"


def test_transient_errors_are_retried_until_success_and_logged(caplog):
    sleeps: list[float] = []
    op = Flaky([TimeoutError("read timed out"), CommitFailedError("concurrent commit")])
    with caplog.at_level(logging.WARNING, logger="eodrisk.retry"):
        assert call_with_retry(op, what="write silver.trades", policy=policy(sleeps)) == "written"
    assert op.calls == 3 and len(sleeps) == 2
    assert "write silver.trades: transient error on attempt 1/4 (TimeoutError" in caplog.text
    assert "attempt 2/4 (CommitFailedError" in caplog.text


def test_the_number_of_attempts_is_bounded_and_the_last_error_propagates(caplog):
    sleeps: list[float] = []
    op = Flaky([ConnectionError(f"reset {i}") for i in range(10)])
    with pytest.raises(ConnectionError, match="reset 2"):
        call_with_retry(op, what="read gold.var_results", policy=policy(sleeps, attempts=3))
    assert op.calls == 3 and len(sleeps) == 2
    assert "failed after 3 attempts" in caplog.text


@pytest.mark.parametrize(
    "error",
    [ValueError("bad data"), FileNotFoundError("no table"), SchemaMismatchError("columns")],
)
def test_permanent_errors_fail_at_once(error):
    sleeps: list[float] = []
    op = Flaky([error])
    with pytest.raises(type(error)):
        call_with_retry(op, what="write", policy=policy(sleeps))
    assert op.calls == 1 and sleeps == []


def test_delays_are_full_jitter_under_an_exponential_cap():
    p = RetryPolicy(base_delay_s=0.5, max_delay_s=4.0, rng=random.Random(1))
    for retry in range(1, 9):
        ceiling = min(4.0, 0.5 * 2 ** (retry - 1))
        draws = [p.delay_s(retry) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > 0.8 * ceiling  # spread over the whole window, not a constant
    same = [RetryPolicy(rng=random.Random(3)).delay_s(2) for _ in range(2)]
    assert same[0] == same[1]  # seeded: reproducible


def test_wrapped_jvm_and_object_store_errors_are_transient():
    class Py4JJavaError(Exception):
        pass

    assert is_transient(Py4JJavaError("java.io.IOException: Connection reset by peer"))
    assert is_transient(RuntimeError("S3: Status Code: 503; Error Code: SlowDown"))
    assert not is_transient(RuntimeError("AnalysisException: column not found"))


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay_s=5, max_delay_s=1)


def test_delta_store_retries_a_partition_overwrite_with_the_same_partitions(monkeypatch):
    from databricks_jobs import delta_store

    class FakeConf:
        def get(self, key, default=None):
            return default

    class FakeSpark:
        conf = FakeConf()

    sleeps: list[float] = []
    store = delta_store.DeltaStore(FakeSpark(), "/lake", retry_policy=policy(sleeps))
    calls: list[tuple] = []

    def flaky_write(self, stage, nullable, table, partition):
        calls.append((table, dict(partition)))
        if len(calls) == 1:
            raise OSError("connection reset while committing")

    monkeypatch.setattr(delta_store.DeltaStore, "_replace_partition_local", flaky_write)
    summary = SimpleNamespace(schema=spark_schema("gold.firm_summary"))
    store.replace_partition(summary, "gold.firm_summary", {"business_date": "2026-11-24"})
    assert calls == [("gold.firm_summary", {"business_date": "2026-11-24"})] * 2
    assert len(sleeps) == 1
