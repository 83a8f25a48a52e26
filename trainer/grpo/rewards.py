"""Rewards behind one interface: the task's own checker, or a user function `module:function`.

A user function is called as fn(questions, completions, answers) -> list of floats. If it raises (even
SystemExit) or returns something unusable (strings, non-finite or huge numbers), every sample of that call
is retried one at a time so that one bad sample cannot poison the rest; each failing sample gets reward 0
and is counted, never a crash.
"""

from __future__ import annotations

import importlib
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Callable

from . import verify
from .tasks import arith

_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?")  # 1,000.5 or 1000.5


def answer_matches(completion: str, answer: str) -> bool:
    """The `####` marker's value, else the last number in the completion (thousands separators allowed),
    compared numerically with the answer."""
    got = verify.marked_answer(completion)
    if got is None:
        nums = _NUMBER.findall(completion)
        got = nums[-1].replace(",", "") if nums else None
    if got is None:
        return False
    try:
        return math.isclose(float(got), float(answer.replace(",", "")), rel_tol=0, abs_tol=1e-9)
    except ValueError:
        return got.strip() == answer.strip()


@dataclass
class Scored:
    rewards: list[float]
    correct: list[bool]
    step_rewards: list[list[float]] = field(default_factory=list)
    step_ends: list[list[int]] = field(default_factory=list)   # character indices
    errors: list[str] = field(default_factory=list)             # one message per failing sample


# Rewards past this size make group statistics overflow (std of 1e308s is inf, advantages NaN).
MAX_REWARD = 1e9


def load_user_function(spec: str) -> Callable:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - any import failure (sys.exit included) names the setting
        raise ValueError(f"setting 'reward_function': cannot import {module_name!r}: {type(e).__name__}: {e}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"setting 'reward_function': {module_name!r} has no callable {attr!r}")
    return fn


class Rewarder:
    def __init__(self, task: str, supervision: str, user_function: str = "", verifier: str = "number"):
        if supervision == "process" and task != "arith":
            raise ValueError("setting 'reward': process supervision needs a task with a step checker (arith)")
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
                rs, ends = arith.process_rewards(q, c)
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
