"""`torchrun --nproc_per_node 2 -m grpo train` on CPU (gloo): data-parallel SFT and GRPO, rank 0 owns the run
directory and the protocol stream, the ranks stay in sync (checked at every checkpoint), resume works."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grpo import distributed

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))


def _torchrun(run_dir, *sets, resume=False):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer"), "OMP_NUM_THREADS": "1"}
    args = [TORCHRUN, "--nproc_per_node", "2", "--standalone", "-m", "grpo", "train", "--run-dir", str(run_dir),
            "--quiet"] + (["--resume"] if resume else [])
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_two_process_gloo_run(tmp_path):
    run = tmp_path / "run"
    p = _torchrun(run, "sft_steps=2", "sft_batch_size=8", "max_steps=2", "questions_per_step=2", "num_generations=4",
                  "max_completion_length=12", "eval_size=4", "save_steps=1")
    assert p.returncode == 0, p.stderr[-3000:]
    msgs = [json.loads(line) for line in p.stdout.splitlines()]  # only rank 0 writes the protocol stream
    assert [m["type"] for m in msgs].count("started") == 1
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    rng = torch.load(run / "checkpoints" / "step_000002" / "rng.pt", weights_only=True)  # no pickle
    states = rng["per_rank"]
    assert len(states) == 2 and states[0]["python"] != states[1]["python"]  # each rank its own questions
    p = _torchrun(run, "max_steps=3", resume=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert json.loads((run / "status.json").read_text())["state"] == "finished"


def test_single_process_helpers_are_no_ops():
    assert not distributed.active() and distributed.rank() == 0 and distributed.world() == 1
    row = {"tokens_per_second": 3.0, "reward/mean": 0.5}
    assert distributed.reduce_row(row) is row and distributed.any_of(True, False) == (True, False)
