"""Rewards behind one interface: the configured verifier's verdict, a user function `module:function`, or
TRL-style reward functions with weights (`reward_funcs`, `reward_weights`); under process supervision also
the task's step rewards.

`reward_function` (positional): fn(questions, completions, answers) -> list of floats.

`reward_funcs` (TRL 1.16's convention, `GRPOTrainer._calculate_rewards`): each function is called once per
batch with keyword arguments only — `prompts`, `completions`, `completion_ids` (token ids of each completion,
EOS included), every dataset column of the batch's rows (one list each: `question`, `answer`, or a data file's
own columns such as `solution`), `trainer_state` (a transformers `TrainerState`: `global_step`,
`max_steps`), `log_extra(column, values)` and `log_metric(name, value)`. Under a chat template the prompts
are message lists and each completion is `[{"role": "assistant", "content": text}]` (TRL's conversational
format); else both are strings. A function returns one value per completion: a number, or None for "does not
apply". Async functions (`async def`, or a class with an async `__call__`) run together on one event loop
in a daemon thread, as TRL runs them. The reward is Σ_j w_j·r_j over the functions that gave a value (TRL's
`nansum`, in float32); a completion no function scored gets 0 (TRL leaves it out of the group baseline).
The built-in name `accuracy` is the configured verifier's verdict, 1 or 0 (None where no answer is known).
Each function's values are kept apart (`Scored.components`, by TRL's name for it: the function's
`__name__`).

If a user function raises (even SystemExit) or returns something unusable (strings, non-finite or huge
numbers, a wrong count), every sample of that call is retried one at a time so that one bad sample cannot
poison the rest; each failing sample is counted as a reward error, never a crash, and gets reward 0
(`reward_function`) or no value from that function (`reward_funcs`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import numbers
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from . import plugins, verify
from .config import BUILTIN_REWARDS, reward_func_names, reward_weight_values
from .tasks import Task


@dataclass
class Scored:
    rewards: list[float]
    correct: list[bool]
    step_rewards: list[list[float]] = field(default_factory=list)
    step_ends: list[list[int]] = field(default_factory=list)   # character indices
    errors: list[str] = field(default_factory=list)             # one message per failing sample
    # reward_funcs: each function's value per completion by its name (None: does not apply, or it failed)
    components: dict[str, list[float | None]] = field(default_factory=dict)
    metrics: dict[str, list[float]] = field(default_factory=dict)  # what the functions gave log_metric


# Rewards past this size make group statistics overflow (std of 1e308s is inf, advantages NaN).
MAX_REWARD = 1e9


def load_user_function(spec: str, run_dir=None) -> Callable:
    """The user's reward function, never imported from a run directory (plugins.py)."""
    return plugins.load_object(spec, "reward_function", run_dir, accept=callable)


@dataclass(frozen=True)
class RewardFunc:
    """One entry of `reward_funcs`: its name (TRL's: the function's `__name__`), the callable (None: the
    built-in verdict) and whether it is async."""

    name: str
    fn: Callable | None
    is_async: bool = False


def callable_name(fn: Callable) -> str:
    """TRL's name for a reward function (trl.trainer.utils.get_callable_name): partials unwrapped, then
    `__name__`, else the class name."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", type(fn).__name__)


def is_async_callable(fn: Callable) -> bool:
    """TRL's test (trl.trainer.utils.is_async_callable): an async function, or a class with an async __call__."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def load_reward_funcs(text: str, run_dir=None) -> list[RewardFunc]:
    """The `reward_funcs` setting's functions, user code imported only through plugins.py's checks; a
    ValueError naming the setting for an unknown built-in or two functions of one name."""
    funcs: list[RewardFunc] = []
    for spec in reward_func_names(text):
        if ":" not in spec:
            if spec not in BUILTIN_REWARDS:
                raise ValueError(f"setting 'reward_funcs': {spec!r} is not a built-in reward "
                                 f"({', '.join(BUILTIN_REWARDS)}) nor 'module:function'")
            funcs.append(RewardFunc(spec, None))
            continue
        fn = plugins.load_object(spec, "reward_funcs", run_dir, accept=callable)
        funcs.append(RewardFunc(callable_name(fn), fn, is_async_callable(fn)))
    names = [f.name for f in funcs]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ValueError(f"setting 'reward_funcs': two functions are named {dup!r}; their metrics "
                         f"(rewards/{dup}/mean) would be one")
    return funcs


