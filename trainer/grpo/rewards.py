"""Rewards behind one interface: the configured verifier's verdict, or a user function `module:function`;
under process supervision also the task's step rewards.

A user function is called as fn(questions, completions, answers) -> list of floats. If it raises or
returns something unusable, every sample of that call is retried one at a time so that one bad sample
cannot poison the rest; each failing sample gets reward 0 and is counted, never a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from . import plugins, verify
from .tasks import Task


@dataclass
class Scored:
    rewards: list[float]
    correct: list[bool]
    step_rewards: list[list[float]] = field(default_factory=list)
    step_ends: list[list[int]] = field(default_factory=list)   # character indices
    errors: list[str] = field(default_factory=list)             # one message per failing sample


def load_user_function(spec: str) -> Callable:
    fn = plugins.load_object(spec, "reward_function")
    if not callable(fn):
        raise ValueError(f"setting 'reward_function': {spec} is not callable")
    return fn


class Rewarder:
    """Training's rewards: `verifier` (verify.py) judges each completion right or wrong (the `accuracy`
    metric); the reward is that verdict, or the user function's value; `supervision="process"` adds the
    task's per-step rewards."""

    def __init__(self, verifier: str = "number", supervision: str = "outcome", user_function: str = "",
                 task: Task | None = None):
        if supervision == "process" and (task is None or not task.has_steps):
            name = task.name if task is not None else "none"
            raise ValueError(f"setting 'reward': process supervision needs a task with a step checker (arith); "
                             f"task {name!r} has none")
        self.task, self.supervision = task, supervision
        self.user_fn = load_user_function(user_function) if user_function else None
        self.check = verify.checker(verifier)

    def __call__(self, questions: list[str], completions: list[str], answers: list[str]) -> Scored:
        correct = [self.check(c, a) for c, a in zip(completions, answers)]
        errors: list[str] = []
        if self.user_fn is not None:
            rewards = self._user(questions, completions, answers, errors)
        else:
            rewards = [1.0 if ok else 0.0 for ok in correct]
        scored = Scored(rewards, correct, errors=errors)
        if self.supervision == "process":
            for q, c in zip(questions, completions):
                rs, ends = self.task.steps(q, c)
                scored.step_rewards.append(rs)
                scored.step_ends.append(ends)
        return scored

    def _user(self, questions, completions, answers, errors: list[str]) -> list[float]:
        try:
            out = _as_rewards(self.user_fn(questions, completions, answers), len(completions))
            if out is not None:
                return out
        except Exception:  # noqa: BLE001 - fall through to per-sample calls to isolate the culprit
            pass
        rewards = []
        for q, c, a in zip(questions, completions, answers):
            try:
                one = _as_rewards(self.user_fn([q], [c], [a]), 1)
                if one is None:
                    raise TypeError("did not return a list of one finite number")
                rewards.append(one[0])
            except Exception as e:  # noqa: BLE001
                errors.append(f"{type(e).__name__}: {e}")
                rewards.append(0.0)
        return rewards


def _as_rewards(value, n: int) -> list[float] | None:
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if len(out) != n or not all(math.isfinite(v) for v in out):
        return None
    return out
