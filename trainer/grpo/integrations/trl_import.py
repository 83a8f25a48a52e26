"""`python -m grpo import-trl OUTPUT_DIR --run-dir DIR`: a TRL GRPO run that is already over, as a run directory.

- metrics.jsonl: `trainer_state.json`'s `log_history` (OUTPUT_DIR's own, else its latest checkpoint's), each
  training entry mapped to our names as the live `attach` does (trl_format.metrics_row);
- samples.jsonl: the first group of every `completions/completions_NNNNN.parquet` (written by TRL with
  `log_completions=True`), sequence level: prompt, completions, rewards (the sum of the reward-function
  columns, TRL's default weights of 1), each function's values, TRL's advantages. Per-token values are not in
  TRL's files; `serve` computes them on demand for any checkpoint;
- checkpoints/: every `checkpoint-N` as `step_N` (model files hard-linked), and `--model` (the model TRL
  started from, a local directory) as `step_000000`, the reference;
- status.json: finished at the last logged step.
Parquet and JSON only: nothing in OUTPUT_DIR is unpickled (training_args.bin, optimizer.pt are skipped).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import protocol
from ..rundir import RunDir
from . import trl_format

_NOT_REWARDS = {"step", "prompt", "completion", "advantage", "image"}


def trainer_state(output_dir: Path) -> tuple[dict, list[Path]]:
    """The run's trainer_state.json and its checkpoint-N directories (step order)."""
    ckpts = sorted((p for p in output_dir.iterdir() if p.is_dir() and trl_format.trl_checkpoint_step(p) is not None),
                   key=trl_format.trl_checkpoint_step)
    for f in [output_dir / "trainer_state.json"] + [c / "trainer_state.json" for c in reversed(ckpts)]:
        if f.is_file():
            try:
                return json.loads(f.read_text()), ckpts
            except json.JSONDecodeError as e:
                raise ValueError(f"{f} is not valid JSON: {e}") from None
    raise FileNotFoundError(f"{output_dir}: no trainer_state.json (neither TRL's output directory's own nor a "
                            "checkpoint-N's); is this a TRL output_dir?")


def _text(value: Any) -> str:
    """A TRL prompt/completion cell: a string, or chat messages (their contents joined)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "\n".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in value)
    return "" if value is None else str(value)


def _question(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        users = [m for m in value if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return str(users[-1].get("content", ""))
    return _text(value)


def groups_from_parquet(path: Path, num_generations: int | None) -> dict[str, Any] | None:
    """The first group of one completions table as a sequence-level samples.jsonl record (None if empty)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    if not rows:
        return None
    G = num_generations
    if G is None:  # TRL lays a group's G completions out consecutively: the first run of one prompt
        G = 1
        while G < len(rows) and rows[G]["prompt"] == rows[0]["prompt"]:
            G += 1
    group = rows[:G]
    funcs = [k for k, v in rows[0].items() if k not in _NOT_REWARDS and isinstance(v, (int, float))
             and not isinstance(v, bool)]
    per = {f: [None if r[f] is None or r[f] != r[f] else float(r[f]) for r in group] for f in funcs}
    rewards = [float(sum(per[f][i] for f in funcs if per[f][i] is not None)) for i in range(G)]
    step = int(group[0].get("step") or int(path.stem.rsplit("_", 1)[-1]))
    return {"step": step, "question": _question(group[0]["prompt"]), "answer": None,
            "prompt": _text(group[0]["prompt"]), "completions": [_text(r["completion"]) for r in group],
            "rewards": rewards, "advantages": [round(float(r["advantage"]), 6) for r in group],
            "reward_functions": per, "level": "sequence"}


def import_run(output_dir: str | Path, run_dir: str | Path, model: str | None = None,
               num_generations: int | None = None) -> dict[str, Any]:
    """Write `run_dir` from TRL's `output_dir`; returns counts of what was written."""
    out, run_path = Path(output_dir), Path(run_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: no such directory")
    if (run_path / "config.json").exists():
        raise ValueError(f"--run-dir {run_path} already holds a run; choose another directory")
    if model is not None and not (Path(model) / "config.json").is_file():
        raise FileNotFoundError(f"--model {model}: not a local model directory (no config.json)")
    state, ckpts = trainer_state(out)
    step = int(state.get("global_step") or 0)
    settings = {k: state[k] for k in ("max_steps", "logging_steps", "save_steps") if isinstance(state.get(k), int)}
    settings["save_strategy"] = "steps" if ckpts else "no"
    if num_generations:
        settings["num_generations"] = num_generations
    cfg = trl_format.config_from_trl(settings, model or "", 0)
    cfg["trl"] = {"trainer_state": {k: v for k, v in state.items() if k != "log_history"}, "output_dir": str(out)}
    run = RunDir(run_path)
    run.start(cfg, max_steps=int(state.get("max_steps") or step), sft_steps=0, resumed_from=None)
    counts = {"metrics": 0, "samples": 0, "checkpoints": 0}
    try:
        if model is not None:
            trl_format.write_checkpoint(run, 0, src=Path(model), trusted=True, source="trl", reference=model)
            counts["checkpoints"] += 1
        for entry in state.get("log_history", []):
            row = trl_format.metrics_row(entry, int(entry.get("step", 0)), None, None) \
                if isinstance(entry, dict) else None
            if row is not None:
                row.pop("time")
                run.metrics(row)
                counts["metrics"] += 1
        for f in sorted((out / "completions").glob("completions_*.parquet")):
            rec = groups_from_parquet(f, num_generations)
            if rec is not None:
                run.samples(rec)
                counts["samples"] += 1
        for c in ckpts:
            trl_format.write_checkpoint(run, trl_format.trl_checkpoint_step(c), src=c, source="trl",
                                        trl_checkpoint=c.name)
            counts["checkpoints"] += 1
        run.update(state=protocol.FINISHED, phase="done", step=step)
    except Exception as e:
        run.update(state=protocol.FAILED, error=f"import-trl: {type(e).__name__}: {e}")
        raise
    finally:
        run.close()
    return counts
