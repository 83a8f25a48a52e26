"""Human progress on stderr. In a terminal: a `rich` progress bar (phase, step/total, reward, held-out accuracy,
KL, ETA) with log lines printed above it, and a closing summary; otherwise a log line now and then. It never
touches stdout, which belongs to the protocol stream.

The ETA divides the steps left by the rate of the recent steps (a sliding window of `window_seconds`), not by
the mean since the start, so it follows a machine that becomes busier or quieter (and a GRPO phase that follows
a faster SFT phase).
"""

from __future__ import annotations

import collections
import sys
import time
from pathlib import Path


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60:d}:{seconds % 60:02d}"


class RecentRate:
    """Steps per second over the last `window` seconds of (time, step) observations."""

    def __init__(self, window: float = 30.0):
        self.window = window
        self.points: collections.deque[tuple[float, int]] = collections.deque()

    def reset(self) -> None:
        self.points.clear()

    def add(self, t: float, step: int) -> None:
        self.points.append((t, step))
        # keep one point at or before the window's start, so the rate always spans the whole window
        while len(self.points) > 2 and self.points[1][0] <= t - self.window:
            self.points.popleft()

    def eta(self, total: int) -> float | None:
        """Seconds to reach `total` at the recent rate; None before two observations."""
        if len(self.points) < 2:
            return None
        (t0, s0), (t1, s1) = self.points[0], self.points[-1]
        if s1 <= s0 or t1 <= t0:
            return None
        return (total - s1) * (t1 - t0) / (s1 - s0)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _num(record, key: str) -> float | None:
    """`record[key]` when `record` is an object and that is a number, else None."""
    v = record.get(key) if isinstance(record, dict) else None
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def summary_lines(events: list[dict], wall_seconds: float, run_dir: Path) -> list[str]:
    """The closing summary: held-out accuracy at the GRPO start and end (greedy, maj@k, pass@k), time, the run
    directory and how to open it in VS Code. `events` are the run's events.jsonl records: a record that is not
    an object, or an eval event whose fields are not numbers, is passed over (the file is untrusted)."""
    evals = [e for e in events if isinstance(e, dict) and e.get("kind") == "eval"]
    start = next((e for e in evals if e.get("step") == 0), None)
    end = evals[-1] if evals and evals[-1] is not start else None
    lines = []
    if start or end:
        s_step = 0 if start else "—"
        e_step = end.get("step", "—") if end else "—"
        n = (end or start).get("n", "?")
        lines.append(f"held-out accuracy, GRPO step {s_step} → {e_step} ({n} questions):")
        lines.append(f"  {'greedy':<9} {_pct(_num(start, 'accuracy')):>6} → {_pct(_num(end, 'accuracy'))}")
        for name, key in (("maj", "maj_at_k"), ("pass", "pass_at_k")):
            ks = sorted({int(k) for e in (start, end) if e and isinstance(e.get(key), dict) for k in e[key]
                         if isinstance(k, str) and k.isascii() and k.isdigit()})
            for k in ks:
                a, b = _num(start and start.get(key), str(k)), _num(end and end.get(key), str(k))
                lines.append(f"  {name + '@' + str(k):<9} {_pct(a):>6} → {_pct(b)}")
        sampled = next((e for e in (end, start) if e and e.get("samples")), None)
        if sampled and _num(sampled, "temperature") is not None:
            lines.append(f"  (maj@k, pass@k: {sampled['samples']} samples per question at temperature "
                         f"{sampled['temperature']:g})")
    cache = [e for e in events if isinstance(e, dict) and e.get("kind") == "sft_cache" and isinstance(e.get("path"), str)]
    if cache:
        words = {"hit": "reused from the cache", "stored": "trained and stored in the cache",
                 "miss": "trained (not stored)", "off": "not cached"}
        last = cache[-1]
        why = f" ({last['reason']})" if isinstance(last.get("reason"), str) else ""
        lines.append(f"SFT start {words.get(last.get('action'), last.get('action'))}{why}: {last['path']}")
    lines.append(f"time {_clock(wall_seconds)}; run directory {run_dir}")
    lines.append(f"open it in VS Code: `code {run_dir}`, or with the GRPO Studio extension run "
                 "\"GRPO: Open Run…\" and pick that folder (dashboard, samples, inspector)")
    return lines


class Progress:
    def __init__(self, enabled: bool = True, stream=None, every_seconds: float = 10.0, window_seconds: float = 30.0):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every_seconds
        self._last = 0.0
        self._rate = RecentRate(window_seconds)
        self._phase: str | None = None
        self.held_out: float | None = None
        self.console = None
        self._bar = None
        self._task = None
        if self.tty:
            from rich.console import Console

            self.console = Console(file=self.stream, highlight=False)

    # ------------------------------------------------------------------------------------------ bar
    def _start_bar(self, phase: str, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn

        self._stop_bar()
        self._bar = Bar(TextColumn("[bold]{task.description:<4}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                        TextColumn("{task.fields[numbers]}"), TextColumn("elapsed {task.fields[elapsed]}"),
                        TextColumn("ETA {task.fields[eta]}"), console=self.console, transient=False,
                        auto_refresh=False)
        self._task = self._bar.add_task(phase, total=total, numbers="", elapsed="0:00", eta="…")
        self._bar.start()

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.refresh()
            self._bar.stop()
            self._bar = None

    # ------------------------------------------------------------------------------------------ API
    def show(self, phase: str, step: int, total: int, elapsed: float, **numbers: float) -> None:
        if not self.enabled:
            return
        now = time.time()
        if phase != self._phase:
            self._phase = phase
            self._rate.reset()
            if self.tty:
                self._start_bar(phase, total)
        self._rate.add(now, step)
        eta = self._rate.eta(total)
        if phase == "grpo" and self.held_out is not None:
            numbers = {**numbers, "held-out": self.held_out}
        nums = "  ".join(f"{k} {v:.3f}" for k, v in numbers.items())
        eta_text = "…" if eta is None else _clock(eta)
        if self.tty:
            self._bar.update(self._task, completed=step, total=total, numbers=nums, elapsed=_clock(elapsed), eta=eta_text)
            self._bar.refresh()
            return
        if now - self._last < self.every and step != total:
            return
        self._last = now
        self.stream.write(f"[{phase}] {step}/{total}  {nums}  elapsed {_clock(elapsed)}  ETA {eta_text}\n")
        self.stream.flush()

    def evaluated(self, step: int, metrics: dict[str, float]) -> None:
        """An evaluation finished: its greedy accuracy joins the bar; in a terminal its line is printed above."""
        if not self.enabled:
            return
        self.held_out = metrics.get("eval/accuracy")
        if self.tty:
            parts = [f"greedy {_pct(self.held_out)}"] + [f"{k[5:]} {_pct(v)}" for k, v in metrics.items()
                                                         if k.startswith(("eval/maj@", "eval/pass@"))]
            self.console.print(f"held-out eval at GRPO step {step}: " + ", ".join(parts))

    def done(self, state: str, step: int) -> None:
        if not self.enabled:
            return
        if self.tty:
            self._stop_bar()
            self.console.print(f"[{state}] at step {step}", markup=False)
            return
        self.stream.write(f"[{state}] at step {step}\n")
        self.stream.flush()

    def summary(self, lines: list[str]) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.console.rule("summary")
            for line in lines:
                self.console.print(line, markup=False)
        else:
            self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
