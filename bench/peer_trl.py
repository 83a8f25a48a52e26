"""Our trainer against TRL's GRPOTrainer, side by side: the same starting checkpoint, task, settings and seeds.

    PYTHONPATH=trainer .venv/bin/python bench/peer_trl.py [--seeds 0 1 2] [--start CHECKPOINT] [--set key=value …]

1. The starting policy: `--start DIR` (a checkpoint directory), or the embedded default's SFT policy made once
   with `python -m grpo train --set max_steps=0` (`checkpoints/step_000000` of a run under `--work`, reused by
   a later invocation with the same SFT settings).
2. The matched settings are read from our trainer's config defaults (`grpo.config`) at run time, with the
   `--set` overrides on top, and mapped onto TRL's `GRPOConfig` (`trl_arguments`, the table in the JSON).
3. For each seed, both trainers run, each in its own process (so peak memory is per trainer), in alternating
   order (seed 0: ours first, seed 1: TRL first, …) so that machine noise hits both.
   - ours: the product's command, `python -m grpo train --set model=START --set sft_steps=0 …`; per-step
     times come from its metrics.jsonl (`time`, `time/generate`) and its held-out evaluations from events.jsonl.
   - TRL: `GRPOTrainer(model=START, reward_funcs=…, args=GRPOConfig(…), train_dataset=…)` in a child process
     of this script; a `TrainerCallback` evaluates and times the steps.
4. Held-out greedy accuracy for both: `grpo.sft.greedy_accuracy` on `grpo.tasks.ArithTask(eval_size)`'s
   held-out split, every `eval_steps` steps and after the last. Evaluation time is excluded from the training
   clock of both; the clock starts at the first GRPO step (ours: the GRPO phase's start; TRL: on_train_begin).
5. The target: by default the accuracy TRL ends at (median over seeds), so the question is how long each trainer
   takes to get where TRL gets; `--target 0.9` fixes it instead.
6. Writes `--out` (JSON: machine, versions, settings, per-seed curves and step times, time to the target,
   medians with spread, ratios, whether the bar is met) and `--plot` (held-out accuracy against training wall-clock, both).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hostinfo import cpu_model

ROOT = Path(__file__).resolve().parents[1]
TRAINER_DIR = ROOT / "trainer"
if str(TRAINER_DIR) not in sys.path:
    sys.path.insert(0, str(TRAINER_DIR))

from grpo import config as config_mod  # noqa: E402

OURS, TRL = "ours", "trl"

# Settings the benchmark fixes for both trainers: an evaluation interval fine enough to time "reach the target",
# a metrics row every step, no checkpoints during training (TRL: save_strategy="no"), and no ONNX export of ours
# (a product feature for the editor's hover that TRL does not have; on the tiny default model the first export,
# of the step-0 checkpoint, blocks training for about 7 s: measured, and said in docs/performance.md).
BENCH_DEFAULTS = ["eval_steps=10", "logging_steps=1", "save_steps=0", "onnx_export=false"]

# Settings of ours that have no bearing on TRL here (they shape only the starting checkpoint, which both share,
# or our own logging) or that the benchmark fixes itself.
_START_ONLY = {"sft_steps", "sft_batch_size", "sft_learning_rate", "sft_direct_fraction", "sft_direct_weight",
               "sft_direct_weighting"}
_OURS_ONLY = {"log_samples_steps", "max_nonfinite_steps", "logging_steps", "save_steps", "device",
              "max_prompt_length", "onnx_export"}
_FIXED = {"task": "arith", "reward": "outcome", "reward_function": "", "device": "auto"}

# How each setting that could not be matched exactly was approximated (written into the JSON and docs/performance.md).
APPROXIMATIONS = [
    "Sampling: ours samples with its own incremental KV-cache loop (torch.multinomial on a seeded generator); "
    "TRL calls transformers' model.generate (do_sample, DynamicCache KV cache, top_k=0 so no top-k filter, "
    "seeded by set_seed). Same distribution, different random streams: the same seed gives different "
    "completions, so the runs match statistically, not token for token.",
    "Questions: the identical sequence for both. Ours draws questions_per_step questions per step from the arith "
    "generator seeded with the run's seed; TRL gets the same questions, in the same order, as a prompt dataset "
    "(shuffle_dataset=False; the stream is already random).",
    "Optimizer step: one of our steps makes num_iterations (mu) updates on one sampled batch; TRL counts each "
    "update as a step and reuses a generation for mu steps. TRL's max_steps and evaluation interval are ours "
    "times mu (identical at the default mu=1) and its learning-rate schedule advances per update.",
    "Learning-rate warm-up: ours scales step s by (s+1)/warmup_steps, transformers by s/warmup_steps "
    "(identical at the default warmup_steps=0).",
    "AdamW: both torch AdamW with betas (0.9, 0.99), eps 1e-8 and the same weight decay; TRL uses its default "
    "implementation (optim='adamw_torch_fused' with torch >= 2.8), ours the default torch.optim.AdamW. Same "
    "update rule.",
    "Gradient checkpointing: TRL's GRPOConfig turns it on by default to save GPU memory; it is off here "
    "(recomputing activations would only slow TRL down on a 0.27M-parameter model on CPU). bf16 (TRL's default "
    "on GPUs) is off: both train in float32 on the CPU.",
    "Old log-probs: with mu=1 neither trainer computes them (the ratio is taken against the detached current "
    "log-probs); with mu>1 both compute them once per sampled batch.",
    "Reference model: ours deep-copies the starting policy; TRL loads a second copy from the same checkpoint "
    "directory. Same weights.",
    "max_prompt_length: ours skips prompts longer than it; TRL has no such setting. Arith prompts are at most "
    "a few dozen characters, far below it, so neither ever drops a prompt.",
    "Logging: ours writes a metrics row every step and one whole group to samples.jsonl every "
    "log_samples_steps (its default), TRL logs its metrics every step (logging_steps=1). Both are in the "
    "training clock, as they are in real use.",
    "Generation/training split: ours logs time/generate (sampling, decoding, rewards, advantages); for TRL the "
    "benchmark times GRPOTrainer._generate (prompt tokenisation, model.generate, decoding) plus "
    "_calculate_rewards with wrappers around those two methods. Training = the step's wall time minus "
    "generation, for both (reference log-probs, loss, backward, optimizer, logging).",
]


# ------------------------------------------------------------------------------------------------ settings
def bench_config(overrides: list[str]) -> config_mod.Config:
    """Our trainer's config defaults (read now, not hard-coded) ← the benchmark's fixed settings ← `--set`."""
    cfg = config_mod.build_config(None, BENCH_DEFAULTS + list(overrides))
    for key, want in _FIXED.items():
        if getattr(cfg, key) != want:
            raise config_mod.ConfigError(f"setting '{key}': this benchmark compares the arith task's outcome "
                                         f"reward on the CPU only ({key}={want!r}); got {getattr(cfg, key)!r}")
    if cfg.model != config_mod.Config.model:
        raise config_mod.ConfigError("setting 'model': the benchmark starts both trainers from --start "
                                     "(or the embedded default's SFT policy); pass --start instead")
    if cfg.logging_steps != 1 or cfg.save_steps != 0:
        raise config_mod.ConfigError("settings 'logging_steps' and 'save_steps' are fixed by the benchmark "
                                     "(1 and 0: a metrics row every step, no checkpoint during training)")
    if cfg.max_steps < 1:
        raise config_mod.ConfigError("setting 'max_steps' must be ≥ 1 for a benchmark")
    return cfg


def trl_arguments(cfg: config_mod.Config, seed: int) -> dict[str, Any]:
    """GRPOConfig keyword arguments matching `cfg` (everything but output_dir)."""
    mu = cfg.num_iterations
    schedule = cfg.lr_scheduler_type
    if schedule == "constant" and cfg.warmup_steps:
        schedule = "constant_with_warmup"
    args: dict[str, Any] = dict(
        # one optimizer step = questions_per_step prompts × G completions, generated once, no accumulation
        num_generations=cfg.num_generations,
        per_device_train_batch_size=cfg.questions_per_step * cfg.num_generations,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=mu,
        max_steps=cfg.max_steps * mu,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=schedule,
        warmup_steps=cfg.warmup_steps * mu,
        weight_decay=cfg.weight_decay,
        adam_beta1=0.9,
        adam_beta2=0.99,
        adam_epsilon=1e-8,
        max_grad_norm=cfg.max_grad_norm if cfg.max_grad_norm > 0 else 1e12,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        epsilon_high=cfg.eps_high,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        mask_truncated_completions=False,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=0,
        max_completion_length=cfg.max_completion_length,
        seed=seed,
        data_seed=seed,
        shuffle_dataset=False,
        # the machine: float32 on the CPU, no activation recomputation (see APPROXIMATIONS)
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        model_init_kwargs={"dtype": "float32", "attn_implementation": "sdpa"},
        # bookkeeping: log every step, no checkpoints, no TRL evaluation (the callback evaluates), no trackers
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        log_completions=False,
    )
    if cfg.ref_reset_steps:
        # iterative RL: every N of our steps the reference becomes the policy (TRL: a full sync, alpha = 1)
        args.update(sync_ref_model=True, ref_model_mixup_alpha=1.0, ref_model_sync_steps=cfg.ref_reset_steps * mu)
    return args


def ours_arguments(cfg: config_mod.Config, start: Path, seed: int) -> list[str]:
    """`--set` arguments for our trainer: every setting of `cfg` explicitly, from the start checkpoint."""
    values = cfg.to_dict()
    values.update(model=str(start), sft_steps=0, seed=seed, device="cpu")
    out = []
    for key, value in values.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        out += ["--set", f"{key}={text}"]
    return out


def settings_table(cfg: config_mod.Config) -> list[dict[str, Any]]:
    """Each matched setting: our name and value, TRL's argument and value (seed 0 shown)."""
    trl = trl_arguments(cfg, seed=0)
    pairs = [("num_generations", "num_generations"), ("questions_per_step", "per_device_train_batch_size"),
             ("learning_rate", "learning_rate"), ("lr_scheduler_type", "lr_scheduler_type"),
             ("warmup_steps", "warmup_steps"), ("weight_decay", "weight_decay"),
             ("max_grad_norm", "max_grad_norm"), ("beta", "beta"), ("epsilon", "epsilon"),
             ("epsilon_high", "epsilon_high"), ("loss_type", "loss_type"), ("scale_rewards", "scale_rewards"),
             ("num_iterations", "num_iterations"), ("temperature", "temperature"), ("top_p", "top_p"),
             ("max_completion_length", "max_completion_length"), ("max_steps", "max_steps"),
             ("seed", "seed")]
    ours = cfg.to_dict()
    ours["epsilon_high"] = cfg.eps_high
    return [{"ours": a, "ours_value": ours[a], "trl": b, "trl_value": trl[b]} for a, b in pairs]


