"""The business deadline fires: a run past its deadline goes through the scheduler's
missed-deadline step and the triggerer's callback trigger, and Slack and PagerDuty receive it.

``dag.test()`` cannot run a DAG with deadlines in Airflow 3.3.2 (see
``eodrisk.airflow_local.run_dag_test``), so no scheduler or triggerer process runs here.
What runs is their code, on a real metadata DB:

1. the DAG folder is synced to the DB the way ``dag.test()`` / the DAG processor do it, which
   stores the DAG's ``DeadlineAlert``s with their ids;
2. a scheduled run is created for a past business date with ``SerializedDAG.create_dagrun``,
   which creates its ``Deadline`` rows (logical date + 8h);
3. the scheduler loop's deadline step is run: the same query (``deadline_time < now``, not
   missed) and ``Deadline.handle_miss``, which queues each callback as a triggerer workload;
4. each queued trigger row is instantiated from its class path and kwargs and run, as the
   triggerer does: it imports the provider notifier and awaits it with the run's context.

Not exercised: the scheduler's and the triggerer's process loops and timing themselves.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from eodrisk.slack_sink import read_messages, read_pages
from tests import airflow_env

pytestmark = pytest.mark.integration

BUSINESS_DATE = "2026-01-05"


@pytest.fixture(scope="module")
def airflow(platform):
    """The session platform's Airflow, in this process: its metadata DB migrated and the DAG
    folder synced to it (Airflow binds its DB once per process)."""
    env = platform.airflow_env
    with pytest.MonkeyPatch.context() as monkeypatch:
        airflow_env.activate(env, monkeypatch)
        airflow_env.migrate_db(env)
        airflow_env.activate(env, monkeypatch)  # re-point the ORM at the migrated DB
        sync_dags_folder()
        yield env


def messages_about(sink, run_id: str) -> tuple[list[dict], list[dict]]:
    slack = [
        r["payload"]
        for r in read_messages(sink.messages_file)
        if r["path"].startswith("/services/") and run_id in r["payload"].get("text", "")
    ]
    pages = [
        r["payload"] for r in read_pages(sink.messages_file) if run_id in r["payload"]["dedup_key"]
    ]
    return slack, pages


def sync_dags_folder() -> None:
    """What ``dag.test()`` does before creating a run: bundles and DAGs into the metadata DB."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        assert not bag.import_errors, bag.import_errors
        sync_bag_to_db(bag, bundle.name, bundle.version)


def create_late_run(day: int):
    import pendulum
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    logical = pendulum.datetime(2026, 1, day, 22, tz="Europe/London")
    with create_session() as session:
        dag = SerializedDagModel.get_dag(airflow_env.DAG_ID, session=session)
        run = dag.create_dagrun(
            run_id=f"scheduled__{logical.isoformat()}",
            logical_date=logical,
            data_interval=(logical, logical),
            run_after=logical,
            run_type=DagRunType.SCHEDULED,
            triggered_by=DagRunTriggeredByType.TIMETABLE,
            state=DagRunState.RUNNING,
            start_date=logical + timedelta(seconds=2),
            session=session,
        )
        return run.run_id, logical


def scheduler_deadline_step() -> int:
    """The scheduler loop's missed-deadline step (airflow.jobs.scheduler_job_runner)."""
    from airflow.models.deadline import Deadline
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    handled = 0
    with create_session() as session:
        query = (
            select(Deadline)
            .where(Deadline.deadline_time < datetime.now(UTC))
            .where(~Deadline.missed)
            .options(selectinload(Deadline.callback), selectinload(Deadline.dagrun))
        )
        for deadline in session.scalars(query):
            deadline.handle_miss(session)
            handled += 1
    return handled


def run_queued_triggers() -> list[dict]:
    """Instantiate and run each queued trigger as the triggerer does (once); return events."""
    from airflow.models.trigger import Trigger
    from airflow.sdk._shared.module_loading import import_string
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        triggers = list(session.scalars(select(Trigger)))
        rows = [(t.classpath, t.kwargs) for t in triggers]
        for trigger in triggers:  # consumed, as the triggerer would after running them
            session.delete(trigger)

    async def drain(trigger) -> list[dict]:
        return [event.payload async for event in trigger.run()]

    events = []
    for classpath, kwargs in rows:
        trigger = import_string(classpath)(**kwargs)
        events.extend(asyncio.run(drain(trigger)))
    return events


