"""The objective variants beside the paper's (TRL 1.16's names and semantics), each checked against its formula
written out here by hand, not against the code: GSPO's sequence-level ratio, bnpo, top_entropy_quantile."""

import math

import pytest
import torch

from grpo import algorithm, microbatch
from grpo.config import Config


def grad_of(loss_fn, logp):
    logp = logp.clone().requires_grad_(True)
    loss = loss_fn(logp)
    loss.backward()
    return float(loss), logp.grad


def test_gspo_uses_one_ratio_per_completion_the_geometric_mean_of_its_token_ratios():
    logp = torch.tensor([[-1.0, -2.0, -0.5, 0.0]])
    old = torch.tensor([[-1.1, -1.8, -0.7, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    s = math.exp(((-1.0 + 1.1) + (-2.0 + 1.8) + (-0.5 + 0.7)) / 3)  # exp of the mean log-ratio over real tokens
    ratio = algorithm.importance_ratio(logp, old, mask, "sequence")
    assert ratio.shape == (1, 1) and float(ratio) == pytest.approx(s)
    # loss = −s·A (unclipped, the grpo per-sequence mean of a constant); ∂/∂log π_t = −A·s/|o| on each real token
    A = 0.7
    loss, g = grad_of(lambda lp: algorithm.grpo_loss(lp, old, None, torch.tensor([A]), mask, beta=0.0, epsilon=0.5,
                                                     importance_sampling_level="sequence")[0], logp)
    assert loss == pytest.approx(-s * A)
    assert g[0, :3].tolist() == pytest.approx([-A * s / 3] * 3) and float(g[0, 3]) == 0.0


def test_gspo_clips_the_whole_completion():
    logp = torch.zeros(1, 3)
    old = torch.full((1, 3), -0.3)  # s = e^0.3 ≈ 1.35 > 1 + ε
    mask = torch.ones(1, 3)
    _, g = grad_of(lambda lp: algorithm.grpo_loss(lp, old, None, torch.tensor([1.0]), mask, beta=0.0, epsilon=0.2,
                                                  importance_sampling_level="sequence")[0], logp)
    assert torch.all(g == 0)  # clipped on the side the advantage pushes: no gradient on any token
    _, g = grad_of(lambda lp: algorithm.grpo_loss(lp, old, None, torch.tensor([-1.0]), mask, beta=0.0, epsilon=0.2,
                                                  importance_sampling_level="sequence")[0], logp)
    assert torch.all(g > 0)  # a negative advantage is not clipped above: the ratio's gradient flows


def test_bnpo_is_the_token_mean_over_the_batch():
    torch.manual_seed(0)
    logp, old = torch.randn(3, 4), torch.randn(3, 4)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.float32)
    adv = torch.tensor([1.0, -0.5, 2.0])
    loss, _ = algorithm.grpo_loss(logp, old, None, adv, mask, beta=0.0, epsilon=0.2, loss_type="bnpo")
    r = torch.exp(logp - old)
    by_hand = sum(-min(float(r[i, t]) * float(adv[i]), min(max(float(r[i, t]), 0.8), 1.2) * float(adv[i]))
                  for i in range(3) for t in range(4) if mask[i, t]) / 7
    assert float(loss) == pytest.approx(by_hand, rel=1e-5)
    # micro-batches weigh as TRL's accumulation steps do (equal-sized: n / N), dapo by their token share
    assert microbatch.weight("bnpo", mask, slice(0, 1)) == pytest.approx(1 / 3)
    assert microbatch.weight("dapo", mask, slice(0, 1)) == pytest.approx(4 / 7)


def test_top_entropy_quantile_keeps_the_policy_gradient_of_the_high_entropy_tokens_only():
    entropy = torch.tensor([[0.1, 0.9, 0.5, 0.3], [0.7, 0.2, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.float32)
    # six real tokens; q = 0.5 keeps those at or above the 0.5 quantile of {0.1, 0.9, 0.5, 0.3, 0.7, 0.2} = 0.4
    keep = algorithm.high_entropy_mask(entropy, mask, 0.5)
    assert keep.tolist() == [[False, True, True, False], [True, False, False, False]]
    assert algorithm.high_entropy_mask(entropy, mask, 1.0).tolist() == mask.bool().tolist()
    logp = torch.zeros(2, 4)
    ref = torch.full((2, 4), -0.2)
    adv = torch.tensor([1.0, -1.0])
    _, g_pg = grad_of(lambda lp: algorithm.grpo_loss(lp, lp.detach(), None, adv, mask, beta=0.0, token_mask=keep)[0],
                      logp)
    assert ((g_pg != 0) == keep).all()  # policy gradient only where kept
    # the KL term still acts on every real token (TRL masks the policy term only)
    _, g_kl = grad_of(lambda lp: algorithm.grpo_loss(lp, lp.detach(), ref, torch.zeros(2), mask, beta=0.1,
                                                     token_mask=keep)[0], logp)
    assert ((g_kl != 0) == mask.bool()).all()


def test_the_variants_are_settings():
    cfg = Config(loss_type="bnpo", importance_sampling_level="sequence", top_entropy_quantile=0.2)
    assert (cfg.loss_type, cfg.importance_sampling_level, cfg.top_entropy_quantile) == ("bnpo", "sequence", 0.2)
