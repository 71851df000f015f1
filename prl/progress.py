"""Progress reports for long jobs: a tqdm bar on a terminal, one-line reports in a log.

On a terminal (stderr is a TTY) :class:`Progress` draws a tqdm bar. When stderr is not a
terminal (a log file, a pipe, CI) it prints one line every ``PRL_PROGRESS_INTERVAL`` seconds
(default 30) instead::

    [prl] cpl random_mdp seed 0: 300/600 gradient steps (50%), 21.3/s, ETA 14 s, loss_cpl=0.814

:func:`heartbeat` covers work without a step count (one theory check, one figure): on a
terminal a tqdm counter of elapsed seconds, in a log a line every interval saying what is still
running and for how long. ``PRL_PROGRESS_INTERVAL=0`` turns the log lines off.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

INTERVAL_ENV = "PRL_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0

__all__ = ["INTERVAL_ENV", "Progress", "format_seconds", "heartbeat", "interval", "is_terminal"]


def interval() -> float:
    """Seconds between log lines: ``$PRL_PROGRESS_INTERVAL`` (default 30; 0 or less: none)."""
    text = os.environ.get(INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        return float(text)
    except ValueError:
        return DEFAULT_INTERVAL


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def format_seconds(s: float) -> str:
    """A duration as ``42 s``, ``3 min 05 s`` or ``2 h 07 min``."""
    if not math.isfinite(s):
        return "?"
    s = max(0.0, s)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def _fmt_value(v: Any) -> str:
    try:
        return f"{float(v):.4g}"
    except (TypeError, ValueError):
        return str(v)


def _metric_text(metrics: Mapping[str, Any] | None, limit: int = 3) -> str:
    """The first few numeric metrics (losses and returns first) as ``k=v`` pairs."""
    if not metrics:
        return ""
    items = [(k, v) for k, v in metrics.items() if k != "step" and isinstance(v, (int, float))]
    items.sort(key=lambda kv: (not kv[0].startswith(("return", "normalized", "loss")), 0))
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in items[:limit])


class Progress:
    """Progress of a job with a known total: tqdm on a terminal, periodic lines otherwise.

    ``enabled=False`` shows nothing; ``None`` (default) shows the bar or the lines depending on
    whether ``stream`` (default stderr) is a terminal. ``update(done, metrics)`` takes the
    absolute count done so far and the latest metrics row.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        *,
        unit: str = "steps",
        initial: int = 0,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        every: float | None = None,
    ) -> None:
        self.total = int(total)
        self.desc = desc
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.every = interval() if every is None else float(every)
        self.done = int(initial)
        self.start_done = int(initial)
        self.t0 = time.monotonic()
        self.last_print = self.t0
        self.metrics: Mapping[str, Any] | None = None
        self.lines = 0
        self.bar: Any = None
        self.mode = "off"
        if enabled is False:
            return
        if is_terminal(self.stream):
            from tqdm.auto import tqdm

            self.mode = "bar"
            self.bar = tqdm(
                total=self.total,
                initial=min(self.done, self.total),
                desc=desc,
                unit=f" {unit}",
                leave=False,
                dynamic_ncols=True,
                file=self.stream,
            )
        elif self.every > 0:
            self.mode = "lines"

    def rate(self) -> float:
        """Units per second since this object was made (resumed work not counted)."""
        dt = time.monotonic() - self.t0
        return (self.done - self.start_done) / dt if dt > 0 else 0.0

    def line(self) -> str:
        """The one-line report: count, percent, rate, ETA and the last metrics."""
        pct = 100.0 * self.done / self.total if self.total else 100.0
        r = self.rate()
        eta = (self.total - self.done) / r if r > 0 else float("inf")
        parts = [
            f"{self.done:,}/{self.total:,} {self.unit} ({pct:.0f}%)",
            f"{r:.3g} {self.unit}/s",
            f"elapsed {format_seconds(time.monotonic() - self.t0)}",
            f"ETA {format_seconds(eta)}",
        ]
        m = _metric_text(self.metrics)
        if m:
            parts.append(m)
        return f"[prl] {self.desc}: " + ", ".join(parts)

    def _emit(self) -> None:
        print(self.line(), file=self.stream, flush=True)
        self.lines += 1
        self.last_print = time.monotonic()

    def update(self, done: int, metrics: Mapping[str, Any] | None = None) -> None:
        """Record that ``done`` units are finished; report if the interval has passed."""
        self.done = min(int(done), self.total)
        if metrics is not None:
            self.metrics = metrics
        if self.mode == "bar":
            self.bar.update(self.done - self.bar.n)
            m = _metric_text(self.metrics, limit=2)
            if m:
                self.bar.set_postfix_str(m, refresh=False)
        elif self.mode == "lines" and time.monotonic() - self.last_print >= self.every:
            self._emit()

    def close(self) -> None:
        """Close the bar; in a log, end with a last line when any line was printed."""
        if self.mode == "bar":
            self.bar.close()
        elif self.mode == "lines" and self.lines:
            self._emit()
        self.mode = "off"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def heartbeat(
    desc: str,
    *,
    enabled: bool | None = None,
    stream: TextIO | None = None,
    every: float | None = None,
    expected: float | None = None,
) -> Iterator[None]:
    """While the block runs, say that ``desc`` is still running (and for how long).

    On a terminal: a tqdm counter of elapsed seconds. In a log: a line every interval
    (``expected``, seconds, adds an estimate of the time left).
    """
    stream = sys.stderr if stream is None else stream
    period = interval() if every is None else float(every)
    if enabled is False or (not is_terminal(stream) and period <= 0):
        yield
        return
    stop = threading.Event()
    t0 = time.monotonic()
    if is_terminal(stream):
        from tqdm.auto import tqdm

        bar = tqdm(
            total=round(expected) if expected else None,
            desc=desc,
            unit=" s",
            leave=False,
            file=stream,
            bar_format="{desc}: {elapsed}{postfix}" if not expected else None,
        )

        def tick() -> None:
            while not stop.wait(1.0):
                bar.update(round(time.monotonic() - t0) - bar.n)

    else:
        bar = None

        def tick() -> None:
            while not stop.wait(period):
                el = time.monotonic() - t0
                left = f", about {format_seconds(expected - el)} left" if expected else ""
                if expected and el > expected:
                    left = f", longer than the {format_seconds(expected)} expected"
                print(
                    f"[prl] {desc}: still running, elapsed {format_seconds(el)}{left}",
                    file=stream,
                    flush=True,
                )

    th = threading.Thread(target=tick, name="prl-heartbeat", daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join()
        if bar is not None:
            bar.close()
