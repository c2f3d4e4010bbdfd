"""The ``idempotency_token`` of a Databricks run started by the DAG (a Jinja macro).

Databricks returns the existing run for a ``run-now`` whose token it has seen, so every try
of one task in one DAG run asks for the same run: a worker that died while waiting
reattaches to the run it started instead of launching a duplicate, and a retry of a failed
run gets that run back, which ``repair_run`` then repairs. Clearing the DAG run (an
operator's deliberate rerun) bumps ``clear_number`` and so starts a fresh run.

The API allows at most 64 characters, and run ids can be long, so the identity is hashed
behind a short readable prefix.
"""

from __future__ import annotations

import hashlib

MAX_LENGTH = 64


def idempotency_token(
    dag_id: str, run_id: str, task_id: str, region: str = "", clear_number: int | None = 0
) -> str:
    """``eod-<task>-<region>-<sha256 of the identity>``, at most 64 characters."""
    identity = "\x1f".join((dag_id, run_id, task_id, region, str(clear_number or 0)))
    digest = hashlib.sha256(identity.encode()).hexdigest()
    prefix = "-".join(p for p in ("eod", task_id.rsplit(".", 1)[-1][:16], region[:8]) if p)
    return f"{prefix}-{digest}"[:MAX_LENGTH]
