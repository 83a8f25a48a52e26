"""Checkpoint contents: a Hugging Face model directory plus optimizer, RNG and trainer state.

    step_000050/
      config.json, model.safetensors, tokenizer files   (AutoModelForCausalLM / AutoTokenizer loadable)
      trainer_state.json   step, phase, sft_step, reference source
      optimizer.pt, rng.pt
      ref/                 the reference weights, only once iterative RL has reset it
      onnx/                policy.onnx, reference.onnx, tokenizer.json, manifest.json (small models; onnx_export.py)
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable

import torch

from .rundir import RunDir, checkpoint_name


def rng_state(data_rng: random.Random, sample_gen: torch.Generator) -> dict[str, Any]:
    state = {"python": data_rng.getstate(), "torch": torch.get_rng_state(), "sample": sample_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], data_rng: random.Random, sample_gen: torch.Generator) -> None:
    data_rng.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    sample_gen.set_state(state["sample"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(run: RunDir, *, step: int, phase: str, policy, tokenizer, optimizer, scheduler, rng: dict,
         trainer_state: dict, ref=None, before_commit: Callable[[Path], None] | None = None) -> str:
    """Write the checkpoint into `<name>.tmp`; `before_commit(tmp)` may add to it (the ONNX export) before
    the rename makes it visible, so whatever it writes is complete whenever the checkpoint is."""
    tmp = run.checkpoint_tmp(checkpoint_name(step if phase != "sft" else trainer_state["sft_step"], phase))
    policy.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if ref is not None:
        ref.save_pretrained(tmp / "ref", safe_serialization=True)
    if optimizer is not None:
        torch.save({"optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None}, tmp / "optimizer.pt")
    torch.save(rng, tmp / "rng.pt")
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "phase": phase, **trainer_state}, indent=2))
    if before_commit is not None:
        before_commit(tmp)
    return run.commit_checkpoint(tmp, step)


def read_state(path: Path) -> dict:
    return json.loads((Path(path) / "trainer_state.json").read_text())


def load_optimizer(path: Path, optimizer, scheduler) -> bool:
    f = Path(path) / "optimizer.pt"
    if not f.is_file():
        return False
    state = torch.load(f, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    return True


def load_rng(path: Path) -> dict | None:
    f = Path(path) / "rng.pt"
    return torch.load(f, map_location="cpu", weights_only=False) if f.is_file() else None
