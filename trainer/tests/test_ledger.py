"""The signal ledger: each category constructed by hand, and on a real run the categories sum to the tokens."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grpo import algorithm, ledger, records
from grpo.rundir import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
TOKEN_KEYS = records.LEDGER_TOKENS


def ledger_of(mask, kinds, G, loss_mask=None, low=None, high=None, other=None, filtered=0.0):
    z = torch.zeros_like(mask, dtype=torch.bool)
    return ledger.token_ledger(mask, kinds, G, mask if loss_mask is None else loss_mask,
                               z if low is None else low, z if high is None else high, other, filtered)


def total(row):
    return sum(row[k] for k in TOKEN_KEYS)


def test_group_kinds_by_advantages_then_answers():
    adv = torch.tensor([0.7, -0.7, 0, 0, 0, 0, 0, 0])
    correct = [True, False, True, True, False, False, True, False]
    assert ledger.group_kinds(adv, correct, 2) == ["mixed", "all_correct", "all_wrong", "no_signal_other"]
    per_token = torch.zeros(4, 3)
    per_token[1, 2] = 0.5  # process supervision: one step's advantage is enough
    assert ledger.group_kinds(per_token, [True] * 4, 2) == ["mixed", "all_correct"]


def test_a_zero_signal_group_is_counted_by_its_kind():
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    row = ledger_of(mask, ["mixed", "all_wrong"], 2)
    assert row["ledger/no_signal_wrong"] == 4 and row["ledger/effective"] == 5
    row = ledger_of(mask, ["all_correct", "mixed"], 2)
    assert row["ledger/no_signal_correct"] == 5 and row["ledger/effective"] == 4
    assert total(row) == row["ledger/tokens"] == 9


def test_a_masked_truncation_comes_before_the_group_kind():
    mask = torch.ones(2, 4)
    truncated = torch.tensor([True, False])
    keep = algorithm.loss_mask(mask, truncated, True)
    row = ledger_of(mask, ["all_wrong"], 2, loss_mask=keep)
    assert row["ledger/truncated_masked"] == 4 and row["ledger/no_signal_wrong"] == 4
    assert algorithm.loss_mask(mask, truncated, False) is mask  # off: nothing masked


def test_clipped_tokens_are_counted_on_the_side_their_advantage_pushes():
    ratio = torch.tensor([[0.5, 0.5, 1.5, 1.5, 1.0]])
    for adv, low, high in ((-1.0, 2, 0), (1.0, 0, 2)):
        lo, hi = algorithm.clip_masks(ratio, torch.tensor([adv]), 0.2, 0.28)
        row = ledger_of(torch.ones(1, 5), ["mixed"], 1, low=lo, high=hi)
        assert (row["ledger/clipped_low"], row["ledger/clipped_high"], row["ledger/effective"]) == (low, high, 3)
    # a clipped token of a zero-signal group is counted there (the order: mask, group, clip)
    lo, _ = algorithm.clip_masks(ratio, torch.tensor([-1.0]), 0.2, 0.2)
    row = ledger_of(torch.ones(1, 5), ["all_wrong"], 1, low=lo)
    assert row["ledger/clipped_low"] == 0 and row["ledger/no_signal_wrong"] == 5


def test_another_token_mask_and_filtered_groups_have_their_own_categories():
    other = torch.tensor([[True, False, True]])
    row = ledger_of(torch.ones(1, 3), ["mixed"], 1, other=other, filtered=7)
    assert row["ledger/masked_other"] == 1 and row["ledger/filtered"] == 7
    assert row["ledger/tokens"] == 10 == total(row)


def test_the_clip_masks_are_what_the_loss_counts_as_clipped():
    torch.manual_seed(0)
    logp, old = torch.randn(3, 5), torch.randn(3, 5)
    adv, mask = torch.tensor([1.0, -1.0, 0.5]), torch.ones(3, 5)
    _, stats = algorithm.grpo_loss(logp, old, None, adv, mask, epsilon=0.2, beta=0.0, epsilon_high=0.3)
    low, high = algorithm.clip_masks(torch.exp(logp - old), adv, 0.2, 0.3)
    assert float(stats["clip_ratio/low"]) == pytest.approx(float(low.float().mean()))
    assert float(stats["clip_ratio/high"]) == pytest.approx(float(high.float().mean()))


def test_gradient_shares_split_the_token_gradient():
    grad = torch.tensor([[1.0, 1.0], [2.0, 0.0], [0.5, 0.5], [0.0, 0.0]])
    shares = ledger.gradient_shares(grad, ["mixed", "all_wrong"], 2, torch.tensor([2, 1, 2, 8]), 8)
    assert shares["grad_share/mixed"] == pytest.approx(4 / 5) and shares["grad_share/all_wrong"] == pytest.approx(1 / 5)
    assert shares["grad_share/len_0_25"] == pytest.approx(1.0)
    assert sum(shares[f"grad_share/{b}"] for b, _ in ledger.LENGTH_BANDS) == pytest.approx(1.0)
    assert ledger.gradient_shares(None, ["mixed"], 1, torch.tensor([1]), 8) == {}


def test_the_ledger_sums_to_the_sampled_tokens_on_every_step_of_a_real_run(tmp_path):
    """A real run where every category can occur: short completions masked when truncated, μ = 2 (clipping),
    dynamic sampling (filtered groups), top_entropy_quantile (masked_other), an SFT start good enough for mixed
    groups."""
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    sets = {"sft_steps": 300, "sft_cache": "false", "max_steps": 4, "questions_per_step": 6, "num_generations": 4,
            "max_completion_length": 14, "mask_truncated_completions": "true", "num_iterations": 2,
            "learning_rate": 3e-3, "dynamic_sampling": "true", "dynamic_sampling_max_rounds": 2, "eval_size": 16,
            "eval_samples": 0, "onnx_export": "false", "log_samples_steps": 1,
            "top_entropy_quantile": 0.5}
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    p = subprocess.run([sys.executable, "-m", "grpo", "train", "--run-dir", str(run), "--quiet", *args], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    metrics, _ = read_jsonl(run / "metrics.jsonl")
    assert len(metrics) == 4
    for m in metrics:
        assert sum(m[k] for k in TOKEN_KEYS) == pytest.approx(m["ledger/tokens"], abs=1e-3), m
        assert m["ledger/tokens"] > 0
        kinds = [m[f"groups/{k}"] for k in ledger.KINDS]
        assert sum(kinds) + m["groups/filtered"] == m["groups/sampled"]
        if "grad_share/mixed" in m:  # absent where nothing had a gradient (every completion truncated and masked)
            assert sum(m[f"grad_share/{k}"] for k in ledger.KINDS) == pytest.approx(1.0, abs=1e-6)
    seen = {k for m in metrics for k in TOKEN_KEYS if m[k] > 0}
    assert {"ledger/truncated_masked", "ledger/effective", "ledger/filtered", "ledger/masked_other"} <= seen, seen
    assert any("grad_share/mixed" in m for m in metrics)
    samples, _ = read_jsonl(run / "samples.jsonl")
    assert all(s["kind"] in records.GROUP_KINDS for s in samples)
    rows, _ = read_jsonl(run / "questions.jsonl")
    assert [r["source"] for r in rows][0] == "eval" and sum(r["source"] == "train" for r in rows) == 4
    assert records.check_run_dir(run) == []


def test_a_trl_row_carries_the_ledger_as_far_as_trls_log_allows():
    from grpo.integrations import trl_format

    row = trl_format.metrics_row({"loss": 0.1, "reward": 0.5, "clip_ratio/low_mean": 0.02, "clip_ratio/high_mean": 0.01,
                                  "frac_reward_zero_std": 0.25, "completions/clipped_ratio": 0.4}, 3, 1.0, None)
    assert (row["ledger/tokens"], row["ledger/clipped_low"], row["ledger/clipped_high"]) == (1.0, 0.02, 0.01)
    # unknown in TRL's log: absent, never 0
    assert not {"ledger/effective", "ledger/no_signal_wrong", "ledger/truncated_masked", "groups/mixed"} & set(row)
    assert records.validate("MetricsRow", row) == []
