"""Slack messages of the ``eod_risk`` DAG, built as plain dicts by pure functions.

A message is ``{"text": <plain fallback>, "blocks": [<Block Kit blocks>]}``, ready for
``SlackWebhookHook.send(**message)``. No Airflow import here: the builders are tested
without Airflow running, and the callbacks only gather their inputs from the context.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

_MAX_ERROR_CHARS = 1500
_MEASURES = (
    ("var_99_1d_usd", "VaR 99% 1d"),
    ("var_99_10d_usd", "VaR 99% 10d (√10)"),
    ("es_975_1d_usd", "ES 97.5% 1d"),
)
# Credentials that could appear inside an exception text; never forwarded to Slack.
_SECRET_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    (re.compile(r"\bdapi[0-9a-f]{16,}\b"), "dapi***"),
    (re.compile(r"(hooks\.slack\.com/services/)[A-Za-z0-9/]+"), r"\1***"),
    (re.compile(r"(?i)((?:token|password|secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"), r"\1***"),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), r"\1***@"),
)
_DATABRICKS_TASK_ERROR = re.compile(r"'error':\s*'((?:[^'\\]|\\.)*)'")


def redact(text: str) -> str:
    """Mask anything that looks like a credential."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def escape(text: str) -> str:
    """Escape the three characters Slack mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str | None, label: str) -> str:
    if not url:
        return f"{label}: n/a"
    return f"<{url.replace('>', '%3E').replace('|', '%7C')}|{escape(label)}>"


def region_of_task(task_id: str, regions: Sequence[str]) -> str | None:
    """The region a task works for, from its id (``data_ingestion.ingest_emea`` → ``EMEA``).

    Firm-level tasks (``firm_risk``, ``load_reporting``…) have no region: ``None``.
    """
    name = task_id.rsplit(".", 1)[-1].lower()
    matches = [r for r in regions if name.endswith("_" + r.lower())]
    return max(matches, key=len) if matches else None


def format_usd(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    return f"${value:,.0f}"


def databricks_task_errors(error: str) -> list[str]:
    """Errors of the failed Databricks tasks, as quoted in the provider's exception text."""
    return [
        m.replace("\\n", "\n").replace("\\'", "'") for m in _DATABRICKS_TASK_ERROR.findall(error)
    ]


def build_failure_message(
    *,
    dag_id: str,
    task_id: str,
    region: str | None,
    business_date: str,
    try_number: int | None,
    max_tries: int | None,
    error: str,
    run_page_url: str | None,
    log_url: str | None,
    expected_file: str | None = None,
    will_retry: bool = False,
) -> dict[str, Any]:
    """The Slack alert for a failed task attempt.

    ``max_tries`` is Airflow's count of retries, so this is attempt ``try_number`` of
    ``max_tries + 1``. An ``on_failure_callback`` runs only when the task has failed for
    good (retries go to ``on_retry_callback``), hence ``will_retry=False`` by default; an
    early final failure (sensor timeout, ``AirflowFailException``) says "not retried".
    """
    error = redact(error.strip() or "no error message")
    if len(error) > _MAX_ERROR_CHARS:
        error = error[:_MAX_ERROR_CHARS] + " …(truncated, see the log)"
    scope = region or "firm"
    if try_number is not None and max_tries is not None:
        total = max_tries + 1
        attempt = f"{try_number} of {total}"
        if will_retry:
            attempt += ", will retry"
        elif try_number < total:
            attempt += ", not retried"
    else:
        attempt = str(try_number) if try_number is not None else "n/a"

    task_errors = databricks_task_errors(error)
    headline = (task_errors[0] if task_errors else error).splitlines()[0][:200]
    text = (
        f":red_circle: {dag_id} failed: {task_id} ({scope}) for {business_date}, "
        f"attempt {attempt}: {headline}"
        + (f" | Expected file: {expected_file}" if expected_file else "")
        + (f" | Databricks run: {run_page_url}" if run_page_url else "")
        + (f" | Log: {log_url}" if log_url else "")
    )
    fields = [
        f"*Task*\n`{escape(task_id)}`",
        f"*Region*\n{escape(scope)}",
        f"*Business date*\n{escape(business_date)}",
        f"*Attempt*\n{escape(attempt)}",
    ]
    blocks: list[dict[str, Any]] = [
        _header(f"🔴 {dag_id} failed: {task_id}"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    if expected_file:
        blocks.append(_mrkdwn(f"*Expected file*\n`{escape(expected_file)}`"))
    if task_errors:
        blocks.append(
            _mrkdwn("*Databricks error*\n" + "\n".join(f"• {escape(e[:400])}" for e in task_errors))
        )
    blocks.append(_mrkdwn(f"*Error*\n```{escape(error)}```"))
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": link(run_page_url, "Databricks run")},
                {"type": "mrkdwn", "text": link(log_url, "Airflow log")},
            ],
        }
    )
    return {"text": text, "blocks": blocks}


