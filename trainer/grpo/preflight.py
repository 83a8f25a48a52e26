"""Preflight: a verdict on a run's settings before it trains (`python -m grpo preflight`, the Training view's
Preflight button).

From the start policy the run would begin GRPO from (after SFT: a cached SFT start is reused; without one SFT
trains once and is stored in the cache, so the run that follows reuses it), it runs one real GRPO step of the
run's own loop: `questions_per_step` questions (or `--questions`) × G completions with the run's prompt,
engine, reward, limits and, when set, dynamic sampling, scored and updated once on a throwaway copy. What that
step shows predicts the run: the share of groups with signal, truncation, prompts over max_prompt_length, the
reward spread, completion lengths, seconds per step and peak memory. `problems` names each finding with its
cause and a concrete change; the verdict is the worst severity (records.PreflightReport).

Exit status: 0 healthy, 1 predicted dead or wasteful, 2 bad settings.
"""

from __future__ import annotations

import logging
import math
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from . import distributed, ledger, verify
from .config import Config
from .records import PreflightProblem, PreflightReport

log = logging.getLogger("grpo")

# thresholds, as shares of the sampled groups / completions
DEAD_SIGNAL = 0.10       # under this share of groups with signal the run is predicted not to learn
WASTEFUL_SIGNAL = 0.50   # under this, more than half of every step's sampling is wasted
TRUNCATED = 0.50         # this share of completions cut off without an answer is a problem of its own
ONE_SIDED = 0.80         # this share of groups all-wrong (or all-correct) names the start as the cause
EXIT = {"healthy": 0, "wasteful": 1, "dead": 1, "bad_settings": 2}


def suggested_length(cfg: Config, lengths: list[int], truncated: list[bool]) -> int:
    """A max_completion_length that would fit the completions: the longest finished one × 1.5, at least
    twice the current limit and 32, rounded up to a power of two."""
    done = [n for n, t in zip(lengths, truncated) if not t]
    want = max(32, 2 * cfg.max_completion_length, int(1.5 * max(done)) if done else 0)
    return 2 ** math.ceil(math.log2(want))


def problems(cfg: Config, stats: dict) -> list[PreflightProblem]:
    """The findings of one preflight step's statistics (`stats`: what `measure` returns), worst first."""
    out: list[PreflightProblem] = []
    groups = max(1, sum(stats["groups"].values()))
    signal = stats["signal_share"]
    wrong, right = stats["groups"]["all_wrong"] / groups, stats["groups"]["all_correct"] / groups
    severity = "dead" if signal < DEAD_SIGNAL else "wasteful" if signal < WASTEFUL_SIGNAL else "note"
    no_answer = stats["truncated_without_answer"]
    if stats["reward_errors"] and stats["reward_errors"] >= stats["completions"]:
        out.append({"code": "reward_errors", "severity": "dead",
                    "message": f"the reward function failed on every one of {stats['completions']} completions "
                               f"({stats['first_error']}); every reward is 0",
                    "change": "fix the reward function (setting 'reward_function'); its error is above"})
    if no_answer >= TRUNCATED:
        L = cfg.max_completion_length
        out.append({"code": "truncation", "severity": "dead" if severity == "dead" else "wasteful",
                    "message": f"{no_answer:.0%} of completions reach max_completion_length = {L} without an answer "
                               f"({stats['truncated_ratio']:.0%} are truncated); they earn no outcome reward and "
                               f"{1 - signal:.0%} of groups carry no signal",
                    "change": f"raise max_completion_length to ≥ {suggested_length(cfg, stats['lengths'], stats['truncated'])}"
                              + ("" if cfg.mask_truncated_completions else
                                 ", or set mask_truncated_completions so cut-off completions get no policy gradient")})
    if wrong >= ONE_SIDED and no_answer < TRUNCATED:
        out.append({"code": "all_wrong", "severity": "dead" if severity == "dead" else "wasteful",
                    "message": f"{wrong:.0%} of groups are all-wrong: the start cannot solve this task (accuracy "
                               f"{stats['accuracy']:.0%}); their advantages are exactly 0",
                    "change": "more SFT (sft_steps), an easier curriculum (e.g. fewer arith_max_ops), a larger G "
                              "(num_generations), or dynamic sampling (dynamic_sampling=true)"})
    if right >= ONE_SIDED:
        out.append({"code": "all_correct", "severity": "dead" if severity == "dead" else "wasteful",
                    "message": f"{right:.0%} of groups are all-correct: the start already solves this task "
                               f"(accuracy {stats['accuracy']:.0%}); nothing is left to learn from them",
                    "change": "harder questions (e.g. more arith_max_ops, a harder dataset), fewer SFT steps, or "
                              "dynamic sampling (dynamic_sampling=true)"})
    if severity != "note" and not any(p["code"] in ("truncation", "all_wrong", "all_correct", "reward_errors")
                                      for p in out):
        out.append({"code": "no_signal", "severity": severity,
                    "message": f"only {signal:.0%} of groups have rewards that differ (the rest: "
                               f"{wrong:.0%} all-wrong, {right:.0%} all-correct, "
                               f"{stats['groups']['no_signal_other'] / groups:.0%} equal under the reward)",
                    "change": "a larger G (num_generations), a higher temperature, or dynamic sampling "
                              "(dynamic_sampling=true)"})
    if stats["reward_std"] == 0 and not any(p["severity"] == "dead" for p in out):
        out.append({"code": "flat_reward", "severity": "dead", "message": "every sampled reward is equal "
                    f"({stats['reward_mean']:g}): no group can carry signal",
                    "change": "check the reward function and the verifier (settings 'reward_function', 'verifier')"})
    if stats["prompts_over_limit"]:
        n, m = stats["prompts_over_limit"], stats["prompts_checked"]
        out.append({"code": "long_prompts", "severity": "wasteful" if n * 10 >= m else "note",
                    "message": f"{n} of {m} prompts are longer than max_prompt_length = {cfg.max_prompt_length} "
                               "tokens; they are skipped",
                    "change": "raise max_prompt_length, or filter the dataset"})
    if stats["reward_errors"] and stats["reward_errors"] < stats["completions"]:
        out.append({"code": "reward_errors", "severity": "note",
                    "message": f"the reward function failed on {stats['reward_errors']} of {stats['completions']} "
                               f"completions ({stats['first_error']}); those get reward 0",
                    "change": "fix the reward function for those inputs"})
    rank = {"dead": 0, "wasteful": 1, "note": 2}
    return sorted(out, key=lambda p: rank[p["severity"]])


