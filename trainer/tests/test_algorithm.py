"""The formulas against hand-computed values, and the loss's gradient against the paper's Eq. 21."""

import math

import pytest
import torch

from grpo.algorithm import grpo_loss, kl_k3, outcome_advantages, process_advantages, scaled_advantages


def test_outcome_advantages_hand_computed():
    adv = outcome_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0]]))
    std = math.sqrt(1 / 3)  # Bessel: sum of squares 1.0 over n-1 = 3
    expected = 0.5 / (std + 1e-4)
    assert torch.allclose(adv[0], torch.tensor([expected, -expected, -expected, expected]), atol=1e-6)
    assert torch.equal(adv[1], torch.zeros(4))  # all-equal group: no signal, exactly zero


def test_outcome_advantages_uneven_group():
    r = torch.tensor([[3.0, 1.0, 0.0]])
    mean, std = 4 / 3, torch.tensor([3.0, 1.0, 0.0]).std(unbiased=True).item()
    adv = outcome_advantages(r, eps=0.0)
    assert torch.allclose(adv, (r - mean) / std, atol=1e-6)
    assert adv.sum().abs() < 1e-5


def test_scale_rewards_variants():
    r = torch.tensor([[1.0, 0.0], [4.0, 0.0]])
    assert torch.allclose(scaled_advantages(r, "none"), torch.tensor([[0.5, -0.5], [2.0, -2.0]]))
    batch_std = r.std(unbiased=True)
    assert torch.allclose(scaled_advantages(r, "batch", eps=0.0), torch.tensor([[0.5, -0.5], [2.0, -2.0]]) / batch_std)
    group = scaled_advantages(r, "group", eps=0.0)
    assert torch.allclose(group[0], group[1])  # per-group std removes the scale difference
    with pytest.raises(ValueError):
        scaled_advantages(r, "sometimes")


def test_process_advantages_worked_example():
    # output 0: two steps ending at tokens 2 and 5 (7 tokens); output 1: one step ending at token 3 (4 tokens)
    adv = process_advantages([[1.0, 0.0], [1.0]], [[2, 5], [3]], [7, 4], eps=0.0)
    s = math.sqrt(1 / 3)  # rewards 1, 0, 1: mean 2/3, Bessel std sqrt((1/9 + 4/9 + 1/9) / 2)
    r1, r0 = (1 - 2 / 3) / s, (0 - 2 / 3) / s
    assert torch.allclose(adv[0], torch.tensor([r1 + r0] * 3 + [r0] * 3 + [0.0]), atol=1e-6)
    assert torch.allclose(adv[1], torch.tensor([r1] * 4), atol=1e-6)


def test_process_advantages_equal_rewards_and_bad_index():
    adv = process_advantages([[1.0, 1.0], [1.0]], [[0, 1], [0]], [2, 1])
    assert all(torch.equal(a, torch.zeros_like(a)) for a in adv)
    with pytest.raises(ValueError):
        process_advantages([[1.0], [0.0]], [[5], [0]], [3, 1])


def test_kl_k3_values():
    logp, ref = torch.log(torch.tensor([0.5, 0.3])), torch.log(torch.tensor([0.25, 0.3]))
    kl = kl_k3(logp, ref)
    assert kl[0].item() == pytest.approx(0.5 - math.log(0.5) - 1, abs=1e-6)
    assert kl[1].item() == pytest.approx(0.0, abs=1e-7)
    assert (kl_k3(torch.randn(100), torch.randn(100)) >= 0).all()


