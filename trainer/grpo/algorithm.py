"""GRPO's mathematics as pure functions (DeepSeekMath, arXiv 2402.03300, §4).

Nothing here knows about models, data or files: tensors in, tensors out. Notation follows the paper:
G outputs o_1..o_G per question, rewards r_i, advantages Â_{i,t}, ratio ρ_{i,t} = π_θ/π_old,
k3 KL estimator D_KL = π_ref/π_θ − log(π_ref/π_θ) − 1.
"""

from __future__ import annotations

from typing import Sequence

import torch

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo")
SCALE_REWARDS = ("group", "batch", "none")
IMPORTANCE_LEVELS = ("token", "sequence")


def outcome_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Outcome supervision: Â_i = (r_i − mean(r)) / (std(r) + eps) within each group.

    rewards: [num_groups, G]. std is the sample (Bessel-corrected) std, as in TRL and verl. A group whose
    rewards are all equal carries no signal and gets exactly zero advantages.
    """
    return scaled_advantages(rewards, "group", eps)


def scaled_advantages(rewards: torch.Tensor, scale_rewards: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """Group-centred advantages r_i − mean_group(r), divided by the std of the group (`group`, the paper),
    of the whole batch (`batch`), or not at all (`none`, Dr. GRPO). rewards: [num_groups, G]."""
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(f"scale_rewards must be one of {SCALE_REWARDS}, got {scale_rewards!r}")
    rewards = rewards.float()
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if scale_rewards == "group":
        std = rewards.std(dim=1, keepdim=True, unbiased=True)
    elif scale_rewards == "batch":
        std = rewards.std(unbiased=True).expand_as(rewards[:, :1]) if rewards.numel() > 1 else torch.zeros(1, 1)
    else:
        std = None
    adv = centred if std is None else centred / (std + eps)
    no_signal = (rewards == rewards[:, :1]).all(dim=1, keepdim=True)
    return torch.where(no_signal, torch.zeros_like(adv), adv)


def process_advantages(step_rewards: Sequence[Sequence[float]], step_ends: Sequence[Sequence[int]],
                       num_tokens: Sequence[int], eps: float = 1e-4, scale: bool = True) -> list[torch.Tensor]:
    """Process supervision for ONE group of G outputs.

    step_rewards[i][j] is the reward of step j of output i, which ends at token step_ends[i][j] (0-based).
    All the group's step rewards are normalised jointly, r̃ = (r − mean) / (std + eps) (Bessel-corrected
    std; `scale=False` only centres), and token t of output i gets Â_{i,t} = Σ_{j: index(j) ≥ t} r̃_i^{index(j)}.
    Returns G tensors of lengths num_tokens[i]. If all step rewards are equal, every advantage is 0.
    """
    flat = torch.tensor([float(r) for rs in step_rewards for r in rs])
    if flat.numel() > 1 and not bool((flat == flat[0]).all()):
        mean = flat.mean()
        norm = (flat - mean) / (flat.std(unbiased=True) + eps) if scale else flat - mean
    else:
        norm = torch.zeros_like(flat)
    out, k = [], 0
    for rs, ends, n in zip(step_rewards, step_ends, num_tokens):
        per_token_end = torch.zeros(int(n))
        for j, end in enumerate(ends):
            if not 0 <= int(end) < n:
                raise ValueError(f"step end {end} outside the output's {n} tokens")
            per_token_end[int(end)] += norm[k + j]
        k += len(rs)
        # suffix sum: token t collects every step that ends at or after t
        out.append(per_token_end.flip(0).cumsum(0).flip(0))
    return out


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(π_θ‖π_ref) (Eq. 4): π_ref/π_θ − log(π_ref/π_θ) − 1 ≥ 0."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


def clip_masks(ratio: torch.Tensor, advantages: torch.Tensor, epsilon: float, epsilon_high: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens whose clipped branch is the one min() picks, so they carry no policy gradient: ρ < 1−ε with
    Â < 0 (low) and ρ > 1+ε_high with Â > 0 (high). advantages [N] or [N, T]."""
    adv = advantages if advantages.dim() == 2 else advantages[:, None]
    return (ratio < 1 - epsilon) & (adv < 0), (ratio > 1 + epsilon_high) & (adv > 0)


