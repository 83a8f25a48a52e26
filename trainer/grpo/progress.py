"""Human progress on stderr: one self-rewriting line in a terminal, a log line now and then otherwise.
It never touches stdout, which belongs to the protocol stream."""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60:d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, enabled: bool = True, stream=None, every_seconds: float = 10.0):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every_seconds
        self._last = 0.0

    def show(self, phase: str, step: int, total: int, elapsed: float, **numbers: float) -> None:
        if not self.enabled:
            return
        now = time.time()
        if not self.tty and now - self._last < self.every and step != total:
            return
        self._last = now
        eta = elapsed / step * (total - step) if step else 0.0
        nums = "  ".join(f"{k} {v:.3f}" for k, v in numbers.items())
        line = f"[{phase}] {step}/{total}  {nums}  elapsed {_clock(elapsed)}  ETA {_clock(eta)}"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self, state: str, step: int) -> None:
        if self.enabled:
            self.stream.write(("\n" if self.tty else "") + f"[{state}] at step {step}\n")
            self.stream.flush()
