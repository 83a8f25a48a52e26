"""Checkpoint contents: a Hugging Face model directory plus optimizer, RNG and trainer state.

    step_000050/
      config.json, model.safetensors, tokenizer files   (AutoModelForCausalLM / AutoTokenizer loadable)
      trainer_state.json   step, phase, sft_step, reference source
      optimizer.pt, rng.pt plain tensors, lists and numbers only: read with torch.load(weights_only=True)
      ref/                 the reference weights, only once iterative RL has reset it
      onnx/                policy.onnx, reference.onnx, tokenizer.json, manifest.json (small models; onnx_export.py)
      checksums.json       size and sha256 of every file above, written last: tells intact from damaged

A run directory is untrusted data (users copy and download them), so nothing here unpickles: a file that
needs arbitrary code to load is refused with a message naming it.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import json
import logging
import math
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from .rundir import LinkRefused, RunDir, checkpoint_name, latest_checkpoint, list_checkpoints, prune_checkpoints, \
    read_json_file

CHECKSUMS = "checksums.json"


log = logging.getLogger("grpo")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, damaged or unsafe to load; the message names the file."""


def rng_state(data_rng: random.Random, sample_gen: torch.Generator) -> dict[str, Any]:
    """Every random stream as tensors, lists and numbers (loadable with weights_only=True)."""
    version, internal, gauss = data_rng.getstate()
    state = {"python": [version, list(internal), gauss], "torch": torch.get_rng_state(),
             "sample": sample_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], data_rng: random.Random, sample_gen: torch.Generator) -> None:
    version, internal, gauss = state["python"]  # a list (this format) or the tuple older checkpoints hold
    data_rng.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    sample_gen.set_state(state["sample"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(run: RunDir, *, step: int, phase: str, policy, tokenizer, optimizer, scheduler, rng: dict,
         trainer_state: dict, ref=None, gathered: tuple[dict, dict] | None = None) -> str:
    """Write the checkpoint into `<name>.tmp`, then its checksums, then rename it into place: a `step_*` folder is
    complete whenever it exists (its ONNX export is added later, as `onnx.tmp/` renamed to `onnx/`). `gathered`:
    a sharded policy's (state dict, optimizer state dict), gathered whole (distributed.full_state_dict)."""
    tmp = run.checkpoint_tmp(checkpoint_name(step if phase != "sft" else trainer_state["sft_step"], phase))
    try:
        policy.save_pretrained(tmp, safe_serialization=True, **({"state_dict": gathered[0]} if gathered else {}))
        tokenizer.save_pretrained(tmp)
        if ref is not None:
            ref.save_pretrained(tmp / "ref", safe_serialization=True)
        if optimizer is not None:
            torch.save({"optimizer": gathered[1] if gathered else optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None}, tmp / "optimizer.pt")
        torch.save(rng, tmp / "rng.pt")
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "phase": phase, **trainer_state}, indent=2))
        write_checksums(tmp)
    except BaseException as e:  # no half-written step_N.tmp is left behind, whatever stopped the writing
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, Exception):
            full = _no_space(run, tmp, e, policy, ref, optimizer)
            if full is not None:
                raise full from e
        raise
    return run.commit_checkpoint(tmp, step)


OPTIMIZER_FACTOR = 2  # AdamW keeps two moments per parameter


def _no_space(run: RunDir, tmp: Path, error: Exception, policy, ref, optimizer) -> OSError | None:
    """An OSError(ENOSPC) naming the filesystem, the checkpoint and the space it needs, when `error` (a
    failure while writing `tmp`, already removed) came from a full disk: ENOSPC somewhere in its chain, or
    less space free than the checkpoint needs (torch's zip writer says `unexpected pos …`, safetensors
    raises its own errors). None otherwise."""
    needed = _checkpoint_bytes(run, policy, ref, optimizer)
    try:
        free = shutil.disk_usage(tmp.parent).free
    except OSError:
        free = None
    cause: BaseException | None = error
    seen = set()
    enospc = False
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        enospc = enospc or (isinstance(cause, OSError) and cause.errno == errno.ENOSPC)
        cause = cause.__cause__ or cause.__context__
    if not enospc and (free is None or free >= needed):
        return None
    mb = 1 << 20
    have = f", {free / mb:.0f} MB free" if free is not None else ""
    return OSError(errno.ENOSPC, f"no space left on {_mount_point(tmp.parent)} writing checkpoint "
                                 f"{tmp.name[: -len('.tmp')]} into {tmp.parent} (needed about "
                                 f"{math.ceil(needed / mb)} MB{have})")


