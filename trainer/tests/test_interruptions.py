"""Issue 21, item 7: a full disk during a checkpoint, Ctrl-C in `eval`, a stop during evaluation, and status.json
keeping up with SFT checkpoints. Real processes on the built-in model; a full disk is injected (a failing writer
and a nearly full filesystem as shutil.disk_usage reports it), not made."""

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_training import ROOT, stream_lines, trainer, wait_for

from grpo import checkpoint, models
from grpo.rundir import RunDir, read_jsonl

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}


# ------------------------------------------------------------------------------------- a full disk
@pytest.fixture()
def saving(tmp_path):
    """What Trainer._save hands checkpoint.save: a started run directory, the built-in model, AdamW."""
    run = RunDir(tmp_path / "run")
    run.start({}, max_steps=3, sft_steps=0, resumed_from=None)
    model, tok = models.load(models.BUILTIN, 0, torch.device("cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = checkpoint.rng_state(random.Random(0), torch.Generator().manual_seed(0))
    yield dict(run=run, policy=model, tokenizer=tok, optimizer=opt, scheduler=None, rng=rng,
               trainer_state={"sft_step": 0, "ref_reset_at": None})
    run.close()


def _tmp_folders(run: RunDir) -> list[str]:
    return [p.name for p in (run.path / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def test_a_zip_writer_error_on_a_full_disk_says_no_space(saving, monkeypatch):
    checkpoint.save(step=1, phase="grpo", **saving)  # the previous checkpoint: its size is what one needs
    need = sum(f.stat().st_size for f in (saving["run"].path / "checkpoints" / "step_000001").rglob("*") if f.is_file())

    def torn(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file "
                           "data/0: unexpected pos 123 vs 96")

    monkeypatch.setattr(checkpoint.torch, "save", torn)
    nearly_full = shutil.disk_usage(saving["run"].path)._replace(free=1 << 19)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: nearly_full)
    with pytest.raises(OSError) as e:
        checkpoint.save(step=3, phase="grpo", **saving)
    assert e.value.errno == errno.ENOSPC
    msg = str(e.value)
    assert "no space left on /" in msg and "writing checkpoint step_000003" in msg
    assert f"needed about {-(-need // (1 << 20))} MB, 0 MB free" in msg, msg
    assert "unexpected pos" not in msg
    assert _tmp_folders(saving["run"]) == []
    assert [p.name for p in checkpoint.list_checkpoints(saving["run"].path)] == ["step_000001"]


def test_enospc_from_safetensors_says_no_space_and_leaves_no_tmp(saving, monkeypatch):
    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(saving["policy"]), "save_pretrained", full)
    with pytest.raises(OSError) as e:  # no previous checkpoint: weights + AdamW's two moments
        checkpoint.save(step=0, phase="grpo", **saving)
    assert e.value.errno == errno.ENOSPC and "writing checkpoint step_000000" in str(e.value)
    params = sum(p.numel() * p.element_size() for p in saving["policy"].parameters())
    assert f"needed about {-(-3 * params // (1 << 20))} MB" in str(e.value)
    assert _tmp_folders(saving["run"]) == []


def test_other_write_errors_pass_through_and_leave_no_tmp(saving, monkeypatch):
    monkeypatch.setattr(checkpoint.torch, "save", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):  # plenty of space: not a full disk
        checkpoint.save(step=2, phase="grpo", **saving)
    assert _tmp_folders(saving["run"]) == []


FULL_DISK_AT_STEP_2 = """
import shutil, sys, torch
real = torch.save
def save(obj, f, *a, **k):
    if "step_000002" in str(f):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: unexpected pos 123 vs 96")
    return real(obj, f, *a, **k)
torch.save = save
free = shutil.disk_usage
shutil.disk_usage = lambda p: free(p)._replace(free=1 << 20)
from grpo.cli import main
sys.exit(main())
"""


def test_a_full_disk_mid_checkpoint_fails_the_run_resumably(tmp_path):
    run = tmp_path / "run"
    args = ["train", "--run-dir", str(run), "--set", "eval_size=8", "--set", "eval_samples=2", "--set", "eval_k=1,2",
            "--set", "questions_per_step=2", "--set", "num_generations=2", "--set", "max_completion_length=16",
            "--set", "sft_steps=0", "--set", "save_steps=1", "--set", "onnx_export=false", "--quiet"]
    p = subprocess.run([sys.executable, "-c", FULL_DISK_AT_STEP_2, *args, "--set", "max_steps=3"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and "no space left on /" in p.stderr, p.stderr
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and "writing checkpoint step_000002" in status["error"], status
    assert "needed about" in status["error"] and "MB free" in status["error"]
    assert status["last_checkpoint"] == "checkpoints/step_000001"
    assert sorted(c.name for c in (run / "checkpoints").iterdir()) == ["step_000000", "step_000001"]
    p = subprocess.run([sys.executable, "-m", "grpo", *args, "--resume", "--set", "max_steps=3"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == 0, p.stderr
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 3


# ------------------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_in_eval_exits_quietly(tiny_run, tmp_path):
    data = tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps({"question": f"{i}+{i}", "answer": str(2 * i)}) + "\n" for i in range(400)))
    p = subprocess.Popen([sys.executable, "-m", "grpo", "eval", "--checkpoint", str(tiny_run / "checkpoints" / "step_000005"),
                          "--data", str(data), "--samples", "64", "--k", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:  # evaluating: torch is loaded and the process has been busy for a while
        wait_for(lambda: "libtorch_cpu" in Path(f"/proc/{p.pid}/maps").read_text(), 120, p)
        time.sleep(4)
        assert p.poll() is None
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "grpo: interrupted", err
    assert out == ""


# ------------------------------------------------------------------------------------- status.json
def test_status_names_the_sft_step_of_each_sft_checkpoint(tmp_path):
    run = tmp_path / "run"
    p = trainer(run, "--set", "sft_steps=9", "--set", "sft_save_steps=7", "--set", "sft_cache=false", "--set", "max_steps=0", "--set", "eval_size=4",
                "--set", "eval_samples=2", "--set", "eval_k=1,2", "--set", "onnx_export=false")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    saved = [m["status"] for m in stream_lines(out) if m["type"] == "status"
             and (m["status"].get("last_checkpoint") or "").startswith("checkpoints/sft_")]
    assert saved, "no SFT checkpoint"
    for s in saved:  # every status.json written from an SFT checkpoint's commit on names its step
        assert s["sft_step"] >= int(s["last_checkpoint"].rsplit("_", 1)[1]), s
    first = saved[0]
    assert first["last_checkpoint"] == "checkpoints/sft_000007" and first["sft_step"] == 7, first


# ------------------------------------------------------------------------------------- stop during evaluation
def _status(run: Path) -> dict:
    try:
        return json.loads((run / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def test_a_stop_during_evaluation_ends_it_at_the_next_batch(tmp_path):
    run = tmp_path / "run"  # SFT's end evaluates 400 questions × 32 samples: 50 batches, tens of seconds
    p = trainer(run, "--set", "sft_steps=2", "--set", "max_steps=5", "--set", "eval_size=400", "--set", "eval_samples=32",
                "--set", "onnx_export=false", "--set", "sft_cache=false", stdin=subprocess.PIPE)
    try:
        wait_for(lambda: _status(run).get("sft_step") == 2, 300, p)  # SFT's last step: its evaluation follows
        time.sleep(3)
        assert p.poll() is None
        t0 = time.time()
        p.stdin.write(json.dumps({"v": 1, "type": "pause", "id": "p"}) + "\n")  # obeyed after the evaluation
        p.stdin.write(json.dumps({"v": 1, "type": "stop", "id": "s"}) + "\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=300)
        took = time.time() - t0
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert took < 15, f"the stop took {took:.1f}s"
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "stopped" and status["last_checkpoint"] == "checkpoints/sft_000002", status
    events, _ = read_jsonl(run / "events.jsonl")
    assert [e for e in events if e["kind"] == "eval"] == []  # the partial evaluation is not recorded
    assert not any(e["kind"] == "phase" and e.get("phase") == "grpo" for e in events)
    responses = {m["id"]: m for m in stream_lines(out) if m["type"] == "response"}
    assert responses["s"]["ok"]
    assert responses["p"]["ok"] is False and "stopped before" in responses["p"]["error"]  # answered all the same