class _AsyncLoop:
    """One event loop on a daemon thread for async reward functions, as TRL keeps one
    (start_event_loop_in_daemon): a function may hold clients bound to the loop between calls."""

    _loop: asyncio.AbstractEventLoop | None = None
    _lock = threading.Lock()

    @classmethod
    def run(cls, coro) -> Any:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="grpo-async-rewards", daemon=True).start()
                cls._loop = loop
        return asyncio.run_coroutine_threadsafe(coro, cls._loop).result()


def trainer_state(step: int, max_steps: int) -> Any:
    """What TRL passes as `trainer_state`: a transformers TrainerState at this step."""
    try:
        from transformers.trainer_callback import TrainerState
    except ImportError:  # pragma: no cover - transformers is a requirement
        from types import SimpleNamespace
        return SimpleNamespace(global_step=step, max_steps=max_steps, epoch=0.0)
    return TrainerState(global_step=step, max_steps=max_steps)


class Rewarder:
    """Training's rewards: `verifier` (verify.py) judges each completion right or wrong (the `accuracy`
    metric); the reward is that verdict, the user function's value, or the weighted sum of `reward_funcs`;
    `supervision="process"` adds the task's per-step rewards."""

    def __init__(self, verifier: str = "number", supervision: str = "outcome", user_function: str = "",
                 task: Task | None = None, run_dir=None, fallback: bool = True, reward_funcs: str = "",
                 reward_weights: str = ""):
        if supervision == "process" and (task is None or not task.has_steps):
            name = task.name if task is not None else "none"
            raise ValueError(f"setting 'reward': process supervision needs a task with a step checker (arith); "
                             f"task {name!r} has none")
        self.task, self.supervision = task, supervision
        self.user_fn = load_user_function(user_function, run_dir) if user_function else None
        self.funcs = load_reward_funcs(reward_funcs, run_dir)
        try:
            self.weights = reward_weight_values(reward_weights, len(self.funcs))
        except ValueError as e:
            raise ValueError(f"setting 'reward_weights' {e}") from None
        self.check = verify.checker(verifier, fallback)

    @property
    def names(self) -> list[str]:
        """The reward functions' names (reward_funcs), in order."""
        return [f.name for f in self.funcs]

    def __call__(self, questions: list[str], completions: list[str], answers: list[str | None], *,
                 prompts: list | None = None, completion_ids: list[list[int]] | None = None,
                 columns: list[dict] | None = None, step: int = 0, max_steps: int = 0) -> Scored:
        """Rewards of `completions`. With reward_funcs, `prompts` (strings, or message lists under a chat
        template; default: the questions), `completion_ids` and each row's dataset `columns` (default:
        question and answer) are what the functions receive, and `step`/`max_steps` their trainer_state."""
        correct = [a is not None and self.check(c, a) for c, a in zip(completions, answers)]
        errors: list[str] = []
        components: dict[str, list[float | None]] = {}
        metrics: dict[str, list[float]] = {}
        if self.funcs:
            components = self._trl(questions, completions, answers, correct, prompts, completion_ids, columns,
                                   step, max_steps, errors, metrics)
            rewards = combine(components, self.weights)
        elif self.user_fn is not None:
            rewards = self._user(questions, completions, answers, errors)
        else:
            rewards = [1.0 if ok else 0.0 for ok in correct]
        scored = Scored(rewards, correct, errors=errors, components=components, metrics=metrics)
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


    # ------------------------------------------------------------------------------------ reward_funcs
    def _trl(self, questions, completions, answers, correct, prompts, completion_ids, columns, step, max_steps,
             errors: list[str], metrics: dict[str, list[float]]) -> dict[str, list[float | None]]:
        n = len(completions)
        prompts = list(questions) if prompts is None else list(prompts)
        conversational = bool(prompts) and _is_conversational(prompts[0])
        comps = [[{"role": "assistant", "content": c}] for c in completions] if conversational else list(completions)
        rows = columns if columns is not None else [{"question": q, "answer": a} for q, a in zip(questions, answers)]
        # TRL: every column of the batch's rows but prompt/completion/completion_ids, one list each
        keys = [k for k in (rows[0] if rows else {}) if k not in ("prompt", "completion", "completion_ids")]
        kwargs: dict[str, Any] = {k: [r.get(k) for r in rows] for k in keys}
        extra: dict[str, list] = {}
        kwargs["trainer_state"] = trainer_state(step, max_steps) if any(f.fn for f in self.funcs) else None
        kwargs["log_extra"] = lambda column, values: extra.setdefault(column, []).extend(values)
        kwargs["log_metric"] = lambda name, value: metrics.setdefault(name, []).append(float(value))
        kwargs.update(prompts=prompts, completions=comps, completion_ids=completion_ids)
        out: dict[str, list[float | None]] = {}
        pending = [f for f in self.funcs if f.is_async]
        results: dict[str, Any] = {}
        if pending:  # TRL gathers the async functions on one loop
            async def gather():
                return await asyncio.gather(*(f.fn(**kwargs) for f in pending), return_exceptions=True)
            for f, r in zip(pending, _AsyncLoop.run(gather())):
                results[f.name] = r
        for f in self.funcs:
            if f.fn is None:  # the built-in verdict
                out[f.name] = [None if a is None else (1.0 if ok else 0.0) for a, ok in zip(answers, correct)]
                continue
            try:
                value = results[f.name] if f.is_async else _call_foreign(f, kwargs)
                if isinstance(value, BaseException):
                    raise value
                out[f.name] = _as_components(value, n)
                continue
            except KeyboardInterrupt:
                raise
            except BaseException:  # noqa: BLE001 - one sample at a time finds the culprits
                pass
            values: list[float | None] = []
            for i in range(n):
                one = {k: (v[i:i + 1] if isinstance(v, list) and len(v) == n else v) for k, v in kwargs.items()}
                try:
                    values.append(_as_components(_call_foreign(f, one), 1)[0])
                except KeyboardInterrupt:
                    raise
                except BaseException as e:  # noqa: BLE001
                    errors.append(f"{f.name}: {type(e).__name__}: {e}")
                    values.append(None)
            out[f.name] = values
        return out


