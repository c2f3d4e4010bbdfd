"""Progress of the demo's long steps: counts, an estimate, and a line at least every 15 s.

On a terminal one live line per step is rewritten in place (``\\r``); anywhere else (a pipe,
CI, ``tee``, an IDE) every step prints plain lines: one when it starts, one whenever its
count changes and ``heartbeat_s`` have passed since the last line, one at least every
``heartbeat_s`` while nothing changes (a ticker thread calls :meth:`Step.tick`), and one
when it ends; with ``each``, also one per change (a task finished or started). The clock
is injected, so the timing is tested without waiting.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

HEARTBEAT_S = 15.0
#: how often a live terminal line is redrawn, and the ticker's period
REDRAW_S = 0.5


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Step:
    """One step's state; :meth:`update` from the work, :meth:`tick` from the ticker."""

    def __init__(
        self,
        progress: Progress,
        name: str,
        total: int | None,
        unit: str,
        each: bool = False,
    ) -> None:
        self.progress = progress
        self.each = each
        self.name = name
        self.total = total
        self.unit = unit
        self.done = 0
        self.running: tuple[str, ...] = ()
        self.started = progress.clock()
        self.last_line = self.started
        self._lock = threading.Lock()

    def update(self, done: int, total: int | None = None, running: Sequence[str] = ()) -> None:
        with self._lock:
            changed = done != self.done or tuple(running) != self.running
            self.done, self.running = done, tuple(running)
            self.total = self.total if total is None else total
        if changed:
            self._emit(force=self.each and not self.progress.live)

    def tick(self) -> None:
        """Print when a line is due (the heartbeat; on a terminal, the elapsed time)."""
        self._emit(force=False)

    def describe(self) -> str:
        now = self.progress.clock()
        elapsed = now - self.started
        text = f"{self.name}: "
        if self.total:
            text += f"{self.done:,} of {self.total:,} {self.unit}".rstrip()
            if 0 < self.done < self.total:
                left = elapsed / self.done * (self.total - self.done)
                text += f", about {format_seconds(left)} left"
        else:
            text += "working"
        text += f" ({format_seconds(elapsed)} so far)"
        if self.running:
            text += "; running: " + ", ".join(self.running)
        return text

    def _emit(self, *, force: bool) -> None:
        now = self.progress.clock()
        with self._lock:
            due = now - self.last_line >= (
                REDRAW_S if self.progress.live else self.progress.heartbeat_s
            )
            if not (force or due):
                return
            self.last_line = now
        self.progress.write(self.describe(), final=False)


class Progress:
    """Reports steps to ``stream`` (stdout by default); ``live`` defaults to its isatty()."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        heartbeat_s: float = HEARTBEAT_S,
        live: bool | None = None,
        ticker: bool = True,
    ) -> None:
        self.stream = stream or sys.stdout
        self.clock = clock
        self.heartbeat_s = heartbeat_s
        self.live = self.stream.isatty() if live is None else live
        self.ticker = ticker
        self._write_lock = threading.Lock()

    def write(self, line: str, *, final: bool) -> None:
        with self._write_lock:
            if self.live:
                self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    def say(self, line: str) -> None:
        """One plain line (a message between steps)."""
        self.write(line, final=True)

    @contextmanager
    def step(
        self, name: str, total: int | None = None, unit: str = "", *, each: bool = False
    ) -> Iterator[Step]:
        """A step of ``total`` ``unit``; ``each``: off a terminal, a line for every change
        (the DAG's tasks), not only every ``heartbeat_s`` (thousands of files)."""
        step = Step(self, name, total, unit, each)
        self.write(step.describe(), final=False)
        stop = threading.Event()
        thread = None
        if self.ticker:
            thread = threading.Thread(target=_tick, args=(step, stop), daemon=True)
            thread.start()
        try:
            yield step
        finally:
            stop.set()
            if thread is not None:
                thread.join()
        self.write(f"{step.describe()} — done", final=True)


def _tick(step: Step, stop: threading.Event) -> None:
    while not stop.wait(REDRAW_S):
        step.tick()
