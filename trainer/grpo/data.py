"""Question sources: the built-in `arith` generator, or a JSONL file of {question, answer} rows.

A bad row (not JSON, not an object, a missing or non-string question/answer) is skipped and counted; the
count is reported once as a warning event by the caller.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from .tasks import arith

HELD_OUT_SEED = 987_654_321


@dataclass
class Dataset:
    name: str
    train: list[dict] = field(default_factory=list)   # empty for generated tasks
    held_out: list[dict] = field(default_factory=list)
    bad_rows: int = 0
    generated: bool = False

    def batch(self, rng: random.Random, n: int) -> list[dict]:
        if self.generated:
            rows = []
            held = {r["question"] for r in self.held_out}
            while len(rows) < n:
                q = arith.random_expression(rng)
                if q not in held:
                    rows.append({"question": q, "answer": str(arith.evaluate(arith.parse(q)))})
            return rows
        return [self.train[rng.randrange(len(self.train))] for _ in range(n)]


def load_jsonl_rows(path: str | Path) -> tuple[list[dict], int]:
    """Rows with string `question` and `answer` (numbers are accepted as answers); bad rows counted."""
    rows, bad = [], 0
    with Path(path).open("r", encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if not isinstance(obj, dict):
                bad += 1
                continue
            q, a = obj.get("question"), obj.get("answer")
            if isinstance(a, (int, float)) and not isinstance(a, bool):
                a = str(a)
            if not isinstance(q, str) or not q.strip() or not isinstance(a, str) or not a.strip():
                bad += 1
                continue
            rows.append({"question": q, "answer": a.strip()})
    return rows, bad


def load(task: str, eval_size: int, seed: int) -> Dataset:
    if task == "arith":
        return Dataset("arith", held_out=arith.make_split(HELD_OUT_SEED, eval_size), generated=True)
    path = Path(task)
    if not path.is_file():
        raise FileNotFoundError(f"setting 'task': {task!r} is neither a built-in task (arith) nor a JSONL file")
    rows, bad = load_jsonl_rows(path)
    if len(rows) < 2:
        raise ValueError(f"setting 'task': {task} has {len(rows)} usable rows ({bad} bad); need at least 2")
    rows = rows[:]
    random.Random(seed).shuffle(rows)
    n_eval = min(eval_size, max(1, len(rows) // 10))
    return Dataset(path.stem, train=rows[n_eval:], held_out=rows[:n_eval], bad_rows=bad)
