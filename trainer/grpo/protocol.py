"""The live stream's message types (stdout) and control requests (stdin), protocol version 1.

The messages and records themselves are defined in grpo/records.py (docs/run-directory.md explains them;
the extension's types are generated from it by `npm run gen:protocol` into src/shared/generated/protocol.ts and
re-exported with their guards by src/shared/records.ts). stdout carries only these
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
SAMPLE_GROUP, SCORE, COMPARE, REPLAY, RESCORE = INSPECT_TYPES

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
                try:
                    self._out.write(line + "\n")
                except UnicodeEncodeError:  # a lone surrogate echoed from a request: send it escaped
                    self._out.write(json.dumps(json.loads(line), separators=(",", ":")) + "\n")
                self._out.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the reader went away; the run directory still has everything


# Bounds on one stdin line: a request is a few hundred bytes; these only stop a hostile or broken writer.
MAX_REQUEST_BYTES = 1 << 20
MAX_REQUEST_DEPTH = 32
_ID_TYPES = (str, int, float, type(None))


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of a parsed value, counted no further than `limit` + 1."""
    todo, deepest = [(obj, 1)], 0
    while todo:
        v, d = todo.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(v, dict):
            todo.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            todo.extend((x, d + 1) for x in v)
    return deepest


def _echoable(value: Any) -> bool:
    """An id can be sent back as it came: a short string (valid Unicode), a number or null."""
    if isinstance(value, bool) or not isinstance(value, _ID_TYPES):
        return False
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
            return False
        return len(value) <= 200
    return not isinstance(value, int) or abs(value) < 1 << 53


def parse_request(line: str | bytes) -> dict[str, Any]:
    """Validate one stdin line; raises ValueError with a message fit to send back (with id null)."""
    if isinstance(line, bytes):
        if len(line) > MAX_REQUEST_BYTES:
            raise ValueError(f"request is longer than {MAX_REQUEST_BYTES} bytes")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"request is not valid UTF-8 (byte {e.start})") from None
    try:
        msg = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"request is not JSON: {e.msg}") from None
    except RecursionError:
        raise ValueError(f"request nests deeper than {MAX_REQUEST_DEPTH} levels") from None
    if not isinstance(msg, dict):
        raise ValueError("request must be a JSON object")
    if _depth(msg, MAX_REQUEST_DEPTH) > MAX_REQUEST_DEPTH:
        raise ValueError(f"request nests deeper than {MAX_REQUEST_DEPTH} levels")
    if not _echoable(msg.get("id")):
        raise ValueError("request 'id' must be null, a number or a string of at most 200 characters")
    if msg.get("v", PROTOCOL_VERSION) != PROTOCOL_VERSION:
        raise ValueError(f"unsupported protocol version {msg.get('v')!r} (this trainer speaks {PROTOCOL_VERSION})")
    if not isinstance(msg.get("type"), str):
        raise ValueError("request needs a string 'type'")
    return msg


def _lines(source: IO[str] | IO[bytes]):
    """Lines of `source` (its bytes when it has them, so no locale can make decoding fail), each at most
    MAX_REQUEST_BYTES + 1 long: the rest of an over-long line is read and dropped, never held."""
    raw = getattr(source, "buffer", source)
    while True:
        line = raw.readline(MAX_REQUEST_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_REQUEST_BYTES:
            tail = line
            while tail and not tail.endswith(b"\n" if isinstance(tail, bytes) else "\n"):
                tail = raw.readline(MAX_REQUEST_BYTES)
        yield line


def read_requests(source: IO[str] | IO[bytes], stream: Stream):
    """Valid requests of `source`, one per line, until it closes. Every bad line is answered `ok: false`
    (id null) and skipped: no line, however long, deep or undecodable, ends the reading."""
    for line in _lines(source):
        try:
            if not line.strip():
                continue
            if len(line) > MAX_REQUEST_BYTES:
                raise ValueError(f"request is longer than {MAX_REQUEST_BYTES} bytes")
            msg = parse_request(line)
        except Exception as e:  # noqa: BLE001 - whatever a line does, the next one is still read
            error = str(e) if isinstance(e, ValueError) else f"request could not be read ({type(e).__name__})"
            stream.send(RESPONSE, id=None, ok=False, error=error)
            continue
        yield msg


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
            for msg in read_requests(self._source, self._stream):
                if msg["type"] not in self._known:
                    self._stream.send(RESPONSE, id=msg.get("id"), ok=False,
                                      error=f"unknown request type {msg['type']!r}")
                    continue
                self._queue.put(msg)
        except (OSError, ValueError):  # stdin closed under us: nothing more will come
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
