"""`python -m grpo paradigm --smoke`: every method of the §5 comparison trains through the one loop into an
ordinary run directory, and the results JSON holds them all."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grpo import methods, paradigm

ROOT = Path(__file__).resolve().parents[2]


def test_methods_are_table_10():
    assert list(methods.METHODS) == ["sft", "rft", "online_rft", "grpo_outcome", "grpo_process", "grpo_iterative",
                                     "ppo"]
    assert methods.get("rft").data == "pi_sft" and methods.get("online_rft").data == "pi_theta"
    assert {m.gc for m in methods.METHODS.values()} == set(methods.COEFFICIENTS)
    assert methods.get("ppo").kl == "reward" and methods.get("grpo_outcome").kl == "loss"
    with pytest.raises(ValueError, match="unknown method"):
        methods.get("dpo")
    with pytest.raises(ValueError, match="not one of"):
        methods.Method("x", data="web", reward="rule", gc="one")


def test_t_interval_hand_computed():
    mean, half = paradigm.t_interval([0.5, 0.7, 0.6])
    assert mean == pytest.approx(0.6)
    assert half == pytest.approx(4.303 * 0.1 / math.sqrt(3))
    assert paradigm.t_interval([0.4]) == (0.4, None)


def test_smoke_every_method_writes_a_run_directory(tmp_path):
    out, results = tmp_path / "runs", tmp_path / "paradigm.json"
    # one thread: a tiny model gains nothing from two, and two threads on a busy 2-core machine spin
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer"), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "grpo", "paradigm", "--smoke", "--seeds", "1", "--steps", "2",
                        "--out", str(out), "--results", str(results)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    data = json.loads(results.read_text())
    assert list(data["methods"]) == list(methods.METHODS)
    assert results.with_suffix(".png").stat().st_size > 0
    for name, entry in data["methods"].items():
        run = Path(entry["runs"][0]["run_dir"])
        assert run.parent == out and run.name == f"{name}-s0"
        assert json.loads((run / "status.json").read_text())["state"] == "finished"
        config = json.loads((run / "config.json").read_text())
        assert config["max_steps"] == 2 and config["sft_steps"] == 0
        assert config["reward"] == methods.get(name).supervision
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [1, 2] and all(math.isfinite(r["reward/mean"]) for r in rows)
        events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
        assert any(e["kind"] == "eval" and e["step"] == 2 and "pass_at_k" in e for e in events)
        s = entry["summary"]
        assert 0 <= s["greedy"]["mean"] <= 1 and s["peak_rss_mb"]["mean"] > 0 and s["greedy"]["ci95"] is None
    assert data["seeds_done"] == 1 and data["methods"]["ppo"]["trained_models"] == 2
    start = data["start_eval"]  # the SFT start, as the first method's run evaluated it before its first step
    assert 0 <= start["greedy"] <= 1 and set(start["pass_at_k"]) == {"1", "2"}
    table = paradigm.table(data).splitlines()
    assert table[0].startswith("| method |") and "maj@2" in table[0] and table[2].startswith("| SFT start |")
    assert [row.split("|")[1].strip() for row in table[3:]] == list(methods.METHODS)
    ppo, grpo = data["methods"]["ppo"]["model_state_mb"], data["methods"]["grpo_outcome"]["model_state_mb"]
    assert ppo == pytest.approx(grpo * 9 / 5, rel=1e-3)  # (4·2 + 1) against (4·1 + 1) model sizes
    resets = [json.loads(x) for x in (out / "grpo_iterative-s0" / "events.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "ref_reset" for e in resets)  # --iterations 2 over 2 steps: a reset after step 1


@pytest.fixture
def one_thread():
    """Torch on one thread (see above), restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_prm_replays_ten_percent_and_learns_step_labels(one_thread):
    import torch

    from grpo import critic, models, rollout

    tok = models.char_tokenizer()
    prm = critic.ProcessRewardModel(models.tiny_model(tok, 0), lr=3e-3, epochs=30)
    n = 10
    batch = rollout.Batch(torch.randint(5, 20, (n, 3)), torch.ones(n, 3, dtype=torch.long),
                          torch.randint(5, 20, (n, 4)), torch.ones(n, 4, dtype=torch.long), torch.zeros(n, dtype=torch.bool))
    ends = [[1, 3]] * n
    labels = [[1.0, 0.0]] * n  # the first step right, the second wrong, everywhere
    first = prm.fit(batch, ends, labels)
    assert first["replayed"] == 0
    assert first["loss_before"] == pytest.approx(math.log(2), abs=1e-4)  # a zero head: P = 1/2, chance
    assert first["loss"] < 0.2  # fitted, not nudged
    assert prm.fit(batch, ends, labels)["replayed"] == 1  # 10% of the 10 rows seen before
    rewards = prm.step_rewards(batch, ends)
    assert all(r[0] > 0.8 and r[1] < 0.2 for r in rewards)
