"""Inspection is training: `serve` answers `sample_group` for a logged question of a real run with the
training prompt (the chat template applied), the configured verifier and training's advantages.

The run: a tiny random Qwen2 checkpoint (byte-level BPE, ChatML template), first taught here to answer every
question with `\\boxed{\\frac{1}{2}}` or `\\boxed{\\frac{1}{3}}` (so sampled groups hold both), then trained
one GRPO step on a GSM8K-style JSONL task whose answers are `1/2` (`#### 1/2`) or `\\frac{1}{2}` (a MATH
`\\boxed{}` solution). `\\boxed{\\frac{1}{2}}` against `1/2` is right under math-verify — the verifier `auto`
picks for a file task — and wrong under the number checker the inspector used to grade with.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from child import Proc

from grpo import algorithm, models, prompts, sft, verify

ROOT = Path(__file__).resolve().parents[2]
HALF, THIRD = "\\boxed{\\frac{1}{2}}", "\\boxed{\\frac{1}{3}}"
QUESTIONS = [f"Pour {k} cups into {2 * k} cups of space: what fraction is full?" for k in range(1, 11)]


def _rows():
    for i, q in enumerate(QUESTIONS):
        answer = f"{i + 1} of {2 * (i + 1)} is 1/2.\n#### 1/2" if i % 2 else f"So it is $\\boxed{{\\frac{{1}}{{2}}}}$."
        yield {"question": q, "answer": answer}


@pytest.fixture(scope="module")
def half_model(tiny_dirs, tmp_path_factory):
    """The tiny Qwen2, taught (plain SFT on the chat prompts) to answer HALF or THIRD, about evenly."""
    model, tok = models.load(tiny_dirs["qwen2"], 0, torch.device("cpu"))
    chat = prompts.formatter(tok, "auto")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = sft.teacher_batch(tok, [chat(q) for q in QUESTIONS] * 2, [HALF] * 10 + [THIRD] * 10, torch.device("cpu"))
    torch.manual_seed(0)
    for _ in range(60):
        loss = sft.sft_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = tmp_path_factory.mktemp("half") / "model"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_serve_samples_rewards_and_advantages_as_training(half_model, tmp_path):
    data = tmp_path / "gsm.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    sets = [f"model={half_model}", f"task={data}", "sft_steps=0", "max_steps=1", "questions_per_step=2",
            "num_generations=8", "max_completion_length=16", "learning_rate=1e-6", "eval_size=1", "save_steps=1",
            "log_samples_steps=1", "logprob_chunk_tokens=16"]
    p = subprocess.run([sys.executable, "-m", "grpo", "train", "--run-dir", str(run), "--quiet",
                        *[a for s in sets for a in ("--set", s)]], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    logged = json.loads((run / "samples.jsonl").read_text().splitlines()[0])
    assert logged["prompt"] == f"<|im_start|>user\n{logged['question']}<|im_end|>\n<|im_start|>assistant\n"
    assert logged["answer"] in ("1/2", "\\frac{1}{2}")
    training = dict(zip(logged["completions"], logged["rewards"]))  # what training's rewarder gave

    serve = Proc(["serve", "--checkpoint", str(run)])
    try:
        assert serve.next(lambda m: True)["type"] == "started"
        g = serve.ok("sample_group", question=logged["question"], num_generations=16, seed=5)
    finally:
        serve.p.kill()
        serve.p.wait()
    assert g["prompt"] == logged["prompt"] and g["answer"] == logged["answer"]
    assert g["source"]["step"] == 1 and g["source"]["reference"] == "step_000000"
    # the same completions get the same rewards in training and in the inspector: math-verify's
    shared = [(c, r) for c, r in zip(g["completions"], g["rewards"]) if c in training]
    assert shared and all(training[c] == r for c, r in shared)
    assert g["rewards"] == [1.0 if verify.math_verify_matches(c, g["answer"]) else 0.0 for c in g["completions"]]
    right = [c for c, r in zip(g["completions"], g["rewards"]) if r == 1.0]
    assert HALF in right and not verify.number_matches(HALF, g["answer"])  # the old inspector's grade: wrong
    assert 0 < sum(g["rewards"]) < 16
    want = algorithm.scaled_advantages(torch.tensor([g["rewards"]]), "group")[0]
    assert g["advantages"] == pytest.approx(want.tolist(), abs=1e-5)
    want = algorithm.scaled_advantages(torch.tensor([logged["rewards"]]), "group")[0]
    assert logged["advantages"] == pytest.approx(want.tolist(), abs=1e-5)
