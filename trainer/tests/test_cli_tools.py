"""`eval` and `sample` on a real (untrained, tiny) checkpoint written by the same code as training."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grpo import models

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt") / "step_000000"
    model, tok = models.load(models.BUILTIN, 0, torch.device("cpu"))
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    return subprocess.run([sys.executable, "-m", "grpo", *args], capture_output=True, text=True, env=env, timeout=300)


def test_eval_prints_accuracy_and_counts_bad_rows(checkpoint, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "1+2*3", "answer": "7"}) + "\n" + "oops\n"
                    + json.dumps({"question": "2-3", "answer": -1}) + "\n")
    p = cli("eval", "--checkpoint", str(checkpoint), "--data", str(data), "--max-new-tokens", "8")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["n"] == 2 and out["bad_rows"] == 1 and 0 <= out["accuracy"] <= 1


def test_sample_prints_a_whole_group(checkpoint):
    p = cli("sample", "--checkpoint", str(checkpoint), "--question", "(3+1)*3", "--num-generations", "4",
            "--max-new-tokens", "12", "--process")
    assert p.returncode == 0, p.stderr
    g = json.loads(p.stdout)
    assert g["answer"] == "12" and len(g["completions"]) == 4 and len(g["tokens"]) == 4
    t = g["tokens"][0]
    assert len(t["text"]) == len(t["logp"]) == len(t["ref_logp"]) == len(t["kl"]) == len(t["advantage"])
    assert all(k >= 0 for k in t["kl"])
    assert len(g["step_rewards"]) == 4


def test_sample_rejects_characters_outside_the_vocabulary(checkpoint):
    p = cli("sample", "--checkpoint", str(checkpoint), "--question", "3×4", "--num-generations", "2")
    assert p.returncode == 1 and "×" in p.stderr and p.stdout == ""


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    p = cli("sample", "--checkpoint", str(tmp_path / "nope"), "--question", "1+1")
    assert p.returncode == 1 and "not a checkpoint" in p.stderr
