"""A task read from a JSONL or Parquet file of question/answer rows (GSM8K, MATH or plain answers).

The reference answer is read from the answer field by `answer_format` (answers.py); a bad row is skipped
and counted (`bad_rows`). A seeded shuffle holds out min(eval_size, a tenth of the rows) for evaluation.
"""

from __future__ import annotations

import random
from pathlib import Path

from .. import data
from .base import Task


class FileTask(Task):
    verifier = "math_verify"

    def __init__(self, path: str | Path, eval_size: int = 200, seed: int = 0, question_column: str = "question",
                 answer_column: str = "answer", answer_format: str = "auto"):
        path = Path(path)
        rows, bad = data.load_rows(path, question_column, answer_column, answer_format)
        if len(rows) < 2:
            raise ValueError(f"setting 'task': {path} has {len(rows)} usable rows ({bad} bad); need at least 2")
        self.name, self.bad_rows = path.stem, bad
        self._answers = {r["question"]: r["answer"] for r in rows}
        rows = rows[:]
        random.Random(seed).shuffle(rows)
        n_eval = min(eval_size, max(1, len(rows) // 10))
        self.train, self._held_out = rows[n_eval:], rows[:n_eval]

    def questions(self, rng: random.Random, n: int) -> list[dict]:
        return [self.train[rng.randrange(len(self.train))] for _ in range(n)]

    def held_out(self) -> list[dict]:
        return self._held_out

    def answer(self, question: str) -> str | None:
        return self._answers.get(question)
