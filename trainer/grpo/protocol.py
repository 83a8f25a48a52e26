"""The live stream's message types (stdout) and control requests (stdin), protocol version 1.

The messages and records themselves are defined in grpo/records.py (docs/run-directory.md explains them;
the extension's src/protocol.ts, generated from records.py, is the other end). stdout carries only these
lines: `Stream` owns the real stdout, and the CLI points `sys.stdout` at stderr so that stray library prints
can never corrupt the stream.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from typing import IO, Any

from .records import CONTROL_TYPES, INSPECT_TYPES, MESSAGE_TYPES, PROTOCOL_VERSION, RUN_STATES, MessageType

# Names for the records' Literal values (in their order there; test_records.py checks each name's value)
# stdout message types
STARTED, STATUS, PROGRESS, METRICS, SAMPLES, EVENT, RESPONSE = MESSAGE_TYPES

# stdin control requests
PAUSE, RESUME, STOP, SAVE_CHECKPOINT = CONTROL_TYPES
# stdin inspection requests (answered by `train` between steps and by `serve`; see grpo/inspector.py)
SAMPLE_GROUP, SCORE, COMPARE = INSPECT_TYPES

# run states (status.json "state")
STATES = RUN_STATES
RUNNING, PAUSED, STOPPED, FINISHED, FAILED = STATES


def to_json(obj: Any) -> str:
    """One line of JSON; non-finite floats become null (JSON has no NaN), so every reader can parse it."""
    return json.dumps(_finite(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


class Stream:
    """Writes protocol messages to the real stdout, one whole line per message, flushed."""

    def __init__(self, out: IO[str] | None = None):
        self._out = out if out is not None else sys.__stdout__
        self._lock = threading.Lock()

    def send(self, type_: MessageType, **payload: Any) -> None:
        assert type_ in MESSAGE_TYPES, type_
        line = to_json({"v": PROTOCOL_VERSION, "type": type_, **payload})
        with self._lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the reader went away; the run directory still has everything


def parse_request(line: str) -> dict[str, Any]:
    """Validate one stdin line; raises ValueError with a message fit to send back."""
    try:
        msg = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"request is not JSON: {e.msg}") from None
    if not isinstance(msg, dict):
        raise ValueError("request must be a JSON object")
    if msg.get("v", PROTOCOL_VERSION) != PROTOCOL_VERSION:
        raise ValueError(f"unsupported protocol version {msg.get('v')!r} (this trainer speaks {PROTOCOL_VERSION})")
    if not isinstance(msg.get("type"), str):
        raise ValueError("request needs a string 'type'")
    return msg


class Requests:
    """Reads stdin on a daemon thread and queues valid requests; answers malformed ones at once.
    End of input is not a stop: the extension may go away and re-attach through the run directory."""

    def __init__(self, stream: Stream, source: IO[str] | None = None, known: tuple[str, ...] = CONTROL_TYPES):
        self._stream, self._known = stream, known
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._source = source if source is not None else sys.stdin
        if self._source is not None:
            threading.Thread(target=self._read, name="grpo-stdin", daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self._source:
                if not line.strip():
                    continue
                try:
                    msg = parse_request(line)
                except ValueError as e:
                    self._stream.send(RESPONSE, id=None, ok=False, error=str(e))
                    continue
                if msg["type"] not in self._known:
                    self._stream.send(RESPONSE, id=msg.get("id"), ok=False,
                                      error=f"unknown request type {msg['type']!r}")
                    continue
                self._queue.put(msg)
        except (OSError, ValueError):
            return

    def poll(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
