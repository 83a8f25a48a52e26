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

Backends: NCCL for CUDA tensors, gloo for CPU ones (the CPU tests run 2 processes on gloo).

Sharded (setting `fsdp` = full_shard): PyTorch's FSDP2 instead of DDP. `shard` applies `fully_shard` to every
transformer block (the decoder's layers) and then to the training forward (`logprobs.Scorer`) as the root, so
each rank keeps 1/world of the weights, gradients and AdamW state; the frozen reference is sharded the same
way. Mixed precision (`MixedPrecisionPolicy`: 16-bit all-gathers and compute, float32 gradient reduction)
when the compute dtype is 16-bit; `CPUOffloadPolicy` with `fsdp_offload_params`. Everything that runs the
model outside the training forward (sampling, π_old/π_ref scoring, evaluation) runs inside `gathered`: the
full weights are all-gathered once (in the compute dtype) and kept until it ends, so decoding costs no
collective per token; the price is one full copy of the weights per rank meanwhile. Checkpoints are gathered
to rank 0 (`full_state_dict`) and saved as ordinary Hugging Face directories; the optimizer state likewise.
"""

from __future__ import annotations

import contextlib
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


# ------------------------------------------------------------------------------------------ FSDP2
def blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks of a causal LM (a peft wrapper's too): the decoder's `layers`, else the modules
    whose class the model names in `_no_split_modules`."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    dec = lm.get_decoder() if hasattr(lm, "get_decoder") else None
    layers = getattr(dec, "layers", None)
    if isinstance(layers, torch.nn.ModuleList) and len(layers):
        return list(layers)
    names = set(getattr(lm, "_no_split_modules", None) or ())
    found = [m for m in lm.modules() if type(m).__name__ in names]
    if not found:
        raise ValueError(f"setting 'fsdp': found no transformer blocks to shard in {type(lm).__name__}")
    return found


def shard(root: torch.nn.Module, model: torch.nn.Module, dtype: torch.dtype, offload: bool) -> torch.nn.Module:
    """FSDP2 over `root` (a module whose forward runs `model`): each transformer block of `model` its own unit,
    then `root` holding the rest (embeddings, final norm, output layer, tied or not). Returns `root`."""
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32) if dtype != torch.float32 \
        else MixedPrecisionPolicy()
    kw = dict(mp_policy=mp, offload_policy=CPUOffloadPolicy() if offload else OffloadPolicy())
    # Every rank keeps its own slice of its own copy: start from rank 0's weights, as DDP does (a LoRA
    # adapter's random initialisation differs between ranks otherwise)
    with torch.no_grad():
        for t in list(root.parameters()) + list(root.buffers()):
            dist.broadcast(t.data, src=0)
    for block in blocks(model):
        fully_shard(block, **kw)
    fully_shard(root, **kw)
    # Make `root` FSDP's root now: a block run outside the root's forward (sampling, scoring under `gathered`)
    # would otherwise take the root's role for itself on first use.
    root._get_fsdp_state()._lazy_init()
    return root


def is_sharded(module: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in module.modules())


def _units(module: torch.nn.Module) -> list:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in module.modules() if isinstance(m, FSDPModule)]


@contextlib.contextmanager
def gathered(*modules):
    """Every FSDP unit of `modules` all-gathered (a collective: every rank enters it) and kept whole until the
    block ends, so forwards inside it (decoding many tokens, scoring, rank 0's evaluation) need no further
    collectives. A no-op for modules that are not sharded."""
    units = [u for m in modules if m is not None for u in _units(m)]
    try:
        for u in units:
            u.set_reshard_after_forward(False, recurse=False)
            u.unshard()
        yield
    finally:
        for u in units:
            u.reshard()
            u.set_reshard_after_forward(True, recurse=False)


def full_state_dict(module: torch.nn.Module) -> dict | None:
    """A sharded module's whole state dict on rank 0 (CPU tensors, `module`'s own key names; None elsewhere)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    sd = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return sd if is_main() else None


def full_optimizer_state(module: torch.nn.Module, opt) -> dict | None:
    """The optimizer's state for the whole model, on rank 0 (parameter names as keys); None elsewhere."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    if not opt.state:  # no step yet: nothing to gather (torch would make the state with a zero-gradient step,
        return {"state": {}, "param_groups": []} if is_main() else None  # which counts in AdamW's bias correction)
    sd = get_optimizer_state_dict(module, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return sd if is_main() else None


def load_full_optimizer_state(module: torch.nn.Module, opt, state: dict) -> None:
    """`full_optimizer_state`'s dict (read by every rank) scattered into the sharded optimizer."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if not state.get("state"):  # saved before the first step: the fresh optimizer is that state
        return
    set_optimizer_state_dict(module, opt, state, options=StateDictOptions(full_state_dict=True))


def grad_norm(total) -> torch.Tensor:
    """clip_grad_norm_'s result as a plain tensor (a replicated DTensor when the gradients are sharded)."""
    return total.full_tensor() if hasattr(total, "full_tensor") else total


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
    if not active() or is_sharded(model):  # sharded: one copy of each weight, nothing to disagree on
        return
    with torch.no_grad():
        total = sum(float(p.detach().double().sum()) for p in model.parameters() if p.requires_grad)
    sums = gather(total)
    if max(sums) - min(sums) > 1e-6 * max(1.0, abs(sums[0])):
        raise RuntimeError(f"ranks disagree on the weights (checksums {sums}); gradient synchronisation failed")
