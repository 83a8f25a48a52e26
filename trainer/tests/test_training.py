"""End to end on CPU with the real tiny model: a short run learns, a killed run resumes, control works."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grpo import records
from grpo.rundir import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--set", "eval_size=32", "--set", "questions_per_step=4", "--set", "num_generations=4",
        "--set", "max_completion_length=48", "--quiet"]


def trainer(run_dir: Path, *args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "trainer"), str(Path(__file__).parent / "fixtures")])}
    return subprocess.Popen([sys.executable, "-m", "grpo", "train", "--run-dir", str(run_dir), *FAST, *args],
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def stream_lines(text: str) -> list[dict]:
    lines = [json.loads(line) for line in text.splitlines()]  # every stdout line is protocol JSON
    assert all(m["v"] == 1 and "type" in m for m in lines)
    schema = records.schema()
    assert [e for m in lines for e in records.validate("TrainerMessage", m, schema)] == []  # the record contract
    return lines


def wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"trainer exited early: {proc.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_short_run_reward_rises_and_writes_the_run_directory(tmp_path):
    run = tmp_path / "run"
    p = trainer(run, "--set", "sft_steps=60", "--set", "sft_save_steps=50", "--set", "sft_cache=false", "--set", "max_steps=30", "--set", "questions_per_step=8",
                "--set", "num_generations=8", "--set", "learning_rate=1e-3", "--set", "log_samples_steps=10",
                "--set", "eval_steps=0", "--set", "reward_function=length_reward:near_twelve")
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    msgs = stream_lines(out)
    assert msgs[0]["type"] == "started"
    assert {m["type"] for m in msgs} >= {"started", "status", "progress", "metrics", "samples", "event"}

    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 30
    metrics, bad = read_jsonl(run / "metrics.jsonl")
    assert bad == 0 and [m["step"] for m in metrics] == list(range(1, 31))
    for key in ("reward/mean", "reward/std", "accuracy", "frac_reward_zero_std", "kl", "clip_ratio/low",
                "clip_ratio/high", "entropy", "loss", "grad_norm", "learning_rate", "completion_length/mean",
                "completion_length/max", "truncated_ratio", "advantage/mean", "advantage/std", "advantage/min",
                "advantage/max", "time/generate", "time/train", "tokens_per_second"):
        assert key in metrics[0], key
    first = sum(m["reward/mean"] for m in metrics[:8]) / 8
    last = sum(m["reward/mean"] for m in metrics[-8:]) / 8
    assert last > first + 0.1, (first, last)
    assert metrics[-1]["kl"] > 0

    samples, _ = read_jsonl(run / "samples.jsonl")
    group = samples[-1]
    assert len(group["completions"]) == 8 and len(group["tokens"]) == 8
    tok = group["tokens"][0]
    assert len(tok["text"]) == len(tok["logp"]) == len(tok["kl"]) == len(tok["advantage"]) == len(tok["entropy"])
    events, _ = read_jsonl(run / "events.jsonl")
    kinds = [e["kind"] for e in events]
    assert "checkpoint" in kinds and kinds.count("phase") >= 2
    sft_end = next(e for e in events if e["kind"] == "phase" and e.get("phase") == "grpo")
    assert 0 <= sft_end["sft_accuracy"] <= 1
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["sft_000050", "step_000000", "step_000030"]  # SFT checkpoints every sft_save_steps (50)
    assert records.check_run_dir(run) == []


def test_an_sft_only_run_evaluates_its_end_once(tmp_path):
    run = tmp_path / "run"
    p = trainer(run, "--set", "sft_steps=4", "--set", "max_steps=0", "--set", "eval_size=4", "--set", "eval_samples=2",
                "--set", "eval_k=1,2", "--set", "onnx_export=false")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    evals = [e for e in read_jsonl(run / "events.jsonl")[0] if e["kind"] == "eval"]
    assert [(e["step"], "pass_at_k" in e) for e in evals] == [(0, True)]  # SFT's end is GRPO's start and end


def test_sigkill_then_resume(tmp_path):
    run = tmp_path / "run"
    p = trainer(run, "--set", "sft_steps=20", "--set", "max_steps=200", "--set", "save_steps=3")
    try:
        wait_for(lambda: (run / "checkpoints" / "step_000003").is_dir() and
                 len(read_jsonl(run / "metrics.jsonl")[0]) >= 4, 300, p)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "running"  # it never got to say otherwise
    rows, _ = read_jsonl(run / "metrics.jsonl")  # whatever was cut, the metrics parse
    assert rows
    latest = max(int(c.name.split("_")[1]) for c in (run / "checkpoints").glob("step_*") if c.name[-4:] != ".tmp")

    p = trainer(run, "--resume", "--set", f"max_steps={latest + 2}")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    started = stream_lines(out)[0]
    assert started["type"] == "started" and started["resumed_from"] == latest
    assert started["config"]["max_steps"] == latest + 2
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == latest + 2
    steps = [m["step"] for m in read_jsonl(run / "metrics.jsonl")[0]]
    assert steps == list(range(1, latest + 3))  # rows past the checkpoint were replaced, none duplicated
    assert records.check_run_dir(run) == []  # the resume event included


def test_stop_and_pause_over_stdin(tmp_path):
    run = tmp_path / "run"
    p = trainer(run, "--set", "sft_steps=10", "--set", "max_steps=500", stdin=subprocess.PIPE)
    wait_for(lambda: len(read_jsonl(run / "metrics.jsonl")[0]) >= 1, 300, p)
    p.stdin.write(json.dumps({"v": 1, "type": "pause", "id": "a"}) + "\n")
    p.stdin.write("this is not json\n")
    p.stdin.flush()
    wait_for(lambda: json.loads((run / "status.json").read_text())["state"] == "paused", 60, p)
    paused_at = json.loads((run / "status.json").read_text())["step"]
    time.sleep(1.5)
    assert json.loads((run / "status.json").read_text())["step"] == paused_at
    p.stdin.write(json.dumps({"v": 1, "type": "resume"}) + "\n")
    p.stdin.flush()
    wait_for(lambda: json.loads((run / "status.json").read_text())["step"] > paused_at, 60, p)
    p.stdin.write(json.dumps({"v": 1, "type": "stop"}) + "\n")
    p.stdin.flush()
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "stopped"
    assert (run / status["last_checkpoint"]).is_dir()
    assert int(status["last_checkpoint"].split("_")[-1]) == status["step"]
    assert records.check_run_dir(run) == []  # control events included
    responses = [m for m in stream_lines(out) if m["type"] == "response"]
    assert any(r["ok"] is False and "not JSON" in r["error"] for r in responses)
    assert any(r["ok"] and r["id"] == "a" for r in responses)


def test_stop_during_sft_leaves_a_resumable_checkpoint(tmp_path):
    run = tmp_path / "run"
    p = trainer(run, "--set", "sft_steps=100000", "--set", "max_steps=2", stdin=subprocess.PIPE)
    wait_for(lambda: json.loads((run / "status.json").read_text() or "{}").get("sft_step", 0) >= 10
             if (run / "status.json").exists() else False, 120, p)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=120)
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "stopped" and status["last_checkpoint"].startswith("checkpoints/sft_")
    p = trainer(run, "--resume", "--set", "sft_steps=20")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert json.loads((run / "status.json").read_text())["state"] == "finished"


def test_reward_function_errors_become_zero_and_are_reported(tmp_path):
    run = tmp_path / "run"
    p = trainer(run, "--set", "sft_steps=0", "--set", "max_steps=2", "--set", "reward_function=length_reward:sometimes_fails")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    warnings = [e for e in read_jsonl(run / "events.jsonl")[0] if e["kind"] == "warning" and e.get("code") == "reward_error"]
    assert warnings and warnings[0]["count"] > 0 and "sevens" in warnings[0]["message"]


def test_bad_dataset_rows_are_skipped_and_counted(tmp_path):
    data = tmp_path / "data.jsonl"
    good = [json.dumps({"question": f"{i}+1", "answer": str(i + 1)}) for i in range(10)]
    data.write_text("\n".join(good + ["not json", json.dumps({"question": "1+1"}), json.dumps([1, 2])]) + "\n")
    run = tmp_path / "run"
    p = trainer(run, "--set", f"task={data}", "--set", "max_steps=1", "--set", "sft_steps=0")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    bad = [e for e in read_jsonl(run / "events.jsonl")[0] if e.get("code") == "bad_rows"]
    assert bad and bad[0]["count"] == 3
