"""The run directory: the durable record of a run (docs/run-directory.md).

Every record goes to its file first (one whole line, flushed) and then to the live stream, so the stream
is never the only copy. status.json is replaced atomically; checkpoints are written to `<name>.tmp` and
renamed into place, so a `step_*` directory is always complete.
"""

from __future__ import annotations

import json
import os
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


def read_jsonl(path: Path) -> tuple[list[dict], int]:
    """Records of a JSONL file and the number of lines that did not parse (a torn last line included)."""
    rows, bad = [], 0
    if not path.exists():
        return rows, bad
    with path.open("r", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                bad += 1
    return rows, bad


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(json.dumps(protocol._finite(data), indent=2, ensure_ascii=False))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
            "pid": os.getpid(), "host": socket.gethostname(),
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

    def _write_status(self) -> None:
        write_json_atomic(self.path / "status.json", self.status)
        self.stream.send(protocol.STATUS, status=self.status)

    def read_status(self) -> dict:
        try:
            return json.loads((self.path / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def read_config(self) -> dict:
        return json.loads((self.path / "config.json").read_text())

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