# ------------------------------------------------------------------------------------------------ machine
def machine() -> dict[str, Any]:
    import torch
    import transformers

    cpu = cpu_model()
    try:
        import trl
        trl_version = trl.__version__
    except ImportError:
        trl_version = None
    try:
        import accelerate
        accelerate_version = accelerate.__version__
    except ImportError:
        accelerate_version = None
    return {"system": f"{platform.system()} {platform.machine()}", "cpu": cpu, "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl_version,
            "accelerate": accelerate_version}


# ------------------------------------------------------------------------------------------------ runs
def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TRAINER_DIR)] + ([path] if path else [])),
            "TOKENIZERS_PARALLELISM": "false"}


def _run_child(argv: list[str], log_path: Path, stdout=None) -> tuple[int, float, float]:
    """Run a child to completion; (exit status, wall seconds, peak RSS in MB of that child alone)."""
    t0 = time.perf_counter()
    with log_path.open("w") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout or err, stderr=err, env=_env(),
                                cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    rss_mb = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
    return proc.returncode, wall, rss_mb


def _shown(path: Path) -> str:
    """A path as the JSON shows it: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def make_start(work: Path, overrides: list[str]) -> Path:
    """The embedded default's SFT policy (checkpoints/step_000000 of a `max_steps=0` run), made once: a run
    under `work` with the same SFT settings is reused."""
    sft_keys = _START_ONLY | {"seed"}
    sets = [s for s in overrides if s.partition("=")[0].strip() in sft_keys]
    cfg = config_mod.build_config(None, sets + ["max_steps=0"])
    want = {k: getattr(cfg, k) for k in sorted(sft_keys)}
    run_dir = work / "sft-start"
    start = run_dir / "checkpoints" / "step_000000"
    try:
        have = json.loads((run_dir / "config.json").read_text())
        finished = json.loads((run_dir / "status.json").read_text()).get("state") == "finished"
    except (OSError, json.JSONDecodeError):
        have, finished = {}, False
    if finished and (start / "config.json").is_file() and {k: have.get(k) for k in want} == want:
        print(f"reusing the SFT start {start}", file=sys.stderr)
        return start
    shutil.rmtree(run_dir, ignore_errors=True)
    print(f"making the SFT start ({cfg.sft_steps} SFT steps) in {run_dir} …", file=sys.stderr)
    argv = [sys.executable, "-m", "grpo", "train", "--run-dir", str(run_dir), "--quiet"]
    # the start's own evaluation is not used (both trainers evaluate it themselves): greedy only, at the
    # benchmark's eval_size
    evals = [s for s in overrides if s.partition("=")[0].strip() == "eval_size"] + ["eval_samples=0"]
    for s in sets + evals + ["max_steps=0"]:
        argv += ["--set", s]
    work.mkdir(parents=True, exist_ok=True)
    code, wall, _ = _run_child(argv, work / "sft-start.log", stdout=subprocess.DEVNULL)
    if code != 0 or not (start / "config.json").is_file():
        raise RuntimeError(f"making the SFT start failed (exit {code}):\n{_tail(work / 'sft-start.log')}")
    print(f"SFT start ready in {wall:.0f} s", file=sys.stderr)
    return start


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ours_timeline(metrics: list[dict], events: list[dict], n_completions: int) -> dict[str, Any]:
    """Per-step times and the accuracy curve of our run, on a training clock that leaves out evaluation.

    A metrics row's `time` is taken at the end of its step, before that step's evaluation (if any); the
    `eval` event's `time` is taken when the evaluation ends. So an evaluation lasted event.time − row.time,
    and step i took row_i.time − (end of step i−1, plus its evaluation). The clock starts where `elapsed`
    does (the GRPO phase's start)."""
    rows = sorted((r for r in metrics if isinstance(r.get("step"), int)), key=lambda r: r["step"])
    if not rows:
        raise ValueError("our run wrote no metrics rows")
    evals = {e["step"]: e for e in events if e.get("kind") == "eval"}
    start_acc = next((e.get("sft_accuracy") for e in events
                      if e.get("kind") == "phase" and e.get("phase") == "grpo"), None)
    prev_end = rows[0]["time"] - rows[0]["elapsed"]
    clock = 0.0
    steps, curve = [], []
    if start_acc is not None:
        curve.append({"step": 0, "clock_s": 0.0, "accuracy": start_acc})
    for r in rows:
        total = r["time"] - prev_end
        clock += total
        tokens = r["completion_length/mean"] * n_completions
        steps.append({"step": r["step"], "total_s": total, "generate_s": r["time/generate"],
                      "train_s": total - r["time/generate"], "completion_tokens": tokens,
                      "reward": r["reward/mean"]})
        prev_end = r["time"]
        e = evals.get(r["step"])
        if e is not None:
            curve.append({"step": r["step"], "clock_s": clock, "accuracy": e["accuracy"],
                          "eval_s": e["time"] - r["time"]})
            prev_end = e["time"]
    return {"steps": steps, "curve": curve}


def run_ours(cfg: config_mod.Config, start: Path, seed: int, work: Path) -> dict[str, Any]:
    run_dir = work / f"ours-seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    argv = [sys.executable, "-m", "grpo", "train", "--run-dir", str(run_dir), "--quiet",
            *ours_arguments(cfg, start, seed)]
    code, wall, rss = _run_child(argv, work / f"ours-seed{seed}.log", stdout=subprocess.DEVNULL)
    if code != 0:
        raise RuntimeError(f"our trainer failed (seed {seed}, exit {code}):\n{_tail(work / f'ours-seed{seed}.log')}")
    n = cfg.questions_per_step * cfg.num_generations
    timeline = ours_timeline(read_jsonl(run_dir / "metrics.jsonl"), read_jsonl(run_dir / "events.jsonl"), n)
    return {**timeline, "process_wall_s": wall, "peak_rss_mb": rss, "run_dir": _shown(run_dir)}


