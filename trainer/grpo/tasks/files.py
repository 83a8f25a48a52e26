"""A task read from a JSONL or Parquet file of question/answer rows (GSM8K, MATH or plain answers).

The reference answer is read from the answer field by `answer_format` (answers.py); a bad row is skipped
and counted by reason (`bad_rows`, `bad_reasons`: data.py), and rows whose prompt is longer than
`max_prompt_length` are dropped once at set-up (`fit_prompts`); a file left with no usable row is refused
with the counts by reason. The held-out rows are the `held_out` setting's file when given, else a seeded
shuffle holds out min(eval_size, a tenth of the rows). Training rows sharing a 10-gram with (or, short, equal
to) a held-out question are removed, or with `decontaminate: report` only counted (decontaminate.py).
"""

from __future__ import annotations

import random
from pathlib import Path

from .. import data, decontaminate
from .base import Task


class FileTask(Task):
    verifier = "math_verify"

    def __init__(self, path: str | Path, eval_size: int = 200, seed: int = 0, question_column: str = "question",
                 answer_column: str = "answer", answer_format: str = "auto", held_out: list[dict] | None = None,
                 decontaminate_action: str = "remove"):
        path = Path(path)
        # each row keeps its record's columns: TRL-style reward functions receive them (reward_funcs)
        rows, bad = data.read_rows(path, question_column, answer_column, answer_format, columns=True)
        self.path, self.bad_reasons = path, bad
        if not rows:
            raise ValueError(self._unusable())
        if len(rows) < 2:
            raise ValueError(f"setting 'task': {path} has 1 usable row ({bad.describe() or 'no bad rows'}); need "
                             "at least 2")
        self.name, self.bad_rows = path.stem, bad.total()
        # GSM8K-style data (most answer fields carry '####'): completions are expected to state theirs so too
        self.answer_marker = bad.marked * 2 > len(rows)
        self._answers = {r["question"]: r["answer"] for r in rows}
        rows = rows[:]
        random.Random(seed).shuffle(rows)
        if held_out is None:
            n_eval = min(eval_size, max(1, len(rows) // 10))
            held_out, rows = rows[:n_eval], rows[n_eval:]
        found = decontaminate.check([r["question"] for r in rows], [r["question"] for r in held_out])
        remove = decontaminate_action == "remove"
        self.decontamination = found.fields([r["question"] for r in rows], "removed" if remove else "reported")
        if remove and found.matched:
            drop = set(found.matched)
            rows = [r for i, r in enumerate(rows) if i not in drop]
            if not rows:
                raise ValueError(f"setting 'task': every training row of {path} shares a 10-gram with a held-out "
                                 "question")
        self.train, self._held_out = rows, held_out

    @classmethod
    def from_settings(cls, settings, held_out: list[dict] | None = None) -> "FileTask":
        return cls(settings.task, settings.eval_size, settings.seed, settings.question_column, settings.answer_column,
                   settings.answer_format, held_out, settings.decontaminate)

    def _unusable(self, limit: int | None = None) -> str:
        reasons = data.BadRows(self.bad_reasons)
        if limit is not None:
            reasons[data.long_prompts(limit)] = self.long_prompts
        return f"setting 'task': {self.path} has no usable rows: {reasons.describe() or 'it is empty'}"

    def fit_prompts(self, lengths, limit: int) -> int:
        """Drop the training and held-out rows whose prompt is longer than `limit` tokens (`lengths`: questions
        → their prompts' token counts), once, before training; ValueError with the counts by reason when no
        training row is left."""
        def fitting(rows: list[dict]) -> list[dict]:
            return [r for r, n in zip(rows, lengths([r["question"] for r in rows])) if n <= limit]

        train, held_out = fitting(self.train), fitting(self._held_out)
        dropped = len(self.train) - len(train) + len(self._held_out) - len(held_out)
        self.long_prompts += dropped
        if not train:
            raise ValueError(self._unusable(limit))
        self.train, self._held_out = train, held_out
        return dropped

    def questions(self, rng: random.Random, n: int) -> list[dict]:
        return [self.train[rng.randrange(len(self.train))] for _ in range(n)]

    def held_out(self) -> list[dict]:
        return self._held_out

    def answer(self, question: str) -> str | None:
        return self._answers.get(question)
