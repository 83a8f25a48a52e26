"""Micro-batched forward/backward accumulates exactly the whole batch's gradient, for every loss type."""

import pytest
import torch

from grpo import logprobs, microbatch, models, rollout
from grpo.config import Config


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_micro_batches_give_the_whole_batch_gradient(loss_type):
    model, tok = models.load(models.BUILTIN, 0, torch.device("cpu"))
    prompts = [tok(q)["input_ids"] for q in ("1+2\n", "(9-8)*7+1\n", "3*3\n", "4-1\n", "2+2*2\n")]
    batch = rollout.sample(model, prompts, max_new_tokens=10, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
                           generator=torch.Generator().manual_seed(0))
    mask = batch.completion_mask.float()
    with torch.no_grad():
        ref, _ = logprobs.token_logprobs(model, batch)
    ref = ref + 0.1 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    old = ref + 0.05
    adv = torch.tensor([1.0, -0.5, 0.3, -1.2, 0.4])
    scorer = logprobs.Scorer(model)
    results = []
    for size in (0, 2):
        cfg = Config(micro_batch_size=size, temperature=1.0, epsilon=0.2, beta=0.04, loss_type=loss_type,
                     max_completion_length=10)
        logp, _, loss, stats, token_grad, kept = microbatch.forward_backward(scorer, batch, old, ref, adv, mask, cfg,
                                                                             False, model.zero_grad)
        assert kept is None  # top_entropy_quantile = 1: no token mask
        grad = torch.cat([p.grad.flatten() for p in model.parameters()])
        results.append((logp, loss, stats["kl"], grad, token_grad))
    (lp0, l0, kl0, g0, t0), (lp1, l1, kl1, g1, t1) = results
    assert torch.allclose(lp0, lp1, atol=1e-5) and torch.allclose(l0, l1, atol=1e-6)
    assert torch.allclose(t0, t1, atol=1e-7, rtol=1e-4) and t0.shape == mask.shape  # the ledger's |∂L/∂log π|
    assert torch.allclose(g0, g1, atol=1e-6, rtol=1e-4) and g0.abs().max() > 0
    if loss_type == "dapo":
        assert torch.allclose(kl0, kl1, atol=1e-6)


def test_slices_cover_the_batch():
    assert microbatch.slices(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert microbatch.slices(5, 0) == [slice(0, 5)]
