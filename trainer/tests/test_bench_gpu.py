"""bench/gpu in --smoke mode: the GPU benchmark's code (this trainer, generate() and TRL's GRPOTrainer on
one model and batch) runs on CPU with a tiny Qwen2 and writes every required field."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ["device", "model", "tokens_per_second_end_to_end", "generation_tokens_per_second",
            "hf_generate_tokens_per_second", "trl_tokens_per_second_end_to_end", "mfu_train", "peak_memory_gb"]


def test_smoke_run_writes_the_results_file(tmp_path):
    out = tmp_path / "smoke.json"
    args = [sys.executable, str(ROOT / "bench" / "gpu" / "grpo_gpu.py"), "--smoke", "--out", str(out)]
    have_trl = importlib.util.find_spec("trl") is not None
    if not have_trl:
        args.append("--skip-trl")
    p = subprocess.run(args, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "trainer")})
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(out.read_text())
    assert all(k in r for k in REQUIRED) and r["smoke"] is True
    for k in ("tokens_per_second_end_to_end", "generation_tokens_per_second", "hf_generate_tokens_per_second"):
        assert r[k] > 0, k
    if have_trl:
        assert r["trl_tokens_per_second_end_to_end"] > 0 and r["trl_version"]
    split = r["step_time_split"]
    assert abs(sum(split.values()) - 1) < 0.05 and split["rollout"] > 0 and split["train"] > 0
