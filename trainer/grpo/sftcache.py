"""The SFT start, trained once: a content-addressed cache of SFT's end in the user's cache directory.

An entry is what GRPO needs from SFT, keyed by everything that decides it:

    <cache>/sft/<key>/
      weights.safetensors   the trained parameters after SFT (safetensors: nothing in the cache runs code)
      rng.safetensors       torch's random streams at SFT's end (the global one and the sampler's)
      start.json            the key's inputs, the data stream's state, SFT's end evaluation (the step-0 eval event)
      checksums.json        size and sha256 of the files above, written last (checkpoint.write_checksums)

The key is a sha256 over the settings minus GRPO_ONLY (a new setting is in the key until someone shows SFT and
its end evaluation never read it: a stale hit is worse than a miss), the content of the task's and held-out
files, the model directory's files, the device kind, torch/transformers versions and SFT_VERSION.

Writes go to `<key>.tmp-<host>-<pid>-<random>` beside the entry, are fsynced and renamed: the entry appears
whole or not at all, and of two writers of one key the first rename wins. An entry that fails its checksums
or does not fit the model is set aside with a warning and SFT runs again. Deleting the cache at any time is
safe (a reader that loses an entry mid-read treats it as damaged and trains).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import checkpoint, models

log = logging.getLogger("grpo")

# Bump when the SFT code changes what it trains or how the start is evaluated (sftstage.py, sft.py, the
# tasks' sft_example/questions, the optimizer or schedule SFT uses, evaluation.py): old entries are then missed.
SFT_VERSION = 2  # 2: finished rows leave the decode batch (the start evaluation draws other random numbers)

# Settings SFT and its end evaluation never read (checked in sftstage.py, sft.py, context.evaluate and
# tasks/*.py): changing them keeps the cached start. Everything else is in the key.
GRPO_ONLY = frozenset({
    "max_steps", "replay_total_limit", "replay_max_gb", "num_generations", "questions_per_step", "learning_rate",
    "lr_scheduler_type", "warmup_steps",
    "max_grad_norm", "beta", "epsilon", "epsilon_high", "loss_type", "scale_rewards", "num_iterations",
    "ref_reset_steps", "temperature", "reward", "reward_function", "micro_batch_size", "logging_steps",
    "log_samples_steps", "eval_steps", "eval_sampled_steps", "save_steps", "sft_save_steps", "save_total_limit",
    "onnx_export", "max_nonfinite_steps", "sft_cache", "device",  # the device's kind is keyed below
    "mask_truncated_completions", "dynamic_sampling", "dynamic_sampling_max_rounds", "importance_sampling_level",
    "top_entropy_quantile", "reward_funcs", "reward_weights", "report_to", "logging_dir",
    "fsdp", "fsdp_offload_params",  # only under torchrun, where SFT starts are never cached
})
FILE_SETTINGS = ("task", "held_out")  # their files' content is keyed, not their paths
WHOLE_FILE = 64 << 20  # model files up to this size are hashed whole; larger ones by size, mtime and both ends

ENTRY_FILES = ("weights.safetensors", "rng.safetensors", "start.json")


def cache_dir() -> Path:
    """$GRPO_CACHE_DIR, else $XDG_CACHE_HOME/grpo-studio, else ~/.cache/grpo-studio."""
    if os.environ.get("GRPO_CACHE_DIR"):
        return Path(os.environ["GRPO_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "grpo-studio"


def _hash_file(h, f: Path, whole: bool = True) -> None:
    st = f.stat()
    h.update(f"{f.name}\0{st.st_size}\0".encode())
    with f.open("rb") as fh:
        if whole or st.st_size <= WHOLE_FILE:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        else:  # a multi-GB weights file: hashing it whole would cost a minute every run
            h.update(str(st.st_mtime_ns).encode())
            h.update(fh.read(1 << 20))
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read(1 << 20))


def key_inputs(cfg, device: torch.device) -> tuple[dict[str, Any] | None, str]:
    """What the key hashes (settings, file digests, versions), or None and why the start is not cacheable."""
    import transformers

    settings = {k: v for k, v in cfg.to_dict().items() if k not in GRPO_ONLY}
    files = {}
    for k in FILE_SETTINGS:
        value = settings.get(k)
        if not value or value == "arith":
            continue
        if not Path(value).is_file():  # a user task (module:object): its code cannot be keyed
            return None, f"setting '{k}' names code ({value}), not a file"
        h = hashlib.sha256()
        _hash_file(h, Path(value))
        files[k] = h.hexdigest()
        settings[k] = Path(value).name
    if cfg.model != models.BUILTIN:
        root = Path(cfg.model)
        if not root.is_dir():
            return None, f"setting 'model' ({cfg.model}) is not a model directory"
        h = hashlib.sha256()
        for f in sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts):
            h.update(f.relative_to(root).as_posix().encode())
            _hash_file(h, f, whole=False)
        files["model"] = h.hexdigest()
        settings["model"] = root.name
    return {"sft_version": SFT_VERSION, "settings": settings, "files": files, "device": device.type,
            "torch": torch.__version__, "transformers": transformers.__version__}, ""


def key(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class Start:
    """A cached SFT end: weights, random streams, the data stream's state and the start's evaluation."""

    path: Path
    weights: dict[str, torch.Tensor]
    rng: dict[str, torch.Tensor]
    meta: dict[str, Any]


def _trained(policy) -> dict[str, torch.Tensor]:
    return {n: p for n, p in policy.named_parameters() if p.requires_grad}


def lookup(k: str, policy) -> tuple[Start | None, str | None]:
    """The entry of key `k` when it is intact and fits `policy`; (None, why) when it is damaged (it is then set
    aside so that this run's SFT can store a fresh one); (None, None) when there is none."""
    entry = cache_dir() / "sft" / k
    if not entry.exists() and not entry.is_symlink():
        return None, None
    try:
        why = checkpoint.problem(entry)
        if why is None and not (entry / checkpoint.CHECKSUMS).is_file():
            why = f"{entry / checkpoint.CHECKSUMS}: missing"
        if why is None:
            from safetensors.torch import load_file

            meta = checkpoint.read_json_file(entry / "start.json")
            weights = load_file(str(entry / "weights.safetensors"))
            rng = load_file(str(entry / "rng.safetensors"))
            want = _trained(policy)
            if not isinstance(meta, dict) or meta.get("key") != k:
                why = f"{entry / 'start.json'}: not the entry of key {k}"
            elif set(weights) != set(want) or any(weights[n].shape != p.shape or weights[n].dtype != p.dtype
                                                  for n, p in want.items()):
                why = f"{entry / 'weights.safetensors'}: does not fit this model's trained parameters"
            else:
                return Start(entry, weights, rng, meta), None
    except Exception as e:  # noqa: BLE001 - deleted or damaged under us: retrain
        why = f"{type(e).__name__}: {e}"
    _set_aside(entry)
    return None, why


def _set_aside(entry: Path) -> None:
    bad = entry.with_name(f"{entry.name}.bad-{secrets.token_hex(4)}")
    try:
        os.replace(entry, bad)
        if not bad.is_symlink():
            shutil.rmtree(bad, ignore_errors=True)
        else:
            bad.unlink()
    except OSError:
        pass


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clean_stale(root: Path) -> None:
    """Temp folders of writers on this host that are gone (killed mid-write)."""
    host = socket.gethostname()
    for tmp in root.glob("*.tmp-*"):
        parts = tmp.name.split(".tmp-", 1)[1].rsplit("-", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def store(k: str, inputs: dict[str, Any], policy, rng: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path | None:
    """Write the entry of key `k`; the path when this call (or a concurrent writer) made it, None on failure
    (a full disk, a read-only home: a warning, never a failed run)."""
    from safetensors.torch import save_file

    root = cache_dir() / "sft"
    final = root / k
    tmp = root / f"{k}.tmp-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        _clean_stale(root)
        tmp.mkdir()
        save_file({n: p.detach().to("cpu").contiguous() for n, p in _trained(policy).items()},
                  str(tmp / "weights.safetensors"))
        save_file({n: t.contiguous() for n, t in rng.items()}, str(tmp / "rng.safetensors"))
        (tmp / "start.json").write_text(json.dumps({"key": k, "inputs": inputs, **meta}, indent=1))
        checkpoint.write_checksums(tmp)
        for f in tmp.iterdir():
            _fsync(f)
        _fsync(tmp)
        try:
            os.rename(tmp, final)  # not os.replace: an existing entry (a concurrent writer's) is kept
        except OSError:
            if not final.is_dir():
                raise
        _fsync(root)
        return final
    except OSError as e:
        log.warning("could not store the SFT start in %s: %s", root, e)
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def store_start(k: str, inputs: dict[str, Any], policy, data_rng, sample_gen, meta: dict[str, Any]) -> Path | None:
    """`store` with a run's random streams as a checkpoint saves them (checkpoint.rng_state), split into
    tensors (safetensors) and the data stream's state (JSON, in the meta)."""
    state = checkpoint.rng_state(data_rng, sample_gen)
    tensors = {"torch": state["torch"], "sample": state["sample"],
               **{f"cuda.{i}": t for i, t in enumerate(state.get("cuda", []))}}
    return store(k, inputs, policy, tensors, {"data_rng": state["python"], **meta})


def restore_start(start: Start, policy, data_rng, sample_gen) -> None:
    """A cached start's weights into `policy` and its random streams into the run's."""
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if p.requires_grad:
                p.copy_(start.weights[name].to(p.device))
    state = {"python": start.meta["data_rng"], "torch": start.rng["torch"], "sample": start.rng["sample"]}
    cuda = [start.rng[f"cuda.{i}"] for i in range(torch.cuda.device_count()) if f"cuda.{i}" in start.rng]
    if cuda and len(cuda) == torch.cuda.device_count():
        state["cuda"] = cuda
    checkpoint.restore_rng(state, data_rng, sample_gen)
