"""How long a replay of one step of the default takes, and what its record costs on disk.

    PYTHONPATH=trainer .venv/bin/python bench/replay.py [--repeats 5] [--out bench/results/replay-cpu.json]

- The run: the default's settings from its SFT start (the SFT cache makes that instant after the first time),
  10 GRPO steps with a group logged (and a replay record kept) at steps 1 and 10.
- Timed: the product's command, `python -m grpo replay --run-dir RUN --step 10` with the run's settings plus
  dr_grpo and GSPO (importance_sampling_level=sequence): wall-clock from process start to its JSON line, which
  includes Python and torch start-up and loading the model; and the replay's own `seconds` (load + 3 updates).
  Medians and ranges over `--repeats` runs, one after another on an otherwise idle machine.
- Disk: the bytes of each replay record (state before the step, optimizer state, batch, meta) beside the
  checkpoint's.
- Writes `--out` (JSON, the machine named). The goal (issue 25): a replay of one step of the default in under
  10 s on this 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hostinfo import cpu_model

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ["loss_type=dr_grpo", "importance_sampling_level=sequence"]


def grpo(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    p = subprocess.run([sys.executable, "-m", "grpo", *args], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"grpo {' '.join(args)} failed:\n{p.stderr[-3000:]}")
    return p


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "replay-cpu.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        run = Path(work) / "run"
        grpo("train", "--run-dir", str(run), "--quiet", "--set", "max_steps=10", "--set", "log_samples_steps=10",
             "--set", "onnx_export=false", "--set", "eval_steps=0")
        walls, inner = [], []
        for _ in range(args.repeats):
            cmd = ["replay", "--run-dir", str(run), "--step", "10", "--json"]
            for v in VARIANTS:
                cmd += ["--set", v]
            t0 = time.perf_counter()
            p = grpo(*cmd)
            walls.append(time.perf_counter() - t0)
            result = json.loads(p.stdout.strip().splitlines()[-1])
            inner.append(result["seconds"])
        own = result["variants"][0]
        records = {d.name: size(d) for d in sorted((run / "replay").iterdir())}
        ckpt = size(run / "checkpoints" / "step_000010")
    out = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
           "date": time.strftime("%Y-%m-%d"), "step": 10, "variants": ["run", *VARIANTS],
           "completions": len(result["completions"]), "tokens": int(own["ledger"]["ledger/tokens"]),
           "wall_seconds": {"median": round(statistics.median(walls), 2), "min": round(min(walls), 2),
                            "max": round(max(walls), 2)},
           "replay_seconds": {"median": round(statistics.median(inner), 2), "min": round(min(inner), 2),
                              "max": round(max(inner), 2)},
           "reproduced": own["reproduced"], "record_bytes": records, "checkpoint_bytes": ckpt,
           "goal": "a replay of one step of the default under 10 s (wall-clock, the CLI)",
           "note": "wall-clock includes Python and torch start-up and loading the model; replay_seconds is the "
                   "replay itself (load + one update per variant + scoring)"}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