def _checkpoint_bytes(run: RunDir, policy, ref, optimizer) -> int:
    """What a checkpoint takes: the newest one's size, else the weights (policy and a reset reference)
    plus OPTIMIZER_FACTOR times the trained ones for the optimizer's state."""
    latest = latest_checkpoint(run.path)
    if latest is not None:
        size = sum(f.stat().st_size for f in latest.rglob("*") if f.is_file() and not f.is_symlink())
        if size:
            return size
    params = sum(p.numel() * p.element_size() for p in policy.parameters())
    trained = sum(p.numel() * p.element_size() for p in policy.parameters() if p.requires_grad)
    ref_bytes = sum(p.numel() * p.element_size() for p in ref.parameters()) if ref is not None else 0
    return params + ref_bytes + (OPTIMIZER_FACTOR * trained if optimizer is not None else 0)


def _mount_point(path: Path) -> str:
    p = Path(path).resolve()
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return str(p)


# ------------------------------------------------------------------------------------------ integrity
def _sha256(f: Path) -> str:
    h = hashlib.sha256()
    with f.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checksums(ckpt: Path) -> None:
    files = sorted(p for p in ckpt.rglob("*") if p.is_file() and p.name != CHECKSUMS)
    table = {p.relative_to(ckpt).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)} for p in files}
    (ckpt / CHECKSUMS).write_text(json.dumps({"files": table}, indent=1))


