"""The run directory: the durable record of a run (docs/run-directory.md).

Every record goes to its file first (one whole line, flushed) and then to the live stream, so the stream
is never the only copy. status.json is replaced atomically; checkpoints are written to `<name>.tmp` and
renamed into place, so a `step_*` directory is always complete.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from . import protocol
from .records import GroupRecord, MetricsRow
from .protocol import Stream, to_json

CHECKPOINTS = "checkpoints"


def checkpoint_name(step: int, phase: str = "grpo") -> str:
    return f"{'sft' if phase == 'sft' else 'step'}_{step:06d}"


MAX_JSON_FILE = 16 * 1024 * 1024  # status.json, config.json, trainer_state.json, checksums.json
MAX_LINE = 64 * 1024 * 1024       # one JSONL record (a samples.jsonl group is the largest)


def _regular(path: Path) -> Path:
    """`path` if it is a regular file, not a symlink: a run directory is untrusted (a `/dev/zero` symlink
    would be read forever). ValueError naming it otherwise."""
    if path.is_symlink() or not path.is_file():
        raise ValueError(f"{path}: not a regular file")
    return path


def read_json_file(path: Path, limit: int = MAX_JSON_FILE) -> Any:
    """A JSON file of a run directory: regular, at most `limit` bytes; ValueError naming it otherwise."""
    size = _regular(path).stat().st_size
    if size > limit:
        raise ValueError(f"{path}: {size} bytes, more than the {limit} such a file may hold")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"{path}: damaged ({type(e).__name__}: {e})") from None


def read_jsonl(path: Path) -> tuple[list[dict], int]:
    """Records of a JSONL file and the number of lines that did not parse (a torn last line, and lines
    longer than MAX_LINE, included)."""
    rows, bad = [], 0
    if not path.exists() and not path.is_symlink():
        return rows, bad
    with _regular(path).open("rb") as f:
        while line := f.readline(MAX_LINE + 1):
            if len(line) > MAX_LINE:
                while line and not line.endswith(b"\n"):
                    line = f.readline(MAX_LINE)
                bad += 1
                continue
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except (ValueError, RecursionError):
                bad += 1
    return rows, bad


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(json.dumps(protocol._finite(data), indent=2, ensure_ascii=False))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _rewrite_in_place(path: Path, data: Any) -> None:
    """Overwrite an existing small file in its own blocks: works on a full disk where a new file cannot."""
    text = json.dumps(protocol._finite(data), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    with path.open("r+b") as f:
        f.write(text)
        f.truncate()
        f.flush()
        os.fsync(f.fileno())


def process_start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks after boot (/proc/PID/stat field 22; Linux only). With the
    host it tells this trainer from a later process that reuses its pid: the extension checks both before
    it re-attaches to or signals the pid in status.json."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


class RunDir:
    def __init__(self, path: str | Path, stream: Stream | None = None):
        self.path = Path(path)
        self.stream = stream or Stream(open(os.devnull, "w"))
        self.status: dict[str, Any] = {}  # a records.RunStatus once start() ran
        self._files: dict[str, Any] = {}

    # ---------------------------------------------------------------------------------- records
    def _append(self, name: str, row: dict) -> None:
        f = self._files.get(name)
        if f is None:
            f = self._files[name] = (self.path / name).open("a", encoding="utf-8")
        f.write(to_json(row) + "\n")
        f.flush()

    def metrics(self, row: MetricsRow) -> None:
        self._append("metrics.jsonl", row)
        self.stream.send(protocol.METRICS, row=row)

    def samples(self, row: GroupRecord) -> None:
        self._append("samples.jsonl", row)
        self.stream.send(protocol.SAMPLES, row=row)

    def event(self, kind: str, step: int, **fields: Any) -> dict:
        """One events.jsonl row; `kind` and its fields are defined in records.py (`EVENTS`)."""
        row = {"kind": kind, "time": time.time(), "step": step, **fields}
        self._append("events.jsonl", row)
        self.stream.send(protocol.EVENT, row=row)
        return row

    # ---------------------------------------------------------------------------------- status
    def start(self, config: dict, max_steps: int, sft_steps: int, resumed_from: int | None) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / CHECKPOINTS).mkdir(exist_ok=True)
        write_json_atomic(self.path / "config.json", config)
        previous = self.read_status() if resumed_from is not None else {}
        dropped = self._rewind(resumed_from) if resumed_from is not None else 0
        now = time.time()
        self.status = {
            "protocol": protocol.PROTOCOL_VERSION, "state": protocol.RUNNING, "phase": "setup",
            "pid": os.getpid(), "host": socket.gethostname(), "proc_start": process_start_time(os.getpid()),
            "token": secrets.token_hex(8),
            "step": previous.get("step", 0), "max_steps": max_steps,
            "sft_step": previous.get("sft_step", 0), "sft_steps": sft_steps,
            "started_at": previous.get("started_at", now), "updated_at": now, "ended_at": None,
            "last_checkpoint": previous.get("last_checkpoint"), "error": None,
        }
        self.stream.send(protocol.STARTED, run_dir=str(self.path.resolve()), pid=os.getpid(), config=config,
                         resumed_from=resumed_from)
        self._write_status()
        if resumed_from is not None:
            self.event("resume", resumed_from, dropped_rows=dropped)

    def _rewind(self, step: int) -> int:
        """On resume, drop metrics/samples rows of steps after the checkpoint: that trajectory is replaced
        by the one about to be trained. Rewritten atomically; a torn last line is dropped too."""
        dropped = 0
        for name in ("metrics.jsonl", "samples.jsonl"):
            path = self.path / name
            if not path.exists():
                continue
            rows, bad = read_jsonl(path)
            keep = [r for r in rows if isinstance(r.get("step"), int) and r["step"] <= step]
            dropped += len(rows) - len(keep) + bad
            tmp = path.with_name(name + ".tmp")
            tmp.write_text("".join(to_json(r) + "\n" for r in keep), encoding="utf-8")
            os.replace(tmp, path)
        return dropped

    def update(self, **fields: Any) -> None:
        self.status.update(fields)
        if fields.get("state") in (protocol.STOPPED, protocol.FINISHED, protocol.FAILED):
            self.status["ended_at"] = time.time()
        self.status["updated_at"] = time.time()
        self._write_status()

    def fail(self, step: int, message: str) -> None:
        """Mark the run failed however it ended, a full disk included: the error reaches the stream even if
        events.jsonl cannot take it; if status.json cannot be written, the half-written checkpoint goes
        (freeing its space) and status.json is written again, in place as a last resort."""
        row = {"kind": "error", "time": time.time(), "step": step, "message": message}
        try:
            self.event("error", step, message=message)
        except OSError:
            self.stream.send(protocol.EVENT, row=row)
        self.status.update(state=protocol.FAILED, error=message, ended_at=row["time"], updated_at=row["time"])
        try:
            self._write_status()
        except OSError:
            for tmp in (self.path / CHECKPOINTS).glob("*.tmp"):
                shutil.rmtree(tmp, ignore_errors=True)
            try:
                write_json_atomic(self.path / "status.json", self.status)
            except OSError:
                try:
                    _rewrite_in_place(self.path / "status.json", self.status)
                except OSError:
                    pass
            self.stream.send(protocol.STATUS, status=self.status)

    def _write_status(self) -> None:
        write_json_atomic(self.path / "status.json", self.status)
        self.stream.send(protocol.STATUS, status=self.status)

    def read_status(self) -> dict:
        try:
            st = read_json_file(self.path / "status.json")
        except (OSError, ValueError):
            return {}
        return st if isinstance(st, dict) else {}

    def read_config(self) -> dict:
        return read_json_file(self.path / "config.json")

    # ---------------------------------------------------------------------------------- checkpoints
    def checkpoint_tmp(self, name: str) -> Path:
        tmp = self.path / CHECKPOINTS / (name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        return tmp

    def commit_checkpoint(self, tmp: Path, step: int) -> str:
        final = tmp.with_name(tmp.name[: -len(".tmp")])
        if final.exists():  # re-saving the same step (e.g. stop right after a periodic save)
            old = final.with_name(final.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        rel = f"{CHECKPOINTS}/{final.name}"
        self.update(last_checkpoint=rel)
        self.event("checkpoint", step, path=rel)
        return rel

    def latest_checkpoint(self) -> Path | None:
        return latest_checkpoint(self.path)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first: SFT-phase ones (sft_*) before GRPO ones (step_*)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and not p.name.endswith((".tmp", ".old"))
            and (p / "trainer_state.json").is_file()]
    return sorted(done, key=lambda p: (p.name.startswith("step_"), p.name))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None
