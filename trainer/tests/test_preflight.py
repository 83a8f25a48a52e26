"""Preflight: the verdict on constructed cases from the default's own SFT start (scripts/test.sh shares it with
the end-to-end tests' default run through the SFT cache, so it is trained once per CI run), and the rules on
statistics built by hand."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grpo import preflight, records
from grpo.config import Config

ROOT = Path(__file__).resolve().parents[2]


def _grpo(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    return subprocess.run([sys.executable, "-m", "grpo", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def default_start(tmp_path_factory) -> str:
    """The default run's GRPO start (its SFT end) as a model directory: `train` with max_steps=0 (SFT from the
    cache when the default ran before in this CI run)."""
    run = tmp_path_factory.mktemp("default") / "run"
    p = _grpo("train", "--run-dir", str(run), "--quiet", "--set", "max_steps=0", "--set", "onnx_export=false")
    assert p.returncode == 0, p.stderr
    return str(run / "checkpoints" / "step_000000")


@pytest.fixture(scope="module")
def trained_start(default_start, tmp_path_factory) -> str:
    """A start that already solves the task: the default start after 30 GRPO steps (about 90% greedy)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    sets = ("sft_steps=0", f"model={default_start}", "max_steps=30", "eval_steps=0", "eval_samples=0", "eval_size=50",
            "onnx_export=false", "save_steps=0", "log_samples_steps=0")
    p = _grpo("train", "--run-dir", str(run), "--quiet", *[a for s in sets for a in ("--set", s)])
    assert p.returncode == 0, p.stderr
    return str(run / "checkpoints" / "step_000030")


def preflight_of(start: str, *sets: str) -> tuple[dict, int]:
    args = [a for s in ("sft_steps=0", f"model={start}", "eval_size=8", *sets) for a in ("--set", s)]
    p = _grpo("preflight", "--json", "--quiet", "--questions", "24", *args)
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert records.validate("PreflightReport", report) == [], report
    return report, p.returncode


def codes(report: dict) -> set[str]:
    return {p["code"] for p in report["problems"] if p["severity"] != "note"}


def test_the_default_start_is_healthy(default_start):
    report, code = preflight_of(default_start)
    assert (report["verdict"], code) == ("healthy", 0), report
    assert report["signal_share"] >= 0.5 and report["truncated_ratio"] < 0.2
    assert report["seconds_per_step"] > 0 and report["peak_memory_mb"] > 0


def test_completions_cut_off_before_their_answer_are_a_dead_run(default_start):
    report, code = preflight_of(default_start, "max_completion_length=5")
    assert (report["verdict"], code) == ("dead", 1) and "truncation" in codes(report), report
    change = next(p["change"] for p in report["problems"] if p["code"] == "truncation")
    assert "max_completion_length to ≥ 32" in change and "mask_truncated_completions" in change


def test_a_task_too_hard_for_the_start_is_named(default_start):
    report, code = preflight_of(default_start, "arith_min_ops=4", "arith_max_ops=4")
    assert code == 1 and report["verdict"] in ("dead", "wasteful") and "all_wrong" in codes(report), report
    assert report["groups"]["all_wrong"] >= 0.8 * report["questions"]


def test_a_task_too_easy_for_the_start_is_named(trained_start):
    report, code = preflight_of(trained_start, "temperature=0.3")
    assert code == 1 and "all_correct" in codes(report), report
    assert report["groups"]["all_correct"] >= 0.8 * report["questions"]


def test_a_reward_that_never_varies_is_dead(default_start, tmp_path):
    (tmp_path / "flat_reward.py").write_text("def always_half(questions, completions, answers):\n"
                                             "    return [0.5] * len(completions)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "trainer"), str(tmp_path)])}
    args = [a for s in ("sft_steps=0", f"model={default_start}", "eval_size=8",
                        "reward_function=flat_reward:always_half") for a in ("--set", s)]
    p = subprocess.run([sys.executable, "-m", "grpo", "preflight", "--json", "--quiet", "--questions", "8", *args],
                       env=env, capture_output=True, text=True, timeout=600)
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert (report["verdict"], p.returncode) == ("dead", 1), report


def test_bad_settings_exit_2_naming_the_setting():
    p = _grpo("preflight", "--json", "--set", "max_completion_length=0", timeout=60)
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert p.returncode == 2 and report["verdict"] == "bad_settings" and "max_completion_length" in report["error"]
    p = _grpo("preflight", "--set", "model=/nonexistent/model", "--set", "sft_steps=0", timeout=120)
    assert p.returncode == 2 and "bad settings" in p.stdout


def stats(**over) -> dict:
    base = {"groups": {"mixed": 6, "all_correct": 1, "all_wrong": 1, "no_signal_other": 0}, "signal_share": 0.75,
            "lengths": [20] * 64, "truncated": [False] * 64, "truncated_ratio": 0.0, "truncated_without_answer": 0.0,
            "accuracy": 0.5, "reward_mean": 0.5, "reward_std": 0.5, "reward_errors": 0, "first_error": "",
            "completions": 64, "prompts_over_limit": 0, "prompts_checked": 8}
    return {**base, **over}


def test_the_rules_on_statistics():
    cfg = Config()
    assert preflight.problems(cfg, stats()) == []
    found = preflight.problems(cfg, stats(prompts_over_limit=4, prompts_checked=12))
    assert [(p["code"], p["severity"]) for p in found] == [("long_prompts", "wasteful")]
    found = preflight.problems(cfg, stats(groups={"mixed": 0, "all_correct": 0, "all_wrong": 0, "no_signal_other": 8},
                                          signal_share=0.0))
    assert preflight.verdict(found) == "dead" and found[0]["code"] == "no_signal"
    found = preflight.problems(cfg, stats(reward_errors=64, first_error="KeyError: 'x'"))
    assert found[0]["code"] == "reward_errors" and preflight.verdict(found) == "dead"
    # the suggested length fits the longest finished completion
    assert preflight.suggested_length(Config(max_completion_length=64), [90, 64], [False, True]) == 256