def _call_foreign(f: RewardFunc, kwargs: dict[str, Any]) -> Any:
    """One call of a reward function with TRL's keyword arguments (an async one on the shared loop)."""
    if f.is_async:
        async def one():
            return await f.fn(**kwargs)
        return _AsyncLoop.run(one())
    return f.fn(**kwargs)


def _is_conversational(prompt: Any) -> bool:
    """TRL's test on a prompt (trl.data_utils.is_conversational): a list of messages with role and content."""
    return isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], dict) and "role" in prompt[0] \
        and "content" in prompt[0]


def combine(components: dict[str, list[float | None]], weights: list[float]) -> list[float]:
    """Σ_j w_j·r_ij over the functions that gave completion i a value, in float32 as TRL computes it
    (`(rewards_per_func * reward_weights).nansum(dim=1)`); 0 where none did."""
    import torch

    cols = list(components.values())
    if not cols:
        return []
    table = torch.tensor([[math.nan if v is None else v for v in col] for col in cols], dtype=torch.float32).T
    return (table * torch.tensor(weights, dtype=torch.float32).unsqueeze(0)).nansum(dim=1).tolist()


def _listed(value, n: int, what: str) -> list:
    """A reward function's return value as a list of n items; TypeError/ValueError saying what is wrong."""
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"returned {type(value).__name__}, not a list of {n} {what}") from None
    if len(items) != n:
        raise ValueError(f"returned {len(items)} rewards for {n} completions")
    return items


def _as_components(value, n: int) -> list[float | None]:
    """`value` as n values of one reward function (None or NaN: does not apply); TypeError/ValueError saying
    what is wrong otherwise."""
    items = _listed(value, n, "numbers or None")
    out: list[float | None] = []
    for v in items:
        if v is None or (isinstance(v, numbers.Real) and not isinstance(v, (str, bytes)) and math.isnan(float(v))):
            out.append(None)
        else:
            out.extend(_as_rewards([v], 1))
    return out


def _as_rewards(value, n: int) -> list[float]:
    """`value` as n rewards; TypeError/ValueError saying what is wrong otherwise. Strings ("1") are not
    numbers here, and a reward must be finite and at most MAX_REWARD in size."""
    items = _listed(value, n, "numbers")
    out = []
    for v in items:
        if isinstance(v, (str, bytes)) or not isinstance(v, numbers.Real):
            raise TypeError(f"returned {v!r} ({type(v).__name__}), not a number")
        f = float(v)
        if not math.isfinite(f) or abs(f) > MAX_REWARD:
            raise ValueError(f"returned {f!r}, not a finite number of size at most {MAX_REWARD:g}")
        out.append(f)
    return out
