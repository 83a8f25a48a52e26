"""One GRPO step's policy update: μ = `num_iterations` optimizer steps on the GRPO loss of one sampled batch
(forward + backward micro-batched, gradients clipped), and the optimizer it steps.

The training loop (loop.py) and `replay` (replay.py) both call `policy_updates`: a replayed step is the real
step, not a re-implementation of it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from . import algorithm, distributed, groups, ledger, microbatch
from .config import Config


@dataclass
class Update:
    """What the μ policy updates of one step did."""

    logp: torch.Tensor            # π_θ's log-probs in the first update (π_ref's if none ran)
    entropy: torch.Tensor
    losses: list[float]
    grad_norms: list[float]
    stats: dict[str, float]
    learning_rate: float
    skipped: bool                 # a non-finite loss or gradient: no update was applied
    seconds: float
    # the signal ledger's inputs: the tokens the loss kept, the clipped ones (mean over the μ updates) and
    # |∂L/∂log π| per token (summed over them); None where no update ran
    loss_mask: torch.Tensor | None = None
    clipped: tuple[torch.Tensor, torch.Tensor] | None = None
    token_grad: torch.Tensor | None = None
    kept: torch.Tensor | None = None  # top_entropy_quantile's token mask (share kept over the μ updates)


def make_optimizer(params, lr: float, weight_decay: float, total: int, warmup: int, schedule: str):
    """AdamW (betas 0.9/0.99, TRL's) with a linear warm-up then a constant, cosine or linear schedule."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99))

    def factor(s: int) -> float:
        if warmup and s < warmup:
            return (s + 1) / warmup
        if schedule == "constant" or total <= warmup:
            return 1.0
        frac = min(1.0, (s - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * frac)) if schedule == "cosine" else 1.0 - frac

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def policy_updates(scorer, policy: torch.nn.Module, opt: torch.optim.Optimizer, group: groups.Group, cfg: Config,
                   loss_cfg: Config, after_update: Callable[[], None] | None = None) -> Update:
    """μ policy updates on `group` (its ref_logp, and old_logp when μ > 1, already scored). `cfg` gives μ, the
    clip ranges and the gradient clipping; `loss_cfg` the loss (a method may move β out of it). The scheduler is
    the caller's to step. A non-finite loss or gradient ends the updates with `skipped` set (gradients
    cleared by the caller)."""
    t0 = time.time()
    mask = algorithm.loss_mask(group.batch.completion_mask.float(), group.batch.truncated,
                               cfg.mask_truncated_completions)
    logp, entropy = group.ref_logp, torch.zeros_like(group.ref_logp)  # recorded if no update runs
    losses, grad_norms, stats_acc = [], [], []
    clip_low, clip_high, token_grad, kept = torch.zeros_like(mask), torch.zeros_like(mask), None, None
    lr = opt.param_groups[0]["lr"]
    skipped = False
    for it in range(cfg.num_iterations):
        out = microbatch.forward_backward(scorer, group.batch, group.old_logp, group.ref_logp, group.advantages,
                                          mask, loss_cfg, with_entropy=(it == 0), zero_grad=opt.zero_grad)
        if out is None:
            skipped = True
            break
        it_logp, ent, loss, stats, grad, keep = out
        if it == 0:
            logp, entropy = it_logp, ent
        old = group.old_logp if group.old_logp is not None else it_logp
        ratio = algorithm.importance_ratio(it_logp, old, mask, cfg.importance_sampling_level).expand_as(mask)
        low, high = algorithm.clip_masks(ratio, group.advantages, cfg.epsilon, cfg.eps_high)
        if keep is not None:
            kept = (0 if kept is None else kept) + keep.float() / cfg.num_iterations
        clip_low, clip_high = clip_low + low.float() / cfg.num_iterations, clip_high + high.float() / cfg.num_iterations
        if grad is not None:
            token_grad = grad if token_grad is None else token_grad + grad
        gn = distributed.grad_norm(torch.nn.utils.clip_grad_norm_(  # DTensor grads under fsdp: their global norm
            policy.parameters(), cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")))
        if not torch.isfinite(gn):
            skipped = True
            break
        opt.step()
        if after_update is not None:
            after_update()
        losses.append(loss.item())
        grad_norms.append(gn.item())
        stats_acc.append(stats)
    stats = {k: sum(s[k].item() for s in stats_acc) / len(stats_acc) for k in stats_acc[0]} if stats_acc else {}
    return Update(logp, entropy, losses, grad_norms, stats, lr, skipped, time.time() - t0,
                  loss_mask=mask, clipped=None if skipped else (clip_low, clip_high),
                  token_grad=None if skipped else token_grad, kept=None if skipped else kept)


def signal_metrics(group: groups.Group, update: Update, G: int, max_completion_length: int) -> dict[str, float]:
    """The step's signal ledger (ledger.py): its tokens by where their policy gradient went, its groups by
    kind, and the gradient's shares by group kind and completion length."""
    mask = group.batch.completion_mask
    kinds = ledger.group_kinds(group.advantages, group.scored.correct, G)
    keep = update.loss_mask if update.loss_mask is not None else mask
    low, high = update.clipped if update.clipped is not None else (torch.zeros_like(mask),) * 2
    row = ledger.token_ledger(mask, kinds, G, keep, low, high, update.kept, filtered_tokens=group.filtered_tokens)
    row.update(ledger.group_counts(kinds, group.filtered_groups))
    row.update(ledger.gradient_shares(update.token_grad, kinds, G, group.batch.lengths, max_completion_length))
    return row