def parse_firm_summary(result: str | None) -> dict[str, Any] | None:
    """The firm job's JSON summary (``notebook_output.result``), or None when unusable."""
    if not result:
        return None
    try:
        summary = json.loads(result)
    except (TypeError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def build_summary_message(
    *,
    dag_id: str,
    business_date: str,
    summary: Mapping[str, Any] | None,
    firm_run_page_url: str | None,
    log_url: str | None = None,
    previous: tuple[str, float] | None = None,
    latency_s: float | None = None,
    sla_deadline: str | None = None,
    sla_margin_s: float | None = None,
    report_url: str | None = None,
) -> dict[str, Any]:
    """The Slack message when the night's risk is computed (figures when the summary exists).

    ``previous`` is the last earlier (business date, firm VaR 99% 1d) for the change vs
    yesterday; ``latency_s`` the run's latency when the figures were ready, with the business
    deadline and the margin to it (negative when missed).
    """
    blocks: list[dict[str, Any]] = [_header(f"✅ EOD risk {business_date}: firm risk computed")]
    timing = _timing_line(latency_s, sla_deadline, sla_margin_s)
    links = {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": link(firm_run_page_url, "Firm risk run")},
            {"type": "mrkdwn", "text": link(log_url, "Airflow")},
        ],
    }
    if report_url:  # published by publish_report once the figures are loaded
        links["elements"].insert(0, {"type": "mrkdwn", "text": link(report_url, "Daily report")})
    if not summary:
        blocks.append(_mrkdwn("Figures unavailable: the firm job returned no summary output."))
        if timing:
            blocks.append(_mrkdwn(timing))
        blocks.append(links)
        text = f"{dag_id}: EOD risk for {business_date} computed (figures unavailable)"
        return {"text": text, "blocks": blocks}

    firm = summary.get("firm") or {}
    firm_fields = [f"*Firm {label}*\n{format_usd(firm.get(key))}" for key, label in _MEASURES]
    firm_fields.append(
        f"*Diversification benefit*\n{format_usd(summary.get('diversification_benefit_usd'))}"
    )
    change = change_vs_previous(firm.get("var_99_1d_usd"), previous)
    firm_fields.append(f"*VaR 99% 1d vs previous*\n{change}")
    zone = backtest_zone(summary)
    if zone:
        firm_fields.append(f"*Backtest (Basel)*\n{escape(zone)}")
    blocks.append(
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in firm_fields]}
    )

    regions = summary.get("regions") or {}
    trades = summary.get("trades") or {}
    carried = carried_forward(summary)
    names = list(dict.fromkeys([*regions, *trades]))
    if names:
        rows = [("Region", "VaR99 1d", "VaR99 10d", "ES97.5 1d", "Trades", "Quarantined")]
        for name in names:
            figures = regions.get(name) or {}
            counts = trades.get(name) or {}
            trade_cell = _count(counts.get("accepted")) + "/" + _count(counts.get("read"))
            rows.append(
                (
                    str(name) + ("*" if name in carried else ""),
                    *(format_usd(figures.get(key)) for key, _ in _MEASURES),
                    f"held {carried[name]}" if name in carried else trade_cell,
                    "-" if name in carried else _count(counts.get("quarantined")),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        table = "\n".join(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        )
        blocks.append(_mrkdwn(f"*By region* (trades accepted/read)\n```{escape(table)}```"))
    if carried:
        blocks.append(_mrkdwn(escape(carried_forward_line(carried))))
    totals = trade_totals(trades)
    if totals:
        read, accepted, quarantined = totals
        rate = f" ({quarantined / read:.2%})" if read else ""
        blocks.append(
            _mrkdwn(
                f"*Trades* {_count(accepted)} accepted of {_count(read)} read, "
                f"{_count(quarantined)} quarantined{rate}"
            )
        )
    if timing:
        blocks.append(_mrkdwn(timing))
    blocks.append(links)

    text = (
        f"{dag_id}: EOD risk for {business_date} computed. Firm VaR 99% 1d "
        f"{format_usd(firm.get('var_99_1d_usd'))} ({change} vs previous), ES 97.5% 1d "
        f"{format_usd(firm.get('es_975_1d_usd'))}, diversification benefit "
        f"{format_usd(summary.get('diversification_benefit_usd'))}"
        + (f", backtest {zone}" if zone else "")
        + (f". {carried_forward_line(carried)}" if carried else "")
        + (f". {_plain(timing)}" if timing else "")
    )
    return {"text": text, "blocks": blocks}


def carried_forward(summary: Mapping[str, Any]) -> dict[str, str]:
    """``{region: positions date}`` of the regions closed for their exchange holiday."""
    carried = summary.get("carried_forward")
    if not isinstance(carried, Mapping):
        return {}
    return {str(r): str(d) for r, d in carried.items()}


def carried_forward_line(carried: Mapping[str, str]) -> str:
    """``*AMER closed (exchange holiday): positions of 2026-11-25 carried forward ...``"""
    parts = ", ".join(f"{region} from {day}" for region, day in carried.items())
    return (
        f"*Exchange holiday: positions carried forward* ({parts}), revalued under today's "
        "market data and included in the firm figure"
    )


def change_vs_previous(current: Any, previous: tuple[str, float] | None) -> str:
    """``+$12,345 (+1.2%) vs 2026-11-23``, or ``n/a`` without a previous figure."""
    if previous is None or format_usd(current) == "n/a":
        return "n/a"
    day, before = previous
    delta = float(current) - before
    pct = f" ({delta / before:+.1%})" if before else ""
    sign = "+" if delta >= 0 else "-"
    return f"{sign}${abs(delta):,.0f}{pct} vs {day}"


def backtest_zone(summary: Mapping[str, Any]) -> str | None:
    """The Basel traffic-light zone when the summary carries one (``backtest.zone``)."""
    backtest = summary.get("backtest")
    zone = backtest.get("zone") if isinstance(backtest, Mapping) else summary.get("backtest_zone")
    if not zone:
        return None
    exceptions = backtest.get("exceptions") if isinstance(backtest, Mapping) else None
    return f"{zone}" + (f", {exceptions} exceptions" if isinstance(exceptions, int) else "")


def trade_totals(trades: Mapping[str, Any]) -> tuple[int, int, int] | None:
    counts = [c for c in trades.values() if isinstance(c, Mapping)]
    if not counts:
        return None
    return tuple(  # type: ignore[return-value]
        sum(int(c.get(k) or 0) for c in counts) for k in ("read", "accepted", "quarantined")
    )


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    sign = "-" if seconds < 0 else ""
    seconds = abs(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    return f"{sign}{minutes}m{secs:02d}s" if minutes else f"{sign}{secs}s"


def _timing_line(
    latency_s: float | None, sla_deadline: str | None, sla_margin_s: float | None
) -> str | None:
    if latency_s is None and sla_deadline is None:
        return None
    line = f"*Latency* {format_duration(latency_s)}"
    if sla_deadline:
        if sla_margin_s is not None and sla_margin_s < 0:
            verdict = f":warning: SLA missed by {format_duration(-sla_margin_s)}"
        elif sla_margin_s is not None:
            verdict = f"within SLA, {format_duration(sla_margin_s)} to spare"
        else:
            verdict = "SLA n/a"
        line += f" · deadline {escape(sla_deadline)} · {verdict}"
    else:
        line += " · not a scheduled run: no business deadline"
    return line


def _plain(mrkdwn: str) -> str:
    return mrkdwn.replace("*", "")


def build_page_event(
    *,
    dag_id: str,
    run_id: str,
    task_id: str | None,
    region: str | None,
    business_date: str,
    reason: str,
    error: str | None,
    run_page_url: str | None,
    log_url: str | None,
) -> dict[str, Any]:
    """Keyword arguments of ``PagerdutyEventsHook.send_event`` for a critical incident.

    ``dedup_key`` is per run and incident (task or deadline), so a retry of the same failure
    or the deadline alert and the late-run callback open one incident, not several.
    """
    what = task_id or "deadline"
    error_line = redact((error or "").strip()).splitlines()[0][:300] if error else ""
    task_errors = databricks_task_errors(redact(error or ""))
    headline = task_errors[0].splitlines()[0][:300] if task_errors else error_line
    summary = f"{dag_id} {business_date}: {reason}" + (f": {headline}" if headline else "")
    links = [
        {"href": url, "text": text}
        for url, text in ((run_page_url, "Databricks run"), (log_url, "Airflow log"))
        if url
    ]
    details = {
        "business_date": business_date,
        "run_id": run_id,
        "task": task_id,
        "region": region or "firm",
    }
    if error:
        details["error"] = redact(error)[:_MAX_ERROR_CHARS]
    return {
        "summary": summary[:1024],
        "severity": "critical",
        "source": dag_id,
        "action": "trigger",
        "dedup_key": f"{dag_id}/{run_id}/{what}",
        "custom_details": details,
        "group": dag_id,
        "component": what,
        "class_type": "sla_missed" if task_id is None else "task_failed",
        "links": links or None,
    }


LIMIT_MEASURES = {
    "var_99_1d_usd": "VaR 99% 1d",
    "es_975_1d_usd": "ES 97.5% 1d",
    "worst_stress_loss_usd": "worst stress loss",
}


def limit_line(row: Mapping[str, Any]) -> str:
    """One warning or breach in words: node, measure, figure, limit and utilisation."""
    measure = LIMIT_MEASURES.get(str(row.get("measure")), str(row.get("measure")))
    utilisation = row.get("utilisation")
    used = f"{utilisation:.0%}" if isinstance(utilisation, int | float) else "n/a"
    return (
        f"{row.get('level')} {row.get('node')}: {measure} {format_usd(row.get('figure_usd'))} "
        f"vs limit {format_usd(row.get('limit_usd'))} ({used} used)"
    )


def build_limit_message(
    *, dag_id: str, business_date: str, alerts: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The Slack message of the night's limit warnings (>= 80%) and breaches (>= 100%).

    ``alerts`` are rows of ``risk.limit_utilisation`` (level, node, measure, figure_usd,
    limit_usd, utilisation, status). None when there is nothing to say.
    """
    if not alerts:
        return None
    ordered = sorted(alerts, key=lambda r: -float(r.get("utilisation") or 0.0))
    breaches = [r for r in ordered if r.get("status") == "breach"]
    warnings = [r for r in ordered if r.get("status") != "breach"]
    icon = "🔴" if breaches else "🟠"
    title = (
        f"{icon} EOD risk {business_date}: {len(breaches)} limit breaches, {len(warnings)} warnings"
    )
    blocks: list[dict[str, Any]] = [_header(title)]
    for label, rows in (("Breaches (>= 100%)", breaches), ("Warnings (>= 80%)", warnings)):
        if rows:
            lines = "\n".join(f"• {escape(limit_line(r))}" for r in rows)
            blocks.append(_mrkdwn(f"*{label}*\n{lines}"))
    text = f"{dag_id}: {title[2:]}: " + "; ".join(limit_line(r) for r in ordered)
    return {"text": text[:3000], "blocks": blocks}


def build_limit_page_event(
    *, dag_id: str, run_id: str, business_date: str, breaches: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The PagerDuty event of firm-level limit breaches (None when the firm is within limits).

    One incident per run: the dedup key names the run and ``firm_limit_breach``.
    """
    firm = [r for r in breaches if r.get("level") == "firm" and r.get("status") == "breach"]
    if not firm:
        return None
    return {
        "summary": (
            f"{dag_id} {business_date}: firm limit breach: "
            + "; ".join(limit_line(r) for r in firm)
        )[:1024],
        "severity": "critical",
        "source": dag_id,
        "action": "trigger",
        "dedup_key": f"{dag_id}/{run_id}/firm_limit_breach",
        "custom_details": {
            "business_date": business_date,
            "run_id": run_id,
            "breaches": [limit_line(r) for r in firm],
        },
        "group": dag_id,
        "component": "limits",
        "class_type": "limit_breach",
        "links": None,
    }


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "n/a"


def _header(text: str) -> dict[str, Any]:
    # Header blocks take plain_text of at most 150 characters.
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def _mrkdwn(text: str) -> dict[str, Any]:
    # Section text is limited to 3000 characters by Slack.
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}