def _random_batch(n=4, t=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(n, t, generator=g) * 3
    ref = -torch.rand(n, t, generator=g) * 3
    mask = torch.ones(n, t)
    for i, length in enumerate([6, 3, 5, 1][:n]):
        mask[i, length:] = 0
    adv = torch.randn(n, generator=g)
    return logp, ref, mask, adv


@pytest.mark.parametrize("beta", [0.0, 0.04, 0.5])
def test_gradient_matches_eq21_at_ratio_one(beta):
    """At ρ = 1, −∂loss/∂log π_θ(o_{i,t}) = (1/G)(1/|o_i|) [Â_{i,t} + β (π_ref/π_θ − 1)] (Eq. 21)."""
    logp, ref, mask, adv = _random_batch()
    logp = logp.clone().requires_grad_(True)
    loss, _ = grpo_loss(logp, logp.detach(), ref, adv, mask, beta=beta)
    loss.backward()
    G, lengths = logp.shape[0], mask.sum(1, keepdim=True)
    coeff = adv[:, None] + beta * (torch.exp(ref - logp.detach()) - 1)
    expected = coeff / (G * lengths) * mask
    assert torch.allclose(-logp.grad, expected, atol=1e-6)


def test_gradient_eq21_with_process_advantages():
    logp, ref, mask, _ = _random_batch(seed=1)
    adv_tok = torch.randn(logp.shape)
    logp = logp.clone().requires_grad_(True)
    loss, _ = grpo_loss(logp, logp.detach(), ref, adv_tok, mask, beta=0.04)
    loss.backward()
    expected = (adv_tok + 0.04 * (torch.exp(ref - logp.detach()) - 1)) / (logp.shape[0] * mask.sum(1, keepdim=True))
    assert torch.allclose(-logp.grad, expected * mask, atol=1e-6)


def test_clipped_tokens_carry_no_gradient():
    eps = 0.2
    old = torch.zeros(1, 4)
    # ratios: 1.5 (A>0: clipped), 0.5 (A<0: clipped), 1.5 with A<0 (not clipped), 1.1 (inside)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.5, 1.1]])).requires_grad_(True)
    adv = torch.tensor([[1.0, -1.0, -1.0, 1.0]])
    loss, stats = grpo_loss(logp, old, None, adv, torch.ones(1, 4), epsilon=eps, beta=0.0)
    loss.backward()
    g = logp.grad[0]
    assert g[0] == 0 and g[1] == 0
    assert g[2] != 0 and g[3] != 0
    assert stats["clip_ratio/high"].item() == pytest.approx(0.25)
    assert stats["clip_ratio/low"].item() == pytest.approx(0.25)


def test_clip_higher_epsilon_high():
    logp = torch.log(torch.tensor([[1.25]])).requires_grad_(True)
    loss, stats = grpo_loss(logp, torch.zeros(1, 1), None, torch.tensor([1.0]), torch.ones(1, 1),
                            epsilon=0.2, epsilon_high=0.28, beta=0.0)
    loss.backward()
    assert logp.grad.item() != 0  # 1.25 < 1 + 0.28: not clipped under clip-higher
    assert stats["clip_ratio/high"].item() == 0


def test_loss_normalisations_hand_computed():
    # two sequences of lengths 2 and 1, ratio 1, beta 0: per-token loss is −Â
    logp = torch.zeros(2, 2)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([1.0, 3.0])
    grpo, _ = grpo_loss(logp, logp, None, adv, mask, beta=0.0, loss_type="grpo")
    dapo, _ = grpo_loss(logp, logp, None, adv, mask, beta=0.0, loss_type="dapo")
    dr, _ = grpo_loss(logp, logp, None, adv, mask, beta=0.0, loss_type="dr_grpo", max_completion_length=4)
    assert grpo.item() == pytest.approx(-(1.0 + 3.0) / 2)          # mean of per-sequence means
    assert dapo.item() == pytest.approx(-(1.0 + 1.0 + 3.0) / 3)    # token-level mean
    assert dr.item() == pytest.approx(-(1.0 + 1.0 + 3.0) / (2 * 4))  # constant normaliser N·L
    with pytest.raises(ValueError):
        grpo_loss(logp, logp, None, adv, mask, loss_type="ppo")


def test_kl_term_value_in_loss():
    logp = torch.log(torch.tensor([[0.5]]))
    ref = torch.log(torch.tensor([[0.25]]))
    loss, stats = grpo_loss(logp, logp, ref, torch.tensor([0.0]), torch.ones(1, 1), beta=0.04)
    k3 = 0.5 - math.log(0.5) - 1
    assert loss.item() == pytest.approx(0.04 * k3, abs=1e-7)
    assert stats["kl"].item() == pytest.approx(k3, abs=1e-6)


# ---------------------------------------------------------------------------------------------- §5 paradigm
def test_rft_and_sft_coefficients():
    from grpo.algorithm import rft_coefficients, sft_coefficients

    assert torch.equal(rft_coefficients([True, False, True]), torch.tensor([1.0, 0.0, 1.0]))
    assert torch.equal(sft_coefficients(2), torch.ones(2))


def test_rft_gradient_is_indicator_times_grad_logp():
    """Through the one loss with β = 0 at ρ = 1: ∂ℓ/∂logp_{i,t} = −GC_i / (N·|o_i|), GC = 𝕀(correct)."""
    from grpo.algorithm import rft_coefficients

    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.7, -0.9]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    gc = rft_coefficients([True, False])
    loss, _ = grpo_loss(logp, logp.detach(), None, gc, mask, beta=0.0)
    loss.backward()
    expected = torch.tensor([[-1 / (2 * 2), -1 / (2 * 2), 0.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(logp.grad, expected)


def test_ppo_token_rewards_hand_computed():
    from grpo.algorithm import ppo_token_rewards

    logp = torch.tensor([[-1.0, -2.0, -3.0]])
    ref = torch.tensor([[-1.5, -2.0, -1.0]])
    r = ppo_token_rewards(torch.tensor([1.0]), logp, ref, torch.tensor([[1.0, 1.0, 0.0]]), beta=0.1)
    # −β(logp − ref) per real token; the outcome on the last real token (index 1); nothing past it
    assert torch.allclose(r, torch.tensor([[-0.05, 1.0, 0.0]]))


def test_gae_hand_computed():
    from grpo.algorithm import gae

    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.4, 0.8], [0.5, 0.4, 9.0]])   # 9.0 sits past the end of row 2: ignored
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    # row 1: δ = (0+.9·.4−.5, 0+.9·.8−.4, 1−.8) = (−.14, .32, .2); A_t = δ_t + γλ A_{t+1}, γλ = .45
    assert torch.allclose(adv[0], torch.tensor([-0.14 + 0.45 * 0.41, 0.32 + 0.45 * 0.2, 0.2]))
    # row 2: δ_1 = 1 + 0 − .4 = .6 (V = 0 past the end), δ_0 = −.14
    assert torch.allclose(adv[1], torch.tensor([-0.14 + 0.45 * 0.6, 0.6, 0.0]))
    assert torch.allclose(ret, adv + values * mask)
    # γ = λ = 1 with a zero value model: every token's advantage is the sum of the rewards after it
    adv1, _ = gae(rewards, torch.zeros_like(values), mask, gamma=1.0, lam=1.0)
    assert torch.allclose(adv1, torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]))


def test_whiten_and_value_loss():
    from grpo.algorithm import value_loss, whiten

    mask = torch.tensor([[1.0, 1.0, 0.0]])
    w = whiten(torch.tensor([[1.0, 3.0, 100.0]]), mask)
    assert torch.allclose(w, torch.tensor([[-1.0, 1.0, 0.0]]), atol=1e-6)
    v, old, ret = torch.tensor([[1.0, 0.0, 5.0]]), torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    # token 1: max((1−0)², (0.2−0)²) = 1; token 2: max(1, 1) = 1; mean ½·(1+1)/2
    assert torch.isclose(value_loss(v, old, ret, mask, clip=0.2), torch.tensor(0.5))
