"""Where a default GRPO step's time goes on this machine: sampling, reward, reference log-probs, the policy's
forward + backward, the optimizer, and the rest. It runs the real trainer (`loop.run_training`, the default
settings from the SFT start, in a temporary run directory) and times the functions a step calls by wrapping
them; nothing else changes. Medians over the steps after the first.

    PYTHONPATH=trainer .venv/bin/python bench/step_profile.py --label after \
        --out bench/results/step-profile-cpu.json [--steps 20] [--set key=value ...]

The SFT start comes from the SFT cache (GRPO_CACHE_DIR); a cold cache trains it first (minutes, not
profiled). Results of several labels (before / after a change) live side by side in --out: run the labels you
compare on the same machine, one after the other, with nothing else heavy running.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainer"))
try:
    from grpo import threads
except ImportError:  # a trainer from before grpo/threads.py: the "before" profile of its change
    threads = None
else:
    threads.prepare()  # as `python -m grpo` does, before torch loads

import torch  # noqa: E402

from grpo import context, loop, microbatch, protocol, rewards  # noqa: E402
from grpo.config import build_config  # noqa: E402
from grpo.progress import Progress  # noqa: E402
from hostinfo import cpu_model  # noqa: E402

# what a step calls, in the order it calls it: (name in the profile, owner, attribute)
PARTS = [
    ("sample", context.PolicyContext, "generate"),
    ("reward", rewards.Rewarder, "__call__"),
    ("collect", context.PolicyContext, "roll_out"),           # sample + decode + reward + advantages
    ("reference_logprobs", context.PolicyContext, "score"),   # π_ref (and π_old when μ > 1), no gradients
    ("forward_backward", microbatch, "forward_backward"),
    ("clip_grad", torch.nn.utils, "clip_grad_norm_"),
    ("optimizer", torch.optim.AdamW, "step"),
    ("evaluation", loop.Trainer, "_evaluate"),
    ("step", loop.Trainer, "_grpo_step"),
]


def instrument(steps: list[dict[str, float]], current: dict[str, float]) -> None:
    """Wrap each part so its time adds up in `current` (this step); a finished step appends a copy of
    `current` to `steps`."""
    for name, owner, attr in PARTS:
        fn = getattr(owner, attr)

        def timed(*args, __fn=fn, __name=name, **kwargs):
            t0 = time.perf_counter()
            try:
                return __fn(*args, **kwargs)
            finally:
                current[__name] = current.get(__name, 0.0) + time.perf_counter() - t0
                if __name == "step":
                    steps.append(dict(current))
                    current.clear()

        setattr(owner, attr, functools.wraps(fn)(timed))


def profile(settings: list[str], steps: int) -> dict:
    cfg = build_config(None, [f"max_steps={steps}", "eval_steps=0", "eval_samples=0", "save_steps=0",
                              "onnx_export=false", "log_samples_steps=0", *settings])
    steps: list[dict[str, float]] = []
    instrument(steps, {})
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with open(os.devnull, "w") as sink:
            code = loop.run_training(cfg, Path(tmp) / "run", protocol.Stream(sink), False, Progress(enabled=False))
        wall = time.perf_counter() - t0
        if code != 0:
            raise SystemExit(f"training failed (exit {code})")
        rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    n = len(steps)
    keep = steps[1:]  # the first step warms caches and allocators

    def med(part: str) -> float:
        return statistics.median(s.get(part, 0.0) for s in keep)

    step_wo_eval = statistics.median(s["step"] - s.get("evaluation", 0.0) for s in keep)
    parts = {
        "sample": med("sample"),
        "reward_decode_advantages": statistics.median(s["collect"] - s["sample"] for s in keep),
        "reference_logprobs": med("reference_logprobs"),
        "forward_backward": med("forward_backward"),
        "clip_grad_and_optimizer": statistics.median(s.get("clip_grad", 0) + s.get("optimizer", 0) for s in keep),
    }
    parts["other"] = step_wo_eval - sum(parts.values())
    tokens = statistics.median(r["completion_length/mean"] for r in rows[1:]) * cfg.num_generations * cfg.questions_per_step
    return {
        "settings": settings, "steps": n, "wall_seconds_with_setup": round(wall, 2),
        "step_seconds_median": round(step_wo_eval, 4),
        "parts_seconds_median": {k: round(v, 4) for k, v in parts.items()},
        "parts_share": {k: round(v / step_wo_eval, 3) for k, v in parts.items()},
        "completion_tokens_per_step_median": round(tokens, 1),
        "completion_length_max_median": statistics.median(r["completion_length/max"] for r in rows[1:]),
        "tokens_per_second": round(tokens / step_wo_eval, 1),
        "final_accuracy_train_batch": rows[-1]["accuracy"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True, help="what this profile is of (before, after, ...)")
    ap.add_argument("--out", default="bench/results/step-profile-cpu.json")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--note", default="")
    ap.add_argument("--side-by-side", action="store_true",
                    help="profile while a second copy of the same training runs in another process (two runs, or a "
                         "run and a test, on one machine)")
    args = ap.parse_args()
    n_threads = threads.configure() if threads is not None else torch.get_num_threads()
    neighbour = None
    if args.side_by_side:  # the same workload, longer, in its own process; its numbers are not kept
        import subprocess

        cmd = [sys.executable, __file__, "--label", "neighbour", "--out", os.devnull, "--steps", str(args.steps * 10),
               *[f"--set={s}" for s in args.set]]
        neighbour = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(5)  # past its imports and set-up
    try:
        result = profile(args.set, args.steps)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    result["side_by_side"] = args.side_by_side
    result.update(note=args.note, torch=torch.__version__, torch_threads=n_threads,
                  openmp=threads.describe() if threads is not None else "OpenMP defaults",
                  machine=f"{platform.system()} {platform.machine()}, {cpu_model()}, {os.cpu_count()} CPUs",
                  when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    out = Path(args.out)
    if str(out) == os.devnull:
        return
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc.setdefault("what", __doc__.split("\n\n")[0].replace("\n", " "))
    doc.setdefault("profiles", {})[args.label] = result
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
