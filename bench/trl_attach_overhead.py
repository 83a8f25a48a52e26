"""What `grpo.integrations.trl.attach` costs a TRL GRPOTrainer step: the same run with and without it, in one process.

    PYTHONPATH=trainer .venv/bin/python bench/trl_attach_overhead.py [--steps 21] [--rounds 3] [--out …]

Variants, each trained `--rounds` times for `--steps` steps, in rotating order so that machine noise hits all:
- `plain`: TRL alone;
- `attach`: attach(trainer, run_dir) with the default log_samples_steps=10 (metrics row per step, status per
  step, a whole group with per-token arrays at step 1 and every 10th);
- `attach_every_step`: log_samples_steps=1, the worst case: a group scored by our chunked scorer every step.
A step's time is the wall time between consecutive `on_step_begin` callbacks (the last one: to `on_train_end`),
so it holds generation, TRL's scoring, the update, logging and every callback, ours included. The first step
of each training is warm-up and left out; with 21 steps, the default variant's measured steps include two
group-logging steps (10 and 20), so its mean is the amortised cost and its median the cost of an ordinary step. No checkpoints (save_strategy="no") and no TRL completions logging.
The model is grpo.tiny_hf's random Qwen2 (byte-level BPE, chat template); the settings are
trl_example.tiny_trainer's with --steps, G=4, 2 prompts per step, 16 completion tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "trainer"))

from peer_trl import machine  # noqa: E402  (bench/: the machine and library versions, as every benchmark)

VARIANTS = {"plain": None, "attach": 10, "attach_every_step": 1}


def step_times(model: str, work: Path, variant: str, steps: int) -> list[float]:
    from transformers import TrainerCallback

    from grpo.integrations.trl import attach
    from grpo.integrations.trl_example import tiny_trainer

    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

        def on_train_end(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

    out = Path(tempfile.mkdtemp(dir=work))
    trainer = tiny_trainer(model, out / "trl", steps=steps, max_completion_length=16)
    if VARIANTS[variant] is not None:
        attach(trainer, out / "run", log_samples_steps=VARIANTS[variant])
    trainer.add_callback(Clock())  # after ours: its on_step_begin marks the end of everything before it
    trainer.train()
    return [b - a for a, b in zip(marks, marks[1:])][1:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=21)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="bench/results/trl-attach-overhead-cpu.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from grpo import threads, tiny_hf

    threads.configure()
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = str(tiny_hf.write_checkpoint(work / "tiny-qwen2", "qwen2"))
        names = list(VARIANTS)
        for r in range(args.rounds):
            for v in names[r % len(names):] + names[: r % len(names)]:
                times[v] += step_times(model, work, v, args.steps)
                print(f"round {r}: {v}: median {statistics.median(times[v]):.3f} s/step", file=sys.stderr)
    med = {v: statistics.median(ts) for v, ts in times.items()}
    mean = {v: statistics.fmean(ts) for v, ts in times.items()}
    result = {
        "benchmark": "trl-attach-overhead: a TRL GRPOTrainer step with and without grpo.integrations.trl.attach",
        "command": "PYTHONPATH=trainer .venv/bin/python bench/trl_attach_overhead.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "wall_s": round(time.time() - t0, 1),
        "machine": machine(),
        "settings": {"steps_per_training": args.steps, "rounds": args.rounds, "warmup_steps_dropped": 1,
                     "model": "grpo.tiny_hf qwen2 (random, 64 hidden, 2 layers)", "num_generations": 4,
                     "prompts_per_step": 2, "max_completion_length": 16, "log_samples_steps": VARIANTS},
        "step_s": {v: [round(t, 4) for t in ts] for v, ts in times.items()},
        "median_step_s": {v: round(m, 4) for v, m in med.items()},
        "mean_step_s": {v: round(m, 4) for v, m in mean.items()},
        "overhead_median_pct": {v: round(100 * (med[v] / med["plain"] - 1), 2) for v in VARIANTS if v != "plain"},
        "overhead_mean_pct": {v: round(100 * (mean[v] / mean["plain"] - 1), 2) for v in VARIANTS if v != "plain"},
    }
    out = ROOT / args.out if not Path(args.out).is_absolute() else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("median_step_s", "overhead_median_pct", "overhead_mean_pct")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
