"""`report_to`: every metrics.jsonl row also goes to TensorBoard, Weights & Biases or Trackio, under the same
metric names (the row's `step` is the step; null values are left out).

Each target needs its optional package (`pip install grpo-studio[tensorboard]`, `[wandb]`, `[trackio]`);
`check` names the missing one before the run directory is touched. TensorBoard writes event files under the
`logging_dir` setting (default: the run directory's `tb/`) with torch's SummaryWriter. W&B runs in the run
directory (`wandb/`), project `$WANDB_PROJECT` (default grpo-studio), named after the run directory, with the
settings as its config; `WANDB_MODE=offline` writes the run there without any network, for `wandb sync`
later. Trackio logs to its local database (project `$TRACKIO_PROJECT`, default grpo-studio).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from pathlib import Path
from typing import Any, Mapping

from .config import Config, report_targets

log = logging.getLogger("grpo")

# target → (the module it needs, the pip extra that installs it)
PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"), "trackio": ("trackio", "trackio")}
PROJECT = "grpo-studio"


class MissingPackage(ValueError):
    """A report_to target whose package is not installed; the message names the extra that installs it."""


def check(cfg: Config) -> list[str]:
    """The report_to targets, each one's package importable; MissingPackage naming the extra otherwise."""
    targets = report_targets(cfg.report_to)
    for t in targets:
        module, extra = PACKAGES[t]
        if importlib.util.find_spec(module) is None:
            raise MissingPackage(f"setting 'report_to' is {t} but the {module!r} package is not installed: "
                                 f"pip install 'grpo-studio[{extra}]' (or pip install {module})")
    return targets


def scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """A metrics row's numbers but its step (None, NaN and non-numbers left out)."""
    return {k: float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float))
            and not isinstance(v, bool) and math.isfinite(v)}


class TensorBoard:
    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.dir = log_dir
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, row: Mapping[str, Any]) -> None:
        for k, v in scalars(row).items():
            self.writer.add_scalar(k, v, int(row["step"]))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandB:
    def __init__(self, run_path: Path, config: dict[str, Any]):
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or PROJECT, name=run_path.name,
                              dir=str(run_path), config=config, reinit="create_new")

    def log(self, row: Mapping[str, Any]) -> None:
        self.run.log(scalars(row), step=int(row["step"]))

    def close(self) -> None:
        self.run.finish()


class Trackio:
    def __init__(self, run_path: Path, config: dict[str, Any]):
        import trackio

        self.trackio = trackio
        trackio.init(project=os.environ.get("TRACKIO_PROJECT") or PROJECT, name=run_path.name, config=config)

    def log(self, row: Mapping[str, Any]) -> None:
        self.trackio.log(scalars(row), step=int(row["step"]))

    def close(self) -> None:
        self.trackio.finish()


def open_all(cfg: Config, run_path: Path) -> list[Any]:
    """One reporter per report_to target, opened (a target that fails to open closes the ones before it)."""
    opened: list[Any] = []
    try:
        for t in check(cfg):
            if t == "tensorboard":
                opened.append(TensorBoard(Path(cfg.logging_dir) if cfg.logging_dir else run_path / "tb"))
            elif t == "wandb":
                opened.append(WandB(run_path, cfg.to_dict()))
            elif t == "trackio":
                opened.append(Trackio(run_path, cfg.to_dict()))
    except BaseException:
        close_all(opened)
        raise
    return opened


def close_all(reporters: list[Any]) -> None:
    for r in reporters:
        try:
            r.close()
        except Exception as e:  # noqa: BLE001 - a reporter that fails to close costs its own data, not the run's
            log.warning("report_to: closing %s failed: %s", type(r).__name__, e)
