"""The Task interface: what GRPO trains on, and the only place that knows what a question means.

A task gives training questions with their reference answers, a fixed held-out split, the words a question is
asked in, and the verifier that suits its answers. Optionally it writes a reference solution (the SFT
stage trains on them) and splits a completion into checked steps (process supervision). Everything else —
the loop, the inspector, the rewarder — asks the task and never which task it is.

Built in: `arith` (tasks/arith.py) and JSONL/Parquet files (tasks/files.py). A user task is a
`module:object` path in the `task` setting: a `Task` instance, or a callable taking the settings and
returning one.
"""

from __future__ import annotations

import random


class Task:
    name = "task"
    verifier = "math_verify"   # what `verifier: auto` means for this task (verify.py)
    answer_marker = False      # completions state their answer after `####` (answer_fallback: auto turns it off)
    bad_rows = 0               # rows of the task's data that were skipped (reported once as a warning)
    bad_reasons = None         # those rows by reason (data.BadRows), where the task read a file
    long_prompts = 0           # rows dropped at set-up for a prompt over max_prompt_length (reported once)
    decontamination: dict | None = None  # the run-start check against the held-out split (decontaminate.py)

    def questions(self, rng: random.Random, n: int) -> list[dict]:
        """`n` training rows {"question", "answer"}, drawn with `rng` (never from the held-out split)."""
        raise NotImplementedError(f"task {self.name!r} gives no training questions")

    def held_out(self) -> list[dict]:
        """The evaluation rows {"question", "answer"}: the same every time."""
        return []

    def answer(self, question: str) -> str | None:
        """The reference answer for a question asked from outside training (the inspector), if known."""
        return None

    def fit_prompts(self, lengths, limit: int) -> int:
        """Drop, once before training, the rows whose prompt is longer than `limit` tokens (`lengths` maps a
        list of questions to their prompts' token counts); how many were dropped. A task that makes its
        questions as they are drawn has none to drop: the loop skips an over-long one as it comes."""
        return 0

    def prompt(self, question: str) -> str:
        """What the model is asked: the user's turn under a chat template, else the text before a newline."""
        return question

    def solution(self, question: str) -> str | None:
        """A worked solution ending in the answer, for the SFT stage; None: the task has none."""
        return None

    def sft_example(self, question: str, rng: random.Random) -> tuple[str, float] | None:
        """One SFT target and its loss weight (a task may mix behaviours, e.g. worked and direct answers);
        the default: the reference solution, weight 1."""
        text = self.solution(question)
        return None if text is None else (text, 1.0)

    def steps(self, question: str, completion: str) -> tuple[list[float], list[int]]:
        """Process supervision: one reward per reasoning step and the character index where each step ends.
        Raises ValueError for a question the task cannot check step by step."""
        raise ValueError(f"task {self.name!r} has no step checker")

    @property
    def has_solutions(self) -> bool:
        return type(self).solution is not Task.solution

    @property
    def has_steps(self) -> bool:
        return type(self).steps is not Task.steps