def test_a_run_past_its_deadline_alerts_slack_and_pages(airflow, platform, monkeypatch):
    from airflow.models.dagrun import DagRun
    from airflow.models.deadline import Deadline
    from airflow.providers.pagerduty.hooks.pagerduty_events import PagerdutyEventsAsyncHook
    from airflow.utils.session import create_session
    from sqlalchemy import select

    # PagerdutyNotifier's async hook always posts to events.pagerduty.com; send it to the sink.
    original_init = PagerdutyEventsAsyncHook.__init__

    def to_sink(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.base_url = platform.sink.base_url

    monkeypatch.setattr(PagerdutyEventsAsyncHook, "__init__", to_sink)

    run_id, logical = create_late_run(5)
    with create_session() as session:
        deadlines = session.scalars(
            select(Deadline).join(Deadline.dagrun).where(DagRun.run_id == run_id)
        ).all()
        times = sorted(d.deadline_time for d in deadlines)
    expected = (logical + timedelta(hours=8)).astimezone(UTC)
    assert times == [expected, expected], "one Slack and one PagerDuty deadline, 06:00 London"

    assert scheduler_deadline_step() == 2
    events = run_queued_triggers()
    assert [e["state"] for e in events].count("success") == 2, events

    [slack], [event] = messages_about(platform.sink, run_id)
    text = slack["text"]
    assert text.startswith(":alarm_clock: eod_risk missed its deadline")
    assert run_id in text
    assert "2026-01-06" in text  # 06:00 London the next morning
    assert event["routing_key"] == "eodrisk-local-key"
    assert event["payload"]["severity"] == "critical"
    assert run_id in event["payload"]["summary"]
    assert event["dedup_key"] == f"eod_risk/{run_id}/deadline"


def test_a_run_done_before_its_deadline_does_not_alert(airflow, platform):
    from airflow.models.dagrun import DagRun
    from airflow.models.deadline import Deadline
    from airflow.utils.session import create_session
    from sqlalchemy import select

    run_id, logical = create_late_run(6)
    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.run_id == run_id))
        run.end_date = logical + timedelta(hours=1)
        session.flush()
        assert Deadline.prune_deadlines(session=session, conditions={DagRun.run_id: run_id}) == 2
    assert scheduler_deadline_step() == 0
    assert run_queued_triggers() == []
    assert messages_about(platform.sink, run_id) == ([], [])


def test_a_manual_rerun_of_a_past_date_gets_no_deadline(airflow, platform):
    """A rerun triggered for a past business date (the `business_date` param, no logical
    date: what the UI's and the API's trigger do by default in Airflow 3) has no Deadline
    rows, so neither the scheduler nor the triggerer alerts or pages for it; the run
    recorder and the summary report its latency without a deadline (records.sla_deadline_of)."""
    import pendulum
    from airflow.models.dagrun import DagRun
    from airflow.models.deadline import Deadline
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select

    now = pendulum.now("UTC")
    run_id = f"manual__rerun_{BUSINESS_DATE}"
    with create_session() as session:
        dag = SerializedDagModel.get_dag(airflow_env.DAG_ID, session=session)
        dag.create_dagrun(
            run_id=run_id,
            logical_date=None,
            data_interval=None,
            run_after=now,
            run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.REST_API,
            state=DagRunState.RUNNING,
            conf={"business_date": BUSINESS_DATE},
            start_date=now,
            session=session,
        )
        session.flush()
        deadlines = session.scalars(
            select(Deadline).join(Deadline.dagrun).where(DagRun.run_id == run_id)
        ).all()
    assert deadlines == []
    assert scheduler_deadline_step() == 0
    assert run_queued_triggers() == []
    assert messages_about(platform.sink, run_id) == ([], [])