def importance_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, level: str = "token"
                     ) -> torch.Tensor:
    """ρ = π_θ/π_old per token [N, T] (`token`, the paper), or GSPO's one ratio per completion [N, 1]
    (`sequence`): s_i = exp((1/|o_i|) Σ_t log ρ_{i,t}), the geometric mean of its token ratios (TRL's
    importance_sampling_level)."""
    log_ratio = logp - old_logp
    if level == "token":
        return torch.exp(log_ratio)
    if level == "sequence":
        mask = mask.to(log_ratio.dtype)
        return torch.exp((log_ratio * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0))
    raise ValueError(f"importance_sampling_level must be one of {IMPORTANCE_LEVELS}, got {level!r}")


def high_entropy_mask(entropy: torch.Tensor, mask: torch.Tensor, quantile: float,
                      pool: torch.Tensor | None = None) -> torch.Tensor:
    """top_entropy_quantile (TRL's, after "Beyond the 80/20 rule"): True for the real tokens whose entropy is at
    least the (1 − q) quantile of the real tokens' entropies (of `pool`, when given: every process's tokens of
    this forward pass, as TRL gathers them); only those keep the policy-gradient term. q = 1 keeps every token."""
    if quantile >= 1.0:
        return mask.bool()
    values = entropy[mask.bool()].float() if pool is None else pool.float()
    if values.numel() == 0:
        return torch.zeros_like(mask, dtype=torch.bool)
    threshold = torch.quantile(values, 1.0 - quantile)
    return (entropy * mask.to(entropy.dtype) >= threshold) & mask.bool()


def loss_mask(mask: torch.Tensor, truncated: torch.Tensor | None, mask_truncated: bool) -> torch.Tensor:
    """The tokens the loss keeps: `mask`, without the truncated completions when `mask_truncated` (TRL's
    mask_truncated_completions; they still count in the grpo/dr_grpo normalisers' N, as in TRL)."""
    if not mask_truncated or truncated is None:
        return mask
    return mask * (~truncated.bool()).to(mask.dtype)[:, None]


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
              advantages: torch.Tensor, mask: torch.Tensor, epsilon: float = 0.2, beta: float = 0.04,
              loss_type: str = "grpo", epsilon_high: float | None = None,
              max_completion_length: int | None = None, importance_sampling_level: str = "token",
              token_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The GRPO loss (the negative of Eq. 3's objective) and its statistics.

    Tensors are [N, T] (N completions, T completion tokens; `mask` marks real tokens); advantages are
    [N] (outcome) or [N, T] (process). Per token:
        ℓ_t = −min(ρ_t Â_t, clip(ρ_t, 1−ε, 1+ε_high) Â_t) + β·k3(π_θ, π_ref)
    Normalisation (`loss_type`):
        grpo    — (1/N) Σ_i (1/|o_i|) Σ_t ℓ_{i,t}   (the paper: per-sequence mean, then mean)
        dr_grpo — Σ_{i,t} ℓ_{i,t} / (N · max_completion_length)   (a constant normaliser; T if not given)
        dapo    — Σ_{i,t} ℓ_{i,t} / Σ_i |o_i|        (token-level mean over the whole step's batch)
        bnpo    — the same over this forward pass's batch (TRL's; equal to dapo without micro-batches)
    ε_high defaults to ε (symmetric clipping). `ref_logp=None` or beta=0 leaves the KL term out.
    `importance_sampling_level="sequence"` (GSPO) puts one ratio per completion, the geometric mean of its token
    ratios, in place of ρ_t, clipped per completion. `token_mask` [N, T] (top_entropy_quantile's): tokens
    outside it lose the policy-gradient term; the KL term still acts on them (as in TRL).
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    eps_high = epsilon if epsilon_high is None else epsilon_high
    mask = mask.to(logp.dtype)
    adv = advantages if advantages.dim() == 2 else advantages[:, None]
    adv = adv.to(logp.dtype)

    ratio = importance_ratio(logp, old_logp, mask, importance_sampling_level)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + eps_high)
    per_token = -torch.min(ratio * adv, clipped * adv).expand_as(logp)
    if token_mask is not None:
        per_token = per_token * token_mask.to(per_token.dtype)

    kl = None
    if ref_logp is not None:
        kl = kl_k3(logp, ref_logp)
        if beta != 0:
            per_token = per_token + beta * kl

    if loss_type == "grpo":
        loss = (masked_mean(per_token, mask, dim=1)).mean()
    elif loss_type == "dr_grpo":
        denom = logp.shape[0] * (max_completion_length or logp.shape[1])
        loss = (per_token * mask).sum() / denom
    else:  # dapo, bnpo: a token mean here (they differ in how micro-batches are weighted: microbatch.weight)
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1)

    with torch.no_grad():
        # a token is clipped when the clipped branch is the one min() picks and it carries no gradient
        low, high = clip_masks(ratio, adv, epsilon, eps_high)
        stats = {
            "clip_ratio/low": masked_mean(low.to(logp.dtype), mask),
            "clip_ratio/high": masked_mean(high.to(logp.dtype), mask),
            "clip_ratio/region": masked_mean((low | high).to(logp.dtype), mask),
            "ratio/mean": masked_mean(ratio.expand_as(logp), mask),
            "kl": masked_mean(kl, mask) if kl is not None else torch.zeros(()),
        }
    return loss, stats


