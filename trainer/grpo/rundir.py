"""The run directory: the durable record of a run (docs/run-directory.md).

Every record goes to its file first (one whole line, flushed) and then to the live stream, so the stream
is never the only copy. status.json is replaced atomically; checkpoints are written to `<name>.tmp` and
renamed into place, so a `step_*` directory is always complete.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from . import protocol
from .config import Config, build_config
from .records import GroupRecord, MetricsRow, QuestionsRow
from .protocol import Stream, to_json

log = logging.getLogger("grpo")

CHECKPOINTS = "checkpoints"
LOCK_FILE = "writer.lock"


def checkpoint_name(step: int, phase: str = "grpo") -> str:
    return f"{'sft' if phase == 'sft' else 'step'}_{step:06d}"


MAX_JSON_FILE = 16 * 1024 * 1024  # status.json, config.json, trainer_state.json, checksums.json
MAX_LINE = 64 * 1024 * 1024       # one JSONL record (a samples.jsonl group is the largest)


class LinkRefused(OSError):
    """A run directory's file or folder is a symbolic link: it is neither read nor written through."""

    def __init__(self, path: Path):
        super().__init__(errno.ELOOP, f"{path}: refused: a symbolic link (a run directory's files are read and "
                                      "written only inside it; replace the link with the file itself)")

    def __str__(self) -> str:
        return str(self.strerror)


def refuse_link(path: Path) -> Path:
    if path.is_symlink():
        raise LinkRefused(path)
    return path


def open_for_write(path: Path, append: bool = False) -> int:
    """A file descriptor for writing `path` inside a run directory, never through a symbolic link: a link
    planted at `path` (status.json.tmp → ~/.bashrc) is refused, not followed. `append=False` creates the
    file anew (an existing regular file is replaced)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    if append:
        flags |= os.O_APPEND
    else:
        refuse_link(path)
        path.unlink(missing_ok=True)
        flags |= os.O_EXCL
    try:
        return os.open(path, flags, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP or (e.errno == errno.EEXIST and path.is_symlink()):
            raise LinkRefused(path) from None
        raise


def write_text(path: Path, text: str) -> None:
    """Write a whole file of the run directory anew (no link followed)."""
    with os.fdopen(open_for_write(path), "w", encoding="utf-8") as f:
        f.write(text)


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
    """Records of a JSONL file and the number of lines skipped: those that did not parse (a torn last line,
    and lines longer than MAX_LINE, included) and those that are not JSON objects (`[1,2,3]`, `42`, `null`:
    every record is an object, so no reader meets anything else)."""
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
                row = json.loads(line)
            except (ValueError, RecursionError):
                bad += 1
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad += 1
    return rows, bad


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `<path>.tmp` (never through a link) and rename it over `path` (the rename replaces a link at
    `path` itself, it does not write through it)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = open_for_write(tmp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
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
    with os.fdopen(os.open(refuse_link(path), os.O_RDWR | os.O_NOFOLLOW), "r+b") as f:
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


def _ends_torn(path: Path) -> bool:
    """Whether a file's last byte is not a newline (a record cut off by a crash)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:
        return False


# What a run directory holds at its top level; none of them may be a link (`check_links`).
RUN_FILES = ("config.json", "status.json", "metrics.jsonl", "samples.jsonl", "events.jsonl", "questions.jsonl",
             "trainer.log", CHECKPOINTS, LOCK_FILE)


def check_links(path: Path) -> None:
    """Refuse a run directory whose files, their `.tmp` twins, checkpoints/ or anything in checkpoints/ is a
    symbolic link, naming it, before anything is written: a shared run directory must not steer writes (or
    resumes) outside itself."""
    for name in RUN_FILES:
        refuse_link(path / name)
        refuse_link(path / (name + ".tmp"))
    root = path / CHECKPOINTS
    if root.is_dir():
        for entry in root.iterdir():
            refuse_link(entry)


class RunBusy(RuntimeError):
    """Another live process is writing this run directory."""


_held: dict[Path, int] = {}  # run directory → the descriptor holding its writer lock, for this process's life


