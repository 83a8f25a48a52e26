"""The signal ledger: where a GRPO step's sampled completion tokens went, as pure functions.

A sampled token carries policy gradient only if its completion is not masked, its group's advantages are not
all zero (a group whose rewards are all equal: all right, all wrong, or equal under a reward that ignores the
answers), no other token mask of the objective drops it, and its ratio is not clipped on the side its
advantage pushes (ρ < 1−ε with Â < 0, or ρ > 1+ε_high with Â > 0, give zero gradient). Taken in that order
the categories are disjoint and sum to the sampled tokens (DESIGN.md §1, records.LEDGER_METRICS):

    filtered → truncated_masked → no_signal_{correct, wrong, other} → masked_other → clipped_low
             → clipped_high → effective

The KL term still acts on every unmasked token; the ledger counts policy gradient. The gradient shares split
Σ|∂L/∂log π| (captured from the step's own backward, microbatch.py) by group kind and completion length; the
gradient with respect to the parameters does not split additively (its cross terms), the gradient on the
token log-probs does, exactly, and every parameter gradient is a sum over tokens of it times ∇log π.
"""

from __future__ import annotations

from typing import Sequence

import torch

KINDS = ("mixed", "all_correct", "all_wrong", "no_signal_other")
NO_SIGNAL = {"all_correct": "ledger/no_signal_correct", "all_wrong": "ledger/no_signal_wrong",
             "no_signal_other": "ledger/no_signal_other"}
LENGTH_BANDS = (("len_0_25", 0.25), ("len_25_50", 0.5), ("len_50_75", 0.75), ("len_75_100", float("inf")))


def group_kinds(advantages: torch.Tensor, correct: Sequence[bool], G: int) -> list[str]:
    """Each group's kind: `mixed` when any of its advantages (per completion [N] or per token [N, T]) is not
    zero, else by its answers: all right, none right, or mixed under a reward that ignores them."""
    adv = advantages.detach().reshape(len(correct), -1)
    kinds = []
    for g in range(len(correct) // G):
        if bool((adv[g * G:(g + 1) * G] != 0).any()):
            kinds.append("mixed")
            continue
        right = sum(bool(c) for c in correct[g * G:(g + 1) * G])
        kinds.append("all_correct" if right == G else "all_wrong" if right == 0 else "no_signal_other")
    return kinds


def token_ledger(mask: torch.Tensor, kinds: Sequence[str], G: int, loss_mask: torch.Tensor,
                 clipped_low: torch.Tensor, clipped_high: torch.Tensor, other_mask: torch.Tensor | None = None,
                 filtered_tokens: float = 0.0) -> dict[str, float]:
    """The ledger's token categories for one step. `mask` [N, T]: real completion tokens; `kinds`: one per
    group of G; `loss_mask` [N, T]: the tokens the loss keeps (mask without masked truncated completions);
    `clipped_low`/`clipped_high` [N, T]: clipped tokens (bool, or their mean over μ updates); `other_mask`
    [N, T]: another token mask of the objective (True or 1: kept; top_entropy_quantile's, or its mean over the
    μ updates); `filtered_tokens`: tokens of groups dynamic
    sampling discarded. Returns every ledger/ key of records.LEDGER_METRICS that counts tokens."""
    real = mask.float()
    left = real.clone()  # what no earlier category took

    def take(where: torch.Tensor) -> float:
        nonlocal left
        part = left * where.float()
        left = left - part
        return float(part.sum())

    out = {"ledger/filtered": float(filtered_tokens), "ledger/truncated_masked": take(real * (1 - loss_mask.float()))}
    per_row = [k for k in kinds for _ in range(G)]
    for kind, key in NO_SIGNAL.items():
        rows = torch.tensor([k == kind for k in per_row], dtype=torch.float32, device=mask.device)[:, None]
        out[key] = take(rows.expand_as(real))
    out["ledger/masked_other"] = take(1 - other_mask.float()) if other_mask is not None else 0.0
    out["ledger/clipped_low"] = take(clipped_low.float())
    out["ledger/clipped_high"] = take(clipped_high.float())
    out["ledger/effective"] = float(left.sum())
    out["ledger/tokens"] = float(real.sum()) + float(filtered_tokens)
    return out


def group_counts(kinds: Sequence[str], filtered: int = 0) -> dict[str, float]:
    """groups/<kind> for every kind, the discarded ones and all sampled."""
    out = {f"groups/{k}": float(sum(1 for x in kinds if x == k)) for k in KINDS}
    out["groups/filtered"] = float(filtered)
    out["groups/sampled"] = float(len(kinds) + filtered)
    return out


def gradient_shares(token_grad: torch.Tensor | None, kinds: Sequence[str], G: int, lengths: torch.Tensor,
                    max_completion_length: int) -> dict[str, float]:
    """grad_share/<kind> and grad_share/<length band>: each part's share of Σ|∂L/∂log π| over the step's
    tokens (`token_grad` [N, T], already absolute). Empty when there was no gradient (no update ran)."""
    if token_grad is None:
        return {}
    per_seq = token_grad.float().sum(1)
    total = float(per_seq.sum())
    if total <= 0:
        return {}
    out = {}
    per_row = [k for k in kinds for _ in range(G)]
    for kind in KINDS:
        rows = torch.tensor([k == kind for k in per_row], device=per_seq.device)
        out[f"grad_share/{kind}"] = float(per_seq[rows].sum()) / total
    frac = lengths.float().to(per_seq.device) / max(1, max_completion_length)
    low = 0.0
    for name, high in LENGTH_BANDS:
        rows = (frac > low) & (frac <= high) if low > 0 else frac <= high
        out[f"grad_share/{name}"] = float(per_seq[rows].sum()) / total
        low = high
    return out