def verdict(found: list[PreflightProblem]) -> str:
    severities = {p["severity"] for p in found}
    return "dead" if "dead" in severities else "wasteful" if "wasteful" in severities else "healthy"


def _peak_memory_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if sys.platform.startswith("linux"):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return None


def measure(cfg: Config, questions: int) -> tuple[dict, dict]:
    """One real GRPO step of the run's loop from its start policy: (statistics, the report's fields)."""
    from . import loop, sftstage
    from .rundir import RunDir

    t_start = time.time()
    n = questions or cfg.questions_per_step
    probe = replace(cfg, questions_per_step=n, onnx_export=False)
    with tempfile.TemporaryDirectory(prefix="grpo-preflight-") as tmp:
        run = RunDir(Path(tmp) / "run")
        run.start(probe.to_dict(), probe.max_steps, probe.sft_steps, None)
        t = loop.Trainer(probe, run, None)
        t.setup()
        start = "the model (no SFT)"
        if probe.sft_steps and t.phase == "sft":
            if sftstage.run(t) is None:
                raise RuntimeError("preflight stopped during SFT")
            start = "the SFT cache" if t.sft_cached else "SFT trained now (stored in the cache for the run)"
        t._grpo_setup()
        if t.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(t.device)
        t0 = time.time()
        group = t._collect()
        t_collect = time.time() - t0
        t.ctx.score_group(group, probe.temperature, probe.num_iterations > 1 or t.method_run.needs_old_logp)
        t.method_run.coefficients(group, 0)
        update = t._update(group)
        t_step = time.time() - t0
        # prompts over max_prompt_length: dropped at set-up (file tasks) and skipped while drawing (warnings)
        over = sum(int(e.get("count", 0)) for e in _events(run) if e.get("code") == "long_prompts")
        run.close()
    G = cfg.num_generations
    kinds = ledger.group_kinds(group.advantages, group.scored.correct, G)
    counts = {k: sum(1 for x in kinds if x == k) for k in ledger.KINDS}
    lengths = [int(x) for x in group.batch.lengths.tolist()]
    truncated = [bool(x) for x in group.batch.truncated.tolist()]
    rewards = torch.tensor(group.scored.rewards, dtype=torch.float64)
    no_answer = sum(1 for text, cut in zip(group.texts, truncated) if cut and not verify.stated(text))
    stats = {
        "groups": counts, "signal_share": counts["mixed"] / max(1, len(kinds)), "lengths": lengths,
        "truncated": truncated, "truncated_ratio": sum(truncated) / max(1, len(truncated)),
        "truncated_without_answer": no_answer / max(1, len(truncated)), "accuracy": sum(group.scored.correct) /
        max(1, len(group.scored.correct)), "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
        "reward_errors": len(group.scored.errors), "first_error": group.scored.errors[0] if group.scored.errors else "",
        "completions": len(group.texts), "prompts_over_limit": over, "prompts_checked": len(group.rows) + over,
    }
    scale = cfg.questions_per_step / n
    qs = sorted(lengths)
    fields = {
        "start": start, "questions": len(group.rows), "num_generations": G,
        "signal_share": round(stats["signal_share"], 4), "groups": counts,
        "truncated_ratio": round(stats["truncated_ratio"], 4),
        "truncated_without_answer": round(stats["truncated_without_answer"], 4),
        "prompts_over_limit": over, "prompts_checked": stats["prompts_checked"],
        "reward": {"mean": stats["reward_mean"], "std": stats["reward_std"], "min": float(rewards.min()),
                   "max": float(rewards.max())},
        "accuracy": round(stats["accuracy"], 4),
        "completion_length": {"mean": sum(qs) / len(qs), "p10": qs[len(qs) // 10], "p50": qs[len(qs) // 2],
                              "p90": qs[min(len(qs) - 1, (9 * len(qs)) // 10)], "max": qs[-1]},
        "reward_errors": stats["reward_errors"],
        "seconds_per_step": round(t_step * scale, 3),
        "estimated_total_seconds": round(t_step * scale * cfg.max_steps, 1),
        "peak_memory_mb": _peak_memory_mb(t.device),
        "seconds": round(time.time() - t_start, 1),
    }
    log.info("preflight: %d questions × %d sampled in %.1fs, one update in %.1fs", len(group.rows), G, t_collect,
             update.seconds if update is not None else float("nan"))
    return stats, fields


def _events(run) -> list[dict]:
    from .rundir import read_jsonl

    return read_jsonl(run.path / "events.jsonl")[0] if (run.path / "events.jsonl").exists() else []


def run(cfg: Config, questions: int = 0) -> PreflightReport:
    """The preflight report for `cfg` (see the module's docstring). Errors in the settings that only set-up
    finds (a missing model, an unreadable task) are `bad_settings`."""
    if distributed.launched():
        raise ValueError("preflight runs in one process; run it without torchrun")
    try:
        stats, fields = measure(cfg, questions)
    except (ValueError, OSError, ImportError) as e:  # a missing model or data file, a bad task or reward module
        return bad_settings(str(e))
    found = problems(cfg, stats)
    v = verdict(found)
    return {"verdict": v, "exit_code": EXIT[v], "problems": found, **fields}


def bad_settings(message: str) -> PreflightReport:
    return {"verdict": "bad_settings", "exit_code": EXIT["bad_settings"], "problems": [], "error": message}


def describe(report: PreflightReport) -> str:
    """The report for a person."""
    if report["verdict"] == "bad_settings":
        return f"preflight: bad settings: {report.get('error', '')}"
    g = report["groups"]
    lines = [f"preflight: {report['verdict'].upper()} — {report['questions']} questions × {report['num_generations']} "
             f"from {report['start']}, in {report['seconds']:.0f}s",
             f"  groups with signal {report['signal_share']:.0%} (all-wrong {g['all_wrong']}, all-correct "
             f"{g['all_correct']}, other equal {g['no_signal_other']}, mixed {g['mixed']}); accuracy "
             f"{report['accuracy']:.0%}",
             f"  truncated {report['truncated_ratio']:.0%} ({report['truncated_without_answer']:.0%} without an "
             f"answer); completion length p10/p50/p90/max {report['completion_length']['p10']}/"
             f"{report['completion_length']['p50']}/{report['completion_length']['p90']}/"
             f"{report['completion_length']['max']} tokens",
             f"  reward mean {report['reward']['mean']:.3f} std {report['reward']['std']:.3f}; prompts over "
             f"max_prompt_length {report['prompts_over_limit']} of {report['prompts_checked']}",
             f"  estimated {report['seconds_per_step']:.2f}s a step, {report['estimated_total_seconds']:.0f}s for "
             f"the run; peak memory {report['peak_memory_mb'] or 0:.0f} MB"]
    for p in report["problems"]:
        lines.append(f"  [{p['severity']}] {p['message']}\n      → {p['change']}")
    if not report["problems"]:
        lines.append("  no problems found")
    return "\n".join(lines)
