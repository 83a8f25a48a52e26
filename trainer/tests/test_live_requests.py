"""A running `train` process answers sample_group / score / compare on stdin between steps (in SFT, in GRPO
and while paused), refuses bad ones, and keeps training."""

import json

import pytest
import torch
from child import FIXTURES, Proc

from grpo import algorithm

FAST = ["--set", "sft_batch_size=4", "--set", "eval_size=8", "--set", "questions_per_step=2", "--set", "num_generations=4",
        "--set", "max_completion_length=24", "--set", "eval_steps=0", "--set", "save_steps=0",
        "--set", "log_samples_steps=0", "--set", "reward_function=length_reward:near_twelve", "--quiet"]


def status(run):
    return json.loads((run / "status.json").read_text())


def test_a_training_run_answers_requests(tmp_path):
    run = tmp_path / "run"
    t = Proc(["train", "--run-dir", str(run), "--set", "sft_steps=4", "--set", "sft_cache=false", "--set", "max_steps=400", *FAST],
             env_paths=[str(FIXTURES)])
    try:
        assert t.next(lambda m: True)["type"] == "started"
        # queued at once, answered before the first SFT step: the policy is its own reference there
        r = t.ok("score", prompt="1+2\n", text="1+2=3\n#### 3")
        assert r["source"]["phase"] == "sft" and r["source"]["checkpoint"] is None
        assert len(r["kl"]) == 12 and r["kl"] == [0.0] * 12 and r["logp"] == r["ref_logp"]
        t.next(lambda m: m["type"] == "metrics", timeout=600)  # GRPO is running

        g = t.ok("sample_group", question="(3+1)*3+4*1", seed=3)
        assert g["source"]["checkpoint"] is None and g["source"]["phase"] == "grpo" and g["step"] >= 1
        assert len(g["completions"]) == 4 and g["answer"] == "16"  # the run's G
        assert g["source"]["max_completion_length"] == 24
        # 16 completions of up to 48 tokens: some end early, so the length reward varies within the group
        g = t.ok("sample_group", question="(3+1)*3+4*1", seed=3, num_generations=16, max_completion_length=48)
        want = algorithm.outcome_advantages(torch.tensor([g["rewards"]]))[0]
        assert len(set(g["rewards"])) > 1
        assert g["advantages"] == pytest.approx(want.tolist(), abs=1e-5)
        assert len(g["step_rewards"]) == 16 and all(len(tok["kl"]) == len(tok["text"]) for tok in g["tokens"])

        assert t.ok("pause")["action"] == "pause"
        assert any(m["type"] == "status" and m["status"]["state"] == "paused" for m in t.seen)
        paused_at = status(run)["step"]
        r = t.ok("score", prompt="(2+2)*2\n", text="2+2=4\n4*2=8\n#### 8")
        assert r["step"] == paused_at and len(r["logp"]) == len("2+2=4\n4*2=8\n#### 8")
        c = t.ok("compare", question="9-3*2", max_completion_length=16)
        assert len(c["policy"]["tokens"]) == len(c["policy"]["logp_diff"]) > 0
        assert "max_prompt_length" in t.error("sample_group", question="9" * 200)
        assert "×" in t.error("score", text="2×3")
        assert status(run)["state"] == "paused" and status(run)["step"] == paused_at  # nothing moved

        t.ok("resume")
        t.next(lambda m: m["type"] == "metrics" and m["row"]["step"] > paused_at)
        t.ok("stop")
        assert t.p.wait(timeout=300) == 0, t.stderr()
        assert status(run)["state"] == "stopped"
        # requests never write to the run: samples.jsonl was off and stays absent
        assert not (run / "samples.jsonl").exists()
    finally:
        if t.p.poll() is None:
            t.p.kill()
            t.p.wait()
