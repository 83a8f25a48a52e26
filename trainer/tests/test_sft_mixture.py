"""The SFT mixture of worked and direct-answer targets (settings sft_direct_fraction / _weight / _weighting)."""

import random

import pytest
import torch

from grpo import config, logprobs, models, prompts, sft
from grpo.tasks import arith


def test_sft_example_mixes_styles_at_the_given_fraction():
    rng = random.Random(0)
    qs = [arith.random_expression(rng, 2, 2) for _ in range(4000)]
    task = arith.ArithTask(eval_size=10, min_ops=2, max_ops=2, direct_fraction=0.3, direct_weight=4.0)
    examples = [task.sft_example(q, rng) for q in qs]
    direct = [(q, t, w) for q, (t, w) in zip(qs, examples) if w == 4.0]
    assert 0.27 < len(direct) / len(qs) < 0.33
    assert all(t == f"#### {arith.evaluate(arith.parse(q))}" for q, t, _ in direct)
    worked = [(q, t) for q, (t, w) in zip(qs, examples) if w == 1.0]
    assert all(t == arith.worked_solution(q) for q, t in worked)
    plain = arith.ArithTask(eval_size=10)
    assert all(w == 1.0 for _, w in (plain.sft_example(q, rng) for q in qs[:50]))  # default: worked only


def test_weighted_sft_loss_is_the_weighted_token_mean():
    model, tok = models.load(models.BUILTIN, 0, torch.device("cpu"))
    qs = ["1+2*3", "4-5"]
    batch = sft.teacher_batch(tok, [prompts.plain(q) for q in qs], ["1+2=3\n#### 3", "#### -1"], torch.device("cpu"))
    logp, _ = logprobs.token_logprobs(model, batch)
    mask = batch.completion_mask.float()
    width = mask.shape[1]
    for scope in ("sequence", "first_token"):
        w = sft.target_weights(torch.tensor([1.0, 4.0]), width, scope)
        expected = -(logp * mask * w).sum() / (mask * w).sum()
        assert torch.allclose(sft.sft_loss(model, batch, w), expected)
    seq = sft.target_weights(torch.tensor([1.0, 4.0]), width, "sequence")
    assert torch.equal(seq[1], torch.full((width,), 4.0))
    first = sft.target_weights(torch.tensor([1.0, 4.0]), width, "first_token")
    assert first[1, 0] == 4.0 and torch.all(first[1, 1:] == 1.0)
    assert torch.allclose(sft.sft_loss(model, batch), -(logp * mask).sum() / mask.sum())  # unweighted as before


def test_difficulty_settings_are_checked():
    with pytest.raises(config.ConfigError, match="arith_min_ops"):
        config.build_config(overrides=["arith_min_ops=3", "arith_max_ops=2"])
    with pytest.raises(config.ConfigError, match="eval_k"):
        config.build_config(overrides=["eval_k=0,4"])
    with pytest.raises(ValueError, match="too few distinct"):
        arith.make_split(0, 400, min_ops=1, max_ops=1)  # one operation: 300 questions
