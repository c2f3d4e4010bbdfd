"""Request guards beyond authentication: a rate limit and transient-fault injection.

Both sit in the API server's guard chain (see :mod:`eodrisk.emulator.api`), so every Jobs
API endpoint gets them without the handlers knowing.

* :class:`RateLimiter` — a token bucket (``rate_per_s``, ``burst``). Over the limit the
  answer is what Databricks sends: ``429 REQUEST_LIMIT_EXCEEDED`` with a ``Retry-After``
  header (whole seconds). The Airflow provider retries 429 with its exponential backoff;
  ``databricks-sdk`` honours ``Retry-After``.
* :class:`FaultInjector` — transient 5xx: "fail the next N requests" or a seeded
  probability. ``after_processing=True`` answers 503 *after* the handler ran (the response
  was lost on the way back: a ``run-now`` did create its run), the case an
  ``idempotency_token`` exists for.

Counters (``limited``, ``injected``) let tests prove the faults really happened.
"""

from __future__ import annotations

import math
import random
import threading
import time

from eodrisk.emulator.service import ApiError


class RateLimiter:
    """Token bucket over all API requests (Databricks limits per workspace and endpoint)."""

    def __init__(self, rate_per_s: float, burst: int | None = None) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.rate_per_s = float(rate_per_s)
        self.burst = int(burst if burst is not None else max(1, math.ceil(rate_per_s)))
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()
        self.limited = 0
        self.allowed = 0

    def configure(self, rate_per_s: float, burst: int) -> None:
        """Change the limit and start from a full bucket."""
        with self._lock:
            self.rate_per_s, self.burst = float(rate_per_s), int(burst)
            self._tokens, self._stamp = float(self.burst), time.monotonic()

    def __call__(self, request) -> ApiError | None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate_per_s)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                self.allowed += 1
                return None
            self.limited += 1
            wait_s = max(1, math.ceil((1.0 - self._tokens) / self.rate_per_s))
        return ApiError(
            429,
            "REQUEST_LIMIT_EXCEEDED",
            f"Exceeded rate limit of {self.rate_per_s:g} requests per second for the Jobs API.",
            headers={"Retry-After": str(wait_s)},
        )


class FaultInjector:
    """Transient 5xx answers: queued (:meth:`fail_next`) or with a seeded probability."""

    def __init__(self, probability: float = 0.0, seed: int | None = None, status: int = 503):
        if not 0.0 <= probability < 1.0:
            raise ValueError("probability must be in [0, 1)")
        self.probability = probability
        self.status = status
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._before: list[int] = []
        self._after: list[int] = []
        self.injected = 0

    def fail_next(self, count: int = 1, *, status: int = 503, after_processing: bool = False):
        """Answer the next ``count`` API requests with ``status``."""
        with self._lock:
            (self._after if after_processing else self._before).extend([status] * count)

    def __call__(self, request) -> ApiError | None:
        with self._lock:
            if self._before:
                return self._error(self._before.pop(0))
            if self.probability and self._rng.random() < self.probability:
                return self._error(self.status)
        return None

    def after(self, request) -> ApiError | None:
        """Checked once the handler has run: a lost response."""
        with self._lock:
            return self._error(self._after.pop(0)) if self._after else None

    def _error(self, status: int) -> ApiError:
        self.injected += 1
        if status == 503:
            return ApiError(
                503, "TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable."
            )
        return ApiError(status, "INTERNAL_ERROR", "Internal error (injected by the emulator).")


class TaskFaults:
    """Make the next attempt(s) of a job's task fail, as a lost executor would.

    ``fail_next("eodrisk-ingest-trades", "ingest_trades")`` lets the attempt run to the end
    (its writes happen) and then reports it ``FAILED`` — the worst case for idempotency: a
    repair reruns a task whose output is already there.
    """

    MESSAGE = "SparkException: Job aborted: executor lost (injected transient failure)"

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self.injected: list[tuple[str, str, int]] = []

    def fail_next(self, job_name: str, task_key: str, count: int = 1) -> None:
        with self._lock:
            key = (job_name, task_key)
            self._pending[key] = self._pending.get(key, 0) + count

    def take(self, job_name: str, task_key: str, task_run_id: int) -> str | None:
        """The failure message if this attempt is to fail, else ``None``."""
        with self._lock:
            key = (job_name, task_key)
            if self._pending.get(key, 0) <= 0:
                return None
            self._pending[key] -= 1
            self.injected.append((job_name, task_key, task_run_id))
            return self.MESSAGE
