"""Micro-batches: one GRPO step's batch (G × questions sequences) scored and back-propagated
`micro_batch_size` sequences at a time, with gradients accumulated so the update equals the whole-batch one.

The GRPO loss normalisations split exactly: `grpo` (mean over sequences of per-sequence means) and `dr_grpo`
(sum / (N · max_completion_length)) weight a micro-batch of n sequences by n / N; `dapo` (token mean) weights
it by its share of the batch's real tokens; `bnpo` (TRL's: each forward pass's own token mean, averaged over
the accumulation steps) by n / N. Under DDP only the last micro-batch synchronises gradients.
top_entropy_quantile's threshold is taken over each forward pass's tokens, all processes' together, where TRL
takes it.
"""

from __future__ import annotations

import contextlib

import torch

from . import algorithm, distributed, logprobs, rollout


def slices(n: int, size: int) -> list[slice]:
    size = n if size <= 0 else size
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def take(batch: rollout.Batch, sl: slice) -> rollout.Batch:
    return rollout.Batch(batch.prompt_ids[sl], batch.prompt_mask[sl], batch.completion_ids[sl],
                         batch.completion_mask[sl], batch.truncated[sl] if batch.truncated is not None else None)


def weight(loss_type: str, mask: torch.Tensor, sl: slice) -> float:
    if loss_type == "dapo":
        return float(mask[sl].sum()) / max(1.0, float(mask.sum()))
    return (sl.stop - sl.start) / mask.shape[0]


def score_in_parts(fn, batch: rollout.Batch, size: int) -> torch.Tensor:
    """fn(micro-batch) -> [n, C] tensor, over the whole batch."""
    return torch.cat([fn(take(batch, sl)) for sl in slices(batch.completion_ids.shape[0], size)])


def entropy_mask(ent: torch.Tensor, mask: torch.Tensor, quantile: float) -> torch.Tensor:
    """top_entropy_quantile's token mask for one forward pass, the threshold over every process's tokens."""
    pool = None
    if distributed.active():
        pool = torch.tensor([v for part in distributed.gather(ent[mask.bool()].float().tolist()) for v in part])
    return algorithm.high_entropy_mask(ent, mask, quantile, pool)


def forward_backward(scorer, batch: rollout.Batch, old_logp, ref_logp, advantages, mask, cfg, with_entropy: bool,
                     zero_grad) -> tuple | None:
    """One policy update's gradient, accumulated over micro-batches. Returns (logp, entropy, loss, stats,
    token_grad, kept) for the whole batch, or None (gradients cleared) when any rank's loss is not finite.
    `token_grad` [N, C] is |∂L/∂log π| per token, read by a hook from this very backward (the signal
    ledger's gradient shares): no extra pass. `kept` [N, C]: top_entropy_quantile's mask (None at q = 1)."""
    zero_grad(set_to_none=True)
    parts = slices(mask.shape[0], cfg.micro_batch_size)
    by_entropy = cfg.top_entropy_quantile < 1.0
    logps, ents, grads, kept, total, stats_sum = [], [], [], [], 0.0, {}
    for k, sl in enumerate(parts):
        mb = take(batch, sl)
        last = k == len(parts) - 1
        no_sync = scorer.no_sync() if (not last and hasattr(scorer, "no_sync")) else contextlib.nullcontext()
        with no_sync:
            logp, ent = logprobs.score(scorer, mb, cfg.temperature, with_entropy=with_entropy or by_entropy)
            old = logp.detach() if old_logp is None else old_logp[sl]
            keep = entropy_mask(ent.detach(), mask[sl], cfg.top_entropy_quantile) if by_entropy else None
            loss, stats = algorithm.grpo_loss(logp, old, ref_logp[sl], advantages[sl], mask[sl], epsilon=cfg.epsilon,
                                              beta=cfg.beta, loss_type=cfg.loss_type, epsilon_high=cfg.epsilon_high,
                                              max_completion_length=cfg.max_completion_length,
                                              importance_sampling_level=cfg.importance_sampling_level,
                                              token_mask=keep)
            if keep is not None:
                kept.append(keep)
            if not distributed.all_true(torch.isfinite(loss)):
                zero_grad(set_to_none=True)
                return None
            w = weight(cfg.loss_type, mask, sl)
            if logp.requires_grad:
                logp.register_hook(lambda g: grads.append(g.detach().abs()))
            (loss * w).backward()
        total += float(loss.detach()) * w
        for key, v in stats.items():
            stats_sum[key] = stats_sum.get(key, 0.0) + float(v) * w
        logps.append(logp.detach())
        if ent is not None and with_entropy:
            ents.append(ent.detach())
    stats_out = {k: torch.tensor(v) for k, v in stats_sum.items()}
    token_grad = torch.cat(grads) if len(grads) == len(parts) else None
    return (torch.cat(logps), (torch.cat(ents) if ents else None), torch.tensor(total), stats_out, token_grad,
            torch.cat(kept) if kept else None)
