"""The ledger's remedies measured: `mask_truncated_completions` on a truncation-prone start and DAPO's dynamic
sampling on a mostly-all-wrong start, each against its absence, several seeds, from the default's SFT start.

    PYTHONPATH=trainer .venv/bin/python bench/remedies.py [--start CHECKPOINT] [--seeds 0 1 2] [--steps 30]

- The start: `--start DIR`, or the embedded default's SFT end made once with `train --set max_steps=0` (the SFT
  cache makes that instant after the first time).
- Cases (settings on top of the default's, `sft_steps=0` from the start):
  truncation  max_completion_length=20 (the start's worked solutions run 7–27 tokens: many are cut off)
              baseline vs mask_truncated_completions=true
  all_wrong   arith_min_ops=arith_max_ops=3 (one operation more than the start was trained on: most groups
              are all-wrong) — baseline vs dynamic_sampling=true
- Each run: the product's command (`python -m grpo train`), greedy held-out accuracy every `--eval-every` steps
  on the same 200 questions. The training clock is Σ (time/generate + time/train) over the steps, evaluation
  excluded. Per case and variant: the final accuracy (median and range over seeds), the training seconds to
  reach the target (the lower of the two variants' median final accuracies; null when a seed never gets there),
  the share of sampled tokens that carried gradient (the ledger), and dynamic sampling's extra groups.
- Writes `--out` (JSON, the machine named).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hostinfo import cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "trainer"))

from grpo.rundir import read_jsonl  # noqa: E402

CASES = {
    "truncation": ({"max_completion_length": 20}, {"mask_truncated_completions": "true"}),
    "all_wrong": ({"arith_min_ops": 3, "arith_max_ops": 3}, {"dynamic_sampling": "true"}),
}


def grpo(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    p = subprocess.run([sys.executable, "-m", "grpo", *args], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"grpo {' '.join(args)} failed:\n{p.stderr[-3000:]}")


def default_start(work: Path) -> Path:
    run = work / "start"
    if not (run / "checkpoints" / "step_000000").is_dir():
        grpo("train", "--run-dir", str(run), "--quiet", "--set", "max_steps=0", "--set", "onnx_export=false")
    return run / "checkpoints" / "step_000000"


def one_run(work: Path, start: Path, case: str, variant: str, seed: int, steps: int, eval_every: int) -> dict:
    base, remedy = CASES[case]
    sets = {"model": str(start), "sft_steps": 0, "max_steps": steps, "seed": seed, "eval_steps": eval_every,
            "eval_size": 200, "eval_samples": 0, "onnx_export": "false", "save_steps": 0, "log_samples_steps": 0,
            **base, **(remedy if variant == "remedy" else {})}
    run = work / f"{case}-{variant}-{seed}"
    t0 = time.time()
    grpo("train", "--run-dir", str(run), "--quiet", *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")])
    wall = time.time() - t0
    metrics, _ = read_jsonl(run / "metrics.jsonl")
    clock, curve = 0.0, []
    evals = {e["step"]: e["accuracy"] for e in read_jsonl(run / "events.jsonl")[0] if e["kind"] == "eval"}
    curve.append((0, 0.0, evals.get(0)))
    for m in metrics:
        clock += (m.get("time/generate") or 0.0) + (m.get("time/train") or 0.0)
        if m["step"] in evals:
            curve.append((m["step"], round(clock, 2), evals[m["step"]]))
    tokens = sum(m["ledger/tokens"] for m in metrics)
    return {"seed": seed, "curve": curve, "final": curve[-1][2], "train_seconds": round(clock, 2),
            "wall_seconds": round(wall, 1), "effective_share": sum(m["ledger/effective"] for m in metrics) / tokens,
            "filtered_groups": sum(m["groups/filtered"] for m in metrics),
            "sampled_groups": sum(m["groups/sampled"] for m in metrics),
            "truncated_ratio": statistics.mean(m["truncated_ratio"] for m in metrics)}


def seconds_to(curve: list, target: float) -> float | None:
    return next((t for _, t, acc in curve if acc is not None and acc >= target - 1e-9), None)


def summarise(runs: dict[str, list[dict]]) -> dict:
    finals = {v: statistics.median(r["final"] for r in rs) for v, rs in runs.items()}
    target = min(finals.values())
    out = {"target_accuracy": target}
    for v, rs in runs.items():
        times = [seconds_to(r["curve"], target) for r in rs]
        reached = [t for t in times if t is not None]
        out[v] = {"final_accuracy": {"median": finals[v], "min": min(r["final"] for r in rs),
                                     "max": max(r["final"] for r in rs)},
                  "start_accuracy": rs[0]["curve"][0][2],
                  "train_seconds_to_target": {"median": statistics.median(reached) if len(reached) == len(rs) else None,
                                              "per_seed": times},
                  "train_seconds_total": statistics.median(r["train_seconds"] for r in rs),
                  "effective_token_share": statistics.median(r["effective_share"] for r in rs),
                  "truncated_ratio": statistics.median(r["truncated_ratio"] for r in rs),
                  "extra_groups_sampled": statistics.median(r["filtered_groups"] / max(1, r["sampled_groups"])
                                                            for r in rs)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start")
    ap.add_argument("--work", default=str(ROOT / ".cache" / "bench-remedies"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--cases", nargs="+", default=list(CASES))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "remedies-cpu.json"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    start = Path(args.start) if args.start else default_start(work)
    results = {}
    for case in args.cases:
        runs: dict[str, list[dict]] = {"baseline": [], "remedy": []}
        for seed in args.seeds:
            for variant in (("baseline", "remedy") if seed % 2 == 0 else ("remedy", "baseline")):
                runs[variant].append(one_run(work, start, case, variant, seed, args.steps, args.eval_every))
                print(f"{case} {variant} seed {seed}: final {runs[variant][-1]['final']}", flush=True)
        results[case] = {"settings": CASES[case][0], "remedy": CASES[case][1], "summary": summarise(runs), "runs": runs}
    out = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
           "date": time.strftime("%Y-%m-%d"), "steps": args.steps, "seeds": args.seeds, "eval_size": 200,
           "note": "medians over seeds; the training clock excludes evaluation", "cases": results}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({c: r["summary"] for c, r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
