"""A real TRL GRPOTrainer (tiny random Qwen2, CPU, 3 steps) with `attach`, and `import-trl` of the same run:
the run directory has our format, the group is TRL's own, and `serve` answers about its checkpoints."""

import json
import os
import subprocess
import sys

import pytest
import torch
from child import ROOT, Proc

from grpo import algorithm, records
from grpo.rundir import read_jsonl

import trl  # noqa: E402,F401  (bench/requirements.txt; scripts/setup.sh installs it for the tests)

from grpo.integrations.trl import attach  # noqa: E402
from grpo.integrations.trl_example import tiny_trainer  # noqa: E402

STEPS, G = 3, 4


@pytest.fixture(scope="module")
def trl_run(tiny_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("trl")
    trainer = tiny_trainer(tiny_dirs["qwen2"], root / "out", steps=STEPS, num_generations=G, save_steps=2,
                           log_completions=True)
    run_dir = root / "run"
    attach(trainer, run_dir, log_samples_steps=2)
    torch.manual_seed(0)
    trainer.train()
    return {"trainer": trainer, "run": run_dir, "out": root / "out", "model": tiny_dirs["qwen2"], "root": root}


def test_status_config_and_metrics(trl_run):
    run = trl_run["run"]
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == STEPS and status["pid"] == os.getpid()
    assert status["last_checkpoint"] == f"checkpoints/step_{STEPS:06d}"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["num_generations"] == G and cfg["beta"] == 0.04 and cfg["max_steps"] == STEPS
    assert cfg["model"] == trl_run["model"] and cfg["source"] == "trl" and cfg["trl"]["per_device_train_batch_size"] == 2 * G
    rows, bad = read_jsonl(run / "metrics.jsonl")
    assert bad == 0 and [r["step"] for r in rows] == list(range(1, STEPS + 1))
    history = [h for h in trl_run["trainer"].state.log_history if "reward" in h]
    assert len(history) == STEPS  # one TRL log per step (logging_steps=1): the zip below compares every row
    for row, h in zip(rows, history):
        assert row["reward/mean"] == pytest.approx(h["reward"]) and row["kl"] == pytest.approx(h["kl"])
        assert row["reward/std"] == pytest.approx(h["reward_std"]) and row["rewards/digits/mean"] == pytest.approx(h["rewards/digits/mean"])
        assert {"entropy", "loss", "grad_norm", "learning_rate", "completion_length/mean", "clip_ratio/low",
                "elapsed", "time"} <= set(row)
    assert rows[0]["kl"] == 0 and rows[-1]["kl"] > 0  # the policy leaves the reference after its first update


def test_logged_group_is_trls(trl_run):
    groups, bad = read_jsonl(trl_run["run"] / "samples.jsonl")
    assert bad == 0 and [g["step"] for g in groups] == [1, 2]  # step 1, then every log_samples_steps
    for g in groups:
        assert len(g["completions"]) == len(g["rewards"]) == len(g["advantages"]) == len(g["tokens"]) == G
        r = torch.tensor(g["rewards"])
        want = (r - r.mean()) / (r.std() + 1e-4)
        assert g["advantages"] == pytest.approx(want.tolist(), abs=1e-4)
        funcs = g["reward_functions"]
        assert set(funcs) == {"digits", "brevity"}
        assert g["rewards"] == pytest.approx([a + b for a, b in zip(funcs["digits"], funcs["brevity"])])
        assert g["prompt"].startswith("<|im_start|>user\n") and g["question"] in g["prompt"]
        for i, t in enumerate(g["tokens"]):
            n = len(t["text"])
            assert n > 0 and all(len(t[k]) == n for k in ("logp", "old_logp", "ref_logp", "kl", "advantage", "entropy"))
            kl = algorithm.kl_k3(torch.tensor(t["logp"]), torch.tensor(t["ref_logp"]))
            assert t["kl"] == pytest.approx(kl.tolist(), abs=1e-5)
            assert t["advantage"] == pytest.approx([g["advantages"][i]] * n, abs=1e-6)
            assert all(lp <= 0 for lp in t["logp"]) and all(e >= 0 for e in t["entropy"])
            assert t["old_logp"] == t["logp"]  # num_iterations = 1: TRL keeps no π_old, it is the policy
    # step 1: the policy is the reference, so our scorer's log-probs equal TRL's reference tensor
    first = groups[0]["tokens"]
    assert sum(first[0]["logp"]) == pytest.approx(sum(first[0]["ref_logp"]), abs=1e-3)
    assert max(max(t["kl"]) for t in first) < 1e-5
    assert max(max(t["kl"]) for t in groups[1]["tokens"]) > 0


def test_checkpoints_are_hard_links_of_trls(trl_run):
    ck = trl_run["run"] / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["step_000000", "step_000002", "step_000003"]
    for step in (2, 3):
        ours = ck / f"step_{step:06d}" / "model.safetensors"
        theirs = trl_run["out"] / f"checkpoint-{step}" / "model.safetensors"
        assert not ours.is_symlink() and os.stat(ours).st_ino == os.stat(theirs).st_ino
        state = json.loads((ck / f"step_{step:06d}" / "trainer_state.json").read_text())
        assert state["step"] == step and state["trl_checkpoint"] == f"checkpoint-{step}"
        assert not (ck / f"step_{step:06d}" / "optimizer.pt").exists()  # no pickles in the run directory
    assert os.stat(ck / "step_000000" / "model.safetensors").st_ino == \
        os.stat(os.path.join(trl_run["model"], "model.safetensors")).st_ino


def test_serve_answers_score_on_the_trl_run(trl_run):
    proc = Proc(["serve", "--checkpoint", str(trl_run["run"])])
    try:
        started = proc.next(lambda m: True, timeout=120)
        assert started["type"] == "started" and started["step"] == STEPS, proc.stderr()
        assert started["checkpoint"].endswith(f"step_{STEPS:06d}")
        r = proc.ok("score", prompt="What is 12 plus 30?", text=" 12 + 30 = 42")
        assert len(r["tokens"]) == len(r["logp"]) == len(r["ref_logp"]) == len(r["kl"]) > 0
        assert r["source"]["reference"] == "step_000000" and r["sequence_kl"] > 0
        proc.send_raw(json.dumps({"v": 1, "type": "stop", "id": "s"}))
        assert proc.p.wait(timeout=60) == 0
    finally:
        if proc.p.poll() is None:
            proc.p.kill()


def test_attach_refuses_bad_targets(trl_run):
    trainer = trl_run["trainer"]
    with pytest.raises(ValueError, match="output_dir"):
        attach(trainer, trl_run["out"])
    with pytest.raises(ValueError, match="already writes"):
        attach(trainer, trl_run["root"] / "other")
    with pytest.raises(TypeError, match="GRPOTrainer"):
        attach(object(), trl_run["root"] / "other")


def test_import_trl(trl_run):
    run = trl_run["root"] / "imported"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    cmd = [sys.executable, "-m", "grpo", "import-trl", str(trl_run["out"]), "--run-dir", str(run),
           "--model", trl_run["model"]]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"run_dir": str(run.resolve()), "metrics": STEPS, "samples": STEPS, "checkpoints": 3}
    live, _ = read_jsonl(trl_run["run"] / "metrics.jsonl")
    rows, _ = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert [r["reward/mean"] for r in rows] == pytest.approx([r["reward/mean"] for r in live])
    groups, _ = read_jsonl(run / "samples.jsonl")
    assert [g["step"] for g in groups] == [1, 2, 3] and all(len(g["completions"]) == G for g in groups)
    for g in groups:
        # sequence-level (no tokens, no truncated), and still a GroupRecord the extension accepts
        assert g["level"] == "sequence" and "tokens" not in g and "truncated" not in g
        assert records.validate("GroupRecord", g) == []
        r = torch.tensor(g["rewards"])
        assert g["advantages"] == pytest.approx(((r - r.mean()) / (r.std() + 1e-4)).tolist(), abs=1e-4)
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == STEPS
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000000", "step_000002", "step_000003"]
    # a second import into the same directory is refused, naming it
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 1 and "already holds a run" in p.stderr


def _state(run) -> dict:
    try:
        return json.loads((run / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def test_sigterm_to_a_trl_script_marks_the_run_stopped(tmp_path):
    """A real TRL script with attach(), killed by SIGTERM mid-training: status.json no longer says running
    (with the signal named), and the default action still ends the process."""
    import signal
    import time

    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    p = subprocess.Popen([sys.executable, "-m", "grpo.integrations.trl_example", "--run-dir", str(run), "--output-dir",
                          str(tmp_path / "out"), "--steps", "500", "--save-steps", "0", "--log-samples-steps", "0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        end = time.time() + 300
        while not (_state(run).get("state") == "running" and _state(run).get("step", 0) >= 1):
            assert p.poll() is None, p.stderr.read()
            assert time.time() < end, "never running"
            time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == -signal.SIGTERM, err  # the signal was not swallowed
    status = _state(run)
    assert status["state"] == "stopped" and status["step"] >= 1, status
    events, _ = read_jsonl(run / "events.jsonl")
    assert events[-1]["kind"] == "control" and events[-1]["signal"] == "SIGTERM"
    assert records.check_run_dir(run) == []
