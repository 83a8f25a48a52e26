"""Replay (replay.py): a logged step re-applied from the state before it. Under the run's own settings it must
reproduce the policy the run logged after that step — the test that the replay is the real step — on the
built-in model and on a tiny random Qwen2 checkpoint trained with LoRA; variants change what the update does."""

import json
import os
import subprocess
import sys

import pytest
import torch
from child import FIXTURES, ROOT, Proc

from grpo import algorithm, replay

# CPU float32, the same ops in the same order: the trainer's and the replay's log-probs after the update agree to
# rounding (measured: exactly 0 on this machine); the bound leaves room for other BLAS builds
TOLERANCE = 1e-5

SMALL = ["max_steps=4", "sft_steps=0", "eval_size=4", "eval_steps=0", "log_samples_steps=2", "onnx_export=false",
         "questions_per_step=2", "num_generations=4", "max_completion_length=16", "answer_fallback=on",
         "save_steps=2", "learning_rate=0.003"]


def _grpo(*args, timeout=600):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "trainer"), str(FIXTURES)])}
    return subprocess.run([sys.executable, "-m", "grpo", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _train(run, *sets, resume=False):
    args = ["train", "--run-dir", str(run), "--quiet", *(["--resume"] if resume else [])]
    for s in sets:
        args += ["--set", s]
    p = _grpo(*args)
    assert p.returncode == 0, p.stderr[-3000:]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The built-in model, 4 steps, μ = 2 (π_old is scored and the second update is clipped), a length reward so
    every group carries signal, replay records at steps 1, 2 and 4."""
    run = tmp_path_factory.mktemp("replay") / "run"
    _train(run, *SMALL, "num_iterations=2", "reward_function=length_reward:near_twelve")
    return run


def test_the_trainer_keeps_a_record_at_each_logged_step(run):
    assert replay.records(run) == [1, 2, 4]
    logged = [json.loads(x)["step"] for x in (run / "samples.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 4]
    meta = json.loads((run / "replay" / "step_000004" / "meta.json").read_text())
    assert meta["step"] == 4 and len(meta["texts"]) == 8 and meta["G"] == 4


def test_replay_with_the_runs_own_settings_reproduces_every_logged_step(run):
    for step in replay.records(run):
        result = replay.replay(run, step)
        own = result["variants"][0]
        assert own["name"] == "run" and own["settings"] == {}
        assert own["reproduced"] <= TOLERANCE, (step, own["reproduced"])
    # and it moved the policy: the step's Δ log π is not zero
    assert max(abs(d) for d in own["delta_seq"]) > 1e-3


def test_a_mutated_step_is_not_reproduced(run, tmp_path):
    """The reproduction check can fail: a record whose state is one optimizer step off is caught."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    from safetensors.torch import load_file, save_file

    from grpo import checkpoint
    state = copy / "replay" / "step_000004" / "state.safetensors"
    tensors = load_file(str(state))
    name = next(iter(tensors))
    tensors[name] = tensors[name] * 1.01
    save_file(tensors, str(state))
    checkpoint.write_checksums(state.parent)  # re-signed: only the numbers are wrong
    assert replay.replay(copy, 4)["variants"][0]["reproduced"] > 1e-3


def test_variants_replay_from_the_same_state_and_differ_where_their_formulas_differ(run):
    result = replay.replay(run, 4, [{"loss_type": "dr_grpo"}, {"scale_rewards": "none"}, {"learning_rate": 3e-9},
                                    {"num_iterations": 1}, {"num_iterations": 1, "importance_sampling_level": "sequence"},
                                    {"importance_sampling_level": "sequence"}])
    own, dr, none, frozen, mu1, gspo1, gspo2 = result["variants"]
    # GSPO on-policy (μ = 1: every ratio is 1) is token-level GRPO's update; off-policy (μ = 2) it is not
    flat = lambda v: [d for ds in v["delta_logp"] for d in ds]  # noqa: E731
    gap = lambda a, b: max(abs(x - y) for x, y in zip(flat(a), flat(b)))  # noqa: E731
    assert gap(gspo1, mu1) < 1e-5 < 1e-3 < gap(gspo2, own)  # Δ is printed to 6 significant digits
    assert [v["name"] for v in result["variants"]] == ["run", "loss_type=dr_grpo", "scale_rewards=none",
                                                       "learning_rate=3e-09", "num_iterations=1",
                                                       "num_iterations=1, importance_sampling_level=sequence",
                                                       "importance_sampling_level=sequence"]
    assert dr["loss"] != pytest.approx(own["loss"], abs=1e-6)
    # a million times smaller learning rate: Adam's steps, hence Δ log π, shrink with it
    moved = lambda v: max(abs(d) for ds in v["delta_logp"] for d in ds)  # noqa: E731
    assert 0 < moved(frozen) < 1e-4 * moved(own)
    # one update instead of two moves the policy less
    assert sum(map(abs, mu1["delta_seq"])) < sum(map(abs, own["delta_seq"]))
    # scale_rewards=none: the advantages are recomputed from the logged rewards (r − mean, no division by std);
    # the first update's gradient then scales by the groups' stds, which the grad norm shows
    rewards = torch.tensor([c["reward"] for c in result["completions"]]).view(-1, 4)
    assert (rewards.std(1) > 0).all()
    assert none["grad_norm"] != pytest.approx(own["grad_norm"], rel=1e-3)
    want = algorithm.scaled_advantages(rewards, "group").view(-1)
    assert [c["advantage"] for c in result["completions"]] == pytest.approx(want.tolist(), abs=1e-5)
    # every variant's ledger accounts for the same tokens
    assert len({v["ledger"]["ledger/tokens"] for v in result["variants"]}) == 1
    # the update pushes the best completions of each group up and the worst down
    for v in (own, dr):
        for g in range(rewards.shape[0]):
            adv = [c["advantage"] for c in result["completions"][g * 4:(g + 1) * 4]]
            delta = v["delta_seq"][g * 4:(g + 1) * 4]
            assert delta[adv.index(max(adv))] > delta[adv.index(min(adv))]


def test_bad_requests_say_what_is_wrong(run, tmp_path):
    with pytest.raises(replay.ReplayError, match="step 3 has no replay record.*replayable steps: 1, 2, 4"):
        replay.replay(run, 3)
    with pytest.raises(replay.ReplayError, match="setting 'temperature' cannot be replayed"):
        replay.replay(run, 2, [{"temperature": 2.0}])
    with pytest.raises(replay.ReplayError, match="setting 'loss_type' must be one of"):
        replay.replay(run, 2, [{"loss_type": "ppo"}])
    p = _grpo("replay", "--run-dir", str(run), "--step", "3")
    assert p.returncode == 1 and "replayable steps: 1, 2, 4" in p.stderr


def test_a_damaged_or_linked_record_is_refused(run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    batch = copy / "replay" / "step_000002" / "batch.safetensors"
    batch.write_bytes(batch.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(replay.ReplayError, match="batch.safetensors: damaged"):
        replay.replay(copy, 2)
    (copy / "replay" / "step_000004" / "optimizer.pt").unlink()
    (copy / "replay" / "step_000004" / "optimizer.pt").symlink_to(run / "replay" / "step_000004" / "optimizer.pt")
    with pytest.raises(replay.ReplayError, match="symbolic link"):
        replay.replay(copy, 4)


def test_the_cli_prints_what_each_variant_moved(run):
    p = _grpo("replay", "--run-dir", str(run), "--step", "2", "--set", "loss_type=dr_grpo",
              "--set", "importance_sampling_level=sequence,epsilon=0.1", "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert [v["name"] for v in result["variants"]] == ["run", "loss_type=dr_grpo",
                                                       "importance_sampling_level=sequence, epsilon=0.1"]
    words = _grpo("replay", "--run-dir", str(run), "--step", "2")
    assert words.returncode == 0 and "reproduces the logged step" in words.stdout


def test_resume_and_the_limit_prune_records(tmp_path):
    run = tmp_path / "run"
    _train(run, *SMALL, "max_steps=6", "log_samples_steps=1", "replay_total_limit=3", "save_steps=3")
    assert replay.records(run) == [4, 5, 6]
    (run / "checkpoints" / "step_000006").rename(run / "checkpoints" / "gone")  # resume from step 3
    import shutil
    shutil.rmtree(run / "checkpoints" / "gone")
    (run / "replay" / "step_000002").mkdir()  # a stray folder (no checksums.json) is not a record
    _train(run, "max_steps=4", resume=True)
    assert replay.records(run) == [4]  # 5 and 6 were of the replaced trajectory; 4 is the new step's
    assert replay.replay(run, 4)["variants"][0]["reproduced"] <= TOLERANCE


def test_lora_on_a_qwen2_checkpoint_replays_through_serve(tiny_dirs, tmp_path):
    """A tiny random Qwen2 with a subword tokenizer and chat template, LoRA adapters: the record holds the
    adapters only, and `serve` answers the replay request with the run's step reproduced."""
    data = tmp_path / "gsm.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {a} plus {b}?", "answer": f"#### {a + b}"}) + "\n"
                            for a in range(1, 6) for b in range(1, 5)))
    run = tmp_path / "run"
    _train(run, f"model={tiny_dirs['qwen2']}", f"task={data}", "lora_r=4", "learning_rate=0.01",
           "reward_function=length_reward:near_twelve", "max_steps=2", "log_samples_steps=2", "questions_per_step=2",
           "num_generations=4", "max_completion_length=12", "eval_size=2", "logprob_chunk_tokens=16",
           "onnx_export=false", "save_steps=1")
    from safetensors.torch import load_file
    state = load_file(str(run / "replay" / "step_000002" / "state.safetensors"))
    assert state and all("lora_" in n for n in state)
    serve = Proc(["serve", "--checkpoint", str(run)], env_paths=[str(FIXTURES)])
    try:
        assert serve.next(lambda m: True)["type"] == "started"
        r = serve.ok("replay", step=2, variants=[{"loss_type": "dr_grpo"}])
        bad = serve.request("replay", step=7)
        wrong = serve.request("replay", step=2, variants=[{"max_steps": 3}])
    finally:
        serve.p.kill()
        serve.p.wait()
    own, dr = r["variants"]
    assert own["reproduced"] <= TOLERANCE and dr["name"] == "loss_type=dr_grpo"
    assert max(abs(d) for d in own["delta_seq"]) > 0
    assert r["completions"][0]["tokens"] and len(own["delta_logp"][0]) == len(r["completions"][0]["tokens"])
    assert not bad["ok"] and "replayable steps: 1, 2" in bad["error"]
    assert not wrong["ok"] and "'max_steps' cannot be replayed" in wrong["error"]


def test_records_larger_than_replay_max_gb_are_not_written(tmp_path):
    run = tmp_path / "run"
    _train(run, *SMALL, "replay_max_gb=0.000001")
    assert replay.records(run) == []
    events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
    warned = [e for e in events if e.get("code") == "replay_record"]
    assert len(warned) == 1 and "more than replay_max_gb=1e-06" in warned[0]["message"]
