"""`python -m grpo paradigm`: the paper's §5 comparison in one command.

One SFT start (an SFT run of the settings, or `--start CHECKPOINT`; the SFT run reuses the user's SFT start
cache, sftcache.py, so a `train` of the same SFT settings and this comparison train it once), then every method of methods.METHODS for
`--steps` steps from that start with several seeds, each in its own process (so its peak memory is its own)
and its own ordinary run directory `<parent>/<method>-s<seed>` that the dashboard overlays. The children are
forked from this process, which imports torch once (a fork before any CUDA or thread-pool work is safe), so
that each run's peak RSS (`wait4`) is its own. The same seed
gives every method the same questions; every method samples questions_per_step × G completions a step.
The results — held-out greedy accuracy, maj@k and pass@k of each run's final evaluation, per seed and as a
mean with a 95% t-interval, wall-clock and peak RSS — go to a JSON file and a PNG beside it: `RESULTS` in the
parent folder, beside the runs, unless `--results` names a file (a committed benchmark result, such as
bench/results/paradigm-cpu.json, is written only when named).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

from . import methods, threads
from .config import build_config

RESULTS = "paradigm.json"  # the results' default name, in the runs' parent folder (the PNG: paradigm.png)

# settings every run of the comparison shares unless --set says otherwise: no ONNX export or intermediate
# checkpoints (the start and the end are kept)
BASE = ["onnx_export=false", "save_steps=0"]
SMOKE = ["sft_steps=20", "questions_per_step=2", "num_generations=2", "max_completion_length=24", "eval_size=4",
         "eval_samples=2", "eval_k=1,2", "sft_batch_size=8", "eval_steps=0", "log_samples_steps=1"]

# two-sided 95% Student-t quantiles t_{0.975, df}
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t_interval(xs: list[float]) -> tuple[float, float | None]:
    """Mean and the half-width of its 95% Student-t interval (None with fewer than two values)."""
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    df = n - 1
    t = _T975[max(k for k in _T975 if k <= df)] if df <= 30 else 1.960
    return mean, t * sd / math.sqrt(n)


def _sampled_evals(run_dir: Path) -> list[dict]:
    """A run's eval events with sampled metrics (pass@k, maj@k), in order, from events.jsonl."""
    from .rundir import read_jsonl

    return [e for e in read_jsonl(run_dir / "events.jsonl")[0] if e.get("kind") == "eval" and "pass_at_k" in e]


def final_eval(run_dir: Path) -> dict:
    """The last sampled eval event (the run's end)."""
    evals = _sampled_evals(run_dir)
    if not evals:
        raise RuntimeError(f"{run_dir}: no sampled eval event")
    return evals[-1]


def start_eval(run_dir: Path) -> dict | None:
    """The start's evaluation in a run (its step-0 sampled eval event): greedy, maj@k and pass@k of the SFT
    start, which every method's run evaluates before its first step."""
    for e in _sampled_evals(run_dir):
        if e.get("step") == 0:
            return {"greedy": e["accuracy"], "maj_at_k": e["maj_at_k"], "pass_at_k": e["pass_at_k"]}
    return None


def _in_child(fn, log_path: Path) -> tuple[int, float, int]:
    """Run `fn()` in a forked child process (torch is imported once, in the parent; the child's memory is its
    own from the fork on); (exit code, wall seconds, the child's peak RSS in bytes)."""
    sys.stdout.flush()
    sys.stderr.flush()
    t0 = time.time()
    pid = os.fork()
    if pid == 0:  # the child: log to the run's file, never return into the parent's code
        code = 1
        try:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True,
                                handlers=[logging.FileHandler(log_path, encoding="utf-8")])
            code = fn()
        except BaseException:  # noqa: BLE001 - reported in the run's log; the parent sees the exit code
            logging.getLogger("grpo").exception("failed")
        finally:
            logging.shutdown()
            os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), time.time() - t0, usage.ru_maxrss * 1024


def _train(cfg, run_dir: Path, method: methods.Method | None) -> int:
    import torch

    from . import protocol
    from .loop import run_training
    from .progress import Progress

    threads.configure()
    with open(os.devnull, "w") as sink:
        return run_training(cfg, run_dir, protocol.Stream(sink), False, Progress(enabled=False), method)


