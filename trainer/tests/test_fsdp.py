"""Sharded training (setting `fsdp`, FSDP2) under `torchrun --nproc_per_node 2` on CPU with gloo: the sharded
step equals one process's step on the same data; a sharded run equals the data-parallel run (same seeds, same
data per rank) in losses and weights, with LoRA too; it resumes after a SIGKILL to the very weights of the
uninterrupted run; its checkpoints are ordinary Hugging Face directories that open for serving/inspection.
Tolerances: weights 1e-5 absolute (measured: ≤ 1e-6 against one process, 0 against DDP), losses 1e-5 relative."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grpo import config, context, tiny_hf

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
pytestmark = pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                                reason="torchrun is not installed beside this Python")
# SFT gives the tiny policy varied lengths, the length reward gives its groups signal; μ = 2; no ONNX (slow here)
RUN = ["task=kill_switch:make", "reward_function=length_reward:near_twelve", "sft_steps=3", "sft_batch_size=8",
       "max_steps=3", "questions_per_step=2", "num_generations=4", "max_completion_length=16", "eval_size=4",
       "save_steps=1", "learning_rate=0.01", "num_iterations=2", "onnx_export=false"]


def _env(**extra):
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "trainer"), str(FIXTURES)]), "OMP_NUM_THREADS": "1",
            **extra}


def _torchrun(run_dir, *sets, resume=False, env=None):
    args = TORCHRUN + ["-m", "grpo", "train", "--run-dir", str(run_dir), "--quiet"] + (["--resume"] if resume else [])
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True, env=env or _env(), timeout=600)


def _rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _close(a, b, tol=1e-5):
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


@pytest.fixture(scope="module")
def sharded_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("fsdp") / "run"
    p = _torchrun(run, *RUN, "fsdp=full_shard")
    assert p.returncode == 0, p.stderr[-3000:]
    return run, p


@pytest.mark.parametrize("lora", [False, True])
def test_sharded_step_equals_one_process(lora, tmp_path):
    model = [str(tiny_hf.write_checkpoint(tmp_path / "qwen2", "qwen2"))] if lora else []
    p = subprocess.run(TORCHRUN + [str(Path(__file__).parent / "fsdp_one_process.py"), *model], capture_output=True,
                       text=True, env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["keys_match"] and out["greedy_equal"]  # sampling on the gathered weights is the model's own
    assert out["local_numel"] * 2 == out["numel"]   # each rank holds half of every weight
    assert out["moved"] > 1e-3 and out["max_weight_diff"] < 1e-5
    for sharded, single in zip(out["losses"], out["single_losses"]):  # both halves' losses, then the grad norm
        assert all(_close(a, b) for a, b in zip(sharded, single))


def test_sharded_run_matches_data_parallel(sharded_run, tmp_path):
    run, p = sharded_run
    assert [json.loads(x)["type"] for x in p.stdout.splitlines()].count("started") == 1  # rank 0's stream only
    ddp = tmp_path / "ddp"
    q = _torchrun(ddp, *RUN)
    assert q.returncode == 0, q.stderr[-3000:]
    a, b = _rows(run), _rows(ddp)
    assert [r["step"] for r in a] == [1, 2, 3] and all(r["grad_norm"] > 0 for r in a)
    for key in ("loss", "grad_norm", "reward/mean", "kl"):
        assert all(_close(x[key], y[key]) for x, y in zip(a, b)), key
    w, v = (load_file(r / "checkpoints" / "step_000003" / "model.safetensors") for r in (run, ddp))
    assert sorted(w) == sorted(v)  # the tied output layer is saved once, as without sharding
    assert max((w[k] - v[k]).abs().max().item() for k in w) < 1e-5
    ctx, _, _ = context.from_checkpoint(run / "checkpoints" / "step_000003", torch.device("cpu"))  # serve, inspector
    assert ctx.score(ctx.generate([ctx.prompt_ids("1+2")], temperature=1.0, max_new_tokens=4, generator=None),
                     1.0)[0].shape[0] == 1
    opt = torch.load(run / "checkpoints" / "step_000003" / "optimizer.pt", weights_only=True)
    assert len(opt["optimizer"]["state"]) == len(w)  # the whole model's AdamW moments, by parameter name


def test_sharded_run_resumes_after_sigkill(sharded_run, tmp_path):
    run, _ = sharded_run
    killed = tmp_path / "killed"
    # both ranks SIGKILL themselves as step 3 starts drawing questions, right after step_000002 was committed
    p = _torchrun(killed, *RUN, "fsdp=full_shard",
                  env=_env(GRPO_TEST_KILL_WHEN=str(killed / "checkpoints" / "step_000002")))
    assert p.returncode != 0 and not (killed / "checkpoints" / "step_000003").exists(), (p.returncode, p.stderr[-3000:])
    p = _torchrun(killed, resume=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert [r["step"] for r in _rows(killed)] == [1, 2, 3], (killed / "metrics.jsonl").read_text()
    assert json.loads((killed / "status.json").read_text())["state"] == "finished"
    w, v = (load_file(r / "checkpoints" / "step_000003" / "model.safetensors") for r in (run, killed))
    diff = max((w[k] - v[k]).abs().max().item() for k in w)
    assert diff < 1e-5, diff  # optimizer and random streams restored


def test_sharded_lora_matches_data_parallel(tmp_path):
    model = tiny_hf.write_checkpoint(tmp_path / "qwen2", "qwen2")
    sets = [f"model={model}", "lora_r=4", "reward_function=length_reward:near_twelve", "sft_steps=0", "max_steps=2",
            "questions_per_step=2", "num_generations=4", "max_completion_length=12", "eval_size=2", "save_steps=2",
            "learning_rate=0.01", "onnx_export=false", "log_samples_steps=0"]
    runs = [tmp_path / "fsdp", tmp_path / "ddp"]
    for run, extra in zip(runs, (["fsdp=full_shard"], [])):
        p = _torchrun(run, *sets, *extra)
        assert p.returncode == 0, p.stderr[-3000:]
    a, b = (_rows(r) for r in runs)
    assert a[1]["kl"] > 0 and all(_close(x["loss"], y["loss"]) and _close(x["kl"], y["kl"]) for x, y in zip(a, b))
    w, v = (load_file(r / "checkpoints" / "step_000002" / "adapter_model.safetensors") for r in runs)
    assert sorted(w) == sorted(v) and max((w[k] - v[k]).abs().max().item() for k in w) < 1e-5


def test_settings():
    with pytest.raises(config.ConfigError, match="'fsdp'.*rollout_engine=vllm"):
        config.build_config(None, ["fsdp=full_shard", "rollout_engine=vllm"])
    with pytest.raises(config.ConfigError, match="'fsdp_offload_params' needs 'fsdp'"):
        config.build_config(None, ["fsdp_offload_params=true"])
    with pytest.raises(config.ConfigError, match="fsdp"):
        config.build_config(None, ["fsdp=shard_everything"])
    assert config.build_config(None, ["fsdp=full_shard", "fsdp_offload_params=true"]).fsdp == "full_shard"


def test_one_process_ignores_fsdp_with_a_warning(tmp_path):
    run = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "grpo", "train", "--run-dir", str(run), "--quiet", "--set", "fsdp=full_shard",
                        "--set", "sft_steps=0", "--set", "max_steps=1", "--set", "questions_per_step=1", "--set",
                        "num_generations=2", "--set", "max_completion_length=4", "--set", "eval_size=2", "--set",
                        "onnx_export=false"], capture_output=True, text=True, env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
    assert any(e.get("code") == "fsdp_single_process" and "fsdp" in e["message"] for e in events)


def test_two_nodes_on_loopback(tmp_path):
    """docs/models.md's multi-node recipe with two "nodes" of one process each on this machine: torchrun's
    --nnodes/--node_rank/--master_addr rendezvous, sharded; node 0's rank writes the run directory and stream."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tmp_path / "run"
    sets = ["fsdp=full_shard", "sft_steps=0", "max_steps=2", "questions_per_step=2", "num_generations=4",
            "max_completion_length=12", "eval_size=2", "save_steps=2", "onnx_export=false",
            "reward_function=length_reward:near_twelve"]
    nodes = []
    for node in (0, 1):
        args = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
                "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port),
                "-m", "grpo", "train", "--run-dir", str(run), "--quiet"]
        for s in sets:
            args += ["--set", s]
        nodes.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()))
    outs = [p.communicate(timeout=300) for p in nodes]
    assert all(p.returncode == 0 for p in nodes), outs[0][1][-2000:] + outs[1][1][-2000:]
    assert [json.loads(x)["type"] for x in outs[0][0].splitlines()].count("started") == 1 and outs[1][0] == ""
    assert [r["step"] for r in _rows(run)] == [1, 2] and (run / "checkpoints" / "step_000002").is_dir()
