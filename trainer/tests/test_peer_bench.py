"""bench/peer_trl.py, our trainer against TRL's GRPOTrainer: the settings mapping, the training clock that
leaves evaluation out, the summary over seeds, and a smoke run (one seed, two steps each, a tiny SFT start)
that checks both trainers ran and the JSON and the plot were written."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grpo import config as config_mod

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # what `python bench/peer_trl.py` has: its folder's helpers (hostinfo)
_spec = importlib.util.spec_from_file_location("peer_trl", ROOT / "bench" / "peer_trl.py")
peer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer)

HAS_TRL = importlib.util.find_spec("trl") is not None
needs_trl = pytest.mark.skipif(not HAS_TRL, reason="TRL is not installed (bench/requirements.txt; "
                               "scripts/setup.sh installs it)")


def test_settings_come_from_our_config_defaults_and_set_overrides():
    defaults = config_mod.Config()
    cfg = peer.bench_config([])
    for key in ("num_generations", "questions_per_step", "learning_rate", "beta", "epsilon", "temperature",
                "max_completion_length", "max_steps", "loss_type", "scale_rewards", "num_iterations"):
        assert getattr(cfg, key) == getattr(defaults, key), key
    assert cfg.save_steps == 0 and cfg.logging_steps == 1  # fixed by the benchmark for both
    cfg = peer.bench_config(["num_generations=4", "learning_rate=3e-5", "eval_steps=5"])
    assert (cfg.num_generations, cfg.learning_rate, cfg.eval_steps) == (4, 3e-5, 5)


@pytest.mark.parametrize("override, named", [("task=data.jsonl", "task"), ("reward=process", "reward"),
                                             ("model=/some/dir", "model"), ("save_steps=10", "save_steps"),
                                             ("device=cuda", "device"), ("nonsense=1", "nonsense")])
def test_settings_that_cannot_be_compared_are_refused_by_name(override, named):
    with pytest.raises(config_mod.ConfigError, match=named):
        peer.bench_config([override])


def test_trl_arguments_match_one_of_our_steps():
    cfg = peer.bench_config(["num_generations=8", "questions_per_step=32", "beta=0.04", "epsilon=0.2",
                             "loss_type=grpo", "max_steps=200", "learning_rate=1e-4"])
    a = peer.trl_arguments(cfg, seed=3)
    assert a["per_device_train_batch_size"] == 32 * 8 and a["num_generations"] == 8
    assert a["gradient_accumulation_steps"] == 1 and a["steps_per_generation"] == 1
    assert (a["beta"], a["epsilon"], a["epsilon_high"], a["loss_type"]) == (0.04, 0.2, 0.2, "grpo")
    assert (a["max_steps"], a["learning_rate"], a["lr_scheduler_type"], a["seed"]) == (200, 1e-4, "constant", 3)
    assert (a["adam_beta1"], a["adam_beta2"]) == (0.9, 0.99)  # our AdamW's betas
    assert a["gradient_checkpointing"] is False and a["bf16"] is False and a["use_cpu"] is True
    # mu updates per sampled batch: TRL counts each update as a step
    a = peer.trl_arguments(peer.bench_config(["num_iterations=2", "max_steps=10"]), seed=0)
    assert a["num_iterations"] == 2 and a["max_steps"] == 20


def test_ours_arguments_start_grpo_from_the_checkpoint_with_every_setting():
    cfg = peer.bench_config(["num_generations=4"])
    args = peer.ours_arguments(cfg, Path("/ckpt"), seed=2)
    sets = dict(a.split("=", 1) for a in args[1::2])
    assert args[::2] == ["--set"] * len(sets)
    assert sets["model"] == "/ckpt" and sets["sft_steps"] == "0" and sets["seed"] == "2"
    assert sets["num_generations"] == "4" and sets["save_steps"] == "0"
    config_mod.build_config(None, [f"{k}={v}" for k, v in sets.items()])  # all valid settings


def test_run_order_alternates_who_goes_first():
    assert peer.run_order([0, 1, 2]) == [(0, ("ours", "trl")), (1, ("trl", "ours")), (2, ("ours", "trl"))]


def test_our_clock_leaves_evaluation_out():
    t0 = 1000.0
    metrics = [  # step i ends at `time`; step 2 is followed by a 5 s evaluation
        {"step": 1, "time": t0 + 1.0, "elapsed": 1.0, "time/generate": 0.6, "completion_length/mean": 10, "reward/mean": 0.5},
        {"step": 2, "time": t0 + 2.5, "elapsed": 2.5, "time/generate": 0.9, "completion_length/mean": 12, "reward/mean": 0.6},
        {"step": 3, "time": t0 + 8.5, "elapsed": 8.5, "time/generate": 0.7, "completion_length/mean": 8, "reward/mean": 0.7},
    ]
    events = [{"kind": "phase", "phase": "grpo", "step": 0, "time": t0 - 3, "sft_accuracy": 0.4},
              {"kind": "eval", "step": 2, "time": t0 + 7.5, "accuracy": 0.7},
              {"kind": "eval", "step": 3, "time": t0 + 9.5, "accuracy": 0.8}]
    tl = peer.ours_timeline(metrics, events, n_completions=4)
    assert [s["total_s"] for s in tl["steps"]] == pytest.approx([1.0, 1.5, 1.0])
    assert [s["train_s"] for s in tl["steps"]] == pytest.approx([0.4, 0.6, 0.3])
    assert [s["completion_tokens"] for s in tl["steps"]] == [40, 48, 32]
    assert [(p["step"], p["accuracy"]) for p in tl["curve"]] == [(0, 0.4), (2, 0.7), (3, 0.8)]
    assert [p["clock_s"] for p in tl["curve"]] == pytest.approx([0.0, 2.5, 3.5])
    assert peer.time_to(tl["curve"], 0.75) == pytest.approx(3.5)
    assert peer.time_to(tl["curve"], 0.9) is None


def _run(step_s, curve, rss=100.0):
    steps = [{"step": i + 1, "total_s": s, "generate_s": s / 2, "train_s": s / 2, "completion_tokens": 100}
             for i, s in enumerate(step_s)]
    run = {"steps": steps, "curve": [{"step": i, "clock_s": c, "accuracy": a} for i, (c, a) in enumerate(curve)],
           "peak_rss_mb": rss, "process_wall_s": 10.0}
    run["summary"] = peer.summarise_run(run, 0.9)
    return run


def test_summary_medians_ratios_and_the_bar():
    ours = [_run([1, 1, 1], [(0, 0.5), (2, 0.92), (3, 0.95)]), _run([1, 2, 1], [(0, 0.5), (4, 0.91), (5, 0.93)]),
            _run([1, 1, 1], [(0, 0.5), (3, 0.8), (6, 0.85)])]  # the third never reaches 90%
    trl = [_run([3, 3, 3], [(0, 0.5), (9, 0.9), (10, 0.9)], rss=200), _run([3, 3, 3], [(0, 0.5), (8, 0.85)], rss=200),
           _run([4, 4, 4], [(0, 0.5), (12, 0.92)], rss=200)]
    out = peer.aggregate({"ours": ours, "trl": trl}, 0.9)
    med = out["medians"]
    assert med["ours"]["time_to_target_s"]["per_seed"] == [2, 4, None]
    assert med["ours"]["time_to_target_s"]["median"] == 4  # None counts as never: +inf
    assert med["trl"]["time_to_target_s"]["median"] == 12
    assert med["ours"]["median_step_s"]["median"] == 1 and med["trl"]["median_step_s"]["median"] == 3
    r = out["ratios"]
    assert r["time_to_target_trl_over_ours"] == pytest.approx(3.0)
    assert r["step_time_trl_over_ours"] == pytest.approx(3.0)
    assert r["peak_rss_trl_over_ours"] == pytest.approx(2.0)
    assert r["final_accuracy_ours_minus_trl"] == pytest.approx(0.93 - 0.9)
    assert out["bar"]["met"] is True
    # TRL ends more accurate: the bar fails even though ours is faster
    trl_better = [_run([3], [(0, 0.5), (9, 0.99)]) for _ in range(3)]
    assert peer.aggregate({"ours": ours, "trl": trl_better}, 0.9)["bar"]["met"] is False
    # ours never gets there (median): no speed-up to claim
    slow = [_run([1], [(0, 0.5), (1, 0.6)]) for _ in range(3)]
    out = peer.aggregate({"ours": slow, "trl": trl}, 0.9)
    assert out["ratios"]["time_to_target_trl_over_ours"] is None and out["bar"]["met"] is False


def test_the_default_target_is_the_accuracy_trl_ends_at():
    trl = [_run([1], [(0, 0.5), (5, 0.8), (9, a)]) for a in (0.9, 0.85, 0.95)]
    ours = [_run([1], [(0, 0.5), (3, 0.9)])]
    target = peer.trl_final_target({"ours": ours, "trl": trl})
    assert target == pytest.approx(0.9)  # the median of TRL's last evaluations, not of its best ones
    assert [peer.time_to(r["curve"], target) for r in trl] == [9, None, 9]
    with pytest.raises(RuntimeError, match="no held-out evaluation"):
        peer.trl_final_target({"ours": ours, "trl": [{"curve": []}]})


@needs_trl
def test_trl_accepts_the_mapped_arguments(tmp_path):
    import trl

    cfg = peer.bench_config(["num_generations=4", "questions_per_step=8", "num_iterations=2"])
    args = trl.GRPOConfig(output_dir=str(tmp_path), **peer.trl_arguments(cfg, seed=0))
    assert args.generation_batch_size == 32 and args.steps_per_generation == 1
    assert args.loss_type == "grpo" and args.num_iterations == 2 and args.beta == cfg.beta


@needs_trl
def test_smoke_both_trainers_run_and_the_results_are_written(tmp_path):
    out, png = tmp_path / "peer.json", tmp_path / "peer.png"
    sets = ["sft_steps=3", "sft_batch_size=8", "max_steps=2", "questions_per_step=2", "num_generations=2",
            "max_completion_length=8", "eval_steps=1", "eval_size=4"]
    argv = [sys.executable, str(ROOT / "bench" / "peer_trl.py"), "--seeds", "0", "--work", str(tmp_path / "work"),
            "--out", str(out), "--plot", str(png), "--note", "test"]
    for s in sets:
        argv += ["--set", s]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert png.stat().st_size > 1000
    assert res["machine"]["trl"] and res["machine"]["cores"] and res["machine"]["torch"]
    assert res["config"]["max_steps"] == 2 and res["trl_arguments"]["per_device_train_batch_size"] == 4
    assert res["approximations"] and res["settings"]
    for who in ("ours", "trl"):
        (run,) = res["runs"][who]
        steps = run["steps"]  # per-step records as columns
        assert steps["step"] == [1, 2]
        for key in ("total_s", "generate_s", "train_s", "completion_tokens"):
            assert all(v > 0 for v in steps[key]), (who, key)
        assert [p["step"] for p in run["curve"]] == [0, 1, 2]
        assert run["peak_rss_mb"] > 50
        for key in ("median_step_s", "median_generate_s", "median_train_s", "completion_tokens_per_s",
                    "final_accuracy", "peak_rss_mb"):
            assert res["medians"][who][key]["median"] is not None, (who, key)
        assert "time_to_target_s" in res["medians"][who]
    # the same start and the same evaluation: both see the same accuracy before training
    assert res["start_accuracy"]["ours"] == res["start_accuracy"]["trl"]
    assert res["ratios"]["step_time_trl_over_ours"] > 0 and "met" in res["bar"]