def run_one(method_name: str, seed: int, run_dir: Path, start: str, steps: int, iterations: int,
            sets: list[str]) -> int:
    """One method, one seed from the SFT checkpoint `start` (what the parent runs in a child process)."""
    method = methods.get(method_name)
    cfg = build_config(None, BASE + sets + [f"model={start}", "sft_steps=0", f"seed={seed}", f"max_steps={steps}"])
    return _train(method.settings(cfg, max(1, steps // max(1, iterations))), run_dir, method)


def run(parent: Path, *, start: str | None, seeds: int, steps: int, iterations: int, sets: list[str],
        names: list[str], results: Path | None, smoke: bool = False) -> dict:
    """Every method × seed from one SFT start; returns (and writes to `results`) the comparison."""
    sets = (SMOKE if smoke else []) + sets
    build_config(None, BASE + sets)  # a bad setting fails before any work
    from . import loop  # noqa: F401 - torch and the trainer imported once, here, before the children fork
    parent.mkdir(parents=True, exist_ok=True)
    if start is None:
        sft_dir = parent / "sft-start"
        sft_dir.mkdir()
        cfg = build_config(None, BASE + sets + ["max_steps=0"])
        code, _, _ = _in_child(functools.partial(_train, cfg, sft_dir, None), sft_dir / "trainer.log")
        if code != 0:
            raise RuntimeError(f"the SFT start failed (exit {code}); see {sft_dir / 'trainer.log'}")
        start = str(sft_dir / "checkpoints" / "step_000000")
    runs: dict[str, list[dict]] = {n: [] for n in names}
    start_point: dict | None = None
    for seed in range(seeds):
        for name in names:
            d = parent / f"{name}-s{seed}"
            d.mkdir()
            code, wall, rss = _in_child(functools.partial(run_one, name, seed, d, start, steps, iterations, sets),
                                        d / "trainer.log")
            if code != 0:
                raise RuntimeError(f"{name} seed {seed} failed (exit {code}); see {d / 'trainer.log'}")
            ev = final_eval(d)
            runs[name].append({"seed": seed, "run_dir": str(d), "greedy": ev["accuracy"],
                               "maj_at_k": ev["maj_at_k"], "pass_at_k": ev["pass_at_k"],
                               "wall_s": round(wall, 1), "peak_rss_mb": round(rss / 2**20, 1)})
            print(f"{name} s{seed}: greedy {ev['accuracy']:.3f} maj {ev['maj_at_k']} pass {ev['pass_at_k']} "
                  f"{wall:.0f}s {rss / 2**20:.0f} MB", file=sys.stderr, flush=True)
        # after every seed: a comparison interrupted later still leaves its finished seeds, marked as such
        if seed == 0:  # the same start for every run: read from the first
            start_point = start_eval(Path(runs[names[0]][0]["run_dir"]))
        out = summarise(runs, weights_mb=weights_mb(Path(start)), parent=parent, start=start,
                        start_eval=start_point, steps=steps,
                        iterations=iterations, sets=BASE + sets, seeds_done=seed + 1, seeds_planned=seeds)
        if results is not None:
            results.parent.mkdir(parents=True, exist_ok=True)
            results.write_text(json.dumps(out, indent=1) + "\n")
            plot(out, results.with_suffix(".png"))
    return out


def weights_mb(checkpoint: Path) -> float:
    """The policy's weights in MB: the size of the checkpoint's safetensors files."""
    return sum(f.stat().st_size for f in checkpoint.glob("*.safetensors")) / 2**20


def summarise(runs: dict[str, list[dict]], weights_mb: float, **about) -> dict:
    """Per method: the per-seed values and their mean ± 95% t-interval half-width; and the memory its models
    hold by construction (the paper's Figure 4 point: PPO trains a value model as large as the policy), beside
    the measured peak RSS."""
    out_methods = {}
    for name, rs in runs.items():
        m = methods.get(name)
        summary = {}
        metrics = {"greedy": [r["greedy"] for r in rs]}
        for key in ("maj_at_k", "pass_at_k"):
            for k in rs[0][key]:
                metrics[f"{key.split('_')[0]}@{k}"] = [r[key][k] for r in rs]
        metrics["wall_s"] = [r["wall_s"] for r in rs]
        metrics["peak_rss_mb"] = [r["peak_rss_mb"] for r in rs]
        for key, xs in metrics.items():
            mean, half = t_interval(xs)
            summary[key] = {"mean": round(mean, 4), "ci95": None if half is None else round(half, 4)}
        # weights, gradients and two AdamW moments per trained model, plus the frozen reference's weights
        state = weights_mb * (4 * m.trained_models + 1)
        out_methods[name] = {"data": m.data, "reward": m.reward, "gc": m.gc, "kl": m.kl, "iterative": m.iterative,
                             "trained_models": m.trained_models, "model_state_mb": round(state, 2),
                             "runs": rs, "summary": summary}
    return {"benchmark": "paradigm", "machine": _machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in about.items()}, "methods": out_methods}


def _machine() -> str:
    bench = Path(__file__).resolve().parents[2] / "bench"
    if (bench / "hostinfo.py").is_file():
        sys.path.insert(0, str(bench))
        try:
            from hostinfo import cpu_model  # noqa: PLC0415 - bench/ is not a package

            return f"{cpu_model()}, {os.cpu_count()} CPUs"
        finally:
            sys.path.remove(str(bench))
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


# Table 10's words for the methods' fields (methods.DATA, REWARDS, COEFFICIENTS)
_WORDS = {"sft": "SFT targets", "pi_sft": "o ~ π_sft", "pi_theta": "o ~ π_θ", "human": "human", "rule": "rule, outcome",
          "rule_steps": "rule, per step", "learned_steps": "learned PRM, per step", "one": "1",
          "correct": "𝕀(o correct)", "grpo": "group-normalised Â", "gae": "GAE (value model)"}


def _pct(cell: dict) -> str:
    half = "" if cell["ci95"] is None else f" ± {100 * cell['ci95']:.1f}"
    return f"{100 * cell['mean']:.1f}{half}"


def table(results: dict) -> str:
    """The comparison as a Markdown table (docs/trainer.md's): per method its Table 10 row (data source, reward,
    gradient coefficient), held-out greedy, maj@k and pass@k at the largest k (mean ± 95% interval half-width,
    in %), wall-clock and peak RSS; the start's values first when the results have them."""
    names = list(results["methods"])
    summ = {n: results["methods"][n]["summary"] for n in names}
    big = max(int(k.split("@")[1]) for k in summ[names[0]] if k.startswith("maj@"))
    lines = [f"| method | data | reward | gradient coefficient | greedy | maj@{big} | pass@{big} | wall-clock (s) "
             f"| peak RSS (MB) | model state (MB) |", "|" + " --- |" * 10]
    st = results.get("start_eval")
    if st:
        lines.append(f"| SFT start | | | | {100 * st['greedy']:.1f} | {100 * st['maj_at_k'][str(big)]:.1f} "
                     f"| {100 * st['pass_at_k'][str(big)]:.1f} | | | |")
    for n in names:
        m, s = results["methods"][n], summ[n]
        w = lambda key: _WORDS.get(m[key], m[key])  # noqa: E731
        lines.append(f"| {n} | {w('data')} | {w('reward')} | {w('gc')} | {_pct(s['greedy'])} | {_pct(s[f'maj@{big}'])} "
                     f"| {_pct(s[f'pass@{big}'])} | {s['wall_s']['mean']:.0f} | {s['peak_rss_mb']['mean']:.0f} "
                     f"| {m['model_state_mb']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Bars per method: greedy, the largest maj@k and pass@k, means with 95% intervals; and peak RSS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["methods"])
    summ = [results["methods"][n]["summary"] for n in names]
    keys = ["greedy"] + [max((k for k in summ[0] if k.startswith(p)), key=lambda k: int(k.split("@")[1]))
                         for p in ("maj@", "pass@")]
    fig, (ax, mem) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / len(keys)
    start = results.get("start_eval")
    for j, key in enumerate(keys):
        bars = ax.bar([i + j * width for i in range(len(names))], [s[key]["mean"] for s in summ], width,
                      yerr=[s[key]["ci95"] or 0 for s in summ], capsize=3, label=key)
        if start:  # where every method began: the SFT start's value of this metric
            k = key.split("@")[-1]
            value = {"greedy": start["greedy"], "maj": start["maj_at_k"].get(k), "pass": start["pass_at_k"].get(k)}[
                key.split("@")[0]]
            if value is not None:
                ax.axhline(value, color=bars.patches[0].get_facecolor(), linestyle="--", linewidth=1,
                           label=f"{key} of the SFT start")
    ax.set_xticks([i + width * (len(keys) - 1) / 2 for i in range(len(names))], names, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("held-out accuracy")
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    ax.set_title(f"§5 paradigm: {results['steps']} steps from one SFT start")
    mem.bar(names, [s["peak_rss_mb"]["mean"] for s in summ], color="gray")
    mem.set_ylabel("peak RSS (MB)")
    mem.tick_params(axis="x", rotation=60)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