# ---------------------------------------------------------------------------------------------- §5 paradigm
# The paper's unified view (§5.1, Table 10): every method's gradient is (1/|o|) Σ_t GC(q, o, t) ∇log π_θ(o_t).
# GRPO's GC is Â + β(π_ref/π_θ − 1) (grpo_loss above, Eq. 21); the others follow.

def sft_coefficients(n: int) -> torch.Tensor:
    """SFT: GC = 1 for every token of every target."""
    return torch.ones(n)


def rft_coefficients(correct: Sequence[bool]) -> torch.Tensor:
    """RFT and Online RFT: GC = 𝕀(o correct), the same for every token of o."""
    return torch.tensor([1.0 if c else 0.0 for c in correct])


def ppo_token_rewards(outcome: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor,
                      beta: float) -> torch.Tensor:
    """PPO's per-token reward (Eq. 2's setting): r_t = −β·log(π_θ/π_ref) at every token, plus the outcome reward
    r_φ(q, o) on the last real token. outcome [N]; the rest [N, T]."""
    mask = mask.float()
    r = -beta * (logp - ref_logp) * mask
    last = (mask.sum(1).long() - 1).clamp(min=0)
    r[torch.arange(r.shape[0]), last] += outcome.float()
    return r


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised Advantage Estimation (Schulman et al. 2016), PPO's GC: δ_t = r_t + γV_{t+1} − V_t,
    A_t = Σ_l (γλ)^l δ_{t+l}, with V = 0 past the last real token. Returns (advantages, returns = A + V), [N, T]."""
    mask = mask.float()
    values = values * mask
    adv = torch.zeros_like(rewards, dtype=torch.float32)
    last = rewards.new_zeros(rewards.shape[0], dtype=torch.float32)
    for t in reversed(range(rewards.shape[1])):
        nxt = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * nxt - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        adv[:, t] = last
    return adv, adv + values


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean) / std over the real tokens (PPO normalises its advantages per batch)."""
    m = masked_mean(x, mask)
    var = masked_mean((x - m) ** 2, mask)
    return (x - m) / (var.sqrt() + eps) * mask.to(x.dtype)


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float = 0.2) -> torch.Tensor:
    """PPO's clipped value loss: ½·max((V − R)², (clip(V, V_old ± ε) − R)²), mean over real tokens."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped - returns) ** 2), mask)
