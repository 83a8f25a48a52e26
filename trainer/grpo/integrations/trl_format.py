"""TRL's records in our run-directory format: settings, metrics rows and checkpoints.

Shared by the live `attach` (trl.py) and `python -m grpo import-trl` (trl_import.py), so both write the same
thing. Pure mappings plus one file operation: a TRL `checkpoint-N` (or the model TRL started from) becomes
our `checkpoints/step_NNNNNN` by hard-linking its model files into the run directory (a copy across
filesystems). Hard links keep the run directory self-contained without doubling the disk: they are
regular files inside it, and outlive TRL's own rotation of `checkpoint-N` (save_total_limit).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

from .. import config as config_mod
from ..rundir import LinkRefused, RunDir, checkpoint_name, refuse_link

# GRPOConfig argument → our setting, where the idea is the same (docs/run-directory.md, configuration table).
SAME_SETTINGS = ("num_generations", "beta", "epsilon", "epsilon_high", "loss_type", "scale_rewards",
                 "num_iterations", "max_completion_length", "temperature", "top_p", "learning_rate",
                 "max_steps", "logging_steps", "save_steps", "seed", "lr_scheduler_type", "warmup_steps",
                 "weight_decay", "max_grad_norm", "gradient_checkpointing")

# TRL's logged metric → ours. Anything else TRL logs (per-reward-function columns, num_tokens, epoch, …) is
# kept under its TRL name.
METRIC_NAMES = {
    "reward": "reward/mean", "reward_std": "reward/std",
    "clip_ratio/low_mean": "clip_ratio/low", "clip_ratio/high_mean": "clip_ratio/high",
    "clip_ratio/region_mean": "clip_ratio/region",
    "completions/mean_length": "completion_length/mean", "completions/max_length": "completion_length/max",
    "completions/min_length": "completion_length/min", "completions/clipped_ratio": "truncated_ratio",
    "step_time": "time/step",
}
# The summary TRL's Trainer logs once at the end of train() (not a step's metrics).
SUMMARY_KEYS = ("train_runtime", "train_loss", "train_samples_per_second", "train_steps_per_second")

# Files of a model directory that make it loadable (weights, configs, tokenizer, chat template). Never
# pickles (optimizer.pt, rng_state.pth, training_args.bin) nor code (*.py: trust_remote_code).
_MODEL_SUFFIXES = (".safetensors", ".json", ".txt", ".model", ".jinja", ".tiktoken")
_NOT_MODEL = {"trainer_state.json", "entropy_ctrl_state.json"}


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        return str(value) if value is not None else None


def config_from_trl(args: Any, model: str, log_samples_steps: int) -> dict[str, Any]:
    """config.json for a TRL run: the settings that mean the same under our names (only values our
    settings accept, so `serve` can read them back), everything of GRPOConfig under `trl`."""
    trl_args = {k: _jsonable(v) for k, v in args.to_dict().items()} if hasattr(args, "to_dict") else dict(args)
    ours: dict[str, Any] = {}
    for key in SAME_SETTINGS:
        value = trl_args.get(key)
        if key == "save_steps" and trl_args.get("save_strategy") in ("no", "IntervalStrategy.NO"):
            value = 0
        if value is None and key != "epsilon_high":
            continue
        try:
            config_mod.build_config({key: value})
        except (config_mod.ConfigError, TypeError, ValueError):
            continue  # e.g. max_steps=-1 (epochs) or a loss_type we do not have: kept under `trl` only
        ours[key] = value
    if model:
        ours["model"] = model
    ours["log_samples_steps"] = log_samples_steps
    try:
        import trl
        version = trl.__version__
    except ImportError:
        version = None
    return {**ours, "source": "trl", "trl_version": version, "trl": trl_args}


def metrics_row(logs: dict[str, Any], step: int, time_: float, elapsed: float | None) -> dict[str, Any] | None:
    """One metrics.jsonl row from a TRL log record (`on_log`'s `logs`, or a `log_history` entry); None for
    records that are not a training step's metrics (evaluation-only or the end-of-training summary)."""
    if any(k in logs for k in SUMMARY_KEYS) or not any(k in logs for k in ("loss", "reward")):
        return None
    row: dict[str, Any] = {"step": step, "time": time_}
    if elapsed is not None:
        row["elapsed"] = elapsed
    for key, value in logs.items():
        if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        row[METRIC_NAMES.get(key, key)] = float(value)
    row.update(ledger_shares(row))
    return row


def ledger_shares(row: dict[str, Any]) -> dict[str, float]:
    """The signal ledger (records.LEDGER_METRICS) as far as TRL's log allows, as shares of the step's completion
    tokens (`ledger/tokens` = 1): the clipped tokens (TRL's clip_ratio/low_mean and high_mean are token
    fractions). Unknown there, so absent: the zero-signal tokens by kind (TRL logs frac_reward_zero_std, a share
    of groups, not of tokens, and no correctness), the masked truncations (TRL logs the truncated share,
    completions/clipped_ratio, but not whether mask_truncated_completions dropped them), the effective tokens
    (what the unknown ones leave) and the gradient shares."""
    if "clip_ratio/low" not in row and "clip_ratio/high" not in row:
        return {}
    return {"ledger/tokens": 1.0, "ledger/clipped_low": row.get("clip_ratio/low", 0.0),
            "ledger/clipped_high": row.get("clip_ratio/high", 0.0)}


def model_files(src: Path, links: bool = True) -> list[Path]:
    """The model files of a directory. `links=False` (a TRL run's checkpoint: untrusted data) refuses a file
    that is a symbolic link, naming it, instead of linking whatever it points at into the run directory."""
    found = sorted(p for p in Path(src).iterdir()
                   if p.is_file() and p.suffix in _MODEL_SUFFIXES and p.name not in _NOT_MODEL)
    for p in found if not links else ():
        refuse_link(p)
    return found


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src.resolve() if src.is_symlink() else src, dst)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
        shutil.copy2(src, dst)


def write_checkpoint(run: RunDir, step: int, src: Path | None = None, save=None, trusted: bool = False,
                     **state: Any) -> str:
    """checkpoints/step_NNNNNN from the model directory `src` (its model files hard-linked) or by calling
    `save(tmp_dir)` (save_pretrained of a model and tokenizer), with our trainer_state.json; written to
    `.tmp` and renamed into place like every checkpoint. Returns its path relative to the run directory."""
    tmp = run.checkpoint_tmp(checkpoint_name(step))
    if src is not None:
        try:
            files = model_files(src, links=trusted)  # --model: the user's own directory (HF caches link files)
        except LinkRefused:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if not any(f.name in ("config.json", "adapter_config.json") for f in files):
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileNotFoundError(f"{src} is not a model directory (no config.json or adapter_config.json)")
        for f in files:
            _link_or_copy(f, tmp / f.name)
    else:
        save(tmp)
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "phase": "grpo", "sft_step": 0,
                                                        "ref_reset_at": None, **state}, indent=2))
    return run.commit_checkpoint(tmp, step)


def trl_checkpoint_step(path: Path) -> int | None:
    """N of a TRL `checkpoint-N` directory name, else None."""
    name = Path(path).name
    prefix = "checkpoint-"
    return int(name[len(prefix):]) if name.startswith(prefix) and name[len(prefix):].isdigit() else None