def acquire_writer(path: Path) -> None:
    """Make this process the run directory's only writer: an exclusive flock on `writer.lock`, which the kernel
    releases however the process ends (SIGKILL and crashes included), so a lock is never left stuck. The file
    also names the holder (pid, host, start time) for the message a second writer gets and for the extension.
    RunBusy if another process holds it; idempotent within a process."""
    import fcntl

    key = Path(path).resolve()
    if key in _held:
        return
    lock = Path(path) / LOCK_FILE
    fd = os.open(refuse_link(lock), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        try:
            holder = read_json_file(lock, 4096)
        except (OSError, ValueError):
            holder = {}
        holder = holder if isinstance(holder, dict) else {}
        since = holder.get("since")
        when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else ""
        raise RunBusy(f"{path} is being written by another process (pid {holder.get('pid', '?')} on "
                      f"{holder.get('host', '?')}{when}); wait for it to end or stop it first") from None
    me = {"pid": os.getpid(), "host": socket.gethostname(), "proc_start": process_start_time(os.getpid()),
          "since": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    _held[key] = fd


def release_writer(path: Path) -> None:
    """Give the writer lock back before the process ends (tests and in-process callers)."""
    fd = _held.pop(Path(path).resolve(), None)
    if fd is not None:
        os.close(fd)


class RunDir:
    def __init__(self, path: str | Path, stream: Stream | None = None):
        self.path = Path(path)
        self.stream = stream or Stream(open(os.devnull, "w"))
        self.status: dict[str, Any] = {}  # a records.RunStatus once start() ran
        self._files: dict[str, Any] = {}
        self.reporters: list[Any] = []  # report_to's targets (reporters.py): each metrics row goes to them too

    # ---------------------------------------------------------------------------------- records
    def _append(self, name: str, row: dict) -> None:
        f = self._files.get(name)
        if f is None:
            path = self.path / name
            f = self._files[name] = os.fdopen(open_for_write(path, append=True), "a", encoding="utf-8")
            if _ends_torn(path):  # a crash tore the last line: the next record starts a line of its own
                f.write("\n")
        f.write(to_json(row) + "\n")
        f.flush()

    def metrics(self, row: MetricsRow) -> None:
        self._append("metrics.jsonl", row)
        self.stream.send(protocol.METRICS, row=row)
        for r in list(self.reporters):
            try:
                r.log(row)
            except Exception as e:  # noqa: BLE001 - a dashboard that fails costs its own copy, never the run
                self.reporters.remove(r)
                self.event("warning", int(row.get("step", 0)), code="report_to",
                           message=f"report_to: {type(r).__name__} failed and gets no more rows: {e}")

    def samples(self, row: GroupRecord) -> None:
        self._append("samples.jsonl", row)
        self.stream.send(protocol.SAMPLES, row=row)

    def questions(self, row: QuestionsRow) -> None:
        """One questions.jsonl row (the prompt atlas reads the file; nothing is streamed)."""
        self._append("questions.jsonl", row)

    def event(self, kind: str, step: int, **fields: Any) -> dict:
        """One events.jsonl row; `kind` and its fields are defined in records.py (`EVENTS`)."""
        row = {"kind": kind, "time": time.time(), "step": step, **fields}
        self._append("events.jsonl", row)
        self.stream.send(protocol.EVENT, row=row)
        return row

    # ---------------------------------------------------------------------------------- status
    def start(self, config: dict, max_steps: int, sft_steps: int, resumed_from: int | None) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        check_links(self.path)
        acquire_writer(self.path)
        (self.path / CHECKPOINTS).mkdir(exist_ok=True)
        write_json_atomic(self.path / "config.json", self._with_history(config, resumed_from))
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

    def _with_history(self, config: dict, resumed_from: int | None) -> dict:
        """`config` plus config.json's `history`: each resume of this run, when, from which step, and the
        settings it changed (from → to)."""
        try:
            old = self.read_config() if (self.path / "config.json").exists() else None
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict):
            return config
        history = [h for h in old.get("history", []) if isinstance(h, dict)] if isinstance(old.get("history"), list) else []
        changed = {k: {"from": old[k], "to": v} for k, v in config.items()
                   if k != "history" and k in old and old[k] != v}
        history.append({"time": time.time(), "resumed_from": resumed_from, "changed": changed})
        return {**config, "history": history}

    def _rewind(self, step: int) -> int:
        """On resume, drop metrics/samples rows of steps after the checkpoint: that trajectory is replaced
        by the one about to be trained. Rewritten atomically; a torn last line is dropped too."""
        dropped = 0
        for name in ("metrics.jsonl", "samples.jsonl", "questions.jsonl"):
            path = self.path / name
            if not path.exists():
                continue
            rows, bad = read_jsonl(path)
            keep = [r for r in rows if isinstance(r.get("step"), int) and r["step"] <= step]
            dropped += len(rows) - len(keep) + bad
            tmp = path.with_name(name + ".tmp")
            write_text(tmp, "".join(to_json(r) + "\n" for r in keep))
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
        return self.staging(CHECKPOINTS, name)

    def staging(self, folder: str, name: str) -> Path:
        """A fresh `<folder>/<name>.tmp` to write into (a link at either is refused, not followed); renamed into
        place by `commit_staged` once complete."""
        refuse_link(self.path / folder)
        tmp = refuse_link(self.path / folder / (name + ".tmp"))
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        return tmp

    @staticmethod
    def commit_staged(tmp: Path) -> Path:
        """`<name>.tmp` renamed to `<name>`, replacing an earlier one of that name."""
        final = refuse_link(tmp.with_name(tmp.name[: -len(".tmp")]))
        if final.exists():
            old = final.with_name(final.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        return final

    def commit_checkpoint(self, tmp: Path, step: int) -> str:
        final = self.commit_staged(tmp)  # re-saving the same step (a stop right after a periodic save) replaces it
        rel = f"{CHECKPOINTS}/{final.name}"
        self.update(last_checkpoint=rel)
        self.event("checkpoint", step, path=rel)
        return rel

    def latest_checkpoint(self) -> Path | None:
        return latest_checkpoint(self.path)

    def close(self) -> None:
        from .reporters import close_all

        close_all(self.reporters)
        self.reporters = []
        for f in self._files.values():
            f.close()
        self._files.clear()
        release_writer(self.path)


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


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path | None]:
    """(checkpoint dir, run dir or None) for a checkpoint directory or a run directory (its latest one)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"--checkpoint {path}: no such directory (not a checkpoint, model or run directory)")
    if (p / "checkpoints").is_dir() or (p / "status.json").is_file():
        latest = latest_checkpoint(p)
        if latest is None:
            raise FileNotFoundError(f"--checkpoint {path}: the run has no complete checkpoint yet")
        return latest, p
    if not (p / "config.json").is_file() and not (p / "adapter_config.json").is_file():
        raise FileNotFoundError(f"--checkpoint {path}: not a checkpoint, model or run directory (no config.json)")
    run = p.parent.parent if p.parent.name == "checkpoints" and (p.parent.parent / "config.json").is_file() else None
    return p, run


def run_settings(run_dir: Path | None) -> Config:
    """The run's settings (the task, prompt, verifier, G, temperature, lengths, reward), or the defaults."""
    if run_dir is None:
        return Config()
    try:
        base = read_json_file(run_dir / "config.json")  # bounded, regular: a run directory is untrusted
        known = {f for f in Config.__dataclass_fields__}
        return build_config({k: v for k, v in base.items() if k in known})
    except (OSError, ValueError, TypeError, AttributeError) as e:  # ConfigError is a ValueError
        log.warning("cannot read %s/config.json (%s); using default settings", run_dir, e)
        return Config()


START = checkpoint_name(0)  # step_000000: the GRPO start, the reference of every later step


def prune_plan(names: list[str], limit: int, keep: set[str] = frozenset()) -> list[str]:
    """Which checkpoints to delete so that at most `limit` remain (0: none deleted): `names` oldest first (as
    `list_checkpoints` orders them). Always kept, even past the limit: step_000000, the newest, and `keep`
    (a running export's checkpoint, the one this process resumed from); then the newest others up to `limit`."""
    if not limit or len(names) <= limit:
        return []
    kept = {n for n in names if n == START or n in keep} | {names[-1]}
    for n in reversed(names):
        if len(kept) >= limit:
            break
        kept.add(n)
    return [n for n in names if n not in kept]


def prune_checkpoints(run_dir: Path, limit: int, keep: set[str] = frozenset()) -> list[str]:
    """Delete what `prune_plan` names: each is first renamed to `<name>.old` (never listed, never resumed),
    then removed, so a kill in between leaves no half checkpoint that looks whole. Returns the names."""
    root = Path(run_dir) / CHECKPOINTS
    for stale in root.glob("*.old"):  # left by a kill during an earlier prune or re-save
        if not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
    gone = prune_plan([p.name for p in list_checkpoints(run_dir)], limit, keep)
    for name in gone:
        old = root / (name + ".old")
        os.replace(refuse_link(root / name), old)
        shutil.rmtree(old, ignore_errors=True)
    return gone
