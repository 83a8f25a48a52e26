"""Rewards behind one interface: the configured verifier's verdict, or a user function `module:function`;
under process supervision also the task's step rewards.

A user function is called as fn(questions, completions, answers) -> list of floats. If it raises (even
SystemExit) or returns something unusable (strings, non-finite or huge numbers), every sample of that call
is retried one at a time so that one bad sample cannot poison the rest; each failing sample gets reward 0
and is counted, never a crash.
"""

from __future__ import annotations

import math
import numbers
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


# Rewards past this size make group statistics overflow (std of 1e308s is inf, advantages NaN).
MAX_REWARD = 1e9


def load_user_function(spec: str, run_dir=None) -> Callable:
    """The user's reward function, never imported from a run directory (plugins.py)."""
    return plugins.load_object(spec, "reward_function", run_dir, accept=callable)


class Rewarder:
    """Training's rewards: `verifier` (verify.py) judges each completion right or wrong (the `accuracy`
    metric); the reward is that verdict, or the user function's value; `supervision="process"` adds the
    task's per-step rewards."""

    def __init__(self, verifier: str = "number", supervision: str = "outcome", user_function: str = "",
                 task: Task | None = None, run_dir=None, fallback: bool = True):
        if supervision == "process" and (task is None or not task.has_steps):
            name = task.name if task is not None else "none"
            raise ValueError(f"setting 'reward': process supervision needs a task with a step checker (arith); "
                             f"task {name!r} has none")
        self.task, self.supervision = task, supervision
        self.user_fn = load_user_function(user_function, run_dir) if user_function else None
        self.check = verify.checker(verifier, fallback)

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
        # A user function is foreign code: anything it raises, sys.exit included, is a reward error for
        # the samples it was called on; only Ctrl-C gets through.
        try:
            return _as_rewards(self.user_fn(questions, completions, answers), len(completions))
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001 - fall through to per-sample calls to isolate the culprit
            pass
        rewards = []
        for q, c, a in zip(questions, completions, answers):
            try:
                rewards.append(_as_rewards(self.user_fn([q], [c], [a]), 1)[0])
            except KeyboardInterrupt:
                raise
            except BaseException as e:  # noqa: BLE001
                errors.append(f"{type(e).__name__}: {e}")
                rewards.append(0.0)
        return rewards


def _as_rewards(value, n: int) -> list[float]:
    """`value` as n rewards; TypeError/ValueError saying what is wrong otherwise. Strings ("1") are not
    numbers here, and a reward must be finite and at most MAX_REWARD in size."""
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"returned {type(value).__name__}, not a list of {n} numbers") from None
    if len(items) != n:
        raise ValueError(f"returned {len(items)} rewards for {n} completions")
    out = []
    for v in items:
        if isinstance(v, (str, bytes)) or not isinstance(v, numbers.Real):
            raise TypeError(f"returned {v!r} ({type(v).__name__}), not a number")
        f = float(v)
        if not math.isfinite(f) or abs(f) > MAX_REWARD:
            raise ValueError(f"returned {f!r}, not a finite number of size at most {MAX_REWARD:g}")
        out.append(f)
    return out