def _read_json(f: Path) -> Any:
    """A small JSON file of a checkpoint (a regular file, bounded), or CheckpointError naming it."""
    if not f.exists() and not f.is_symlink():
        raise CheckpointError(f"{f}: missing")
    try:
        return read_json_file(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(str(e)) from None


def problem(ckpt: Path) -> str | None:
    """What is wrong with a checkpoint directory (the file and why), or None when it is intact. Checkpoints
    written before checksums.json existed are checked as far as possible: trainer_state.json must parse."""
    ckpt = Path(ckpt)
    linked = _first_link(ckpt)
    if linked is not None:
        return str(LinkRefused(linked))
    try:
        if (ckpt / "trainer_state.json").exists() or (ckpt / "trainer_state.json").is_symlink():
            read_state(ckpt)  # absent from plain Hugging Face model directories (eval, sample)
        if not (ckpt / CHECKSUMS).exists():
            return None
        table = _read_json(ckpt / CHECKSUMS)
        files = table.get("files") if isinstance(table, dict) else None
        if not isinstance(files, dict):
            raise CheckpointError(f"{ckpt / CHECKSUMS}: damaged (no 'files' table)")
        for rel, want in files.items():
            f = ckpt / rel
            if not isinstance(want, dict) or ".." in Path(rel).parts or Path(rel).is_absolute():
                raise CheckpointError(f"{ckpt / CHECKSUMS}: damaged (bad entry {rel!r})")
            if f.is_symlink() or not f.is_file():
                return f"{f}: missing"
            size = f.stat().st_size
            if size != want.get("size"):
                return f"{f}: damaged ({size} bytes, the checkpoint wrote {want.get('size')})"
            if _sha256(f) != want.get("sha256"):
                return f"{f}: damaged (its sha256 differs from the one the checkpoint wrote)"
    except CheckpointError as e:
        return str(e)
    return None


def _first_link(ckpt: Path) -> Path | None:
    """The checkpoint folder itself, or the first file or folder inside it, that is a symbolic link: a run
    directory's checkpoint is read only from inside it (another run's checkpoint linked in is not resumed)."""
    if ckpt.is_symlink():
        return ckpt
    for root, dirs, files in os.walk(ckpt):  # does not descend into linked folders; lists them
        for name in sorted(dirs + files):
            if (Path(root) / name).is_symlink():
                return Path(root) / name
    return None


def check(ckpt: Path) -> None:
    """Raise CheckpointError (naming the file and what is wrong) unless `ckpt` is intact."""
    why = problem(ckpt)
    if why is not None:
        raise CheckpointError(f"checkpoint {Path(ckpt).name} is damaged: {why}")


def latest_intact(run_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest intact checkpoint of a run and the newer ones passed over, each with what is wrong."""
    skipped: list[tuple[Path, str]] = []
    for ckpt in reversed(list_checkpoints(run_dir)):
        why = problem(ckpt)
        if why is None:
            return ckpt, skipped
        skipped.append((ckpt, why))
    return None, skipped


# ------------------------------------------------------------------------------------------ loading
def read_state(path: Path) -> dict:
    state = _read_json(Path(path) / "trainer_state.json")
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CheckpointError(f"{Path(path) / 'trainer_state.json'}: damaged (no integer 'step')")
    return state


def _load_tensors(f: Path) -> Any:
    """torch.load restricted to tensors and plain containers; a pickle that asks for anything else is refused
    without running it."""
    try:
        return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):
            raise CheckpointError(f"{f}: refused: loading it would run code from the file (only tensors, lists and "
                                  f"numbers are read from a run directory)") from None
        raise CheckpointError(f"{f}: damaged ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    except Exception as e:  # noqa: BLE001 - a truncated or garbage file raises anything from zip to EOF errors
        raise CheckpointError(f"{f}: damaged ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def load_optimizer(path: Path, optimizer, scheduler, load=None) -> bool:
    """`load`: how the optimizer's state dict is applied (a sharded optimizer's: distributed.load_full_optimizer_state)."""
    f = Path(path) / "optimizer.pt"
    if not f.is_file():
        return False
    state = _load_tensors(f)
    if not isinstance(state, dict) or not isinstance(state.get("optimizer"), dict):
        raise CheckpointError(f"{f}: damaged (no optimizer state)")
    try:
        (load or optimizer.load_state_dict)(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{f}: does not fit this model's optimizer ({e})") from None
    return True


def load_rng(path: Path) -> dict | None:
    f = Path(path) / "rng.pt"
    if not f.is_file():
        return None
    state = _load_tensors(f)
    if not isinstance(state, dict):
        raise CheckpointError(f"{f}: damaged (not a table of random states)")
    return state


def continue_training(ckpt: Path, optimizer, scheduler, data_rng: random.Random, sample_gen: torch.Generator,
                      rank: int = 0, world: int = 1, load=None) -> str | None:
    """Continue a phase where `ckpt` left it: optimizer, scheduler and random streams (a multi-process run's
    per rank). Returns why the random streams were not restored, or None."""
    load_optimizer(ckpt, optimizer, scheduler, load)
    try:
        rng = load_rng(ckpt)
    except CheckpointError as e:  # e.g. an rng.pt that would need unpickling: never run it
        return str(e)
    if rng and "per_rank" in rng:
        rng = rng["per_rank"][rank] if len(rng["per_rank"]) == world else None
    if rng:
        restore_rng(rng, data_rng, sample_gen)
    return None


class Saver:
    """A run's checkpoints as training makes them: saved (`save`), pruned to `save_total_limit` (step_000000,
    the newest and any in use are kept), and the step_* ones, which the editor opens, exported to ONNX in the
    background (onnx_export.Background; models up to MAX_AUTO_PARAMETERS with fast tokenizers). A failed export
    is a warning event and leaves no onnx/; training goes on."""

    def __init__(self, run: RunDir, cfg):
        from . import onnx_export

        self.run, self.cfg = run, cfg
        self.onnx_skip: str | None = None if cfg.onnx_export else "onnx_export is off"
        self.exports = onnx_export.Background(self._export_failed)
        self._step = 0  # of the last save: the step export warnings are recorded at

    def save(self, *, phase: str, step: int, sft_step: int, ctx, optimizer, scheduler, rng: dict,
             trainer_state: dict, ref, keep: set[str], gathered: tuple[dict, dict] | None = None) -> str:
        """One checkpoint; status.json names it with the steps it holds (written when it commits)."""
        self._step = step
        self.run.status.update(step=step, sft_step=sft_step)
        self.exports.cancel(checkpoint_name(step if phase != "sft" else sft_step, phase))
        rel = save(self.run, step=step, phase=phase, policy=ctx.policy, tokenizer=ctx.tokenizer, optimizer=optimizer,
                   scheduler=scheduler, rng=rng, trainer_state=trainer_state, ref=ref, gathered=gathered)
        if phase == "grpo":  # only step_* checkpoints are opened by the editor (never sft_*)
            self.queue_export(self.run.path / rel, ctx)
        gone = prune_checkpoints(self.run.path, self.cfg.save_total_limit, self.exports.busy() | keep)
        if gone:
            log.info("save_total_limit=%d: removed %s", self.cfg.save_total_limit, ", ".join(gone))
        return rel

    def queue_export(self, ckpt: Path, ctx) -> None:
        """onnx/ beside a step_* checkpoint, made in the background, unless the model cannot have one."""
        from . import onnx_export

        if self.onnx_skip is None:
            n = onnx_export.num_parameters(ctx.policy)
            if n > onnx_export.MAX_AUTO_PARAMETERS:
                self.onnx_skip = f"{n:,} parameters, over the {onnx_export.MAX_AUTO_PARAMETERS:,} limit"
            elif onnx_export.tokenizer_kind(ctx.tokenizer) == "slow":
                self.onnx_skip = "the tokenizer is a slow (Python-only) one"
            elif importlib.util.find_spec("onnxscript") is None:
                self.onnx_skip = "the 'onnxscript' package is missing (pip install -r trainer/requirements.txt)"
            if self.onnx_skip:
                log.info("no ONNX export beside checkpoints: %s", self.onnx_skip)
        if self.onnx_skip is None:
            self.exports.submit(ckpt)

    def export_missing(self, latest: Path | None, ctx) -> None:
        """On resume: the exports a kill cut short (the start's, the newest checkpoint's) are made again."""
        from . import onnx_export

        for ckpt in {self.run.path / "checkpoints" / "step_000000", latest} - {None}:
            if ckpt.name.startswith("step_") and ckpt.is_dir() and not (ckpt / onnx_export.ONNX_DIR).is_dir():
                self.queue_export(ckpt, ctx)

    def _export_failed(self, message: str) -> None:
        log.warning("%s", message)
        self.run.event("warning", self._step, code="onnx_export", message=message)
