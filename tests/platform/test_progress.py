"""The demo's progress reporter (issue 18): counts, an estimate, and off a terminal a line at
least every 15 seconds, checked with an injected clock (no waiting)."""

from __future__ import annotations

import io
import threading

from eodrisk.progress import HEARTBEAT_S, Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder(io.StringIO):
    """A pipe that remembers when (on the injected clock) each line was written."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.times: list[float] = []

    def write(self, text: str) -> int:
        self.times += [self.clock()] * text.count("\n")
        return super().write(text)

    def isatty(self) -> bool:
        return False


def test_a_piped_run_prints_a_line_at_least_every_15_seconds_with_counts_and_an_estimate():
    clock = Clock()
    out = Recorder(clock)
    progress = Progress(out, clock=clock, ticker=False)  # the test is the ticker
    assert progress.live is False  # not a terminal: plain lines
    with progress.step("computing the back history", 250, "nights") as step:
        for second in range(1, 8 * 60):  # 8 silent-looking minutes, one tick a second
            clock.now += 1
            if second % 2 == 0:
                step.update(second // 2)  # a night every 2 s: changes are not each printed
            step.tick()
    with progress.step("eod_risk DAG", unit="tasks", each=True) as step:
        clock.now += 3
        step.update(0, 12, ["wait_for_trades_emea", "wait_for_trades_apac"])
        for _ in range(100):  # a long task with no news
            clock.now += 1
            step.tick()
        step.update(1, 12, ["wait_for_trades_apac"])
    gaps = [b - a for a, b in zip(out.times, out.times[1:], strict=False)]
    assert max(gaps) <= HEARTBEAT_S
    lines = out.getvalue().splitlines()
    assert len(lines) < 8 * 60 / HEARTBEAT_S + 20  # a heartbeat, not a line per night
    history = [line for line in lines if line.startswith("computing the back history")]
    # the last heartbeat: 232 nights in 465 s (2 s a night), so 18 nights ≈ 36 s are left
    assert history[-2].endswith("232 of 250 nights, about 36s left (7m45s so far)")
    assert history[-1].endswith("239 of 250 nights, about 22s left (7m59s so far) — done")
    dag = [line for line in lines if line.startswith("eod_risk DAG")]
    assert (
        "0 of 12 tasks" in dag[1]
        and "running: wait_for_trades_emea, wait_for_trades_apac" in dag[1]
    )
    assert "1 of 12 tasks" in dag[-2]  # with `each`, a task's news is printed at once
    assert dag[-2].endswith("running: wait_for_trades_apac")


def test_on_a_terminal_the_line_is_redrawn_in_place():
    clock = Clock()
    out = io.StringIO()
    progress = Progress(out, clock=clock, live=True, ticker=False)
    with progress.step("generating sample data", 753, "trade files") as step:
        clock.now += 1
        step.update(10)
    text = out.getvalue()
    assert text.count("\n") == 1  # only the final line ends one
    assert text.count("\r\x1b[2K") == 3
    assert "10 of 753 trade files, about 1m14s left" in text


def test_the_ticker_thread_keeps_a_silent_step_talking():
    out = Recorder(Clock())
    progress = Progress(out, heartbeat_s=0.05)
    wrote = threading.Event()
    with progress.step("a long silent step"):
        wrote.wait(1.2)  # no update at all: only the ticker writes
    assert len(out.getvalue().splitlines()) >= 3  # start, at least one heartbeat, end
