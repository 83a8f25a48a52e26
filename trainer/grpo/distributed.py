"""Several processes: `torchrun --nproc_per_node N -m grpo train …` (multi-node through torchrun's
rendezvous flags: --nnodes, --node_rank, --rdzv_endpoint).

Data parallel, DeepSpeed-free: every rank holds the whole model, samples its own `questions_per_step`
questions (its own data and sampling seeds), scores its own groups and computes the GRPO loss on them;
DistributedDataParallel averages the gradients, so every rank takes the same optimizer step. Groups never
span ranks, so group-normalised advantages are exact; `scale_rewards=batch` uses the rank's own batch.

Rank 0 alone writes the run directory, the protocol stream and checkpoints, and reads control requests;
stop and save requests (and SIGTERM, which torchrun forwards to every rank) are agreed on by all ranks
between steps. Metrics rows are reduced over ranks (means; sums for throughput; min/max for extremes).
Without torchrun (`WORLD_SIZE` unset) everything here is a no-op.

Backends: NCCL for CUDA tensors, gloo for CPU ones (the CPU test runs 2 processes on gloo). Models that do
not fit one GPU (FSDP) are not handled yet.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import torch
import torch.distributed as dist

from . import protocol
from .rundir import RunDir


def launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def init() -> None:
    """Join the process group torchrun set up (environment rendezvous)."""
    if not launched() or active():
        return
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=60))


def shutdown() -> None:
    if active():
        dist.destroy_process_group()


def device_for(device: torch.device) -> torch.device:
    """One GPU per local rank."""
    if device.type == "cuda" and active():
        torch.cuda.set_device(local_rank())
        return torch.device("cuda", local_rank())
    return device


def seed_offset() -> int:
    """Each rank samples different questions and completions; rank 0 keeps the single-process seeds."""
    return 1_000_003 * rank()


def broadcast(obj):
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        dist.barrier()


def any_of(*flags: bool) -> tuple[bool, ...]:
    if not active():
        return tuple(flags)
    t = torch.tensor([float(f) for f in flags])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


def all_true(flag) -> bool:
    return not any_of(not bool(flag))[0]


def gather(obj) -> list:
    if not active():
        return [obj]
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def reduce_row(row: dict) -> dict:
    """A metrics row over all ranks: throughput summed, /min and /max taken as such, other numbers averaged
    over the ranks that have them (evaluation runs on rank 0 only)."""
    if not active():
        return row
    rows = gather(row)
    out = dict(row)
    for key in set().union(*rows):
        vals = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
        if not vals or key in ("step", "time", "elapsed", "learning_rate"):
            continue
        if key == "tokens_per_second":
            out[key] = sum(vals)
        elif key.endswith("/min"):
            out[key] = min(vals)
        elif key.endswith("/max"):
            out[key] = max(vals)
        else:
            out[key] = sum(vals) / len(vals)
    return out


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if not active():
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(module, device_ids=ids)


class WorkerRunDir(RunDir):
    """A rank other than 0: reads the run directory (to resume) but writes nothing."""

    def _append(self, name: str, row: dict) -> None:
        pass

    def _write_status(self) -> None:
        pass

    def start(self, config: dict, max_steps: int, sft_steps: int, resumed_from: int | None) -> None:
        previous = self.read_status() if resumed_from is not None else {}
        self.status = {"state": protocol.RUNNING, "phase": "setup", "step": previous.get("step", 0)}


def run_dir(path: Path, stream: protocol.Stream) -> RunDir:
    return RunDir(path, stream) if is_main() else WorkerRunDir(path, stream)


def check_in_sync(model: torch.nn.Module) -> None:
    """Every rank must hold the same trainable weights (DDP's invariant); checked at each checkpoint with one
    checksum per rank, so a broken gradient synchronisation fails loudly instead of saving rank 0's drift."""
    if not active():
        return
    with torch.no_grad():
        total = sum(float(p.detach().double().sum()) for p in model.parameters() if p.requires_grad)
    sums = gather(total)
    if max(sums) - min(sums) > 1e-6 * max(1.0, abs(sums[0])):
        raise RuntimeError(f"ranks disagree on the weights (checksums {sums}); gradient synchronisation failed")