def run_trl(cfg: config_mod.Config, start: Path, seed: int, work: Path) -> dict[str, Any]:
    out_dir = work / f"trl-seed{seed}"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    spec = {"start": str(start), "seed": seed, "config": cfg.to_dict(), "trl_args": trl_arguments(cfg, seed),
            "output_dir": str(out_dir / "trainer")}
    (out_dir / "spec.json").write_text(json.dumps(spec, indent=2))
    argv = [sys.executable, str(Path(__file__).resolve()), "_trl-child", str(out_dir / "spec.json"),
            str(out_dir / "result.json")]
    code, wall, rss = _run_child(argv, work / f"trl-seed{seed}.log")
    if code != 0 or not (out_dir / "result.json").is_file():
        raise RuntimeError(f"TRL failed (seed {seed}, exit {code}):\n{_tail(work / f'trl-seed{seed}.log')}")
    result = json.loads((out_dir / "result.json").read_text())
    return {**result, "process_wall_s": wall, "peak_rss_mb": rss, "run_dir": _shown(out_dir)}


# ------------------------------------------------------------------------------------------------ TRL child
def trl_child(spec_path: str, out_path: str) -> int:
    """Train with TRL's GRPOTrainer as its documentation shows (a model path, reward functions, a GRPOConfig,
    a prompt dataset), plus a callback that evaluates and times the steps."""
    spec = json.loads(Path(spec_path).read_text())
    import datasets
    import torch
    import trl
    from transformers import AutoTokenizer, TrainerCallback

    from grpo import prompts, sft, threads
    from grpo.rewards import Rewarder
    from grpo.tasks import ArithTask

    threads.configure()
    cfg = config_mod.build_config(spec["config"])
    seed, start = spec["seed"], spec["start"]
    mu = cfg.num_iterations
    task = ArithTask.from_settings(cfg)
    # the very questions our trainer draws for this seed, in its order (questions_per_step per step)
    rows = task.questions(random.Random(seed), cfg.questions_per_step * cfg.max_steps)
    train = datasets.Dataset.from_list([{"prompt": prompts.plain(r["question"]), "question": r["question"],
                                         "answer": r["answer"]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(start, padding_side="left")
    rewarder = Rewarder("number", "outcome")

    def arith_outcome(prompts, completions, question, answer, **kwargs):
        """Our outcome reward (grpo.rewards) in TRL's reward-function signature."""
        return rewarder(list(question), list(completions), list(answer)).rewards

    eval_every = (cfg.eval_steps or cfg.max_steps) * mu
    last_step = cfg.max_steps * mu
    timers: dict[str, Any] = {"generate_s": 0.0, "completion_tokens": 0, "reward": None}

    class Bench(TrainerCallback):
        def __init__(self):
            self.steps, self.curve, self.clock, self.last = [], [], 0.0, None

        def _evaluate(self, model, step: int) -> None:
            t0 = time.perf_counter()
            acc, _ = sft.greedy_accuracy(model, tokenizer, task.held_out(), cfg.max_completion_length)
            self.curve.append({"step": step, "clock_s": self.clock, "accuracy": acc,
                               "eval_s": time.perf_counter() - t0})

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self._evaluate(model, 0)
            self.last = time.perf_counter()  # the clock starts here

        def on_step_end(self, args, state, control, model=None, **kwargs):
            step = state.global_step
            if step % mu:  # one of our steps is mu TRL updates on one generation: report them together
                return
            now = time.perf_counter()
            total = now - self.last
            self.clock += total
            self.steps.append({"step": step // mu, "total_s": total, "generate_s": timers["generate_s"],
                               "train_s": total - timers["generate_s"],
                               "completion_tokens": timers["completion_tokens"], "reward": timers["reward"]})
            timers.update(generate_s=0.0, completion_tokens=0, reward=None)
            if step % eval_every == 0 or step == last_step:
                self._evaluate(model, step // mu)
            self.last = time.perf_counter()  # evaluation is not training time

    bench = Bench()
    args = trl.GRPOConfig(output_dir=spec["output_dir"], **spec["trl_args"])
    trainer = trl.GRPOTrainer(model=start, reward_funcs=arith_outcome, args=args, train_dataset=train,
                              processing_class=tokenizer, callbacks=[bench])

    # time generation without changing it: wrappers around the two methods that make and score completions
    generate, rewards = trainer._generate, trainer._calculate_rewards

    def timed_generate(*a, **kw):
        t0 = time.perf_counter()
        out = generate(*a, **kw)
        timers["generate_s"] += time.perf_counter() - t0
        timers["completion_tokens"] += sum(len(ids) for ids in out[1])
        return out

    def timed_rewards(*a, **kw):
        t0 = time.perf_counter()
        out = rewards(*a, **kw)
        timers["generate_s"] += time.perf_counter() - t0
        timers["reward"] = float(torch.nan_to_num(out).sum(1).mean())  # one reward function: its mean
        return out

    trainer._generate, trainer._calculate_rewards = timed_generate, timed_rewards
    trainer.train()
    keep = ("step", "loss", "reward", "kl", "entropy", "completions/mean_length", "frac_reward_zero_std",
            "step_time", "grad_norm", "learning_rate")
    logged = [{k: h[k] for k in keep if isinstance(h.get(k), (int, float))}
              for h in trainer.state.log_history if "reward" in h]
    Path(out_path).write_text(json.dumps({"steps": bench.steps, "curve": bench.curve,
                                          "torch_threads": torch.get_num_threads(), "trl_log": logged}))
    return 0


# ------------------------------------------------------------------------------------------------ summary
def run_order(seeds: list[int]) -> list[tuple[int, tuple[str, str]]]:
    """Both trainers for every seed, alternating which goes first, so slow spells of the machine hit both."""
    return [(seed, (OURS, TRL) if i % 2 == 0 else (TRL, OURS)) for i, seed in enumerate(seeds)]


def trl_final_target(runs: dict[str, list[dict]]) -> float:
    """The accuracy TRL ends at: the median over seeds of its last held-out evaluation (the default target, so
    the comparison asks how long each trainer takes to get where TRL gets, whatever the start)."""
    finals = [r["curve"][-1]["accuracy"] for r in runs[TRL] if r["curve"]]
    if not finals:
        raise RuntimeError("TRL made no held-out evaluation; there is no final accuracy to time against")
    return statistics.median(finals)


def time_to(curve: list[dict], target: float) -> float | None:
    """Training-clock seconds at the first evaluation with accuracy ≥ target (None: never reached)."""
    for point in curve:
        if point["accuracy"] >= target - 1e-12:
            return point["clock_s"]
    return None


def summarise_run(run: dict[str, Any], target: float) -> dict[str, Any]:
    steps = run["steps"]
    total = sum(s["total_s"] for s in steps)
    return {
        "steps": len(steps),
        "median_step_s": statistics.median(s["total_s"] for s in steps),
        "median_generate_s": statistics.median(s["generate_s"] for s in steps),
        "median_train_s": statistics.median(s["train_s"] for s in steps),
        "generate_fraction": sum(s["generate_s"] for s in steps) / total if total > 0 else None,
        "completion_tokens_per_s": sum(s["completion_tokens"] for s in steps) / total if total > 0 else None,
        "train_clock_s": total,
        "time_to_target_s": time_to(run["curve"], target),
        "start_accuracy": run["curve"][0]["accuracy"] if run["curve"] and run["curve"][0]["step"] == 0 else None,
        "final_accuracy": run["curve"][-1]["accuracy"] if run["curve"] else None,
        "peak_rss_mb": run["peak_rss_mb"],
        "process_wall_s": run["process_wall_s"],
    }


def _median_spread(values: list[float | None]) -> dict[str, Any]:
    """Median, min and max over seeds; a None (e.g. target never reached) counts as +∞ in the median."""
    vals = [math.inf if v is None else float(v) for v in values]
    med = statistics.median(vals) if vals else None
    fin = lambda x: None if x is None or math.isinf(x) else x  # noqa: E731
    return {"median": fin(med), "min": fin(min(vals)) if vals else None, "max": fin(max(vals)) if vals else None,
            "per_seed": values}


def aggregate(runs: dict[str, list[dict]], target: float) -> dict[str, Any]:
    """Medians over seeds with their spread, the ratios between the trainers, and the issue's bar."""
    keys = ["median_step_s", "median_generate_s", "median_train_s", "generate_fraction",
            "completion_tokens_per_s", "train_clock_s", "time_to_target_s", "final_accuracy", "peak_rss_mb",
            "process_wall_s"]
    med = {t: {k: _median_spread([r["summary"][k] for r in runs[t]]) for k in keys} for t in (OURS, TRL)}

    def m(t, k):
        return med[t][k]["median"]

    def ratio(a, b):
        return a / b if a is not None and b is not None and b > 0 else None

    ours_ttt, trl_ttt = m(OURS, "time_to_target_s"), m(TRL, "time_to_target_s")
    if ours_ttt is None:
        speedup = None
    elif trl_ttt is None:
        speedup = math.inf  # TRL never reached the target (median)
    else:
        speedup = ratio(trl_ttt, ours_ttt)
    ratios = {
        "time_to_target_trl_over_ours": None if speedup is None or math.isinf(speedup) else speedup,
        "trl_reached_target": trl_ttt is not None,
        "ours_reached_target": ours_ttt is not None,
        "step_time_trl_over_ours": ratio(m(TRL, "median_step_s"), m(OURS, "median_step_s")),
        "generate_time_trl_over_ours": ratio(m(TRL, "median_generate_s"), m(OURS, "median_generate_s")),
        "train_time_trl_over_ours": ratio(m(TRL, "median_train_s"), m(OURS, "median_train_s")),
        "tokens_per_s_ours_over_trl": ratio(m(OURS, "completion_tokens_per_s"), m(TRL, "completion_tokens_per_s")),
        "peak_rss_trl_over_ours": ratio(m(TRL, "peak_rss_mb"), m(OURS, "peak_rss_mb")),
        "final_accuracy_ours_minus_trl": (m(OURS, "final_accuracy") - m(TRL, "final_accuracy"))
        if m(OURS, "final_accuracy") is not None and m(TRL, "final_accuracy") is not None else None,
    }
    fast_enough = speedup is not None and speedup >= 2.0
    accurate_enough = ratios["final_accuracy_ours_minus_trl"] is not None and ratios["final_accuracy_ours_minus_trl"] >= 0
    bar = {"target_accuracy": target, "needs": "ours reaches the target in ≤ half of TRL's training wall-clock "
           "and ends with final accuracy ≥ TRL's (medians over seeds)",
           "time_to_target_at_least_2x": fast_enough, "final_accuracy_not_lower": accurate_enough,
           "met": fast_enough and accurate_enough}
    return {"medians": med, "ratios": ratios, "bar": bar}


def _columns(rows: list[dict]) -> dict[str, list]:
    """[{a: 1, b: 2}, {a: 3, b: 4}] → {a: [1, 3], b: [2, 4]}: per-step records, compactly."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return {k: [r.get(k) for r in rows] for k in keys}


def _compact(value: Any, key: str = "") -> Any:
    """The JSON as written: floats to 6 significant digits, per-step lists as columns."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _compact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        if key in ("steps", "trl_log") and value and isinstance(value[0], dict):
            return _compact(_columns(value))
        return [_compact(v) for v in value]
    return value


def plot(runs: dict[str, list[dict]], target: float, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    colours = {OURS: "#1f77b4", TRL: "#d62728"}
    names = {OURS: "ours (grpo)", TRL: "TRL GRPOTrainer"}
    for t in (OURS, TRL):
        for i, run in enumerate(runs[t]):
            xs = [p["clock_s"] for p in run["curve"]]
            ys = [100 * p["accuracy"] for p in run["curve"]]
            ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.4, color=colours[t], alpha=0.85,
                    label=names[t] if i == 0 else None)
    ax.axhline(100 * target, color="grey", linestyle="--", linewidth=1, label=f"{100 * target:.4g}% target")
    ax.set_xlabel("training wall-clock (s, held-out evaluation excluded)")
    ax.set_ylabel("held-out greedy accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_trl-child"]:
        return trl_child(argv[1], argv[2])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (each trains both trainers)")
    ap.add_argument("--start", help="starting checkpoint directory (default: make the embedded default's SFT "
                    "policy under --work)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override one of our trainer's settings (applied to both trainers)")
    ap.add_argument("--target", default="trl", help="held-out accuracy to time: a number in (0, 1], or 'trl' "
                    "(default) for the accuracy TRL ends at (median over seeds)")
    ap.add_argument("--work", default="runs/bench-peer-trl", help="run directories and logs")
    ap.add_argument("--out", default="bench/results/peer-trl-cpu.json")
    ap.add_argument("--plot", default="bench/results/peer-trl-cpu.png")
    ap.add_argument("--note", default="", help="a remark stored in the JSON (e.g. 'busy machine')")
    args = ap.parse_args(argv)
    try:
        cfg = bench_config(args.set)
    except config_mod.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        import trl  # noqa: F401
    except ImportError:
        print("error: TRL is not installed; install the benchmark's pins: "
              ".venv/bin/python -m pip install -r bench/requirements.txt", file=sys.stderr)
        return 2
    if args.target != "trl":
        try:
            args.target = float(args.target)
        except ValueError:
            args.target = math.nan
        if not 0 < args.target <= 1:
            print(f"error: --target must be 'trl' or an accuracy in (0, 1]; got {args.target}", file=sys.stderr)
            return 2
    if len(set(args.seeds)) != len(args.seeds):
        print("error: --seeds has a repeated seed", file=sys.stderr)
        return 2
    work = (ROOT / args.work) if not Path(args.work).is_absolute() else Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _bench(args, argv, cfg, work)
    except RuntimeError as e:  # a trainer failed: its log's tail says why
        print(f"error: {e}", file=sys.stderr)
        return 1


def _bench(args: argparse.Namespace, argv: list[str], cfg: config_mod.Config, work: Path) -> int:
    if args.start:
        start = Path(args.start).resolve()
        if not (start / "config.json").is_file():
            print(f"error: --start {args.start} is not a checkpoint directory (no config.json)", file=sys.stderr)
            return 2
    else:
        start = make_start(work, args.set)

    t_begin = time.time()
    runs: dict[str, list[dict]] = {OURS: [], TRL: []}
    for seed, order in run_order(args.seeds):
        for position, who in enumerate(order):
            print(f"seed {seed}: {who} …", file=sys.stderr)
            run = (run_ours if who == OURS else run_trl)(cfg, start, seed, work)
            run.update(seed=seed, order=position)
            s = summarise_run(run, 1.0)
            print(f"seed {seed}: {who}: {s['median_step_s']:.2f} s/step, final accuracy {s['final_accuracy']:.3f}",
                  file=sys.stderr)
            runs[who].append(run)
    target = trl_final_target(runs) if args.target == "trl" else args.target
    for run in runs[OURS] + runs[TRL]:
        run["summary"] = summarise_run(run, target)

    starts = {t: [r["summary"]["start_accuracy"] for r in runs[t]] for t in (OURS, TRL)}
    result = {
        "benchmark": "peer-trl: our GRPO trainer against TRL's GRPOTrainer, same start, task, settings, seeds",
        "command": "PYTHONPATH=trainer .venv/bin/python bench/peer_trl.py " + " ".join(argv),
        "note": args.note,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "wall_s": time.time() - t_begin,
        "machine": machine(),
        "start_checkpoint": _shown(start),
        "start_accuracy": starts,
        "held_out": {"n": cfg.eval_size, "eval_steps": cfg.eval_steps,
                     "function": "grpo.sft.greedy_accuracy on grpo.tasks.ArithTask().held_out()"},
        "target_accuracy": target,
        "target_rule": "the accuracy TRL ends at (median over seeds of its last evaluation)" if args.target == "trl"
        else "fixed by --target",
        "seeds": args.seeds,
        "config": cfg.to_dict(),
        "trl_arguments": trl_arguments(cfg, seed=args.seeds[0]),
        "settings": settings_table(cfg),
        "approximations": APPROXIMATIONS,
        "clock": "training wall-clock from the first GRPO step, held-out evaluation excluded, for both",
        **aggregate(runs, target),
        "runs": runs,
    }
    out = ROOT / args.out if not Path(args.out).is_absolute() else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_compact(result), indent=1, allow_nan=False, default=str) + "\n")
    m = result["machine"]
    plot(runs, target, ROOT / args.plot if not Path(args.plot).is_absolute() else Path(args.plot),
         f"arith, {len(args.seeds)} seed(s), {cfg.max_steps} steps, G={cfg.num_generations}, "
         f"{cfg.questions_per_step} questions/step — {m['cpu']}, {m['cores']} cores, TRL {m['trl']}")
    r = result["ratios"]
    print(json.dumps({"ratios": r, "bar": result["bar"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
