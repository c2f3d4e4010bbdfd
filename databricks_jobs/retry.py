"""Application-level retries for transient I/O inside the jobs: bounded, backed off, logged.

The layers above (Databricks task ``max_retries``, Airflow retries with ``repair_run``) restart
a whole task; this layer retries one I/O call — a Delta commit that lost a race, an object
store that answered 503 or timed out — so a blip does not cost a task attempt. It only wraps
calls that are idempotent (a partition overwrite, a read), so a retried call never
duplicates data.

Delays are exponential with "full jitter" (a uniform draw in ``[0, min(cap, base·2ⁿ)]``), so
the three regions' jobs hitting the same store do not retry in lockstep.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("eodrisk.retry")

#: Messages of wrapped JVM / cloud SDK errors that mean "try again" (S3, ADLS, GCS, HDFS).
TRANSIENT_MARKERS = (
    "java.io.IOException",
    "SocketTimeoutException",
    "Connection reset",
    "Connection refused",
    "Broken pipe",
    "503 Service Unavailable",
    "Status Code: 503",
    "SlowDown",
    "ServerBusy",
    "ThrottlingException",
    "Too Many Requests",
    "ConcurrentAppendException",
    "ConcurrentWriteException",
    "temporarily unavailable",
)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is worth retrying: network/file-system blips and commit races.

    Programming and data errors (``ValueError``, a missing table, a schema mismatch) are not:
    retrying them only delays the failure.
    """
    if isinstance(error, FileNotFoundError | PermissionError | IsADirectoryError):
        return False
    if isinstance(error, OSError | TimeoutError | ConnectionError):
        return True
    try:
        from deltalake.exceptions import CommitFailedError
    except ImportError:  # pragma: no cover - deltalake is a dependency
        CommitFailedError = ()  # type: ignore[assignment,misc]
    if CommitFailedError and isinstance(error, CommitFailedError):
        return True
    text = f"{type(error).__name__}: {error}"
    return any(marker in text for marker in TRANSIENT_MARKERS)


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``attempts`` calls; delay before retry n (1-based) ≤ min(max, base·2ⁿ⁻¹)."""

    attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    retry_on: Callable[[BaseException], bool] = is_transient
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s")

    def delay_s(self, retry_number: int) -> float:
        """Full-jitter delay before retry ``retry_number`` (1 for the first retry)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (retry_number - 1))
        return self.rng.uniform(0.0, ceiling)


DEFAULT_POLICY = RetryPolicy()


def call_with_retry(
    operation: Callable[[], T], *, what: str, policy: RetryPolicy = DEFAULT_POLICY
) -> T:
    """``operation()``, retried on transient errors per ``policy``; the last error propagates.

    ``what`` names the operation in the log ("write silver.trades EMEA 2026-11-24").
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return operation()
        except Exception as error:
            if attempt == policy.attempts or not policy.retry_on(error):
                if attempt > 1:
                    log.error("%s failed after %d attempts: %s", what, attempt, error)
                raise
            delay = policy.delay_s(attempt)
            log.warning(
                "%s: transient error on attempt %d/%d (%s: %s); retrying in %.2fs",
                what,
                attempt,
                policy.attempts,
                type(error).__name__,
                error,
                delay,
            )
            policy.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
